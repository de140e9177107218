//! TCP listeners for the channel (the DPU side): bound before the address exists where the
//! system allows it.

use std::io;
use std::net::ToSocketAddrs;

/// Listens on `host:port` with a backlog of `backlog`. On Linux the socket may bind an address
/// the machine does not have yet (IP_FREEBIND): the DPU side can start before the tmfifo or
/// network interface is up, and `--check` only notes such an address.
pub fn tcp_listener(host: &str, port: u16, backlog: i32) -> io::Result<async_net::TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("the address resolves to nothing"))?;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    // Best effort: without it a missing address fails the bind, as it would anyway.
    #[cfg(target_os = "linux")]
    let _ = if addr.is_ipv4() {
        sockopt::set_ip_freebind(&fd, true)
    } else {
        sockopt::set_ipv6_freebind(&fd, true)
    };
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, backlog)?;
    async_net::TcpListener::try_from(std::net::TcpListener::from(fd))
}
