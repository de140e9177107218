//! Why a session ended: what [`Session::run`](super::Session::run) returns, what the log line
//! says, and how `--metrics` counts it.

use crate::link::FrameError;
use std::fmt;
use std::io;
use std::time::Duration;

/// Why a session ended. Its text is what the log line of a lost channel shows.
#[derive(Debug)]
pub enum EndReason {
    /// The session was killed: replaced by a newer one, or shut down.
    Killed,
    /// The peer opened a stream, and this side (the host) does not take OPEN.
    OpenRefused,
    /// OPEN for stream 0 or for one already open.
    DuplicateOpen(u32),
    /// The peer sent ERROR (its reason, quoted).
    PeerError(String),
    /// The peer sent GOAWAY (its reason, quoted).
    PeerShutdown(String),
    /// HELLO or AUTH after the handshake.
    HandshakeFrame,
    /// A frame that cannot be decoded (or a record that cannot be opened).
    BadFrame(FrameError),
    /// Reading the channel failed, or the peer closed it.
    ReadFailed(io::Error),
    /// Writing to the channel failed.
    WriteFailed(io::Error),
    /// Nothing arrived from the peer for this long.
    Silent(Duration),
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Killed => f.write_str("session ended"),
            EndReason::OpenRefused => {
                f.write_str("the peer opened a stream; only the host side may")
            }
            EndReason::DuplicateOpen(id) => {
                write!(f, "OPEN for stream {id}, which is already open")
            }
            EndReason::PeerError(why) => write!(f, "the peer ended the session: {why}"),
            EndReason::PeerShutdown(why) => write!(f, "the peer is shutting down: {why}"),
            EndReason::HandshakeFrame => f.write_str("handshake frame after the handshake"),
            EndReason::BadFrame(e) => write!(f, "bad frame from the peer: {e}"),
            EndReason::ReadFailed(e) => write!(f, "channel read failed: {e}"),
            EndReason::WriteFailed(e) => write!(f, "channel write failed: {e}"),
            EndReason::Silent(t) => write!(f, "nothing heard from the peer for {} s", t.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DecodeError;

    /// The log lines tests and operators grep for.
    #[test]
    fn the_text_is_the_log_line() {
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the channel");
        let cases = [
            (EndReason::Killed, "session ended"),
            (
                EndReason::OpenRefused,
                "the peer opened a stream; only the host side may",
            ),
            (
                EndReason::DuplicateOpen(7),
                "OPEN for stream 7, which is already open",
            ),
            (
                EndReason::PeerError("\"bye\"".into()),
                "the peer ended the session: \"bye\"",
            ),
            (
                EndReason::PeerShutdown("\"shutting down\"".into()),
                "the peer is shutting down: \"shutting down\"",
            ),
            (
                EndReason::HandshakeFrame,
                "handshake frame after the handshake",
            ),
            (
                EndReason::BadFrame(FrameError::Decode(DecodeError::UnknownType(0x7f))),
                "bad frame from the peer: unknown frame type 0x7f",
            ),
            (
                EndReason::ReadFailed(eof),
                "channel read failed: the peer closed the channel",
            ),
            (
                EndReason::WriteFailed(io::Error::from(io::ErrorKind::BrokenPipe)),
                "channel write failed: broken pipe",
            ),
            (
                EndReason::Silent(Duration::from_secs(20)),
                "nothing heard from the peer for 20 s",
            ),
        ];
        for (why, text) in cases {
            assert_eq!(why.to_string(), text);
        }
    }
}
