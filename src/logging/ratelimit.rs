//! Repeated log lines, held back: the first line of a kind is logged in full, later ones within
//! [`window`] only counted (and logged at DEBUG), and the count reported with the next full line
//! or by [`flush_loop`] once the window has passed.
//!
//! Anything that can repeat without anyone acting goes through here, on both roles: refused
//! clients, an unreachable server application, failed accepts, streams that fail one by one, a
//! host refused on every retry. A local user who can reach the host socket, or a stranger who
//! can reach the channel, must not be able to flood the log (or stall the loop writing it).

use async_io::Timer;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Kinds remembered at once; the oldest is forgotten past this, so peer-chosen text cannot grow
/// the table.
const MAX_KINDS: usize = 64;

/// What a line is about: lines of one kind share one count. The fixed kinds name the places
/// that repeat per client or per connection; only [`Kind::Peer`] groups by text, because
/// the text is all there is of what a stranger sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Host: a client refused at the `--max-clients` limit.
    ClientLimit,
    /// Host: a client closed because no channel to the DPU side came up in time, or the relay
    /// stopped before it did.
    NoChannel,
    /// Accepting a connection failed (clients on the host side, channels on the DPU side).
    Accept,
    /// Host: a client's stream was reset by the far side, by reason code.
    StreamReset(u32),
    /// DPU: the server application could not be connected, by the error's kind.
    ServerConnect(io::ErrorKind),
    /// DPU: the host opened a stream past the limit.
    StreamLimit,
    /// The peer overran a stream's window or sent data after closing it.
    FlowControl,
    /// DPU: a second host tried to connect while the first is alive (a DOCA channel takes one
    /// host; on any channel the takeover check refuses it).
    SecondHost,
    /// Host: the DPU side refused the channel (in an authenticated verdict).
    ChannelRefused,
    /// Host: the channel's handshake failed otherwise (a mismatch, a wrong key, a clear ERROR).
    ChannelFailed,
    /// `--metrics`: accepting a scrape's connection failed.
    MetricsAccept,
    /// Text an unauthenticated peer can choose (a service name, an error it sent), by its text
    /// without digits. New kinds of it are logged in full at most once a second; the ones past
    /// that are counted and reported like held-back repeats.
    Peer(String),
}

/// How long repeats of one kind are held back after a full line: a minute. The environment
/// variable `DSR_LOG_REPEAT_WINDOW_MS` (milliseconds, 1 to 3600000) replaces it; it is a test
/// knob, left out of `--help` and the man page on purpose (tests/logflood.rs shortens the
/// window to see a summary line within a test's run).
pub fn window() -> Duration {
    static WINDOW: OnceLock<Duration> = OnceLock::new();
    *WINDOW.get_or_init(|| {
        std::env::var("DSR_LOG_REPEAT_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| (1..=3_600_000).contains(ms))
            .map_or(Duration::from_secs(60), Duration::from_millis)
    })
}

/// How often a new [`Kind::Peer`] may be logged in full.
const PEER_KIND_GAP: Duration = Duration::from_secs(1);

struct Entry {
    /// When the last full line (or summary) was logged.
    logged: Instant,
    level: log::Level,
    /// Repeats held back since then.
    held: u64,
    /// When the first of them happened: for "since 22:14:03Z, 61 s ago".
    first: Option<(Instant, SystemTime)>,
    /// When the last of them happened, and its text, for a summary logged after the burst.
    last: Option<(Instant, String)>,
}

impl Entry {
    fn hold(&mut self, now: Instant, msg: String) {
        self.held += 1;
        self.first.get_or_insert((now, SystemTime::now()));
        self.last = Some((now, msg));
    }

    /// The held-back count, reset; with when the first repeat happened.
    fn take(&mut self, now: Instant) -> Option<Held> {
        self.logged = now;
        self.last = None;
        let (at, wall) = self.first.take()?;
        Some(Held {
            n: std::mem::take(&mut self.held),
            wall,
            ago: now.duration_since(at),
        })
    }
}

/// A count of held-back repeats, for a summary.
struct Held {
    n: u64,
    wall: SystemTime,
    ago: Duration,
}

impl fmt::Display for Held {
    /// `9,999 more like this since 22:14:03Z, 61 s ago`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} more like this since {}, {} s ago",
            thousands(self.n),
            clock(self.wall),
            self.ago.as_secs()
        )
    }
}

#[derive(Default)]
struct Table {
    kinds: HashMap<Kind, Entry>,
    /// When a new [`Kind::Peer`] was last logged in full.
    peer_logged: Option<Instant>,
}

/// One table for the process: the relay's loop and the DOCA threads log through it, and only
/// the loop runs [`flush_loop`].
fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(Table::default()))
}

