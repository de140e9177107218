//! Load generator for the relay demo and benchmarks (std only).
//!
//! ```text
//! loadgen echo-server PATH
//! loadgen bulk-server PATH
//! loadgen throughput PATH [--bytes N]
//! loadgen upload PATH [--bytes N]
//! loadgen download PATH [--bytes N]
//! loadgen latency PATH [--count N] [--size BYTES]
//! loadgen clients PATH [--clients C] [--rounds R] [--size BYTES] [--threads T] [--hold SECS]
//! ```
//!
//! `echo-server` binds an AF_UNIX stream socket and echoes every connection until EOF.
//! `bulk-server` moves bytes one way: a connection that starts with `U` is read to EOF and
//! answered with the byte count (8 bytes, little-endian); one that starts with `D` and an 8-byte
//! count is sent that many pattern bytes. `upload` and `download` are its clients. The other
//! subcommands are clients of an echo service, reached directly or through a relay; they
//! verify every byte that comes back and print results as `key: value unit` lines. Every client
//! socket has 30 s read and write timeouts, and a watchdog ends a client run after `--timeout`
//! seconds (default 300), so nothing waits forever. Exit status: 0 on success, 1 when a
//! verification, connection or I/O step failed, 2 on a usage error, 3 when the watchdog fired.
//!
//! Sizes accept K, M and G suffixes (binary: 1K = 1024).

// AF_UNIX and Unix file types: Linux only (scripts/windows.sh skips it).
#![cfg_attr(not(unix), no_main)]
#![cfg(unix)]

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
Usage:
  loadgen echo-server PATH
  loadgen bulk-server PATH
  loadgen throughput PATH [--bytes N] [--timeout SECS]
  loadgen upload PATH [--bytes N] [--timeout SECS]
  loadgen download PATH [--bytes N] [--timeout SECS]
  loadgen latency PATH [--count N] [--size BYTES] [--timeout SECS]
  loadgen clients PATH [--clients C] [--rounds R] [--size BYTES] [--threads T]
                       [--hold SECS] [--timeout SECS]
Sizes accept K, M, G suffixes (1K = 1024).";

