//! The DOCA Comch backend against the fake Comch libraries (tests/fake_comch): backend choice,
//! both connection-event names, start-up failures, a tiny send-task pool, a second host, a host
//! whose death the server only learns from a failed send, a server context that stops by itself,
//! a message before RUNNING, a stuck progress call and the watchdog, and the shutdown order. The
//! scenarios shared with the other channels are in tests/relay.rs (the `*_comch` tests).

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

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

/// Kills the host side behind a working session and starts a new one with the same arguments;
/// returns the new host once a 1 MiB echo through it came back exact.
fn replace_the_host(env: &mut Env) -> Relay {
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
    assert!(
        res.is_ok(),
        "the new host: {res:?}\n{}\n{}",
        new_host.stderr(),
        env.logs()
    );
    new_host
}

/// With lazy disconnect detection the server learns that a host died only when a send to it
/// fails (the keepalive provides one); a new host is then served.
#[test]
fn dead_host_noticed_on_the_next_send() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .env("FAKE_COMCH_LAZY_DISCONNECT", "1")
        .start();
    replace_the_host(&mut env);
}

/// A send to a host that died stops the server context (DOCA: "may enter stopping state if a
/// fatal error occurs"). The DPU side starts it again and serves the next host.
#[test]
fn stopped_server_context_is_restarted() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .env("FAKE_COMCH_LAZY_DISCONNECT", "1")
        .env("FAKE_COMCH_STOP_ON_DEAD_SEND", "1")
        .start();
    replace_the_host(&mut env);
    assert!(env.dpu().is_running(), "{}", env.logs());
    assert!(
        env.dpu()
            .stderr()
            .contains("server context stopped; starting it again"),
        "the context never stopped, so nothing was shown\n{}",
        env.logs()
    );
}

/// The DPU's HELLO may arrive in the same progress call as the client's RUNNING state change,
/// but before it: the host keeps it (it has one connection) and the handshake completes.
#[test]
fn message_before_running_is_kept() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .env("FAKE_COMCH_MSG_BEFORE_RUNNING", "1")
        .start();
    let s = env.client();
    let res = echo_check(&s, &pattern(12, MIB));
    assert!(res.is_ok(), "echo: {res:?}\n{}", env.logs());
}

/// At SIGTERM, with a session and its streams still open, the DPU side stops its Comch server
/// (the fake removes the service's socket file only when the context stops) before it exits.
#[test]
fn sigterm_stops_the_comch_server_before_exit() {
    let mut env = Setup::new(Chan::Comch(ComchApi::V29)).start();
    let s = env.client();
    assert!(echo_check(&s, &pattern(13, 4096)).is_ok(), "{}", env.logs());
    let service = env.dir.path().join("doca").join(SERVICE);
    assert!(
        service.exists(),
        "no service socket at {}",
        service.display()
    );
    env.dpu().signal("TERM");
    let status = env.dpu().wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", env.logs());
    assert!(
        !service.exists(),
        "the server context was never stopped\n{}",
        env.logs()
    );
}

/// The watchdog is pinged only while the Comch thread's heartbeat is fresh: a thread stuck in
/// `doca_pe_progress` stops the pings (systemd would restart the relay), and they resume once
/// it returns.
#[test]
fn watchdog_stops_while_the_comch_thread_is_stuck() {
    let probe_dir = tempdir();
    let stuck = probe_dir.path().join("stuck");
    let notify_path = probe_dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut env = Setup::new(Chan::Comch(ComchApi::V29))
        .dpu_env("FAKE_COMCH_PROGRESS_BLOCK_FILE", stuck.to_str().unwrap())
        .dpu_env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .dpu_env("WATCHDOG_USEC", "600000")
        .start();
    let pings = |secs: u64| {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut n = 0;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(len) = notify.recv(&mut buf) {
                n += String::from_utf8_lossy(&buf[..len]).contains("WATCHDOG=1") as usize;
            }
        }
        n
    };
    assert!(
        pings(2) >= 2,
        "no watchdog pings while healthy\n{}",
        env.logs()
    );
    std::fs::write(&stuck, b"").unwrap();
    pings(1); // pings sent before the thread got stuck
    let while_stuck = pings(3);
    std::fs::remove_file(&stuck).unwrap();
    assert_eq!(
        while_stuck,
        0,
        "the watchdog was pinged while the Comch thread was stuck\n{}",
        env.logs()
    );
    assert!(pings(3) >= 2, "pings never resumed\n{}", env.logs());
}
