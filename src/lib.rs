//! doca-socket-relay: carries AF_UNIX stream connections from clients on a host to a server
//! application on a BlueField DPU over one multiplexed channel.
//!
//! The modules are layers, bottom first; each imports only from the ones before it
//! (`tests/architecture.rs` checks it, `docs/DESIGN.md` draws it):
//!
//! - [`error`]: the typed error at the edges (exit codes).
//! - [`sys`]: platform code: the data-path event loop, AF_UNIX sockets, the service manager,
//!   signals.
//! - [`logging`]: log sinks, DOCA's numeric levels, the log flood limiter.
//! - [`wire`]: frames, HELLO, sealed records, security modes: pure encode and decode.
//! - [`counters`]: typed reasons (stream outcomes, session ends, handshake failures) and the
//!   counters `--metrics` shows.
//! - [`config`]: flags, the JSON file, key files, the settings a reload changes.
//! - [`doca`]: the DOCA libraries (loaded at run time), devices, the worker-thread bridge, the
//!   Comm Channel and Comch backends.
//! - [`link`]: a channel connection ([`link::Transport`]) and its frame reader.
//! - [`handshake`]: HELLO and AUTH, key proofs, the Noise handshake, this process's identity.
//! - [`mux`]: one session's streams, their state and flow control, the per-connection pump.
//! - [`roles`]: the host side, the DPU side (admission, rate limits, takeover), the drain.
//! - [`ops`]: the run, metrics, reload, status, the statistics dump, `--check`.

// The layers, bottom to top: each module imports only from those above it in this list
// (tests/architecture.rs holds the same order and fails on an import the other way). Each
// declaration stands alone, so that rustfmt, which sorts a run of declarations, keeps the order.
pub mod error;

pub mod sys;

pub mod logging;

pub mod wire;

pub mod counters;

pub mod config;

#[cfg(unix)]
pub mod doca;
/// The DOCA channels: on Windows none can be loaded (see `doca/unsupported.rs`).
#[cfg(windows)]
pub mod doca {
    mod unsupported;
    pub use unsupported::*;
}

pub mod link;

pub mod handshake;

pub mod mux;

pub mod roles;

pub mod ops;

pub use error::Error;
pub use ops::run::run;
