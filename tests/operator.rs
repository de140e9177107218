//! What an operator meets on the first day: two hosts against one DPU side, a clean shutdown
//! seen from the peer, repeated errors that are logged once, log lines shaped for a terminal
//! or the journal, `stopped` only after a start, and SIGUSR1 statistics.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Lines of `text` that contain every one of `needles`.
fn count_lines(text: &str, needles: &[&str]) -> usize {
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Waits up to 20 s for `cond` on `relay`'s stderr; panics with the logs if it never holds.
fn wait_stderr(env: &mut Env, who: &str, what: &str, cond: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = match who {
            "host" => env.host().stderr(),
            _ => env.dpu().stderr(),
        };
        if cond(&text) {
            return;
        }
        if Instant::now() > deadline {
            panic!("{who}: never saw {what}\n{}", env.logs());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The arguments of another host-side relay for `env`'s tcp channel, binding `sock`.
fn another_host(env: &Env, sock: &Path) -> Vec<String> {
    let key = env.dir.path().join("shared.key");
    strings(&[
        "--role",
        "host",
        "--channel",
        &env.channel,
        "-s",
        sock.to_str().unwrap(),
        "-n",
        SERVICE,
        "--psk-file",
        key.to_str().unwrap(),
        "-l",
        "debug",
    ])
}

/// Two live hosts against one DPU side: the first keeps its channel and its clients, the
/// second is refused with the reason (naming where the first is connected from), logs it once,
/// and backs off; the DPU side logs the refusal in full once and counts the retries.
#[test]
fn second_live_host_is_refused_and_backs_off() {
    let mut env = Setup::new(Chan::Tcp).start();
    let first = env.client();
    let second_sock = env.dir.path().join("second.sock");
    let args = another_host(&env, &second_sock);
    let mut second = Relay::spawn(env.dir.path(), "second", &args);
    // Attempts 1 s, 2 s, 4 s apart: three refusals within about 3 s.
    wait_stderr(&mut env, "dpu", "three refusals", |t| {
        count_lines(t, &["refused: another host is connected"]) >= 3
    });
    let dpu = env.dpu().stderr();
    assert_eq!(
        count_lines(
            &dpu,
            &[
                "[WRN]",
                "refused: another host is connected (from 127.0.0.1:"
            ]
        ),
        1,
        "the DPU should log the refusal in full once, then count it\n{}",
        env.logs()
    );
    let theirs = second.stderr();
    assert_eq!(
        count_lines(
            &theirs,
            &["[ERR]", "another host is connected (from 127.0.0.1:"]
        ),
        1,
        "the refused host should log the reason once:\n{theirs}"
    );
    assert!(
        count_lines(&theirs, &["another host is connected", "held back"]) >= 1,
        "the refused host should count its further refusals:\n{theirs}"
    );
    let host = env.host().stderr();
    assert!(
        !host.contains("channel lost") && count_lines(&host, &["channel up"]) == 1,
        "the first host's channel must stay up\n{}",
        env.logs()
    );
    assert!(!dpu.contains("replaces the old one"), "{}", env.logs());
    let res = echo_check(&first, &pattern(5, 1 << 20));
    assert!(
        res.is_ok(),
        "the first host's client: {res:?}\n{}",
        env.logs()
    );
    assert!(second.is_running(), "{}", second.report());
}

/// A host whose process stopped answering (its connection is still open, as after the host
/// machine vanished) is replaced by a new host process at once, not after the 20 s dead-peer
/// timeout: the DPU side PINGs the old session and waits 2 s for an answer.
#[test]
fn restarted_host_replaces_a_silent_old_session() {
    let mut env = Setup::new(Chan::Tcp).start();
    let pid = env.host().pid();
    send_signal(pid, "STOP");
    let started = Instant::now();
    let sock = env.dir.path().join("restarted.sock");
    let args = another_host(&env, &sock);
    let mut restarted = Relay::spawn(env.dir.path(), "restarted", &args);
    let mut relays = [&mut restarted];
    wait_for_relay(&sock, echo_probe, &mut relays);
    let took = started.elapsed();
    send_signal(pid, "CONT");
    let dpu = env.dpu().stderr();
    assert!(
        dpu.contains("replaces a session that did not answer within 2 s"),
        "{}\n{}",
        env.logs(),
        restarted.report()
    );
    // Far below the 20 s after which the old session would have been dropped anyway.
    assert!(took < Duration::from_secs(12), "took {took:?}\n{dpu}");
}

/// A host restarted after a crash (SIGKILL) gets in at once and serves on the same socket.
#[test]
fn host_killed_and_restarted_serves_at_once() {
    let mut env = Setup::new(Chan::Tcp).start();
    env.host().kill();
    let args = another_host(&env, &env.host_sock.clone());
    let mut again = Relay::spawn(env.dir.path(), "again", &args);
    let sock = env.host_sock.clone();
    let mut relays = [&mut again];
    wait_for_relay(&sock, echo_probe, &mut relays);
    assert!(
        !again.stderr().contains("refused"),
        "the restarted host was refused:\n{}",
        again.report()
    );
}

/// SIGTERM on one side reaches the other as GOAWAY: logged at INFO, not as a lost channel,
/// and its clients are closed. Both directions.
#[test]
fn clean_shutdown_is_announced_to_the_peer() {
    let mut env = Setup::new(Chan::Tcp).start();
    let mut c = env.client();
    env.dpu().signal("TERM");
    wait_stderr(&mut env, "host", "the DPU's GOAWAY", |t| {
        t.contains("[INF] channel closed: the peer is shutting down")
    });
    assert!(
        read_outcome(&mut c, Duration::from_secs(10)).is_closed(),
        "the client should be closed\n{}",
        env.logs()
    );
    let host = env.host().stderr();
    assert!(!host.contains("channel lost"), "{}", env.logs());
    assert_eq!(
        env.dpu()
            .wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert!(!env.dpu().stderr().contains("[WRN]"), "{}", env.logs());

    env.start_dpu();
    env.wait_ready(echo_probe);
    env.host().signal("TERM");
    wait_stderr(&mut env, "dpu", "the host's GOAWAY", |t| {
        t.contains("[INF] host channel from 127.0.0.1:")
            && t.contains("closed: the peer is shutting down")
    });
    assert!(!env.dpu().stderr().contains("lost:"), "{}", env.logs());
}

/// The DPU side cannot reach the server application for many clients in a row: one warning
/// in full, the rest held back (at DEBUG) and counted.
#[test]
fn unreachable_server_application_is_logged_once() {
    let mut env = Setup::new(Chan::Unix).start();
    env.server.as_mut().unwrap().shutdown(true);
    for _ in 0..5 {
        let mut c = env.client();
        let _ = std::io::Write::write_all(&mut c, b"x");
        assert!(read_outcome(&mut c, Duration::from_secs(10)).is_closed());
    }
    let dpu = env.dpu().stderr();
    let needle = "cannot connect to the server application";
    assert_eq!(count_lines(&dpu, &["[WRN]", needle]), 1, "{dpu}");
    assert_eq!(
        count_lines(&dpu, &["[DBG]", needle, "held back"]),
        4,
        "{dpu}"
    );
}

/// A host with the wrong key retries with back-off; both sides log the failure in full once.
#[test]
fn wrong_key_is_logged_once_per_side() {
    let mut env = Setup::new(Chan::Tcp).different_keys().no_wait().start();
    wait_stderr(&mut env, "dpu", "three failed handshakes", |t| {
        count_lines(t, &["authentication failed"]) >= 3
    });
    let host = env.host().stderr();
    let dpu = env.dpu().stderr();
    assert_eq!(
        count_lines(&host, &["[ERR]", "authentication failed"]),
        1,
        "{host}"
    );
    assert_eq!(
        count_lines(&dpu, &["[WRN]", "authentication failed"]),
        1,
        "{dpu}"
    );
}

// ---------------------------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------------------------

fn host_only_args(dir: &Path) -> Vec<String> {
    let sock = dir.join("h.sock");
    let chan = format!("unix:{}", dir.join("c.sock").display());
    let args = [
        "--role",
        "host",
        "--channel",
        &chan,
        "-s",
        sock.to_str().unwrap(),
    ];
    let mut args = strings(&args);
    args.extend(strings(&["-n", "svc"]));
    args
}

/// Runs a host side until its socket listens and it has logged a warning (a client refused:
/// the readiness probe waiting for a channel takes the only slot), stops it with SIGTERM,
/// returns its stderr.
fn run_host_briefly(dir: &Path, label: &str, envs: &[(String, String)]) -> String {
    let mut args = host_only_args(dir);
    args.extend(strings(&["--max-clients", "1"]));
    let mut r = Relay::spawn_env(dir, label, &args, envs);
    assert!(
        wait_listening(&dir.join("h.sock"), Duration::from_secs(10)),
        "{}",
        r.report()
    );
    let _refused = try_client(&dir.join("h.sock"));
    // The first failed channel attempt is part of what the callers check; under qemu it can
    // come after the socket is listening, so wait for it rather than race it.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let err = r.stderr();
            err.contains("cannot reach") && err.contains("client refused")
        }),
        "{}",
        r.report()
    );
    r.signal("TERM");
    assert!(
        r.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        r.report()
    );
    r.stderr()
}

/// `2026-11-27T11:15:42.123Z`: digits where digits belong.
fn is_timestamp(s: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == shape.len()
        && s.bytes().zip(shape.bytes()).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

/// By hand, every line starts with a UTC timestamp and the instance (service and role), and
/// `stopped` is the last line after SIGTERM.
#[test]
fn stderr_lines_carry_time_and_instance() {
    let dir = tempdir();
    let err = run_host_briefly(dir.path(), "plain", &[]);
    for line in err.lines() {
        let (ts, rest) = line.split_once(' ').unwrap_or(("", line));
        assert!(is_timestamp(ts), "no timestamp: {line:?}");
        assert!(rest.starts_with("[svc/host]["), "no instance: {line:?}");
    }
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.ends_with("[INF] stopped")),
        "{err}"
    );
    // The readiness probe's client was closed by the shutdown, not by a timeout.
    assert!(!err.contains("within 10 s"), "{err}");
}

