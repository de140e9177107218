//! What the service manager hears while the relay runs: the status line when it changes, and
//! the watchdog's pings while the event loop and the DOCA threads are alive.

use crate::mux::Stats;
use crate::sys::service;
use async_io::Timer;
use std::rc::Rc;
use std::time::Duration;

/// Sends `STATUS=` whenever the figures changed, checking once a second.
pub async fn status_loop(stats: Rc<Stats>) {
    if !service::wants_status() {
        return;
    }
    let mut last = String::new();
    loop {
        Timer::after(Duration::from_secs(1)).await;
        let line = stats.status_line();
        if stats.ready.get() && line != last {
            service::send_status(&line);
            last = line;
        }
    }
}

/// Pets the watchdog at half its period once the relay is ready (start-up has its own
/// timeout). It runs on the relay's own executor, so a wedged event loop stops the pings and
/// systemd restarts the service; so does a DOCA worker thread stuck inside a DOCA call (its
/// heartbeat older than half the period).
pub async fn watchdog_loop(stats: Rc<Stats>) {
    let Some(period) = service::watchdog_period() else {
        return;
    };
    let mut stuck = false;
    loop {
        Timer::after(period / 2).await;
        let fresh = crate::doca::bridge::workers_fresh(period / 2);
        if fresh == stuck {
            stuck = !fresh;
            if stuck {
                log::warn!("a DOCA thread is stuck inside a DOCA call; not pinging the watchdog");
            } else {
                log::info!("the DOCA thread is back; pinging the watchdog again");
            }
        }
        if stuck {
            continue;
        }
        if stats.ready.get() {
            service::watchdog_ping();
        }
    }
}
