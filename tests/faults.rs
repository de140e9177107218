//! Fault injection with the real binaries: a proxy between the two relays that delays, splits
//! into 1-byte writes, stalls and cuts the channel (tcp and unix); the server application
//! crashing mid-stream; clients that connect and vanish; 10,000 connect/disconnect cycles with
//! fds and RSS flat; the fd limit reached in accept; a channel peer that never says HELLO.
//! After each: no panic, new clients still served, and every byte echoed back arrived intact.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/proxy.rs"]
mod proxy;

use common::*;
use procfs::*;
use proxy::{Fault, Proxy, Route};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Relays around a proxy
// ---------------------------------------------------------------------------------------------

struct Proxied {
    _proxy: Proxy,
    cuts: Arc<AtomicUsize>,
    host: Relay,
    dpu: Relay,
    _server: Server,
    host_sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxied {
    fn start(chan: Chan, fault: Fault) -> Proxied {
        let dir = tempdir();
        let d = dir.path();
        let route = Route::new(chan, d);
        let host_sock = d.join("h.sock");
        let srv = d.join("srv.sock");
        let server = Server::start(&srv, echo_handler());
        let mut dpu = Relay::spawn(d, "dpu", &route.args("dpu", &srv));
        // The DPU side listens before the proxy connects to it.
        let listening = route.wait_dpu_listening(Duration::from_secs(10));
        assert!(listening, "the DPU side never listened\n{}", dpu.report());
        let proxy = Proxy::start(chan, &route.host_chan, &route.dpu_chan, fault, 11);
        let cuts = proxy.cuts.clone();
        let mut host = Relay::spawn(d, "host", &route.args("host", &host_sock));
        wait_for_relay(&host_sock, echo_probe, &mut [&mut host, &mut dpu]);
        Proxied {
            _proxy: proxy,
            cuts,
            host,
            dpu,
            _server: server,
            host_sock,
            _dir: dir,
        }
    }

    fn logs(&mut self) -> String {
        format!("{}\n{}", self.host.report(), self.dpu.report())
    }

    /// Both relays run, neither panicked, and a new client gets a 64 KiB echo back intact.
    fn assert_healthy(&mut self) {
        wait_for_relay(
            &self.host_sock,
            echo_probe,
            &mut [&mut self.host, &mut self.dpu],
        );
        let s = try_client(&self.host_sock).unwrap();
        let res = echo_check(&s, &pattern(99, 64 * 1024));
        assert!(
            res.is_ok(),
            "new client after the faults: {res:?}\n{}",
            self.logs()
        );
        assert!(
            self.host.is_running() && self.dpu.is_running(),
            "{}",
            self.logs()
        );
        let logs = format!("{}{}", self.host.stderr(), self.dpu.stderr());
        assert!(!logs.contains("panicked"), "{}", self.logs());
    }
}

/// Echoes `len` bytes on several clients at once through the faulty channel. With `may_cut`
/// a stream may end early, but every byte that came back must be the byte sent.
fn echo_through(env: &mut Proxied, clients: u64, len: usize, may_cut: bool) {
    let results: Vec<Result<(), String>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let sock = env.host_sock.clone();
                sc.spawn(move || {
                    let s = try_client(&sock).map_err(|e| e.to_string())?;
                    echo_check(&s, &pattern(i, len))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(()) => {}
            // A wrong byte is never acceptable; an early end is, on a cut channel.
            Err(e) if may_cut && !e.contains("differs") => {}
            Err(e) => panic!("client {i}: {e}\n{}", env.logs()),
        }
    }
}

fn channel_fault(chan: Chan, fault: Fault) {
    let mut env = Proxied::start(chan, fault);
    let (clients, len) = match fault {
        Fault::OneByte => (2, 48 * 1024),
        Fault::Stall => (3, 200 * 1024),
        _ => (4, 256 * 1024),
    };
    let cut = matches!(fault, Fault::Cut);
    echo_through(&mut env, clients, len, cut);
    if cut {
        // Keep going until the proxy has cut three channel connections mid-stream.
        let deadline = Instant::now() + Duration::from_secs(60);
        while env.cuts.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
            echo_through(&mut env, 2, 256 * 1024, true);
        }
        assert!(
            env.cuts.load(Ordering::SeqCst) >= 4,
            "the channel was never cut\n{}",
            env.logs()
        );
    }
    env.assert_healthy();
}

