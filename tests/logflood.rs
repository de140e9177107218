//! Log volume and misleading log lines, with the real binary on both sides over a unix channel
//! in a temp dir: a flood of refused clients or of clients the server application cannot take
//! leaves a bounded log on each side, every held-back line is counted in a summary that says
//! since when, and ordinary events (a start where the host comes first, a second DPU side
//! probing the channel socket, an encrypted record on a clear channel) read as what they are.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Most lines either side may write for a whole flood test (start-up lines included).
const MAX_LINES: usize = 20;
/// The refused clients of the flood test.
const FLOOD: usize = 10_000;
/// How long the flood may take; it normally takes well under a second.
const FLOOD_DEADLINE: Duration = Duration::from_secs(60);
/// The repeat window the flood test gives the relays (`DSR_LOG_REPEAT_WINDOW_MS`, a hidden
/// test knob; the default is a minute), so that a summary line is due within the test. With
/// it, a flood that took the whole deadline would still log fewer than [`MAX_LINES`].
const WINDOW_MS: u64 = 5_000;

/// A DPU side and a host side over a unix channel, with or without a server application.
struct Pair {
    dpu: Relay,
    host: Relay,
    host_sock: PathBuf,
    _server: Option<Server>,
    /// Removed last, after both sides are gone.
    _dir: tempfile::TempDir,
}

/// A side's arguments: the channel socket and `sock` in `dir`, logging at INFO.
fn args(role: &str, dir: &Path, sock: &str) -> Vec<String> {
    args_at(role, dir, sock, "info")
}

fn args_at(role: &str, dir: &Path, sock: &str, level: &str) -> Vec<String> {
    [
        "--role",
        role,
        "--channel",
        &format!("unix:{}", dir.join("chan.sock").display()),
        "-s",
        &dir.join(sock).display().to_string(),
        "-n",
        SERVICE,
        "--log-level",
        level,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts the DPU side, then the host side with `host_extra`, and waits for the channel.
fn start(server: bool, host_extra: &[&str], envs: &[(String, String)]) -> Pair {
    let dir = tempdir();
    let server = server.then(|| Server::start(&dir.path().join("srv.sock"), echo_handler()));
    let mut dpu = Relay::spawn_env(
        dir.path(),
        "dpu",
        &args("dpu", dir.path(), "srv.sock"),
        envs,
    );
    let listening = wait_until(Duration::from_secs(20), || {
        dpu.stderr().contains("waiting for the host")
    });
    assert!(listening, "{}", dpu.report());
    let mut host_args = args("host", dir.path(), "h.sock");
    host_args.extend(host_extra.iter().map(|s| s.to_string()));
    let mut host = Relay::spawn_env(dir.path(), "host", &host_args, envs);
    let up = wait_until(Duration::from_secs(20), || {
        host.stderr().contains("channel up")
    });
    assert!(up, "{}\n{}", host.report(), dpu.report());
    let host_sock = dir.path().join("h.sock");
    Pair {
        dpu,
        host,
        host_sock,
        _server: server,
        _dir: dir,
    }
}

impl Pair {
    fn logs(&mut self) -> String {
        format!("{}\n{}", self.host.report(), self.dpu.report())
    }

    /// Stops both sides with SIGTERM; they log what they still held back on the way out.
    fn stop(&mut self) {
        for r in [&mut self.host, &mut self.dpu] {
            r.signal("TERM");
            assert!(
                r.wait_exit(Duration::from_secs(15)).is_some(),
                "{}",
                r.report()
            );
        }
    }
}

/// How many events the lines containing `needle` stand for: a full line is one, plus the
/// repeats it reports (`(9,999 more like this since …)`); a summary logged after a burst
/// (`held back since …: 9,999 more like "…"`) is its count.
fn accounted(log: &str, needle: &str) -> u64 {
    let count_after = |line: &str, marker: &str| -> u64 {
        let at = line.find(marker).expect("marker") + marker.len();
        let digits: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no count in {line:?}"))
    };
    log.lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            if l.contains("held back since ") {
                count_after(l, "s ago): ")
            } else if l.contains(" more like this since ") {
                1 + count_after(l, " (")
            } else {
                1
            }
        })
        .sum()
}

