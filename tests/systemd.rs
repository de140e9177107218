//! Running under systemd: sd_notify messages, socket activation and the syslog target, each
//! checked the way systemd or syslogd would see them, with sockets the test owns.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Collects datagrams from `sock` until `done` says so or `timeout` passes.
fn collect(
    sock: &UnixDatagram,
    timeout: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline && !done(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn unix_args<'a>(role: &'a str, chan: &'a str, sock: &'a str) -> Vec<&'a str> {
    vec![
        "--role",
        role,
        "--channel",
        chan,
        "-s",
        sock,
        "-n",
        SERVICE,
        "-l",
        "60",
    ]
}

/// The arguments of `ExecStart=` in systemd/doca-socket-relay@.service, with the instance's
/// config path replaced by `config`.
fn unit_exec_start_args(config: &Path) -> Vec<String> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/doca-socket-relay@.service"
    ))
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart= line");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/doca_socket_relay"), "{line}");
    let args: Vec<String> = words
        .map(|w| {
            w.replace(
                "/etc/doca-socket-relay/%i.json",
                &config.display().to_string(),
            )
        })
        .collect();
    assert!(
        args.iter().any(|a| a == &config.display().to_string()),
        "{line}"
    );
    args
}

/// The unit's ExecStart under a fake NOTIFY_SOCKET: READY (with a STATUS) once serving, live
/// STATUS updates, WATCHDOG pings, RELOADING then READY on SIGHUP, and STOPPING on SIGTERM, in
/// that order.
#[test]
fn notify_ready_status_watchdog_stopping() {
    let dir = tempdir();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let server = dir.path().join("srv.sock");
    let _app = Server::start(&server, echo_handler());
    let chan = format!("unix:{}", dir.path().join("chan.sock").display());
    let host_sock = dir.path().join("h.sock");
    let mut dpu = Relay::spawn(
        dir.path(),
        "dpu",
        &unix_args("dpu", &chan, server.to_str().unwrap()),
    );
    let envs = [
        (
            "NOTIFY_SOCKET".to_string(),
            notify_path.display().to_string(),
        ),
        ("WATCHDOG_USEC".to_string(), "400000".to_string()),
    ];
    // The unit's own ExecStart line, with the binary under test and this test's config file.
    let config = dir.path().join("myapp.json");
    std::fs::write(
        &config,
        format!(
            r#"{{ "doca_general_flags": {{ "log-level": 60 }},
                 "doca_program_flags": {{ "role": "host", "channel": "{chan}", "socket": "{}",
                                          "cc-name": "{SERVICE}" }} }}"#,
            host_sock.display()
        ),
    )
    .unwrap();
    let args = unit_exec_start_args(&config);
    let mut host = Relay::spawn_env(dir.path(), "host", &args, &envs);
    let mut msgs = collect(&notify, Duration::from_secs(15), |m| {
        m.iter().filter(|s| s.contains("WATCHDOG=1")).count() >= 2
            && m.iter().any(|s| s.contains("STATUS=channel up"))
    });
    // Traffic changes the figures, which must show up in a later STATUS.
    let mut probe = [&mut dpu, &mut host];
    wait_for_relay(&host_sock, echo_probe, &mut probe);
    msgs.extend(collect(&notify, Duration::from_secs(10), |m| {
        m.iter()
            .any(|s| s.contains("STATUS=") && !s.contains(" 0 bytes sent"))
    }));
    // A reload (the unit's ExecReload sends SIGHUP): RELOADING=1 with MONOTONIC_USEC, as
    // systemd requires to match it to the request, then READY=1.
    host.signal("HUP");
    let reload = collect(&notify, Duration::from_secs(10), |m| {
        m.iter()
            .skip_while(|s| !s.contains("RELOADING=1"))
            .any(|s| s.contains("READY=1"))
    });
    let reloading = reload
        .iter()
        .position(|m| m.contains("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 after SIGHUP: {reload:?}"));
    assert!(
        reload[reloading].contains("MONOTONIC_USEC="),
        "RELOADING=1 without MONOTONIC_USEC: {reload:?}"
    );
    assert!(
        reload[reloading..].iter().any(|m| m.contains("READY=1")),
        "no READY=1 after the reload: {reload:?}\n{}",
        host.stderr()
    );
    host.signal("TERM");
    let status = host.wait_exit(Duration::from_secs(10));
    msgs.extend(collect(&notify, Duration::from_secs(2), |m| {
        m.iter().any(|s| s.contains("STOPPING=1"))
    }));
    assert!(
        status.is_some_and(|s| s.success()),
        "host did not exit 0: {status:?}\n{}",
        host.stderr()
    );

    let first = |needle: &str| msgs.iter().position(|m| m.contains(needle));
    let ready = first("READY=1").unwrap_or_else(|| panic!("no READY=1 in {msgs:?}"));
    assert!(
        msgs[ready].contains("STATUS="),
        "READY should carry a STATUS: {msgs:?}"
    );
    let watchdog = first("WATCHDOG=1").unwrap_or_else(|| panic!("no WATCHDOG=1 in {msgs:?}"));
    let live = msgs
        .iter()
        .position(|m| m.contains("STATUS=channel up") && !m.contains(" 0 bytes sent"))
        .unwrap_or_else(|| panic!("no STATUS with traffic in {msgs:?}"));
    let stopping = first("STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1 in {msgs:?}"));
    assert!(ready < watchdog, "WATCHDOG before READY: {msgs:?}");
    assert!(
        ready < live && live < stopping,
        "order READY < STATUS < STOPPING broken: {msgs:?}"
    );
    assert!(
        msgs[..stopping]
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count()
            >= 2,
        "expected repeated WATCHDOG pings: {msgs:?}"
    );
}

