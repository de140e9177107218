//! A stream's lifecycle: where each of its two directions stands, and the abort that ends both.
//!
//! The directions end on their own (`docs/PROTOCOL.md`): CLOSE ends the sender's direction,
//! STOP asks the sender to end it because the receiver's socket takes no more bytes, and only
//! RESET aborts both. Every change goes through a method here that checks where the stream
//! stands, so that a frame arriving at the wrong time (DATA after CLOSE, CLOSE twice, STOP
//! after the direction ended) has one answer, tested below.

use crate::wire::ResetReason;

/// The sending direction: bytes read from the local socket go to the peer as DATA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Sending {
    /// Reading the local socket.
    #[default]
    Open,
    /// The peer sent STOP; the pump ends the direction on its next turn.
    StopRequested,
    /// Ended, and CLOSE is queued: after EOF, or acting on STOP.
    Closed,
}

/// The receiving direction: DATA from the peer is written to the local socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Receiving {
    /// DATA arrives and is written to the socket.
    #[default]
    Open,
    /// Writing to the socket failed: the peer was asked to STOP, and DATA it sent before it
    /// saw that is dropped.
    Stopped,
    /// The peer sent CLOSE: what is queued is still written (none is after a stop), then the
    /// direction is shut.
    PeerClosed { stopped: bool },
    /// Finished with the socket: shut for writing, or left for the close.
    Shut,
}

/// What becomes of DATA that arrives on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataVerdict {
    /// The stream was reset: the peer knows, or learns it from our RESET.
    Ignore,
    /// DATA after the peer's CLOSE breaks the protocol: the stream is reset.
    Violation,
    /// Sent before the peer saw our STOP: dropped.
    Discard,
    /// Written to the socket.
    Deliver,
}

/// Both directions of a stream, and the reason it was aborted if it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    send: Sending,
    recv: Receiving,
    /// Set once, by the first RESET either way (or the channel's loss, or a shutdown); later
    /// reasons do not replace it.
    reset: Option<ResetReason>,
}

impl Lifecycle {
    /// The peer sent CLOSE: no more DATA follows. `false` for a repeated CLOSE, which changes
    /// nothing.
    pub(crate) fn on_peer_close(&mut self) -> bool {
        match self.recv {
            Receiving::Open => self.recv = Receiving::PeerClosed { stopped: false },
            Receiving::Stopped => self.recv = Receiving::PeerClosed { stopped: true },
            Receiving::PeerClosed { .. } | Receiving::Shut => return false,
        }
        true
    }

    /// Judges DATA that arrived. A reset comes first (the peer may still have had DATA on its
    /// way), then a CLOSE before it, then a stop.
    pub(crate) fn on_data(&self) -> DataVerdict {
        if self.reset.is_some() {
            return DataVerdict::Ignore;
        }
        match self.recv {
            Receiving::PeerClosed { .. } | Receiving::Shut => DataVerdict::Violation,
            Receiving::Stopped => DataVerdict::Discard,
            Receiving::Open => DataVerdict::Deliver,
        }
    }

    /// Writing to the local socket failed, so it takes no more bytes. `None` when the
    /// direction had already stopped or is over; otherwise whether the peer must be sent STOP
    /// (not once it closed its side, nor on a reset stream).
    pub(crate) fn on_write_failed(&mut self) -> Option<bool> {
        match self.recv {
            Receiving::Open => {
                self.recv = Receiving::Stopped;
                Some(self.reset.is_none())
            }
            Receiving::PeerClosed { stopped: false } => {
                self.recv = Receiving::PeerClosed { stopped: true };
                Some(false)
            }
            // A shut direction has nothing queued and takes no DATA: no write can fail.
            Receiving::Stopped | Receiving::PeerClosed { stopped: true } | Receiving::Shut => None,
        }
    }

    /// Whether the socket takes no more bytes: nothing is queued for it and none is written.
    pub(crate) fn recv_stopped(&self) -> bool {
        matches!(
            self.recv,
            Receiving::Stopped | Receiving::PeerClosed { stopped: true }
        )
    }

