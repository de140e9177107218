//! What differs between platforms, one module per concern, each with the same API on every
//! platform and its choice made inside it:
//!
//! | concern | Linux | Windows (host role only) |
//! |---|---|---|
//! | data-path event loop | [`reactor`]: epoll, edge-triggered | [`reactor`]: async-io (IOCP) |
//! | AF_UNIX listeners and sockets | [`unix_socket`]: rustix, systemd socket activation | [`unix_socket`]: socket2 over Winsock |
//! | service manager | [`service`]: sd_notify, watchdog | [`service`]: the service control manager |
//! | stop, statistics and reload requests | [`signals`]: SIGTERM, SIGINT, SIGUSR1, SIGHUP | [`signals`]: Ctrl-C, service stop |
//!
//! Nothing here imports the relay's other modules (only [`crate::error`]): the layers above
//! call down into these.

#[cfg(unix)]
pub mod net;
pub mod reactor;
pub mod service;
pub mod signals;
pub mod unix_socket;
