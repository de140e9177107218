//! The event loop of the sockets that carry relayed bytes: [`Io`] wraps a non-blocking
//! socket, [`block_on`] runs the executor with it.
//!
//! On Linux the relay's own epoll loop (edge-triggered, `epoll.rs`); anywhere else async-io's
//! reactor behind the same API (`portable.rs`).

#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
pub use epoll::*;

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub use portable::*;

/// Takes a socket connected or accepted through async-io over into the relay's own event
/// loop: the channel and the clients carry every relayed byte.
pub fn own<T: Socket>(s: std::sync::Arc<async_io::Async<T>>) -> std::io::Result<Io<T>> {
    let s = std::sync::Arc::try_unwrap(s)
        .map_err(|_| std::io::Error::other("the socket is still shared"))?
        .into_inner()?;
    Io::new(s)
}
