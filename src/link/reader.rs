//! Frames out of a transport's bytes, through one reusable buffer: decoded in place, and on an
//! encrypted channel opened record by record in place.

use super::{FrameError, ReadError, Transport};
use crate::wire::record::{self, CipherState, TAG_LEN};
use crate::wire::{frame_len, is_handshake_type, DecodeError, Frame, HEADER_LEN, T_SEALED};
use std::io;

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
            max_data: max_msg - HEADER_LEN,
            opener: None,
            record_left: 0,
        }
    }

    /// Grows the buffer to its full size, keeping what it holds: the handshake is over.
    pub(crate) fn grow(&mut self) {
        let full = Self::full_size(self.max_msg);
        if self.buf.len() < full {
            // A fresh zeroed buffer, not `resize`: the allocator maps zeroed pages that cost
            // nothing until a read fills them, where `resize` writes every byte (2 MiB resident
            // per side at once, measured as +4.4 MB RSS for an idle relay pair).
            let mut buf = vec![0; full];
            buf[..self.end].copy_from_slice(&self.buf[..self.end]);
            self.buf = buf;
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
        let n = self.transport.read(&mut self.buf[self.end..]).await?;
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
    pub fn take_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
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
            Ok(None) if sealed => Err(FrameError::PastRecord),
            Ok(None) => Ok(None),
            Err(e) => Err(FrameError::Decode(e)),
        }
    }

    /// The stream of the next frame if it is a whole DATA frame, so that a run of DATA for one
    /// stream can be taken ([`FrameReader::take_data`]) and written out in one call.
    pub fn peek_data(&mut self) -> Result<Option<u32>, FrameError> {
        if !self.open_next_record()? {
            return Ok(None);
        }
        match Frame::decode(&self.buf[self.region()], self.max_data) {
            Ok(Some((Frame::Data(id, _), _))) => Ok(Some(id)),
            Ok(_) => Ok(None),
            Err(e) => Err(FrameError::Decode(e)),
        }
    }

    /// Takes the next frame, which [`FrameReader::peek_data`] said is DATA, and returns its
    /// stream and where its payload lies in [`FrameReader::buffered`]. The place holds until
    /// the next [`FrameReader::fill`].
    pub fn take_data(&mut self) -> Result<Option<(u32, std::ops::Range<usize>)>, FrameError> {
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
    fn open_next_record(&mut self) -> Result<bool, FrameError> {
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
                Err(e) => return Err(FrameError::Record(e)),
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
                if ty == T_SEALED {
                    // Says which setting differs rather than only "not a handshake frame".
                    return Err(FrameError::Decode(DecodeError::UnknownType(ty)).into());
                }
                if !is_handshake_type(ty) {
                    return Err(FrameError::NotHandshake(ty).into());
                }
            }
            // Decode twice to keep the borrow checker happy about returning the frame.
            if Frame::decode(&self.buf[self.start..self.end], self.max_data)
                .map_err(FrameError::Decode)?
                .is_some()
            {
                return Ok(self.take_frame()?.expect("decoded above"));
            }
            self.fill().await.map_err(ReadError::Io)?;
        }
    }
}
