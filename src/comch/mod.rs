//! The DOCA Comch backend (DOCA 2.7 and later; the only host-DPU channel API since 2.9).
//!
//! Comch has no event-triggered completions: someone must call `doca_pe_progress`. One
//! dedicated thread owns the progress engine, the context and every Comch call. It exchanges
//! whole messages with the async relay through queues under one mutex and wakes it through
//! eventfds the reactor watches. While traffic flows the thread keeps progressing; when idle it
//! sleeps on its own eventfd with a timeout that doubles from 10 µs to 5 ms, so an idle relay
//! costs about 200 wakeups a second.

pub mod ffi;

use crate::config::Role;
use crate::doca::ffi::{Dev, DevRep, DocaError};
use crate::doca::Device;
use async_io::Async;
use ffi::{state, ComchLib, Conn, Ctx, DocaData, TaskSend};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Send tasks asked for (NVIDIA's own users take 1024), capped by the device.
const SEND_TASKS: u32 = 1024;
/// Messages the relay may queue for the thread before its writer waits.
const OUTBOX_LIMIT: usize = 256;
const IDLE_MIN: Duration = Duration::from_micros(10);
const IDLE_MAX: Duration = Duration::from_millis(5);
/// Progress calls in one burst before the thread looks at its queues again.
const PROGRESS_BURST: usize = 64;

#[derive(Default)]
struct State {
    /// Message size in force, set once the context is configured.
    max_msg: u32,
    /// Relay to thread: messages to send on the current connection.
    outbox: VecDeque<Vec<u8>>,
    /// Thread to relay: messages received on the current connection.
    inbox: VecDeque<Vec<u8>>,
    /// Counts connections; a link belongs to one generation.
    generation: u64,
    connected: bool,
    /// The generation the relay has taken (DPU: accepted).
    taken: u64,
    /// The relay is done with this generation: disconnect it.
    release: Option<u64>,
    /// Set when the thread has ended, with why.
    closed: Option<String>,
    stop: bool,
}

struct Shared {
    st: Mutex<State>,
    wake_thread: OwnedFd,
    wake_reader: OwnedFd,
    wake_writer: OwnedFd,
    wake_accept: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
    )?)
}

