//! The relay's run: one executor on the calling thread with the role, the signal handlers,
//! the service manager's loops and the metrics endpoint, until a stop signal or a fatal error.

use crate::config::{Config, Role};
use crate::error::Error;
use crate::logging::{self, ratelimit};
use crate::ops::{metrics, reload, stats_dump, status};
use crate::roles::{dpu, host, shutdown};
use crate::sys::{reactor, service as systemd, signals};
use crate::{doca, mux};
use async_executor::LocalExecutor;
use async_io::Timer;
use futures_lite::future;
use std::rc::Rc;
use std::time::Duration;

/// A signal's request stream, or one that never yields (with a warning) if its handler could
/// not be installed: the relay runs on without that feature.
fn installed<S: futures_lite::Stream<Item = ()> + 'static>(
    requests: std::io::Result<S>,
    what: &str,
) -> std::pin::Pin<Box<dyn futures_lite::Stream<Item = ()>>> {
    match requests {
        Ok(r) => Box::pin(r),
        Err(e) => {
            log::warn!("{what} unavailable: {e}");
            Box::pin(futures_lite::stream::pending())
        }
    }
}

/// Runs the relay until SIGTERM or SIGINT (`Ok`) or a fatal error.
///
/// Everything runs on the calling thread: one executor, so that a connection's work never
/// crosses threads.
pub fn run(cfg: Config) -> Result<(), Error> {
    crate::ops::refuse::refuse(&cfg).map_err(Error::Config)?;
    if let Some(warning) = &cfg.psk_warning {
        log::warn!("{warning}");
    }
    // The device is opened before anything is bound, so a missing library or a wrong PCI
    // address leaves nothing behind.
    let doca = if cfg.channel.is_doca() {
        let backend = doca::Backend::open(&cfg).map_err(|e| Error::Doca(e.to_string()))?;
        Some(Rc::new(backend))
    } else {
        None
    };
    // Every handler is installed before anything is bound: a signal sent as soon as the socket
    // exists must find its handler, not the default action (SIGHUP's would end the relay).
    let stop_signal = signals::stop()?;
    let reload_requests = installed(signals::reload_requests(), "reload (SIGHUP)");
    let stats_requests = installed(signals::stats_requests(), "SIGUSR1 statistics");
    let ex = Rc::new(LocalExecutor::new());
    let stats = Rc::new(mux::Stats::default());
    let stop = Rc::new(shutdown::Shutdown::default());
    let role = cfg.role;
    let busy_poll = cfg.busy_poll;
    let ex2 = ex.clone();
    let role_stats = stats.clone();
    let role_stop = stop.clone();
    let signal_stop = stop.clone();
    let live = Rc::new(crate::config::Live::new(&cfg));
    let (deadline_live, signal_live) = (live.clone(), live.clone());
    let mut reloader = reload::Reloader {
        running: cfg.clone(),
        live: live.clone(),
        stats: stats.clone(),
        metrics: None,
        ex: ex.clone(),
    };
    let main = async move {
        reloader.metrics = metrics::start(&cfg, &reloader.stats, &reloader.ex).await?;
        reloader
            .ex
            .clone()
            .spawn(reloader.run(reload_requests))
            .detach();
        let relay = async {
            match role {
                Role::Host => host::run(cfg, live, doca, role_stats, ex2, role_stop).await,
                Role::Dpu => dpu::run(cfg, live, doca, role_stats, ex2, role_stop).await,
            }
        };
        // The roles drain by themselves once `stop` is set; this only bounds how long they may.
        let deadline = async {
            stop.wait().await;
            let drain = deadline_live.drain_timeout.get();
            Timer::after(drain + shutdown::GRACE + Duration::from_secs(1)).await;
            log::warn!("the drain did not finish in time; exiting anyway");
            Ok(())
        };
        future::or(relay, deadline).await
    };
    let on_signal = async move {
        if let Some(name) = stop_signal.await {
            log::info!(
                "{name} received, shutting down (open streams may finish for up to {} s, \
                 then what was read is delivered for up to {} s)",
                signal_live.drain_timeout.get().as_secs(),
                shutdown::GRACE.as_secs()
            );
        }
        systemd::stopping();
        signal_stop.trigger();
    };
    // Spawned rather than passed to `run` directly: `run` polls its future on every executor
    // wakeup, which would retry `accept` and re-arm the signal pipe once per relayed message.
    let main = ex.spawn(main);
    ex.spawn(on_signal).detach();
    ex.spawn(status::watchdog_loop(stats.clone())).detach();
    ex.spawn(status::status_loop(stats.clone())).detach();
    ex.spawn(stats_dump::on_sigusr1(stats.clone(), stats_requests))
        .detach();
    ex.spawn(ratelimit::flush_loop()).detach();
    reactor::set_busy_poll(busy_poll).map_err(|e| Error::io("setting up busy polling", e))?;
    if !busy_poll.is_zero() {
        log::info!(
            "busy polling: the event loop polls for up to {} µs before it sleeps",
            busy_poll.as_micros()
        );
    }
    // The data-path sockets are waited on by the relay's own loop; async-io's thread keeps
    // the signals, timers, listeners and DOCA fds and wakes this loop through its eventfd.
    let result = reactor::block_on(ex.run(main))
        .map_err(|e| Error::io("running the event loop", e))
        .and_then(|r| r);
    // Detached tasks may still hold DOCA links: stop the DOCA threads here, so that none is
    // inside a DOCA call when the libraries unload at exit.
    let stuck = doca::bridge::stop_all(std::time::Duration::from_secs(3));
    if stuck > 0 {
        log::warn!("{stuck} DOCA thread(s) still busy in DOCA at exit");
    }
    // A relay that never started says only why; one that ran says why it stopped, then that.
    if stats.ready.get() {
        ratelimit::flush_all();
        if let Err(e) = &result {
            logging::report_fatal(e);
        }
        log::info!("stopped");
    }
    result
}