/// One test per fault and channel kind.
macro_rules! channel_faults {
    ($($fault:ident: $tcp:ident, $unix:ident;)*) => {$(
        #[test]
        fn $tcp() {
            channel_fault(Chan::Tcp, Fault::$fault);
        }
        #[test]
        fn $unix() {
            channel_fault(Chan::Unix, Fault::$fault);
        }
    )*};
}

channel_faults! {
    Delay: channel_delayed_tcp, channel_delayed_unix;
    OneByte: channel_one_byte_writes_tcp, channel_one_byte_writes_unix;
    Stall: channel_stalls_tcp, channel_stalls_unix;
    Cut: channel_cut_at_random_points_tcp, channel_cut_at_random_points_unix;
}

// ---------------------------------------------------------------------------------------------
// Server application crash, vanishing clients
// ---------------------------------------------------------------------------------------------

/// Echo until `crash` is set, then drop the connection with unread data (a crashed process's
/// sockets close the same way). Once [`CRASH_AFTER`] bytes have been echoed in all, `crash` is
/// set: the crash then falls in the middle of the streams however fast the machine is.
fn crashing_echo(crash: Arc<AtomicBool>) -> Handler {
    let echoed = Arc::new(AtomicUsize::new(0));
    Arc::new(move |mut s: UnixStream| {
        let mut buf = vec![0u8; 16 * 1024];
        while !crash.load(Ordering::SeqCst) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    if echoed.fetch_add(n, Ordering::SeqCst) + n >= CRASH_AFTER {
                        crash.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
    })
}

/// Bytes echoed (over all streams, the readiness probe included) before the application
/// "crashes": an eighth of what the four streams send.
const CRASH_AFTER: usize = 16 << 20;

/// The server application dies in the middle of several streams: each client gets every byte
/// echoed before the crash intact and then an end, and once the application is back, new
/// clients are served.
fn server_crash(chan: Chan) {
    let crash = Arc::new(AtomicBool::new(false));
    let mut env = Setup::new(chan)
        .server(crashing_echo(crash.clone()), echo_probe)
        .start();
    let clients: Vec<UnixStream> = (0..4).map(|_| env.client()).collect();
    let results: Vec<Result<(), String>> = thread::scope(|sc| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, s)| sc.spawn(move || echo_check(s, &pattern(i as u64, 32 << 20))))
            .collect();
        // The handler sets `crash` part of the way through; a machine too slow to get there
        // in time crashes it anyway.
        wait_until(Duration::from_secs(30), || crash.load(Ordering::SeqCst));
        crash.store(true, Ordering::SeqCst);
        env.server.as_mut().unwrap().shutdown(true);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Streams end early (the crash) or, if they were quick, whole; never with a wrong byte.
    for r in &results {
        assert!(
            !matches!(r, Err(e) if e.contains("differs")),
            "{r:?}\n{}",
            env.logs()
        );
    }
    assert!(
        results.iter().any(|r| r.is_err()),
        "no stream was cut by the crash"
    );
    assert!(
        env.host().is_running() && env.dpu().is_running(),
        "{}",
        env.logs()
    );
    env.server = Some(Server::start(&env.server_sock, echo_handler()));
    env.wait_ready(echo_probe);
    let res = echo_check(&env.client(), &pattern(7, 1 << 20));
    assert!(res.is_ok(), "after the restart: {res:?}\n{}", env.logs());
}

#[test]
fn server_app_crash_mid_stream_tcp() {
    server_crash(Chan::Tcp);
}

#[test]
fn server_app_crash_mid_stream_unix() {
    server_crash(Chan::Unix);
}

/// 300 clients connect and vanish in different ways (at once, after a partial write, after a
/// half-close, while data is coming back); the relay keeps serving.
#[test]
fn clients_that_connect_and_vanish() {
    let mut env = Setup::new(Chan::Tcp).start();
    for i in 0..300u64 {
        let mut s = env.client();
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(&pattern(i, 5000));
            }
            2 => {
                let _ = s.write_all(b"x");
                let _ = s.shutdown(Shutdown::Write);
            }
            _ => {
                let _ = s.write_all(&pattern(i, 300_000));
                let mut b = [0u8; 10];
                let _ = s.read(&mut b);
            }
        }
    }
    let res = echo_check(&env.client(), &pattern(1, 1 << 20));
    assert!(res.is_ok(), "{res:?}\n{}", env.logs());
    // Every vanished client was released: the host's client count drops back.
    let host_pid = env.host().pid();
    let settled = wait_until(Duration::from_secs(20), || proc_fds(host_pid) < 30);
    assert!(
        settled,
        "host holds {} fds\n{}",
        proc_fds(host_pid),
        env.logs()
    );
    assert!(
        env.host().is_running() && env.dpu().is_running(),
        "{}",
        env.logs()
    );
}

