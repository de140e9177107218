//! systemd glue: readiness, live status, the watchdog, and socket activation.
//!
//! On Windows the same API reports to the service control manager instead (`windows.rs`).
//!
//! Every call is a no-op outside systemd (`NOTIFY_SOCKET`, `WATCHDOG_USEC` and `LISTEN_FDS`
//! unset), so the relay behaves the same when started by hand.

use crate::error::Error;
use rustix::net::{AddressFamily, SocketType};
use sd_notify::NotifyState;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

/// Runs `main` and returns its exit code: systemd starts the relay as a plain process
/// (on Windows this is where the service control manager is offered the process).
pub fn entry(main: fn() -> u8) -> u8 {
    main()
}

/// Tells systemd the relay is serving: the socket is bound and the channel is up or being
/// retried.
pub fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a reload started (`RELOADING=1` with the monotonic time it asks for, so that
/// `systemctl reload` can tell this reload from an earlier one).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    let _ = sd_notify::notify(&states);
}

/// Tells systemd the reload is over, whatever its outcome: the relay runs on either way.
pub fn reloaded(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the relay is shutting down.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Sends `STATUS=line` without waiting. sd_notify's send blocks while the notify socket's
/// queue is full (a manager that is busy, or a test that reads late: 10 datagrams by default),
/// and this runs on the event loop; a status line the next tick replaces may be dropped
/// instead. READY, RELOADING, STOPPING and the watchdog still go through sd_notify: systemd
/// must get those.
pub fn send_status(line: &str) {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let addr = {
        #[cfg(target_os = "linux")]
        if let Some(name) =
            std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).strip_prefix(b"@")
        {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        } else {
            SocketAddr::from_pathname(&path)
        }
        #[cfg(not(target_os = "linux"))]
        SocketAddr::from_pathname(&path)
    };
    let Ok(addr) = addr else {
        return;
    };
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.set_nonblocking(true);
        let _ = sock.send_to_addr(format!("STATUS={line}\n").as_bytes(), &addr);
    }
}

/// Whether a service manager listens for `STATUS=` lines (`NOTIFY_SOCKET` is set).
pub fn wants_status() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The watchdog's period, if systemd runs one (`WATCHDOG_USEC`).
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Tells the watchdog the relay is alive.
pub fn watchdog_ping() {
    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
}

/// The listening socket systemd passed (`LISTEN_FDS`), if any. It must be one AF_UNIX stream
/// socket; systemd owns its path, so the relay never unlinks it.
pub fn listen_fd() -> Result<Option<OwnedFd>, Error> {
    let mut fds = sd_notify::listen_fds().map_err(|e| Error::io("reading LISTEN_FDS", e))?;
    let Some(raw) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        return Err(Error::io(
            "socket activation",
            std::io::Error::other("systemd passed more than one socket; the relay takes one"),
        ));
    }
    // SAFETY: systemd hands this fd to the process; `listen_fds` checked LISTEN_PID, and
    // nothing else in the relay uses fd numbers from LISTEN_FDS.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let is_unix_stream = rustix::net::sockopt::socket_type(&fd)
        .is_ok_and(|t| t == SocketType::STREAM)
        && rustix::net::getsockname(&fd).is_ok_and(|a| a.address_family() == AddressFamily::UNIX);
    if !is_unix_stream {
        return Err(Error::io(
            "socket activation",
            std::io::Error::other("the socket systemd passed is not an AF_UNIX stream socket"),
        ));
    }
    Ok(Some(fd))
}

/// Whether stderr is the journal stream systemd set up (`JOURNAL_STREAM=DEV:INODE` matches
/// stderr's device and inode). A child that inherits the variable but has its stderr
/// redirected elsewhere does not match.
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let stderr = std::io::stderr();
    rustix::fs::fstat(std::os::fd::AsFd::as_fd(&stderr))
        .is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}
