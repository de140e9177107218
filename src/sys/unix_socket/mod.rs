//! AF_UNIX sockets: listeners (stale files, backlog, mode bits, removal on exit, the socket a
//! service manager passes) and the relay's own connections, owned by [`super::reactor`].
//! rustix on Unix (`posix.rs`), socket2 over Winsock on Windows (`windows.rs`), with the same
//! API.

#[cfg(unix)]
mod posix;
#[cfg(unix)]
pub use posix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

mod stale;
pub(crate) use stale::clear_stale_socket;
