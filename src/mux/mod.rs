//! One channel session: the streams multiplexed on it, per-stream flow control, and the tasks
//! that read and write frames.
//!
//! Everything for a session runs on one thread (a `LocalExecutor`), so shared state is
//! `Rc<RefCell<..>>` and no wakeup ever crosses threads. Frames to send are appended to one
//! buffer that the writer task swaps out and writes whole, so frames that queue up go out in one
//! write. DATA read from a client is read straight into that buffer (see [`crate::mux::pump`]).
//!
//! The two directions of a stream end on their own: CLOSE ends the sender's direction, STOP asks
//! the sender to end it because the receiver's socket no longer takes bytes, and only RESET
//! aborts both. See `docs/PROTOCOL.md`.

mod flow;
mod io;
mod lifecycle;
pub mod pump;
mod stats;

pub use stats::Stats;

use crate::counters::Outcome;
use crate::sys::reactor::Io;
use crate::sys::unix_socket::UnixStream;
use crate::wire::{Frame, ResetReason, HEADER_LEN};
use event_listener::Event;
use flow::Flow;
use lifecycle::{DataVerdict, Lifecycle};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::IoSlice;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

/// Above this many queued bytes, clients stop reading until the writer catches up.
pub const OUT_HIGH: usize = 1024 * 1024;

/// A channel session shared by its reader, writer and stream tasks.
pub struct Session {
    pub(crate) inner: RefCell<Inner>,
    /// Largest DATA payload to send.
    pub(crate) max_data: usize,
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

pub(crate) struct Inner {
    streams: HashMap<u32, Rc<Stream>>,
    /// Encoded frames waiting for the writer.
    pub(crate) out: Vec<u8>,
    writer: Option<Waker>,
    /// The writer is handing a batch to the channel.
    writing: bool,
    /// Tasks waiting for `out` to drain (stream tasks above [`OUT_HIGH`], a paused reader).
    pub(crate) out_waiters: Vec<Waker>,
    dead: bool,
    /// Shutting down: local sockets are no longer read.
    pub(crate) draining: bool,
    /// Shutting down gracefully: no new streams, the open ones go on until they end.
    pub(crate) closing: bool,
    /// Batches the writer has taken so far; a frame left open in `out` is only valid within
    /// one.
    batch: u64,
    next_id: u32,
}

/// One relayed connection's state on a session.
pub struct Stream {
    /// The stream id on the wire.
    pub id: u32,
    pub(crate) st: RefCell<StreamState>,
}

impl Stream {
    /// Whether the stream was aborted (RESET either way, the channel lost, a shutdown).
    pub fn is_reset(&self) -> bool {
        self.st.borrow().life.reset_reason().is_some()
    }
}

pub(crate) struct StreamState {
    /// Received bytes not yet written to the local socket, from `pos` on.
    pub(crate) inbound: Vec<u8>,
    pub(crate) pos: usize,
    /// Where each direction stands, and whether the stream was aborted.
    pub(crate) life: Lifecycle,
    /// Send credit, and what the peer may still send.
    pub(crate) flow: Flow,
    pub(crate) waker: Option<Waker>,
    /// The DATA frame this stream is still growing at the end of `out`, if any.
    pub(crate) open: Option<OpenFrame>,
    /// The local socket, once connected, so the reader can write to it directly.
    pub(crate) socket: Option<Rc<Io<UnixStream>>>,
    /// When the stream was opened (for the SIGUSR1 dump).
    pub(crate) opened: Option<Instant>,
    /// Bytes read from the local socket and sent on the channel.
    pub(crate) sent: u64,
    /// Bytes received on the channel and written to the local socket.
    pub(crate) received: u64,
}

/// Where a DATA frame that may still grow sits in the send buffer.
#[derive(Clone, Copy)]
pub(crate) struct OpenFrame {
    batch: u64,
    /// Offset of its header in `out`.
    pub(crate) at: usize,
    /// Payload bytes so far.
    pub(crate) len: usize,
}

impl StreamState {
    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
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
                out: Vec::with_capacity(64 * 1024),
                writer: None,
                writing: false,
                out_waiters: Vec::new(),
                dead: false,
                draining: false,
                closing: false,
                batch: 0,
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
        frame.encode(&mut inner.out);
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
        Frame::Open(id).encode(&mut inner.out);
        inner.wake_writer();
        Some(stream)
    }

