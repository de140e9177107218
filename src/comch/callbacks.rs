//! The Comch callbacks. They run inside `doca_pe_progress` on the Comch thread and only record
//! what happened; they never unwind into C.

use super::ffi::{self, Conn, Ctx, DocaData, TaskSend};
use std::cell::RefCell;
use std::ffi::c_int;

/// What the callbacks saw during one burst of progress calls.
#[derive(Default)]
pub(super) struct Events {
    pub(super) recv: Vec<(*mut Conn, Vec<u8>)>,
    pub(super) done: Vec<(*mut TaskSend, bool)>,
    pub(super) connected: Vec<*mut Conn>,
    pub(super) disconnected: Vec<*mut Conn>,
    pub(super) states: Vec<(c_int, c_int)>,
}

impl Events {
    pub(super) fn is_empty(&self) -> bool {
        self.recv.is_empty()
            && self.done.is_empty()
            && self.connected.is_empty()
            && self.disconnected.is_empty()
            && self.states.is_empty()
    }
}

thread_local! {
    pub(super) static EVENTS: RefCell<Events> = RefCell::new(Events::default());
}

/// Runs `f` on the thread's event list; a panic must never unwind into C.
fn record(f: impl FnOnce(&mut Events)) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        EVENTS.with(|e| f(&mut e.borrow_mut()))
    }));
}

pub(super) unsafe extern "C" fn on_recv(
    _: *mut ffi::EventMsgRecv,
    buf: *mut u8,
    len: u32,
    conn: *mut Conn,
) {
    // SAFETY: the library passes a buffer of `len` bytes, valid during this callback only.
    let data = unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec();
    record(|e| e.recv.push((conn, data)));
}
pub(super) unsafe extern "C" fn on_sent(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(|e| e.done.push((task, true)));
}
pub(super) unsafe extern "C" fn on_send_error(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(|e| e.done.push((task, false)));
}
pub(super) unsafe extern "C" fn on_connect(_: *mut ffi::EventConn, conn: *mut Conn, ok: u8) {
    if ok != 0 {
        record(|e| e.connected.push(conn));
    }
}
pub(super) unsafe extern "C" fn on_disconnect(_: *mut ffi::EventConn, conn: *mut Conn, _: u8) {
    record(|e| e.disconnected.push(conn));
}
pub(super) unsafe extern "C" fn on_state(_: DocaData, _: *mut Ctx, prev: c_int, next: c_int) {
    record(|e| e.states.push((prev, next)));
}