    /// Everything received has been written (or dropped after a stop). After the peer's
    /// CLOSE that shuts the direction; returns whether the socket must then be shut for
    /// writing: not when the sending direction is over too (the close does it), nor after a
    /// stop (the socket is closed with what the application sent last unread, as a server
    /// that stopped reading would leave it).
    pub(crate) fn on_delivered_all(&mut self) -> bool {
        match self.recv {
            Receiving::PeerClosed { stopped } => {
                self.recv = Receiving::Shut;
                !stopped && self.send != Sending::Closed
            }
            Receiving::Open | Receiving::Stopped | Receiving::Shut => false,
        }
    }

    /// The peer sent STOP. `false` when it changes nothing: a repeated STOP, or one that
    /// crossed our CLOSE.
    pub(crate) fn on_stop(&mut self) -> bool {
        if self.send != Sending::Open {
            return false;
        }
        self.send = Sending::StopRequested;
        true
    }

    /// Whether the peer's STOP still has to end the sending direction.
    pub(crate) fn stop_pending(&self) -> bool {
        self.send == Sending::StopRequested
    }

    /// The sending direction ends (the socket's EOF, or the peer's STOP). `true` when CLOSE
    /// must be queued now: it is sent once.
    pub(crate) fn on_read_eof(&mut self) -> bool {
        if self.send == Sending::Closed {
            return false;
        }
        self.send = Sending::Closed;
        true
    }

    /// Whether the local socket is still read for the peer.
    pub(crate) fn is_sending(&self) -> bool {
        self.send != Sending::Closed
    }

    /// Aborts both directions. The first reason stays: `false` if the stream was already
    /// reset.
    pub(crate) fn reset(&mut self, why: ResetReason) -> bool {
        if self.reset.is_some() {
            return false;
        }
        self.reset = Some(why);
        true
    }

    /// Why the stream was reset, if it was.
    pub(crate) fn reset_reason(&self) -> Option<ResetReason> {
        self.reset
    }