fn signal(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

fn drain(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// Waits until `fd` (an eventfd the thread signals) is readable, then resets it.
async fn wait(fd: &Async<OwnedFd>) -> io::Result<()> {
    fd.readable().await?;
    drain(fd.get_ref());
    Ok(())
}

/// The device pointers handed to the thread. The [`Channel`] keeps the device open until the
/// thread has been joined.
struct RawDev(*mut Dev, *mut DevRep);
// SAFETY: the pointers are only used by the Comch thread, and the device outlives it.
unsafe impl Send for RawDev {}

/// A running Comch server (DPU) or client (host) and its thread.
pub struct Channel {
    shared: Arc<Shared>,
    reader: Async<OwnedFd>,
    writer: Async<OwnedFd>,
    accept: Async<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    _dev: Rc<Device>,
}

impl Channel {
    /// Starts the thread: a server named `name` on the DPU, a client connecting to it on the
    /// host. Waits until the context is configured and started.
    pub async fn start(
        dev: &Rc<Device>,
        lib: &Arc<ComchLib>,
        role: Role,
        name: &str,
    ) -> Result<Rc<Channel>, String> {
        let fds = || -> io::Result<_> { Ok((eventfd()?, eventfd()?, eventfd()?, eventfd()?)) };
        let (t, r, w, a) = fds().map_err(|e| format!("creating eventfds: {e}"))?;
        let dup = |fd: &OwnedFd| fd.try_clone().and_then(Async::new);
        let (reader, writer, accept) =
            (|| -> io::Result<_> { Ok((dup(&r)?, dup(&w)?, dup(&a)?)) })()
                .map_err(|e| format!("watching eventfds: {e}"))?;
        let shared = Arc::new(Shared {
            st: Mutex::new(State::default()),
            wake_thread: t,
            wake_reader: r,
            wake_writer: w,
            wake_accept: a,
        });
        let name = CString::new(name).map_err(|_| "bad service name")?;
        let raw = RawDev(dev.dev, dev.rep);
        let (lib2, shared2) = (lib.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("comch".into())
            .spawn(move || thread_main(&lib2, raw, role, &name, &shared2))
            .map_err(|e| format!("starting the Comch thread: {e}"))?;
        let ch = Rc::new(Channel {
            shared,
            reader,
            writer,
            accept,
            thread: Some(thread),
            _dev: dev.clone(),
        });
        loop {
            {
                let st = ch.shared.lock();
                if let Some(why) = &st.closed {
                    return Err(why.clone());
                }
                if st.max_msg != 0 {
                    break;
                }
            }
            wait(&ch.accept).await.map_err(|e| e.to_string())?;
        }
        Ok(ch)
    }

    /// Waits for the next connection: the host's on the DPU, the server's on the host.
    pub async fn accept(self: &Rc<Self>) -> Result<Link, String> {
        loop {
            {
                let mut st = self.shared.lock();
                if let Some(why) = &st.closed {
                    return Err(why.clone());
                }
                if st.connected && st.generation > st.taken {
                    st.taken = st.generation;
                    return Ok(Link {
                        ch: self.clone(),
                        generation: st.generation,
                        max_msg: st.max_msg,
                    });
                }
            }
            wait(&self.accept).await.map_err(|e| e.to_string())?;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        signal(&self.shared.wake_thread);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One Comch connection used as a channel transport.
pub struct Link {
    ch: Rc<Channel>,
    generation: u64,
    /// Largest message, header included.
    pub max_msg: u32,
}

impl Link {
    fn gone(&self, st: &State) -> Option<io::Error> {
        if st.generation != self.generation || !st.connected {
            let why = st
                .closed
                .clone()
                .unwrap_or_else(|| "the Comch connection closed".into());
            return Some(io::Error::new(io::ErrorKind::ConnectionReset, why));
        }
        None
    }

    /// Receives the next message.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut st = self.ch.shared.lock();
                if let Some(msg) = st.inbox.pop_front() {
                    if msg.len() > buf.len() {
                        return Err(io::Error::other("a Comch message larger than agreed"));
                    }
                    buf[..msg.len()].copy_from_slice(&msg);
                    return Ok(msg.len());
                }
                if let Some(e) = self.gone(&st) {
                    return Err(e);
                }
            }
            wait(&self.ch.reader).await?;
        }
    }

    /// Sends `buf`, which holds whole frames, as messages of at most `max_msg` bytes; waits
    /// while the thread's queue is full.
    pub async fn write_frames(&self, buf: &[u8]) -> io::Result<()> {
        for msg in crate::protocol::pack_frames(buf, self.max_msg as usize) {
            let msg = msg?;
            loop {
                {
                    let mut st = self.ch.shared.lock();
                    if let Some(e) = self.gone(&st) {
                        return Err(e);
                    }
                    if st.outbox.len() < OUTBOX_LIMIT {
                        st.outbox.push_back(msg.to_vec());
                        break;
                    }
                }
                signal(&self.ch.shared.wake_thread);
                wait(&self.ch.writer).await?;
            }
            signal(&self.ch.shared.wake_thread);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.ch.shared.lock().release = Some(self.generation);
        signal(&self.ch.shared.wake_thread);
    }
}

/// What the callbacks saw during one burst of progress calls.
#[derive(Default)]
struct Events {
    recv: Vec<(*mut Conn, Vec<u8>)>,
    done: Vec<(*mut TaskSend, bool)>,
    connected: Vec<*mut Conn>,
    disconnected: Vec<*mut Conn>,
    states: Vec<(c_int, c_int)>,
}

impl Events {
    fn is_empty(&self) -> bool {
        self.recv.is_empty()
            && self.done.is_empty()
            && self.connected.is_empty()
            && self.disconnected.is_empty()
            && self.states.is_empty()
    }
}

thread_local! {
    static EVENTS: RefCell<Events> = RefCell::new(Events::default());
}

/// Runs `f` on the thread's event list; a panic must never unwind into C.
fn record(f: impl FnOnce(&mut Events)) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        EVENTS.with(|e| f(&mut e.borrow_mut()))
    }));
}

