//! The Comch server (DPU) or client (host) and its context, the one owner of their DOCA
//! pointers and of the buffers of the sends in flight. With the progress engine (engine.rs),
//! every DOCA call the thread makes is a method here; callbacks.rs holds the functions DOCA
//! calls back.

use super::callbacks::{on_connect, on_disconnect, on_recv, on_send_error, on_sent, on_state};
use super::engine::{Connection, Engine, Sent};
use super::ffi::{self, ComchLib, Ctx, TaskSend};
use crate::config::Role;
use crate::doca::device::RawDev;
use crate::doca::error::{Described, Failure};
use crate::doca::ffi::DocaError;
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::ptr;

/// Send tasks asked for (NVIDIA's own users take 1024), capped by the device.
const SEND_TASKS: u32 = 1024;

/// What the device allows, read before the server or client is made.
pub(super) struct Limits {
    /// The largest message.
    msg: u32,
    /// Send tasks to ask for.
    tasks: u32,
}

impl Limits {
    /// Reads the device's message size limit and how many send tasks it allows.
    pub(super) fn read(l: &ComchLib, dev: &RawDev) -> Result<Limits, Failure> {
        // SAFETY: the device is open (see `RawDev`).
        let info = unsafe { (l.dev_as_devinfo)(dev.dev()) };
        let mut msg = 0u32;
        // SAFETY: the device's info and an out-pointer.
        let r = unsafe { (l.cap_get_max_msg_size)(info, &mut msg) };
        l.check("reading the message size limit", r)?;
        let mut tasks = SEND_TASKS;
        // SAFETY: as above.
        if unsafe { (l.cap_get_max_send_tasks)(info, &mut tasks) } != DocaError::SUCCESS
            || tasks == 0
        {
            tasks = SEND_TASKS;
        }
        let tasks = tasks.min(SEND_TASKS);
        Ok(Limits { msg, tasks })
    }
}

/// Why a message was not sent.
pub(super) enum Unsent {
    /// Every send task is in flight: the queue is full. The message comes back.
    Full(Vec<u8>),
    /// Allocating or submitting the task failed: why.
    Failed(Failure),
}

#[derive(Clone, Copy)]
enum Object {
    Server(*mut ffi::Server),
    Client(*mut ffi::Client),
}

/// The Comch server (DPU) or client (host) and its context.
// SAFETY: `obj` comes from `server_create` or `client_create` and is destroyed only in `Drop`,
// once, before the engine it borrows (DOCA destroys a context before its engine); `ctx` is its
// context, valid as long as it. Like the engine, the type stays on the Comch thread. The device
// it was made on stays open for the thread's whole life (see `RawDev`). `in_flight` keeps each
// submitted send's buffer, whose heap memory DOCA reads, until DOCA hands the task back.
pub(super) struct Context<'e> {
    l: &'e ComchLib,
    engine: &'e Engine<'e>,
    obj: Object,
    ctx: *mut Ctx,
    /// Submitted sends: the connection each went to and the buffer DOCA reads from.
    in_flight: HashMap<*mut TaskSend, (Connection, Vec<u8>)>,
}

/// Calls the server's or the client's variant of a function on the context's object; the
/// caller's `SAFETY:` line covers both.
macro_rules! either {
    ($c:expr, $server:ident, $client:ident $(, $arg:expr)*) => {
        match $c.obj {
            Object::Server(s) => ($c.l.$server)(s $(, $arg)*),
            Object::Client(c) => ($c.l.$client)(c $(, $arg)*),
        }
    };
}

impl<'e> Context<'e> {
    /// Makes the server named `name` (DPU) or the client connecting to it (host), on `engine`'s
    /// thread.
    pub(super) fn create(
        engine: &'e Engine<'e>,
        dev: &RawDev,
        role: Role,
        name: &CStr,
    ) -> Result<Self, Failure> {
        let l = engine.lib();
        let obj = match role {
            Role::Dpu => {
                let mut s = ptr::null_mut();
                // SAFETY: the open device and representor, a NUL-terminated name, an
                // out-pointer.
                let r = unsafe { (l.server_create)(dev.dev(), dev.rep(), name.as_ptr(), &mut s) };
                l.check("creating the server", r)?;
                Object::Server(s)
            }
            Role::Host => {
                let mut c = ptr::null_mut();
                // SAFETY: the open device, a NUL-terminated name, an out-pointer.
                let r = unsafe { (l.client_create)(dev.dev(), name.as_ptr(), &mut c) };
                l.check("creating the client", r)?;
                Object::Client(c)
            }
        };
        let mut c = Context {
            l,
            engine,
            obj,
            ctx: ptr::null_mut(),
            in_flight: HashMap::new(),
        };
        // SAFETY: the object just made; its context lives as long as it.
        c.ctx = unsafe { either!(c, server_as_ctx, client_as_ctx) };
        Ok(c)
    }