/// Buffer size for bulk reads and writes.
const CHUNK: usize = 256 * 1024;
/// Period of the test pattern: a prime, so it never lines up with buffer or message sizes.
const PERIOD: usize = 65521;
/// Per-socket read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("echo-server") => {
            Opts::parse(&args[1..], &[]).and_then(|o| serve(&o.path, "echo-server", echo))
        }
        Some("bulk-server") => {
            Opts::parse(&args[1..], &[]).and_then(|o| serve(&o.path, "bulk-server", bulk))
        }
        Some(dir @ ("upload" | "download")) => Opts::parse(&args[1..], &["--bytes", "--timeout"])
            .and_then(|o| {
                watchdog(o.timeout);
                one_way(&o, dir == "upload")
            }),
        Some("throughput") => Opts::parse(&args[1..], &["--bytes", "--timeout"]).and_then(|o| {
            watchdog(o.timeout);
            throughput(&o)
        }),
        Some("latency") => {
            Opts::parse(&args[1..], &["--count", "--size", "--timeout"]).and_then(|o| {
                watchdog(o.timeout);
                latency(&o)
            })
        }
        Some("clients") => Opts::parse(
            &args[1..],
            &[
                "--clients",
                "--rounds",
                "--size",
                "--threads",
                "--hold",
                "--timeout",
            ],
        )
        .and_then(|o| {
            watchdog(o.timeout);
            clients(&o)
        }),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(Failure::Usage("expected a subcommand".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("loadgen: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("loadgen: error: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Failed(String),
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Failed(msg.into()))
}

/// Parsed command line of one subcommand.
struct Opts {
    path: String,
    bytes: u64,
    count: u64,
    size: usize,
    clients: usize,
    rounds: u64,
    threads: usize,
    hold: u64,
    timeout: u64,
}

impl Opts {
    fn parse(args: &[String], allowed: &[&str]) -> Result<Opts, Failure> {
        let mut o = Opts {
            path: String::new(),
            bytes: 256 << 20,
            count: 2000,
            size: 64,
            clients: 512,
            rounds: 100,
            threads: 16,
            hold: 0,
            timeout: 300,
        };
        let mut path = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if !arg.starts_with("--") {
                if path.replace(arg.clone()).is_some() {
                    return Err(Failure::Usage(format!("unexpected argument {arg:?}")));
                }
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            if !allowed.contains(&name) {
                return Err(Failure::Usage(format!("unknown option {name}")));
            }
            let value = match inline.or_else(|| it.next().cloned()) {
                Some(v) => v,
                None => return Err(Failure::Usage(format!("{name} needs a value"))),
            };
            let n = parse_size(&value)
                .ok_or_else(|| Failure::Usage(format!("{name}: bad number {value:?}")))?;
            match name {
                "--bytes" => o.bytes = n,
                "--count" => o.count = n,
                "--size" => o.size = n as usize,
                "--clients" => o.clients = n as usize,
                "--rounds" => o.rounds = n,
                "--threads" => o.threads = n as usize,
                "--hold" => o.hold = n,
                "--timeout" => o.timeout = n,
                _ => unreachable!(),
            }
        }
        o.path = path.ok_or_else(|| Failure::Usage("missing socket PATH".into()))?;
        if o.size == 0 || o.size > CHUNK {
            return Err(Failure::Usage(format!("--size must be 1..={CHUNK}")));
        }
        if o.count == 0 || o.clients == 0 || o.threads == 0 || o.timeout == 0 {
            return Err(Failure::Usage(
                "--count, --clients, --threads and --timeout must be positive".into(),
            ));
        }
        Ok(o)
    }
}

/// Parses `123`, `64K`, `256M`, `1G` (binary multiples).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Ends the process with status 3 if a client run takes longer than `secs`.
fn watchdog(secs: u64) {
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(secs));
        eprintln!("loadgen: error: watchdog: still running after {secs} s, giving up");
        std::process::exit(3);
    });
}

/// The test pattern: `PERIOD` pseudo-random bytes, repeated so that byte `i` equals byte
/// `i % PERIOD` and `pattern[off % PERIOD..][..CHUNK]` is always in range.
fn pattern() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    let period: Vec<u8> = (0..PERIOD)
        .map(|_| {
            // xorshift32: cheap and without short cycles.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    period
        .iter()
        .cycle()
        .take(PERIOD + CHUNK)
        .copied()
        .collect()
}

fn connect(path: &str) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Describes an I/O error, saying "timed out" where the OS says EAGAIN.
fn describe(e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        format!("timed out after {} s ({e})", IO_TIMEOUT.as_secs())
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        "connection closed by the other end (EOF)".into()
    } else {
        e.to_string()
    }
}

fn io_err(what: &str, e: io::Error) -> Failure {
    Failure::Failed(format!("{what}: {}", describe(&e)))
}

// ---------------------------------------------------------------------------------------------
// echo-server

