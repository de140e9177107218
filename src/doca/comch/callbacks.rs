//! The Comch callbacks. They run inside `doca_pe_progress` on the Comch thread and only record
//! what happened; they never unwind into C.

use super::engine::{Connection, Sent};
use super::ffi::{self, Conn, Ctx, DocaData, TaskSend};
use std::cell::RefCell;
use std::ffi::c_int;

/// One thing a callback saw. Kept in the order the library reported them, so that a message
/// that arrived before its connection ended (an ERROR saying why, typically) is still delivered.
pub(super) enum Event {
    Recv(Connection, Vec<u8>),
    Done(Sent),
    Connected(Connection),
    Disconnected(Connection),
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
    // An empty message may come with no buffer at all; a slice must never be made from null.
    let data = if buf.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: the library passes a buffer of `len` bytes, valid during this callback only.
        unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec()
    };
    // SAFETY: DOCA passes a connection of the context this callback was registered on.
    let conn = unsafe { Connection::from_doca(conn) };
    record(Event::Recv(conn, data));
}
pub(super) unsafe extern "C" fn on_sent(task: *mut TaskSend, _: DocaData, _: DocaData) {
    // SAFETY: DOCA hands the task back, once, through this callback or `on_send_error`.
    record(Event::Done(unsafe { Sent::from_callback(task, true) }));
}
pub(super) unsafe extern "C" fn on_send_error(task: *mut TaskSend, _: DocaData, _: DocaData) {
    // SAFETY: as in `on_sent`.
    record(Event::Done(unsafe { Sent::from_callback(task, false) }));
}
pub(super) unsafe extern "C" fn on_connect(_: *mut ffi::EventConn, conn: *mut Conn, ok: u8) {
    if ok != 0 {
        // SAFETY: DOCA passes a connection of the server this callback was registered on.
        record(Event::Connected(unsafe { Connection::from_doca(conn) }));
    }
}
pub(super) unsafe extern "C" fn on_disconnect(_: *mut ffi::EventConn, conn: *mut Conn, _: u8) {
    // SAFETY: as in `on_connect`.
    record(Event::Disconnected(unsafe { Connection::from_doca(conn) }));
}
pub(super) unsafe extern "C" fn on_state(_: DocaData, _: *mut Ctx, prev: c_int, next: c_int) {
    record(Event::State(prev, next));
}
