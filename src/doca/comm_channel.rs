//! The Comm Channel thread: owns the endpoint and makes every call on it, so that
//! `ep_disconnect` and `ep_destroy`, which block until DOCA has freed a peer's resources, never
//! run on the executor thread.
//!
//! The endpoint is non-blocking: send and receive answer "try again" when a queue is full or
//! empty. The thread then arms the endpoint's event channels (a failed arm is fatal, as in
//! NVIDIA's code), tries once more, so that an event that came before arming is not lost, and
//! only then polls the event fds together with its own wake-up eventfd. The fds belong to the
//! endpoint: they are polled as they are, never registered elsewhere, changed or closed. A send
//! waiting for room waits at most 10 ms before it tries again, so a missed send event costs
//! 10 ms, not a keepalive period.

mod endpoint;
pub mod ffi;
mod setup;

use super::bridge::{drain, Shared};
use super::device::RawDev;
use super::error::{Described, Failure};
use super::ffi::{Descr, DocaError};
use crate::config::Role;
use endpoint::{Endpoint, Peer, Received};
use ffi::CcLib;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Queue depth asked for, capped by what the device allows.
const QUEUE_SIZE: u32 = 512;
/// Message size asked for, capped by the device (DOCA's samples use 4080).
const WANT_MSG: u32 = 65535;
/// Messages taken from the endpoint before the thread looks at its other work.
const RECV_BURST: usize = 64;
/// Longest wait for a send event (NVIDIA's own code waits 10 ms).
const SEND_WAIT: Duration = Duration::from_millis(10);
/// Longest wait when idle: the heartbeat and the service check need the thread to turn.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How often the DPU asks DOCA whether the service is still healthy.
const SERVICE_CHECK: Duration = Duration::from_secs(2);
/// User data of a host that was refused or dropped (a new peer reads 0).
const GONE: u64 = u64::MAX;

pub(super) fn thread_main(
    cc: &CcLib,
    descr: Descr,
    raw: RawDev,
    role: Role,
    name: &CString,
    shared: &Shared,
) {
    let ep = match Endpoint::create(cc, descr) {
        Ok(ep) => ep,
        Err(e) => {
            shared.finish(Err(e));
            return;
        }
    };
    let mut w = Worker {
        ep,
        shared,
        role,
        current: None,
        next_tag: 1,
        closing: None,
        send_waiting: false,
        woke_on_doca: false,
        spurious: 0,
        checked: Instant::now(),
    };
    shared.finish(w.setup(raw, name).and_then(|()| w.run()));
    // Destroys the endpoint, after `finish` has told the relay: it disconnects every peer and
    // may block for as long as DOCA takes.
    drop(w);
}

struct Worker<'a> {
    ep: Endpoint<'a>,
    shared: &'a Shared,
    role: Role,
    current: Option<Peer>,
    next_tag: u64,
    /// The relay let go of the connection; end it once the outbox is empty, or after a second.
    closing: Option<Instant>,
    /// The last send found the queue full.
    send_waiting: bool,
    /// The last poll returned because a DOCA fd was ready.
    woke_on_doca: bool,
    /// Polls in a row where a ready DOCA fd brought nothing: the fd stays ready without news,
    /// so it is left out of the next poll for a while instead of spinning on it.
    spurious: u32,
    checked: Instant,
}

