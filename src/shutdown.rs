//! The shutdown signal shared by a process's tasks: set once on SIGTERM or SIGINT, after which
//! listeners stop accepting and sessions drain (see [`crate::mux::Session::drain`]).

use event_listener::Event;
use std::cell::Cell;
use std::time::Duration;

/// How long a draining relay waits for the bytes it has read to reach the other side.
pub const GRACE: Duration = Duration::from_secs(3);

/// A one-way flag with a way to wait for it.
#[derive(Debug, Default)]
pub struct Shutdown {
    started: Cell<bool>,
    event: Event,
}

impl Shutdown {
    /// Starts the shutdown and wakes every task waiting for it.
    pub fn trigger(&self) {
        self.started.set(true);
        self.event.notify(usize::MAX);
    }

    /// Whether the shutdown has started.
    pub fn started(&self) -> bool {
        self.started.get()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        loop {
            let listener = self.event.listen();
            if self.started() {
                return;
            }
            listener.await;
        }
    }
}
