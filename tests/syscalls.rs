//! The data path's system-call budget, counted with `strace -c -f` attached to each running
//! relay process (all its threads): at most 9 calls per 64-byte round trip and 12 per MiB
//! uploaded or downloaded, with a 10% margin for the per-second keepalive tick and connection
//! setup that fall into the measured interval. Counts do not depend on the machine's speed the
//! way times do, so they can be asserted. The budget is for the release build, which users
//! run: a debug test build builds it first (`cargo build --release`) and measures that.
//! Needs `strace` (installed by `.ci/run`); meaningless under qemu-user, which `.ci/run` skips.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RT_BUDGET: f64 = 9.0 * 1.1;
const MIB_BUDGET: f64 = 12.0 * 1.1;
const ROUND_TRIPS: usize = 3000;
const MIB: usize = 1024 * 1024;
const BULK_MIB: usize = 128;
/// The size of the writes and reads a bulk client makes.
const CHUNK: usize = 256 * 1024;

/// One measurement at a time: a concurrent one would change the timing, and with it how much
/// each read finds.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Points the harness at the release binary, building it when this is a debug test build.
fn release_relay() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let this = Path::new(env!("CARGO_BIN_EXE_doca_socket_relay"));
        if !cfg!(debug_assertions) {
            return use_relay_bin(this.display().to_string());
        }
        let target = this.parent().and_then(Path::parent).expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--bin",
                "doca_socket_relay",
                "--target-dir",
            ])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build --release");
        assert!(status.success(), "cargo build --release failed");
        let bin = target.join("release/doca_socket_relay");
        use_relay_bin(bin.display().to_string());
    });
}

/// `strace -c -f` attached to one running process.
struct Strace {
    child: Child,
    out: std::path::PathBuf,
}

impl Strace {
    fn attach(pid: u32, out: &Path) -> Strace {
        let child = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace must be installed (apt-get install strace) to count system calls");
        let mut s = Strace {
            child,
            out: out.into(),
        };
        s.wait_attached();
        s
    }

    /// strace reports "Process N attached with M threads" on stderr once it traces them all.
    fn wait_attached(&mut self) {
        let mut err = self.child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&seen).contains("attached") {
            assert!(Instant::now() < deadline, "strace did not attach");
            match err.read(&mut buf) {
                Ok(0) | Err(_) => panic!(
                    "strace exited before attaching: {}",
                    String::from_utf8_lossy(&seen)
                ),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        // Keep draining stderr so that strace never blocks on it.
        std::thread::spawn(move || while matches!(err.read(&mut buf), Ok(n) if n > 0) {});
    }

    /// Detaches and returns the total number of calls and the summary table.
    fn finish(mut self) -> (u64, String) {
        send_signal(self.child.id(), "INT");
        let _ = self.child.wait();
        let table = std::fs::read_to_string(&self.out).expect("strace wrote no summary");
        let total = table
            .lines()
            .find(|l| l.trim_end().ends_with(" total"))
            .and_then(|l| {
                // "100.00    0.001234           3       401        12 total": calls is the
                // 4th column.
                l.split_whitespace().nth(3)?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no total in strace's summary:\n{table}"));
        (total, table)
    }
}

/// Runs `work` with both relays traced; returns the calls per `units` of each.
fn count(env: &mut Env, name: &str, units: f64, work: impl FnOnce(&mut Env)) -> [(f64, String); 2] {
    let dir = env.dir.path().to_path_buf();
    let host = Strace::attach(env.host().pid(), &dir.join(format!("{name}-host")));
    let dpu = Strace::attach(env.dpu().pid(), &dir.join(format!("{name}-dpu")));
    work(env);
    // Let the close of the measured connection finish on both sides.
    std::thread::sleep(Duration::from_millis(100));
    [host.finish(), dpu.finish()].map(|(n, t)| (n as f64 / units, t))
}

fn check(what: &str, budget: f64, counts: [(f64, String); 2]) {
    for ((per, table), side) in counts.into_iter().zip(["host", "DPU"]) {
        eprintln!("{what}, {side} relay: {per:.2} system calls\n{table}");
        assert!(
            per <= budget,
            "{what}: the {side} relay made {per:.2} system calls, over the budget of {budget:.1}\n{table}"
        );
    }
}

/// Reads to EOF and answers with the byte count (8 bytes, little-endian).
fn sink_handler() -> Handler {
    Arc::new(|mut s: UnixStream| {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(_) => return,
            }
        }
        let _ = s.write_all(&total.to_le_bytes());
    })
}

/// Reads an 8-byte count, then sends that many bytes in `CHUNK`-sized writes of one buffer
/// made beforehand, so the application is never the bottleneck.
fn source_handler() -> Handler {
    let data = Arc::new(pattern(7, CHUNK));
    Arc::new(move |mut s: UnixStream| {
        let mut n = [0u8; 8];
        if s.read_exact(&mut n).is_err() {
            return;
        }
        let mut left = u64::from_le_bytes(n) as usize;
        while left > 0 {
            let k = left.min(CHUNK);
            if s.write_all(&data[..k]).is_err() {
                return;
            }
            left -= k;
        }
    })
}

fn source_probe(s: &mut UnixStream) -> std::io::Result<()> {
    s.write_all(&1u64.to_le_bytes())?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)
}

fn sink_probe(s: &mut UnixStream) -> std::io::Result<()> {
    s.write_all(b"x")?;
    s.shutdown(Shutdown::Write)?;
    let mut n = [0u8; 8];
    s.read_exact(&mut n)?;
    match u64::from_le_bytes(n) {
        1 => Ok(()),
        n => Err(std::io::Error::other(format!("sink counted {n} bytes"))),
    }
}

#[test]
fn a_64_byte_round_trip_costs_at_most_9_system_calls_per_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    release_relay();
    let mut env = Setup::new(Chan::Tcp)
        .server(echo_handler(), echo_probe)
        .start();
    let counts = count(&mut env, "rt", ROUND_TRIPS as f64, |env| {
        let mut s = env.client();
        let msg = pattern(9, 64);
        let mut back = [0u8; 64];
        for i in 0..ROUND_TRIPS {
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
            assert_eq!(back[..], msg[..], "round trip {i}: wrong echo");
        }
    });
    check("one 64-byte round trip", RT_BUDGET, counts);
}

#[test]
fn a_mib_uploaded_costs_at_most_12_system_calls_per_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    release_relay();
    let mut env = Setup::new(Chan::Tcp)
        .server(sink_handler(), sink_probe)
        .start();
    let counts = count(&mut env, "up", BULK_MIB as f64, |env| {
        let mut s = env.client();
        let data = pattern(12, CHUNK);
        for _ in 0..BULK_MIB * MIB / CHUNK {
            s.write_all(&data).unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
        let mut n = [0u8; 8];
        s.read_exact(&mut n).unwrap();
        assert_eq!(u64::from_le_bytes(n), (BULK_MIB * MIB) as u64, "bytes lost");
    });
    check("one MiB uploaded", MIB_BUDGET, counts);
}

#[test]
fn a_mib_downloaded_costs_at_most_12_system_calls_per_relay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    release_relay();
    let mut env = Setup::new(Chan::Tcp)
        .server(source_handler(), source_probe)
        .start();
    let counts = count(&mut env, "down", BULK_MIB as f64, |env| {
        let mut s = env.client();
        s.write_all(&((BULK_MIB * MIB) as u64).to_le_bytes())
            .unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(got, BULK_MIB * MIB, "bytes lost");
    });
    check("one MiB downloaded", MIB_BUDGET, counts);
}
