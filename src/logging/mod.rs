//! DOCA's numeric log levels, and the `log` crate's output to stderr or syslog.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

pub mod ratelimit;
mod stderr;
pub mod text;

// The syslog sink: a datagram socket on Unix; on Windows, where configuration refuses
// `--log-target syslog`, a stand-in that writes to stderr.
#[cfg(windows)]
mod no_syslog;
#[cfg(unix)]
mod syslog;
#[cfg(windows)]
use no_syslog as syslog_writer;
#[cfg(unix)]
use syslog as syslog_writer;

use std::sync::atomic::{AtomicBool, Ordering};
pub use stderr::{priority, timestamp};

/// A DOCA log level: 10=DISABLE 20=CRITICAL 30=ERROR 40=WARNING 50=INFO 60=DEBUG 70=TRACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLevel(pub u8);

const NAMES: [(&str, u8); 7] = [
    ("disable", 10),
    ("critical", 20),
    ("error", 30),
    ("warning", 40),
    ("info", 50),
    ("debug", 60),
    ("trace", 70),
];

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel(50)
    }
}

impl LogLevel {
    fn from_number(n: u64) -> Result<Self, String> {
        NAMES
            .iter()
            .find(|(_, v)| u64::from(*v) == n)
            .map(|(_, v)| LogLevel(*v))
            .ok_or_else(|| format!("expected one of 10,20,...,70 or a level name, got {n}"))
    }

    /// The `log` crate filter for this level. CRITICAL and ERROR both map to `Error`.
    pub fn filter(self) -> log::LevelFilter {
        match self.0 {
            10 => log::LevelFilter::Off,
            20 | 30 => log::LevelFilter::Error,
            40 => log::LevelFilter::Warn,
            50 => log::LevelFilter::Info,
            60 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<u64>() {
            return Self::from_number(n);
        }
        let lower = s.to_ascii_lowercase();
        let lower = if lower == "warn" {
            "warning".into()
        } else {
            lower
        };
        NAMES
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, v)| LogLevel(*v))
            .ok_or_else(|| format!("expected one of 10,20,...,70 or a level name, got {s:?}"))
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LogLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DOCA log level (10-70) or its name")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<LogLevel, E> {
                LogLevel::from_number(n).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<LogLevel, E> {
                LogLevel::from_number(n.max(0) as u64).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LogLevel, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn level_tag(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERR",
        log::Level::Warn => "WRN",
        log::Level::Info => "INF",
        log::Level::Debug => "DBG",
        log::Level::Trace => "TRC",
    }
}

static SYSLOG: AtomicBool = AtomicBool::new(false);
static JOURNAL: AtomicBool = AtomicBool::new(false);
static FATAL_REPORTED: AtomicBool = AtomicBool::new(false);

/// Installs the logger for `target` at `level`; `instance` (`service/role`) tags every stderr
/// line. Calling it twice keeps the first logger.
pub fn init(level: LogLevel, target: &LogTarget, instance: &str) {
    let journal = crate::sys::service::stderr_is_journal();
    JOURNAL.store(journal, Ordering::Relaxed);
    let logger: Box<dyn log::Log> = match target {
        LogTarget::Stderr => Box::new(stderr::StderrLogger {
            instance: instance.to_string(),
            journal,
        }),
        LogTarget::Syslog(path) => {
            SYSLOG.store(true, Ordering::Relaxed);
            let path = path.clone().unwrap_or_else(|| PathBuf::from("/dev/log"));
            Box::new(syslog_writer::SyslogLogger::start(path, instance))
        }
    };
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level.filter());
    }
}

/// Reports the error that stops the relay, once: on stderr (with the `<3>` priority under
/// the journal) and, with a syslog target, to syslog too.
pub fn report_fatal(e: &dyn fmt::Display) {
    if FATAL_REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    if SYSLOG.load(Ordering::Relaxed) {
        log::error!("{e}");
    }
    let prio = if JOURNAL.load(Ordering::Relaxed) {
        "<3>"
    } else {
        ""
    };
    let line = format!("{prio}doca_socket_relay: error: {e}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (journald captures it under systemd).
    Stderr,
    /// The local syslog daemon, facility daemon: `/dev/log` or the given datagram socket.
    Syslog(Option<PathBuf>),
}

impl FromStr for LogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stderr" => Ok(LogTarget::Stderr),
            "syslog" => Ok(LogTarget::Syslog(None)),
            _ => match s.strip_prefix("syslog:") {
                Some(p) if !p.is_empty() => Ok(LogTarget::Syslog(Some(PathBuf::from(p)))),
                _ => Err(format!("expected stderr, syslog or syslog:PATH, got {s:?}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_number_and_name() {
        assert_eq!("60".parse(), Ok(LogLevel(60)));
        assert_eq!("Debug".parse(), Ok(LogLevel(60)));
        assert_eq!("WARN".parse(), Ok(LogLevel(40)));
        assert!("55".parse::<LogLevel>().is_err());
        assert!("loud".parse::<LogLevel>().is_err());
        assert_eq!(LogLevel(10).filter(), log::LevelFilter::Off);
        assert_eq!(LogLevel(20).filter(), log::LevelFilter::Error);
    }
}