fn lock() -> std::sync::MutexGuard<'static, Table> {
    // Logging must go on after a panic elsewhere; the table holds only counts.
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// The kind of a message: its text without digits, so that the same error about another
/// stream id, port or count is the same kind.
pub fn kind_of(msg: &str) -> String {
    msg.chars()
        .filter(|c| !c.is_ascii_digit())
        .take(120)
        .collect()
}

enum Verdict {
    Full(Option<Held>),
    HeldBack,
}

/// Logs `msg` at `level` unless a line of `kind` was logged in full within [`window`].
pub fn log(level: log::Level, kind: Kind, msg: fmt::Arguments<'_>) {
    let now = Instant::now();
    let verdict = {
        let mut t = lock();
        decide(&mut t, kind, level, now, &msg)
    };
    match verdict {
        Verdict::HeldBack => log::debug!("{msg} (repeat, held back)"),
        Verdict::Full(None) => log::log!(level, "{msg}"),
        Verdict::Full(Some(held)) => log::log!(level, "{msg} ({held})"),
    }
}

fn decide(
    t: &mut Table,
    kind: Kind,
    level: log::Level,
    now: Instant,
    msg: &fmt::Arguments<'_>,
) -> Verdict {
    let window = window();
    if let Some(e) = t.kinds.get_mut(&kind) {
        if now.duration_since(e.logged) < window {
            e.hold(now, msg.to_string());
            return Verdict::HeldBack;
        }
        return Verdict::Full(e.take(now));
    }
    if t.kinds.len() >= MAX_KINDS {
        let oldest = t
            .kinds
            .iter()
            .min_by_key(|(_, e)| e.logged)
            .map(|(k, _)| k.clone());
        oldest.map(|o| t.kinds.remove(&o));
    }
    let mut entry = Entry {
        logged: now,
        level,
        held: 0,
        first: None,
        last: None,
    };
    let crowded = matches!(kind, Kind::Peer(_))
        && t.peer_logged
            .is_some_and(|at| now.duration_since(at) < PEER_KIND_GAP);
    if crowded {
        // A new kind all the same: counted now, reported by the next summary.
        entry.hold(now, msg.to_string());
        t.kinds.insert(kind, entry);
        return Verdict::HeldBack;
    }
    if matches!(kind, Kind::Peer(_)) {
        t.peer_logged = Some(now);
    }
    t.kinds.insert(kind, entry);
    Verdict::Full(None)
}

/// Shorthand for [`log()`] at WARN, for text an unauthenticated peer can provoke or choose.
pub fn warn_peer(msg: fmt::Arguments<'_>) {
    let text = msg.to_string();
    log(
        log::Level::Warn,
        Kind::Peer(kind_of(&text)),
        format_args!("{text}"),
    );
}

/// `n` with a comma every three digits: 18,306.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The UTC time of day of `t`: `22:14:03Z`.
fn clock(t: SystemTime) -> String {
    let stamp = crate::logging::timestamp(t);
    format!("{}Z", &stamp[11..19])
}

/// Logs the count of every kind whose repeats were held back and whose window has passed, so
/// that a burst that stopped still gets its count. The line starts with the summary, so that a
/// warning about something that happened a minute ago does not read as news. Returns how many
/// lines it logged.
pub fn flush() -> usize {
    flush_held(false)
}

/// Logs the count of every kind with repeats held back, due or not: at exit, so that the last
/// burst's count is not lost.
pub fn flush_all() -> usize {
    flush_held(true)
}

fn flush_held(all: bool) -> usize {
    let due = due(&mut lock(), Instant::now(), all);
    for line in &due {
        log::log!(line.0, "{}", line.1);
    }
    due.len()
}

/// The summaries [`flush`] logs (all of them, with `all`), with their levels; their counts are
/// reset.
fn due(t: &mut Table, now: Instant, all: bool) -> Vec<(log::Level, String)> {
    let window = window();
    let due = t
        .kinds
        .values_mut()
        .filter(|e| e.held > 0 && (all || now.duration_since(e.logged) >= window))
        .filter_map(|e| {
            let (at, last) = e.last.take()?;
            let held = e.take(now)?;
            let line = format!(
                "held back since {} ({} s ago): {} more like \"{last}\", the last {} s ago",
                clock(held.wall),
                held.ago.as_secs(),
                thousands(held.n),
                now.duration_since(at).as_secs()
            );
            Some((e.level, line))
        })
        .collect();
    t.kinds
        .retain(|_, e| now.duration_since(e.logged) < 2 * window);
    due
}

/// Runs [`flush`] every few seconds (more often with a window shorter than that), forever.
pub async fn flush_loop() {
    let tick = window().min(Duration::from_secs(5));
    loop {
        Timer::after(tick).await;
        flush();
    }
}

#[cfg(test)]
mod tests;
