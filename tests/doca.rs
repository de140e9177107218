//! The DOCA Comm Channel backend against the fake DOCA libraries (tests/fake_doca): start-up
//! failures, both API name generations, message-size boundaries, send-queue backpressure, and
//! what a real card does that the fakes now imitate (a memory-lock limit for both backends, a
//! blocking disconnect, one event fd for both directions, an event nobody consumes, a failed
//! arm, a missed send event, a service in an error state). The scenarios shared with tcp and
//! unix channels are in tests/relay.rs (the `*_doca` tests).

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

#[test]
fn unknown_pci_address_is_a_clear_error() {
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["-p", "04:00.0"],
        &[],
        "no DOCA device at PCI address 04:00.0",
    );
    expect_start_failure(
        |d| fake_doca_env(Api::V27, d),
        &["-p", FAKE_PCI, "-r", "b2:00.0"],
        &[],
        "no DOCA representor at PCI address b2:00.0",
    );
}

#[test]
fn missing_library_is_a_clear_error() {
    let empty = tempdir();
    let lib_dir = empty.path().display().to_string();
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["-p", FAKE_PCI],
        &[("LD_LIBRARY_PATH", &lib_dir)],
        "libdoca_comm_channel.so.2",
    );
}

/// The device functions renamed in DOCA 2.5 are found as well as the 2.2 ones.
#[test]
fn doca_27_names_relay_byte_exact() {
    let mut env = Setup::new(Chan::Doca(Api::V27)).start();
    let data = pattern(27, 4 * MIB);
    let s = env.client();
    let res = echo_check(&s, &data);
    assert!(
        res.is_ok(),
        "echo over DOCA 2.7 names: {res:?}\n{}",
        env.logs()
    );
    assert!(
        env.host()
            .stderr()
            .contains("device API names of DOCA 2.5+"),
        "host should log the 2.5+ API\n{}",
        env.logs()
    );
}

/// Payloads around the message size (4080 bytes, 9 of them frame header) and its multiples,
/// each echoed exactly; and the same with a device that only allows 1024-byte messages.
#[test]
fn message_size_boundaries() {
    for max_msg in ["4080", "1024"] {
        let mut env = Setup::new(Chan::Doca(Api::V22))
            .env("FAKE_DOCA_MAX_MSG", max_msg)
            .start();
        let m: usize = max_msg.parse().unwrap();
        let data_max = m - 9;
        let sizes = [
            1,
            data_max - 1,
            data_max,
            data_max + 1,
            m,
            m + 1,
            2 * data_max,
            2 * data_max + 1,
            3 * m,
            65536,
        ];
        let s = env.client();
        for (i, &n) in sizes.iter().enumerate() {
            let data = pattern(i as u64 + 7, n);
            let res = echo_check(&s, &data);
            assert!(
                res.is_ok(),
                "max message {m}: payload of {n} bytes: {res:?}\n{}",
                env.logs()
            );
        }
    }
}

/// A send queue of a few messages keeps answering "try again": everything still arrives, in
/// order, for one large stream and for several concurrent ones.
#[test]
fn send_queue_full_backpressure_loses_nothing() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_SNDBUF", "4096")
        .start();
    check_no_loss_under_backpressure(&mut env);
}

/// A second host is refused while the first keeps working.
#[test]
fn second_host_is_refused() {
    check_second_host_is_refused(Chan::Doca(Api::V22));
}

/// The DPU's device allows bigger messages than the host's: frames are packed to what both
/// accept.
#[test]
fn different_message_sizes_on_the_two_sides() {
    check_different_message_sizes(Chan::Doca(Api::V22), "FAKE_DOCA_MAX_MSG");
}

/// The binary has no link-time dependency on DOCA: one package serves machines without it.
#[test]
fn binary_does_not_link_doca() {
    let out = std::process::Command::new("readelf")
        .args(["-d", relay_bin()])
        .output()
        .expect("running readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NEEDED"),
        "readelf printed no NEEDED entries:\n{text}"
    );
    assert!(
        !text.contains("doca"),
        "the binary links a DOCA library:\n{text}"
    );
}