fn serve(path: &str, name: &str, handler: fn(UnixStream)) -> Result<(), Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| io_err("removing stale socket", e))?
        }
        Ok(_) => {
            return fail(format!(
                "{path} exists and is not a socket; not removing it"
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| io_err(&format!("bind {path}"), e))?;
    eprintln!("{name}: listening on {path}");
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let spawned = thread::Builder::new()
                    .name(name.into())
                    .stack_size(64 * 1024)
                    .spawn(move || handler(stream));
                if let Err(e) = spawned {
                    eprintln!("{name}: cannot spawn thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("{name}: accept: {e}");
                // Typically EMFILE: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn echo(mut stream: UnixStream) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// One `bulk-server` connection: `U` (upload: count to EOF, answer the count) or `D` and a
/// count (download: send that many pattern bytes, then close).
fn bulk(mut stream: UnixStream) {
    let mut kind = [0u8; 1];
    if stream.read_exact(&mut kind).is_err() {
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    if kind[0] == b'U' {
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        let _ = stream.write_all(&total.to_le_bytes());
    } else if kind[0] == b'D' {
        let mut len = [0u8; 8];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let (total, pat) = (u64::from_le_bytes(len), pattern());
        let mut sent = 0u64;
        while sent < total {
            let off = (sent % PERIOD as u64) as usize;
            let n = (total - sent).min(CHUNK as u64) as usize;
            if stream.write_all(&pat[off..off + n]).is_err() {
                return;
            }
            sent += n as u64;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------------------------
// upload, download

/// Sends `--bytes` to a `bulk-server` (upload) or receives them from it (download), in
/// `CHUNK`-sized writes and reads; downloaded bytes are checked against the pattern.
fn one_way(o: &Opts, upload: bool) -> Result<(), Failure> {
    let pat = pattern();
    let mut stream = connect(&o.path).map_err(|e| io_err(&format!("connect {}", o.path), e))?;
    let total = o.bytes;
    let start = Instant::now();
    let io = |e| io_err("bulk transfer", e);
    if upload {
        stream.write_all(b"U").map_err(io)?;
        let mut sent = 0u64;
        while sent < total {
            let off = (sent % PERIOD as u64) as usize;
            let n = (total - sent).min(CHUNK as u64) as usize;
            stream.write_all(&pat[off..off + n]).map_err(io)?;
            sent += n as u64;
        }
        stream.shutdown(Shutdown::Write).map_err(io)?;
        let mut count = [0u8; 8];
        stream.read_exact(&mut count).map_err(io)?;
        if u64::from_le_bytes(count) != total {
            return fail(format!(
                "the server got {} of {total} bytes",
                u64::from_le_bytes(count)
            ));
        }
    } else {
        let mut req = vec![b'D'];
        req.extend_from_slice(&total.to_le_bytes());
        stream.write_all(&req).map_err(io)?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < total {
            let n = match stream.read(&mut buf) {
                Ok(0) => return fail(format!("closed after {got} of {total} bytes")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            let off = (got % PERIOD as u64) as usize;
            if n as u64 > total - got || buf[..n] != pat[off..off + n] {
                return fail(format!("data mismatch after byte offset {got}"));
            }
            got += n as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {:.1} MB/s ({total} bytes {}, {secs:.3} s)",
        total as f64 / secs / 1e6,
        if upload { "up" } else { "down" }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// throughput

fn throughput(o: &Opts) -> Result<(), Failure> {
    let pat = Arc::new(pattern());
    let mut stream = connect(&o.path).map_err(|e| io_err(&format!("connect {}", o.path), e))?;
    let mut writer = stream
        .try_clone()
        .map_err(|e| io_err("cloning socket", e))?;
    let total = o.bytes;
    let start = Instant::now();
    let wpat = Arc::clone(&pat);
    let sender = thread::spawn(move || -> io::Result<()> {
        let mut sent = 0u64;
        while sent < total {
            let off = (sent % PERIOD as u64) as usize;
            let n = (total - sent).min(CHUNK as u64) as usize;
            writer.write_all(&wpat[off..off + n])?;
            sent += n as u64;
        }
        writer.shutdown(Shutdown::Write)
    });

    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let mut result = Ok(());
    while got < total {
        let want = (total - got).min(CHUNK as u64) as usize;
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => {
                result = fail(format!("connection closed after {got} of {total} bytes"));
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                result = Err(io_err(&format!("read after {got} of {total} bytes"), e));
                break;
            }
        };
        let off = (got % PERIOD as u64) as usize;
        if buf[..n] != pat[off..off + n] {
            let i = (0..n).find(|&i| buf[i] != pat[off + i]).unwrap_or(0);
            result = fail(format!("data mismatch at byte offset {}", got + i as u64));
            break;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed();
    if result.is_ok() {
        // The echo side must close after echoing everything: no extra bytes.
        match stream.read(&mut buf[..1]) {
            Ok(0) => {}
            Ok(_) => result = fail("received more bytes than were sent"),
            Err(e) => result = Err(io_err("waiting for EOF after the echo", e)),
        }
    }
    if result.is_err() {
        // Unblock the sender if it is stuck on a full socket.
        let _ = stream.shutdown(Shutdown::Both);
    }
    match sender.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            if result.is_ok() {
                result = Err(io_err("write", e));
            }
        }
        Err(_) => result = fail("writer thread panicked"),
    }
    result?;
    let secs = elapsed.as_secs_f64();
    println!(
        "throughput: {:.1} MB/s ({total} bytes each way, {secs:.3} s)",
        total as f64 / secs / 1e6
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// latency

fn latency(o: &Opts) -> Result<(), Failure> {
    let pat = pattern();
    let mut stream = connect(&o.path).map_err(|e| io_err(&format!("connect {}", o.path), e))?;
    let size = o.size;
    let mut buf = vec![0u8; size];
    // A few unmeasured round trips first, so connection setup is not in the numbers.
    let warmup = (o.count / 10).clamp(1, 100);
    let mut samples = Vec::with_capacity(o.count as usize);
    for i in 0..warmup + o.count {
        let off = ((i as usize).wrapping_mul(size + 7)) % PERIOD;
        let msg = &pat[off..off + size];
        let t = Instant::now();
        stream
            .write_all(msg)
            .map_err(|e| io_err(&format!("write, round trip {i}"), e))?;
        stream
            .read_exact(&mut buf)
            .map_err(|e| io_err(&format!("read, round trip {i}"), e))?;
        let dt = t.elapsed();
        if buf != msg {
            return fail(format!("data mismatch in round trip {i}"));
        }
        if i >= warmup {
            samples.push(dt.as_nanos() as u64);
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    samples.sort_unstable();
    let pct = |p: usize| samples[((samples.len() - 1) * p) / 100] as f64 / 1e3;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1e3;
    println!("latency_p50: {:.1} us", pct(50));
    println!("latency_p99: {:.1} us", pct(99));
    println!("latency_mean: {mean:.1} us");
    println!(
        "latency_max: {:.1} us",
        *samples.last().unwrap() as f64 / 1e3
    );
    println!("round_trips: {} ({size} bytes each)", samples.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// clients

/// Fills `msg` with the message for (`client`, `round`): a header naming both, then pattern.
fn client_msg(pat: &[u8], client: usize, round: u64, msg: &mut [u8]) {
    let off = (client * 977 + round as usize * 131) % PERIOD;
    msg.copy_from_slice(&pat[off..off + msg.len()]);
    let head = ((client as u64) << 32 | (round & 0xffff_ffff)).to_be_bytes();
    let n = head.len().min(msg.len());
    msg[..n].copy_from_slice(&head[..n]);
}

fn clients(o: &Opts) -> Result<(), Failure> {
    let pat = Arc::new(pattern());
    let nthreads = o.threads.min(o.clients);
    let connect_failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    // Barrier 1: everyone connected. Barrier 2: main thread has started the clock.
    // Barrier 3: traffic done. Barrier 4: hold over, close sockets.
    let barrier = Arc::new(Barrier::new(nthreads + 1));
    let start_connect = Instant::now();
    let mut workers = Vec::with_capacity(nthreads);
    for t in 0..nthreads {
        // Client indices t, t + nthreads, t + 2 * nthreads, ...
        let ids: Vec<usize> = (t..o.clients).step_by(nthreads).collect();
        let (pat, cf, errs, first, barrier) = (
            Arc::clone(&pat),
            Arc::clone(&connect_failed),
            Arc::clone(&errors),
            Arc::clone(&first_error),
            Arc::clone(&barrier),
        );
        let (path, rounds, size) = (o.path.clone(), o.rounds, o.size);
        workers.push(thread::spawn(move || {
            let note = |msg: String| {
                let mut f = first.lock().unwrap();
                if f.is_none() {
                    *f = Some(msg);
                }
            };
            let mut socks: Vec<(usize, UnixStream)> = Vec::with_capacity(ids.len());
            for id in ids {
                match connect(&path) {
                    Ok(s) => socks.push((id, s)),
                    Err(e) => {
                        cf.fetch_add(1, Ordering::Relaxed);
                        note(format!("client {id}: connect: {}", describe(&e)));
                    }
                }
            }
            barrier.wait();
            barrier.wait();
            let mut msg = vec![0u8; size];
            let mut buf = vec![0u8; size];
            // Every round: send one message on each socket, then collect every echo, so all
            // of this thread's clients have a message in flight at the same time.
            for round in 0..rounds {
                if socks.is_empty() {
                    break;
                }
                let mut ok = vec![true; socks.len()];
                for (k, (id, s)) in socks.iter_mut().enumerate() {
                    client_msg(&pat, *id, round, &mut msg);
                    if let Err(e) = s.write_all(&msg) {
                        ok[k] = false;
                        note(format!(
                            "client {id}: round {round}: write: {}",
                            describe(&e)
                        ));
                    }
                }
                for (k, (id, s)) in socks.iter_mut().enumerate() {
                    if !ok[k] {
                        continue;
                    }
                    client_msg(&pat, *id, round, &mut msg);
                    match s.read_exact(&mut buf) {
                        Ok(()) if buf == msg => {}
                        Ok(()) => {
                            ok[k] = false;
                            note(format!("client {id}: round {round}: data mismatch"));
                        }
                        Err(e) => {
                            ok[k] = false;
                            note(format!(
                                "client {id}: round {round}: read: {}",
                                describe(&e)
                            ));
                        }
                    }
                }
                // A client that failed once is dropped from the remaining rounds.
                let mut k = 0;
                socks.retain(|_| {
                    k += 1;
                    ok[k - 1]
                });
                errs.fetch_add(ok.iter().filter(|x| !**x).count() as u64, Ordering::Relaxed);
            }
            barrier.wait();
            barrier.wait();
            for (_, s) in &socks {
                let _ = s.shutdown(Shutdown::Both);
            }
        }));
    }
    barrier.wait();
    let connect_time = start_connect.elapsed();
    let start = Instant::now();
    barrier.wait();
    barrier.wait();
    let elapsed = start.elapsed();
    let failed = connect_failed.load(Ordering::Relaxed);
    let errs = errors.load(Ordering::Relaxed);
    let connected = o.clients as u64 - failed;
    let round_trips = connected.saturating_sub(errs) * o.rounds;
    let secs = elapsed.as_secs_f64();
    println!("clients: {}", o.clients);
    println!("connect_failed: {failed}");
    println!("connect_time: {:.3} s", connect_time.as_secs_f64());
    println!("failed_clients: {errs}");
    println!("round_trips: {round_trips} ({} bytes each)", o.size);
    println!("total_time: {secs:.3} s");
    println!("rate: {:.0} round_trips/s", round_trips as f64 / secs);
    if o.hold > 0 {
        println!(
            "holding: {} connections for {} s",
            connected.saturating_sub(errs),
            o.hold
        );
        let _ = io::stdout().flush();
        thread::sleep(Duration::from_secs(o.hold));
    }
    barrier.wait();
    for w in workers {
        if w.join().is_err() {
            return fail("worker thread panicked");
        }
    }
    if failed > 0 || errs > 0 {
        let first = first_error.lock().unwrap().take().unwrap_or_default();
        return fail(format!(
            "{failed} connects failed, {errs} clients failed; first error: {first}"
        ));
    }
    Ok(())
}
