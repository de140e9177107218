//! The syslog target: lines go through a bounded queue to one writer thread, so a slow or
//! restarting syslog daemon never blocks the relay, and a restart loses no lines.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Conn = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// Lines waiting for the writer: enough for a burst of connection errors, small enough that a
/// dead syslogd costs at most a few hundred kilobytes.
const QUEUE: usize = 512;
/// First retry after a failed connect; doubles up to [`RETRY_MAX`]. Short, because the usual
/// cause is a daemon restarting, which takes milliseconds.
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// A send may wait this long for room in the daemon's queue before the line is retried later.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// How long `flush` (called at exit) waits for queued lines to reach the daemon.
const FLUSH_WAIT: Duration = Duration::from_millis(500);

enum Msg {
    Line(log::Level, String),
    Flush(SyncSender<()>),
}

/// The `log` front end: formats the record and hands it to the writer thread without waiting.
pub(super) struct SyslogLogger {
    tx: SyncSender<Msg>,
    /// Lines lost because the queue was full; the writer reports the count once it can.
    dropped: Arc<AtomicU64>,
    instance: String,
}

impl SyslogLogger {
    /// Starts the writer thread for the daemon socket at `path` (usually `/dev/log`).
    /// Every line starts with `[instance] ` (service and role), as on stderr, so that the
    /// instances of one machine can be told apart in the syslog.
    pub(super) fn start(path: PathBuf, instance: &str) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            path,
            conn: None,
            fresh: false,
            backlog: VecDeque::new(),
            retry: RETRY_MIN,
            next_try: Instant::now(),
            dropped: dropped.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || writer.run(rx));
        if let Err(e) = spawned {
            eprintln!("doca_socket_relay: cannot start the syslog writer: {e}");
        }
        SyslogLogger {
            tx,
            dropped,
            instance: instance.to_string(),
        }
    }
}

impl log::Log for SyslogLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = format!("[{}] {}", self.instance, record.args());
        let line = Msg::Line(record.level(), text);
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

struct Writer {
    path: PathBuf,
    conn: Option<Conn>,
    /// Lines taken off the queue but not yet accepted by the daemon, oldest first.
    backlog: VecDeque<(log::Level, String)>,
    /// The connection has not delivered a line yet: a failure on it means the daemon is not
    /// taking lines, not that it restarted.
    fresh: bool,
    retry: Duration,
    next_try: Instant,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = if self.backlog.is_empty() {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(self.next_try.saturating_duration_since(Instant::now()))
            };
            match msg {
                Ok(m) => self.take(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take whatever else is already queued before touching the socket.
            while let Ok(m) = rx.try_recv() {
                self.take(m);
            }
            self.deliver();
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Line(level, text) => {
                if self.backlog.len() >= QUEUE {
                    self.backlog.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                self.backlog.push_back((level, text));
            }
            Msg::Flush(ack) => {
                self.deliver();
                let _ = ack.try_send(());
            }
        }
    }

    /// Sends the backlog in order; stops at the first line the daemon does not take and keeps
    /// it for the next attempt.
    fn deliver(&mut self) {
        while !self.backlog.is_empty() {
            if self.conn.is_none() && !self.connect() {
                return;
            }
            let lost = self.dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let note = format!("{lost} log lines were dropped while syslog was unreachable");
                self.backlog.push_front((log::Level::Warn, note));
            }
            let (Some(conn), Some((level, text))) = (self.conn.as_mut(), self.backlog.front())
            else {
                return;
            };
            if send(conn, *level, text) {
                self.backlog.pop_front();
                self.fresh = false;
                self.retry = RETRY_MIN;
                continue;
            }
            // A restarted daemon has a new socket at the same path: reconnect at once, but
            // back off if even a fresh connection does not take the line.
            self.conn = None;
            if self.fresh {
                self.back_off();
            }
        }
    }

    fn back_off(&mut self) {
        self.next_try = Instant::now() + self.retry;
        self.retry = (self.retry * 2).min(RETRY_MAX);
    }

    fn connect(&mut self) -> bool {
        if Instant::now() < self.next_try {
            return false;
        }
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "doca_socket_relay".into(),
            pid: std::process::id(),
        };
        match syslog::unix_custom(formatter, &self.path) {
            Ok(conn) => {
                match &conn.backend {
                    syslog::LoggerBackend::Unix(s) => {
                        let _ = s.set_write_timeout(Some(SEND_TIMEOUT));
                    }
                    syslog::LoggerBackend::UnixStream(s) => {
                        let _ = s.get_ref().set_write_timeout(Some(SEND_TIMEOUT));
                    }
                    _ => {}
                }
                self.conn = Some(conn);
                self.fresh = true;
                true
            }
            Err(_) => {
                self.back_off();
                false
            }
        }
    }
}

fn send(conn: &mut Conn, level: log::Level, msg: &str) -> bool {
    let r = match level {
        log::Level::Error => conn.err(msg),
        log::Level::Warn => conn.warning(msg),
        log::Level::Info => conn.info(msg),
        log::Level::Debug | log::Level::Trace => conn.debug(msg),
    };
    r.is_ok()
}
