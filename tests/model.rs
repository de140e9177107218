//! A model test of the multiplexer, at the process level: proptest generates programs of
//! interleaved operations on a few streams (open, write, read a little, stop reading, half-close,
//! close with or without unread data) and on the channel (cut in a proxy, DPU side killed and
//! restarted), runs each against the real relays, and checks what the two ends of every stream
//! see against a reference model of `docs/PROTOCOL.md` ("Streams", "What an AF_UNIX
//! application can be told"):
//!
//! - each end reads a prefix of what the other end wrote, in order, never a byte of another
//!   stream; all of it once the other end half-closed or closed, unless the channel was lost;
//! - each end sees its end (EOF, or an error only after a close or a loss) exactly once, and
//!   only after the other end closed or half-closed or the channel was lost; a write fails only
//!   after the other end closed or the channel was lost;
//! - no relay logs a broken flow-control window or a panic, both still run, and a fresh client
//!   gets a stream afterwards.
//!
//! Each case starts its own pair of relays. `PROPTEST_CASES` overrides the number of cases and
//! `PROPTEST_RNG_SEED` the fixed seed (the same programs run every time unless it is set).

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;
#[path = "model/driver.rs"]
mod driver;
#[path = "model/endpoint.rs"]
mod endpoint;
#[path = "model/program.rs"]
mod program;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "model/rig.rs"]
mod rig;

use common::Chan;
use driver::Driver;
use program::{program, Op, Program, Side};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};

/// Cases per run natively (about 0.5 s each), and under qemu-user (`DSR_TEST_RUNNER`), where a
/// case takes about three times as long and CI's budget is tighter.
const CASES: u32 = 40;
const CASES_EMULATED: u32 = 16;
/// Operations per program at most.
const MAX_OPS: usize = 32;

/// Runs `prog` on fresh relays; the error names the broken promise, with the trace and logs.
fn run(prog: &Program) -> Result<(), String> {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let seed = CASE.fetch_add(1, Ordering::SeqCst);
    let chan = if prog.tcp { Chan::Tcp } else { Chan::Unix };
    let mut d = Driver::new(rig::Rig::start(chan), seed);
    let result = d
        .wait_ready()
        .and_then(|()| prog.ops.iter().try_for_each(|op| d.exec(op)))
        .and_then(|()| d.finish())
        .and_then(|()| d.fresh_client())
        .and_then(|()| d.rig().check_health());
    result.map_err(|e| {
        let trace = d.trace.join("\n");
        let logs = d.rig().logs();
        format!("{e}\n---- trace ----\n{trace}\n{logs}")
    })
}

#[test]
fn random_programs_keep_every_stream_intact() {
    // Config::default() reads the PROPTEST_* variables; only what they leave unset is set here.
    let mut config = Config::default();
    let unset = |var: &str| std::env::var_os(var).is_none();
    if unset("PROPTEST_CASES") {
        config.cases = match std::env::var_os("DSR_TEST_RUNNER") {
            Some(_) => CASES_EMULATED,
            None => CASES,
        };
    }
    // Shrinking runs a case per step: bounded, so that a failure is reported in minutes.
    if unset("PROPTEST_MAX_SHRINK_TIME") {
        config.max_shrink_time = 120_000;
    }
    if unset("PROPTEST_MAX_SHRINK_ITERS") {
        config.max_shrink_iters = 400;
    }
    // The same programs on every run unless asked otherwise, so that a red CI always points at
    // a program that fails again; `PROPTEST_RNG_SEED=N` explores others.
    if unset("PROPTEST_RNG_SEED") {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(0x00d0_ca5e_ed14);
    }
    // A failure is reported with its shrunk program; nothing is written to the source tree.
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&program(MAX_OPS), |prog| {
        run(&prog).map_err(TestCaseError::fail)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// A fixed program touching every operation once, so that a plain run always covers them.
#[test]
fn every_operation_once() {
    use Side::*;
    let ops = vec![
        Op::Open,
        Op::Open,
        Op::Pause { s: 0, side: Server },
        Op::Write {
            s: 0,
            side: Client,
            len: 3 << 20,
        },
        Op::Wait { ms: 100 },
        Op::Read {
            s: 0,
            side: Server,
            len: 100_000,
        },
        Op::Write {
            s: 1,
            side: Server,
            len: 70_000,
        },
        Op::ShutWrite { s: 1, side: Server },
        Op::Resume { s: 0, side: Server },
        Op::Close {
            s: 1,
            side: Client,
            unread: true,
        },
        Op::Cut,
        Op::Open,
        Op::Write {
            s: 2,
            side: Client,
            len: 5000,
        },
        Op::KillDpu,
        Op::Open,
        Op::Write {
            s: 3,
            side: Server,
            len: 1 << 20,
        },
        Op::Close {
            s: 3,
            side: Client,
            unread: false,
        },
    ];
    for tcp in [true, false] {
        let prog = Program {
            tcp,
            ops: ops.clone(),
        };
        if let Err(e) = run(&prog) {
            panic!("{prog:?}\n{e}");
        }
    }
}
