//! The figures every session of a process adds to: the status line, the SIGUSR1 dump and
//! `--metrics` read them.

use super::Session;
use crate::logging::text::count;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::rc::Weak;

/// Counters for the status line, shared by every session of a process.
#[derive(Debug, Default)]
pub struct Stats {
    /// Set once the relay is serving (socket bound, channel up or being retried).
    pub ready: Cell<bool>,
    /// Whether a channel session is up.
    pub channel_up: Cell<bool>,
    /// Clients (host) or server connections (DPU) now open.
    pub clients: Cell<u32>,
    /// Bytes read from local sockets and sent on the channel.
    pub bytes_out: Cell<u64>,
    /// Bytes received on the channel and written to local sockets.
    pub bytes_in: Cell<u64>,
    /// Every session of the process, for the shutdown announcement and the SIGUSR1 dump.
    pub sessions: RefCell<Vec<Weak<Session>>>,
    /// Shutting down and waiting for open streams to finish (STATUS says so).
    pub draining: Cell<bool>,
    /// Notified when a relayed connection's task has ended (`clients` went down).
    pub task_ended: Event,
    /// What `--metrics` shows beyond the figures above.
    pub counters: crate::counters::Counters,
}

impl Stats {
    /// The one-line summary (`systemctl status` shows it too): channel state, clients, bytes
    /// each way.
    pub fn status_line(&self) -> String {
        let draining = if self.draining.get() {
            format!(
                "draining {}; ",
                count(self.clients.get() as usize, "stream")
            )
        } else {
            String::new()
        };
        format!(
            "{draining}channel {}; {}; {} bytes sent, {} bytes received",
            if self.channel_up.get() { "up" } else { "down" },
            count(self.clients.get() as usize, "client"),
            self.bytes_out.get(),
            self.bytes_in.get()
        )
    }
}
