//! The service manager: readiness, status, reload and stop notices, the watchdog, and the
//! sockets it passes. systemd on Linux (`systemd.rs`), the service control manager on Windows
//! (`windows.rs`), with the same API.

#[cfg(unix)]
mod systemd;
#[cfg(unix)]
pub use systemd::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
