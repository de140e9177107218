//! A channel session: its streams, the send buffer every task appends frames to, and what the
//! shutdown and the statistics ask of it. The session's own tasks are in `io.rs`, the handling
//! of received frames in `receive.rs`; stream tasks ([`crate::mux::pump`]) reach the session
//! only through the methods here.

mod end;
mod io;
mod outbuf;
mod receive;

pub use end::EndReason;
pub(crate) use outbuf::{DataSlot, OpenFrame};

use super::flow::Flow;
use super::stream::{Stream, StreamState};
use super::{Stats, OUT_HIGH};
use crate::sys::reactor::Io;
use crate::sys::unix_socket::UnixStream;
use crate::wire::{Frame, ResetReason};
use event_listener::Event;
use outbuf::OutBuf;
use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Instant;

/// A channel session shared by its reader, writer and stream tasks.
pub struct Session {
    inner: RefCell<Inner>,
    /// Largest DATA payload to send.
    max_data: usize,
    /// Initial send credit of a stream.
    peer_window: u32,
    /// Receive window this side grants per stream.
    window: u32,
    /// Most streams open at once; a reload may change it ([`Session::set_max_streams`]).
    max_streams: Cell<usize>,
    /// Only the DPU side accepts OPEN; on the host it is a protocol error.
    accept_opens: bool,
    pub(crate) stats: Rc<Stats>,
    last_rx: Cell<Instant>,
    last_tx: Cell<Instant>,
    /// Notified by [`Session::kill`], so that a writer blocked on a full channel stops at once.
    ended: Event,
    /// Notified whenever a stream leaves the session, the writer hands a batch to the channel,
    /// a PONG arrives, or the session ends: what the shutdown (the drain, GOAWAY's flush) and
    /// the takeover probe wait on.
    pub(crate) progress: Event,
    /// The peer's GOAWAY reason, once it said it is shutting down.
    goaway: RefCell<Option<String>>,
    /// This side sent GOAWAY: the channel closing next is expected.
    going_away: Cell<bool>,
}

struct Inner {
    streams: HashMap<u32, Rc<Stream>>,
    out: OutBuf,
    writer: Option<Waker>,
    /// The writer is handing a batch to the channel.
    writing: bool,
    /// Tasks waiting for `out` to drain (stream tasks above [`OUT_HIGH`], a paused reader).
    out_waiters: Vec<Waker>,
    dead: bool,
    /// Shutting down: local sockets are no longer read.
    draining: bool,
    /// Shutting down gracefully: no new streams, the open ones go on until they end.
    closing: bool,
    next_id: u32,
}

impl Session {
    /// A session whose handshake settled `max_data` and `peer_window`.
    pub fn new(
        max_data: usize,
        peer_window: u32,
        window: u32,
        max_streams: u32,
        accept_opens: bool,
        stats: Rc<Stats>,
    ) -> Rc<Self> {
        let session = Rc::new(Session {
            inner: RefCell::new(Inner {
                streams: HashMap::new(),
                out: OutBuf::with_capacity(64 * 1024),
                writer: None,
                writing: false,
                out_waiters: Vec::new(),
                dead: false,
                draining: false,
                closing: false,
                next_id: 1,
            }),
            max_data,
            peer_window,
            window,
            max_streams: Cell::new(max_streams as usize),
            accept_opens,
            last_rx: Cell::new(Instant::now()),
            last_tx: Cell::new(Instant::now()),
            ended: Event::new(),
            progress: Event::new(),
            goaway: RefCell::new(None),
            going_away: Cell::new(false),
            stats: stats.clone(),
        });
        let mut all = stats.sessions.borrow_mut();
        all.retain(|s| s.strong_count() > 0);
        all.push(Rc::downgrade(&session));
        drop(all);
        session
    }