/// Under systemd (JOURNAL_STREAM names stderr's file) lines carry the sd-daemon priority
/// prefix and no timestamp; a JOURNAL_STREAM naming another file changes nothing.
#[test]
fn journal_lines_carry_the_priority_prefix() {
    let dir = tempdir();
    let stderr_path: PathBuf = dir.path().join("journal.stderr");
    // Relay::spawn truncates this file, which keeps its inode.
    std::fs::write(&stderr_path, b"").unwrap();
    let meta = std::fs::metadata(&stderr_path).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let err = run_host_briefly(dir.path(), "journal", &[("JOURNAL_STREAM".into(), stream)]);
    // Expected at a start where the host comes first: INFO; a refused client: WARN.
    assert!(err.contains("<6>[svc/host][INF] cannot reach"), "{err}");
    assert!(err.contains("<4>[svc/host][WRN] client refused"), "{err}");
    assert!(err.contains("<6>[svc/host][INF] stopped"), "{err}");
    for line in err.lines() {
        let ok = ["<6>[svc/host][INF] ", "<4>[svc/host][WRN] "]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(ok, "{line:?}");
    }
    // A fatal error carries the error priority.
    let mut args = host_only_args(dir.path());
    args[5] = dir.path().join("missing/h.sock").display().to_string();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let envs = [("JOURNAL_STREAM".to_string(), stream)];
    let mut r = Relay::spawn_env(dir.path(), "journal", &args, &envs);
    assert!(r.wait_exit(Duration::from_secs(10)).is_some());
    let err = r.stderr();
    assert!(
        err.starts_with("<3>doca_socket_relay: error: binding "),
        "{err}"
    );
    let other = format!("{}:{}", meta.dev(), meta.ino() + 1);
    let err = run_host_briefly(dir.path(), "other", &[("JOURNAL_STREAM".into(), other)]);
    assert!(err.lines().all(|l| !l.starts_with('<')), "{err}");
}