/// Starts the relay the way systemd does for socket activation: the listening socket as fd 3,
/// `LISTEN_FDS=1` and `LISTEN_PID` set to the relay's own pid.
fn spawn_activated(dir: &Path, listener: &UnixListener, args: &[&str]) -> Relay {
    let mut cmd = Command::new("sh");
    // `exec` keeps the shell's pid, so `$$` is the relay's pid (or qemu's, which runs it).
    cmd.arg("-c").arg("LISTEN_PID=$$ exec \"$@\"").arg("sh");
    let runner = std::env::var("DSR_TEST_RUNNER").unwrap_or_default();
    cmd.args(runner.split_whitespace())
        .arg(relay_bin())
        .args(args);
    cmd.env("LISTEN_FDS", "1");
    let fd = listener.as_fd().try_clone_to_owned().unwrap();
    // SAFETY: runs in the child between fork and exec; dup2 is async-signal-safe and fd 3 is
    // only claimed, never freed, by the forgotten OwnedFd.
    unsafe {
        cmd.pre_exec(move || {
            if fd.as_raw_fd() != 3 {
                let mut three = OwnedFd::from_raw_fd(3);
                let r = rustix::io::dup2(&fd, &mut three);
                std::mem::forget(three);
                r?;
            }
            Ok(())
        });
    }
    Relay::spawn_command(dir, "activated", cmd)
}

/// With a socket passed by systemd the relay serves on it, binds nothing itself, and leaves the
/// socket file (systemd's) in place on exit.
#[test]
fn socket_activation_uses_the_passed_socket() {
    let dir = tempdir();
    let server = dir.path().join("srv.sock");
    let _app = Server::start(&server, echo_handler());
    let chan = format!("unix:{}", dir.path().join("chan.sock").display());
    let mut dpu = Relay::spawn(
        dir.path(),
        "dpu",
        &unix_args("dpu", &chan, server.to_str().unwrap()),
    );
    let passed = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&passed).unwrap();
    let unused = dir.path().join("unused.sock");
    let mut host = spawn_activated(
        dir.path(),
        &listener,
        &unix_args("host", &chan, unused.to_str().unwrap()),
    );
    drop(listener);
    let mut probe = [&mut dpu, &mut host];
    wait_for_relay(&passed, echo_probe, &mut probe);
    let s = try_client(&passed).unwrap();
    let res = echo_check(&s, &pattern(3, 1 << 20));
    assert!(
        res.is_ok(),
        "echo through the passed socket: {res:?}\n{}",
        host.stderr()
    );
    assert!(
        !unused.exists(),
        "the relay bound --socket despite socket activation"
    );
    assert!(
        host.stderr().contains("passed by systemd"),
        "no log of the passed socket:\n{}",
        host.stderr()
    );
    // Closed first: an open client would be given the drain (--drain-timeout) to finish.
    drop(s);
    host.signal("TERM");
    let status = host.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit: {status:?}\n{}",
        host.stderr()
    );
    assert!(passed.exists(), "the relay removed systemd's socket file");
}

