//! There is no syslog on Windows: configuration validation refuses `--log-target syslog`
//! (`ops::refuse`), so this stand-in only keeps the logger set-up the same on every
//! platform. Should it ever be reached, lines go to stderr.

use std::path::PathBuf;

pub(super) use super::stderr::StderrLogger as SyslogLogger;

impl SyslogLogger {
    /// A stderr logger for `instance`.
    pub(super) fn start(_path: PathBuf, instance: &str) -> Self {
        SyslogLogger {
            instance: instance.to_string(),
            journal: false,
        }
    }
}
