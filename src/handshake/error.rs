//! Why a handshake failed, as the log and `--metrics` tell it apart.

use crate::counters::HandshakeFailure;
use crate::link::ReadError;
use crate::logging::text::lossy;
use crate::wire::Frame;
use std::fmt;
use std::io;

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The transport failed.
    Io(io::Error),
    /// This side refused the peer (and told it why).
    Refused(String),
    /// The peer refused this side, in a verdict authenticated with the key.
    PeerRefused(String),
    /// The peer sent an ERROR in clear, or a refusal without a key to authenticate it: only
    /// its claim (anyone on the path could have sent it), quoted.
    PeerClaim(String),
    /// The peer sent something that is not this protocol.
    Protocol(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Refused(m) => write!(f, "{m}"),
            HandshakeError::PeerRefused(m) => write!(f, "the peer refused us: {m}"),
            HandshakeError::PeerClaim(m) => {
                write!(f, "the peer says (unauthenticated, so only its claim): {m}")
            }
            HandshakeError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl From<ReadError> for HandshakeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => HandshakeError::Io(e),
            ReadError::Frame(e) => HandshakeError::Protocol(e.to_string()),
        }
    }
}

impl HandshakeError {
    /// How `--metrics` counts this failure.
    pub fn failure(&self) -> HandshakeFailure {
        match self {
            HandshakeError::Io(_) => HandshakeFailure::Io,
            HandshakeError::Refused(m) if m == AUTH_FAILED => HandshakeFailure::Key,
            HandshakeError::Refused(_)
            | HandshakeError::PeerRefused(_)
            | HandshakeError::PeerClaim(_) => HandshakeFailure::Refused,
            HandshakeError::Protocol(_) => HandshakeFailure::Protocol,
        }
    }
}

pub(crate) const AUTH_FAILED: &str =
    "authentication failed: transcript or key mismatch (the pre-shared keys differ, or the handshake was altered on the way)";

/// The peer's clear ERROR (only its claim) or any other frame where `expected` should have come.
pub(crate) fn unexpected(frame: Frame<'_>, expected: &str) -> HandshakeError {
    match frame {
        Frame::Error(p) => HandshakeError::PeerClaim(lossy(p)),
        other => HandshakeError::Protocol(format!("expected {expected}, got {other:?}")),
    }
}
