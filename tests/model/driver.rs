//! Runs a program against the real relays from one thread: every socket is non-blocking, and
//! between operations the driver moves whatever bytes the sockets take, so the interleaving of
//! the two ends is the program's, not a scheduler's. Every wait is bounded.

#[path = "finish.rs"]
mod finish;

use crate::endpoint::Endpoint;
use crate::program::{Op, Side};
use crate::rig::{Rig, RECOVERY_TIMEOUT};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

/// What a client sends first so that the driver can tell which server connection is its own.
const MAGIC: &[u8; 4] = b"MDL1";
const HEADER_LEN: usize = 8;
/// Most streams a case opens (further `Open`s do nothing).
const MAX_STREAMS: usize = 6;
/// Longest wait for a stream to open, for the ends in the final drain, for a flush: long
/// enough for a loaded machine, short enough that shrinking a case that hangs stays affordable.
fn wait_limit() -> Duration {
    match std::env::var_os("DSR_TEST_RUNNER") {
        Some(_) => Duration::from_secs(30),
        None => Duration::from_secs(8),
    }
}

/// A client with its server connection, or why there is none.
type Opened = Result<(UnixStream, UnixStream), String>;

/// A stream: the client end and the server end, and whether a channel loss hit it.
struct Stream {
    ends: [Endpoint; 2],
    lost: bool,
}

impl Stream {
    /// Every end still open has seen its end: nothing is in flight any more.
    fn settled(&self) -> bool {
        self.ends.iter().all(|e| e.closed() || e.end.is_some())
    }
}

/// A server connection whose header has not fully arrived.
struct Unmatched {
    sock: UnixStream,
    header: Vec<u8>,
}

/// The state of one case.
pub struct Driver {
    rig: Rig,
    seed: u64,
    streams: Vec<Stream>,
    unmatched: Vec<Unmatched>,
    /// The client connection waiting for its server connection, and that once it arrived.
    awaiting: Option<(u32, Option<UnixStream>)>,
    /// Ids of probe connections, which may still arrive after the driver gave up on them.
    probes: HashSet<u32>,
    next_conn: u32,
    losses: usize,
    buf: Vec<u8>,
    /// What happened, for the failure message.
    pub trace: Vec<String>,
}

type Res<T = ()> = Result<T, String>;

impl Driver {
    /// A driver for a fresh rig; `seed` makes this case's byte patterns its own.
    pub fn new(rig: Rig, seed: u64) -> Driver {
        Driver {
            rig,
            seed,
            streams: Vec::new(),
            unmatched: Vec::new(),
            awaiting: None,
            probes: HashSet::new(),
            next_conn: 1,
            losses: 0,
            buf: Vec::new(),
            trace: Vec::new(),
        }
    }

    /// The rig, for its logs.
    pub fn rig(&mut self) -> &mut Rig {
        &mut self.rig
    }

    /// Waits until a probe gets through the relays (the channel is up).
    pub fn wait_ready(&mut self) -> Res {
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        while Instant::now() < deadline {
            if self.probe()? {
                return Ok(());
            }
            self.advance_for(Duration::from_millis(50))?;
        }
        Err("no probe got through the relays".into())
    }

    /// Runs one operation, then lets bytes flow until the sockets are quiet for a moment.
    pub fn exec(&mut self, op: &Op) -> Res {
        fn end(d: &mut Driver, s: usize, side: Side) -> Option<&mut Endpoint> {
            let n = d.streams.len();
            (n > 0).then(|| &mut d.streams[s % n].ends[side.index()])
        }
        self.trace.push(format!("{op:?}"));
        match *op {
            Op::Open if self.streams.len() < MAX_STREAMS => self.open()?,
            Op::Open => {}
            Op::Write { s, side, len } => end(self, s, side).map_or((), |e| e.queue(len)),
            Op::Read { s, side, len } => {
                if let Some(e) = end(self, s, side) {
                    e.allowance = e.allowance.map(|a| a + len as u64);
                }
            }
            Op::Pause { s, side } => end(self, s, side).map_or((), |e| e.allowance = Some(0)),
            Op::Resume { s, side } => end(self, s, side).map_or((), |e| e.allowance = None),
            Op::ShutWrite { s, side } => end(self, s, side).map_or((), |e| e.shut_write()),
            Op::Close { s, side, unread } => {
                if !unread {
                    // Read what is there first, whatever the allowance.
                    if let Some(e) = end(self, s, side) {
                        e.allowance = None;
                    }
                    self.pump()?;
                }
                if let Some(e) = end(self, s, side) {
                    e.close();
                }
            }
            Op::Cut => {
                self.lose();
                let cut = self.rig.cut();
                self.trace.push(format!("  cut {cut} channel connections"));
                self.wait_ready()?;
            }
            Op::KillDpu => {
                self.lose();
                self.rig.restart_dpu();
                self.wait_ready()?;
            }
            Op::Wait { ms } => self.advance_for(Duration::from_millis(ms))?,
        }
        self.settle()
    }

    /// The channel is about to go: every stream with bytes or an end still in flight may lose
    /// them from now on.
    fn lose(&mut self) {
        self.losses += 1;
        for (i, st) in self.streams.iter_mut().enumerate() {
            if !st.settled() && !st.lost {
                st.lost = true;
                self.trace.push(format!("  stream {i} is live: lost"));
            }
        }
    }

