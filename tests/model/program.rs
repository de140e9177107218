//! What a model case does: a list of operations on the streams' two ends and on the channel,
//! and the proptest strategy that generates them.

use proptest::prelude::*;

/// Which end of a stream an operation acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client connected to the host side's socket.
    Client,
    /// The server application's connection, accepted from the DPU side.
    Server,
}

impl Side {
    /// Index into a stream's pair of ends.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One step of a program. `s` picks one of the streams opened so far (modulo their number),
/// so that any sublist of a program is still a program: proptest can shrink it freely.
/// Operations on an end that is already closed do nothing.
#[derive(Clone, Debug)]
pub enum Op {
    /// A new client connects and says which stream it is; waits until the server application
    /// has its connection.
    Open,
    /// Queues `len` more bytes of the end's pattern; they are written as the socket takes them.
    Write { s: usize, side: Side, len: usize },
    /// Lets a paused end read `len` more bytes.
    Read { s: usize, side: Side, len: usize },
    /// Stops reading (a slow reader: the window and the socket buffers fill up).
    Pause { s: usize, side: Side },
    /// Reads freely again.
    Resume { s: usize, side: Side },
    /// `shutdown(SHUT_WR)`: a half-close. Bytes still queued in the driver are dropped.
    ShutWrite { s: usize, side: Side },
    /// `close()` without a shutdown. With `unread`, whatever has arrived stays unread, which
    /// is the reset an AF_UNIX application can cause; without, the end first reads what is
    /// there.
    Close { s: usize, side: Side, unread: bool },
    /// The proxy cuts the channel between the relays.
    Cut,
    /// The DPU side is SIGKILLed and started again.
    KillDpu,
    /// Lets bytes flow for `ms` milliseconds.
    Wait { ms: u64 },
}

/// A whole case: the channel kind and the operations.
#[derive(Clone, Debug)]
pub struct Program {
    /// A tcp channel (else unix).
    pub tcp: bool,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Server)]
}

/// Mostly small writes, some that fill a good part of a window, a few that overrun it.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 1usize..=4096,
        3 => 4097usize..=256 * 1024,
        1 => 256 * 1024usize..=3 << 20,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..8;
    prop_oneof![
        3 => Just(Op::Open),
        8 => (s.clone(), side(), len()).prop_map(|(s, side, len)| Op::Write { s, side, len }),
        2 => (s.clone(), side(), len()).prop_map(|(s, side, len)| Op::Read { s, side, len }),
        2 => (s.clone(), side()).prop_map(|(s, side)| Op::Pause { s, side }),
        2 => (s.clone(), side()).prop_map(|(s, side)| Op::Resume { s, side }),
        3 => (s.clone(), side()).prop_map(|(s, side)| Op::ShutWrite { s, side }),
        2 => (s, side(), any::<bool>())
            .prop_map(|(s, side, unread)| Op::Close { s, side, unread }),
        1 => prop_oneof![3 => Just(Op::Cut), 1 => Just(Op::KillDpu)],
        2 => (1u64..=300).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// Programs of up to `max_ops` operations over a tcp or a unix channel.
pub fn program(max_ops: usize) -> impl Strategy<Value = Program> {
    (any::<bool>(), prop::collection::vec(op(), 1..=max_ops))
        .prop_map(|(tcp, ops)| Program { tcp, ops })
}
