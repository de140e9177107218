//! The requests the relay takes from outside while it runs: stop, the statistics dump and a
//! reload. Signals on Unix (`posix.rs`); Ctrl-C and the service manager's stop on Windows
//! (`windows.rs`), with the same API.

#[cfg(unix)]
mod posix;
#[cfg(unix)]
pub use posix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
