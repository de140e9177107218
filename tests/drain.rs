//! A drain that lets streams finish: SIGTERM during a 100 MB download at about 20 MB/s, with
//! `--drain-timeout 10`, and the whole file arrives byte for byte, on either side; with a
//! short drain the rest is cut and the relay says how many streams it cut.

#![cfg(unix)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;

/// Under qemu-user (the aarch64 suite) everything runs several times slower: a smaller file
/// and a longer drain keep the same shape (SIGTERM a fifth of the way in) within its time.
fn qemu() -> bool {
    std::env::var_os("DSR_TEST_RUNNER").is_some()
}

fn size() -> usize {
    if qemu() {
        20_000_000
    } else {
        100_000_000
    }
}

fn drain() -> &'static str {
    if qemu() {
        "120"
    } else {
        "10"
    }
}

/// The server application: sends [`SIZE`] bytes of a pattern at about 20 MB/s, then closes.
fn paced_source(size: usize) -> Handler {
    Arc::new(move |mut s: UnixStream| {
        let mut pattern = Pattern::new(7);
        let mut chunk = vec![0u8; CHUNK];
        let start = Instant::now();
        let mut sent = 0;
        while sent < size {
            let n = CHUNK.min(size - sent);
            pattern.fill(&mut chunk[..n]);
            if s.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n;
            // 20 MB/s: where this many bytes should be by now.
            let due = Duration::from_secs_f64(sent as f64 / 20e6);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    })
}

/// Reads the download, stopping `side` once 20 MB have arrived; returns the bytes received
/// and whether they match the pattern.
fn download(env: &mut Env, stop_dpu: bool, size: usize) -> (usize, bool) {
    let mut c = UnixStream::connect(&env.host_sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut expect = Pattern::new(7);
    let (mut buf, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut got, mut same, mut stopped) = (0usize, true, false);
    loop {
        let n = match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        expect.fill(&mut want[..n]);
        same &= buf[..n] == want[..n];
        got += n;
        if !stopped && got >= size / 5 {
            stopped = true;
            let relay = if stop_dpu { env.dpu() } else { env.host() };
            relay.signal("TERM");
        }
    }
    (got, same)
}

fn whole_download_survives_sigterm(stop_dpu: bool) {
    // systemd's notify socket, to see the STATUS line while the relay drains.
    let notify_dir = tempdir();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    // Read as systemd would, at once: a notify socket left unread fills its queue.
    let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = statuses.clone();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && Arc::strong_count(&seen) > 1 {
            if let Ok(n) = notify.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.lock().unwrap().push(line);
            }
        }
    });
    let mut env = Setup::new(Chan::Tcp)
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .server(paced_source(size()), |_| Ok(()))
        .host_args(&["--drain-timeout", drain()])
        .dpu_args(&["--drain-timeout", drain()])
        .start();
    let (got, same) = download(&mut env, stop_dpu, size());
    let relay = if stop_dpu { env.dpu() } else { env.host() };
    let status = relay.wait_exit(Duration::from_secs(30));
    let log = relay.stderr();
    assert_eq!(got, size(), "the download was cut\n{}", env.logs());
    assert!(same, "the bytes differ from what was sent");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    let draining = format!("draining 1 open stream for up to {} s", drain());
    assert!(log.contains(&draining), "{log}");
    assert!(log.contains("drained: every stream finished"), "{log}");
    let statuses = Arc::try_unwrap(statuses).map_or_else(
        |shared| shared.lock().unwrap().clone(),
        |own| own.into_inner().unwrap(),
    );
    reader.join().unwrap();
    assert!(
        statuses
            .iter()
            .any(|m| m.contains("STATUS=draining 1 stream;")),
        "no STATUS while draining: {statuses:?}"
    );
}

#[test]
fn sigterm_on_the_host_lets_a_download_finish() {
    whole_download_survives_sigterm(false);
}

#[test]
fn sigterm_on_the_dpu_lets_a_download_finish() {
    whole_download_survives_sigterm(true);
}

/// A drain shorter than the download: the relay cuts the stream when it ends, says so, and
/// exits 0; the client got less than the whole file.
#[test]
fn a_short_drain_cuts_what_is_left_and_says_so() {
    let mut env = Setup::new(Chan::Tcp)
        // The whole 100 MB even under qemu: at 20 MB/s the rest takes 4 s, four times the drain.
        .server(paced_source(100_000_000), |_| Ok(()))
        .host_args(&["--drain-timeout", "1"])
        .start();
    let (got, _) = download(&mut env, false, 100_000_000);
    let status = env.host().wait_exit(Duration::from_secs(20));
    let log = env.host().stderr();
    assert!(got < 100_000_000, "a 1 s drain let all {got} bytes through");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("drained: 1 open stream cut"), "{log}");
}
