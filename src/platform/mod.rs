//! What differs between platforms, and where it lives.
//!
//! The relay core (`mux`, `pump`, `host`, `protocol`, `channel`, `secure`, `config`, `cli`) is
//! the same everywhere. Each platform concern is one module with the same API on every
//! platform, chosen in `lib.rs`:
//!
//! | concern | Linux | Windows (host role only) |
//! |---|---|---|
//! | data-path event loop | `reactor` (epoll, edge-triggered) | `reactor/portable.rs` (async-io: IOCP) |
//! | AF_UNIX listener and sockets | `unix` (rustix; systemd socket activation) | `windows/unix.rs` (socket2 over Winsock) |
//! | service manager | `systemd` (sd_notify, watchdog) | `windows/service.rs` (the service control manager) |
//! | stop and statistics requests | `signals` (SIGTERM, SIGINT, SIGUSR1) | `windows/signals.rs` (Ctrl-C, service stop) |
//! | DOCA libraries | `doca`, `comch` (loaded at run time) | `windows/doca.rs` (none: see there) |
//! | DPU role | `dpu` | `windows/dpu.rs` (refused) |
//!
//! What is left here: the flags a platform refuses, checked while the configuration is
//! validated, so that a refused flag is a configuration error (exit 2) before anything is bound.

use crate::config::{ChannelAddr, LogTarget, Role};

/// The flags of a configuration that a platform may refuse.
pub struct Asked<'a> {
    /// The role.
    pub role: Role,
    /// The channel.
    pub channel: &'a ChannelAddr,
    /// Whether `--socket-mode` was given.
    pub socket_mode: bool,
    /// `--log-target`, if given.
    pub log_target: Option<&'a LogTarget>,
}

/// Everything is available on Linux.
#[cfg(unix)]
pub fn refuse(_asked: &Asked) -> Result<(), (&'static str, String)> {
    Ok(())
}

/// Windows runs the host role over a tcp or unix channel; the error names the flag at fault.
#[cfg(windows)]
pub fn refuse(asked: &Asked) -> Result<(), (&'static str, String)> {
    if asked.role == Role::Dpu {
        return Err(("role", crate::dpu::UNSUPPORTED.into()));
    }
    if asked.channel.is_doca() {
        return Err(("channel", crate::doca::UNSUPPORTED.into()));
    }
    if asked.socket_mode {
        return Err((
            "socket-mode",
            "has no meaning on Windows: who may connect to the socket follows the ACL of its \
             directory (and the file's, which inherits it); set that ACL instead"
                .into(),
        ));
    }
    if matches!(asked.log_target, Some(LogTarget::Syslog(_))) {
        return Err((
            "log-target",
            "syslog is not available on Windows; use stderr (redirect it to a file, or let \
             the service's log file take it)"
                .into(),
        ));
    }
    Ok(())
}
