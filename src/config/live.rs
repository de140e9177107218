//! The settings a reload changes while the relay runs ([`crate::ops::reload`] applies them).

use super::{Config, Psk};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// The settings a reload changes, read by the roles where they act.
#[derive(Debug)]
pub struct Live {
    /// Most clients relayed at once (`max-clients`).
    pub max_clients: Cell<u32>,
    /// The pre-shared key (`psk-file`).
    pub psk: RefCell<Option<Psk>>,
    /// A second key accepted from the peer during a rotation (`psk-file-next`).
    pub psk_next: RefCell<Option<Psk>>,
    /// How long open streams may go on after SIGTERM (`drain-timeout`).
    pub drain_timeout: Cell<Duration>,
}

impl Live {
    /// `cfg` with the keys in force now, for a handshake.
    pub fn keyed(&self, cfg: &Config) -> Config {
        Config {
            psk: self.psk.borrow().clone(),
            psk_next: self.psk_next.borrow().clone(),
            ..cfg.clone()
        }
    }

    /// The live settings of a relay starting with `cfg`.
    pub fn new(cfg: &Config) -> Live {
        Live {
            max_clients: Cell::new(cfg.max_clients),
            psk: RefCell::new(cfg.psk.clone()),
            psk_next: RefCell::new(cfg.psk_next.clone()),
            drain_timeout: Cell::new(cfg.drain_timeout),
        }
    }
}
