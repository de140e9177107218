//! One channel session: the streams multiplexed on it, per-stream flow control, and the tasks
//! that read and write frames.
//!
//! Everything for a session runs on one thread (a `LocalExecutor`), so shared state is
//! `Rc<RefCell<..>>` and no wakeup ever crosses threads. Frames to send are appended to one
//! buffer that the writer task swaps out and writes whole, so frames that queue up go out in one
//! write. DATA read from a client is read straight into that buffer (see [`crate::mux::pump`]).
//!
//! The two directions of a stream end on their own: CLOSE ends the sender's direction, STOP asks
//! the sender to end it because the receiver's socket no longer takes bytes, and only RESET
//! aborts both. See `docs/PROTOCOL.md`.
//!
//! The parts, each behind its own methods: `session` (the session, its send buffer, its
//! tasks, the frames it receives), `stream` (one connection's state), `lifecycle` (where each
//! direction of a stream stands), `flow` (credit and windows), and [`pump`] (the task that
//! moves one connection's bytes).

mod flow;
mod lifecycle;
pub mod pump;
mod session;
mod stats;
mod stream;
#[cfg(all(test, unix))]
mod tests;

pub use session::{EndReason, Session};
pub use stats::Stats;
pub use stream::Stream;

/// Above this many queued bytes, clients stop reading until the writer catches up.
pub const OUT_HIGH: usize = 1024 * 1024;
