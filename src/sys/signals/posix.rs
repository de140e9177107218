//! The signals the relay acts on: SIGTERM and SIGINT stop it, SIGUSR1 asks for the statistics
//! dump ([`crate::ops::stats_dump`]), SIGHUP for a reload of the JSON file ([`crate::ops::reload`]).
//!
//! Windows has `windows.rs` beside this file, with the same API (Ctrl-C and the
//! service manager's stop request).

use crate::error::Error;
use async_signal::{Signal, Signals};
use futures_lite::{Stream, StreamExt};
use std::future::Future;

/// Installs the stop handlers now, so that a signal arriving before the returned future is
/// first polled is kept; the future names the first stop signal (`None` if the handlers
/// failed).
pub fn stop() -> Result<impl Future<Output = Option<&'static str>>, Error> {
    let mut signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| Error::io("installing signal handlers", e))?;
    Ok(async move {
        match signals.next().await {
            Some(Ok(Signal::Term)) => Some("SIGTERM"),
            Some(Ok(_)) => Some("SIGINT"),
            _ => None,
        }
    })
}

/// One item per request for the statistics dump (SIGUSR1).
pub fn stats_requests() -> std::io::Result<impl Stream<Item = ()>> {
    let signals = Signals::new([Signal::Usr1])?;
    Ok(signals.take_while(|s| s.is_ok()).map(|_| ()))
}

/// One item per reload request (SIGHUP; `systemctl reload` sends it through ExecReload).
pub fn reload_requests() -> std::io::Result<impl Stream<Item = ()>> {
    let signals = Signals::new([Signal::Hup])?;
    Ok(signals.take_while(|s| s.is_ok()).map(|_| ()))
}
