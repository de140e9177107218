//! Channel transports between the two roles, frame reading, and the handshake.
//!
//! A channel is a reliable, ordered link that carries whole frames. Stream transports (TCP and
//! AF_UNIX) carry frames back to back; each frame is self-delimiting through its length field.

use crate::auth;
use crate::config::{Config, Role};
use crate::doca;
use crate::protocol::{frame_len, Frame, Hello, HEADER_LEN, VERSION};
use crate::reactor::Io;
use crate::secure::record::{self, CipherState, Sealer, TAG_LEN};
use crate::secure::{noise, Security};
use crate::takeover;
use crate::unix::UnixStream;
use async_io::Async;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::sync::Arc;

/// Largest message a stream transport accepts, header included. A bulk stream's DATA frames
/// grow to this size (see [`crate::pump`]), and each is written to the far socket in one
/// write: at 256 KiB that was 4-5 writes per MiB, at 1 MiB it is about one.
pub const STREAM_MAX_MSG: u32 = 1024 * 1024;
/// Receive window granted per stream. At 1 MiB a bulk stream ran out of credit every MiB and
/// waited a WINDOW round trip (17-24 system calls per MiB per relay process); at 4 MiB it
/// rarely waits (12-13). It is also what a stream whose application stops reading can hold
/// in the relay, on top of its socket buffer.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Smallest message size a channel may have; below it HELLO itself would not fit.
pub const MIN_MAX_MSG: u32 = 1024;

/// One established channel connection.
#[derive(Clone)]
pub enum Transport {
    /// TCP, e.g. over the host-DPU tmfifo link.
    Tcp(Rc<Io<TcpStream>>),
    /// AF_UNIX stream socket.
    Unix(Rc<Io<UnixStream>>),
    /// A DOCA Comm Channel connection; each message holds whole frames.
    Doca(Rc<doca::Link>),
    /// A DOCA Comch connection; each message holds whole frames.
    Comch(Rc<crate::comch::Link>),
}

/// Takes a socket connected or accepted through async-io over into the relay's own event loop
/// (see [`crate::reactor`]): the channel carries every relayed byte.
pub(crate) fn own<T: crate::reactor::Socket>(s: Arc<Async<T>>) -> io::Result<Rc<Io<T>>> {
    let s = Arc::try_unwrap(s)
        .map_err(|_| io::Error::other("the channel socket is still shared"))?
        .into_inner()?;
    Ok(Rc::new(Io::new(s)?))
}

impl Transport {
    /// A TCP channel connection, with Nagle off: frames are written whole, and a small one
    /// (a round trip's DATA, a WINDOW) must not wait for the previous one's ACK.
    pub fn tcp(s: async_net::TcpStream) -> io::Result<Transport> {
        s.set_nodelay(true)?;
        Ok(Transport::Tcp(own(s.into())?))
    }
    // The AF_UNIX constructors (`unix`, `unix_socket`) are in `crate::unix`: platform code.
}

