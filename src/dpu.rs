//! The DPU role: listens for the host's channel, authenticates it, and connects every stream the
//! host opens to the server application's socket.

use crate::channel::{self, FrameReader, Transport, STREAM_WINDOW};
use crate::comch;
use crate::config::{ChannelAddr, Config, Role};
use crate::doca;
use crate::error::Error;
use crate::host::HANDSHAKE_TIMEOUT;
use crate::mux::{Session, Stats, Stream};
use crate::protocol::ResetReason;
use crate::pump::{pump, End};
use crate::systemd;
use crate::unix;
use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::future;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Time allowed for connecting to the server application.
const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Channel connections allowed to be in their handshake at once. Anyone who can reach the
/// port can open connections; past this many, new ones are closed at once so that a flood
/// cannot use up file descriptors the relayed clients need.
const MAX_HANDSHAKES: usize = 16;

struct Dpu {
    cfg: Config,
    /// The current host session; a newer authenticated one replaces it.
    session: RefCell<Option<Rc<Session>>>,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
    /// Connections now in their handshake.
    handshakes: Cell<usize>,
    /// When a handshake warning was last logged, and how many were held back since.
    warned: Cell<(Option<Instant>, u32)>,
}

enum Listener {
    Tcp(async_net::TcpListener),
    /// The listener and the guard that removes its socket file on exit.
    Unix(
        Async<std::os::unix::net::UnixListener>,
        #[allow(dead_code)] unix::SocketFile,
    ),
    /// A listening DOCA Comm Channel endpoint.
    Doca(Rc<doca::Listener>),
    /// A DOCA Comch server.
    Comch(Rc<comch::Channel>),
}

