//! Why a channel's bytes could not be read as frames.

use crate::wire::record::RecordError;
use crate::wire::DecodeError;
use std::fmt;
use std::io;

/// Why the peer's bytes are not frames of this protocol. Any of these ends the channel.
#[derive(Debug)]
pub enum FrameError {
    /// A frame that does not decode.
    Decode(DecodeError),
    /// A sealed record that does not open.
    Record(RecordError),
    /// A frame runs past the end of its record.
    PastRecord,
    /// Something other than a handshake frame (HELLO, AUTH, ERROR) during the handshake.
    NotHandshake(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Decode(e) => write!(f, "{e}"),
            FrameError::Record(e) => write!(f, "{e}"),
            FrameError::PastRecord => f.write_str("a frame runs past the end of its record"),
            FrameError::NotHandshake(ty) => {
                write!(f, "expected a handshake frame, got type 0x{ty:02x}")
            }
        }
    }
}

/// Why a handshake frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The transport failed or closed.
    Io(io::Error),
    /// The peer sent something that is not this protocol.
    Frame(FrameError),
}

impl From<FrameError> for ReadError {
    fn from(e: FrameError) -> Self {
        ReadError::Frame(e)
    }
}
