//! Stop requests on Windows: Ctrl-C (or Ctrl-Break, or closing the console) when run from a
//! console, the service control manager's stop when run as a service
//! ([`crate::sys::service`] on Windows). The same API as `posix.rs` on Linux.

use crate::error::Error;
use async_signal::{Signal, Signals};
use futures_lite::{future, Stream, StreamExt};
use std::future::Future;

/// Installs the Ctrl-C handler now; the future names the first stop request.
pub fn stop() -> Result<impl Future<Output = Option<&'static str>>, Error> {
    let mut signals =
        Signals::new([Signal::Int]).map_err(|e| Error::io("installing the Ctrl-C handler", e))?;
    let console = async move { signals.next().await.map(|_| "Ctrl-C") };
    Ok(future::or(console, crate::sys::service::stop_requested()))
}

/// Windows has no SIGUSR1: the per-stream statistics dump is not available there (the totals
/// are logged at shutdown). The stream never yields.
pub fn stats_requests() -> std::io::Result<impl Stream<Item = ()>> {
    Ok(futures_lite::stream::pending())
}

/// Windows has no SIGHUP: a reload needs a restart of the service there. The stream never
/// yields.
pub fn reload_requests() -> std::io::Result<impl Stream<Item = ()>> {
    Ok(futures_lite::stream::pending())
}
