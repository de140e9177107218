//! The flags a platform refuses, checked before the relay binds anything (`run` and
//! `--check`), as a configuration error (exit 2). Validation itself stays the same on every
//! platform, so that one configuration means the same everywhere; what differs between
//! platforms lives in [`crate::sys`].

use crate::config::Config;
#[cfg(windows)]
use crate::config::{LogTarget, Role, DEFAULT_SOCKET_MODE};

/// Everything is available on Linux.
#[cfg(unix)]
pub fn refuse(_cfg: &Config) -> Result<(), String> {
    Ok(())
}

/// Windows runs the host role over a tcp or unix channel, logging to stderr; the error names
/// the flag at fault.
#[cfg(windows)]
pub fn refuse(cfg: &Config) -> Result<(), String> {
    if cfg.role == Role::Dpu {
        return Err(format!("--role {}", crate::roles::dpu::UNSUPPORTED));
    }
    if cfg.channel.is_doca() {
        return Err(format!(
            "--channel {}: {}",
            cfg.channel,
            crate::doca::UNSUPPORTED
        ));
    }
    // The default cannot be told from a mode given explicitly; either way nothing is set.
    if cfg.socket_mode != DEFAULT_SOCKET_MODE {
        return Err(
            "--socket-mode has no meaning on Windows: who may connect to the socket \
                    follows the ACL of its directory (which the socket file inherits); set \
                    that ACL instead"
                .into(),
        );
    }
    if matches!(cfg.log_target, LogTarget::Syslog(_)) {
        return Err("--log-target: syslog is not available on Windows; use stderr".into());
    }
    if !cfg.busy_poll.is_zero() {
        return Err(
            "--busy-poll is not available on Windows (it needs the Linux event loop)".into(),
        );
    }
    Ok(())
}

#[cfg(all(test, windows))]
mod tests {
    use crate::config::cli::{self, Command};

    fn parsed(args: &str) -> crate::config::Config {
        match cli::parse(args.split(' ').map(Into::into).collect()) {
            Ok(Command::Run(cfg)) => *cfg,
            _ => panic!("{args:?} should parse"),
        }
    }

    fn refused(args: &str) -> String {
        super::refuse(&parsed(args)).unwrap_err()
    }

    #[test]
    fn windows_refuses_what_it_cannot_do() {
        let base = "-s C:\\x.sock -n svc --no-auth";
        assert!(
            refused(&format!("{base} --channel tcp:127.0.0.1:1 --role dpu")).contains("--role dpu")
        );
        assert!(refused(&format!("{base} -p 3b:00.0")).contains("DOCA"));
        assert!(refused(&format!(
            "{base} --channel tcp:127.0.0.1:1 --socket-mode 0600"
        ))
        .contains("ACL"));
        assert!(refused(&format!(
            "{base} --channel tcp:127.0.0.1:1 --log-target syslog"
        ))
        .contains("syslog"));
        assert!(
            refused(&format!("{base} --channel tcp:127.0.0.1:1 --busy-poll 50"))
                .contains("--busy-poll is not available")
        );
        let cfg = parsed(&format!("{base} --channel tcp:127.0.0.1:1"));
        assert_eq!(super::refuse(&cfg), Ok(()));
    }
}
