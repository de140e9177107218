//! End-to-end behaviour of the relay: a server app on an AF_UNIX socket, the DPU-side relay,
//! the host-side relay and clients, over a tcp channel (with a PSK) and a unix channel.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Instantiates `$scenario(chan)` as one test per channel kind: tcp, unix, the fake DOCA
/// Comm Channel (DOCA 2.2 names) and the fake DOCA Comch (2.9 names).
macro_rules! per_channel {
    ($scenario:ident: $tcp:ident, $unix:ident, $doca:ident, $comch:ident) => {
        #[test]
        fn $tcp() {
            $scenario(Chan::Tcp);
        }
        #[test]
        fn $unix() {
            $scenario(Chan::Unix);
        }
        #[test]
        fn $doca() {
            $scenario(Chan::Doca(Api::V22));
        }
        #[test]
        fn $comch() {
            $scenario(Chan::Comch(ComchApi::V29));
        }
    };
}

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Byte-exact transfers
// ---------------------------------------------------------------------------------------------

/// 16 MiB through an echo server, written from a thread in odd-sized chunks and read back
/// concurrently; every byte is compared, then the client's half-close ends in EOF.
fn byte_exact_16mib(chan: Chan) {
    let mut env = Setup::new(chan).start();
    let data = pattern(0x1234_5678, 16 * MIB);
    let s = env.client();
    let started = Instant::now();
    let res = echo_check(&s, &data);
    let took = started.elapsed();
    assert!(res.is_ok(), "16 MiB echo: {res:?}\n{}", env.logs());
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = s.try_clone().unwrap();
    let rest = read_to_eof(&mut r, 0);
    assert_eq!(
        rest,
        Ok(Vec::new()),
        "expected EOF after the echo\n{}",
        env.logs()
    );
    eprintln!("16 MiB echo over {chan:?} took {took:?}");
}
per_channel!(byte_exact_16mib: byte_exact_16mib_tcp, byte_exact_16mib_unix, byte_exact_16mib_doca, byte_exact_16mib_comch);

/// The server app sends 16 MiB first (download direction); the client verifies it to EOF.
fn download_large(chan: Chan) {
    let mut env = Setup::new(chan)
        .server(download_handler(), download_probe)
        .start();
    let len = 16 * MIB;
    let mut s = env.client();
    s.write_all(&download_request(len as u64, 99)).unwrap();
    let res = read_compare(&mut s, &pattern(99, len));
    assert!(res.is_ok(), "download: {res:?}\n{}", env.logs());
    let rest = read_to_eof(&mut s, 0);
    assert_eq!(
        rest,
        Ok(Vec::new()),
        "expected EOF after the download\n{}",
        env.logs()
    );
}
per_channel!(download_large: download_large_tcp, download_large_unix, download_large_doca, download_large_comch);

/// Over tcp without authentication (`--no-auth` on both sides) data still flows.
#[test]
fn tcp_no_auth_echo() {
    let mut env = Setup::new(Chan::Tcp).no_auth().start();
    let s = env.client();
    let res = echo_check(&s, &pattern(5, 300 * 1024));
    assert!(res.is_ok(), "echo: {res:?}\n{}", env.logs());
}

