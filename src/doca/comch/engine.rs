//! The Comch progress engine, and what DOCA hands out through the callbacks that run inside
//! it: a [`Connection`], a send task back from DOCA ([`Sent`]).

use super::ffi::{self, ComchLib, Conn, Ctx, TaskSend};
use crate::doca::error::Failure;
use crate::doca::ffi::DocaError;
use std::ptr;

/// The progress engine. Every callback of the thread's context runs inside [`Engine::progress`].
// SAFETY: `pe` comes from `pe_create` and is destroyed only in `Drop`, once, after the context
// connected to it (a `Context` borrows its engine, so it is dropped first). The raw pointer
// keeps the type on the Comch thread (neither `Send` nor `Sync`), the only thread that calls
// DOCA on it. The callbacks that run inside `progress` (callbacks.rs) only record what happened
// and never call back into the engine.
pub(super) struct Engine<'a> {
    l: &'a ComchLib,
    pe: *mut ffi::Pe,
}

impl<'a> Engine<'a> {
    pub(super) fn create(l: &'a ComchLib) -> Result<Self, Failure> {
        let mut pe = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let r = unsafe { (l.pe_create)(&mut pe) };
        l.check("creating the progress engine", r)?;
        Ok(Engine { l, pe })
    }

    /// The library the engine came from.
    pub(super) fn lib(&self) -> &'a ComchLib {
        self.l
    }

    /// Connects a context to the engine, so that its callbacks run inside `progress`.
    ///
    /// # Safety
    /// `ctx` is a live context of this thread, connected once, and destroyed before the engine
    /// (DOCA's order).
    pub(super) unsafe fn connect(&self, ctx: *mut Ctx) -> DocaError {
        // SAFETY: our engine; `ctx` as the caller promises.
        unsafe { (self.l.pe_connect_ctx)(self.pe, ctx) }
    }

    /// Runs one round of DOCA's work (the callbacks included). Returns whether anything
    /// happened.
    pub(super) fn progress(&self) -> bool {
        // SAFETY: our engine, and not from inside one of its callbacks (see `Engine`).
        unsafe { (self.l.pe_progress)(self.pe) != 0 }
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        // SAFETY: created by `create`, destroyed only here, after its context (see `Engine`).
        unsafe { (self.l.pe_destroy)(self.pe) };
    }
}

/// A connection DOCA reported on the thread's context: a host's on the DPU, the service's on
/// the host. Compared by identity; passed back to DOCA only by `Context`'s methods.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Connection(*mut Conn);

impl Connection {
    /// # Safety
    /// `conn` is a connection DOCA handed out on this thread's context: to a callback, or as
    /// the client's own.
    pub(super) unsafe fn from_doca(conn: *mut Conn) -> Self {
        Connection(conn)
    }

    /// The pointer, for DOCA's calls.
    pub(super) fn raw(self) -> *mut Conn {
        self.0
    }
}

/// A send task DOCA handed back through its completion (`ok`) or error callback: ours again,
/// freed by `Context::complete`, which consumes it.
pub(super) struct Sent {
    task: *mut TaskSend,
    ok: bool,
}

impl Sent {
    /// # Safety
    /// `task` is a send task of this thread's context that DOCA just handed back through
    /// `on_sent` or `on_send_error`; DOCA does so once per task.
    pub(super) unsafe fn from_callback(task: *mut TaskSend, ok: bool) -> Self {
        Sent { task, ok }
    }

    /// The task, for DOCA's calls and to find its buffer.
    pub(super) fn task(&self) -> *mut TaskSend {
        self.task
    }

    /// Whether the send succeeded.
    pub(super) fn ok(&self) -> bool {
        self.ok
    }
}