unsafe extern "C" fn on_recv(_: *mut ffi::EventMsgRecv, buf: *mut u8, len: u32, conn: *mut Conn) {
    // SAFETY: the library passes a buffer of `len` bytes, valid during this callback only.
    let data = unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec();
    record(|e| e.recv.push((conn, data)));
}
unsafe extern "C" fn on_sent(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(|e| e.done.push((task, true)));
}
unsafe extern "C" fn on_send_error(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(|e| e.done.push((task, false)));
}
unsafe extern "C" fn on_connect(_: *mut ffi::EventConn, conn: *mut Conn, ok: u8) {
    if ok != 0 {
        record(|e| e.connected.push(conn));
    }
}
unsafe extern "C" fn on_disconnect(_: *mut ffi::EventConn, conn: *mut Conn, _: u8) {
    record(|e| e.disconnected.push(conn));
}
unsafe extern "C" fn on_state(_: DocaData, _: *mut Ctx, prev: c_int, next: c_int) {
    record(|e| e.states.push((prev, next)));
}

fn thread_main(lib: &ComchLib, raw: RawDev, role: Role, name: &CString, shared: &Shared) {
    let mut w = Worker::new(lib, role, shared);
    let why = w
        .setup(raw, name)
        .and_then(|()| w.run())
        .err()
        .unwrap_or_else(|| "stopped".into());
    w.teardown();
    let mut st = shared.lock();
    st.closed.get_or_insert(why);
    st.connected = false;
    drop(st);
    for fd in [
        &shared.wake_reader,
        &shared.wake_writer,
        &shared.wake_accept,
    ] {
        signal(fd);
    }
}

/// The Comch thread's state: every DOCA object lives here and is used only here.
struct Worker<'a> {
    lib: &'a ComchLib,
    shared: &'a Shared,
    role: Role,
    pe: *mut ffi::Pe,
    server: *mut ffi::Server,
    client: *mut ffi::Client,
    ctx: *mut Ctx,
    current: Option<*mut Conn>,
    in_flight: HashMap<*mut TaskSend, Vec<u8>>,
    refuse: Vec<*mut Conn>,
}

fn chk(lib: &ComchLib, what: &str, r: DocaError) -> Result<(), String> {
    r.ok()
        .map_err(|e| format!("Comch: {what}: {}", lib.describe(e)))
}

impl<'a> Worker<'a> {
    fn check(&self, what: &str, r: DocaError) -> Result<(), String> {
        chk(self.lib, what, r)
    }

    fn new(lib: &'a ComchLib, role: Role, shared: &'a Shared) -> Self {
        Worker {
            lib,
            shared,
            role,
            pe: ptr::null_mut(),
            server: ptr::null_mut(),
            client: ptr::null_mut(),
            ctx: ptr::null_mut(),
            current: None,
            in_flight: HashMap::new(),
            refuse: Vec::new(),
        }
    }

