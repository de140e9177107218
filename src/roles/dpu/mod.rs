//! The DPU role: listens for the host's channel, authenticates it, and connects every stream the
//! host opens to the server application's socket.

pub mod gate;
mod listen;
pub mod rate;
pub mod takeover;

use listen::Listener;

use crate::config::Config;
use crate::config::Live;
use crate::counters::{HandshakeFailure, Outcome};
use crate::doca;
use crate::error::Error;
use crate::link::{FrameReader, Transport};
use crate::mux::pump::{pump, End};
use crate::mux::{Session, Stats, Stream};
use crate::roles::host::HANDSHAKE_TIMEOUT;
use crate::roles::shutdown::{self, Shutdown};
use crate::sys::unix_socket;
use crate::wire::ResetReason;
use crate::wire::STREAM_WINDOW;
use async_executor::LocalExecutor;
use async_io::Timer;
use futures_lite::future;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

/// Time allowed for connecting to the server application.
const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new channel connection may stay silent. The host sends its HELLO as soon as it
/// connects; a connection that says nothing is not a host.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(2);

struct Dpu {
    cfg: Config,
    /// What a reload changes (the stream limit of new sessions).
    live: Rc<Live>,
    /// The current host session; a newer authenticated one replaces it.
    session: RefCell<Option<Rc<Session>>>,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
    /// Connections now in their handshake.
    gate: gate::Gate,
    /// How many handshakes each address, and all together, may start.
    rate: rate::Limiter,
    /// Which host is served, to refuse a second live one.
    hosts: takeover::Hosts,
}

