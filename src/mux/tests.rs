//! In-process tests of a whole session: a [`Session`] runs over one end of a socketpair on the
//! relay's own event loop, exactly as the roles run it, and the test plays the peer on the
//! other end, scripting frames and reading what the session sends back. Streams are pumped to
//! socketpairs whose far end plays the application.
//!
//! Nothing sleeps: a test waits for the frames or bytes it expects, and "nothing else was
//! sent" is checked with PING round trips ([`Peer::settle`]). A timeout only stops a test
//! that hangs.

mod session;
mod streams;

use super::pump::{pump, End};
use super::{EndReason, Session, Stats, Stream};
use crate::link::{FrameReader, Transport};
use crate::sys::reactor::{block_on, Io};
use crate::sys::unix_socket::{own_any, UnixStream};
use crate::wire::{Frame, ResetReason, STREAM_MAX_MSG};
use async_executor::{LocalExecutor, Task};
use async_io::Timer;
use event_listener::Event;
use futures_lite::future;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// Only a test that hangs gets near this.
const SAFETY: Duration = Duration::from_secs(20);

/// Runs a test's body on the relay's event loop with its own executor.
fn run<F: Future<Output = ()>>(body: impl FnOnce(Rc<LocalExecutor<'static>>) -> F) {
    let ex = Rc::new(LocalExecutor::new());
    let test = body(ex.clone());
    let hung = async {
        Timer::after(SAFETY).await;
        panic!("the test did not finish within {SAFETY:?}");
    };
    block_on(ex.run(future::or(test, hung))).expect("the event loop");
}

/// A socketpair, both ends on the event loop.
fn socketpair() -> (Io<UnixStream>, Io<UnixStream>) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (own_any(a).expect("own"), own_any(b).expect("own"))
}

/// A frame the peer received, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    Open(u32),
    Data(u32, Vec<u8>),
    Window(u32, u32),
    Close(u32),
    Reset(u32, ResetReason),
    Stop(u32),
    Ping(u32),
    Pong(u32),
    GoAway(String),
    /// ERROR or a handshake frame, which a session never sends.
    Other(String),
}

impl From<Frame<'_>> for Got {
    fn from(f: Frame<'_>) -> Got {
        match f {
            Frame::Open(id) => Got::Open(id),
            Frame::Data(id, d) => Got::Data(id, d.to_vec()),
            Frame::Window(id, n) => Got::Window(id, n),
            Frame::Close(id) => Got::Close(id),
            Frame::Reset(id, why) => Got::Reset(id, why),
            Frame::Stop(id) => Got::Stop(id),
            Frame::Ping(t) => Got::Ping(t),
            Frame::Pong(t) => Got::Pong(t),
            Frame::GoAway(m) => Got::GoAway(String::from_utf8_lossy(m).into()),
            other => Got::Other(format!("{other:?}")),
        }
    }
}

/// The far side of the channel, as the test scripts it.
struct Peer {
    transport: Transport,
    reader: FrameReader,
    /// Frames set aside while looking for others (DATA, PONG).
    held: VecDeque<Got>,
    next_ping: u32,
}

impl Peer {
    async fn send(&self, frames: &[Frame<'_>]) {
        let mut buf = Vec::new();
        for f in frames {
            f.encode(&mut buf);
        }
        self.send_raw(&buf).await;
    }

    async fn send_raw(&self, bytes: &[u8]) {
        self.transport
            .write_all(bytes)
            .await
            .expect("channel write");
    }

    /// The next frame from the session; `None` once it closed the channel.
    async fn next(&mut self) -> Option<Got> {
        if let Some(g) = self.held.pop_front() {
            return Some(g);
        }
        loop {
            match self.reader.take_frame() {
                Ok(Some(f)) => return Some(f.into()),
                Ok(None) => {}
                Err(e) => panic!("the session sent a bad frame: {e}"),
            }
            if self.reader.fill().await.is_err() {
                return None;
            }
        }
    }

    async fn recv(&mut self) -> Got {
        self.next().await.expect("the session closed the channel")
    }

    /// Waits until the session closes the channel, returning the frames it sent before.
    async fn until_closed(&mut self) -> Vec<Got> {
        let mut before = Vec::new();
        while let Some(g) = self.next().await {
            before.push(g);
        }
        before
    }

    /// What the session sent until it answered a PING sent now, the PONG left out. Two round
    /// trips: what its tasks queued in answer to frames sent before the first is in.
    async fn settle(&mut self) -> Vec<Got> {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let token = self.next_ping;
            self.next_ping += 1;
            self.send(&[Frame::Ping(token)]).await;
            loop {
                match self.recv().await {
                    Got::Pong(t) if t == token => break,
                    g => seen.push(g),
                }
            }
        }
        seen
    }

    /// `n` bytes of DATA on stream `id`, however framed; other frames are held for
    /// [`Peer::recv`]. Checks that no frame exceeds `max_data`.
    async fn data(&mut self, id: u32, n: usize, max_data: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut other = VecDeque::new();
        while got.len() < n {
            match self.recv().await {
                Got::Data(i, d) if i == id => {
                    assert!(d.len() <= max_data, "a DATA frame of {} bytes", d.len());
                    got.extend_from_slice(&d);
                }
                g => other.push_back(g),
            }
        }
        assert_eq!(got.len(), n, "more DATA than expected");
        other.extend(self.held.drain(..));
        self.held = other;
        got
    }
}