/// Whether a summary says since when: `since 22:14:03Z` and how long ago.
fn dated(line: &str) -> bool {
    let Some(at) = line.find("since ") else {
        return false;
    };
    let clock = line[at + 6..].get(..9).unwrap_or("");
    let shape = clock.bytes().zip(b"dd:dd:ddZ".iter()).all(|(c, want)| {
        if *want == b'd' {
            c.is_ascii_digit()
        } else {
            c == *want
        }
    });
    shape && clock.len() == 9 && line.contains(" s ago")
}

/// 10,000 clients connect and close while one held client takes the only slot
/// (`--max-clients 1`): each side's log stays within [`MAX_LINES`], and the refusals are all
/// counted, in lines that say since when.
#[test]
fn ten_thousand_refused_clients_leave_a_short_log() {
    let window = vec![(
        "DSR_LOG_REPEAT_WINDOW_MS".to_string(),
        WINDOW_MS.to_string(),
    )];
    let mut pair = start(true, &["--max-clients", "1"], &window);
    let mut held = try_client(&pair.host_sock).expect("the held client");
    if let Err(e) = echo_probe(&mut held) {
        panic!("the held client is not relayed: {e}\n{}", pair.logs());
    }
    let started = Instant::now();
    let mut done = 0;
    let mut failed = 0;
    while done < FLOOD && started.elapsed() < FLOOD_DEADLINE {
        match UnixStream::connect(&pair.host_sock) {
            Ok(c) => {
                drop(c);
                done += 1;
            }
            Err(_) => {
                // A full backlog on a loaded machine: give the host a moment.
                failed += 1;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let took = started.elapsed();
    eprintln!("{done} refused clients in {took:?} ({failed} connects failed and were retried)");
    assert_eq!(done, FLOOD, "the flood did not finish\n{}", pair.logs());
    let needle = "client refused: 1 clients connected";
    // Every refusal is logged or counted before long.
    let all_seen = wait_until(Duration::from_secs(20), || {
        accounted(&pair.host.stderr(), needle) >= FLOOD as u64
    });
    assert!(all_seen, "refusals missing\n{}", pair.logs());
    // One more once the window has passed: its line, or a summary before it, carries the
    // count of what the window held back.
    thread::sleep(Duration::from_millis(WINDOW_MS + 200));
    drop(UnixStream::connect(&pair.host_sock).expect("one more client"));
    let total = FLOOD as u64 + 1;
    let all_seen = wait_until(Duration::from_secs(3 * WINDOW_MS / 1000 + 5), || {
        accounted(&pair.host.stderr(), needle) >= total
    });
    let host = pair.host.stderr();
    let dpu = pair.dpu.stderr();
    assert!(all_seen, "the last refusals were never counted\n{host}");
    assert_eq!(accounted(&host, needle), total, "{host}");
    let host_lines = host.lines().count();
    let dpu_lines = dpu.lines().count();
    eprintln!("log lines: host {host_lines}, DPU {dpu_lines}");
    assert!(
        host_lines <= MAX_LINES,
        "host wrote {host_lines} lines:\n{host}"
    );
    assert!(
        dpu_lines <= MAX_LINES,
        "DPU wrote {dpu_lines} lines:\n{dpu}"
    );
    let summaries: Vec<&str> = host
        .lines()
        .filter(|l| l.contains(needle) && (l.contains("more like")))
        .collect();
    assert!(!summaries.is_empty(), "no summary line\n{host}");
    for line in &summaries {
        assert!(
            dated(line),
            "a summary that does not say since when: {line}"
        );
    }
    // The held client was never disturbed.
    assert!(echo_probe(&mut held).is_ok(), "{}", pair.logs());
}

/// 200 clients while the server application is missing: the DPU side warns once, the host side
/// logs one line about it, and both count the rest in the summary they log on the way out.
#[test]
fn missing_server_application_is_logged_once_per_side() {
    const CLIENTS: u64 = 200;
    let mut pair = start(false, &[], &[]);
    for i in 0..CLIENTS {
        let mut c = try_client(&pair.host_sock).expect("a client");
        let _ = c.write_all(b"x");
        let outcome = read_outcome(&mut c, Duration::from_secs(10));
        assert!(
            outcome.is_closed(),
            "client {i} not closed\n{}",
            pair.logs()
        );
    }
    // Everything was logged before the clients were closed; the last counts come at exit.
    pair.stop();
    let host = pair.host.stderr();
    let dpu = pair.dpu.stderr();
    let host_lines = host.lines().count();
    let dpu_lines = dpu.lines().count();
    eprintln!("log lines: host {host_lines}, DPU {dpu_lines}");
    assert!(
        host_lines <= MAX_LINES,
        "host wrote {host_lines} lines:\n{host}"
    );
    assert!(
        dpu_lines <= MAX_LINES,
        "DPU wrote {dpu_lines} lines:\n{dpu}"
    );
    let on_host = "client closed: server application unavailable";
    let on_dpu = "cannot connect to the server application";
    assert_eq!(accounted(&host, on_host), CLIENTS, "{host}");
    assert_eq!(accounted(&dpu, on_dpu), CLIENTS, "{dpu}");
    for (log, needle) in [(&host, on_host), (&dpu, on_dpu)] {
        let summary = log
            .lines()
            .find(|l| l.contains(needle) && l.contains("held back since "));
        assert!(
            summary.is_some_and(dated),
            "no dated summary of {needle:?}:\n{log}"
        );
    }
}

/// Both sides launched together, the host first: its failed attempts are not a warning yet.
/// A second DPU side probing the live channel socket (its stale-socket check) is not a failed
/// handshake on the first.
#[test]
fn ordinary_events_are_not_warnings() {
    let dir = tempdir();
    let mut host = Relay::spawn(dir.path(), "host", &args("host", dir.path(), "h.sock"));
    let tried = wait_until(Duration::from_secs(20), || {
        host.stderr().contains("cannot reach the DPU side")
    });
    assert!(tried, "{}", host.report());
    let _server = Server::start(&dir.path().join("srv.sock"), echo_handler());
    let dpu_args = args_at("dpu", dir.path(), "srv.sock", "debug");
    let mut dpu = Relay::spawn(dir.path(), "dpu", &dpu_args);
    let up = wait_until(Duration::from_secs(20), || {
        host.stderr().contains("channel up")
    });
    assert!(up, "{}\n{}", host.report(), dpu.report());
    let text = host.stderr();
    assert!(
        text.contains("[INF] cannot reach the DPU side") && !text.contains("[WRN]"),
        "{text}"
    );

    let (status, _, err) = run_relay(
        dir.path(),
        &args("dpu", dir.path(), "srv2.sock"),
        Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(err.contains("another process is listening"), "{err}");
    let probed = wait_until(Duration::from_secs(20), || {
        dpu.stderr()
            .contains("[DBG] channel connection from a local socket closed before")
    });
    assert!(probed, "{}", dpu.report());
    let text = dpu.stderr();
    assert!(!text.contains("[WRN]"), "{text}");
}

/// An encrypted record where clear frames are expected is named for what it is.
#[test]
fn an_encrypted_record_on_a_clear_channel_is_named() {
    let dir = tempdir();
    let _server = Server::start(&dir.path().join("srv.sock"), echo_handler());
    let mut dpu = Relay::spawn(dir.path(), "dpu", &args("dpu", dir.path(), "srv.sock"));
    let chan = dir.path().join("chan.sock");
    let listening = wait_until(Duration::from_secs(20), || {
        dpu.stderr().contains("waiting for the host")
    });
    assert!(listening, "{}", dpu.report());
    let mut c = UnixStream::connect(&chan).expect("connecting to the channel");
    // A SEALED header (type 0x05, stream 0) and a 32-byte record.
    let mut record = vec![0x05, 0, 0, 0, 0, 0, 0, 0, 32];
    record.extend([0u8; 32]);
    let _ = c.write_all(&record);
    let named = wait_until(Duration::from_secs(20), || {
        dpu.stderr().contains("--encrypt/--no-encrypt must agree")
    });
    assert!(named, "{}", dpu.report());
    assert!(
        !dpu.stderr().contains("unknown frame type"),
        "{}",
        dpu.report()
    );
}
