//! The two pages: Prometheus' text exposition format (version 0.0.4) and the streams as JSON.

use crate::config::{ChannelAddr, Config};
use crate::counters::{HandshakeFailure, Outcome, SessionEnd, DOCA_MESSAGES_IN, DOCA_MESSAGES_OUT};
use crate::mux::Stats;
use crate::wire::Security;
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `doca_socket_relay_info` says about this process; fixed for its lifetime.
#[derive(Debug)]
pub struct Info {
    role: String,
    channel: &'static str,
    /// A DOCA channel: its message counts are shown.
    doca: bool,
    security: String,
}

impl Info {
    /// The labels of a relay running `cfg`.
    pub fn of(cfg: &Config) -> Info {
        Info {
            role: cfg.role.to_string(),
            doca: cfg.channel.is_doca(),
            channel: match cfg.channel {
                ChannelAddr::Tcp(..) => "tcp",
                ChannelAddr::Unix(_) => "unix",
                ChannelAddr::Doca => "doca",
                ChannelAddr::Comch => "comch",
                ChannelAddr::CommChannel => "comm-channel",
            },
            security: match cfg.security() {
                Security::None => "none".into(),
                Security::Psk => "psk".into(),
                Security::Sealed(c) => format!("noise-{c}"),
            },
        }
    }
}

/// Writes families: `# HELP`, `# TYPE`, then the samples.
struct Page(String);

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                // Label values here are fixed words or the version: nothing to escape but the
                // rule stays written down for whoever adds one.
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{sep}{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A counter family with one label, a sample per value.
    fn labeled<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, "counter", help);
        for (value, n) in samples {
            self.sample(name, &[(label, value)], n);
        }
    }

    /// A family of one sample without labels.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The `/metrics` page.
pub fn render(stats: &Stats, info: &Info) -> String {
    let mut p = Page(String::with_capacity(4096));
    p.family(
        "doca_socket_relay_info",
        "gauge",
        "Always 1; the labels describe this relay.",
    );
    p.sample(
        "doca_socket_relay_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("role", &info.role),
            ("channel", info.channel),
            ("security", &info.security),
        ],
        1,
    );
    p.one(
        "doca_socket_relay_streams_open",
        "gauge",
        "Relayed connections open now (clients on the host, server connections on the DPU).",
        stats.clients.get(),
    );
    p.family(
        "doca_socket_relay_bytes_total",
        "counter",
        "Bytes relayed: read from local sockets and sent on the channel (out), received on the channel for local sockets (in).",
    );
    p.sample(
        "doca_socket_relay_bytes_total",
        &[("direction", "out")],
        stats.bytes_out.get(),
    );
    p.sample(
        "doca_socket_relay_bytes_total",
        &[("direction", "in")],
        stats.bytes_in.get(),
    );
    let c = &stats.counters;
    p.labeled(
        "doca_socket_relay_data_frames_total",
        "DATA frames relayed: sent on the channel (out), received from it (in).",
        "direction",
        [("out", c.frames_out.get()), ("in", c.frames_in.get())],
    );
    p.labeled(
        "doca_socket_relay_streams_ended_total",
        "Relayed connections that ended, and clients refused, by outcome.",
        "outcome",
        Outcome::ALL.map(|o| (o.label(), c.streams_ended(o))),
    );
    p.one(
        "doca_socket_relay_channel_up",
        "gauge",
        "1 while a channel session to the peer is up.",
        u8::from(stats.channel_up.get()),
    );
    p.one(
        "doca_socket_relay_channel_up_seconds",
        "gauge",
        "Seconds since the current channel session came up; 0 while it is down.",
        c.up_since.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
    );
    p.one(
        "doca_socket_relay_channel_sessions_total",
        "counter",
        "Channel sessions that completed their handshake.",
        c.sessions.get(),
    );
    p.labeled(
        "doca_socket_relay_channel_session_ends_total",
        "Channel sessions that ended, by reason.",
        "reason",
        SessionEnd::ALL.map(|w| (w.label(), c.session_ends(w))),
    );
    p.labeled(
        "doca_socket_relay_handshake_failures_total",
        "Channel handshakes that failed, by reason.",
        "reason",
        HandshakeFailure::ALL.map(|w| (w.label(), c.handshake_failures(w))),
    );
    if info.doca {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        p.labeled(
            "doca_socket_relay_doca_messages_total",
            "Messages handed to DOCA (out) and taken from it (in).",
            "direction",
            [("out", n(&DOCA_MESSAGES_OUT)), ("in", n(&DOCA_MESSAGES_IN))],
        );
    }
    process(&mut p);
    p.0
}

/// The standard process families, read from /proc when scraped.
#[cfg(target_os = "linux")]
fn process(p: &mut Page) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| -> f64 {
        // `n` counts from 1 as proc(5) does; the state (field 3) is fields[0].
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    p.one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (field(14) + field(15)) / ticks,
    );
    let pages: f64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    p.one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        pages * rustix::param::page_size() as f64,
    );
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0.0);
    p.one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        boot + field(22) / ticks,
    );
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    p.one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds,
    );
}

#[cfg(not(target_os = "linux"))]
fn process(_: &mut Page) {}

/// The `/streams` page: every open stream and the totals, as JSON.
pub fn streams_json(stats: &Stats) -> String {
    let streams = crate::ops::stats_dump::streams(stats);
    let page = serde_json::json!({
        "channel_up": stats.channel_up.get(),
        "streams_open": streams.len(),
        "bytes_out": stats.bytes_out.get(),
        "bytes_in": stats.bytes_in.get(),
        "streams": streams,
    });
    let mut text = page.to_string();
    text.push('\n');
    text
}
