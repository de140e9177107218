//! Shutting down: the signal shared by a process's tasks (set once on SIGTERM or SIGINT, after
//! which listeners stop accepting and sessions drain, see [`crate::mux::Session::drain`]), the
//! GOAWAY that tells the peer, and how a session's end is logged: at INFO when the peer
//! announced it, at WARN when the channel failed.

use crate::logging::text::count;
use crate::mux::{EndReason, Session};
use async_io::Timer;
use event_listener::Event;
use futures_lite::future;
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest wait for GOAWAY to be written before the process goes on exiting.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a draining relay waits for the bytes it has read to reach the other side.
pub const GRACE: Duration = Duration::from_secs(3);

/// A one-way flag with a way to wait for it.
#[derive(Debug, Default)]
pub struct Shutdown {
    started: Cell<bool>,
    event: Event,
}

impl Shutdown {
    /// Starts the shutdown and wakes every task waiting for it.
    pub fn trigger(&self) {
        self.started.set(true);
        self.event.notify(usize::MAX);
    }

    /// Whether the shutdown has started.
    pub fn started(&self) -> bool {
        self.started.get()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        loop {
            let listener = self.event.listen();
            if self.started() {
                return;
            }
            listener.await;
        }
    }
}

/// Sends GOAWAY with `reason` on `session` and waits, at most [`ANNOUNCE_TIMEOUT`], until the
/// frame has been handed to the channel. The peer then logs the shutdown at INFO and resets
/// what is left with "relay shutting down". Called at the end of the drain.
pub async fn announce(session: &Session, reason: &str) {
    if session.is_dead() {
        return;
    }
    let asked = Instant::now();
    session.go_away(reason);
    let flushed = async {
        loop {
            let progress = session.progress.listen();
            if session.is_dead() || session.flushed_since(asked) {
                return;
            }
            progress.await;
        }
    };
    future::or(flushed, async {
        Timer::at(asked + ANNOUNCE_TIMEOUT).await;
    })
    .await;
}

/// Logs the end of `session` (`what`: "channel", "host channel from ADDR"): INFO when the peer
/// announced its shutdown or this side did, WARN otherwise.
pub fn log_session_end(
    session: &Session,
    what: fmt::Arguments<'_>,
    why: &EndReason,
    streams: usize,
) {
    let reset = count(streams, "open stream");
    let counters = &session.stats.counters;
    counters.session_ended(session.counted_end());
    match session.peer_goaway() {
        Some(reason) => {
            log::info!("{what} closed: the peer is shutting down ({reason}); {reset} reset")
        }
        None if session.is_going_away() => log::info!("{what} closed; {reset} reset"),
        None => log::warn!("{what} lost: {why}; {reset} reset"),
    }
}

/// The end of a role's run after the shutdown started and its listener is gone: lets the
/// current session's open streams finish for up to `drain_timeout` (no new ones start; see
/// [`Session::finish_streams`]), cuts what is left after the bytes already read (see
/// [`Session::drain`]), then tells the peer with GOAWAY.
pub async fn finish(session: Option<Rc<Session>>, drain_timeout: Duration) {
    if let Some(session) = session {
        let open = session.stream_count();
        let mut finished = false;
        if open > 0 && !drain_timeout.is_zero() && !session.is_dead() {
            log::info!(
                "draining {} for up to {} s (--drain-timeout); new clients are refused",
                count(open, "open stream"),
                drain_timeout.as_secs()
            );
            session.stats.draining.set(true);
            crate::sys::service::send_status(&session.stats.status_line());
            let left = session.finish_streams(Instant::now() + drain_timeout).await;
            session.stats.draining.set(false);
            if left == 0 {
                log::info!("drained: every stream finished");
                finished = true;
            }
        }
        let cut = session.drain(GRACE).await;
        if !finished || cut > 0 {
            log::info!(
                "drained: {} cut after the bytes already read",
                count(cut, "open stream")
            );
        }
        announce(&session, "shutting down").await;
    }
}
