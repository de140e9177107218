//! The DOCA Comch backend against the fake Comch libraries (tests/fake_comch): backend choice,
//! both connection-event names, start-up failures, a tiny send-task pool, a second host, and a
//! host whose death the server only learns from a failed send. The scenarios shared with the
//! other channels are in tests/relay.rs (the `*_comch` tests).

mod common;

use common::*;
use std::io::{Read, Write};

const MIB: usize = 1024 * 1024;

#[test]
fn doca_picks_comch_when_it_is_installed() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29)).start();
    for relay in [env.host().stderr(), env.dpu().stderr()] {
        assert!(
            relay.contains("DOCA Comch backend"),
            "no Comch backend line:\n{relay}"
        );
        assert!(relay.contains("2.9+ API"), "wrong API generation:\n{relay}");
        assert!(
            relay.contains("DOCA 3.0.0-fake"),
            "no DOCA version:\n{relay}"
        );
    }
}

/// DOCA 2.7/2.8 name the connection-event registration differently; the relay finds it.
#[test]
fn comch_27_connection_event_name() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V27)).start();
    let s = env.client();
    let res = echo_check(&s, &pattern(27, 2 * MIB));
    assert!(
        res.is_ok(),
        "echo over Comch 2.7 names: {res:?}\n{}",
        env.logs()
    );
    assert!(env.dpu().stderr().contains("2.7/2.8 API"), "{}", env.logs());
}

#[test]
fn forced_comm_channel_without_its_library() {
    expect_start_failure(
        |d| fake_comch_env(ComchApi::V29, d),
        &["--channel", "comm-channel", "-p", FAKE_PCI],
        &[],
        "libdoca_comm_channel.so.2",
    );
}

#[test]
fn no_doca_library_names_both_backends() {
    let empty = tempdir();
    let lib_dir = empty.path().display().to_string();
    let want = "no DOCA channel library";
    expect_start_failure(
        |d| fake_comch_env(ComchApi::V29, d),
        &["-p", FAKE_PCI],
        &[("LD_LIBRARY_PATH", &lib_dir)],
        want,
    );
    expect_start_failure(
        |d| fake_comch_env(ComchApi::V29, d),
        &["-p", FAKE_PCI],
        &[("LD_LIBRARY_PATH", &lib_dir)],
        "libdoca_comch.so.2",
    );
}

#[test]
fn start_failure_is_a_clear_error() {
    expect_start_failure(
        |d| fake_comch_env(ComchApi::V29, d),
        &["-p", FAKE_PCI, "-r", FAKE_REP_PCI],
        &[("FAKE_COMCH_FAIL_START", "1")],
        "Comch: starting",
    );
    expect_start_failure(
        |d| fake_comch_env(ComchApi::V29, d),
        &["-p", FAKE_PCI, "-r", "b9:00.0"],
        &[],
        "no DOCA representor at PCI address b9:00.0",
    );
}

/// Two send tasks and a small socket buffer: sends keep finding the pool empty, and every byte
/// still arrives in order, for one big stream and several at once.
#[test]
fn tiny_task_pool_backpressure_loses_nothing() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .env("FAKE_COMCH_MAX_SEND_TASKS", "2")
        .env("FAKE_COMCH_SNDBUF", "8192")
        .start();
    check_no_loss_under_backpressure(&mut env);
}

/// A second host connecting to the same DPU service is refused; the first keeps working.
#[test]
fn second_host_is_refused() {
    check_second_host_is_refused(Chan::Comch(ComchApi::V29));
}

/// The DPU's device allows bigger messages than the host's: frames are packed to what both
/// accept.
#[test]
fn different_message_sizes_on_the_two_sides() {
    check_different_message_sizes(Chan::Comch(ComchApi::V29), "FAKE_COMCH_MAX_MSG");
}

/// With lazy disconnect detection the server learns that a host died only when a send to it
/// fails (the keepalive provides one); a new host is then served.
#[test]
fn dead_host_noticed_on_the_next_send() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .env("FAKE_COMCH_LAZY_DISCONNECT", "1")
        .start();
    let mut s = env.client();
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    let dir = env.dir.path().to_path_buf();
    let host_sock = env.host_sock.clone();
    let args: Vec<String> = {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", env.host().pid())).unwrap();
        let mut words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        // Drop the program (and a qemu runner in front of it): keep what follows the binary.
        let at = words
            .iter()
            .position(|w| w.ends_with("doca_socket_relay"))
            .unwrap();
        words.drain(..=at);
        words
    };
    env.host().kill();
    drop(s);
    let _ = std::fs::remove_file(&host_sock);
    let envs = env.relay_env();
    let mut new_host = Relay::spawn_env(&dir, "host2", &args, &envs);
    let mut relays = [&mut new_host];
    wait_for_relay(&host_sock, echo_probe, &mut relays);
    let c = try_client(&host_sock).unwrap();
    let res = echo_check(&c, &pattern(11, MIB));
    assert!(res.is_ok(), "the new host: {res:?}\n{}", new_host.stderr());
}