    /// Whether both directions ended cleanly: CLOSE sent, and the peer's CLOSE written out.
    /// A reset is asked apart ([`Lifecycle::reset_reason`]).
    pub(crate) fn is_finished(&self) -> bool {
        self.send == Sending::Closed && self.recv == Receiving::Shut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_closed() -> Lifecycle {
        let mut l = Lifecycle::default();
        assert!(l.on_peer_close());
        l
    }

    #[test]
    fn a_new_stream_sends_and_delivers() {
        let l = Lifecycle::default();
        assert!(l.is_sending());
        assert!(!l.stop_pending());
        assert!(!l.recv_stopped());
        assert_eq!(l.on_data(), DataVerdict::Deliver);
        assert_eq!(l.reset_reason(), None);
        assert!(!l.is_finished());
    }

    #[test]
    fn close_then_everything_written_shuts_the_socket_for_writing() {
        let mut l = peer_closed();
        assert!(!l.is_finished());
        assert!(l.on_delivered_all());
        assert_eq!(l.recv, Receiving::Shut);
        // Only once.
        assert!(!l.on_delivered_all());
    }

    #[test]
    fn delivered_all_before_close_changes_nothing() {
        let mut l = Lifecycle::default();
        assert!(!l.on_delivered_all());
        assert_eq!(l, Lifecycle::default());
    }

    #[test]
    fn a_repeated_close_changes_nothing() {
        let mut l = peer_closed();
        let before = l;
        assert!(!l.on_peer_close());
        assert_eq!(l, before);
        assert!(l.on_delivered_all());
        assert!(!l.on_peer_close());
        assert_eq!(l.recv, Receiving::Shut);
    }

    #[test]
    fn data_after_close_is_a_violation() {
        let mut l = peer_closed();
        assert_eq!(l.on_data(), DataVerdict::Violation);
        l.on_delivered_all();
        assert_eq!(l.on_data(), DataVerdict::Violation);
        let mut stopped = Lifecycle::default();
        stopped.on_write_failed();
        stopped.on_peer_close();
        assert_eq!(stopped.on_data(), DataVerdict::Violation);
    }

    #[test]
    fn a_failed_write_asks_the_peer_to_stop_once() {
        let mut l = Lifecycle::default();
        assert_eq!(l.on_write_failed(), Some(true));
        assert!(l.recv_stopped());
        assert_eq!(l.on_data(), DataVerdict::Discard);
        assert_eq!(l.on_write_failed(), None);
        // The sending direction goes on.
        assert!(l.is_sending());
    }

    #[test]
    fn a_failed_write_after_close_sends_no_stop() {
        let mut l = peer_closed();
        assert_eq!(l.on_write_failed(), Some(false));
        assert!(l.recv_stopped());
        assert_eq!(l.on_write_failed(), None);
        // Shut without shutting the socket: it is left for the close.
        assert!(!l.on_delivered_all());
        assert_eq!(l.recv, Receiving::Shut);
        assert!(!l.recv_stopped());
    }

    #[test]
    fn a_failed_write_on_a_reset_stream_sends_no_stop() {
        let mut l = Lifecycle::default();
        l.reset(ResetReason::PROTOCOL);
        assert_eq!(l.on_write_failed(), Some(false));
        assert!(l.recv_stopped());
    }

    #[test]
    fn nothing_fails_on_a_shut_direction() {
        let mut l = peer_closed();
        l.on_delivered_all();
        assert_eq!(l.on_write_failed(), None);
        assert_eq!(l.recv, Receiving::Shut);
    }

    #[test]
    fn close_after_a_stop_shuts_without_shutting_the_socket() {
        let mut l = Lifecycle::default();
        l.on_write_failed();
        assert!(l.on_peer_close());
        assert_eq!(l.recv, Receiving::PeerClosed { stopped: true });
        assert!(!l.on_delivered_all());
        assert_eq!(l.recv, Receiving::Shut);
    }

    #[test]
    fn stop_ends_the_sending_direction_with_one_close() {
        let mut l = Lifecycle::default();
        assert!(l.on_stop());
        assert!(l.stop_pending());
        assert!(l.is_sending());
        assert!(!l.on_stop(), "a repeated STOP changes nothing");
        assert!(l.on_read_eof());
        assert!(!l.stop_pending());
        assert!(!l.is_sending());
        assert!(!l.on_read_eof(), "CLOSE is queued once");
    }

    #[test]
    fn stop_after_close_changes_nothing() {
        let mut l = Lifecycle::default();
        assert!(l.on_read_eof());
        assert!(!l.on_stop());
        assert!(!l.stop_pending());
        assert!(!l.on_read_eof());
    }

    #[test]
    fn eof_is_a_close_sent_once() {
        let mut l = Lifecycle::default();
        assert!(l.on_read_eof());
        assert!(!l.is_sending());
        assert!(!l.on_read_eof());
        // The receiving direction goes on.
        assert_eq!(l.on_data(), DataVerdict::Deliver);
    }

    #[test]
    fn after_our_close_the_socket_is_left_for_the_close() {
        let mut l = Lifecycle::default();
        l.on_read_eof();
        l.on_peer_close();
        assert!(!l.on_delivered_all());
        assert!(l.is_finished());
    }

    #[test]
    fn a_stop_still_pending_counts_as_sending() {
        // The peer's CLOSE is written out before the pump acted on its STOP: the socket is
        // shut for writing, as with the direction still open.
        let mut l = Lifecycle::default();
        l.on_stop();
        l.on_peer_close();
        assert!(l.on_delivered_all());
        assert!(!l.is_finished());
        l.on_read_eof();
        assert!(l.is_finished());
    }

    #[test]
    fn finished_needs_both_directions() {
        let mut l = Lifecycle::default();
        l.on_peer_close();
        l.on_delivered_all();
        assert!(!l.is_finished());
        l.on_read_eof();
        assert!(l.is_finished());
    }

    #[test]
    fn the_first_reset_reason_stays() {
        let mut l = Lifecycle::default();
        assert!(l.reset(ResetReason::SOCKET_ERROR));
        assert!(!l.reset(ResetReason::CHANNEL_LOST));
        assert_eq!(l.reset_reason(), Some(ResetReason::SOCKET_ERROR));
    }

    #[test]
    fn a_reset_stream_ignores_data_but_keeps_its_directions() {
        let mut l = Lifecycle::default();
        l.on_write_failed();
        l.reset(ResetReason::SHUTDOWN);
        assert_eq!(l.on_data(), DataVerdict::Ignore);
        // The flush after the reset still knows the socket takes nothing.
        assert!(l.recv_stopped());
        let mut closed = peer_closed();
        closed.reset(ResetReason::PROTOCOL);
        assert_eq!(closed.on_data(), DataVerdict::Ignore);
        assert!(!closed.is_finished());
    }
}
