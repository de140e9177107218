//! The Comch callbacks. They run inside `doca_pe_progress` on the Comch thread and only record
//! what happened; they never unwind into C.

use super::ffi::{self, Conn, Ctx, DocaData, TaskSend};
use std::cell::RefCell;
use std::ffi::c_int;

/// One thing a callback saw. Kept in the order the library reported them, so that a message
/// that arrived before its connection ended (an ERROR saying why, typically) is still delivered.
pub(super) enum Event {
    Recv(*mut Conn, Vec<u8>),
    Done(*mut TaskSend, bool),
    Connected(*mut Conn),
    Disconnected(*mut Conn),
    State(c_int, c_int),
}

thread_local! {
    pub(super) static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Appends to the thread's event list; a panic must never unwind into C.
fn record(ev: Event) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        EVENTS.with(|e| e.borrow_mut().push(ev))
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
    record(Event::Recv(conn, data));
}
pub(super) unsafe extern "C" fn on_sent(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(Event::Done(task, true));
}
pub(super) unsafe extern "C" fn on_send_error(task: *mut TaskSend, _: DocaData, _: DocaData) {
    record(Event::Done(task, false));
}
pub(super) unsafe extern "C" fn on_connect(_: *mut ffi::EventConn, conn: *mut Conn, ok: u8) {
    if ok != 0 {
        record(Event::Connected(conn));
    }
}
pub(super) unsafe extern "C" fn on_disconnect(_: *mut ffi::EventConn, conn: *mut Conn, _: u8) {
    record(Event::Disconnected(conn));
}
pub(super) unsafe extern "C" fn on_state(_: DocaData, _: *mut Ctx, prev: c_int, next: c_int) {
    record(Event::State(prev, next));
}
