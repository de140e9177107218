//! One channel session: the streams multiplexed on it, per-stream flow control, and the tasks
//! that read and write frames.
//!
//! Everything for a session runs on one thread (a `LocalExecutor`), so shared state is
//! `Rc<RefCell<..>>` and no wakeup ever crosses threads. Frames to send are appended to one
//! buffer that the writer task swaps out and writes whole, so frames that queue up go out in one
//! write. DATA read from a client is read straight into that buffer (see [`crate::pump`]).

use crate::channel::{FrameReader, Transport};
use crate::protocol::{Frame, ResetReason};
use async_io::{Async, Timer};
use futures_lite::future;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Above this many queued bytes, clients stop reading until the writer catches up.
pub const OUT_HIGH: usize = 1024 * 1024;
const PING_AFTER: Duration = Duration::from_secs(5);
const DEAD_AFTER: Duration = Duration::from_secs(20);

/// Counters for the status line, shared by every session of a process.
#[derive(Debug, Default)]
pub struct Stats {
    /// Set once the relay is serving (socket bound, channel up or being retried).
    pub ready: Cell<bool>,
    /// Whether a channel session is up.
    pub channel_up: Cell<bool>,
    /// Clients (host) or server connections (DPU) now open.
    pub clients: Cell<u32>,
    /// Bytes read from local sockets and sent on the channel.
    pub bytes_out: Cell<u64>,
    /// Bytes received on the channel and written to local sockets.
    pub bytes_in: Cell<u64>,
    /// Every session of the process, for the shutdown announcement and the SIGUSR1 dump.
    pub sessions: RefCell<Vec<Weak<Session>>>,
}

/// A channel session shared by its reader, writer and stream tasks.
pub struct Session {
    pub(crate) inner: RefCell<Inner>,
    /// Largest DATA payload to send.
    pub(crate) max_data: usize,
    /// Initial send credit of a stream.
    peer_window: u32,
    /// Receive window this side grants per stream.
    window: u32,
    max_streams: usize,
    /// Only the DPU side accepts OPEN; on the host it is a protocol error.
    accept_opens: bool,
    pub(crate) stats: Rc<Stats>,
    last_rx: Cell<Instant>,
    last_tx: Cell<Instant>,
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
    /// Stream tasks waiting for `out` to drain below [`OUT_HIGH`].
    pub(crate) out_waiters: Vec<Waker>,
    dead: bool,
    next_id: u32,
}

/// One relayed connection's state on a session.
pub struct Stream {
    /// The stream id on the wire.
    pub id: u32,
    pub(crate) st: RefCell<StreamState>,
}

