//! Live statistics on demand: on SIGUSR1 the relay logs one line per open stream (id, age,
//! bytes each way, send credit, bytes waiting for the local socket) and one line of totals.
//! Under systemd `systemctl status` shows the totals too; this is for runs by hand and for the
//! per-stream view.

use crate::mux::Stats;
use crate::shutdown::count;
use futures_lite::StreamExt;
use std::rc::Rc;

/// The lines of one dump, streams first (ordered by id), totals last.
pub fn lines(stats: &Stats) -> Vec<String> {
    let mut streams: Vec<_> = stats
        .sessions
        .borrow()
        .iter()
        .filter_map(|s| s.upgrade())
        .filter(|s| !s.is_dead())
        .flat_map(|s| s.streams())
        .collect();
    streams.sort_by_key(|s| s.id);
    let mut out: Vec<String> = streams
        .iter()
        .map(|s| {
            let st = s.st.borrow();
            format!(
                "stream {}: open {:.1} s, {} bytes sent, {} bytes received, send credit {}, {} bytes queued",
                s.id,
                st.opened.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                st.sent,
                st.received,
                st.credit,
                st.inbound.len() - st.pos
            )
        })
        .collect();
    out.push(format!(
        "{}; {}",
        count(streams.len(), "open stream"),
        status_line(stats)
    ));
    out
}

/// The one-line summary (`systemctl status` shows it too): channel state, clients, bytes each
/// way.
pub fn status_line(stats: &Stats) -> String {
    format!(
        "channel {}; {}; {} bytes sent, {} bytes received",
        if stats.channel_up.get() { "up" } else { "down" },
        crate::shutdown::count(stats.clients.get() as usize, "client"),
        stats.bytes_out.get(),
        stats.bytes_in.get()
    )
}

/// Logs [`lines`] at INFO on every SIGUSR1, forever.
pub async fn on_sigusr1(stats: Rc<Stats>) {
    let signals = match crate::signals::stats_requests() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("SIGUSR1 statistics are unavailable: {e}");
            return;
        }
    };
    let mut signals = std::pin::pin!(signals);
    while signals.next().await.is_some() {
        for line in lines(&stats) {
            log::info!("{line}");
        }
    }
}