/// Runs the relay with `args` under a memory-lock limit of 64 KiB (soft and hard, as systemd
/// gives services by default) and returns its exit code and stderr.
fn run_under_low_memlock(envs: &[(String, String)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempdir();
    let inner = relay_command();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--memlock=65536:65536")
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let mut relay = Relay::spawn_command(dir.path(), "relay", cmd);
    let status = relay.wait_exit(Duration::from_secs(20));
    (status.and_then(|s| s.code()), relay.stderr())
}

/// A memory-lock limit too small for RDMA's pinned queues: the DPU side of either DOCA backend
/// exits 1 with an error line that names the limit and the fix, not a bare "no memory".
#[test]
fn memlock_limit_too_low_is_named_with_the_fix() {
    let dir = tempdir();
    let sock = dir.path().join("srv.sock");
    let args = [
        "--role",
        "dpu",
        "-s",
        sock.to_str().unwrap(),
        "-n",
        "svc",
        "-p",
        FAKE_PCI,
        "-r",
        FAKE_REP_PCI,
    ];
    for (backend, envs) in [
        ("Comm Channel", fake_doca_env(Api::V22, dir.path())),
        ("Comch", fake_comch_env(ComchApi::V29, dir.path())),
    ] {
        let (code, err) = run_under_low_memlock(&envs, &args);
        assert_eq!(code, Some(1), "{backend}: expected exit 1:\n{err}");
        assert!(
            err.contains("memory-lock limit (RLIMIT_MEMLOCK): 64 KiB"),
            "{backend}: the limit is not logged at start-up:\n{err}"
        );
        let line = err
            .lines()
            .find(|l| l.starts_with("doca_socket_relay: error:"))
            .unwrap_or_else(|| panic!("{backend}: no error line in:\n{err}"));
        for want in ["RLIMIT_MEMLOCK", "64 KiB", "LimitMEMLOCK=infinity"] {
            assert!(
                line.contains(want),
                "{backend}: {want:?} missing from {line:?}"
            );
        }
    }
}

/// DOCA's disconnect blocks until the peer's resources are freed (the fake: 40 s, and so does
/// destroy). When the DPU restarts, the host's old endpoint is destroyed on its own thread
/// while a new endpoint serves new streams; on the executor thread every stream would freeze.
#[test]
fn blocking_disconnect_does_not_stall_new_streams() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_DISCONNECT_MS", "40000")
        .start();
    let s = env.client();
    assert!(echo_check(&s, &pattern(1, 4096)).is_ok(), "{}", env.logs());
    drop(s);
    env.kill_dpu();
    env.start_dpu();
    env.wait_ready(echo_probe);
    let s = env.client();
    let res = echo_check(&s, &pattern(2, MIB));
    assert!(
        res.is_ok(),
        "a new stream while the old endpoint's destroy blocks: {res:?}\n{}",
        env.logs()
    );
}

/// DOCA may hand out one fd for both event channels: it is polled once, and sends that wait
/// for room still wake up.
#[test]
fn same_event_fd_for_send_and_receive() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_SAME_EVENT_FD", "1")
        .env("FAKE_DOCA_SNDBUF", "4096")
        .start();
    let s = env.client();
    let res = echo_check(&s, &pattern(3, 4 * MIB));
    assert!(
        res.is_ok(),
        "echo with one event fd: {res:?}\n{}",
        env.logs()
    );
}

/// CPU time (user + system, in clock ticks) a process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// An event fd that stays readable while nothing arrives must not make the thread spin: over
/// three idle seconds each relay uses well under a second of CPU (a spinning loop uses three).
#[test]
fn unconsumed_event_does_not_spin() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_STICKY_EVENT", "1")
        .start();
    let s = env.client();
    assert!(echo_check(&s, &pattern(5, MIB)).is_ok(), "{}", env.logs());
    let pids = [env.host().pid(), env.dpu().pid()];
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let hz = 100; // USER_HZ, 100 on Linux for every architecture the tests run on
    for (i, &p) in pids.iter().enumerate() {
        let used = cpu_ticks(p) - before[i];
        assert!(
            used < hz,
            "relay {p} used {used} ticks of CPU in 3 idle seconds\n{}",
            env.logs()
        );
    }
    assert!(echo_check(&s, &pattern(6, MIB)).is_ok(), "{}", env.logs());
}