/// The syslog target writes RFC 3164 lines with facility daemon to the given socket, and keeps
/// logging after the syslog daemon restarts (a new socket at the same path).
#[test]
fn syslog_target_survives_a_syslogd_restart() {
    let dir = tempdir();
    let log_path = dir.path().join("log.sock");
    let syslogd = UnixDatagram::bind(&log_path).unwrap();
    let chan = format!("unix:{}", dir.path().join("chan.sock").display());
    let server = dir.path().join("srv.sock");
    let _app = Server::start(&server, echo_handler());
    let host_sock = dir.path().join("h.sock");
    let target = format!("syslog:{}", log_path.display());
    let mut args = unix_args("host", &chan, host_sock.to_str().unwrap());
    args.extend(["--log-target", &target]);
    let mut host = Relay::spawn(dir.path(), "host", &args);
    let lines = collect(&syslogd, Duration::from_secs(10), |m| {
        m.iter().any(|l| l.contains("host side: clients on"))
    });
    let start = lines
        .iter()
        .find(|l| l.contains("host side: clients on"))
        .unwrap_or_else(|| panic!("no start-up line in {lines:?}\n{}", host.stderr()));
    // Facility daemon (3) and severity info (6): priority 3 * 8 + 6.
    assert!(start.starts_with("<30>"), "bad priority: {start:?}");
    assert!(
        start.contains("doca_socket_relay["),
        "no program name: {start:?}"
    );
    assert!(
        start.contains(&format!("[{SERVICE}/host] host side")),
        "no instance: {start:?}"
    );
    assert!(
        !host.stderr().contains("host side: clients on"),
        "syslog target also wrote to stderr"
    );

    // syslogd restarts: its socket is replaced by a new one at the same path.
    drop(syslogd);
    std::fs::remove_file(&log_path).unwrap();
    let syslogd = UnixDatagram::bind(&log_path).unwrap();
    let mut dpu = Relay::spawn(
        dir.path(),
        "dpu",
        &unix_args("dpu", &chan, server.to_str().unwrap()),
    );
    let lines = collect(&syslogd, Duration::from_secs(15), |m| {
        m.iter().any(|l| l.contains("channel up"))
    });
    assert!(
        lines.iter().any(|l| l.contains("channel up")),
        "no line reached the restarted syslogd: {lines:?}\n{}",
        host.stderr()
    );
    assert!(host.is_running() && dpu.is_running(), "a relay exited");
}

/// Lines logged while no syslog daemon listens are kept and delivered once one appears (a relay
/// starting before syslogd, or during its restart, loses nothing).
#[test]
fn syslog_lines_wait_for_a_late_syslogd() {
    let dir = tempdir();
    let log_path = dir.path().join("log.sock");
    let chan = format!("unix:{}", dir.path().join("chan.sock").display());
    let host_sock = dir.path().join("h.sock");
    let target = format!("syslog:{}", log_path.display());
    let mut args = unix_args("host", &chan, host_sock.to_str().unwrap());
    args.extend(["--log-target", &target]);
    let mut host = Relay::spawn(dir.path(), "host", &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(host_sock.exists(), "host never listened\n{}", host.stderr());
    // The start-up line has been logged by now, with nobody to take it.
    std::thread::sleep(Duration::from_millis(300));
    let syslogd = UnixDatagram::bind(&log_path).unwrap();
    let lines = collect(&syslogd, Duration::from_secs(10), |m| {
        m.iter().any(|l| l.contains("host side: clients on"))
            && m.iter().any(|l| l.contains("cannot reach the DPU side"))
    });
    let start = lines
        .iter()
        .position(|l| l.contains("host side: clients on"));
    let unreachable = lines
        .iter()
        .position(|l| l.contains("cannot reach the DPU"));
    assert!(
        start.is_some() && unreachable.is_some(),
        "early lines lost: {lines:?}"
    );
    assert!(start < unreachable, "lines out of order: {lines:?}");
    assert!(host.is_running(), "host exited\n{}", host.stderr());
    // The last lines, logged on the way out, are handed over before the process exits.
    host.signal("TERM");
    let status = host.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let lines = collect(&syslogd, Duration::from_secs(2), |m| {
        m.iter().any(|l| l.contains("stopped"))
    });
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM received"))
            && lines.iter().any(|l| l.contains("stopped")),
        "the lines logged at exit were lost: {lines:?}"
    );
}

/// A notify socket nobody reads (a manager that is busy) fills after a few datagrams; the
/// relay's once-a-second STATUS lines must not then block its event loop. Echoes keep
/// completing for longer than the queue lasts (10 datagrams by default, two relays sending).
#[test]
fn an_unread_notify_socket_does_not_stall_the_relay() {
    let notify_dir = tempdir();
    let notify_path = notify_dir.path().join("notify.sock");
    let _unread = UnixDatagram::bind(&notify_path).unwrap();
    let mut env = Setup::new(Chan::Unix)
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .start();
    let client = env.client();
    let until = Instant::now() + Duration::from_secs(12);
    let mut round = 0u64;
    while Instant::now() < until {
        // Changing figures every second: a new STATUS line from each relay every second.
        let res = echo_check(&client, &pattern(round, 4096));
        assert!(res.is_ok(), "round {round}: {res:?}\n{}", env.logs());
        round += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}
