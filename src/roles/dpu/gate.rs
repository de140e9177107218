//! Handshake slots on the DPU side's channel listener.
//!
//! Anyone who can reach the port can open connections, so only [`MAX_HANDSHAKES`] may be in
//! their handshake at once. A full gate does not turn newcomers away (an attacker holding every
//! slot would then lock the real host out); it evicts the connection least likely to be the
//! host: one that has sent nothing yet, then one from the address holding the most slots, then
//! the one that has waited longest. The real host speaks at once and finishes in one round
//! trip, so it is the last to be evicted.

use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// Channel connections allowed to be in their handshake at once.
pub const MAX_HANDSHAKES: usize = 16;

/// One connection in its handshake.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Where it came from, when the transport has addresses.
    pub peer: Option<IpAddr>,
    started: Instant,
    spoke: Cell<bool>,
    evicted: Cell<bool>,
    event: Event,
}

impl Slot {
    /// The connection sent its first bytes.
    pub(crate) fn spoke(&self) {
        self.spoke.set(true);
    }

    /// Resolves once the gate has evicted this connection.
    pub(crate) async fn evicted(&self) {
        loop {
            let listener = self.event.listen();
            if self.evicted.get() {
                return;
            }
            listener.await;
        }
    }
}

/// The set of connections in their handshake.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    slots: RefCell<Vec<Rc<Slot>>>,
}

impl Gate {
    /// Takes a slot for a new connection from `peer`, evicting another connection when all
    /// are taken; returns the new slot and the evicted one.
    pub(crate) fn admit(&self, peer: Option<IpAddr>) -> (Rc<Slot>, Option<Rc<Slot>>) {
        let mut slots = self.slots.borrow_mut();
        let evicted = if slots.len() >= MAX_HANDSHAKES {
            let per_peer = |p: &Option<IpAddr>| slots.iter().filter(|s| s.peer == *p).count();
            let victim = (0..slots.len())
                .min_by_key(|&i| {
                    let s = &slots[i];
                    (s.spoke.get(), usize::MAX - per_peer(&s.peer), s.started)
                })
                .expect("the gate is full, so not empty");
            let victim = slots.swap_remove(victim);
            victim.evicted.set(true);
            victim.event.notify(usize::MAX);
            Some(victim)
        } else {
            None
        };
        let slot = Rc::new(Slot {
            peer,
            started: Instant::now(),
            spoke: Cell::new(false),
            evicted: Cell::new(false),
            event: Event::new(),
        });
        slots.push(slot.clone());
        (slot, evicted)
    }

    /// Gives the slot back when its handshake ends, however it ends.
    pub(crate) fn release(&self, slot: &Rc<Slot>) {
        self.slots.borrow_mut().retain(|s| !Rc::ptr_eq(s, slot));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_full_gate_evicts_a_silent_connection_before_one_that_spoke() {
        let gate = Gate::default();
        let first = gate.admit(ip(1)).0;
        first.spoke();
        let silent: Vec<_> = (1..MAX_HANDSHAKES).map(|_| gate.admit(ip(1)).0).collect();
        let (_, evicted) = gate.admit(ip(1));
        let evicted = evicted.expect("full");
        assert!(
            Rc::ptr_eq(&evicted, &silent[0]),
            "the oldest silent one goes"
        );
        assert_eq!(gate.len(), MAX_HANDSHAKES);
        assert!(!first.evicted.get());
    }

    #[test]
    fn the_address_with_most_slots_pays_first() {
        let gate = Gate::default();
        let lone = gate.admit(ip(2)).0;
        let crowd: Vec<_> = (1..MAX_HANDSHAKES).map(|_| gate.admit(ip(3)).0).collect();
        let (_, evicted) = gate.admit(ip(4));
        assert!(Rc::ptr_eq(&evicted.unwrap(), &crowd[0]));
        assert!(!lone.evicted.get());
        gate.release(&lone);
        assert_eq!(gate.len(), MAX_HANDSHAKES - 1);
    }
}
