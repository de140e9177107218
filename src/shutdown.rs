//! Ending sessions cleanly: telling the peer this side is shutting down (GOAWAY), and logging
//! how a session ended, at INFO when the peer announced it and at WARN when the channel failed.

use crate::mux::{Session, Stats};
use async_io::Timer;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest wait for the GOAWAY frames to be written before the process goes on exiting.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_millis(500);

/// "1 stream" or "2 streams".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Sends GOAWAY with `reason` on every live session of the process and waits, at most
/// [`ANNOUNCE_TIMEOUT`], until the frames have been handed to the channel. The peer then logs
/// the shutdown at INFO and resets its streams with "relay shutting down". Call it once the
/// streams have been drained, right before the process stops.
pub async fn announce(stats: &Stats, reason: &str) {
    let sessions: Vec<Rc<Session>> = stats
        .sessions
        .borrow()
        .iter()
        .filter_map(|s| s.upgrade())
        .filter(|s| !s.is_dead())
        .collect();
    if sessions.is_empty() {
        return;
    }
    let asked = Instant::now();
    for s in &sessions {
        s.go_away(reason);
    }
    while asked.elapsed() < ANNOUNCE_TIMEOUT
        && !sessions
            .iter()
            .all(|s| s.is_dead() || s.flushed_since(asked))
    {
        Timer::after(Duration::from_millis(5)).await;
    }
}

/// Logs the end of `session` (`what`: "channel", "host channel from ADDR"): INFO when the peer
/// announced its shutdown, WARN otherwise.
pub fn log_session_end(session: &Session, what: fmt::Arguments<'_>, why: &str, streams: usize) {
    let reset = count(streams, "open stream");
    match session.peer_goaway() {
        Some(reason) => {
            log::info!("{what} closed: the peer is shutting down ({reason}); {reset} reset")
        }
        None if session.is_going_away() => log::info!("{what} closed; {reset} reset"),
        None => log::warn!("{what} lost: {why}; {reset} reset"),
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1, "open stream"), "1 open stream");
        assert_eq!(count(0, "client"), "0 clients");
        assert_eq!(count(7, "client"), "7 clients");
    }
}