// ---------------------------------------------------------------------------------------------
// Resource use: fds, RSS, the fd limit
// ---------------------------------------------------------------------------------------------

/// One client: connect, a 1-byte echo, close.
fn one_cycle(sock: &Path) -> Result<(), String> {
    let mut s = try_client(sock).map_err(|e| format!("connect: {e}"))?;
    echo_probe(&mut s).map_err(|e| format!("echo: {e}"))
}

/// An echo server application that accepts as soon as a client connects (the shared `Server`
/// polls every 10 ms, which would make 10,000 cycles take minutes). Its thread ends when it is
/// dropped.
struct QuickEcho {
    path: std::path::PathBuf,
    stop: Arc<AtomicBool>,
}

impl QuickEcho {
    fn start(path: &Path) -> QuickEcho {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let echo = echo_handler();
        thread::spawn(move || {
            for s in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = s {
                    let echo = echo.clone();
                    thread::spawn(move || echo(s));
                }
            }
        });
        QuickEcho {
            path: path.to_path_buf(),
            stop,
        }
    }
}

impl Drop for QuickEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so that the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
    }
}

/// 10,000 connect/echo/disconnect cycles (2,000 under qemu-user, which is ~20 times slower):
/// after 1,000 to warm up, both relays' fd counts and RSS stay flat (fds exactly back to the
/// warm figure, RSS within 4 MiB).
#[test]
fn ten_thousand_connect_cycles_keep_fds_and_rss_flat() {
    let mut env = Setup::new(Chan::Tcp).start();
    env.server.take().unwrap().shutdown(true);
    let _server = QuickEcho::start(&env.server_sock);
    let cycles = if std::env::var_os("DSR_TEST_RUNNER").is_some() {
        2_000
    } else {
        10_000
    };
    let sock = env.host_sock.clone();
    let (host, dpu) = (env.host().pid(), env.dpu().pid());
    // A bound against a hang, far above the time this takes (~30 s in a debug build).
    let deadline = Instant::now() + Duration::from_secs(400);
    let sample = |what: &str, env: &mut Env| -> [(usize, u64); 2] {
        // Streams end asynchronously after the client closes: wait for the fds to settle.
        let mut last = [proc_fds(host), proc_fds(dpu)];
        wait_until(Duration::from_secs(5), || {
            thread::sleep(Duration::from_millis(100));
            let now = [proc_fds(host), proc_fds(dpu)];
            std::mem::replace(&mut last, now) == now
        });
        let s = [
            (proc_fds(host), proc_rss_kib(host)),
            (proc_fds(dpu), proc_rss_kib(dpu)),
        ];
        eprintln!(
            "{what}: host fds {} rss {} KiB; dpu fds {} rss {} KiB",
            s[0].0, s[0].1, s[1].0, s[1].1
        );
        assert!(
            env.host().is_running() && env.dpu().is_running(),
            "{}",
            env.logs()
        );
        s
    };
    for i in 0..1_000 {
        one_cycle(&sock).unwrap_or_else(|e| panic!("cycle {i}: {e}\n{}", env.logs()));
    }
    let warm = sample("after 1,000", &mut env);
    for i in 1_000..cycles {
        assert!(Instant::now() < deadline, "{cycles} cycles took over 400 s");
        one_cycle(&sock).unwrap_or_else(|e| panic!("cycle {i}: {e}\n{}", env.logs()));
    }
    let end = sample(&format!("after {cycles}"), &mut env);
    for (side, (w, e)) in ["host", "dpu"].iter().zip(warm.iter().zip(end.iter())) {
        assert_eq!(
            e.0,
            w.0,
            "{side}: fds grew from {} to {}\n{}",
            w.0,
            e.0,
            env.logs()
        );
        assert!(
            e.1 <= w.1 + 4096,
            "{side}: RSS grew from {} to {} KiB",
            w.1,
            e.1
        );
    }
}