/// Garbage on the DPU's channel port (not this protocol, or a valid HELLO followed by junk)
/// gets a logged warning naming the peer and a closed connection; the relay keeps serving.
#[test]
fn garbage_on_the_channel_is_refused() {
    let mut env = Setup::new(Chan::Tcp).start();
    let addr = env.channel.trim_start_matches("tcp:").to_string();
    let payloads: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x11, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        &[0xee; 64],
    ];
    for payload in payloads {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = c.write_all(payload);
        // The DPU side answers with its HELLO and maybe an ERROR, then closes.
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Handshake warnings are rate-limited (a flood must not flood the log): at least one.
    while !env
        .dpu()
        .stderr()
        .contains("handshake with host 127.0.0.1:")
    {
        assert!(
            Instant::now() < deadline,
            "handshake failures not logged\n{}",
            env.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        env.dpu()
            .stderr()
            .contains("[WRN] handshake with host 127.0.0.1:"),
        "{}",
        env.logs()
    );
    let s = env.client();
    let res = echo_check(&s, &pattern(6, 100_000));
    assert!(
        res.is_ok(),
        "the relay stopped serving: {res:?}\n{}",
        env.logs()
    );
    assert!(
        env.dpu().is_running() && env.host().is_running(),
        "{}",
        env.logs()
    );
}

/// Idle connections to the DPU's channel port (never finishing a handshake) are capped: past
/// the limit they are closed at once, and the relayed clients keep working.
#[test]
fn handshake_flood_is_capped() {
    let mut env = Setup::new(Chan::Tcp).start();
    let addr = env.channel.trim_start_matches("tcp:").to_string();
    let flood: Vec<std::net::TcpStream> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(flood.len() > 16, "could not open the flood connections");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.dpu().stderr().contains("already in their handshake") {
        assert!(
            Instant::now() < deadline,
            "no cap on handshakes\n{}",
            env.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Connections past the cap were closed by the DPU side: they read EOF (after its HELLO
    // for those that got in, nothing at all for the rest).
    let closed = flood
        .iter()
        .filter(|c| {
            let mut c = *c;
            c.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 4096];
            matches!(c.read(&mut buf), Ok(0))
        })
        .count();
    assert!(closed > 0, "no flood connection was closed at once");
    for i in 0..3u64 {
        let s = env.client();
        let res = echo_check(&s, &pattern(40 + i, 100_000));
        assert!(
            res.is_ok(),
            "client {i} during the flood: {res:?}\n{}",
            env.logs()
        );
    }
}

/// A unix channel with the same PSK on both sides authenticates and relays.
#[test]
fn unix_channel_with_psk_echo() {
    let mut env = Setup::new(Chan::Unix).same_keys().start();
    let s = env.client();
    let res = echo_check(&s, &pattern(6, 300 * 1024));
    assert!(res.is_ok(), "echo: {res:?}\n{}", env.logs());
}

// ---------------------------------------------------------------------------------------------
// Half-close
// ---------------------------------------------------------------------------------------------

/// The client sends, then shuts down its write side. The server app sees EOF (it replies
/// only after EOF) and its reply still reaches the client, which reads it to EOF.
fn half_close_client(chan: Chan) {
    let mut env = Setup::new(chan)
        .server(collect_then_reply_handler(), collect_probe)
        .start();
    for (i, len) in [0usize, 1, 1000, 300 * 1024].into_iter().enumerate() {
        let mut s = env.client();
        let data = pattern(i as u64 + 40, len);
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let want = collect_reply(&data);
        let got = read_to_eof(&mut s, want.len() + 1);
        match got {
            Ok(got) => assert!(
                got == want,
                "len {len}: reply differs ({} bytes, want {}): {:?}\n{}",
                got.len(),
                want.len(),
                String::from_utf8_lossy(&got[..got.len().min(40)]),
                env.logs()
            ),
            Err(e) => panic!("len {len}: {e}\n{}", env.logs()),
        }
    }
}
per_channel!(half_close_client: half_close_client_tcp, half_close_client_unix, half_close_client_doca, half_close_client_comch);

/// The server app greets and shuts down its write side. The client reads to EOF, then still
/// sends data and half-closes; the server app receives all of it.
fn half_close_server(chan: Chan) {
    let (tx, rx) = mpsc::channel();
    let mut env = Setup::new(chan)
        .server(greet_then_collect_handler(tx), greet_probe)
        .start();
    let mut s = env.client();
    let greeting = read_to_eof(&mut s, 1 << 20);
    assert_eq!(
        greeting.as_deref(),
        Ok(GREETING),
        "greeting then EOF expected\n{}",
        env.logs()
    );
    // After EOF from the server the client's direction is still open.
    let data = pattern(77, 200 * 1024);
    let wrote = write_chunked(&mut s, &data, 3);
    assert!(wrote.is_ok(), "write after EOF: {wrote:?}\n{}", env.logs());
    s.shutdown(Shutdown::Write).unwrap();
    // The probe connections report empty payloads; wait for ours.
    let deadline = Instant::now() + IO_TIMEOUT;
    let got = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if v.is_empty() => continue,
            Ok(v) => break v,
            Err(_) => panic!(
                "the server app never received the client's data to EOF\n{}",
                env.logs()
            ),
        }
    };
    assert!(
        got == data,
        "server app got {} bytes, want {}",
        got.len(),
        data.len()
    );
    // Both directions are closed now: the client still reads EOF.
    assert_eq!(read_to_eof(&mut s, 0), Ok(Vec::new()));
}
per_channel!(half_close_server: half_close_server_tcp, half_close_server_unix, half_close_server_doca, half_close_server_comch);

// ---------------------------------------------------------------------------------------------
// Server app missing
// ---------------------------------------------------------------------------------------------

fn expect_prompt_close(env: &mut Env, what: &str) {
    let mut s = env.client();
    let started = Instant::now();
    let _ = s.write_all(b"anyone there?");
    let out = read_outcome(&mut s, Duration::from_secs(5));
    let took = started.elapsed();
    assert!(
        out.is_closed(),
        "{what}: client should get EOF or a reset, got {out:?} after {took:?}\n{}",
        env.logs()
    );
    assert!(
        took < Duration::from_secs(5),
        "{what}: took {took:?}\n{}",
        env.logs()
    );
}

/// With no server app on the DPU, clients get EOF or a reset promptly, and the relay keeps
/// working once the server app is back.
fn server_missing(chan: Chan) {
    let mut env = Setup::new(chan).start();
    // A socket file nobody listens on (connection refused on the DPU side).
    env.server.as_mut().unwrap().shutdown(false);
    assert!(env.server_sock.exists());
    expect_prompt_close(&mut env, "stale server socket");
    // No socket file at all.
    std::fs::remove_file(&env.server_sock).unwrap();
    expect_prompt_close(&mut env, "missing server socket");
    expect_prompt_close(&mut env, "missing server socket, second client");
    assert!(env.host().is_running(), "host exited\n{}", env.logs());
    assert!(env.dpu().is_running(), "DPU exited\n{}", env.logs());
    // The server app comes back: the same channel relays again.
    env.server = Some(Server::start(&env.server_sock.clone(), echo_handler()));
    env.wait_ready(echo_probe);
    let s = env.client();
    let res = echo_check(&s, &pattern(8, 100_000));
    assert!(
        res.is_ok(),
        "echo after the server app came back: {res:?}\n{}",
        env.logs()
    );
}
per_channel!(server_missing: server_missing_tcp, server_missing_unix, server_missing_doca, server_missing_comch);

// ---------------------------------------------------------------------------------------------
// Client limit
// ---------------------------------------------------------------------------------------------

/// Connects and retries until an echo works (earlier probe connections may still hold slots
/// for a moment after they were closed).
fn working_client(env: &mut Env, what: &str) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = env.client();
        if echo_probe(&mut s).is_ok() {
            return s;
        }
        if Instant::now() > deadline {
            panic!("{what}: no working client within 10 s\n{}", env.logs());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// With `--max-clients 2`, a third client is closed at once while two work; the first two
/// keep working, and a slot frees up when one of them leaves.
fn client_limit(chan: Chan) {
    let mut env = Setup::new(chan).host_args(&["--max-clients", "2"]).start();
    let c1 = working_client(&mut env, "first client");
    let c2 = working_client(&mut env, "second client");
    let mut c3 = env.client();
    let started = Instant::now();
    let _ = c3.write_all(b"x");
    let out = read_outcome(&mut c3, Duration::from_secs(5));
    assert!(
        out.is_closed(),
        "third client over --max-clients 2 should be closed at once, got {out:?}\n{}",
        env.logs()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    for (n, c) in [(1, &c1), (2, &c2)] {
        let res = echo_check(c, &pattern(n, 50_000));
        assert!(
            res.is_ok(),
            "client {n} after the rejection: {res:?}\n{}",
            env.logs()
        );
    }
    drop(c1);
    // The freed slot can be used again.
    let c4 = working_client(&mut env, "client after one left");
    let res = echo_check(&c4, &pattern(4, 10_000));
    assert!(res.is_ok(), "{res:?}");
    let res = echo_check(&c2, &pattern(2, 10_000));
    assert!(res.is_ok(), "{res:?}");
}
per_channel!(client_limit: client_limit_tcp, client_limit_unix, client_limit_doca, client_limit_comch);

// ---------------------------------------------------------------------------------------------
// Slow client
// ---------------------------------------------------------------------------------------------

/// Most bytes the relay path may absorb from a client that never reads its echo.
const FLOOD_BOUND: u64 = 64 * MIB as u64;

/// One client floods an echo server and never reads; once it is flow-controlled, other
/// clients still get full echo round trips quickly. Afterwards the slow client reads its
/// whole echo back, byte-exact.
fn slow_client(chan: Chan) {
    let mut env = Setup::new(chan).start();
    let slow = env.client();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = slow.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (written2, stop2) = (written.clone(), stop.clone());
    let writer = thread::spawn(move || -> Result<u64, String> {
        let mut pat = Pattern::new(4242);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pos = chunk.len();
        let mut total = 0u64;
        let deadline = Instant::now() + Duration::from_secs(90);
        while !stop2.load(Ordering::SeqCst) && total < 512 * MIB as u64 {
            if Instant::now() > deadline {
                return Err("slow writer ran out of time".into());
            }
            if pos == chunk.len() {
                pat.fill(&mut chunk);
                pos = 0;
            }
            match w.write(&chunk[pos..]) {
                Ok(n) => {
                    pos += n;
                    total += n as u64;
                    written2.store(total, Ordering::SeqCst);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("slow writer failed after {total} bytes: {e}")),
            }
        }
        Ok(total)
    });

    // Wait until the slow client is stuck: no progress for a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (0u64, Instant::now());
    let stalled = loop {
        thread::sleep(Duration::from_millis(100));
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() >= Duration::from_secs(1) {
            break true;
        }
        if Instant::now() > deadline || writer.is_finished() {
            break false;
        }
    };
    let flooded = written.load(Ordering::SeqCst);
    if !stalled {
        stop.store(true, Ordering::SeqCst);
        let r = writer.join();
        panic!(
            "the slow client was never flow-controlled ({flooded} bytes accepted, writer: {r:?})\n{}",
            env.logs()
        );
    }
    eprintln!("slow client stalled after {flooded} bytes over {chan:?}");
    // Flow control bounds what the relay buffers for one stream (windows of about 1 MiB per
    // side plus socket buffers); far more than that means unbounded buffering.
    assert!(
        flooded < FLOOD_BOUND,
        "the relay took {flooded} bytes from a client that never reads\n{}",
        env.logs()
    );

    // Other clients, concurrently, get their round trips through quickly.
    let host_sock = env.host_sock.clone();
    let results: Vec<Result<Duration, String>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..4u64)
            .map(|i| {
                let host_sock = host_sock.clone();
                sc.spawn(move || -> Result<Duration, String> {
                    let started = Instant::now();
                    let s = try_client(&host_sock).map_err(|e| format!("connect: {e}"))?;
                    for (j, len) in [10usize, 1000, 64 * 1024, MIB].into_iter().enumerate() {
                        echo_check(&s, &pattern(i * 10 + j as u64, len))
                            .map_err(|e| format!("client {i}, {len} bytes: {e}"))?;
                    }
                    Ok(started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    for r in &results {
        match r {
            Ok(took) => assert!(
                *took < Duration::from_secs(5),
                "a client next to the slow one took {took:?}\n{}",
                env.logs()
            ),
            Err(e) => panic!("a client next to the slow one failed: {e}\n{}", env.logs()),
        }
    }
    // The slow client is still stuck (its bytes were not dropped to make room)...
    let flooded = written.load(Ordering::SeqCst);
    assert!(
        flooded < FLOOD_BOUND,
        "the relay took {flooded} bytes from a client that never reads\n{}",
        env.logs()
    );
    assert!(
        !writer.is_finished(),
        "slow writer ended early: {:?}",
        writer.join()
    );
    stop.store(true, Ordering::SeqCst);
    let total = match writer.join().unwrap() {
        Ok(t) => t,
        Err(e) => panic!("{e}\n{}", env.logs()),
    };
    // ...and now reads everything it was sent back, byte-exact.
    slow.shutdown(Shutdown::Write).unwrap();
    let mut r = slow.try_clone().unwrap();
    let mut pat = Pattern::new(4242);
    let mut want = vec![0u8; 256 * 1024];
    let mut left = total as usize;
    while left > 0 {
        let n = left.min(want.len());
        pat.fill(&mut want[..n]);
        let res = read_compare(&mut r, &want[..n]);
        assert!(
            res.is_ok(),
            "slow client's echo: {res:?} ({left} of {total} bytes left)\n{}",
            env.logs()
        );
        left -= n;
    }
    assert_eq!(read_to_eof(&mut r, 0), Ok(Vec::new()));
}
per_channel!(slow_client: slow_client_tcp, slow_client_unix, slow_client_doca, slow_client_comch);

// ---------------------------------------------------------------------------------------------
// DPU restart
// ---------------------------------------------------------------------------------------------

/// The DPU side is SIGKILLed: clients see EOF or a reset within a few seconds, the host keeps
/// running, and after the DPU restarts on the same channel address new clients work.
fn dpu_restart(chan: Chan) {
    let mut env = Setup::new(chan).start();
    let mut clients: Vec<UnixStream> = (0..3).map(|_| env.client()).collect();
    for (i, c) in clients.iter().enumerate() {
        let res = echo_check(c, &pattern(i as u64, 20_000));
        assert!(
            res.is_ok(),
            "client {i} before the kill: {res:?}\n{}",
            env.logs()
        );
    }
    env.kill_dpu();
    let killed = Instant::now();
    for (i, c) in clients.iter_mut().enumerate() {
        let left = Duration::from_secs(5).saturating_sub(killed.elapsed());
        let out = read_outcome(c, left.max(Duration::from_millis(1)));
        assert!(
            out.is_closed(),
            "client {i} should see EOF or a reset after the DPU died, got {out:?} after {:?}\n{}",
            killed.elapsed(),
            env.logs()
        );
    }
    thread::sleep(Duration::from_millis(300));
    assert!(
        env.host().is_running(),
        "host exited when the DPU died\n{}",
        env.logs()
    );
    assert!(env.host_sock.exists(), "host socket vanished");
    env.start_dpu();
    env.wait_ready(echo_probe);
    for i in 0..3u64 {
        let s = env.client();
        let res = echo_check(&s, &pattern(100 + i, 200_000));
        assert!(
            res.is_ok(),
            "client {i} after the restart: {res:?}\n{}",
            env.logs()
        );
    }
    assert!(env.host().is_running(), "host exited\n{}", env.logs());
}
per_channel!(dpu_restart: dpu_restart_tcp, dpu_restart_unix, dpu_restart_doca, dpu_restart_comch);

/// The DPU side dies while a client is streaming: the client is closed within seconds, the
/// host keeps running and reconnects, and new clients work once the DPU side is back.
fn dpu_killed_mid_transfer(chan: Chan) {
    let mut env = Setup::new(chan).start();
    let mut s = env.client();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let chunk = vec![0x5a; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if w.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    // Let data flow, then kill the DPU side in the middle of it.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 4 * MIB {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => panic!("stream ended before the kill\n{}", env.logs()),
            Ok(n) => got += n,
        }
    }
    env.kill_dpu();
    let killed = Instant::now();
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break killed.elapsed(),
            Ok(_) if killed.elapsed() > Duration::from_secs(10) => {
                panic!("client still receiving 10 s after the kill\n{}", env.logs())
            }
            Ok(_) => {}
        }
    };
    assert!(
        closed < Duration::from_secs(5),
        "client closed only after {closed:?}\n{}",
        env.logs()
    );
    let _ = s.shutdown(Shutdown::Both);
    assert!(writer.join().unwrap(), "writer never saw the stream end");
    assert!(env.host().is_running(), "host exited\n{}", env.logs());
    env.start_dpu();
    env.wait_ready(echo_probe);
    let s = env.client();
    let res = echo_check(&s, &pattern(5, MIB));
    assert!(res.is_ok(), "after the restart: {res:?}\n{}", env.logs());
}
per_channel!(
    dpu_killed_mid_transfer: dpu_killed_mid_transfer_tcp,
    dpu_killed_mid_transfer_unix,
    dpu_killed_mid_transfer_doca,
    dpu_killed_mid_transfer_comch
);

// ---------------------------------------------------------------------------------------------
// Many clients
// ---------------------------------------------------------------------------------------------

/// 100 clients connect at once and each does several echo round trips of different sizes.
fn many_clients(chan: Chan) {
    const N: usize = 100;
    let mut env = Setup::new(chan).start();
    let host_sock = env.host_sock.clone();
    let barrier = Arc::new(Barrier::new(N));
    let results: Vec<Result<(), String>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let host_sock = host_sock.clone();
                let barrier = barrier.clone();
                sc.spawn(move || -> Result<(), String> {
                    let s = try_client(&host_sock);
                    // Everyone is connected before anyone sends.
                    barrier.wait();
                    let s = s.map_err(|e| format!("client {i}: connect: {e}"))?;
                    let sizes = [1usize, 100 + i, 4096, 65536 + i * 7, 150_000 + i * 13];
                    for (j, len) in sizes.into_iter().enumerate() {
                        let data = pattern((i * 100 + j) as u64, len);
                        echo_check(&s, &data)
                            .map_err(|e| format!("client {i}, round {j} ({len} bytes): {e}"))?;
                    }
                    s.shutdown(Shutdown::Write)
                        .map_err(|e| format!("client {i}: shutdown: {e}"))?;
                    let mut r = s;
                    match read_to_eof(&mut r, 0) {
                        Ok(_) => Ok(()),
                        Err(e) => Err(format!("client {i}: waiting for EOF: {e}")),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {N} clients failed, first ones: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        env.logs()
    );
}
per_channel!(many_clients: many_clients_tcp, many_clients_unix, many_clients_doca, many_clients_comch);

// ---------------------------------------------------------------------------------------------
// Clients before the channel
// ---------------------------------------------------------------------------------------------

/// A client that connects while the DPU side is not running yet waits for the channel; its
/// early bytes are delivered once the DPU starts.
fn clients_wait_for_channel(chan: Chan) {
    let mut env = Setup::new(chan).no_dpu().start();
    let mut s = env.client();
    s.write_all(b"early bird").unwrap();
    thread::sleep(Duration::from_millis(1000));
    env.start_dpu();
    let res = read_compare(&mut s, b"early bird");
    assert!(res.is_ok(), "early client's echo: {res:?}\n{}", env.logs());
    let res = echo_check(&s, &pattern(31, 500_000));
    assert!(
        res.is_ok(),
        "early client's bigger echo: {res:?}\n{}",
        env.logs()
    );
}
per_channel!(clients_wait_for_channel: clients_wait_for_channel_tcp, clients_wait_for_channel_unix, clients_wait_for_channel_doca, clients_wait_for_channel_comch);

// ---------------------------------------------------------------------------------------------
// Mismatched sides
// ---------------------------------------------------------------------------------------------

/// Waits until the host's stderr mentions `needle` (case-insensitive), and the DPU's too
/// unless `dpu_too` is false.
fn wait_for_logs(env: &mut Env, needle: &str, dpu_too: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let host = env.host().stderr().to_lowercase();
        let dpu = env.dpu().stderr().to_lowercase();
        if host.contains(needle) && (dpu.contains(needle) || !dpu_too) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "both stderrs should mention {needle:?} (host: {}, dpu: {})\n{}",
                host.contains(needle),
                dpu.contains(needle),
                env.logs()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Clients must not reach the server app, and both processes keep running.
fn expect_not_relayed(env: &mut Env, needle: &str, dpu_too: bool) {
    let mut clients: Vec<UnixStream> = Vec::new();
    for _ in 0..2 {
        let mut c = env.client();
        let _ = c.write_all(b"let me in");
        clients.push(c);
    }
    wait_for_logs(env, needle, dpu_too);
    for (i, c) in clients.iter_mut().enumerate() {
        let out = read_outcome(c, Duration::from_secs(2));
        assert!(
            !matches!(out, ReadOutcome::Data(_)),
            "client {i} got data through a mismatched channel: {out:?}\n{}",
            env.logs()
        );
    }
    assert_eq!(
        env.server.as_ref().unwrap().accepted(),
        0,
        "the server app was reached\n{}",
        env.logs()
    );
    assert!(env.host().is_running(), "host exited\n{}", env.logs());
    assert!(env.dpu().is_running(), "DPU exited\n{}", env.logs());
}

fn wrong_service_name(chan: Chan) {
    let mut env = Setup::new(chan)
        .names("svc_one", "svc_two")
        .no_wait()
        .start();
    if matches!(chan, Chan::Doca(_) | Chan::Comch(_)) {
        // Over DOCA the service name is the rendezvous itself: the host finds no such
        // service, and the DPU side never hears from it.
        expect_not_relayed(&mut env, "no doca service \"svc_one\"", false);
    } else {
        expect_not_relayed(&mut env, "service name", true);
    }
}
per_channel!(wrong_service_name: wrong_service_name_tcp, wrong_service_name_unix, wrong_service_name_doca, wrong_service_name_comch);

fn wrong_key(chan: Chan) {
    let mut env = Setup::new(chan).different_keys().no_wait().start();
    expect_not_relayed(&mut env, "authentication", true);
}
per_channel!(wrong_key: wrong_key_tcp, wrong_key_unix, wrong_key_doca, wrong_key_comch);

/// A DPU side that requires a key refuses a host side that has none.
#[test]
fn host_without_key_is_refused() {
    let mut env = Setup::new(Chan::Unix).dpu_key_only().no_wait().start();
    expect_not_relayed(&mut env, "authentication", true);
}

// ---------------------------------------------------------------------------------------------
// The host socket and signals
// ---------------------------------------------------------------------------------------------

/// A host-only relay on a unix channel nobody listens on; returns (dir, socket, relay).
fn host_only(extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Relay) {
    let dir = tempdir();
    let sock = dir.path().join("h.sock");
    let mut args: Vec<String> = vec![
        "--role".into(),
        "host".into(),
        "--channel".into(),
        format!("unix:{}", dir.path().join("nochan.sock").display()),
        "-s".into(),
        sock.display().to_string(),
        "-n".into(),
        SERVICE.into(),
        "-l".into(),
        "60".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let relay = Relay::spawn(dir.path(), "host", &args);
    (dir, sock, relay)
}

fn wait_for_socket(sock: &std::path::Path, relay: &mut Relay) {
    let ok = wait_listening(sock, Duration::from_secs(10));
    assert!(ok, "host socket never listened\n{}", relay.report());
    let meta = std::fs::metadata(sock).unwrap();
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        sock.display()
    );
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn host_socket_default_mode_0660() {
    let (_dir, sock, mut relay) = host_only(&[]);
    wait_for_socket(&sock, &mut relay);
    assert_eq!(mode_of(&sock), 0o660, "{}", relay.report());
}

#[test]
fn host_socket_mode_from_flag() {
    for (flag, want) in [("0600", 0o600), ("0666", 0o666), ("640", 0o640)] {
        let (_dir, sock, mut relay) = host_only(&["--socket-mode", flag]);
        wait_for_socket(&sock, &mut relay);
        assert_eq!(
            mode_of(&sock),
            want,
            "--socket-mode {flag}\n{}",
            relay.report()
        );
    }
}

/// The socket file is created in its final mode, never changed by path afterwards: in a
/// directory others may write to, a chmod by path could meet a symlink swapped in after the
/// bind. Checked with strace: no chmod of any kind, whatever the umask, and the mode is the
/// one asked for (a umask of 0077 would otherwise leave 0600).
#[test]
fn host_socket_mode_is_set_at_bind_without_chmod() {
    if std::env::var_os("DSR_TEST_RUNNER").is_some() {
        eprintln!("skipped under qemu-user: strace would trace the emulator");
        return;
    }
    let dir = tempdir();
    let sock = dir.path().join("h.sock");
    let trace = dir.path().join("chmod.trace");
    let script = format!(
        "umask 0077; exec strace -f -qq -e trace=/chmod -o {} {} \
         --role host --channel unix:{} -s {} -n {SERVICE} --socket-mode 0666 -l 60",
        trace.display(),
        relay_bin(),
        dir.path().join("nochan.sock").display(),
        sock.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let mut relay = Relay::spawn_command(dir.path(), "host", cmd);
    wait_for_socket(&sock, &mut relay);
    assert_eq!(mode_of(&sock), 0o666, "{}", relay.report());
    // The relay is strace's child: stopping strace would leave it running, detached.
    let tracer = relay.pid();
    let children = std::fs::read_to_string(format!("/proc/{tracer}/task/{tracer}/children"));
    let traced: u32 = children
        .unwrap()
        .trim()
        .parse()
        .expect("strace's one child");
    send_signal(traced, "TERM");
    assert!(
        relay.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        relay.report()
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(
        !calls.contains("chmod"),
        "the relay changed a mode:\n{calls}"
    );
}

/// A stale socket file nobody listens on is replaced by the host's listener.
#[test]
fn stale_host_socket_is_replaced() {
    let dir = tempdir();
    let sock = dir.path().join("h.sock");
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    assert!(UnixStream::connect(&sock).is_err());
    let mut relay = Relay::spawn(
        dir.path(),
        "host",
        &[
            "--role",
            "host",
            "--channel",
            &format!("unix:{}", dir.path().join("nochan.sock").display()),
            "-s",
            sock.to_str().unwrap(),
            "-n",
            SERVICE,
            "-l",
            "60",
        ],
    );
    let ok = wait_until(Duration::from_secs(10), || {
        UnixStream::connect(&sock).is_ok()
    });
    assert!(
        ok,
        "the host never listened on the stale path\n{}",
        relay.report()
    );
    assert!(relay.is_running(), "{}", relay.report());
    assert_eq!(mode_of(&sock), 0o660);
}

fn signal_stops_host(sig: &str) {
    let (_dir, sock, mut relay) = host_only(&[]);
    wait_for_socket(&sock, &mut relay);
    // A connected client (waiting for the channel) must not keep the relay alive.
    let _client = try_client(&sock).unwrap();
    thread::sleep(Duration::from_millis(200));
    relay.signal(sig);
    let st = relay.wait_exit(Duration::from_secs(10));
    assert!(
        st.is_some(),
        "host still running 10 s after SIG{sig}\n{}",
        relay.report()
    );
    assert_eq!(st.unwrap().code(), Some(0), "SIG{sig}\n{}", relay.report());
    assert!(!sock.exists(), "host socket left behind after SIG{sig}");
}

#[test]
fn sigterm_stops_host_and_removes_socket() {
    signal_stops_host("TERM");
}

#[test]
fn sigint_stops_host_and_removes_socket() {
    signal_stops_host("INT");
}

/// SIGTERM on the DPU side: exit 0, and the server app's socket is not touched.
#[test]
fn sigterm_stops_dpu_and_keeps_server_socket() {
    let mut env = Setup::new(Chan::Unix).start();
    env.dpu().signal("TERM");
    let st = env.dpu().wait_exit(Duration::from_secs(10));
    assert!(
        st.is_some(),
        "DPU still running 10 s after SIGTERM\n{}",
        env.logs()
    );
    assert_eq!(st.unwrap().code(), Some(0), "{}", env.logs());
    assert!(
        env.server_sock.exists(),
        "the DPU removed the server app's socket"
    );
    let mut direct = try_client(&env.server_sock).unwrap();
    assert!(echo_probe(&mut direct).is_ok());
    assert!(
        env.host().is_running(),
        "host exited with the DPU\n{}",
        env.logs()
    );
}

/// Byte-level sanity of the helpers themselves: the pattern does not depend on chunking.
#[test]
fn pattern_is_chunking_independent() {
    let whole = pattern(9, 1000);
    let mut p = Pattern::new(9);
    let mut parts = vec![0u8; 1000];
    let (a, rest) = parts.split_at_mut(3);
    p.fill(a);
    let (b, c) = rest.split_at_mut(501);
    p.fill(b);
    p.fill(c);
    assert_eq!(whole, parts);
    assert_ne!(pattern(9, 64), pattern(10, 64));
}