/// Runs the DPU role until the returned future is dropped or binding fails.
pub async fn run(
    cfg: Config,
    device: Option<Rc<doca::Backend>>,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
) -> Result<(), Error> {
    let listener = match &cfg.channel {
        ChannelAddr::Tcp(host, port) => Listener::Tcp(
            tcp_listen(host, *port)
                .map_err(|e| Error::io(format!("listening on {}", cfg.channel), e))?,
        ),
        ChannelAddr::Unix(path) => {
            let (l, file) = unix::bind(path, 0o600, 16)?;
            Listener::Unix(l, file)
        }
        ChannelAddr::Doca | ChannelAddr::Comch | ChannelAddr::CommChannel => {
            let backend = device.expect("opened at start-up with --channel doca");
            match &backend.api {
                doca::Api::CommChannel(cc) => Listener::Doca(
                    doca::start(&backend.dev, cc, Role::Dpu, &cfg.cc_name)
                        .await
                        .map_err(Error::Doca)?,
                ),
                doca::Api::Comch(lib) => Listener::Comch(
                    comch::start(&backend.dev, lib, Role::Dpu, &cfg.cc_name)
                        .await
                        .map_err(Error::Doca)?,
                ),
            }
        }
    };
    log::info!(
        "DPU side: waiting for the host on {}, service {:?}, server application at {}",
        cfg.channel,
        cfg.cc_name,
        cfg.socket.display()
    );
    systemd::ready(&stats);
    let dpu = Rc::new(Dpu {
        cfg,
        session: RefCell::new(None),
        stats,
        ex: ex.clone(),
        handshakes: Cell::new(0),
        warned: Cell::new((None, 0)),
    });
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, peer)| (Transport::from(s), peer.to_string(), Vec::new())),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| {
                (
                    Transport::Unix(s.into()),
                    "a local socket".to_string(),
                    Vec::new(),
                )
            }),
            Listener::Comch(ch) => match ch.accept().await {
                Ok(link) => Ok((
                    Transport::Comch(Rc::new(link)),
                    "DOCA Comch".to_string(),
                    Vec::new(),
                )),
                Err(e) => return Err(Error::Doca(e)),
            },
            Listener::Doca(l) => match l.accept().await {
                Ok(link) => Ok((
                    Transport::Doca(Rc::new(link)),
                    "DOCA Comm Channel".to_string(),
                    Vec::new(),
                )),
                Err(e) => return Err(Error::Doca(e)),
            },
        };
        match accepted {
            Ok((transport, _, _)) if dpu.handshakes.get() >= MAX_HANDSHAKES => {
                dpu.warn(format_args!(
                    "{MAX_HANDSHAKES} channel connections are already in their handshake; closing a new one"
                ));
                transport.close();
            }
            Ok((transport, peer, first)) => {
                // Counted here, not when the task first runs: a burst of connections is
                // accepted in one go before any of their tasks starts.
                dpu.handshakes.set(dpu.handshakes.get() + 1);
                ex.spawn(dpu.clone().host_session(transport, peer, first))
                    .detach();
            }
            Err(e) => {
                log::warn!("accepting a channel connection failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Listens on `host:port` with `IP_FREEBIND`, so that a DPU side started at boot before its
/// tmfifo_net0 address is configured can still listen, and is reachable once it is.
fn tcp_listen(host: &str, port: u16) -> std::io::Result<async_net::TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if addr.is_ipv4() {
        let _ = sockopt::set_ip_freebind(&fd, true);
    } else {
        let _ = sockopt::set_ipv6_freebind(&fd, true);
    }
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 16)?;
    async_net::TcpListener::try_from(std::net::TcpListener::from(fd))
}

impl Dpu {
    /// Logs a warning an unauthenticated peer can provoke: at most one a second, so a flood of
    /// bad connections cannot flood the log (or stall the loop writing it).
    fn warn(&self, msg: std::fmt::Arguments<'_>) {
        let (last, held) = self.warned.get();
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.warned.set((last, held + 1));
            return;
        }
        if held > 0 {
            log::warn!("{msg} ({held} more like it held back)");
        } else {
            log::warn!("{msg}");
        }
        self.warned.set((Some(Instant::now()), 0));
    }

    /// One channel connection, counted in `handshakes` by the accept loop until its handshake
    /// ends.
    async fn host_session(self: Rc<Self>, transport: Transport, peer: String, first: Vec<u8>) {
        let agreed = self.handshake(&transport, &peer, first).await;
        self.handshakes.set(self.handshakes.get() - 1);
        let Some((agreed, reader)) = agreed else {
            transport.close();
            return;
        };
        self.run_session(transport, peer, agreed, reader).await;
    }

    async fn handshake(
        &self,
        transport: &Transport,
        peer: &str,
        first: Vec<u8>,
    ) -> Option<(channel::Agreed, FrameReader)> {
        let mut reader = FrameReader::new(transport.clone(), transport.max_msg());
        reader.push(&first);
        let handshake = future::or(
            async {
                channel::handshake(transport, &mut reader, &self.cfg)
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                Timer::after(HANDSHAKE_TIMEOUT).await;
                Err("timed out".to_string())
            },
        )
        .await;
        match handshake {
            Ok(a) => Some((a, reader)),
            Err(e) => {
                self.warn(format_args!("handshake with host {peer} failed: {e}"));
                None
            }
        }
    }

    async fn run_session(
        self: Rc<Self>,
        transport: Transport,
        peer: String,
        agreed: channel::Agreed,
        reader: FrameReader,
    ) {
        let session = Session::new(
            agreed.max_data,
            agreed.peer_window,
            STREAM_WINDOW,
            self.cfg.max_clients,
            true,
            self.stats.clone(),
        );
        if let Some(old) = self.session.replace(Some(session.clone())) {
            let n = old.kill();
            log::warn!("a new host session from {peer} replaces the old one; {n} streams reset");
        }
        self.stats.channel_up.set(true);
        log::info!("host connected from {peer}");
        let (why, streams) = session
            .run(transport, reader, |stream| {
                self.ex
                    .spawn(self.clone().serve(session.clone(), stream))
                    .detach();
            })
            .await;
        let current = self
            .session
            .borrow()
            .as_ref()
            .is_some_and(|s| Rc::ptr_eq(s, &session));
        if current {
            *self.session.borrow_mut() = None;
            self.stats.channel_up.set(false);
            log::warn!("host channel from {peer} lost: {why}; {streams} open streams reset");
        }
    }

    async fn serve(self: Rc<Self>, session: Rc<Session>, stream: Rc<Stream>) {
        let id = stream.id;
        let connected = future::or(
            async {
                loop {
                    match Async::<UnixStream>::connect(&self.cfg.socket).await {
                        // A full listen backlog answers a non-blocking connect with EAGAIN at
                        // once; a burst of clients must not read that as "server missing".
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            Timer::after(Duration::from_millis(5)).await;
                        }
                        other => break other,
                    }
                }
            },
            async {
                Timer::after(SERVER_CONNECT_TIMEOUT).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
            },
        )
        .await;
        let sock = match connected {
            Ok(s) => Rc::new(s),
            Err(e) => {
                log::warn!(
                    "stream {id}: cannot connect to the server application at {}: {e}; closing the client",
                    self.cfg.socket.display()
                );
                let mut st = stream.st.borrow_mut();
                session.reset_stream(&stream, &mut st, ResetReason::SERVER_UNAVAILABLE);
                return;
            }
        };
        if stream.st.borrow().reset.is_some() {
            // Reset (or the session ended) while connecting: the server sees a plain close.
            return;
        }
        log::debug!("stream {id}: connected to the server application");
        self.stats.clients.set(self.stats.clients.get() + 1);
        let end = pump(&session, &stream, sock).await;
        self.stats.clients.set(self.stats.clients.get() - 1);
        match end {
            End::Closed => log::debug!("stream {id}: closed"),
            End::Reset(why) => log::debug!("stream {id}: reset: {why}"),
        }
    }
}