    /// Connects a client, sends its header and waits for its server connection.
    fn connect(&mut self, probe: bool, wait: Duration) -> Res<Opened> {
        let id = self.next_conn;
        self.next_conn += 1;
        if probe {
            self.probes.insert(id);
        }
        // Before the host side listens, only a probe may find no socket.
        let mut client = match UnixStream::connect(&self.rig.host_sock) {
            Ok(c) => c,
            Err(e) if probe => return Ok(Err(e.to_string())),
            Err(e) => return Err(format!("connecting to the host socket: {e}")),
        };
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&id.to_le_bytes());
        client
            .write_all(&header)
            .map_err(|e| format!("writing the header: {e}"))?;
        client.set_nonblocking(true).unwrap();
        self.awaiting = Some((id, None));
        let deadline = Instant::now() + wait;
        let got = loop {
            if let Some((_, Some(server))) = self.awaiting.take() {
                break Ok((client, server));
            }
            self.awaiting = Some((id, None));
            let mut b = [0u8; 1];
            match client.read(&mut b) {
                _ if Instant::now() > deadline => {
                    break Err(format!(
                        "no server connection sent client {id}'s header within {} s ({} \
                         connections without a whole header)",
                        wait.as_secs(),
                        self.unmatched.len()
                    ))
                }
                Ok(0) => break Err(format!("client {id} read EOF")),
                Ok(_) => return Err("the client got a byte before its stream opened".into()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => break Err(format!("client {id}: {e}")),
            }
            if !self.pump()? {
                thread::sleep(Duration::from_millis(1));
            }
        };
        self.awaiting = None;
        Ok(got)
    }

    /// One probe: a fresh stream that carries a byte back. Whether it got through.
    fn probe(&mut self) -> Res<bool> {
        let Ok((mut client, mut server)) = self.connect(true, Duration::from_secs(3))? else {
            return Ok(false);
        };
        let _ = server.write_all(b"p");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut b = [0u8; 1];
        while Instant::now() < deadline {
            match client.read(&mut b) {
                Ok(1) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.advance_for(Duration::from_millis(1))?
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    fn open(&mut self) -> Res {
        let (client, server) = self
            .connect(false, wait_limit())?
            .map_err(|e| format!("opening a stream while the channel is up: {e}"))?;
        let i = self.streams.len() as u64;
        let seed = |side: u64| self.seed.wrapping_mul(1_000_003) ^ (i << 8) ^ side;
        let c = Endpoint::new(client, seed(1), seed(2)).map_err(|e| e.to_string())?;
        let s = Endpoint::new(server, seed(2), seed(1)).map_err(|e| e.to_string())?;
        self.streams.push(Stream {
            ends: [c, s],
            lost: false,
        });
        self.trace.push(format!("  opened stream {i}"));
        Ok(())
    }

    /// One pass over every socket. Whether anything moved.
    fn pump(&mut self) -> Res<bool> {
        let mut moved = self.accept()?;
        for (i, st) in self.streams.iter_mut().enumerate() {
            for side in [Side::Client, Side::Server] {
                let (a, b) = st.ends.split_at_mut(1);
                let (me, peer) = match side {
                    Side::Client => (&mut a[0], &b[0]),
                    Side::Server => (&mut b[0], &a[0]),
                };
                let peer = peer.as_peer(st.lost);
                let had_end = me.end.is_some();
                let r = me
                    .pump_write(peer)
                    .and_then(|w| Ok(me.pump_read(peer, &mut self.buf)? | w));
                match r {
                    Ok(m) => moved |= m,
                    Err(e) => return Err(format!("stream {i}, {side:?} end: {e}")),
                }
                if !had_end && me.end.is_some() {
                    let (end, read) = (me.end, me.read);
                    self.trace
                        .push(format!("  stream {i} {side:?}: {end:?} after {read} bytes"));
                }
            }
        }
        Ok(moved)
    }

    /// Accepts server connections and reads their headers.
    fn accept(&mut self) -> Res<bool> {
        let mut moved = false;
        while let Ok((sock, _)) = self.rig.listener.accept() {
            sock.set_nonblocking(true).unwrap();
            self.unmatched.push(Unmatched {
                sock,
                header: Vec::new(),
            });
            moved = true;
        }
        let mut i = 0;
        while i < self.unmatched.len() {
            let u = &mut self.unmatched[i];
            let mut b = [0u8; HEADER_LEN];
            let want = HEADER_LEN - u.header.len();
            match u.sock.read(&mut b[..want]) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Ok(0) | Err(_) if self.losses == 0 => {
                    let e = "a server connection ended before its header, with no loss";
                    return Err(e.into());
                }
                Ok(0) => {
                    self.unmatched.swap_remove(i);
                    continue;
                }
                Ok(n) => {
                    u.header.extend_from_slice(&b[..n]);
                    moved = true;
                }
                Err(_) => {
                    self.unmatched.swap_remove(i);
                    continue;
                }
            }
            if self.unmatched[i].header.len() < HEADER_LEN {
                i += 1;
                continue;
            }
            let u = self.unmatched.swap_remove(i);
            if &u.header[..4] != MAGIC {
                return Err(format!("a server connection began with {:?}", u.header));
            }
            let id = u32::from_le_bytes(u.header[4..].try_into().unwrap());
            match &mut self.awaiting {
                Some((want, slot @ None)) if *want == id => *slot = Some(u.sock),
                // A probe the driver gave up on may still arrive; it is closed.
                _ if self.probes.contains(&id) => {}
                _ => {
                    return Err(format!(
                        "a server connection for client {id}, which is not waiting for one"
                    ))
                }
            }
        }
        Ok(moved)
    }

    /// Moves bytes for `d`.
    fn advance_for(&mut self, d: Duration) -> Res {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if !self.pump()? {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Moves bytes until `done` holds or `limit` passes; whether it held.
    fn advance_until(&mut self, limit: Duration, done: impl Fn(&Driver) -> bool) -> Res<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            if !self.pump()? {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Moves bytes until nothing moved for a few ms (at most 200 ms).
    fn settle(&mut self) -> Res {
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(4) {
            if self.pump()? {
                quiet_since = Instant::now();
            } else {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}
