//! The wire protocol between the host and DPU sides: pure encode and decode, no I/O.
//!
//! Every frame starts with a 9-byte big-endian header `type u8 | stream u32 | value u32`. For
//! frames that carry a payload (HELLO, AUTH, ERROR, GOAWAY, DATA) `value` is the payload length; for the
//! others it is the frame's one argument. See `docs/PROTOCOL.md` for the whole design.

use std::fmt;

mod hello;
pub mod record;
mod security;
#[cfg(test)]
pub(crate) mod test_rng;
pub use hello::{Hello, Identity, PayloadError, Verdict, MAX_REASON};
pub use security::{Cipher, Security};

/// Largest message a stream transport accepts, header included. A bulk stream's DATA frames
/// grow to this size (see `mux::pump`), and each is written to the far socket in one
/// write: at 256 KiB that was 4-5 writes per MiB, at 1 MiB it is about one.
pub const STREAM_MAX_MSG: u32 = 1024 * 1024;
/// Receive window granted per stream. At 1 MiB a bulk stream ran out of credit every MiB and
/// waited a WINDOW round trip (17-24 system calls per MiB per relay process); at 4 MiB it
/// rarely waits (12-13). It is also what a stream whose application stops reading can hold
/// in the relay, on top of its socket buffer.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Smallest message size a channel may have; below it HELLO itself would not fit.
pub const MIN_MAX_MSG: u32 = 1024;

/// Size of every frame header.
pub const HEADER_LEN: usize = 9;
/// Protocol version carried in HELLO. Version 2 added STOP, the instance identity in HELLO,
/// the DPU side's verdict that ends every handshake, and GOAWAY; version 3 the security mode
/// in HELLO and the encrypted channel (Noise handshake, SEALED records); version 4 records as
/// large as a channel message (1 MiB on stream transports, up from 64 KiB); version 5 a DPU
/// side that speaks only after the host's HELLO, the host's identity moved from HELLO into its
/// AUTH (encrypted, or covered by the proof) and a verdict that says admitted or refused inside
/// the DPU side's AUTH (authenticated whenever a key is configured).
pub const VERSION: u16 = 5;
/// First bytes of every HELLO payload, so a stray peer is recognised at once.
pub const MAGIC: [u8; 4] = *b"DSRL";
/// Length of the handshake nonces.
pub const NONCE_LEN: usize = 32;
/// Length of an AUTH proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
/// Largest AUTH payload: a proof or a Noise handshake message (an ephemeral key and a tag),
/// with the host's identity or the DPU side's verdict (which may carry a refusal's reason).
pub const MAX_AUTH_PAYLOAD: usize = 512;
/// Largest payload of HELLO, ERROR and GOAWAY.
pub const MAX_CONTROL_PAYLOAD: usize = 1024;
/// Length of the per-process instance identity the host sends.
pub const INSTANCE_LEN: usize = 16;
/// Longest label (host name and process id) the host sends in its identity.
pub const MAX_LABEL: usize = 100;

const T_HELLO: u8 = 0x01;
const T_AUTH: u8 = 0x02;
const T_ERROR: u8 = 0x03;
const T_GOAWAY: u8 = 0x04;
/// An encrypted record (one Noise transport message) holding whole frames; see
/// [`crate::wire`]. Never decoded by [`Frame::decode`].
pub const T_SEALED: u8 = 0x05;
const T_OPEN: u8 = 0x10;
const T_DATA: u8 = 0x11;
const T_WINDOW: u8 = 0x12;
const T_CLOSE: u8 = 0x13;
const T_RESET: u8 = 0x14;
const T_STOP: u8 = 0x15;
const T_PING: u8 = 0x20;
const T_PONG: u8 = 0x21;

/// Why a stream was reset, as carried on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetReason(pub u32);

impl ResetReason {
    /// The server application's socket could not be connected.
    pub const SERVER_UNAVAILABLE: Self = Self(1);
    /// The receiving side is at its client limit.
    pub const LIMIT: Self = Self(2);
    /// The peer broke the protocol on this stream (e.g. overran its window).
    pub const PROTOCOL: Self = Self(3);
    /// The local socket failed or was closed abruptly.
    pub const SOCKET_ERROR: Self = Self(4);
    /// The relay is shutting down.
    pub const SHUTDOWN: Self = Self(5);
    /// Local only, never sent: the channel was lost.
    pub const CHANNEL_LOST: Self = Self(0xffff_ffff);
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SERVER_UNAVAILABLE => f.write_str("server application unavailable"),
            Self::LIMIT => f.write_str("client limit reached"),
            Self::PROTOCOL => f.write_str("protocol violation"),
            Self::SOCKET_ERROR => f.write_str("socket error on the far side"),
            Self::SHUTDOWN => f.write_str("relay shutting down"),
            Self::CHANNEL_LOST => f.write_str("channel lost"),
            Self(n) => write!(f, "reason {n}"),
        }
    }
}

