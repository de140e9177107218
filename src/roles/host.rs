//! The host role: binds the client socket, keeps one channel to the DPU side up (reconnecting
//! with capped exponential backoff), and relays every accepted client as one stream.

use crate::config::Live;
use crate::config::{ChannelAddr, Config};
use crate::counters::{Counters, Outcome};
use crate::doca;
use crate::error::Error;
use crate::link::{FrameReader, Transport};
use crate::logging::ratelimit::{self, Kind};
use crate::mux::pump::{pump, End};
use crate::mux::{Session, Stats};
use crate::roles::shutdown::{self, Shutdown};
use crate::sys::reactor::Io;
use crate::sys::unix_socket;
use crate::sys::unix_socket::UnixStream;
use crate::wire::ResetReason;
use crate::wire::STREAM_WINDOW;
use async_executor::LocalExecutor;
use async_io::Timer;
use event_listener::Event;
use futures_lite::future;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a client that arrives while the channel is down waits for it.
pub const CHANNEL_WAIT: Duration = Duration::from_secs(10);
/// Time allowed for connecting and the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Back-off after the DPU side refused this host in a verdict authenticated with the key
/// (another host connected, wrong service name): nothing changes until an operator acts, so
/// retry slowly. A clear ERROR gets the ordinary back-off: anyone on the path could forge it.
const REFUSED_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long the DPU side may be unreachable before that is a warning: at a normal start with
/// both sides launched together the host often tries first.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(10);

struct Host {
    cfg: Config,
    /// What a reload changes (the client limit).
    live: Rc<Live>,
    session: RefCell<Option<Rc<Session>>>,
    /// Notified whenever `session` changes.
    changed: Event,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
    /// The DOCA device, with `--channel doca`.
    doca: Option<Rc<doca::Backend>>,
    stop: Rc<Shutdown>,
}