impl Transport {
    /// Reads some bytes; 0 means the peer closed the channel. `wait_first` says the last read
    /// came back short; sockets ignore it, as their event loop tracks readiness itself.
    pub async fn read(&self, buf: &mut [u8], wait_first: bool) -> io::Result<usize> {
        let _ = wait_first;
        match self {
            Transport::Tcp(s) => s.read_some(buf).await,
            Transport::Unix(s) => s.read_some(buf).await,
            Transport::Doca(l) => l.read(buf).await,
            Transport::Comch(l) => l.read(buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            Transport::Unix(s) => s.write_all(buf).await,
            Transport::Doca(l) => l.write_frames(buf).await,
            Transport::Comch(l) => l.write_frames(buf).await,
        }
    }

    /// Writes all of `bufs`, in order: the sealed records of an encrypted channel, written
    /// where they lie. A DOCA channel copies each message into its own buffers anyway, so it
    /// gets them joined.
    pub async fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all_vectored(bufs).await,
            Transport::Unix(s) => s.write_all_vectored(bufs).await,
            Transport::Doca(_) | Transport::Comch(_) => {
                let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.write_all(&joined).await
            }
        }
    }

    /// Closes both directions so that a blocked reader or writer wakes up.
    pub fn close(&self) {
        let _ = match self {
            Transport::Tcp(s) => s.get_ref().shutdown(Shutdown::Both),
            Transport::Unix(s) => s.get_ref().shutdown(Shutdown::Both),
            // The link disconnects its peer when the last clone is dropped.
            Transport::Doca(_) | Transport::Comch(_) => Ok(()),
        };
    }

    /// Lowers the message size used to pack frames to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        match self {
            Transport::Doca(l) => l.limit_max_msg(agreed),
            Transport::Comch(l) => l.limit_max_msg(agreed),
            Transport::Tcp(_) | Transport::Unix(_) => {}
        }
    }

    /// Whether the transport splits DATA frames larger than its messages when it packs them
    /// ([`crate::protocol::pack_messages`]): the DOCA channels.
    pub fn splits_data(&self) -> bool {
        matches!(self, Transport::Doca(_) | Transport::Comch(_))
    }

    /// Largest message this transport carries, header included.
    pub fn max_msg(&self) -> u32 {
        match self {
            Transport::Doca(l) => l.max_msg.get(),
            Transport::Comch(l) => l.max_msg.get(),
            _ => STREAM_MAX_MSG,
        }
    }
}

/// Largest DATA payload a stream queues on a channel that splits DATA into its messages (in
/// clear only: a sealed record holds whole frames). One read from a socket fills it, where
/// frames of a 4 KiB DOCA message's size took one read each.
const SPLIT_DATA: usize = 256 * 1024;

/// Least room worth a read into a [`FrameReader`]'s buffer on a stream transport.
const MIN_ROOM: usize = 64 * 1024;

/// Least receive buffer of a [`FrameReader`].
const READ_AHEAD: usize = 256 * 1024;

/// Reads frames from a transport through one reusable buffer.
pub struct FrameReader {
    transport: Transport,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_msg: usize,
    /// The last read came back short: the socket is drained.
    drained: bool,
    /// Largest DATA payload accepted.
    pub max_data: usize,
    /// An encrypted channel's receiving direction, once its handshake is done.
    opener: Option<CipherState>,
    /// Bytes of frames left in the record being decoded; its tag follows them.
    record_left: usize,
}

impl FrameReader {
    /// A reader for messages of up to `max_msg` bytes.
    pub fn new(transport: Transport, max_msg: u32) -> Self {
        let max_msg = max_msg as usize;
        FrameReader {
            transport,
            // Twice the largest frame lets one read pick up several frames at once; with small
            // messages (DOCA's 4 KiB) a burst of them, whose DATA then goes out in one write.
            buf: vec![0; (2 * max_msg).max(READ_AHEAD)],
            start: 0,
            end: 0,
            max_msg,
            drained: false,
            max_data: max_msg - HEADER_LEN,
            opener: None,
            record_left: 0,
        }
    }

    /// Queues bytes that were received before the reader existed (a DOCA host's first message).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// From now on, opens sealed records with `cs` and decodes frames only from inside them.
    /// The handshake calls it; public for the fuzz targets.
    pub fn set_opener(&mut self, cs: CipherState) {
        self.opener = Some(cs);
    }

    /// Whether no received bytes are waiting to be decoded.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Reads more bytes from the transport. The channel closing is an error here.
    pub async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.must_compact() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let room = self.buf.len() - self.end;
        let n = self
            .transport
            .read(&mut self.buf[self.end..], self.drained)
            .await?;
        self.drained = n < room;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the channel",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// Whether the bytes waiting must move to the front before the next read: when the room
    /// behind them is too small for a worthwhile read (or for one whole DOCA message), or the
    /// frame or record they begin does not fit before the buffer's end. Moving them whenever
    /// less than a largest message was left moved half a MiB per MiB received in bulk.
    fn must_compact(&self) -> bool {
        let room = self.buf.len() - self.end;
        let waiting = &self.buf[self.start..self.end];
        // Inside an open record every frame is whole, so only a record or a frame can be cut.
        let next = if waiting.len() >= HEADER_LEN {
            frame_len(waiting)
        } else {
            HEADER_LEN
        };
        room < self.max_msg.min(MIN_ROOM) || self.start + next > self.buf.len()
    }