    /// Sets the message size, connects the context to the engine, configures the send tasks
    /// and registers the callbacks (callbacks.rs). Returns the message size in force.
    pub(super) fn configure(&self, limits: &Limits) -> Result<u32, Failure> {
        let l = self.l;
        // SAFETY: our object, not started.
        let r = unsafe {
            either!(
                self,
                server_set_max_msg_size,
                client_set_max_msg_size,
                limits.msg
            )
        };
        l.check("setting the message size", r)?;
        // SAFETY: our live context, destroyed before the engine it borrows (see `Context`),
        // connected once.
        let r = unsafe { self.engine.connect(self.ctx) };
        l.check("connecting the progress engine", r)?;
        let tasks = limits.tasks;
        // SAFETY: our object, not started; the callbacks fit the signatures DOCA expects.
        let r = unsafe {
            either!(
                self,
                server_task_send_set_conf,
                client_task_send_set_conf,
                on_sent,
                on_send_error,
                tasks
            )
        };
        l.check("configuring send tasks", r)?;
        // SAFETY: as above.
        let r = unsafe {
            either!(
                self,
                server_event_msg_recv_register,
                client_event_msg_recv_register,
                on_recv
            )
        };
        l.check("registering for messages", r)?;
        if let Object::Server(s) = self.obj {
            // SAFETY: as above.
            let r = unsafe { (l.server_event_connection_register)(s, on_connect, on_disconnect) };
            l.check("registering for connections", r)?;
        }
        let mut max = 0u32;
        // SAFETY: our object and an out-pointer.
        let r = unsafe {
            either!(
                self,
                server_get_max_msg_size,
                client_get_max_msg_size,
                &mut max
            )
        };
        l.check("reading the message size", r).map(|()| max)
    }

    /// Registers the state-change callback (callbacks.rs).
    pub(super) fn watch_state(&self) -> Result<(), Failure> {
        // SAFETY: our context, not started; the callback fits the signature DOCA expects.
        let r = unsafe { (self.l.ctx_set_state_changed_cb)(self.ctx, on_state) };
        self.l.check("registering for state changes", r)
    }

    /// Starts the context; the client may finish starting in the background (`IN_PROGRESS`).
    pub(super) fn start(&self) -> Result<(), Failure> {
        // SAFETY: our configured context.
        let r = unsafe { (self.l.ctx_start)(self.ctx) };
        match (r, self.obj) {
            (DocaError::SUCCESS, _) | (ffi::IN_PROGRESS, Object::Client(_)) => Ok(()),
            (e, _) => self.l.check("starting", e),
        }
    }

    /// Asks the context to stop; it reports IDLE through the state callback.
    pub(super) fn stop(&self) {
        // SAFETY: our context; stopping one that is not running only returns an error.
        let _ = unsafe { (self.l.ctx_stop)(self.ctx) };
    }

    /// The context's state (`ffi::state`; -1 if DOCA does not say).
    pub(super) fn state(&self) -> c_int {
        let mut s: c_int = -1;
        // SAFETY: our context and an out-pointer.
        let _ = unsafe { (self.l.ctx_get_state)(self.ctx, &mut s) };
        s
    }

    /// Runs one round of the engine's work; see [`Engine::progress`].
    pub(super) fn progress(&self) -> bool {
        self.engine.progress()
    }

    /// Host: the client's connection, once it is running.
    pub(super) fn connection(&self) -> Result<Connection, Failure> {
        let Object::Client(c) = self.obj else {
            return Err(Failure::NoOwnConnection);
        };
        let mut conn = ptr::null_mut();
        // SAFETY: our running client and an out-pointer.
        let r = unsafe { (self.l.client_get_connection)(c, &mut conn) };
        self.l
            .check("getting the connection", r)
            // SAFETY: the connection DOCA just handed out as the client's own.
            .map(|()| unsafe { Connection::from_doca(conn) })
    }

