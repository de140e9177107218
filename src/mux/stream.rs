//! One relayed connection on a session: its lifecycle, its flow control, the bytes waiting for
//! its local socket, and the figures the statistics show.

use super::flow::Flow;
use super::lifecycle::Lifecycle;
use super::session::OpenFrame;
use crate::sys::reactor::Io;
use crate::sys::unix_socket::UnixStream;
use std::cell::RefCell;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// One relayed connection's state on a session.
pub struct Stream {
    /// The stream id on the wire.
    pub id: u32,
    pub(super) st: RefCell<StreamState>,
}

/// A stream's figures at one moment, for the SIGUSR1 dump and `GET /streams`.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    /// Time since the stream opened.
    pub age: Duration,
    /// Bytes read from the local socket and sent on the channel.
    pub sent: u64,
    /// Bytes received on the channel and written to the local socket.
    pub received: u64,
    /// Bytes this side may still send before the peer grants more.
    pub credit: u32,
    /// Bytes received and waiting for the local socket to take them.
    pub queued: usize,
}

impl Stream {
    pub(super) fn new(id: u32, flow: Flow, socket: Option<Rc<Io<UnixStream>>>) -> Rc<Stream> {
        Rc::new(Stream {
            id,
            st: RefCell::new(StreamState {
                life: Lifecycle::default(),
                flow,
                inbound: Inbound::default(),
                open: None,
                waker: None,
                socket,
                opened: Instant::now(),
                sent: 0,
                received: 0,
            }),
        })
    }

    /// Whether the stream was aborted (RESET either way, the channel lost, a shutdown).
    // The DPU role asks, and Windows has no DPU role.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn is_reset(&self) -> bool {
        self.st.borrow().life.reset_reason().is_some()
    }

    /// Its figures now.
    pub fn figures(&self) -> Figures {
        let st = self.st.borrow();
        Figures {
            age: st.opened.elapsed(),
            sent: st.sent,
            received: st.received,
            credit: st.flow.credit(),
            queued: st.inbound.len(),
        }
    }
}

/// What a stream's reader task (receiving) and pump task (both ways) share.
pub(super) struct StreamState {
    /// Where each direction stands, and whether the stream was aborted.
    pub(super) life: Lifecycle,
    /// Send credit, and what the peer may still send.
    pub(super) flow: Flow,
    /// Received bytes the local socket did not take at once.
    pub(super) inbound: Inbound,
    /// The DATA frame this stream is still growing at the end of the send buffer, if any.
    pub(super) open: Option<OpenFrame>,
    /// The pump task, while it waits.
    waker: Option<Waker>,
    /// The local socket, once connected, so that the reader task can write to it directly.
    socket: Option<Rc<Io<UnixStream>>>,
    opened: Instant,
    sent: u64,
    received: u64,
}

impl StreamState {
    /// Wakes the pump task, if it waits.
    pub(super) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The pump task waits: `waker` is woken by the next change.
    pub(super) fn set_waker(&mut self, waker: &Waker) {
        self.waker = Some(waker.clone());
    }

    /// The pump task took the connected socket over.
    pub(super) fn attach(&mut self, socket: Rc<Io<UnixStream>>) {
        self.socket = Some(socket);
    }

    /// The pump task is done: the socket closes when it drops it, and whatever was still
    /// queued for it goes.
    pub(super) fn detach(&mut self) {
        self.socket = None;
        self.inbound.discard();
    }

    /// The socket, if it is connected and took the last write whole: the reader task then
    /// writes to it directly, without copying into `inbound`.
    pub(super) fn writable_socket(&self) -> Option<Rc<Io<UnixStream>>> {
        self.socket.clone().filter(|s| s.is_writable())
    }

    /// `n` bytes read from the socket went out as DATA.
    pub(super) fn count_sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// `n` received bytes were written to the socket.
    pub(super) fn count_received(&mut self, n: usize) {
        self.received += n as u64;
    }
}

/// Received bytes waiting for the local socket, bounded by the window. Empty, it holds no
/// memory: an idle stream costs no buffer.
#[derive(Default)]
pub(super) struct Inbound {
    buf: Vec<u8>,
    /// Where the bytes not yet written begin.
    pos: usize,
}

impl Inbound {
    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Bytes waiting.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes waiting, first to write first.
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The socket took `n` of [`Inbound::pending`].
    pub(super) fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Queues what the socket did not take of `parts`, whose first `written` bytes it took.
    pub(super) fn append(&mut self, parts: &[&[u8]], mut written: usize) {
        if self.is_empty() {
            // Keeps the memory of a stream that keeps queuing.
            self.buf.clear();
            self.pos = 0;
        }
        for part in parts {
            let skip = written.min(part.len());
            written -= skip;
            self.buf.extend_from_slice(&part[skip..]);
        }
    }

    /// All written: the memory goes back.
    pub(super) fn release(&mut self) {
        if self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
        self.pos = 0;
    }

    /// Drops what waits: the socket takes no more.
    pub(super) fn discard(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_queues_what_the_socket_did_not_take() {
        let mut q = Inbound::default();
        assert!(q.is_empty());
        q.append(&[b"hello", b" world"], 3);
        assert_eq!(q.pending(), b"lo world");
        assert_eq!(q.len(), 8);
        q.advance(2);
        assert_eq!(q.pending(), b" world");
        q.append(&[b"!"], 0);
        assert_eq!(q.pending(), b" world!");
        q.advance(7);
        assert!(q.is_empty());
        assert!(q.buf.capacity() > 0);
        q.release();
        assert_eq!((q.buf.capacity(), q.pos), (0, 0));
    }

    #[test]
    fn inbound_reuses_its_memory_once_written() {
        let mut q = Inbound::default();
        q.append(&[b"abcdef"], 0);
        q.advance(6);
        q.append(&[b"gh"], 1);
        assert_eq!(q.pending(), b"h");
        assert_eq!(q.pos, 0, "restarted at the front");
    }

    #[test]
    fn a_write_that_took_whole_parts_skips_them() {
        let mut q = Inbound::default();
        q.append(&[b"ab", b"cd", b"ef"], 5);
        assert_eq!(q.pending(), b"f");
    }

    #[test]
    fn discarding_drops_the_memory() {
        let mut q = Inbound::default();
        q.append(&[b"abc"], 0);
        q.discard();
        assert!(q.is_empty());
        assert_eq!(q.buf.capacity(), 0);
    }
}