/// With RLIMIT_NOFILE low, accept fails once the fds are used up: the host side logs it on a
/// clear line, does not spin (CPU time over 2 s well under half the wall time), keeps the
/// clients it has, and serves new ones once fds are free again.
#[test]
fn fd_limit_in_accept_is_logged_without_spinning_and_recovers() {
    let dir = tempdir();
    let d = dir.path();
    let srv = d.join("srv.sock");
    let _server = Server::start(&srv, echo_handler());
    let chan = format!("unix:{}", d.join("chan.sock").display());
    let host_sock = d.join("h.sock");
    let common = |role: &str, sock: &Path| {
        format!(
            "--role {role} --channel {chan} -s {} -n {SERVICE}",
            sock.display()
        )
    };
    let mut dpu = Relay::spawn(
        d,
        "dpu",
        &common("dpu", &srv).split(' ').collect::<Vec<_>>(),
    );
    // The relay command as the other tests run it (behind qemu-user when DSR_TEST_RUNNER says
    // so), started by a shell that lowers the limit first.
    let relay = relay_command();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 48 && exec \"$@\"")
        .arg("sh")
        .arg(relay.get_program())
        .args(relay.get_args())
        .args(common("host", &host_sock).split(' '));
    let mut host = Relay::spawn_command(d, "host", cmd);
    wait_for_relay(&host_sock, echo_probe, &mut [&mut host, &mut dpu]);
    // Hold connections until the host runs out of fds (each client costs it one).
    let mut held = Vec::new();
    let filled = wait_until(Duration::from_secs(20), || {
        if let Ok(s) = try_client(&host_sock) {
            held.push(s);
        }
        host.stderr().contains("accepting a client failed")
    });
    assert!(
        filled,
        "accept never failed with {} clients\n{}",
        held.len(),
        host.report()
    );
    let line = host
        .stderr()
        .lines()
        .find(|l| l.contains("accepting a client failed"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("Too many open files"),
        "unclear log line: {line}"
    );
    let (t0, c0) = (Instant::now(), proc_cpu_ticks(host.pid()));
    thread::sleep(Duration::from_secs(2));
    let cpu = (proc_cpu_ticks(host.pid()) - c0) as f64 / clock_ticks_per_sec() as f64;
    let wall = t0.elapsed().as_secs_f64();
    eprintln!(
        "host CPU {cpu:.2} s over {wall:.2} s at the fd limit, {} clients held",
        held.len()
    );
    assert!(
        cpu < wall * 0.5,
        "busy loop at the fd limit: {cpu:.2} s CPU in {wall:.2} s"
    );
    // A client that got in before the limit still works.
    let res = echo_check(&held[0], &pattern(3, 100_000));
    assert!(res.is_ok(), "held client: {res:?}\n{}", host.report());
    // Free the fds: the queued and new clients are served.
    held.clear();
    wait_for_relay(&host_sock, echo_probe, &mut [&mut host, &mut dpu]);
    let res = echo_check(&try_client(&host_sock).unwrap(), &pattern(4, 100_000));
    assert!(
        res.is_ok(),
        "after the fds were freed: {res:?}\n{}",
        host.report()
    );
    assert!(
        host.is_running() && !host.stderr().contains("panicked"),
        "{}",
        host.report()
    );
}

// ---------------------------------------------------------------------------------------------
// A channel peer that never says HELLO
// ---------------------------------------------------------------------------------------------

/// A tcp peer that connects to the DPU side's channel port and then stays silent is closed
/// after a bounded time (the handshake timeout), and the relay keeps serving meanwhile.
#[test]
fn silent_channel_peer_is_closed_after_a_bounded_time() {
    let mut env = Setup::new(Chan::Tcp).start();
    let addr = env.channel.trim_start_matches("tcp:").to_string();
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    let res = echo_check(&env.client(), &pattern(8, 100_000));
    assert!(res.is_ok(), "{res:?}\n{}", env.logs());
    // The DPU side closes it once its time to speak (or to finish the handshake) is up.
    let mut sink = Vec::new();
    let end = silent.read_to_end(&mut sink);
    let waited = start.elapsed();
    assert!(end.is_ok() || waited < Duration::from_secs(25), "{end:?}");
    assert!(
        waited < Duration::from_secs(25),
        "a silent peer was held for {waited:?}\n{}",
        env.logs()
    );
    let res = echo_check(&env.client(), &pattern(9, 100_000));
    assert!(res.is_ok(), "{res:?}\n{}", env.logs());
}
