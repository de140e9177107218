//! The counters behind `--metrics`: plain integers in `Cell`s, bumped on the event loop's thread
//! where things happen and read only when a scrape renders them ([`crate::ops::metrics`]). Every
//! label comes from a fixed enum here, so a label's values are few and known in advance (no
//! per-stream or per-client labels).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How a relayed connection ended, or why it never became one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions closed cleanly.
    Closed,
    /// The client's socket failed or was reset.
    ResetByClient,
    /// The server application's socket failed or was reset.
    ResetByServer,
    /// The other relay, or the channel, reset it (shutdown, channel lost, protocol error).
    ResetByPeer,
    /// Refused: the client limit was reached (on either side).
    RefusedLimit,
    /// Refused: no channel to the DPU side came up in time (host).
    RefusedNoChannel,
    /// The server application's socket could not be connected (DPU).
    ServerUnavailable,
}

impl Outcome {
    /// Every outcome, in the order they are rendered.
    pub const ALL: [Outcome; 7] = [
        Outcome::Closed,
        Outcome::ResetByClient,
        Outcome::ResetByServer,
        Outcome::ResetByPeer,
        Outcome::RefusedLimit,
        Outcome::RefusedNoChannel,
        Outcome::ServerUnavailable,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Closed => "closed",
            Outcome::ResetByClient => "reset_by_client",
            Outcome::ResetByServer => "reset_by_server",
            Outcome::ResetByPeer => "reset_by_peer",
            Outcome::RefusedLimit => "refused_limit",
            Outcome::RefusedNoChannel => "refused_no_channel",
            Outcome::ServerUnavailable => "server_unavailable",
        }
    }
}

/// Why a channel session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer announced its shutdown (GOAWAY).
    PeerShutdown,
    /// This side shut down, or replaced the session with a newer one.
    Local,
    /// The channel failed: closed without notice, timed out, or broke the protocol.
    Lost,
}

impl SessionEnd {
    /// Every reason, in the order they are rendered.
    pub const ALL: [SessionEnd; 3] = [
        SessionEnd::PeerShutdown,
        SessionEnd::Local,
        SessionEnd::Lost,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SessionEnd::PeerShutdown => "peer_shutdown",
            SessionEnd::Local => "local",
            SessionEnd::Lost => "lost",
        }
    }
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The key proofs or the Noise handshake failed: another key, or a tampered transcript.
    Key,
    /// The sides disagree on version, service name or security mode, or the DPU refused this
    /// host (another host is connected).
    Refused,
    /// The peer sent something that is not a handshake, or too little, too late.
    Protocol,
    /// The connection failed or timed out during the handshake.
    Io,
    /// The DPU side's handshake rate limit held the connection back (a flood, or a stranger).
    RateLimited,
}

impl HandshakeFailure {
    /// Every reason, in the order they are rendered.
    pub const ALL: [HandshakeFailure; 5] = [
        HandshakeFailure::Key,
        HandshakeFailure::Refused,
        HandshakeFailure::Protocol,
        HandshakeFailure::Io,
        HandshakeFailure::RateLimited,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Key => "key",
            HandshakeFailure::Refused => "refused",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Io => "io",
            HandshakeFailure::RateLimited => "rate_limited",
        }
    }
}

/// The counters of one process.
#[derive(Debug, Default)]
pub struct Counters {
    streams_ended: [Cell<u64>; 7],
    /// DATA frames sent on the channel.
    pub frames_out: Cell<u64>,
    /// DATA frames received from the channel.
    pub frames_in: Cell<u64>,
    /// Channel sessions that completed their handshake.
    pub sessions: Cell<u64>,
    session_ends: [Cell<u64>; 3],
    handshake_failures: [Cell<u64>; 5],
    /// When the current channel session came up.
    pub up_since: Cell<Option<Instant>>,
}

/// Messages handed to DOCA and taken from it, counted where the event loop exchanges them with
/// the DOCA thread (the link has no access to the session's counters; one process has one
/// DOCA channel). Relaxed atomics: a count, ordered by nothing.
pub static DOCA_MESSAGES_OUT: AtomicU64 = AtomicU64::new(0);
/// See [`DOCA_MESSAGES_OUT`].
pub static DOCA_MESSAGES_IN: AtomicU64 = AtomicU64::new(0);

/// Adds `n` to one of the DOCA message counts.
// Only the DOCA links count messages, and Windows has none.
#[cfg_attr(windows, allow(dead_code))]
pub fn add_messages(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Counters {
    /// Counts a connection's end.
    pub fn stream_ended(&self, o: Outcome) {
        bump(&self.streams_ended[o as usize]);
    }

    /// Connections ended with `o` so far.
    pub fn streams_ended(&self, o: Outcome) -> u64 {
        self.streams_ended[o as usize].get()
    }

    /// Counts a session that came up.
    pub fn session_up(&self) {
        bump(&self.sessions);
        self.up_since.set(Some(Instant::now()));
    }

    /// Counts a session's end.
    pub fn session_ended(&self, why: SessionEnd) {
        bump(&self.session_ends[why as usize]);
        self.up_since.set(None);
    }

    /// Sessions ended for `why` so far.
    pub fn session_ends(&self, why: SessionEnd) -> u64 {
        self.session_ends[why as usize].get()
    }

    /// Counts a failed handshake.
    pub fn handshake_failed(&self, why: HandshakeFailure) {
        bump(&self.handshake_failures[why as usize]);
    }

    /// Handshakes failed for `why` so far.
    pub fn handshake_failures(&self, why: HandshakeFailure) -> u64 {
        self.handshake_failures[why as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_counts_apart() {
        let c = Counters::default();
        c.stream_ended(Outcome::Closed);
        c.stream_ended(Outcome::Closed);
        c.stream_ended(Outcome::ServerUnavailable);
        let got: Vec<u64> = Outcome::ALL.iter().map(|o| c.streams_ended(*o)).collect();
        assert_eq!(got, [2, 0, 0, 0, 0, 0, 1]);
        c.session_up();
        assert!(c.up_since.get().is_some());
        c.session_ended(SessionEnd::Lost);
        assert_eq!(
            (c.session_ends(SessionEnd::Lost), c.up_since.get()),
            (1, None)
        );
        c.handshake_failed(HandshakeFailure::Io);
        assert_eq!(c.handshake_failures(HandshakeFailure::Io), 1);
        // Labels are distinct within each family.
        let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }
}