/// Runs the DPU role until the returned future is dropped or binding fails.
pub(crate) async fn run(
    cfg: Config,
    live: Rc<Live>,
    device: Option<Rc<doca::Backend>>,
    stats: Rc<Stats>,
    ex: Rc<LocalExecutor<'static>>,
    stop: Rc<Shutdown>,
) -> Result<(), Error> {
    let listener = Listener::bind(&cfg, device.as_deref()).await?;
    log::info!(
        "DPU side: waiting for the host on {}, service {:?}, server application at {}",
        cfg.channel,
        cfg.cc_name,
        cfg.socket.display()
    );
    crate::roles::ready(&stats);
    let dpu = Rc::new(Dpu {
        cfg,
        live,
        session: RefCell::new(None),
        stats,
        ex: ex.clone(),
        gate: gate::Gate::default(),
        rate: rate::Limiter::default(),
        hosts: takeover::Hosts::default(),
    });
    loop {
        let accept = async { Some(listener.accept().await) };
        let stopped = async {
            stop.wait().await;
            None
        };
        let Some(accepted) = future::or(accept, stopped).await else {
            break;
        };
        let accepted = accepted?;
        match accepted {
            Ok((transport, peer, ip, first)) => {
                // A slot is taken here, not when the task first runs: a burst of connections
                // is accepted in one go before any of their tasks starts.
                let (slot, evicted) = dpu.gate.admit(ip);
                if let Some(old) = evicted {
                    let from = old.peer.map_or("a peer".to_string(), |ip| ip.to_string());
                    crate::logging::ratelimit::warn_peer(format_args!(
                        "{} channel connections are already in their handshake; closing the one from {from} least likely to be the host",
                        gate::MAX_HANDSHAKES
                    ));
                }
                ex.spawn(dpu.clone().host_session(transport, peer, first, slot))
                    .detach();
            }
            Err(e) => {
                crate::logging::ratelimit::log(
                    log::Level::Warn,
                    crate::logging::ratelimit::Kind::Accept,
                    format_args!("accepting a channel connection failed: {e}"),
                );
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    let session = dpu.session.borrow().clone();
    shutdown::finish(session, dpu.live.drain_timeout.get()).await;
    Ok(())
}

impl Dpu {
    /// One channel connection, holding `slot` in the gate until its handshake ends.
    async fn host_session(
        self: Rc<Self>,
        transport: Transport,
        peer: String,
        first: Vec<u8>,
        slot: Rc<gate::Slot>,
    ) {
        let agreed = future::or(self.handshake(&transport, &peer, first, &slot), async {
            slot.evicted().await;
            None
        })
        .await;
        self.gate.release(&slot);
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
        slot: &gate::Slot,
    ) -> Option<(crate::handshake::Agreed, FrameReader)> {
        let mut reader = FrameReader::for_handshake(transport.clone(), transport.max_msg());
        reader.push(&first);
        let handshake = future::or(
            async {
                // A peer that says nothing within its time is not a host: its slot is the first
                // to go when the gate is full. It is sent nothing (nor is any peer before its
                // HELLO: see `crate::handshake::handshake`).
                if reader.is_empty() {
                    let first = future::or(async { Some(reader.fill().await) }, async {
                        Timer::after(FIRST_BYTES_TIMEOUT).await;
                        None
                    });
                    match first.await {
                        Some(Ok(())) => {}
                        // Closed before saying a word: a probe (a second DPU side checking
                        // whether this socket is live, a port scanner), not a failed host.
                        Some(Err(e))
                            if matches!(
                                e.kind(),
                                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                            ) =>
                        {
                            return Err(None)
                        }
                        Some(Err(e)) => return Err(Some(e.to_string())),
                        None => {
                            return Err(Some(format!(
                                "sent nothing within {} s",
                                FIRST_BYTES_TIMEOUT.as_secs()
                            )))
                        }
                    }
                }
                slot.spoke();
                if let Err(over) = self.rate.admit(slot.peer) {
                    // Answer nothing for a while: a stranger that waits for an answer before
                    // trying again is slowed to the limit's pace, at the cost of a gate slot
                    // (the eviction order gives it up before a new host's).
                    self.stats
                        .counters
                        .handshake_failed(HandshakeFailure::RateLimited);
                    Timer::after(rate::HOLD).await;
                    return Err(Some(over.to_string()));
                }
                crate::handshake::handshake(transport, &mut reader, &self.live.keyed(&self.cfg))
                    .await
                    .map_err(|e| {
                        self.stats.counters.handshake_failed(e.failure());
                        Some(e.to_string())
                    })
            },
            async {
                Timer::after(HANDSHAKE_TIMEOUT).await;
                self.stats.counters.handshake_failed(HandshakeFailure::Io);
                Err(Some("timed out".to_string()))
            },
        )
        .await;
        match handshake {
            Ok(mut a) => {
                let verdict = self.hosts.decide(&a.host, peer).await;
                let admitted =
                    crate::handshake::conclude(transport, &mut reader, &mut a, verdict).await;
                if admitted.is_ok() {
                    self.rate.prefer(slot.peer);
                }
                admitted.ok().map(|()| (a, reader))
            }
            Err(Some(e)) => {
                crate::logging::ratelimit::warn_peer(format_args!(
                    "handshake with host {peer} failed: {e}"
                ));
                None
            }
            Err(None) => {
                log::debug!("channel connection from {peer} closed before sending anything");
                None
            }
        }
    }

    async fn run_session(
        self: Rc<Self>,
        transport: Transport,
        peer: String,
        agreed: crate::handshake::Agreed,
        reader: FrameReader,
    ) {
        let session = Session::new(
            agreed.max_data,
            agreed.peer_window,
            STREAM_WINDOW,
            self.live.max_clients.get(),
            true,
            self.stats.clone(),
        );
        self.hosts.serve(&session, &agreed.host, &peer);
        if let Some(old) = self.session.replace(Some(session.clone())) {
            // `kill` also ends its run at once, even with its writer blocked on a full channel.
            let n = old.kill();
            log::warn!(
                "a new host session from {peer} replaces the old one; {} reset",
                crate::logging::text::count(n, "stream")
            );
        }
        self.stats.channel_up.set(true);
        self.stats.counters.session_up();
        log::info!("host connected from {peer}");
        let (why, streams) = session
            .run(transport, reader, agreed.sealer, |stream| {
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
            crate::roles::shutdown::log_session_end(
                &session,
                format_args!("host channel from {peer}"),
                &why,
                streams,
            );
        }
    }

    async fn serve(self: Rc<Self>, session: Rc<Session>, stream: Rc<Stream>) {
        let id = stream.id;
        let connected = future::or(
            async {
                loop {
                    match unix_socket::connect(&self.cfg.socket) {
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
                self.stats.counters.stream_ended(Outcome::ServerUnavailable);
                crate::logging::ratelimit::log(
                    log::Level::Warn,
                    crate::logging::ratelimit::Kind::ServerConnect(e.kind()),
                    format_args!(
                        "stream {id}: cannot connect to the server application at {}: {e}; closing the client",
                        self.cfg.socket.display()
                    ),
                );
                session.abort(&stream, ResetReason::SERVER_UNAVAILABLE);
                return;
            }
        };
        if stream.is_reset() {
            // Reset (or the session ended) while connecting: the server sees a plain close.
            return;
        }
        log::debug!("stream {id}: connected to the server application");
        self.stats.clients.set(self.stats.clients.get() + 1);
        let end = pump(&session, &stream, sock).await;
        self.stats.clients.set(self.stats.clients.get() - 1);
        self.stats.task_ended.notify(usize::MAX);
        self.stats.counters.stream_ended(match end {
            End::Closed => Outcome::Closed,
            End::SocketError => Outcome::ResetByServer,
            End::Reset(ResetReason::SOCKET_ERROR) => Outcome::ResetByClient,
            End::Reset(_) => Outcome::ResetByPeer,
        });
        match end {
            End::Closed => log::debug!("stream {id}: closed"),
            End::SocketError => log::debug!("stream {id}: the server's socket failed"),
            End::Reset(why) => log::debug!("stream {id}: reset: {why}"),
        }
    }
}