/// Runs the host role until the returned future is dropped or binding fails.
pub(crate) async fn run(
    cfg: Config,
    live: Rc<Live>,
    device: Option<Rc<doca::Backend>>,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
    stop: Rc<Shutdown>,
) -> Result<(), Error> {
    let (listener, file) = unix_socket::listener(&cfg.socket, cfg.socket_mode, cfg.max_clients)?;
    log::info!(
        "host side: clients on {}, channel {}, service {:?}, up to {} clients",
        cfg.socket.display(),
        cfg.channel,
        cfg.cc_name,
        cfg.max_clients
    );
    let host = Rc::new(Host {
        cfg,
        live,
        session: RefCell::new(None),
        changed: Event::new(),
        stats,
        ex: ex.clone(),
        doca: device,
        stop,
    });
    let _channel = ex.spawn(host.clone().channel_loop());
    super::ready(&host.stats);
    let mut backoff = Duration::from_millis(10);
    loop {
        // Accepted straight into the relay's own loop, never registered with async-io's.
        let accept = listener.read_with(unix_socket::accept);
        let accepted = future::or(async { Some(accept.await) }, async {
            host.stop.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(sock) => {
                backoff = Duration::from_millis(10);
                host.admit(sock);
            }
            Err(e) => {
                // EMFILE and friends pass; keep serving the clients we have.
                ratelimit::log(
                    log::Level::Warn,
                    Kind::Accept,
                    format_args!("accepting a client failed: {e}"),
                );
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    // New clients now find no socket; the ones already here get what was read for them.
    drop(listener);
    drop(file);
    let session = host.session.borrow().clone();
    shutdown::finish(session, host.live.drain_timeout.get()).await;
    Ok(())
}

impl Host {
    fn admit(self: &Rc<Self>, sock: Io<UnixStream>) {
        let clients = self.stats.clients.get();
        if clients >= self.live.max_clients.get() {
            self.stats.counters.stream_ended(Outcome::RefusedLimit);
            ratelimit::log(
                log::Level::Warn,
                Kind::ClientLimit,
                format_args!(
                    "client refused: {clients} clients connected, the limit (--max-clients)"
                ),
            );
            return;
        }
        self.stats.clients.set(clients + 1);
        self.ex.spawn(self.clone().client(Rc::new(sock))).detach();
    }

    async fn client(self: Rc<Self>, sock: Rc<Io<UnixStream>>) {
        let end = self.relay_client(sock).await;
        self.stats.clients.set(self.stats.clients.get() - 1);
        self.stats.task_ended.notify(usize::MAX);
        if let Some((id, end)) = end {
            self.stats.counters.stream_ended(match end {
                End::Closed => Outcome::Closed,
                End::SocketError => Outcome::ResetByClient,
                End::Reset(ResetReason::SOCKET_ERROR) => Outcome::ResetByServer,
                End::Reset(ResetReason::SERVER_UNAVAILABLE) => Outcome::ServerUnavailable,
                End::Reset(ResetReason::LIMIT) => Outcome::RefusedLimit,
                End::Reset(_) => Outcome::ResetByPeer,
            });
            match end {
                End::Closed => log::debug!("stream {id}: closed"),
                End::SocketError => log::debug!("stream {id}: the client's socket failed"),
                // The session's end is logged once for all its streams.
                End::Reset(why @ (ResetReason::CHANNEL_LOST | ResetReason::SHUTDOWN)) => {
                    log::debug!("stream {id}: {why}")
                }
                End::Reset(why) => ratelimit::log(
                    log::Level::Info,
                    Kind::StreamReset(reset_kind(why)),
                    format_args!("stream {id}: client closed: {why}"),
                ),
            }
        }
    }

    async fn relay_client(&self, sock: Rc<Io<UnixStream>>) -> Option<(u32, End)> {
        let Some(session) = self.wait_for_session().await else {
            if self.stop.started() {
                ratelimit::log(
                    log::Level::Info,
                    Kind::NoChannel,
                    format_args!(
                        "client closed: shutting down before a channel to the DPU side was up"
                    ),
                );
                return None;
            }
            self.stats.counters.stream_ended(Outcome::RefusedNoChannel);
            ratelimit::log(
                log::Level::Warn,
                Kind::NoChannel,
                format_args!(
                    "client closed: no channel to the DPU side within {} s",
                    CHANNEL_WAIT.as_secs()
                ),
            );
            return None;
        };
        let stream = session.open_stream(sock.clone())?;
        log::debug!("stream {}: client connected", stream.id);
        Some((stream.id, pump(&session, &stream, sock).await))
    }

    async fn wait_for_session(&self) -> Option<Rc<Session>> {
        if self.stop.started() {
            return None;
        }
        let wait = async {
            loop {
                let listener = self.changed.listen();
                if let Some(s) = self.session.borrow().as_ref().filter(|s| !s.is_dead()) {
                    return Some(s.clone());
                }
                listener.await;
            }
        };
        let give_up = async {
            future::or(Timer::after(CHANNEL_WAIT), async {
                self.stop.wait().await;
                Instant::now()
            })
            .await;
            None
        };
        future::or(wait, give_up).await
    }

    fn set_session(&self, session: Option<Rc<Session>>) {
        *self.session.borrow_mut() = session;
        self.changed.notify(usize::MAX);
    }

    async fn channel_loop(self: Rc<Self>) {
        let mut backoff = BACKOFF_MIN;
        // Since when the DPU side has been unreachable, and whether that was logged at WARN.
        let mut unreachable: Option<(Instant, bool)> = None;
        while !self.stop.started() {
            let mut refused = false;
            let cfg = self.live.keyed(&self.cfg);
            let counters = &self.stats.counters;
            let attempt = future::or(connect(&cfg, counters, self.doca.as_ref()), async {
                self.stop.wait().await;
                Err(ConnectError::Unreachable("shutting down".into()))
            });
            match attempt.await {
                Ok((transport, reader, agreed)) => {
                    log::info!(
                        "channel up: {} (service {:?})",
                        self.cfg.channel,
                        self.cfg.cc_name
                    );
                    backoff = BACKOFF_MIN;
                    unreachable = None;
                    let session = Session::new(
                        agreed.max_data,
                        agreed.peer_window,
                        STREAM_WINDOW,
                        self.live.max_clients.get(),
                        false,
                        self.stats.clone(),
                    );
                    self.set_session(Some(session.clone()));
                    self.stats.channel_up.set(true);
                    self.stats.counters.session_up();
                    let (why, streams) =
                        session.run(transport, reader, agreed.sealer, |_| {}).await;
                    self.set_session(None);
                    self.stats.channel_up.set(false);
                    if self.stop.started() {
                        return;
                    }
                    crate::roles::shutdown::log_session_end(
                        &session,
                        format_args!("channel"),
                        &why,
                        streams,
                    );
                }
                Err(ConnectError::Refused(msg)) => {
                    // Refused means an operator must act: retry slowly, log once a while.
                    ratelimit::log(
                        log::Level::Error,
                        Kind::ChannelRefused,
                        format_args!("channel to {} refused: {msg}", self.cfg.channel),
                    );
                    backoff = backoff.max(REFUSED_BACKOFF_MIN);
                    refused = true;
                }
                Err(ConnectError::Failed(msg)) => {
                    ratelimit::log(
                        log::Level::Error,
                        Kind::ChannelFailed,
                        format_args!("channel to {} failed: {msg}", self.cfg.channel),
                    );
                }
                Err(ConnectError::Unreachable(msg)) => self.unreachable(&mut unreachable, &msg),
            }
            future::or(
                async {
                    Timer::after(backoff).await;
                },
                self.stop.wait(),
            )
            .await;
            let max = if refused {
                REFUSED_BACKOFF_MAX
            } else {
                BACKOFF_MAX
            };
            backoff = (backoff * 2).min(max);
        }
    }
}

impl Host {
    /// Logs a failed attempt to reach the DPU side: INFO the first time (both sides started
    /// together, the host is often first), WARN once it has lasted [`UNREACHABLE_GRACE`],
    /// DEBUG otherwise.
    fn unreachable(&self, since: &mut Option<(Instant, bool)>, msg: &str) {
        let chan = &self.cfg.channel;
        match since {
            None => {
                log::info!("cannot reach the DPU side at {chan} yet: {msg}; retrying");
                *since = Some((Instant::now(), false));
            }
            Some((at, warned @ false)) if at.elapsed() >= UNREACHABLE_GRACE => {
                log::warn!(
                    "cannot reach the DPU side at {chan} for {} s: {msg}; still retrying",
                    at.elapsed().as_secs()
                );
                *warned = true;
            }
            Some(_) => log::debug!("still cannot reach {chan}: {msg}"),
        }
    }
}

/// The kind a reset is logged under: unknown reason codes (a peer's choice) share one.
fn reset_kind(why: ResetReason) -> u32 {
    let known = [
        ResetReason::SERVER_UNAVAILABLE,
        ResetReason::LIMIT,
        ResetReason::PROTOCOL,
        ResetReason::SOCKET_ERROR,
        ResetReason::SHUTDOWN,
    ];
    if known.contains(&why) {
        why.0
    } else {
        0
    }
}

enum ConnectError {
    /// Nobody answered, or the connection broke: worth a quiet retry.
    Unreachable(String),
    /// The DPU side refused this host in an authenticated verdict: an operator must act.
    Refused(String),
    /// The handshake failed otherwise (a mismatch, a wrong key, a clear ERROR that may be
    /// forged): an operator should look, and the ordinary back-off applies.
    Failed(String),
}

async fn connect(
    cfg: &Config,
    counters: &Counters,
    device: Option<&Rc<doca::Backend>>,
) -> Result<(Transport, FrameReader, crate::handshake::Agreed), ConnectError> {
    let attempt = async {
        let transport = match &cfg.channel {
            ChannelAddr::Tcp(host, port) => async_net::TcpStream::connect((host.as_str(), *port))
                .await
                .and_then(Transport::tcp)
                .map_err(|e| ConnectError::Unreachable(e.to_string()))?,
            ChannelAddr::Unix(path) => Transport::connect_unix(path)
                .await
                .map_err(|e| ConnectError::Unreachable(e.to_string()))?,
            ChannelAddr::Doca | ChannelAddr::Comch | ChannelAddr::CommChannel => {
                let backend = device.expect("opened at start-up with a DOCA channel");
                let link = doca::connect_host(backend, &cfg.cc_name).await;
                let link = link.map_err(|e| ConnectError::Unreachable(e.to_string()))?;
                Transport::Doca(Rc::new(link))
            }
        };
        let mut reader = FrameReader::for_handshake(transport.clone(), transport.max_msg());
        let handshake = crate::handshake::handshake(&transport, &mut reader, cfg).await;
        if let Err(e) = &handshake {
            counters.handshake_failed(e.failure());
        }
        match handshake {
            Ok(agreed) => Ok((transport, reader, agreed)),
            Err(crate::handshake::HandshakeError::Io(e)) => {
                Err(ConnectError::Unreachable(e.to_string()))
            }
            Err(e @ crate::handshake::HandshakeError::PeerRefused(_)) => {
                Err(ConnectError::Refused(e.to_string()))
            }
            Err(e) => Err(ConnectError::Failed(e.to_string())),
        }
    };
    future::or(attempt, async {
        Timer::after(HANDSHAKE_TIMEOUT).await;
        Err(ConnectError::Unreachable("timed out".into()))
    })
    .await
}