/// One decoded frame, borrowing its payload from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Handshake parameters; decode with [`Hello::decode`].
    Hello(&'a [u8]),
    /// Handshake proof of key possession.
    Auth(&'a [u8]),
    /// Fatal session error with a human-readable reason; the sender closes the channel.
    Error(&'a [u8]),
    /// The sender is shutting down cleanly (UTF-8 reason); it closes the channel next.
    GoAway(&'a [u8]),
    /// A new stream (host to DPU only).
    Open(u32),
    /// Stream bytes.
    Data(u32, &'a [u8]),
    /// The receiver consumed this many bytes; the sender may send that much more.
    Window(u32, u32),
    /// Half-close: the sender will send no more DATA on the stream.
    Close(u32),
    /// Abort the stream in both directions.
    Reset(u32, ResetReason),
    /// The receiver's local socket no longer takes bytes: stop sending DATA on the stream and
    /// CLOSE it. The other direction is not affected.
    Stop(u32),
    /// Keepalive request, echoed by PONG with the same token.
    Ping(u32),
    /// Keepalive answer.
    Pong(u32),
}

/// A frame that cannot be decoded. Any of these ends the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The type byte is not one this version knows.
    UnknownType(u8),
    /// A payload longer than the limit agreed in the handshake.
    TooLong(u8, u32),
    /// A frame that must use stream 0 did not, or the reverse.
    BadStream(u8, u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType(T_SEALED) => f.write_str(
                "an encrypted record (frame type 0x05) on a channel in clear: the peer encrypts \
                 and this side does not (--encrypt/--no-encrypt must agree on both sides)",
            ),
            Self::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            Self::TooLong(t, n) => write!(
                f,
                "frame type 0x{t:02x} with oversized payload of {n} bytes"
            ),
            Self::BadStream(t, s) => write!(f, "frame type 0x{t:02x} on invalid stream {s}"),
        }
    }
}

/// Appends a frame header.
#[inline]
pub fn put_header(out: &mut Vec<u8>, ty: u8, stream: u32, value: u32) {
    let mut h = [0u8; HEADER_LEN];
    h[0] = ty;
    h[1..5].copy_from_slice(&stream.to_be_bytes());
    h[5..9].copy_from_slice(&value.to_be_bytes());
    out.extend_from_slice(&h);
}

/// Writes a DATA header into `slot`, which must be [`HEADER_LEN`] bytes reserved in place.
#[inline]
pub fn fill_data_header(slot: &mut [u8], stream: u32, len: u32) {
    slot[0] = T_DATA;
    slot[1..5].copy_from_slice(&stream.to_be_bytes());
    slot[5..9].copy_from_slice(&len.to_be_bytes());
}

/// Total length of the frame at the front of `buf`, which must hold at least its header.
/// Used to pack whole frames into size-limited messages.
pub fn frame_len(buf: &[u8]) -> usize {
    let value = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
    match buf[0] {
        T_DATA | T_HELLO | T_AUTH | T_ERROR | T_GOAWAY | T_SEALED => HEADER_LEN + value,
        _ => HEADER_LEN,
    }
}

/// Whether a frame whose first byte is `ty` may come during the handshake (HELLO, AUTH,
/// ERROR): anything else is refused as soon as its first byte is in, not once it is whole.
pub fn is_handshake_type(ty: u8) -> bool {
    matches!(ty, T_HELLO | T_AUTH | T_ERROR)
}

/// Packs `buf`, which holds whole frames, into messages of at most `max` bytes each, for
/// channels that carry size-limited messages (DOCA), copying each out as the channel needs. A
/// DATA frame that does not fit the room left in a message is split into DATA frames of the
/// same stream, so every message is full and a sender may queue DATA larger than a message: it
/// reads its socket in large reads and pays for the headers here, in a copy made anyway. Any
/// other frame larger than `max` is an error.
pub fn pack_messages(buf: &[u8], max: usize) -> Messages<'_> {
    Messages {
        buf,
        pos: 0,
        max,
        split: None,
    }
}

/// The messages of [`pack_messages`].
pub struct Messages<'a> {
    buf: &'a [u8],
    pos: usize,
    max: usize,
    /// A DATA frame being split: its stream and the payload bytes left, which start at `pos`.
    split: Option<(u32, usize)>,
}

