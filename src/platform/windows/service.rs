//! The service manager glue on Windows, under the Linux module's name (`systemd`) so that the
//! roles make the same calls everywhere: readiness, status and stop requests.
//!
//! From a console every call is a no-op and Ctrl-C stops the relay
//! ([`crate::signals`]).

use crate::mux::Stats;
use std::future::Future;
use std::rc::Rc;

/// The relay is serving: the socket is bound and the channel is up or being retried.
pub fn ready(stats: &Stats) {
    stats.ready.set(true);
}

/// The relay is shutting down.
pub fn stopping() {}

/// Live status: the service control manager has no status text, so nothing to send.
pub async fn status_loop(_stats: Rc<Stats>) {}

/// There is no watchdog on Windows.
pub async fn watchdog_loop(_stats: Rc<Stats>) {}

/// Stderr is never the systemd journal on Windows.
pub fn stderr_is_journal() -> bool {
    false
}

/// Resolves when the service control manager asks the relay to stop; never from a console.
pub fn stop_requested() -> impl Future<Output = Option<&'static str>> {
    futures_lite::future::pending()
}