/// How a test's session is set up.
#[derive(Clone, Copy)]
struct Setup {
    /// The DPU side (takes OPEN) or the host side (opens streams).
    dpu: bool,
    max_data: usize,
    /// The send credit of each stream, as the peer's HELLO would grant it.
    peer_window: u32,
    /// The window this side grants.
    window: u32,
    max_streams: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            dpu: true,
            max_data: 16 * 1024,
            peer_window: 256 * 1024,
            window: 64 * 1024,
            max_streams: 8,
        }
    }
}

/// One relayed connection: the stream, the application's end of its socket, and its pump.
struct Conn {
    stream: Rc<Stream>,
    app: Io<UnixStream>,
    pump: Task<End>,
}

impl Conn {
    fn id(&self) -> u32 {
        self.stream.id
    }

    async fn write(&self, bytes: &[u8]) {
        self.app.write_all(bytes).await.expect("application write");
    }

    /// Reads exactly `n` bytes.
    async fn read(&self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut at = 0;
        while at < n {
            let got = self.app.read_some(&mut buf[at..]).await.expect("read");
            assert!(got > 0, "EOF after {at} of {n} bytes");
            at += got;
        }
        buf
    }

    /// Reads to EOF (an error counts: ECONNRESET after a reset).
    async fn read_to_end(&self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = self.app.read_some(&mut buf).await {
            all.extend_from_slice(&buf[..n]);
        }
        all
    }

    fn shut_write(&self) {
        self.app
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    }

    /// How the pump ended.
    async fn end(self) -> End {
        self.pump.await
    }
}

/// Streams the peer opened, as the DPU role would serve them.
#[derive(Default)]
struct Accepted {
    conns: RefCell<VecDeque<Conn>>,
    event: Event,
}

/// A running session and the test's end of everything around it.
struct Mux {
    ex: Rc<LocalExecutor<'static>>,
    session: Rc<Session>,
    setup: Setup,
    peer: Peer,
    accepted: Rc<Accepted>,
    run: Task<(EndReason, usize)>,
}

impl Mux {
    fn start(ex: &Rc<LocalExecutor<'static>>, setup: Setup) -> Mux {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let ours = Transport::unix_socket(ours).expect("transport");
        let theirs = Transport::unix_socket(theirs).expect("transport");
        let session = Session::new(
            setup.max_data,
            setup.peer_window,
            setup.window,
            setup.max_streams,
            setup.dpu,
            Rc::new(Stats::default()),
        );
        let accepted = Rc::new(Accepted::default());
        let on_open = {
            let (ex2, session, accepted) = (ex.clone(), session.clone(), accepted.clone());
            move |stream: Rc<Stream>| {
                let conn = spawn_pump(&ex2, &session, stream, socketpair());
                accepted.conns.borrow_mut().push_back(conn);
                accepted.event.notify(usize::MAX);
            }
        };
        let reader = FrameReader::new(ours.clone(), STREAM_MAX_MSG);
        let run = ex.spawn({
            let session = session.clone();
            async move { session.run(ours, reader, None, on_open).await }
        });
        let peer = Peer {
            reader: FrameReader::new(theirs.clone(), STREAM_MAX_MSG),
            transport: theirs,
            held: VecDeque::new(),
            next_ping: 0x7e57_0000,
        };
        Mux {
            ex: ex.clone(),
            session,
            setup,
            peer,
            accepted,
            run,
        }
    }

    /// DPU side: the peer opens stream `id`; returns it once the session served it.
    async fn open(&mut self, id: u32) -> Conn {
        self.peer.send(&[Frame::Open(id)]).await;
        self.accept().await
    }

    /// The next stream the peer opened.
    async fn accept(&self) -> Conn {
        loop {
            let listener = self.accepted.event.listen();
            if let Some(conn) = self.accepted.conns.borrow_mut().pop_front() {
                return conn;
            }
            listener.await;
        }
    }

    /// Host side: a client connects; the peer sees the OPEN.
    async fn connect(&mut self) -> Conn {
        let (relay, app) = socketpair();
        let relay = Rc::new(relay);
        let stream = self
            .session
            .open_stream(relay.clone())
            .expect("a live session");
        assert_eq!(self.peer.recv().await, Got::Open(stream.id));
        let session = self.session.clone();
        let pump = self.ex.spawn({
            let stream = stream.clone();
            async move { pump(&session, &stream, relay).await }
        });
        Conn { stream, app, pump }
    }

    /// Waits for the session to end.
    async fn ended(self) -> (EndReason, usize, Peer) {
        let (why, streams) = self.run.await;
        (why, streams, self.peer)
    }
}

fn spawn_pump(
    ex: &LocalExecutor<'static>,
    session: &Rc<Session>,
    stream: Rc<Stream>,
    (relay, app): (Io<UnixStream>, Io<UnixStream>),
) -> Conn {
    let session = session.clone();
    let pump = ex.spawn({
        let stream = stream.clone();
        async move { pump(&session, &stream, Rc::new(relay)).await }
    });
    Conn { stream, app, pump }
}

/// `n` bytes that differ from one offset to the next, so that a byte out of place shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}