impl Iterator for Messages<'_> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let mut msg = Vec::with_capacity(self.max);
        loop {
            let room = self.max - msg.len();
            if let Some((id, left)) = self.split {
                if room <= HEADER_LEN {
                    break;
                }
                let n = left.min(room - HEADER_LEN);
                put_header(&mut msg, T_DATA, id, n as u32);
                msg.extend_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                self.split = (left > n).then_some((id, left - n));
                continue;
            }
            let rest = &self.buf[self.pos..];
            if rest.is_empty() {
                break;
            }
            let len = frame_len(rest);
            if len <= room {
                msg.extend_from_slice(&rest[..len]);
                self.pos += len;
            } else if rest[0] == T_DATA && room > HEADER_LEN {
                let id = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                self.split = Some((id, len - HEADER_LEN));
                self.pos += HEADER_LEN;
            } else if msg.is_empty() {
                self.pos = self.buf.len();
                return Some(Err(std::io::Error::other(
                    "a frame larger than the channel's message size",
                )));
            } else {
                break;
            }
        }
        Some(Ok(msg))
    }
}

impl Frame<'_> {
    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload = |out: &mut Vec<u8>, ty, stream, p: &[u8]| {
            put_header(out, ty, stream, p.len() as u32);
            out.extend_from_slice(p);
        };
        match *self {
            Frame::Hello(p) => payload(out, T_HELLO, 0, p),
            Frame::Auth(p) => payload(out, T_AUTH, 0, p),
            Frame::Error(p) => payload(out, T_ERROR, 0, p),
            Frame::GoAway(p) => payload(out, T_GOAWAY, 0, p),
            Frame::Data(s, p) => payload(out, T_DATA, s, p),
            Frame::Open(s) => put_header(out, T_OPEN, s, 0),
            Frame::Window(s, n) => put_header(out, T_WINDOW, s, n),
            Frame::Close(s) => put_header(out, T_CLOSE, s, 0),
            Frame::Reset(s, r) => put_header(out, T_RESET, s, r.0),
            Frame::Stop(s) => put_header(out, T_STOP, s, 0),
            Frame::Ping(t) => put_header(out, T_PING, 0, t),
            Frame::Pong(t) => put_header(out, T_PONG, 0, t),
        }
    }

    /// Decodes one frame from the front of `buf`. Returns `Ok(None)` when `buf` does not yet hold
    /// a whole frame, else the frame and how many bytes it used. DATA payloads may be at most
    /// `max_data` bytes.
    pub fn decode(buf: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let ty = buf[0];
        let stream = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let value = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        let limit = match ty {
            T_DATA => max_data,
            T_HELLO | T_ERROR | T_GOAWAY => MAX_CONTROL_PAYLOAD,
            T_AUTH => MAX_AUTH_PAYLOAD,
            T_OPEN | T_WINDOW | T_CLOSE | T_RESET | T_STOP | T_PING | T_PONG => 0,
            _ => return Err(DecodeError::UnknownType(ty)),
        };
        let session_level = matches!(ty, T_HELLO | T_AUTH | T_ERROR | T_GOAWAY | T_PING | T_PONG);
        if session_level != (stream == 0) {
            return Err(DecodeError::BadStream(ty, stream));
        }
        let body = if limit == 0 { 0 } else { value as usize };
        if body > limit {
            return Err(DecodeError::TooLong(ty, value));
        }
        let used = HEADER_LEN + body;
        if buf.len() < used {
            return Ok(None);
        }
        let p = &buf[HEADER_LEN..used];
        let frame = match ty {
            T_HELLO => Frame::Hello(p),
            T_AUTH => Frame::Auth(p),
            T_ERROR => Frame::Error(p),
            T_GOAWAY => Frame::GoAway(p),
            T_DATA => Frame::Data(stream, p),
            T_OPEN => Frame::Open(stream),
            T_WINDOW => Frame::Window(stream, value),
            T_CLOSE => Frame::Close(stream),
            T_RESET => Frame::Reset(stream, ResetReason(value)),
            T_STOP => Frame::Stop(stream),
            T_PING => Frame::Ping(value),
            _ => Frame::Pong(value),
        };
        Ok(Some((frame, used)))
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