    /// Creates the engine and the server or client, configures it and starts it.
    fn setup(&mut self, raw: RawDev, name: &CString) -> Result<(), String> {
        let (l, role, shared) = (self.lib, self.role, self.shared);
        let w = self;
        // SAFETY: every call gets valid out-pointers and objects created just before; the
        // device pointers stay valid for the thread's life (see `RawDev`).
        unsafe {
            chk(l, "creating the progress engine", (l.pe_create)(&mut w.pe))?;
            let info = (l.dev_as_devinfo)(raw.0);
            let mut cap = 0u32;
            chk(
                l,
                "reading the message size limit",
                (l.cap_get_max_msg_size)(info, &mut cap),
            )?;
            let mut tasks = SEND_TASKS;
            if (l.cap_get_max_send_tasks)(info, &mut tasks) != DocaError::SUCCESS || tasks == 0 {
                tasks = SEND_TASKS;
            }
            let tasks = tasks.min(SEND_TASKS);
            let mut max_msg = 0u32;
            match role {
                Role::Dpu => {
                    chk(
                        l,
                        "creating the server",
                        (l.server_create)(raw.0, raw.1, name.as_ptr(), &mut w.server),
                    )?;
                    w.ctx = (l.server_as_ctx)(w.server);
                    chk(
                        l,
                        "setting the message size",
                        (l.server_set_max_msg_size)(w.server, cap),
                    )?;
                    chk(
                        l,
                        "connecting the progress engine",
                        (l.pe_connect_ctx)(w.pe, w.ctx),
                    )?;
                    chk(
                        l,
                        "configuring send tasks",
                        (l.server_task_send_set_conf)(w.server, on_sent, on_send_error, tasks),
                    )?;
                    chk(
                        l,
                        "registering for messages",
                        (l.server_event_msg_recv_register)(w.server, on_recv),
                    )?;
                    chk(
                        l,
                        "registering for connections",
                        (l.server_event_connection_register)(w.server, on_connect, on_disconnect),
                    )?;
                    chk(
                        l,
                        "reading the message size",
                        (l.server_get_max_msg_size)(w.server, &mut max_msg),
                    )?;
                }
                Role::Host => {
                    chk(
                        l,
                        "creating the client",
                        (l.client_create)(raw.0, name.as_ptr(), &mut w.client),
                    )?;
                    w.ctx = (l.client_as_ctx)(w.client);
                    chk(
                        l,
                        "setting the message size",
                        (l.client_set_max_msg_size)(w.client, cap),
                    )?;
                    chk(
                        l,
                        "connecting the progress engine",
                        (l.pe_connect_ctx)(w.pe, w.ctx),
                    )?;
                    chk(
                        l,
                        "configuring send tasks",
                        (l.client_task_send_set_conf)(w.client, on_sent, on_send_error, tasks),
                    )?;
                    chk(
                        l,
                        "registering for messages",
                        (l.client_event_msg_recv_register)(w.client, on_recv),
                    )?;
                    chk(
                        l,
                        "reading the message size",
                        (l.client_get_max_msg_size)(w.client, &mut max_msg),
                    )?;
                }
            }
            chk(
                l,
                "registering for state changes",
                (l.ctx_set_state_changed_cb)(w.ctx, on_state),
            )?;
            match ((l.ctx_start)(w.ctx), role) {
                (DocaError::SUCCESS, _) | (ffi::IN_PROGRESS, Role::Host) => {}
                (e, _) => chk(l, "starting", e)?,
            }
            shared.lock().max_msg = max_msg;
        }
        signal(&shared.wake_accept);
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        let mut idle = Duration::ZERO;
        loop {
            let mut active = false;
            for _ in 0..PROGRESS_BURST {
                // SAFETY: the engine is ours and no callback calls progress.
                if unsafe { (self.lib.pe_progress)(self.pe) } == 0 {
                    break;
                }
                active = true;
            }
            active |= self.handle_events()?;
            if self.handle_commands()? {
                return Ok(());
            }
            active |= self.submit()?;
            if active {
                idle = Duration::ZERO;
                continue;
            }
            idle = (idle * 2).clamp(IDLE_MIN, IDLE_MAX);
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: idle.as_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.shared.wake_thread, PollFlags::IN)];
            if rustix::event::poll(&mut fds, Some(&ts)).is_ok_and(|n| n > 0) {
                drain(&self.shared.wake_thread);
            }
        }
    }

    /// Acts on what the callbacks recorded. Returns whether anything happened.
    fn handle_events(&mut self) -> Result<bool, String> {
        let ev = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        let l = self.lib;
        let mut st = self.shared.lock();
        let any = !ev.is_empty();
        let mut failed = None;
        for (task, ok) in ev.done {
            // SAFETY: the task came back to us through a callback, so it is ours to free.
            unsafe {
                let t = (l.task_send_as_task)(task);
                if !ok {
                    failed = Some(l.describe((l.task_get_status)(t)));
                }
                (l.task_free)(t);
            }
            self.in_flight.remove(&task);
        }
        for conn in ev.connected {
            if self.current.is_none() {
                self.current = Some(conn);
                self.connect(&mut st);
            } else {
                log::warn!("Comch: refusing a second host connection; one host at a time");
                self.refuse.push(conn);
            }
        }
        for conn in ev.disconnected {
            if self.current == Some(conn) {
                self.current = None;
                self.disconnect(&mut st, "the host disconnected");
            }
        }
        for (prev, next) in ev.states {
            match (self.role, next) {
                (Role::Host, state::RUNNING) => {
                    let mut conn = ptr::null_mut();
                    // SAFETY: the client is running, so it has its connection.
                    let r = unsafe { (l.client_get_connection)(self.client, &mut conn) };
                    drop(st);
                    self.check("getting the connection", r)?;
                    st = self.shared.lock();
                    self.current = Some(conn);
                    self.connect(&mut st);
                }
                (Role::Host, state::IDLE) if prev == state::STARTING => {
                    return Err("no Comch server answered (is the DPU side running?)".into());
                }
                (_, state::IDLE) => return Err("the Comch context stopped".into()),
                _ => {}
            }
        }
        let mut got = false;
        for (conn, data) in ev.recv {
            if self.current == Some(conn) {
                st.inbox.push_back(data);
                got = true;
            }
        }
        if got {
            signal(&self.shared.wake_reader);
        }
        if let Some(why) = failed {
            if self.role == Role::Host {
                return Err(format!("a Comch send failed: {why}"));
            }
            if let Some(conn) = self.current.take() {
                self.refuse.push(conn);
                self.disconnect(&mut st, &format!("a Comch send failed: {why}"));
            }
        }
        Ok(any)
    }

    fn connect(&self, st: &mut State) {
        st.generation += 1;
        st.connected = true;
        st.inbox.clear();
        st.outbox.clear();
        signal(&self.shared.wake_accept);
    }

    fn disconnect(&self, st: &mut State, why: &str) {
        log::debug!("Comch: {why}");
        st.connected = false;
        st.inbox.clear();
        st.outbox.clear();
        for fd in [
            &self.shared.wake_reader,
            &self.shared.wake_writer,
            &self.shared.wake_accept,
        ] {
            signal(fd);
        }
    }

    /// Stop requests and released connections. Returns true when the thread should end.
    fn handle_commands(&mut self) -> Result<bool, String> {
        let mut st = self.shared.lock();
        if st.stop {
            return Ok(true);
        }
        if let Some(generation) = st.release.take() {
            if generation == st.generation && st.connected {
                if self.role == Role::Host {
                    return Ok(true);
                }
                if let Some(conn) = self.current.take() {
                    self.refuse.push(conn);
                }
                self.disconnect(&mut st, "the relay ended the host session");
            }
        }
        drop(st);
        // SAFETY: the server and the connections are ours; AGAIN means "try again later".
        self.refuse.retain(
            |&conn| unsafe { (self.lib.server_disconnect)(self.server, conn) } == DocaError::AGAIN,
        );
        Ok(false)
    }

    /// Hands queued messages to DOCA while send tasks are free. Returns whether any went out.
    fn submit(&mut self) -> Result<bool, String> {
        let Some(conn) = self.current else {
            return Ok(false);
        };
        let l = self.lib;
        let mut sent = false;
        loop {
            let Some(msg) = self.shared.lock().outbox.pop_front() else {
                break;
            };
            let mut task = ptr::null_mut();
            // SAFETY: the buffer lives in `in_flight` until the task's callback returns it.
            let r = unsafe {
                match self.role {
                    Role::Dpu => (l.server_task_send_alloc_init)(
                        self.server,
                        conn,
                        msg.as_ptr().cast(),
                        msg.len() as u32,
                        &mut task,
                    ),
                    Role::Host => (l.client_task_send_alloc_init)(
                        self.client,
                        conn,
                        msg.as_ptr().cast(),
                        msg.len() as u32,
                        &mut task,
                    ),
                }
            };
            if r == ffi::NO_MEMORY || r == DocaError::AGAIN {
                // Every task is in flight: the send queue is full. Keep the message first in
                // line and let progress complete some.
                self.shared.lock().outbox.push_front(msg);
                break;
            }
            self.check("allocating a send task", r)?;
            // SAFETY: a freshly allocated task; on failure it is still ours to free.
            let r = unsafe { (l.task_submit)((l.task_send_as_task)(task)) };
            if r != DocaError::SUCCESS {
                // SAFETY: as above.
                unsafe { (l.task_free)((l.task_send_as_task)(task)) };
                self.check("submitting a send task", r)?;
            }
            self.in_flight.insert(task, msg);
            sent = true;
        }
        if sent {
            // The queue shrank: a writer waiting for room may go on.
            signal(&self.shared.wake_writer);
        }
        Ok(sent)
    }

    /// Stops the context, lets in-flight tasks drain, and destroys everything in the
    /// documented order.
    fn teardown(&mut self) {
        let l = self.lib;
        // SAFETY: our own objects, each destroyed once, after the context reached IDLE.
        unsafe {
            if !self.ctx.is_null() {
                let _ = (l.ctx_stop)(self.ctx);
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    (l.pe_progress)(self.pe);
                    let _ = self.handle_events();
                    let mut s: c_int = -1;
                    let _ = (l.ctx_get_state)(self.ctx, &mut s);
                    if s == state::IDLE || Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            if !self.server.is_null() {
                (l.server_destroy)(self.server);
            }
            if !self.client.is_null() {
                (l.client_destroy)(self.client);
            }
            if !self.pe.is_null() {
                (l.pe_destroy)(self.pe);
            }
        }
    }
}