    /// Changes the stream limit of a live session (a reload of `max-clients`): streams over a
    /// lowered limit stay; new ones are refused until the count is under it.
    pub fn set_max_streams(&self, n: u32) {
        self.max_streams.set(n as usize);
    }

    /// Whether the session has ended.
    pub fn is_dead(&self) -> bool {
        self.inner.borrow().dead
    }

    /// Number of streams open on this session.
    pub fn stream_count(&self) -> usize {
        self.inner.borrow().streams.len()
    }

    /// Queues a control frame for the writer.
    pub(crate) fn queue(&self, frame: Frame<'_>) {
        let mut inner = self.inner.borrow_mut();
        inner.out.push(frame);
        inner.wake_writer();
    }

    /// Host side: opens a stream for a new client. `None` when the session is gone.
    pub fn open_stream(&self, socket: Rc<Io<UnixStream>>) -> Option<Rc<Stream>> {
        let mut inner = self.inner.borrow_mut();
        if inner.dead || inner.draining || inner.closing {
            return None;
        }
        let mut id = inner.next_id;
        while id == 0 || inner.streams.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        inner.next_id = id.wrapping_add(1);
        let stream = self.new_stream(id, Some(socket));
        inner.streams.insert(id, stream.clone());
        inner.out.push(Frame::Open(id));
        inner.wake_writer();
        Some(stream)
    }

    fn new_stream(&self, id: u32, socket: Option<Rc<Io<UnixStream>>>) -> Rc<Stream> {
        Stream::new(id, Flow::new(self.peer_window, self.window), socket)
    }

    /// Forgets a finished stream, unless its id already belongs to a newer stream; frames that
    /// still arrive for it are dropped.
    pub fn forget(&self, stream: &Stream) {
        let mut inner = self.inner.borrow_mut();
        if inner.holds(stream) {
            inner.streams.remove(&stream.id);
            self.progress.notify(usize::MAX);
        }
    }

