//! What strangers without the key cost the DPU side: two of them, each from its own loopback
//! address, open channel connections as fast as they can, send a valid HELLO and, when the DPU
//! side answers, a random 48-byte AUTH (a Noise message of the right size with the wrong key),
//! and read until the DPU side closes. Meanwhile the DPU process's CPU time is sampled from
//! /proc; then a real host relay is started and timed until its channel is up.
//!
//! ```text
//! cargo run --release --example stranger_load -- RELAY_BINARY [SECONDS] [PROTOCOL_VERSION] [blind]
//! ```
//!
//! `PROTOCOL_VERSION` is the version the strangers speak (default: this build's), so that an
//! older release can be measured too (4 for releases before the quiet handshake). `blind`
//! strangers do not wait for anything: they send HELLO and AUTH at once and close, so a DPU
//! side that holds them unanswered does not slow them down. Linux only.
//! Prints one line per figure; docs/SECURITY.md ("Measured") has the numbers.

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("stranger_load: Linux only (/proc and loopback source addresses)");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
mod linux {
    use doca_socket_relay::wire::{Frame, Hello, NONCE_LEN, VERSION};
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    const SERVICE: &str = "stranger_load";

    /// A stranger's HELLO of `version`: the fields every version starts with, and for versions
    /// 2 to 4 the instance and label they carried after the service name.
    fn hello(version: u16) -> Vec<u8> {
        let mut p = Hello {
            version,
            // Encrypted with AES-GCM: what a tcp channel with a key runs by default.
            security: 2,
            max_msg: 1 << 20,
            window: 4 << 20,
            nonce: [7; NONCE_LEN],
            service: SERVICE.into(),
        }
        .encode();
        if (2..5).contains(&version) {
            p.extend_from_slice(&[9; 16]);
            p.push(8);
            p.extend_from_slice(b"stranger");
        }
        let mut out = Vec::new();
        Frame::Hello(&p).encode(&mut out);
        out
    }

    /// A random-looking 48-byte AUTH (xorshift: no key could match it).
    fn auth(seed: &mut u64) -> Vec<u8> {
        let msg: Vec<u8> = (0..48)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect();
        let mut out = Vec::new();
        Frame::Auth(&msg).encode(&mut out);
        out
    }