impl Worker<'_> {
    fn describe(&self, e: DocaError) -> Described {
        self.ep.describe(e)
    }

    fn tag(&mut self, peer: &Peer) {
        self.ep.set_user_data(peer, self.next_tag);
        self.next_tag += 1;
    }

    /// Drops a peer. DOCA may block here until the peer's resources are freed; only this
    /// thread waits, and the shared lock is not held.
    fn drop_peer(&mut self, peer: Peer) {
        self.ep.set_user_data(&peer, GONE);
        self.ep.disconnect(peer);
        self.shared.beat();
    }

    /// The current connection failed or was let go. The host's thread ends (the relay
    /// reconnects with a new endpoint); the DPU disconnects the host and waits for the next.
    fn end_current(&mut self, why: Failure) -> Result<(), Failure> {
        if self.role == Role::Host {
            return Err(why);
        }
        self.closing = None;
        if let Some(peer) = self.current.take() {
            self.shared.disconnect(&mut self.shared.lock(), why);
            self.drop_peer(peer);
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), Failure> {
        loop {
            self.shared.beat();
            if self.commands()? {
                return Ok(());
            }
            self.check_service()?;
            if self.receive()? | self.send()? {
                self.productive();
                continue;
            }
            self.ep.arm_recv()?;
            if self.send_waiting {
                self.ep.arm_send()?;
            }
            if self.receive()? | self.send()? {
                self.productive();
                continue;
            }
            // A DOCA fd that is ready while nothing comes: back off from it.
            self.spurious = if self.woke_on_doca {
                (self.spurious + 1).min(6)
            } else {
                0
            };
            self.wait();
        }
    }

    fn productive(&mut self) {
        self.spurious = 0;
        self.woke_on_doca = false;
    }

    fn doca_fds(&self) -> Vec<PollFd<'_>> {
        self.ep
            .event_fds()
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect()
    }

    fn wait(&mut self) {
        let mut timeout = if self.send_waiting {
            SEND_WAIT
        } else {
            IDLE_WAIT
        };
        let mut fds = vec![PollFd::new(&self.shared.wake_thread, PollFlags::IN)];
        if self.spurious > 0 {
            // Ready without news: back off (1, 2, 4 ... 32 ms) rather than spin, then look
            // whether the fd is still ready.
            timeout = timeout.min(Duration::from_millis(1 << (self.spurious - 1)));
        } else {
            fds.extend(self.doca_fds());
        }
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
        let woke = !fds[0].revents().is_empty();
        let mut ready = fds[1..].iter().any(|f| !f.revents().is_empty());
        drop(fds);
        if self.spurious > 0 {
            let mut probe = self.doca_fds();
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            ready = rustix::event::poll(&mut probe, Some(&now)).is_ok_and(|n| n > 0);
        }
        self.woke_on_doca = ready;
        if woke {
            drain(&self.shared.wake_thread);
        }
    }

    /// Stop requests and released connections. Returns true when the thread should end.
    fn commands(&mut self) -> Result<bool, Failure> {
        let mut st = self.shared.lock();
        if st.stop_or_release(&mut self.closing) {
            return Ok(true);
        }
        let flushed = st.outbox.is_empty();
        drop(st);
        if let Some(since) = self.closing {
            if flushed || since.elapsed() > Duration::from_secs(1) {
                if self.role == Role::Host {
                    return Ok(true);
                }
                self.end_current(Failure::RelayEnded)?;
            }
        }
        Ok(false)
    }

    /// DPU: a service in an unrecoverable state ends the thread (and with it the relay, which
    /// systemd restarts). DOCA reports the service's state only when asked (there is no event
    /// for it), so the thread asks every [`SERVICE_CHECK`]; DOCA versions without the call skip
    /// the check.
    fn check_service(&mut self) -> Result<(), Failure> {
        if self.role != Role::Dpu || self.checked.elapsed() < SERVICE_CHECK {
            return Ok(());
        }
        self.checked = Instant::now();
        match self.ep.service_state() {
            Some(DocaError::CONNECTION_RESET) => Err(Failure::ServiceError(
                self.describe(DocaError::CONNECTION_RESET),
            )),
            _ => Ok(()),
        }
    }

    /// Takes what the endpoint has received. Returns whether anything came.
    fn receive(&mut self) -> Result<bool, Failure> {
        let max = self.shared.lock().max_msg as usize;
        let mut buf = vec![0u8; max];
        let mut any = false;
        for _ in 0..RECV_BURST {
            let Received { status, len, from } = self.ep.recv(&mut buf);
            match (status, from) {
                (DocaError::AGAIN, _) => break,
                (DocaError::SUCCESS, Some(from)) => self.message(from, &buf[..len.min(max)]),
                (e, None) => return Err(Failure::ReceiveFailed(self.describe(e))),
                (e, Some(from)) if self.current.as_ref() == Some(&from) => {
                    self.end_current(Failure::HostConnectionFailed(self.describe(e)))?
                }
                (e, Some(from)) => {
                    log::debug!("DOCA: a dropped host's connection: {}", self.describe(e));
                    if self.ep.user_data(&from) != GONE {
                        self.drop_peer(from);
                    }
                }
            }
            any = true;
        }
        Ok(any)
    }

    fn message(&mut self, from: Peer, data: &[u8]) {
        if self.current.as_ref() != Some(&from) {
            if self.role == Role::Host || self.ep.user_data(&from) != 0 {
                return; // leftovers of a host already dropped
            }
            if self.current.is_some() {
                crate::logging::ratelimit::log(
                    log::Level::Warn,
                    crate::logging::ratelimit::Kind::SecondHost,
                    format_args!("DOCA: refusing a second host connection; one host at a time"),
                );
                self.drop_peer(from);
                return;
            }
            self.tag(&from);
            self.current = Some(from);
            self.shared.connect(&mut self.shared.lock());
        }
        let mut st = self.shared.lock();
        let generation = st.generation;
        // The relay's reader takes all it can each time it looks, and looks again before it
        // waits, so only a queue that was empty needs a wakeup.
        let was_empty = st.inbox.is_empty();
        st.inbox.push_back((generation, data.to_vec()));
        drop(st);
        if was_empty {
            self.shared.wake_reader();
        }
    }

    /// Hands queued messages to the endpoint while its send queue has room. Returns whether
    /// any went out.
    fn send(&mut self) -> Result<bool, Failure> {
        self.send_waiting = false;
        let mut sent = false;
        // The connection stays current for the whole loop: a failure ends it and the loop.
        while let Some(peer) = &self.current {
            let Some(msg) = self.shared.lock().outbox.pop_front() else {
                break;
            };
            match self.ep.send(peer, &msg) {
                DocaError::SUCCESS => sent = true,
                DocaError::AGAIN => {
                    self.shared.lock().outbox.push_front(msg);
                    self.send_waiting = true;
                    break;
                }
                e => {
                    self.end_current(Failure::SendFailed(self.describe(e)))?;
                    break;
                }
            }
        }
        if sent {
            self.shared.wake_writer();
        }
        Ok(sent)
    }
}