    /// Aborts a stream from this side (the server application cannot be reached): tells the
    /// peer and forgets it.
    // The DPU role calls it, and Windows has no DPU role.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn abort(&self, stream: &Stream, why: ResetReason) {
        self.reset_stream(stream, &mut stream.st.borrow_mut(), why);
    }

    /// [`Session::abort`] for a stream whose state the caller holds.
    pub(in crate::mux) fn reset_stream(
        &self,
        stream: &Stream,
        st: &mut StreamState,
        why: ResetReason,
    ) {
        st.life.reset(why);
        st.wake();
        let known = self.inner.borrow().holds(stream);
        if known {
            let mut inner = self.inner.borrow_mut();
            inner.streams.remove(&stream.id);
            self.progress.notify(usize::MAX);
            if !inner.dead {
                inner.out.push(Frame::Reset(stream.id, why));
                inner.wake_writer();
            }
        }
    }

    /// The local socket no longer takes bytes: drop what is queued for it and ask the peer to
    /// stop sending. The other direction goes on.
    pub(in crate::mux) fn stop_writing(&self, id: u32, st: &mut StreamState) {
        let Some(send_stop) = st.life.on_write_failed() else {
            return;
        };
        log::debug!("stream {id}: the local socket takes no more bytes; asking the peer to stop");
        st.inbound.discard();
        if send_stop {
            self.queue(Frame::Stop(id));
        }
        st.wake();
    }

    /// Ends the session: every stream is reset and every task waiting on it wakes up.
    /// Returns how many streams were open.
    // The DPU role calls it, and Windows has no DPU role.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn kill(&self) -> usize {
        self.kill_with(ResetReason::CHANNEL_LOST)
    }

    /// [`Session::kill`] with the reason the streams are reset with.
    pub fn kill_with(&self, why: ResetReason) -> usize {
        let (streams, waiters, writer) = {
            let mut inner = self.inner.borrow_mut();
            inner.dead = true;
            (
                std::mem::take(&mut inner.streams),
                std::mem::take(&mut inner.out_waiters),
                inner.writer.take(),
            )
        };
        for stream in streams.values() {
            let mut st = stream.st.borrow_mut();
            st.life.reset(why);
            st.wake();
        }
        waiters.into_iter().chain(writer).for_each(Waker::wake);
        self.ended.notify(usize::MAX);
        self.progress.notify(usize::MAX);
        streams.len()
    }

    /// Tells the peer this side is shutting down; the channel closing next is then expected.
    pub fn go_away(&self, reason: &str) {
        self.going_away.set(true);
        let text = crate::wire::cut(reason, crate::wire::MAX_CONTROL_PAYLOAD);
        self.queue(Frame::GoAway(text.as_bytes()));
    }

    /// Whether this side sent GOAWAY.
    pub fn is_going_away(&self) -> bool {
        self.going_away.get()
    }

    /// How `--metrics` counts this session's end: the peer's GOAWAY first, then whether this
    /// side announced its own shutdown; anything else is a lost channel.
    pub fn counted_end(&self) -> crate::counters::SessionEnd {
        use crate::counters::SessionEnd;
        match (self.goaway.borrow().is_some(), self.is_going_away()) {
            (true, _) => SessionEnd::PeerShutdown,
            (false, true) => SessionEnd::Local,
            (false, false) => SessionEnd::Lost,
        }
    }

    /// The reason the peer gave in GOAWAY, if it announced a clean shutdown.
    pub fn peer_goaway(&self) -> Option<String> {
        self.goaway.borrow().clone()
    }

    /// Open streams, in no particular order.
    pub(crate) fn streams(&self) -> Vec<Rc<Stream>> {
        self.inner.borrow().streams.values().cloned().collect()
    }

    /// When a frame last arrived from the peer.
    // Only the DPU role asks, and it does not exist on Windows.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn last_heard(&self) -> Instant {
        self.last_rx.get()
    }

    /// Whether every queued frame has been handed to the transport since `t`.
    pub(crate) fn flushed_since(&self, t: Instant) -> bool {
        let inner = self.inner.borrow();
        inner.out.is_empty() && !inner.writing && self.last_tx.get() >= t
    }

    /// Whether a stream task must not read its socket now: the session is draining, or the
    /// send buffer is above [`OUT_HIGH`] (the task is woken once the writer took it).
    pub(in crate::mux) fn send_blocked(&self, cx: &Context<'_>) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.draining {
            return true;
        }
        if inner.out.len() >= OUT_HIGH {
            inner.out_waiters.push(cx.waker().clone());
            return true;
        }
        false
    }

    /// Room in the send buffer for stream `id`'s next read, of up to `credit` bytes: `open`
    /// grows if it still can. The session is borrowed until the slot is dropped.
    pub(in crate::mux) fn reserve_data(
        &self,
        id: u32,
        open: Option<OpenFrame>,
        credit: u32,
    ) -> DataSlot<'_> {
        let out = RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.out);
        DataSlot::new(out, id, open, self.max_data, credit)
    }

    /// A stream task closed the DATA frame it was growing: the writer may take it.
    pub(in crate::mux) fn wake_writer(&self) {
        self.inner.borrow_mut().wake_writer();
    }

    /// Counts `n` bytes read from a local socket into DATA (`new_frame`: into a frame of their
    /// own, not one that grew).
    pub(in crate::mux) fn count_sent(&self, n: usize, new_frame: bool) {
        if new_frame {
            let frames = &self.stats.counters.frames_out;
            frames.set(frames.get() + 1);
        }
        self.stats
            .bytes_out
            .set(self.stats.bytes_out.get() + n as u64);
    }
}

impl Inner {
    /// Whether `stream` is the one its id names here (not an older stream that reused it).
    fn holds(&self, stream: &Stream) -> bool {
        self.streams
            .get(&stream.id)
            .is_some_and(|s| std::ptr::eq(Rc::as_ptr(s), stream))
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}