/// A relay that never started prints only its error, with no `stopped` after it.
#[test]
fn a_relay_that_never_started_does_not_log_stopped() {
    let dir = tempdir();
    let mut args = host_only_args(dir.path());
    args[5] = dir.path().join("missing/dir/h.sock").display().to_string();
    let (st, _, err) = run_relay(dir.path(), &args, Duration::from_secs(10));
    // A missing directory is the operator's to fix: exit 2, so that systemd does not loop.
    assert_eq!(st.and_then(|s| s.code()), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("doca_socket_relay: error: binding "),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGUSR1
// ---------------------------------------------------------------------------------------------

/// SIGUSR1 logs one line per open stream with its bytes each way, and the totals.
#[test]
fn sigusr1_logs_every_open_stream() {
    let mut env = Setup::new(Chan::Unix).start();
    let a = env.client();
    let b = env.client();
    echo_check(&a, &pattern(1, 1000)).unwrap();
    echo_check(&b, &pattern(2, 3000)).unwrap();
    let pid = env.host().pid();
    send_signal(pid, "USR1");
    wait_stderr(&mut env, "host", "the totals", |t| {
        t.contains("2 open streams; channel up")
    });
    let host = env.host().stderr();
    assert_eq!(
        count_lines(
            &host,
            &["open ", "1000 bytes sent, 1000 bytes received, send credit"]
        ),
        1,
        "{host}"
    );
    assert_eq!(
        count_lines(&host, &["open ", "3000 bytes sent, 3000 bytes received"]),
        1,
        "{host}"
    );
    assert!(env.host().is_running());
    let pid = env.dpu().pid();
    send_signal(pid, "USR1");
    wait_stderr(&mut env, "dpu", "the DPU's totals", |t| {
        t.contains("2 open streams")
    });
}