    /// The next whole frame in the buffer, if any.
    pub fn take_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        if !self.open_next_record()? {
            return Ok(None);
        }
        let sealed = self.opener.is_some();
        match Frame::decode(&self.buf[self.region()], self.max_data) {
            Ok(Some((frame, used))) => {
                self.start += used;
                if sealed {
                    self.record_left -= used;
                    if self.record_left == 0 {
                        self.start += TAG_LEN;
                    }
                }
                Ok(Some(frame))
            }
            Ok(None) if sealed => Err("a frame runs past the end of its record".into()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The stream of the next frame if it is a whole DATA frame, so that a run of DATA for one
    /// stream can be taken ([`FrameReader::take_data`]) and written out in one call.
    pub fn peek_data(&mut self) -> Result<Option<u32>, String> {
        if !self.open_next_record()? {
            return Ok(None);
        }
        match Frame::decode(&self.buf[self.region()], self.max_data) {
            Ok(Some((Frame::Data(id, _), _))) => Ok(Some(id)),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Takes the next frame, which [`FrameReader::peek_data`] said is DATA, and returns its
    /// stream and where its payload lies in [`FrameReader::buffered`]. The place holds until
    /// the next [`FrameReader::fill`].
    pub fn take_data(&mut self) -> Result<Option<(u32, std::ops::Range<usize>)>, String> {
        let base = self.buf.as_ptr() as usize;
        Ok(match self.take_frame()? {
            Some(Frame::Data(id, data)) => {
                let at = data.as_ptr() as usize - base;
                Some((id, at..at + data.len()))
            }
            _ => None,
        })
    }

    /// The receive buffer, for payloads found with [`FrameReader::take_data`].
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// On an encrypted channel, opens the next record in place once it is all here. Returns
    /// whether there are frame bytes to decode.
    fn open_next_record(&mut self) -> Result<bool, String> {
        let Some(cs) = &mut self.opener else {
            return Ok(true);
        };
        while self.record_left == 0 {
            let at = &mut self.buf[self.start..self.end];
            match record::open_record(cs, at, self.max_msg) {
                Ok(None) => return Ok(false),
                Ok(Some(len)) => {
                    self.start += HEADER_LEN;
                    self.record_left = len;
                    if len == 0 {
                        self.start += TAG_LEN;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(true)
    }

    /// Where the next frame is decoded from: the rest of the open record, or all buffered.
    fn region(&self) -> std::ops::Range<usize> {
        match self.opener {
            Some(_) => self.start..self.start + self.record_left,
            None => self.start..self.end,
        }
    }

    /// Reads until a whole frame is available and returns it.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame<'_>, HandshakeError> {
        loop {
            // Decode twice to keep the borrow checker happy about returning the frame.
            if Frame::decode(&self.buf[self.start..self.end], self.max_data)
                .map_err(|e| HandshakeError::Protocol(e.to_string()))?
                .is_some()
            {
                return Ok(self
                    .take_frame()
                    .map_err(HandshakeError::Protocol)?
                    .expect("decoded above"));
            }
            self.fill().await.map_err(HandshakeError::Io)?;
        }
    }
}

/// What the handshake settled.
#[derive(Debug)]
pub struct Agreed {
    /// Largest DATA payload to queue (a DOCA channel in clear splits it into its messages).
    pub max_data: usize,
    /// Initial send credit per stream (the peer's window).
    pub peer_window: u32,
    /// The peer's HELLO: its instance identity and label.
    pub peer: Hello,
    /// Seals what this side sends, on an encrypted channel (the reader opens what arrives).
    pub sealer: Option<Sealer>,
    /// DPU side: the frame that admits the host ([`admit`] sends it), once this side has
    /// decided to serve it. Empty on the host side.
    verdict: Vec<u8>,
}

/// DPU side: ends the handshake by admitting the host (its AUTH, or an empty AUTH without a
/// key). Until then the host has not seen the DPU side's proof and sends nothing.
pub async fn admit(t: &Transport, agreed: &Agreed) -> io::Result<()> {
    t.write_all(&agreed.verdict).await
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The transport failed.
    Io(io::Error),
    /// This side refused the peer (and told it why).
    Refused(String),
    /// The peer refused this side.
    PeerRefused(String),
    /// The peer sent something that is not this protocol.
    Protocol(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Refused(m) => write!(f, "{m}"),
            HandshakeError::PeerRefused(m) => write!(f, "the peer refused us: {m}"),
            HandshakeError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

/// Runs the handshake on a fresh channel connection: HELLO both ways, checks, then AUTH both
/// ways when a key is configured. On a mismatch the peer is sent an ERROR saying why.
pub async fn handshake(
    t: &Transport,
    reader: &mut FrameReader,
    cfg: &Config,
) -> Result<Agreed, HandshakeError> {
    let security = cfg.security();
    let mine = Hello {
        version: VERSION,
        security: security.code(),
        max_msg: t.max_msg(),
        window: STREAM_WINDOW,
        nonce: auth::nonce().map_err(HandshakeError::Io)?,
        service: cfg.cc_name.clone(),
        instance: takeover::instance(),
        label: takeover::label().to_string(),
    };
    let my_payload = mine.encode();
    let mut out = Vec::new();
    Frame::Hello(&my_payload).encode(&mut out);
    t.write_all(&out).await.map_err(HandshakeError::Io)?;

    let peer_payload = match reader.next_frame().await? {
        Frame::Hello(p) => p.to_vec(),
        Frame::Error(p) => return Err(HandshakeError::PeerRefused(lossy(p))),
        other => {
            return Err(HandshakeError::Protocol(format!(
                "expected HELLO, got {other:?}"
            )))
        }
    };
    let peer = Hello::decode(&peer_payload).map_err(HandshakeError::Protocol)?;
    let problem = if peer.version != VERSION {
        Some(format!(
            "protocol version mismatch: ours is {VERSION}, the peer's {} (run the same release on both sides)",
            peer.version
        ))
    } else if peer.service != cfg.cc_name {
        Some(format!(
            "service name mismatch: this side serves {:?}, the peer {:?}",
            cfg.cc_name, peer.service
        ))
    } else if peer.security != mine.security {
        Some(security_mismatch(security, peer.security))
    } else if peer.max_msg < MIN_MAX_MSG || peer.window < peer.max_msg {
        Some(format!(
            "unusable peer limits (message size {}, window {})",
            peer.max_msg, peer.window
        ))
    } else {
        None
    };
    if let Some(msg) = problem {
        return Err(refuse(t, msg).await);
    }

    let (host_hello, dpu_hello) = match cfg.role {
        Role::Host => (&my_payload, &peer_payload),
        Role::Dpu => (&peer_payload, &my_payload),
    };
    let max_msg = peer.max_msg.min(mine.max_msg);
    let mut agreed = Agreed {
        max_data: max_msg as usize - HEADER_LEN,
        peer_window: peer.window,
        peer,
        sealer: None,
        verdict: Vec::new(),
    };
    let verdict = &mut agreed.verdict;
    match (security, &cfg.psk, cfg.role) {
        (Security::Sealed(cipher), Some(key), role) => {
            let keys = noise::handshake(
                t,
                reader,
                (cipher, key, role),
                (host_hello, dpu_hello),
                verdict,
            )
            .await?;
            // Whatever the peer sends after its handshake message is sealed.
            reader.set_opener(keys.recv);
            agreed.sealer = Some(Sealer::new(keys.send, max_msg as usize));
            agreed.max_data = record::max_run(max_msg as usize) - HEADER_LEN;
        }
        // The host proves itself first and the DPU answers only a host it has verified, so a
        // stranger who reaches the DPU's port never gets a proof to guess the key from offline.
        (_, Some(key), Role::Host) => {
            send_proof(t, key, Role::Host, host_hello, dpu_hello).await?;
            match reader.next_frame().await? {
                Frame::Auth(p) if auth::verify(key, Role::Dpu, host_hello, dpu_hello, p) => {}
                Frame::Auth(_) => return Err(refuse(t, AUTH_FAILED.into()).await),
                other => return Err(unexpected(other, "AUTH")),
            }
        }
        (_, Some(key), Role::Dpu) => {
            match reader.next_frame().await? {
                Frame::Auth(p) if auth::verify(key, Role::Host, host_hello, dpu_hello, p) => {}
                Frame::Auth(_) => return Err(refuse(t, AUTH_FAILED.into()).await),
                other => return Err(unexpected(other, "AUTH")),
            }
            let proof = auth::proof(key, Role::Dpu, host_hello, dpu_hello);
            Frame::Auth(&proof).encode(verdict);
        }
        // Without a key the DPU side's verdict is an empty AUTH.
        (_, None, Role::Host) => match reader.next_frame().await? {
            Frame::Auth([]) => {}
            other => return Err(unexpected(other, "the DPU side's empty AUTH")),
        },
        (_, None, Role::Dpu) => Frame::Auth(&[]).encode(verdict),
    }
    // Message channels must pack frames to what both sides accept, not only this side.
    t.limit_max_msg(max_msg);
    if agreed.sealer.is_none() && t.splits_data() {
        agreed.max_data = agreed.max_data.max(SPLIT_DATA);
    }
    Ok(agreed)
}

/// The reason a peer's security mode is refused, naming what to change.
fn security_mismatch(mine: Security, peer: u16) -> String {
    let theirs = Security::from_code(peer);
    let (what, hint) = match (mine, theirs) {
        (Security::None, _) | (_, Some(Security::None)) => ("authentication", ""),
        (Security::Sealed(_), Some(Security::Sealed(_))) => {
            ("cipher", " (give both sides the same --cipher)")
        }
        _ => (
            "encryption",
            " (give --no-encrypt, or --encrypt, to both sides or to neither)",
        ),
    };
    let theirs = theirs.map_or_else(|| format!("an unknown mode ({peer})"), |s| s.to_string());
    format!("{what} mismatch: this side uses {mine}, the peer {theirs}{hint}")
}

pub(crate) const AUTH_FAILED: &str = "authentication failed: the peer's pre-shared key differs";

/// The peer's ERROR (it refused us) or any other frame where `expected` should have come.
pub(crate) fn unexpected(frame: Frame<'_>, expected: &str) -> HandshakeError {
    match frame {
        Frame::Error(p) => HandshakeError::PeerRefused(lossy(p)),
        other => HandshakeError::Protocol(format!("expected {expected}, got {other:?}")),
    }
}

async fn send_proof(
    t: &Transport,
    key: &crate::config::Psk,
    prover: Role,
    host_hello: &[u8],
    dpu_hello: &[u8],
) -> Result<(), HandshakeError> {
    let proof = auth::proof(key, prover, host_hello, dpu_hello);
    let mut out = Vec::new();
    Frame::Auth(&proof).encode(&mut out);
    t.write_all(&out).await.map_err(HandshakeError::Io)
}

/// Sends ERROR with `msg` and closes the channel.
pub async fn refuse(t: &Transport, msg: String) -> HandshakeError {
    let mut out = Vec::new();
    // The peer rejects control payloads over the limit, which would lose the reason.
    let text = crate::protocol::cut(&msg, crate::protocol::MAX_CONTROL_PAYLOAD);
    Frame::Error(text.as_bytes()).encode(&mut out);
    let _ = t.write_all(&out).await;
    t.close();
    HandshakeError::Refused(msg)
}

/// A peer's ERROR text, made safe to log: it comes from an unauthenticated peer, so it is
/// quoted (no forged log lines) and cut short.
pub(crate) fn lossy(p: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(p).chars().take(200).collect();
    format!("{text:?}")
}
