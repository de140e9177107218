//! The two roles: the host side accepts clients and opens streams, the DPU side accepts the
//! channel and connects each stream to the server application. `shutdown` is the drain
//! both share.

pub mod host;
pub(crate) mod shutdown;

#[cfg(unix)]
pub mod dpu;

/// The DPU role needs DOCA's Arm side: on Windows it is refused at start.
#[cfg(windows)]
pub mod dpu {
    mod unsupported;
    pub use unsupported::*;
}

/// Tells the service manager the relay is serving: the socket is bound and the channel is up
/// or being retried.
fn ready(stats: &crate::mux::Stats) {
    stats.ready.set(true);
    crate::sys::service::ready(&stats.status_line());
}
