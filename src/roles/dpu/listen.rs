//! Where the DPU side waits for the host: the listener `--channel` names, and each accepted
//! connection as a transport.

use crate::config::{ChannelAddr, Config, Role};
use crate::doca;
use crate::error::Error;
use crate::link::Transport;
use crate::sys::unix_socket;
use async_io::Async;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;

/// The channel listener.
pub(super) enum Listener {
    Tcp(async_net::TcpListener),
    /// The listener and the guard that removes its socket file on exit.
    Unix(
        Async<std::os::unix::net::UnixListener>,
        #[allow(dead_code)] unix_socket::SocketFile,
    ),
    /// A listening DOCA endpoint (Comm Channel or Comch), and the API's name.
    Doca(Rc<doca::Channel>, &'static str),
}

/// A newly accepted channel connection: the transport, a name for the peer, its address where
/// the transport has one, and bytes already received from it.
pub(super) type Accepted = (Transport, String, Option<IpAddr>, Vec<u8>);

impl Listener {
    /// Listens where `--channel` says: a TCP address, an AF_UNIX path, or the DOCA service.
    pub(super) async fn bind(cfg: &Config, device: Option<&doca::Backend>) -> Result<Self, Error> {
        Ok(match &cfg.channel {
            ChannelAddr::Tcp(host, port) => Listener::Tcp(
                crate::sys::net::tcp_listener(host, *port, 16)
                    .map_err(|e| listen_error(&cfg.channel, e))?,
            ),
            ChannelAddr::Unix(path) => {
                let (l, file) = unix_socket::bind(path, 0o600, 16)?;
                Listener::Unix(l, file)
            }
            ChannelAddr::Doca | ChannelAddr::Comch | ChannelAddr::CommChannel => {
                let backend = device.expect("opened at start-up with --channel doca");
                let channel = backend.start(Role::Dpu, &cfg.cc_name).await;
                let channel = channel.map_err(|e| Error::Doca(e.to_string()))?;
                Listener::Doca(channel, backend.name())
            }
        })
    }

    /// Accepts the next channel connection. The outer error ends the role (a DOCA failure),
    /// the inner one is a failed accept worth a retry.
    pub(super) async fn accept(&self) -> Result<io::Result<Accepted>, Error> {
        Ok(match self {
            Listener::Tcp(l) => l.accept().await.and_then(|(s, peer)| {
                Ok((
                    Transport::tcp(s)?,
                    peer.to_string(),
                    Some(peer.ip()),
                    Vec::new(),
                ))
            }),
            Listener::Unix(l, _) => l.read_with(unix_socket::accept).await.map(|s| {
                (
                    Transport::unix(s),
                    "a local socket".to_string(),
                    None,
                    Vec::new(),
                )
            }),
            Listener::Doca(ch, api) => Ok((
                Transport::Doca(Rc::new(
                    ch.accept().await.map_err(|e| Error::Doca(e.to_string()))?,
                )),
                api.to_string(),
                None,
                Vec::new(),
            )),
        })
    }
}

/// Listens on `host:port` with `IP_FREEBIND`, so that a DPU side started at boot before its
/// tmfifo_net0 address is configured can still listen, and is reachable once it is.
/// A port this user may not take (below 1024 without the capability) stays so on every
/// restart: exit 2. A port in use may be freed (an old instance still exiting): exit 1.
fn listen_error(channel: &ChannelAddr, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return Error::config(format!(
            "listening on {channel}: {e}: ports below 1024 need CAP_NET_BIND_SERVICE; pick \
             another port"
        ));
    }
    Error::io(format!("listening on {channel}"), e)
}
