//! Channel transports between the two roles, frame reading, and the handshake.
//!
//! A channel is a reliable, ordered link that carries whole frames. Stream transports (TCP and
//! AF_UNIX) carry frames back to back; each frame is self-delimiting through its length field.

use crate::doca;
use crate::sys::reactor::{self, Io};
use crate::sys::unix_socket::{self, UnixStream};
use crate::wire::record::{self, CipherState, TAG_LEN};
use crate::wire::{frame_len, is_handshake_type, Frame, HEADER_LEN, STREAM_MAX_MSG};
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

/// One established channel connection.
#[derive(Clone)]
pub enum Transport {
    /// TCP, e.g. over the host-DPU tmfifo link.
    Tcp(Rc<Io<TcpStream>>),
    /// AF_UNIX stream socket.
    Unix(Rc<Io<UnixStream>>),
    /// A DOCA connection (Comm Channel or Comch, the same bridge); each message holds whole
    /// frames.
    Doca(Rc<doca::Link>),
}

impl Transport {
    /// A TCP channel connection, with Nagle off: frames are written whole, and a small one
    /// (a round trip's DATA, a WINDOW) must not wait for the previous one's ACK.
    pub fn tcp(s: async_net::TcpStream) -> io::Result<Transport> {
        s.set_nodelay(true)?;
        Ok(Transport::Tcp(Rc::new(reactor::own(s.into())?)))
    }

    /// An AF_UNIX channel connection, with the send buffer of the relay's own AF_UNIX sockets.
    pub fn unix(s: Io<UnixStream>) -> Transport {
        Transport::Unix(Rc::new(s))
    }

    /// Connects the host side's `unix:PATH` channel.
    pub async fn connect_unix(path: &std::path::Path) -> io::Result<Transport> {
        unix_socket::connect_channel(path)
            .await
            .map(Transport::unix)
    }

    /// An AF_UNIX socket of any type as a channel (a SEQPACKET one stands in for a DOCA
    /// channel's message boundaries in tests and fuzz targets). Must be used on the thread
    /// that runs [`reactor::block_on`].
    #[cfg(unix)]
    pub fn unix_socket(s: UnixStream) -> io::Result<Transport> {
        unix_socket::own_any(s).map(Transport::unix)
    }
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
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            Transport::Unix(s) => s.write_all(buf).await,
            Transport::Doca(l) => l.write_frames(buf).await,
        }
    }

    /// Writes all of `bufs`, in order: the sealed records of an encrypted channel, written
    /// where they lie. A DOCA channel copies each message into its own buffers anyway, so it
    /// gets them joined.
    pub async fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all_vectored(bufs).await,
            Transport::Unix(s) => s.write_all_vectored(bufs).await,
            Transport::Doca(_) => {
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
            Transport::Doca(_) => Ok(()),
        };
    }

    /// Lowers the message size used to pack frames to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        match self {
            Transport::Doca(l) => l.limit_max_msg(agreed),
            Transport::Tcp(_) | Transport::Unix(_) => {}
        }
    }

    /// Whether the transport splits DATA frames larger than its messages when it packs them
    /// ([`crate::wire::pack_messages`]): the DOCA channels.
    pub fn splits_data(&self) -> bool {
        matches!(self, Transport::Doca(_))
    }

    /// Largest message this transport carries, header included.
    pub fn max_msg(&self) -> u32 {
        match self {
            Transport::Doca(l) => l.max_msg.get(),
            _ => STREAM_MAX_MSG,
        }
    }
}

/// Least room worth a read into a [`FrameReader`]'s buffer on a stream transport.
const MIN_ROOM: usize = 64 * 1024;

/// Least receive buffer of a [`FrameReader`].
const READ_AHEAD: usize = 256 * 1024;

/// Receive buffer of a stream transport's reader until the handshake is over: room for a
/// HELLO and an AUTH (at most 1033 and 521 bytes). A stranger that never proves the key costs
/// this much, not a whole buffer (2 MiB on a stream transport).
pub const HANDSHAKE_BUF: usize = 4096;

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
        let size = Self::full_size(max_msg as usize);
        Self::with_buffer(transport, max_msg, size)
    }

    /// A reader for a handshake: a small buffer until `FrameReader::grow`, which the
    /// handshake calls once the peer is admitted. A DOCA channel delivers whole messages, so
    /// its reader starts with room for two.
    pub fn for_handshake(transport: Transport, max_msg: u32) -> Self {
        let size = if transport.splits_data() {
            2 * max_msg as usize
        } else {
            HANDSHAKE_BUF
        };
        Self::with_buffer(transport, max_msg, size)
    }

    /// Twice the largest frame lets one read pick up several frames at once; with small
    /// messages (DOCA's 4 KiB) a burst of them, whose DATA then goes out in one write.
    fn full_size(max_msg: usize) -> usize {
        (2 * max_msg).max(READ_AHEAD)
    }

    fn with_buffer(transport: Transport, max_msg: u32, size: usize) -> Self {
        let max_msg = max_msg as usize;
        FrameReader {
            transport,
            buf: vec![0; size],
            start: 0,
            end: 0,
            max_msg,
            drained: false,
            max_data: max_msg - HEADER_LEN,
            opener: None,
            record_left: 0,
        }
    }

    /// Grows the buffer to its full size, keeping what it holds: the handshake is over.
    pub(crate) fn grow(&mut self) {
        let full = Self::full_size(self.max_msg);
        if self.buf.len() < full {
            self.buf.resize(full, 0);
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

    /// Reads until a whole handshake frame (HELLO, AUTH or ERROR) is available and returns
    /// it. Any other frame is refused as soon as its type byte is in: a DATA header announcing
    /// a MiB is not waited on.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame<'_>, ReadError> {
        loop {
            if let Some(&ty) = self.buf[self.start..self.end].first() {
                if ty == crate::wire::T_SEALED {
                    // Says which setting differs rather than only "not a handshake frame".
                    let sealed = crate::wire::DecodeError::UnknownType(ty);
                    return Err(ReadError::Protocol(sealed.to_string()));
                }
                if !is_handshake_type(ty) {
                    return Err(ReadError::Protocol(format!(
                        "expected a handshake frame, got type 0x{ty:02x}"
                    )));
                }
            }
            // Decode twice to keep the borrow checker happy about returning the frame.
            if Frame::decode(&self.buf[self.start..self.end], self.max_data)
                .map_err(|e| ReadError::Protocol(e.to_string()))?
                .is_some()
            {
                return Ok(self
                    .take_frame()
                    .map_err(ReadError::Protocol)?
                    .expect("decoded above"));
            }
            self.fill().await.map_err(ReadError::Io)?;
        }
    }
}

/// Why a handshake frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The transport failed or closed.
    Io(io::Error),
    /// The peer sent something that is not this protocol.
    Protocol(String),
}
