//! `--busy-poll`: the event loop polls its sockets for a while before it sleeps, and only then.
//! Checked by counting `epoll_pwait` calls with `strace -c` on the release build (counts, not
//! times): many per round trip while traffic flows, few once the relay is idle. Also: bytes
//! arrive intact through polling relays both ways, and a polling relay still stops on SIGTERM.
//! The count needs `strace`, like tests/syscalls.rs, and is skipped with it under qemu-user by
//! `.ci/run` (`--skip system_calls`).

#![cfg(target_os = "linux")]

mod common;

use common::cost::*;
use common::*;
use std::time::Duration;

const ROUND_TRIPS: usize = 500;
/// Each side polls for up to 2 ms after its last event.
const WINDOW: &str = "2000";

/// Both relays over a keyed tcp channel in clear, with or without `--busy-poll`. Counting runs
/// one at a time on the release build, which users run; the other test takes the build under
/// test (so that it also runs under qemu-user, where `.ci/run` skips the counting test).
fn start(busy_poll: bool, counting: bool) -> (std::sync::MutexGuard<'static, ()>, Env) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if counting {
        release_relay();
    }
    let mut args = vec!["--no-encrypt"];
    if busy_poll {
        args.extend(["--busy-poll", WINDOW]);
    }
    let env = Setup::new(Chan::Tcp)
        .server(echo_handler(), echo_probe)
        .host_args(&args)
        .dpu_args(&args)
        .start();
    (one, env)
}

/// `epoll_pwait` calls per round trip of each relay (host, DPU).
fn polls_per_round_trip(env: &mut Env) -> [f64; 2] {
    let counts = count(env, "rt", 1.0, |env| echo_round_trips(env, ROUND_TRIPS, 3));
    counts.map(|(_, table)| successful_calls(&table, "epoll_pwait") as f64 / ROUND_TRIPS as f64)
}

#[test]
fn busy_poll_system_calls_show_polling_under_traffic_and_sleep_when_idle() {
    let (one, mut env) = start(false, true);
    let plain = polls_per_round_trip(&mut env);
    drop(env);
    drop(one);
    let (_one, mut env) = start(true, true);
    let polling = polls_per_round_trip(&mut env);
    eprintln!("epoll_pwait per round trip (host, DPU): {plain:?} sleeping, {polling:?} polling");
    for (side, (p, q)) in ["host", "DPU"].iter().zip(plain.iter().zip(&polling)) {
        // Without polling a relay waits once per message each way (2.0); a polling one asks
        // again at least once before most messages (about 5.5-9 seen; strace makes each call
        // slow, so this is a low bar).
        assert!(
            *q >= p + 1.0,
            "the {side} relay did not poll: {q:.1} epoll_pwait per round trip, {p:.1} without --busy-poll"
        );
    }
    // Idle for 2 s: each side may poll for 2 ms after each keepalive tick, no more. A loop that
    // never went back to sleep makes tens of thousands of calls in that time, even under strace.
    std::thread::sleep(Duration::from_millis(300));
    let idle = count(&mut env, "idle", 1.0, |_| {
        std::thread::sleep(Duration::from_secs(2))
    });
    for ((_, table), side) in idle.iter().zip(["host", "DPU"]) {
        let polls = successful_calls(table, "epoll_pwait");
        eprintln!("idle 2 s, {side} relay: {polls} epoll_pwait\n{table}");
        assert!(
            polls < 3000,
            "the idle {side} relay kept polling: {polls} epoll_pwait in 2 s\n{table}"
        );
    }
}

#[test]
fn bytes_pass_intact_through_polling_relays_and_sigterm_stops_them() {
    let (_one, mut env) = start(true, false);
    // Echo 8 MiB in uneven writes while the reply streams back: both directions at once.
    let data = pattern(11, 8 << 20);
    let s = env.client();
    echo_check(&s, &data).unwrap_or_else(|e| panic!("echo through polling relays: {e}"));
    drop(s);
    // Straight after the traffic, while both loops are still polling.
    let (host, dpu) = env.relays();
    for relay in [host, dpu] {
        relay.signal("TERM");
        let status = relay
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} did not stop on SIGTERM while polling", relay.label()));
        assert!(
            status.success(),
            "{}: {status}\n{}",
            relay.label(),
            relay.stderr()
        );
        let log = relay.stderr();
        assert!(
            log.contains("busy polling: the event loop polls for up to 2000 µs"),
            "{log}"
        );
        assert!(log.contains("stopped"), "{log}");
    }
}
