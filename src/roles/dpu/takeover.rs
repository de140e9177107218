//! Which host the DPU side serves when a second one arrives.
//!
//! Every host process sends a random instance identity and a label (host name, process id) in
//! its AUTH, encrypted or covered by its proof. The DPU side serves one host session at a time;
//! when an authenticated host completes its handshake while another session is up:
//!
//! - the same instance (a host that reconnects, e.g. after it gave up on a channel the DPU
//!   side still believed up) replaces its old session at once;
//! - a different instance replaces the old session only if that session is dead: the DPU side
//!   PINGs it and waits up to [`PROBE_TIMEOUT`] for any frame. A restarted host leaves behind
//!   either a closed connection (its process ended) or a half-dead one (its machine rebooted:
//!   no answer, or a reset from the new kernel), so it gets in within that bound;
//! - a live different host keeps the channel, and the newcomer is refused with a verdict
//!   saying another host is connected and from where (authenticated, so only a host that
//!   proved the key is told). It backs off and retries.

use crate::mux::Session;
pub use crate::wire::Verdict;
use crate::wire::{Frame, Identity, INSTANCE_LEN};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// How long an old session has to prove it is alive when another host arrives.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct Current {
    session: Weak<Session>,
    instance: [u8; INSTANCE_LEN],
    label: String,
    peer: String,
    since: Instant,
}

/// The DPU side's record of the host it serves.
#[derive(Default)]
pub(crate) struct Hosts {
    current: RefCell<Option<Current>>,
}

impl Hosts {
    /// Decides about the host `who`, which connected from `peer`. May wait up to
    /// [`PROBE_TIMEOUT`] for the current session to answer a PING.
    pub(crate) async fn decide(&self, who: &Identity, peer: &str) -> Verdict {
        let (session, same, reason) = {
            let current = self.current.borrow();
            let Some(c) = current.as_ref() else {
                return Verdict::Admit;
            };
            let Some(session) = c.session.upgrade().filter(|s| !s.is_dead()) else {
                return Verdict::Admit;
            };
            let reason = format!(
                "another host is connected (from {}, {}, for {} s); this one is refused until it goes away",
                c.peer,
                c.label,
                c.since.elapsed().as_secs()
            );
            (session, c.instance == who.instance, reason)
        };
        if same {
            log::info!("the host reconnected from {peer}; its old session is replaced");
            return Verdict::Admit;
        }
        if alive(&session).await {
            crate::logging::ratelimit::log(
                log::Level::Warn,
                crate::logging::ratelimit::Kind::SecondHost,
                format_args!(
                    "host {peer} ({}) refused: {reason}",
                    crate::logging::text::lossy(who.label.as_bytes())
                ),
            );
            Verdict::Refuse(reason)
        } else {
            log::info!(
                "host {peer} replaces a session that did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            );
            Verdict::Admit
        }
    }

    /// Records `session` as the one now served.
    pub(crate) fn serve(&self, session: &Rc<Session>, who: &Identity, peer: &str) {
        *self.current.borrow_mut() = Some(Current {
            session: Rc::downgrade(session),
            instance: who.instance,
            label: crate::wire::cut(&who.label, crate::wire::MAX_LABEL)
                .escape_debug()
                .to_string(),
            peer: peer.to_string(),
            since: Instant::now(),
        });
    }
}

/// Whether `session` hears from its peer within [`PROBE_TIMEOUT`] after a PING.
async fn alive(session: &Session) -> bool {
    let asked = Instant::now();
    session.queue(Frame::Ping(0x7a6b_0001));
    let answered = async {
        loop {
            // Listening before looking: the PONG (or the session's end) wakes this.
            let progress = session.progress.listen();
            if session.is_dead() {
                return false;
            }
            if session.last_heard() >= asked {
                return true;
            }
            progress.await;
        }
    };
    futures_lite::future::or(answered, async {
        async_io::Timer::at(asked + PROBE_TIMEOUT).await;
        false
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::Stats;
    use futures_lite::future::block_on;

    fn hello(instance: u8) -> Identity {
        Identity {
            instance: [instance; INSTANCE_LEN],
            label: format!("host{instance} pid 1"),
        }
    }

    fn session() -> Rc<Session> {
        Session::new(4000, 1 << 20, 1 << 20, 8, true, Rc::new(Stats::default()))
    }

    #[test]
    fn first_host_and_dead_sessions_are_admitted() {
        let hosts = Hosts::default();
        assert_eq!(block_on(hosts.decide(&hello(1), "a")), Verdict::Admit);
        let s = session();
        hosts.serve(&s, &hello(1), "a");
        s.kill();
        assert_eq!(block_on(hosts.decide(&hello(2), "b")), Verdict::Admit);
        drop(s);
        assert_eq!(block_on(hosts.decide(&hello(2), "b")), Verdict::Admit);
    }

    /// The same process reconnecting replaces its session without a probe.
    #[test]
    fn the_same_instance_is_admitted_at_once() {
        let hosts = Hosts::default();
        let s = session();
        hosts.serve(&s, &hello(1), "a");
        let asked = Instant::now();
        assert_eq!(block_on(hosts.decide(&hello(1), "a")), Verdict::Admit);
        assert!(asked.elapsed() < PROBE_TIMEOUT);
    }

    /// Another instance while the old session stays silent: admitted once the probe times out
    /// (nothing here answers the PING).
    #[test]
    fn a_silent_session_is_replaced_after_the_probe() {
        let hosts = Hosts::default();
        let s = session();
        hosts.serve(&s, &hello(1), "a");
        assert_eq!(block_on(hosts.decide(&hello(2), "b")), Verdict::Admit);
    }
}
