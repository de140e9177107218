//! Log lines on standard error, shaped for where stderr goes.
//!
//! - By hand (a terminal, a file): `2026-11-27T11:15:42.123Z [myapp/host][INF] message`, a UTC
//!   timestamp and the instance (service name and role) on every line, so that the lines of
//!   two sides in one terminal or file can be told apart and put in order.
//! - Under systemd, when `JOURNAL_STREAM` names the very file stderr is: no timestamp (the
//!   journal has its own) and the sd-daemon(3) `<N>` priority prefix, which journald turns
//!   into the entry's priority so that `journalctl -p warning` filters by level (whether it
//!   is: `crate::sys::service::stderr_is_journal`).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) struct StderrLogger {
    /// `myapp/host`: the service name and the role.
    pub(super) instance: String,
    pub(super) journal: bool,
}

/// The sd-daemon(3) priority of a level: ERR 3, WARNING 4, INFO 6, DEBUG 7.
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// `2026-11-27T11:15:42.123Z` for `t`.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Year, month and day of the `days`-th day after 1970-01-01 in the proleptic Gregorian
/// calendar (the well-known era/day-of-era method, valid for every date after 1970).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl log::Log for StderrLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = super::level_tag(record.level());
        let line = if self.journal {
            format!(
                "<{}>[{}][{tag}] {}\n",
                priority(record.level()),
                self.instance,
                record.args()
            )
        } else {
            format!(
                "{} [{}][{tag}] {}\n",
                timestamp(SystemTime::now()),
                self.instance,
                record.args()
            )
        };
        // One write per line keeps lines whole when several processes share a terminal.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 13:45:06.789 UTC.
        let t = UNIX_EPOCH + Duration::from_millis(1_709_214_306_789);
        assert_eq!(timestamp(t), "2024-02-29T13:45:06.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(timestamp(t), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Trace), 7);
    }
}
