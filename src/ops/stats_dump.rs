//! Live statistics on demand: on SIGUSR1 the relay logs one line per open stream (id, age,
//! bytes each way, send credit, bytes waiting for the local socket) and one line of totals.
//! Under systemd `systemctl status` shows the totals too; this is for runs by hand and for the
//! per-stream view.

use crate::logging::text::count;
use crate::mux::Stats;
use futures_lite::StreamExt;
use std::rc::Rc;

/// One open stream as the dump and `GET /streams` show it.
#[derive(Debug, serde::Serialize)]
pub struct StreamView {
    /// The stream id on the wire.
    pub id: u32,
    /// Seconds since the stream opened.
    pub open_seconds: f64,
    /// Bytes sent on the channel.
    pub bytes_sent: u64,
    /// Bytes received from the channel.
    pub bytes_received: u64,
    /// Bytes this side may still send before the peer grants more.
    pub send_credit: u32,
    /// Bytes received and waiting for the local socket to take them.
    pub bytes_queued: usize,
}

/// Every open stream of every live session, ordered by id.
pub fn streams(stats: &Stats) -> Vec<StreamView> {
    let mut streams: Vec<StreamView> = stats
        .sessions
        .borrow()
        .iter()
        .filter_map(|s| s.upgrade())
        .filter(|s| !s.is_dead())
        .flat_map(|s| s.streams())
        .map(|s| {
            let f = s.figures();
            StreamView {
                id: s.id,
                open_seconds: f.age.as_secs_f64(),
                bytes_sent: f.sent,
                bytes_received: f.received,
                send_credit: f.credit,
                bytes_queued: f.queued,
            }
        })
        .collect();
    streams.sort_by_key(|s| s.id);
    streams
}

/// The lines of one dump, streams first (ordered by id), totals last.
pub fn lines(stats: &Stats) -> Vec<String> {
    let streams = streams(stats);
    let mut out: Vec<String> = streams
        .iter()
        .map(|s| {
            format!(
                "stream {}: open {:.1} s, {} bytes sent, {} bytes received, send credit {}, {} bytes queued",
                s.id, s.open_seconds, s.bytes_sent, s.bytes_received, s.send_credit, s.bytes_queued
            )
        })
        .collect();
    out.push(format!(
        "{}; {}",
        count(streams.len(), "open stream"),
        stats.status_line()
    ));
    out
}

/// Logs [`lines`] at INFO on every SIGUSR1, forever.
pub async fn on_sigusr1(stats: Rc<Stats>, requests: impl futures_lite::Stream<Item = ()>) {
    let mut signals = std::pin::pin!(requests);
    while signals.next().await.is_some() {
        for line in lines(&stats) {
            log::info!("{line}");
        }
    }
}