    /// Connects from `from` (a loopback address of its own) to `to`. A close resets the
    /// connection, as a flooder would have it: no TIME_WAIT to run out of ports.
    fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let fd = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )?;
        let local: SocketAddr = format!("{from}:0").parse().expect("an IPv4 address");
        rustix::net::sockopt::set_socket_linger(&fd, Some(Duration::ZERO))?;
        rustix::net::bind(&fd, &local)?;
        rustix::net::connect(&fd, &to)?;
        // SAFETY: the descriptor is a connected TCP socket we own and hand over whole.
        Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
    }

    struct Counts {
        attempts: AtomicU64,
        answered: AtomicU64,
    }

    /// One stranger: connection after connection until `run` goes false.
    fn stranger(
        from: &'static str,
        to: SocketAddr,
        (version, blind): (u16, bool),
        run: Arc<AtomicBool>,
        n: Arc<Counts>,
    ) {
        let hello = hello(version);
        let mut seed = 0x2545_f491_4f6c_dd1du64 ^ from.len() as u64;
        let mut buf = [0u8; 4096];
        while run.load(Ordering::Relaxed) {
            let Ok(mut c) = connect_from(from, to) else {
                thread::sleep(Duration::from_millis(1));
                continue;
            };
            n.attempts.fetch_add(1, Ordering::Relaxed);
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            if blind {
                let _ = c.write_all(&[&hello[..], &auth(&mut seed)].concat());
                continue;
            }
            if c.write_all(&hello).is_err() {
                continue;
            }
            // The DPU side's HELLO (or nothing, or an ERROR), then the wrong AUTH.
            let answered = matches!(c.read(&mut buf), Ok(n) if n > 0 && buf[0] == 0x01);
            if answered {
                n.answered.fetch_add(1, Ordering::Relaxed);
                let _ = c.write_all(&auth(&mut seed));
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            }
        }
    }

    /// utime + stime of `pid`, in seconds.
    fn cpu_seconds(pid: u32, tick: f64) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
        // Fields after the command name, which ends at the last ')': state is field 3.
        let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        ticks as f64 / tick
    }

    fn clock_tick() -> f64 {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    }

    fn spawn(bin: &str, dir: &Path, name: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("a log file");
        Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"))
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let Some(bin) = args.first() else {
            eprintln!("usage: stranger_load RELAY_BINARY [SECONDS] [PROTOCOL_VERSION]");
            std::process::exit(2);
        };
        let secs: u64 = args.get(1).map_or(10, |s| s.parse().expect("SECONDS"));
        let version: u16 = args.get(2).map_or(VERSION, |s| s.parse().expect("VERSION"));
        let blind = args.get(3).is_some_and(|a| a == "blind");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = dir.path().join("key");
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("random bytes");
        std::fs::write(&key, bytes).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let channel = format!("tcp:{to}");
        let (key, srv) = (key.to_str().unwrap(), dir.path().join("srv.sock"));
        let common = ["--channel", &channel, "--psk-file", key, "-n", SERVICE];
        let mut dpu_args = vec!["--role", "dpu", "-s", srv.to_str().unwrap()];
        dpu_args.extend(common);
        let mut dpu = spawn(bin, dir.path(), "dpu", &dpu_args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(to).is_err() {
            assert!(Instant::now() < deadline, "the DPU side never listened");
            thread::sleep(Duration::from_millis(20));
        }

        let run = Arc::new(AtomicBool::new(true));
        let counts = Arc::new(Counts {
            attempts: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        });
        let strangers: Vec<_> = ["127.0.0.2", "127.0.0.3"]
            .into_iter()
            .map(|from| {
                let (run, n) = (run.clone(), counts.clone());
                thread::spawn(move || stranger(from, to, (version, blind), run, n))
            })
            .collect();
        thread::sleep(Duration::from_secs(1));
        let tick = clock_tick();
        let (cpu0, t0) = (cpu_seconds(dpu.id(), tick), Instant::now());
        let (a0, h0) = (
            counts.attempts.load(Ordering::Relaxed),
            counts.answered.load(Ordering::Relaxed),
        );
        thread::sleep(Duration::from_secs(secs));
        let (cpu1, elapsed) = (cpu_seconds(dpu.id(), tick), t0.elapsed().as_secs_f64());
        let attempts = counts.attempts.load(Ordering::Relaxed) - a0;
        let answered = counts.answered.load(Ordering::Relaxed) - h0;

        // The real host, while the strangers go on.
        let host_sock = dir.path().join("h.sock");
        let mut host_args = vec!["--role", "host", "-s", host_sock.to_str().unwrap()];
        host_args.extend(common);
        let started = Instant::now();
        let mut host = spawn(bin, dir.path(), "host", &host_args);
        let host_log = dir.path().join("host.log");
        let mut up = None;
        while started.elapsed() < Duration::from_secs(30) {
            if std::fs::read_to_string(&host_log).is_ok_and(|l| l.contains("channel up")) {
                up = Some(started.elapsed());
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        run.store(false, Ordering::Relaxed);
        for s in strangers {
            let _ = s.join();
        }
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", dpu.id())).unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?")
            .to_string();
        let _ = host.kill();
        let _ = dpu.kill();
        let _ = (host.wait(), dpu.wait());
        let warnings = std::fs::read_to_string(dir.path().join("dpu.log"))
            .unwrap_or_default()
            .lines()
            .count();

        let how = if blind { ", blind" } else { "" };
        println!("relay: {bin}, strangers speak protocol version {version}{how}");
        println!(
            "strangers: {attempts} connections in {elapsed:.1} s ({:.0}/s), {answered} answered with a HELLO ({:.0}/s)",
            attempts as f64 / elapsed,
            answered as f64 / elapsed
        );
        println!(
            "DPU side: {:.1} % of one core (utime+stime over {elapsed:.1} s), {hwm}, {warnings} log lines",
            100.0 * (cpu1 - cpu0) / elapsed
        );
        match up {
            Some(t) => println!(
                "real host: channel up {} ms after it started",
                t.as_millis()
            ),
            None => println!("real host: no channel within 30 s"),
        }
    }
}