#[derive(Default)]
pub(crate) struct StreamState {
    /// Bytes this side may still send.
    pub(crate) credit: u32,
    /// Received bytes not yet written to the local socket, from `pos` on.
    pub(crate) inbound: Vec<u8>,
    pub(crate) pos: usize,
    /// The peer half-closed; shut our socket's write side once `inbound` is drained.
    pub(crate) peer_closed: bool,
    pub(crate) write_shut: bool,
    /// The local socket reached EOF and CLOSE was queued.
    pub(crate) read_eof: bool,
    /// Set when the stream is over for a reason other than a clean close.
    pub(crate) reset: Option<ResetReason>,
    /// Writing to the local socket failed in the reader task.
    pub(crate) write_failed: bool,
    /// Received and not yet credited back; never above the window.
    recv_outstanding: u32,
    /// Written to the socket and not yet credited back.
    unacked: u32,
    pub(crate) waker: Option<Waker>,
    /// The local socket, once connected, so the reader can write to it directly.
    pub(crate) socket: Option<Rc<Async<UnixStream>>>,
    /// When the stream was opened (for the SIGUSR1 dump).
    pub(crate) opened: Option<Instant>,
    /// Bytes read from the local socket and sent on the channel.
    pub(crate) sent: u64,
    /// Bytes received on the channel and written to the local socket.
    pub(crate) received: u64,
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
                out_waiters: Vec::new(),
                dead: false,
                next_id: 1,
            }),
            max_data,
            peer_window,
            window,
            max_streams: max_streams as usize,
            accept_opens,
            last_rx: Cell::new(Instant::now()),
            last_tx: Cell::new(Instant::now()),
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
    pub fn open_stream(&self, socket: Rc<Async<UnixStream>>) -> Option<Rc<Stream>> {
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
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

    fn new_stream(&self, id: u32, socket: Option<Rc<Async<UnixStream>>>) -> Rc<Stream> {
        Rc::new(Stream {
            id,
            st: RefCell::new(StreamState {
                credit: self.peer_window,
                socket,
                opened: Some(Instant::now()),
                ..Default::default()
            }),
        })
    }

    /// Forgets a finished stream; frames that still arrive for it are dropped.
    pub fn remove(&self, id: u32) {
        self.inner.borrow_mut().streams.remove(&id);
    }

    /// Ends a stream from this side: tells the peer and forgets it.
    pub(crate) fn reset_stream(&self, stream: &Stream, st: &mut StreamState, why: ResetReason) {
        st.reset.get_or_insert(why);
        st.wake();
        let mut inner = self.inner.borrow_mut();
        if inner.streams.remove(&stream.id).is_some() && !inner.dead {
            Frame::Reset(stream.id, why).encode(&mut inner.out);
            inner.wake_writer();
        }
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
            st.reset.get_or_insert(why);
            st.wake();
        }
        waiters.into_iter().chain(writer).for_each(Waker::wake);
        streams.len()
    }

    /// Credits `n` bytes written to the local socket back to the peer, in batches of half a
    /// window so that WINDOW frames stay rare.
    pub(crate) fn delivered(&self, id: u32, st: &mut StreamState, n: usize) {
        self.stats
            .bytes_in
            .set(self.stats.bytes_in.get() + n as u64);
        st.unacked += n as u32;
        st.received += n as u64;
        if st.unacked >= self.window / 2 {
            self.queue(Frame::Window(id, st.unacked));
            st.recv_outstanding -= st.unacked;
            st.unacked = 0;
        }
    }

    fn on_data(&self, id: u32, data: &[u8]) {
        let Some(stream) = self.inner.borrow().streams.get(&id).cloned() else {
            return; // already closed here; the peer will learn it from our CLOSE or RESET
        };
        let mut st = stream.st.borrow_mut();
        if st.reset.is_some() || st.write_failed {
            return;
        }
        let over = st.recv_outstanding as usize + data.len() > self.window as usize;
        if over || st.peer_closed {
            log::warn!("stream {id}: peer broke flow control or sent data after close; resetting");
            return self.reset_stream(&stream, &mut st, ResetReason::PROTOCOL);
        }
        st.recv_outstanding += data.len() as u32;
        let mut rest = data;
        // Fast path: nothing queued, so hand the bytes to the socket without copying them.
        if st.pos == st.inbound.len() {
            if let Some(sock) = st.socket.clone() {
                match sock.get_ref().write(rest) {
                    Ok(n) => {
                        rest = &rest[n..];
                        self.delivered(id, &mut st, n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        st.write_failed = true;
                        st.wake();
                        return;
                    }
                }
            }
        }
        if !rest.is_empty() {
            if st.pos == st.inbound.len() {
                st.inbound.clear();
                st.pos = 0;
            }
            st.inbound.extend_from_slice(rest);
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
        if id == 0 || inner.streams.contains_key(&id) {
            return Err(format!("OPEN for stream {id}, which is already open"));
        }
        if inner.streams.len() >= self.max_streams {
            log::warn!(
                "stream {id}: refused, {} streams are open (the limit)",
                self.max_streams
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
            let stream = self.inner.borrow().streams.get(&id).cloned();
            if let Some(stream) = stream {
                let mut st = stream.st.borrow_mut();
                f(&mut st);
                st.wake();
            }
        };
        match frame {
            Frame::Data(id, data) => self.on_data(id, data),
            Frame::Window(id, n) => with(id, &mut |st| st.credit = st.credit.saturating_add(n)),
            Frame::Close(id) => with(id, &mut |st| st.peer_closed = true),
            Frame::Reset(id, why) => {
                with(id, &mut |st| {
                    st.reset.get_or_insert(why);
                });
                self.remove(id);
            }
            Frame::Open(id) => {
                if let Some(stream) = self.on_open(id)? {
                    on_open(stream);
                }
            }
            Frame::Ping(token) => self.queue(Frame::Pong(token)),
            Frame::Pong(_) => {}
            Frame::Error(msg) => {
                return Err(format!(
                    "the peer ended the session: {}",
                    crate::channel::lossy(msg)
                ))
            }
            Frame::GoAway(msg) => {
                let why = crate::channel::lossy(msg);
                *self.goaway.borrow_mut() = Some(why.clone());
                return Err(format!("the peer is shutting down: {why}"));
            }
            Frame::Hello(_) | Frame::Auth(_) => {
                return Err("handshake frame after the handshake".into())
            }
        }
        Ok(())
    }

    async fn read_loop(
        &self,
        mut reader: FrameReader,
        on_open: &mut dyn FnMut(Rc<Stream>),
    ) -> String {
        loop {
            loop {
                match reader.take_frame() {
                    Ok(Some(frame)) => {
                        if let Err(e) = self.dispatch(frame, on_open) {
                            return e;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return format!("bad frame from the peer: {e}"),
                }
            }
            if let Err(e) = reader.fill().await {
                return format!("channel read failed: {e}");
            }
            self.last_rx.set(Instant::now());
        }
    }

    async fn write_loop(&self, transport: &Transport) -> String {
        let mut spare = Vec::with_capacity(64 * 1024);
        loop {
            future::poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if inner.dead || !inner.out.is_empty() {
                    return Poll::Ready(());
                }
                inner.writer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let waiters = {
                let mut inner = self.inner.borrow_mut();
                if inner.dead {
                    return "session ended".into();
                }
                std::mem::swap(&mut inner.out, &mut spare);
                std::mem::take(&mut inner.out_waiters)
            };
            waiters.into_iter().for_each(Waker::wake);
            if let Err(e) = transport.write_all(&spare).await {
                return format!("channel write failed: {e}");
            }
            self.last_tx.set(Instant::now());
            spare.clear();
            if spare.capacity() > 4 * OUT_HIGH {
                spare = Vec::with_capacity(64 * 1024);
            }
        }
    }

    async fn keepalive_loop(&self) -> String {
        let mut token = 0u32;
        loop {
            Timer::after(Duration::from_secs(1)).await;
            if self.last_rx.get().elapsed() > DEAD_AFTER {
                return format!("nothing heard from the peer for {} s", DEAD_AFTER.as_secs());
            }
            if self.last_tx.get().elapsed() >= PING_AFTER {
                token = token.wrapping_add(1);
                self.queue(Frame::Ping(token));
            }
        }
    }

    /// Runs the session until the channel fails or the session is killed; returns why it ended
    /// and how many streams were reset. `on_open` is called for each stream the peer opens.
    pub async fn run(
        &self,
        transport: Transport,
        reader: FrameReader,
        mut on_open: impl FnMut(Rc<Stream>),
    ) -> (String, usize) {
        self.last_rx.set(Instant::now());
        let why = future::or(
            future::or(
                self.read_loop(reader, &mut on_open),
                self.write_loop(&transport),
            ),
            self.keepalive_loop(),
        )
        .await;
        let reason = if self.goaway.borrow().is_some() {
            ResetReason::SHUTDOWN
        } else {
            ResetReason::CHANNEL_LOST
        };
        let streams = self.kill_with(reason);
        transport.close();
        (why, streams)
    }

    /// Tells the peer this side is shutting down; the channel closing next is then expected.
    pub fn go_away(&self, reason: &str) {
        self.going_away.set(true);
        let text = crate::protocol::cut(reason, crate::protocol::MAX_CONTROL_PAYLOAD);
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
    pub(crate) fn last_heard(&self) -> Instant {
        self.last_rx.get()
    }

    /// Whether every queued frame has been handed to the transport since `t`.
    pub(crate) fn flushed_since(&self, t: Instant) -> bool {
        self.inner.borrow().out.is_empty() && self.last_tx.get() >= t
    }
}

impl Inner {
    pub(crate) fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}