    fn new_stream(&self, id: u32, socket: Option<Rc<Io<UnixStream>>>) -> Rc<Stream> {
        Rc::new(Stream {
            id,
            st: RefCell::new(StreamState {
                inbound: Vec::new(),
                pos: 0,
                life: Lifecycle::default(),
                flow: Flow::new(self.peer_window, self.window),
                waker: None,
                open: None,
                socket,
                opened: Some(Instant::now()),
                sent: 0,
                received: 0,
            }),
        })
    }

    /// Forgets a finished stream, unless its id already belongs to a newer stream; frames that
    /// still arrive for it are dropped.
    pub fn forget(&self, stream: &Stream) {
        let mut inner = self.inner.borrow_mut();
        if inner
            .streams
            .get(&stream.id)
            .is_some_and(|s| std::ptr::eq(Rc::as_ptr(s), stream))
        {
            inner.streams.remove(&stream.id);
            self.progress.notify(usize::MAX);
        }
    }

    /// Aborts a stream from this side: tells the peer and forgets it.
    pub(crate) fn reset_stream(&self, stream: &Stream, st: &mut StreamState, why: ResetReason) {
        st.life.reset(why);
        st.wake();
        let known = self
            .inner
            .borrow()
            .streams
            .get(&stream.id)
            .is_some_and(|s| std::ptr::eq(Rc::as_ptr(s), stream));
        if known {
            let mut inner = self.inner.borrow_mut();
            inner.streams.remove(&stream.id);
            self.progress.notify(usize::MAX);
            if !inner.dead {
                Frame::Reset(stream.id, why).encode(&mut inner.out);
                inner.wake_writer();
            }
        }
    }

    /// The local socket no longer takes bytes: drop what is queued for it and ask the peer to
    /// stop sending. The other direction goes on.
    pub(crate) fn stop_writing(&self, id: u32, st: &mut StreamState) {
        let Some(send_stop) = st.life.on_write_failed() else {
            return;
        };
        log::debug!("stream {id}: the local socket takes no more bytes; asking the peer to stop");
        st.inbound = Vec::new();
        st.pos = 0;
        if send_stop {
            self.queue(Frame::Stop(id));
        }
        st.wake();
    }

    /// Ends the session: every stream is reset and every task waiting on it wakes up.
    /// Returns how many streams were open.
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

    /// Counts `n` bytes written to the local socket, and credits them back to the peer when a
    /// WINDOW is due.
    pub(crate) fn delivered(&self, id: u32, st: &mut StreamState, n: usize) {
        self.stats
            .bytes_in
            .set(self.stats.bytes_in.get() + n as u64);
        let frames = &self.stats.counters.frames_in;
        frames.set(frames.get() + 1);
        if st.life.reset_reason().is_some() {
            return; // the peer no longer sends on this stream
        }
        st.received += n as u64;
        if let Some(due) = st.flow.on_written(n) {
            self.queue(Frame::Window(id, due));
        }
    }

    fn stream(&self, id: u32) -> Option<Rc<Stream>> {
        self.inner.borrow().streams.get(&id).cloned()
    }