    /// DPU: disconnects a host (`AGAIN`: not now, ask again later).
    pub(super) fn disconnect(&self, conn: Connection) -> DocaError {
        match self.obj {
            // SAFETY: our server and a connection DOCA reported on it.
            Object::Server(s) => unsafe { (self.l.server_disconnect)(s, conn.raw()) },
            Object::Client(_) => DocaError::SUCCESS,
        }
    }

    /// Hands `msg` to DOCA for `conn`: allocates a send task and submits it. The buffer is
    /// kept until DOCA hands the task back ([`Context::complete`]).
    pub(super) fn send(&mut self, conn: Connection, msg: Vec<u8>) -> Result<(), Unsent> {
        let l = self.l;
        let (buf, len) = (msg.as_ptr().cast(), msg.len() as u32);
        let mut task = ptr::null_mut();
        // SAFETY: our running object, a connection DOCA reported on it, and a buffer that
        // stays where it is (in `in_flight`) until the task comes back.
        let r = unsafe {
            either!(
                self,
                server_task_send_alloc_init,
                client_task_send_alloc_init,
                conn.raw(),
                buf,
                len,
                &mut task
            )
        };
        if r == ffi::NO_MEMORY || r == DocaError::AGAIN {
            return Err(Unsent::Full(msg));
        }
        if r != DocaError::SUCCESS {
            return Err(Unsent::Failed(Failure::TaskAlloc(l.describe(r))));
        }
        // SAFETY: the task just allocated, ours until submitted.
        let t = unsafe { (l.task_send_as_task)(task) };
        // SAFETY: as above.
        let r = unsafe { (l.task_submit)(t) };
        if r != DocaError::SUCCESS {
            // SAFETY: a task DOCA did not take is still ours to free.
            unsafe { (l.task_free)(t) };
            return Err(Unsent::Failed(Failure::TaskSubmit(l.describe(r))));
        }
        self.in_flight.insert(task, (conn, msg));
        Ok(())
    }

    /// A send task came back: drops its buffer and frees it. Returns why it failed when it
    /// failed on `current` (a send that failed for a connection already let go of is no news).
    pub(super) fn complete(
        &mut self,
        sent: Sent,
        current: Option<Connection>,
    ) -> Option<Described> {
        let l = self.l;
        let conn = self.in_flight.remove(&sent.task()).map(|(conn, _)| conn);
        // SAFETY: DOCA handed the task back (see `Sent`), so it is ours.
        let t = unsafe { (l.task_send_as_task)(sent.task()) };
        let why = (!sent.ok() && conn.is_some() && conn == current).then(|| {
            // SAFETY: as above.
            l.describe(unsafe { (l.task_get_status)(t) })
        });
        // SAFETY: as above; freed once, since `sent` is consumed.
        unsafe { (l.task_free)(t) };
        why
    }

    /// Whether a send to `conn` is still in flight.
    pub(super) fn pending(&self, conn: Connection) -> bool {
        self.in_flight.values().any(|(c, _)| *c == conn)
    }

    /// DPU: starts the server again after it stopped by itself.
    ///
    /// # Safety
    /// The context is IDLE: stopping flushed every task through its callback, so none is still
    /// DOCA's and their buffers may go.
    pub(super) unsafe fn restart(&mut self) -> Result<(), Failure> {
        self.in_flight.clear();
        // SAFETY: our context, IDLE, configured as before.
        let r = unsafe { (self.l.ctx_start)(self.ctx) };
        self.l.check("restarting the server", r)
    }
}

impl Drop for Context<'_> {
    /// Destroys the server or client; the thread has stopped the context first (or it never
    /// started).
    fn drop(&mut self) {
        match self.obj {
            // SAFETY: made by `create`, destroyed only here, before the engine (see `Context`).
            Object::Server(s) => unsafe { (self.l.server_destroy)(s) },
            // SAFETY: as above.
            Object::Client(c) => unsafe { (self.l.client_destroy)(c) },
        };
    }
}
