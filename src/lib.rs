//! doca-socket-relay: carries AF_UNIX stream connections from clients on a host to a server
//! application on a BlueField DPU over one multiplexed channel.
//!
//! Layout: [`cli`] and [`config`] turn flags into a [`config::Config`]; [`protocol`] is the pure
//! wire format; [`auth`] the pre-shared-key handshake proofs; [`channel`] the transports and the
//! handshake; [`mux`] one session's streams, flow control and frame I/O; [`pump`] the per-client
//! task; [`host`] and [`dpu`] the two roles; [`unix`] binding the host socket.

pub mod cli;
pub mod config;
pub mod error;
pub mod logging;
pub mod protocol;

pub use error::Error;

/// Runs the relay until SIGTERM or SIGINT (`Ok`) or a fatal error.
pub fn run(config: config::Config) -> Result<(), Error> {
    let _ = config;
    Err(Error::Unsupported("not yet".into()))
}
