//! The data path's system-call budget, counted with `strace -c -f` attached to each running
//! relay process (all its threads): at most 9 calls per 64-byte round trip and 12 per MiB
//! uploaded or downloaded, with a 10% margin for the per-second keepalive tick and connection
//! setup that fall into the measured interval. Counts do not depend on the machine's speed the
//! way times do, so they can be asserted. The budget is for the release build, which users
//! run: a debug test build builds it first (`cargo build --release`) and measures that.
//! Needs `strace` (installed by `.ci/run`); meaningless under qemu-user, which `.ci/run` skips.
//! Both relays run with `--metrics`, so the budgets hold with the endpoint on.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::cost::*;
use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;

const RT_BUDGET: f64 = 9.0 * 1.1;
const MIB_BUDGET: f64 = 12.0 * 1.1;
const ROUND_TRIPS: usize = 3000;
/// The event loop's calls per MiB over a DOCA channel: half a call per 4 KiB message. Reading
/// sockets in 4 KiB frames and writing each message's DATA on its own cost more than 258.
const DOCA_OWN_BUDGET: f64 = 128.0;
const BULK_MIB: usize = 128;

/// One measurement at a time, on the release build, with `handler` as the server application.
/// A tcp channel is keyed and left in clear (`--no-encrypt`) unless `sealed`: the round-trip
/// budget is the data path's, and the bulk budget holds both ways.
fn setup_with(
    chan: Chan,
    handler: Handler,
    probe: Probe,
    sealed: bool,
) -> (std::sync::MutexGuard<'static, ()>, Env) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    release_relay();
    // With the metrics endpoint on (it is off by default): its counters must cost the data
    // path nothing, so the budgets hold with it.
    let (host_metrics, dpu_metrics) = (
        format!("tcp:127.0.0.1:{}", free_tcp_port()),
        format!("tcp:127.0.0.1:{}", free_tcp_port()),
    );
    let mut setup = Setup::new(chan)
        .server(handler, probe)
        .host_args(&["--metrics", &host_metrics])
        .dpu_args(&["--metrics", &dpu_metrics]);
    if chan == Chan::Tcp && !sealed {
        setup = setup
            .host_args(&["--no-encrypt"])
            .dpu_args(&["--no-encrypt"]);
    }
    (one, setup.start())
}

fn setup(chan: Chan, handler: Handler, probe: Probe) -> (std::sync::MutexGuard<'static, ()>, Env) {
    setup_with(chan, handler, probe, false)
}

#[test]
fn a_64_byte_round_trip_costs_at_most_9_system_calls_per_relay() {
    let (_one, mut env) = setup(Chan::Tcp, echo_handler(), echo_probe);
    let counts = count(&mut env, "rt", ROUND_TRIPS as f64, |env| {
        echo_round_trips(env, ROUND_TRIPS, 9)
    });
    check("one 64-byte round trip", RT_BUDGET, counts);
}

fn uploaded(sealed: bool) {
    let (_one, mut env) = setup_with(Chan::Tcp, sink_handler(), sink_probe, sealed);
    check_best_of("one MiB uploaded", MIB_BUDGET, 3, || {
        count(&mut env, "up", BULK_MIB as f64, |env| upload(env, BULK_MIB))
    });
}

#[test]
fn a_mib_uploaded_costs_at_most_12_system_calls_per_relay() {
    uploaded(false);
}

/// Records as large as a channel message keep the encrypted channel inside the same budget
/// (with 64 KiB records it cost 20 to 23 calls per MiB).
#[test]
fn a_mib_uploaded_encrypted_costs_at_most_12_system_calls_per_relay() {
    uploaded(true);
}

#[test]
fn a_mib_downloaded_costs_at_most_12_system_calls_per_relay() {
    downloaded(false);
}

#[test]
fn a_mib_downloaded_encrypted_costs_at_most_12_system_calls_per_relay() {
    downloaded(true);
}

fn downloaded(sealed: bool) {
    let (_one, mut env) = setup_with(Chan::Tcp, source_handler(), source_probe, sealed);
    check_best_of("one MiB downloaded", MIB_BUDGET, 3, || {
        count(&mut env, "down", BULK_MIB as f64, |env| {
            let mut s = env.client();
            s.write_all(&((BULK_MIB * MIB) as u64).to_le_bytes())
                .unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            loop {
                match s.read(&mut buf).unwrap() {
                    0 => break,
                    n => got += n,
                }
            }
            assert_eq!(got, BULK_MIB * MIB, "bytes lost");
        })
    });
}

/// Uploads `mib` MiB through the relays in `CHUNK`-sized writes and checks the count.
fn upload(env: &mut Env, mib: usize) {
    let mut s = env.client();
    let data = pattern(3, CHUNK);
    for _ in 0..mib * MIB / CHUNK {
        s.write_all(&data).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut n = [0u8; 8];
    s.read_exact(&mut n).unwrap();
    assert_eq!(u64::from_le_bytes(n), (mib * MIB) as u64, "bytes lost");
}

/// Over the fake DOCA channels (4080-byte messages), frames are packed into full messages:
/// a MiB costs at most 10% more messages than 1 MiB / 4071 payload bytes. Also reports the
/// system calls per MiB (the fake libraries' own included) and the throughput (untraced).
fn doca_packing(chan: Chan, label: &str) {
    const DOCA_MIB: usize = 16;
    let (_one, mut env) = setup(chan, sink_handler(), sink_probe);
    let start = std::time::Instant::now();
    upload(&mut env, DOCA_MIB);
    let secs = start.elapsed().as_secs_f64();
    let counts = count(&mut env, "doca", DOCA_MIB as f64, |env| {
        upload(env, DOCA_MIB)
    });
    let ideal = MIB as f64 / (4080 - 9) as f64;
    if std::env::var_os("DSR_SHOW_TABLES").is_some() {
        eprintln!(
            "{label}: host relay\n{}\nDPU relay\n{}",
            counts[0].1, counts[1].1
        );
    }
    let messages = successful_calls(&counts[0].1, "sendmsg") as f64 / DOCA_MIB as f64;
    eprintln!(
        "{label}, upload: {:.1} MB/s; host relay: {:.1} system calls and {messages:.1} messages per MiB (ideal {ideal:.1}); DPU relay: {:.1} system calls per MiB",
        (DOCA_MIB * MIB) as f64 / secs / 1e6,
        counts[0].0,
        counts[1].0
    );
    assert!(
        messages >= ideal && messages <= ideal * 1.1,
        "{label}: {messages:.1} messages per MiB, expected {ideal:.1} to {:.1}\n{}",
        ideal * 1.1,
        counts[0].1
    );
    // The relay's own share: its event loop's thread, without the DOCA worker thread, where the
    // fake library makes a system call per message that real DOCA does not.
    let own = count_threads(&mut env, "doca-own", DOCA_MIB as f64, false, |env| {
        upload(env, DOCA_MIB)
    });
    check(
        &format!("{label}: one MiB uploaded, event loop thread"),
        DOCA_OWN_BUDGET,
        own,
    );
}

#[test]
fn doca_comm_channel_packs_full_messages_and_reports_system_calls() {
    doca_packing(Chan::Doca(fake_doca::Api::V22), "DOCA Comm Channel (fake)");
}

#[test]
fn doca_comch_packs_full_messages_and_reports_system_calls() {
    doca_packing(Chan::Comch(fake_comch::ComchApi::V29), "DOCA Comch (fake)");
}