/// DOCA reports the service in an unrecoverable state: the DPU side exits 1 with a line saying
/// so (systemd then restarts it) instead of serving nothing forever.
#[test]
fn broken_service_exits_for_a_restart() {
    let probe_dir = tempdir();
    let flag = probe_dir.path().join("broken");
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .dpu_env("FAKE_DOCA_SERVICE_ERROR_FILE", flag.to_str().unwrap())
        .start();
    std::fs::write(&flag, b"").unwrap();
    let status = env.dpu().wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "the DPU side should exit 1\n{}",
        env.logs()
    );
    let err = env.dpu().stderr();
    assert!(
        err.lines()
            .any(|l| l.starts_with("doca_socket_relay: error:") && l.contains("error state")),
        "no error line about the service state:\n{err}"
    );
}

/// A failed arm of an event channel is fatal (as in NVIDIA's own code), not ignored: the DPU
/// side exits 1 saying which call failed.
#[test]
fn failed_arm_is_fatal() {
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["--role", "dpu", "-p", FAKE_PCI, "-r", FAKE_REP_PCI],
        &[("FAKE_DOCA_ARM_FAIL", "1")],
        "arming the receive event channel",
    );
}

/// A send event that never comes (the fake's send fd never turns readable) costs a 10 ms retry,
/// not a stall until the keepalive: 4 MiB through a tiny send queue still echo back.
#[test]
fn missed_send_event_is_retried() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_NO_SEND_EVENT", "1")
        .env("FAKE_DOCA_SNDBUF", "4096")
        .start();
    let s = env.client();
    let res = echo_check(&s, &pattern(7, 4 * MIB));
    assert!(
        res.is_ok(),
        "echo without send events: {res:?}\n{}",
        env.logs()
    );
}

/// With a `libdoca_common.so.3` of another DOCA install earlier in the loader's path, the relay
/// still uses the `libdoca_common` the Comm Channel library belongs with.
#[test]
fn common_library_comes_from_the_channel_librarys_install() {
    let dir = tempdir();
    let decoy = dir.path().join("other-doca");
    std::fs::create_dir(&decoy).unwrap();
    let mut envs = fake_doca_env(Api::V22, dir.path());
    let (_, real) = envs
        .iter()
        .find(|(k, _)| k == "LD_LIBRARY_PATH")
        .unwrap()
        .clone();
    std::fs::copy(
        format!("{real}/libdoca_common.so.2"),
        decoy.join("libdoca_common.so.3"),
    )
    .unwrap();
    for (k, v) in envs.iter_mut() {
        if k == "LD_LIBRARY_PATH" {
            *v = format!("{}:{real}", decoy.display());
        }
    }
    let sock = dir.path().join("h.sock");
    let args = ["-s", sock.to_str().unwrap(), "-n", "svc", "-p", FAKE_PCI];
    let mut relay = Relay::spawn_env(dir.path(), "host", &args, &envs);
    let opened = wait_until(Duration::from_secs(20), || {
        relay.stderr().contains("DOCA device 03:00.0 opened")
    });
    let err = relay.stderr();
    relay.kill();
    assert!(opened, "the device was never opened:\n{err}");
    let line = err.lines().find(|l| l.contains("opened (")).unwrap();
    assert!(
        line.contains(&real) && !line.contains("libdoca_common.so.3"),
        "the common library of another install was used: {line}"
    );
}

/// A DOCA call refused with "not permitted" gets a hint at the capability drop-in.
#[test]
fn not_permitted_points_to_the_capability_drop_in() {
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["--role", "dpu", "-p", FAKE_PCI, "-r", FAKE_REP_PCI],
        &[("FAKE_DOCA_LISTEN_NOT_PERMITTED", "1")],
        "CAP_NET_RAW, CAP_SYS_RAWIO): packaging/README.md",
    );
}