    /// DATA for stream `id`: one frame's payload, or the payloads of consecutive frames for it,
    /// which are written to the socket in one call.
    pub(crate) fn on_data(&self, id: u32, parts: &[&[u8]]) {
        let Some(stream) = self.stream(id) else {
            return; // already closed here; the peer will learn it from our CLOSE or RESET
        };
        let mut st = stream.st.borrow_mut();
        let verdict = st.life.on_data();
        if verdict == DataVerdict::Ignore {
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let over = !st.flow.admits(len);
        if over || verdict == DataVerdict::Violation {
            crate::logging::ratelimit::log(
                log::Level::Warn,
                crate::logging::ratelimit::Kind::FlowControl,
                format_args!(
                    "stream {id}: peer broke flow control or sent data after close; resetting"
                ),
            );
            return self.reset_stream(&stream, &mut st, ResetReason::PROTOCOL);
        }
        if verdict == DataVerdict::Discard {
            return; // sent before the peer saw our STOP
        }
        st.flow.on_received(len);
        let mut written = 0;
        // Fast path: nothing queued, so hand the bytes to the socket without copying them.
        if st.pos == st.inbound.len() {
            if let Some(sock) = st.socket.clone().filter(|s| s.is_writable()) {
                let r = match parts {
                    [one] => sock.write_now(one),
                    _ => {
                        let slices: Vec<_> = parts.iter().map(|p| IoSlice::new(p)).collect();
                        sock.write_vectored_now(&slices)
                    }
                };
                match r {
                    Ok(n) => {
                        written = n;
                        self.delivered(id, &mut st, n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return self.stop_writing(id, &mut st),
                }
            }
        }
        if written < len {
            if st.pos == st.inbound.len() {
                st.inbound.clear();
                st.pos = 0;
            }
            for part in parts {
                let skip = written.min(part.len());
                written -= skip;
                st.inbound.extend_from_slice(&part[skip..]);
            }
            st.wake();
        }
    }

    fn on_open(&self, id: u32) -> Result<Option<Rc<Stream>>, String> {
        if !self.accept_opens {
            return Err("the peer opened a stream; only the host side may".into());
        }
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
            return Ok(None);
        }
        if inner.draining || inner.closing {
            Frame::Reset(id, ResetReason::SHUTDOWN).encode(&mut inner.out);
            inner.wake_writer();
            return Ok(None);
        }
        if id == 0 || inner.streams.contains_key(&id) {
            return Err(format!("OPEN for stream {id}, which is already open"));
        }
        if inner.streams.len() >= self.max_streams.get() {
            self.stats.counters.stream_ended(Outcome::RefusedLimit);
            crate::logging::ratelimit::log(
                log::Level::Warn,
                crate::logging::ratelimit::Kind::StreamLimit,
                format_args!(
                    "stream {id}: refused, {} streams are open (the limit)",
                    self.max_streams.get()
                ),
            );
            Frame::Reset(id, ResetReason::LIMIT).encode(&mut inner.out);
            inner.wake_writer();
            return Ok(None);
        }
        let stream = self.new_stream(id, None);
        inner.streams.insert(id, stream.clone());
        Ok(Some(stream))
    }

    /// Handles one received frame. An `Err` ends the session.
    fn dispatch(
        &self,
        frame: Frame<'_>,
        on_open: &mut dyn FnMut(Rc<Stream>),
    ) -> Result<(), String> {
        let with = |id: u32, f: &mut dyn FnMut(&mut StreamState)| {
            if let Some(stream) = self.stream(id) {
                let mut st = stream.st.borrow_mut();
                f(&mut st);
                st.wake();
            }
        };
        match frame {
            Frame::Data(id, data) => self.on_data(id, &[data]),
            Frame::Window(id, n) => with(id, &mut |st| st.flow.grant(n)),
            Frame::Close(id) => with(id, &mut |st| {
                st.life.on_peer_close();
            }),
            Frame::Stop(id) => with(id, &mut |st| {
                st.life.on_stop();
            }),
            Frame::Reset(id, why) => {
                if let Some(stream) = self.stream(id) {
                    stream.st.borrow_mut().life.reset(why);
                    stream.st.borrow_mut().wake();
                    self.forget(&stream);
                }
            }
            Frame::Open(id) => {
                if let Some(stream) = self.on_open(id)? {
                    on_open(stream);
                }
            }
            Frame::Ping(token) => self.queue(Frame::Pong(token)),
            // The takeover probe waits for an answer to its PING (rare: once a second at most).
            Frame::Pong(_) => {
                self.progress.notify(usize::MAX);
            }
            Frame::Error(msg) => {
                return Err(format!(
                    "the peer ended the session: {}",
                    crate::logging::text::lossy(msg)
                ))
            }
            Frame::GoAway(msg) => {
                let why = crate::logging::text::lossy(msg);
                *self.goaway.borrow_mut() = Some(why.clone());
                return Err(format!("the peer is shutting down: {why}"));
            }
            Frame::Hello(_) | Frame::Auth(_) => {
                return Err("handshake frame after the handshake".into())
            }
        }
        Ok(())
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
}

impl Inner {
    /// Records a DATA frame at `at` with `len` payload bytes as the last one in `out`.
    pub(crate) fn frame_at(&self, at: usize, len: usize) -> OpenFrame {
        OpenFrame {
            batch: self.batch,
            at,
            len,
        }
    }

    /// Whether `f` is still the last frame in `out` and the writer has not taken it.
    pub(crate) fn is_last(&self, f: OpenFrame) -> bool {
        f.batch == self.batch && self.out.len() == f.at + HEADER_LEN + f.len
    }

    /// The writer takes the send buffer: frames in it can no longer grow.
    pub(crate) fn take_batch(&mut self, spare: &mut Vec<u8>) {
        self.batch += 1;
        std::mem::swap(&mut self.out, spare);
    }

    pub(crate) fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}
