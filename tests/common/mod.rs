//! Helpers shared by the integration tests: spawning the relay binary, temporary directories,
//! PSK files, small server applications on AF_UNIX sockets, clients with timeouts, a
//! deterministic byte pattern, and a `Setup` builder that starts server app + DPU + host.
//!
//! Every wait here is bounded in time; every client socket has read and write timeouts, so a
//! relay that hangs fails the test instead of hanging it.

#![allow(dead_code)]

pub mod config_errors;
pub mod cost;
#[path = "../support/fake_comch.rs"]
pub mod fake_comch;
#[path = "../support/fake_doca.rs"]
pub mod fake_doca;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Read/write timeout of test clients: a relay that stops moving bytes fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the relay to become usable end to end.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeouts of the server application's connections.
const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The service name both sides use unless a test says otherwise.
pub const SERVICE: &str = "dsr_test";

/// A different relay binary for this test process (see [`use_relay_bin`]).
static RELAY_BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The relay binary built by cargo for this test run, unless [`use_relay_bin`] chose another.
pub fn relay_bin() -> &'static str {
    RELAY_BIN
        .get()
        .map_or(env!("CARGO_BIN_EXE_doca_socket_relay"), String::as_str)
}

/// Makes every relay this test process starts run `path` (set once; later calls must agree).
#[allow(dead_code)]
pub fn use_relay_bin(path: String) {
    let set = RELAY_BIN.get_or_init(|| path.clone());
    assert_eq!(*set, path, "two different relay binaries requested");
}

/// The relay as a command. `DSR_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`)
/// goes in front of it when the tests run under qemu-user, where the kernel cannot start an
/// aarch64 binary by itself (no binfmt_misc).
pub fn relay_command() -> Command {
    let runner = std::env::var("DSR_TEST_RUNNER").unwrap_or_default();
    let mut parts = runner.split_whitespace();
    match parts.next() {
        Some(prog) => {
            let mut c = Command::new(prog);
            c.args(parts).arg(relay_bin());
            c
        }
        None => Command::new(relay_bin()),
    }
}

/// A fresh temporary directory under /tmp with a short path (AF_UNIX paths are limited).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dsr")
        .tempdir_in("/tmp")
        .expect("creating a temp dir under /tmp")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Writes a 48-byte pre-shared key derived from `name` to `dir/name` (mode 0600, as the relay
/// requires) and returns its path.
pub fn write_psk(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut key = vec![0u8; 48];
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Pattern::new(seed).fill(&mut key);
    fs::write(&path, &key).expect("writing the psk file");
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod 0600 on the psk file");
    path
}

/// `kill -SIG pid` through the `kill` command.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(st.success(), "kill -{sig} {pid} failed: {st}");
}

/// Returns the last `max` bytes of `s` (on a char boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` accepts AF_UNIX connections (the file alone is not enough: it exists
/// between bind() and listen()). Each test connection is closed at once.
pub fn wait_listening(path: &Path, timeout: Duration) -> bool {
    wait_until(timeout, || UnixStream::connect(path).is_ok())
}

// ---------------------------------------------------------------------------------------------
// The relay process
// ---------------------------------------------------------------------------------------------

/// One running relay process. Its stdout and stderr go to files in the test's temp dir.
/// Dropping it kills the process (SIGKILL) and reaps it.
pub struct Relay {
    child: Child,
    label: String,
    /// Where stderr goes.
    pub stderr_path: PathBuf,
    /// Where stdout goes.
    pub stdout_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Relay {
    /// Spawns the relay with `args`; `label` names the output files (`dir/label.stderr`).
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(dir: &Path, label: &str, args: &[S]) -> Relay {
        Relay::spawn_env(dir, label, args, &[])
    }

    /// Like [`Relay::spawn`], with extra environment variables.
    pub fn spawn_env<S: AsRef<std::ffi::OsStr>>(
        dir: &Path,
        label: &str,
        args: &[S],
        envs: &[(String, String)],
    ) -> Relay {
        let mut cmd = relay_command();
        cmd.args(args).envs(envs.iter().map(|(k, v)| (k, v)));
        Relay::spawn_command(dir, label, cmd)
    }

    /// Spawns a prepared command that runs the relay (e.g. through a shell that sets
    /// `LISTEN_PID`), with the same output capture and cleanup.
    pub fn spawn_command(dir: &Path, label: &str, mut cmd: Command) -> Relay {
        let stderr_path = dir.join(format!("{label}.stderr"));
        let stdout_path = dir.join(format!("{label}.stdout"));
        let err = File::create(&stderr_path).expect("creating the stderr file");
        let out = File::create(&stdout_path).expect("creating the stdout file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let mut child = cmd.spawn().expect("spawning doca_socket_relay");
        if std::env::var_os("DSR_TEST_RUNNER").is_some() {
            // Under qemu-user, a child forked from this multi-threaded emulated program has
            // been seen, rarely and only under load, to stop between fork and exec. That is
            // the emulator, not the relay: such a child is replaced, and the log says so.
            for _ in 0..2 {
                if reached_exec(child.id(), Duration::from_secs(10)) {
                    break;
                }
                eprintln!(
                    "{label}: child {} never reached exec under qemu-user ({}); spawning again",
                    child.id(),
                    proc_state(child.id())
                );
                let _ = child.kill();
                let _ = child.wait();
                child = cmd.spawn().expect("spawning doca_socket_relay");
            }
        }
        Relay {
            child,
            label: label.to_string(),
            stderr_path,
            stdout_path,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given at spawn time.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read(&self.stdout_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&mut self, sig: &str) {
        if self.is_running() {
            send_signal(self.pid(), sig);
        }
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// A short description with the exit state and the stderr tail, for failure messages.
    pub fn report(&mut self) -> String {
        let state = match self.try_status() {
            Some(st) => format!("exited: {st}"),
            None => format!("running: {}", proc_state(self.pid())),
        };
        format!(
            "---- {} ({state}) stderr tail ----\n{}",
            self.label,
            tail(&self.stderr(), 6000)
        )
    }
}

/// Whether the child forked from this test program has exec'd (its command line no longer
/// names this program), waiting up to `limit`.
fn reached_exec(pid: u32, limit: Duration) -> bool {
    let Ok(me) = std::env::current_exe() else {
        return true;
    };
    let me = me.display().to_string();
    let deadline = Instant::now() + limit;
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&me) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// What a running process is doing, from /proc: its program and each thread's name, state and
/// wait channel. Tells a relay that hangs from one that never got to run (e.g. a child stuck
/// between fork and exec).
fn proc_state(pid: u32) -> String {
    let read = |p: String| fs::read(p).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&read(format!("/proc/{pid}/cmdline"))).replace('\0', " ");
    let mut out = format!("command {}", tail(cmdline.trim(), 300));
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let dir = t.path().display().to_string();
        let stat = String::from_utf8_lossy(&read(format!("{dir}/stat"))).into_owned();
        // The state is the field after the parenthesised name.
        let state = stat.rsplit(") ").next().and_then(|r| r.split(' ').next());
        let wchan = String::from_utf8_lossy(&read(format!("{dir}/wchan"))).into_owned();
        let comm = String::from_utf8_lossy(&read(format!("{dir}/comm"))).into_owned();
        out.push_str(&format!(
            "; thread {} {} state {} wchan {}",
            t.file_name().to_string_lossy(),
            comm.trim(),
            state.unwrap_or("?"),
            wchan.trim()
        ));
    }
    out
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the relay with `args` and waits up to `timeout` for it to exit. Returns the exit
/// status (`None` if it was still running and had to be killed), stdout and stderr.
pub fn run_relay<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let label = format!("run{}", RUNS.fetch_add(1, Ordering::SeqCst));
    let mut r = Relay::spawn(dir, &label, args);
    let st = r.wait_exit(timeout);
    r.kill();
    (st, r.stdout(), r.stderr())
}

// ---------------------------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------------------------

/// A xorshift64 byte stream: the same seed gives the same bytes however they are chunked.
pub struct Pattern {
    state: u64,
    cur: [u8; 8],
    used: usize,
}

impl Pattern {
    /// A new stream for `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            cur: [0; 8],
            used: 8,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            if self.used == 8 {
                self.cur = self.next_u64().to_le_bytes();
                self.used = 0;
            }
            // Copy whole words when aligned, to stay quick in debug builds.
            if self.used == 0 && buf.len() - i >= 8 {
                buf[i..i + 8].copy_from_slice(&self.cur);
                self.used = 8;
                i += 8;
                continue;
            }
            buf[i] = self.cur[self.used];
            self.used += 1;
            i += 1;
        }
    }
}

/// `len` bytes of the pattern for `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Pattern::new(seed).fill(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// Connects to `path` and sets the client timeouts.
pub fn try_client(path: &Path) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Reads exactly `want.len()` bytes and compares them with `want`, chunk by chunk.
pub fn read_compare(s: &mut UnixStream, want: &[u8]) -> Result<(), String> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    while got < want.len() {
        let n = want.len().min(got + buf.len()) - got;
        match s.read(&mut buf[..n]) {
            Ok(0) => return Err(format!("EOF after {got} of {} bytes", want.len())),
            Ok(k) => {
                if buf[..k] != want[got..got + k] {
                    let off = (0..k).find(|&i| buf[i] != want[got + i]).unwrap_or(0);
                    return Err(format!(
                        "data differs at byte {} of {}",
                        got + off,
                        want.len()
                    ));
                }
                got += k;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "read failed after {got} of {} bytes: {e}",
                    want.len()
                ))
            }
        }
    }
    Ok(())
}

/// Writes `data` in chunks of pseudo-random sizes (1 byte to 200 KiB).
pub fn write_chunked(s: &mut UnixStream, data: &[u8], seed: u64) -> Result<(), String> {
    let mut rng = Pattern::new(seed ^ 0x5555);
    let mut off = 0;
    while off < data.len() {
        let n = match rng.next_u64() % 4 {
            0 => rng.range(1, 64),
            1 => rng.range(65, 4096),
            _ => rng.range(4097, 200 * 1024),
        }
        .min(data.len() - off);
        s.write_all(&data[off..off + n])
            .map_err(|e| format!("write failed at byte {off} of {}: {e}", data.len()))?;
        off += n;
    }
    Ok(())
}

/// Sends `data` on `s` from a writer thread while reading the echo back in this thread, and
/// checks it byte for byte.
pub fn echo_check(s: &UnixStream, data: &[u8]) -> Result<(), String> {
    let mut w = s.try_clone().map_err(|e| format!("try_clone: {e}"))?;
    let mut r = s.try_clone().map_err(|e| format!("try_clone: {e}"))?;
    thread::scope(|sc| {
        let writer = sc.spawn(move || write_chunked(&mut w, data, data.len() as u64));
        let read = read_compare(&mut r, data);
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err("writer panicked".into()));
        read.and(wrote)
    })
}

/// Reads until EOF (bounded by `limit` bytes), returning everything read.
pub fn read_to_eof(s: &mut UnixStream, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    return Err(format!("more than {limit} bytes before EOF"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed after {} bytes: {e}", out.len())),
        }
    }
}

/// What a single read on a client socket gave.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Some bytes.
    Data(Vec<u8>),
    /// Orderly EOF.
    Eof,
    /// A hard error such as a reset.
    Error(io::Error),
    /// Nothing within the timeout.
    TimedOut,
}

impl ReadOutcome {
    /// EOF or a hard error: the relay closed the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self, ReadOutcome::Eof | ReadOutcome::Error(_))
    }
}

/// One read with `timeout`.
pub fn read_outcome(s: &mut UnixStream, timeout: Duration) -> ReadOutcome {
    s.set_read_timeout(Some(timeout)).expect("set_read_timeout");
    let mut buf = vec![0u8; 64 * 1024];
    let out = loop {
        match s.read(&mut buf) {
            Ok(0) => break ReadOutcome::Eof,
            Ok(n) => break ReadOutcome::Data(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                break ReadOutcome::TimedOut
            }
            Err(e) => break ReadOutcome::Error(e),
        }
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    out
}

// ---------------------------------------------------------------------------------------------
// Server applications
// ---------------------------------------------------------------------------------------------

/// A connection handler of a server application.
pub type Handler = Arc<dyn Fn(UnixStream) + Send + Sync + 'static>;

/// A server application listening on an AF_UNIX path; one thread per connection.
/// Dropping it stops accepting and removes the socket file.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `path` (replacing a stale file) and serves each connection with `handler`.
    pub fn start(path: &Path, handler: Handler) -> Server {
        let _ = fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("binding the server app socket");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = thread::spawn(move || {
            // Bounded: ends when the Server is dropped, or after 10 minutes at most.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        accepted2.fetch_add(1, Ordering::SeqCst);
                        let h = handler.clone();
                        thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(SERVER_IO_TIMEOUT));
                            let _ = s.set_write_timeout(Some(SERVER_IO_TIMEOUT));
                            h(s)
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server {
            path: path.to_path_buf(),
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// How many connections the server application accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops listening (the listener is closed); removes the socket file if `unlink`.
    /// With `unlink == false` a stale socket file nobody listens on is left behind.
    pub fn shutdown(&mut self, unlink: bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if unlink {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown(true);
        }
    }
}

/// Echoes everything until EOF, then shuts down its write side.
pub fn echo_handler() -> Handler {
    Arc::new(|mut s: UnixStream| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    let _ = s.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
}

/// Reads everything until EOF, then replies `got N bytes\n` followed by the bytes read, then
/// closes. It only replies after EOF, so a reply proves it saw the client's half-close.
pub fn collect_then_reply_handler() -> Handler {
    Arc::new(|mut s: UnixStream| {
        let mut data = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        let head = format!("got {} bytes\n", data.len());
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&data);
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// The reply `collect_then_reply_handler` gives for `data`.
pub fn collect_reply(data: &[u8]) -> Vec<u8> {
    let mut v = format!("got {} bytes\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v
}

/// The greeting of `greet_then_collect_handler`.
pub const GREETING: &[u8] = b"hello from the server app\n";

/// Sends [`GREETING`], shuts down its write side, then reads until EOF and reports what it
/// received on `tx`.
pub fn greet_then_collect_handler(tx: mpsc::Sender<Vec<u8>>) -> Handler {
    let tx = Mutex::new(tx);
    Arc::new(move |mut s: UnixStream| {
        if s.write_all(GREETING).is_err() || s.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let mut data = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        let _ = tx.lock().unwrap().send(data);
    })
}

/// A download server: reads a 16-byte request (length u64 LE, seed u64 LE), sends that many
/// pattern bytes, shuts down its write side, then waits for the client's EOF.
pub fn download_handler() -> Handler {
    Arc::new(|mut s: UnixStream| {
        let mut req = [0u8; 16];
        if s.read_exact(&mut req).is_err() {
            return;
        }
        let len = u64::from_le_bytes(req[..8].try_into().unwrap()) as usize;
        let seed = u64::from_le_bytes(req[8..].try_into().unwrap());
        let mut pat = Pattern::new(seed);
        let mut chunk = vec![0u8; 128 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            pat.fill(&mut chunk[..n]);
            if s.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// The request for `download_handler`.
pub fn download_request(len: u64, seed: u64) -> [u8; 16] {
    let mut req = [0u8; 16];
    req[..8].copy_from_slice(&len.to_le_bytes());
    req[8..].copy_from_slice(&seed.to_le_bytes());
    req
}

// ---------------------------------------------------------------------------------------------
// Readiness probes
// ---------------------------------------------------------------------------------------------

/// A probe: one attempt at using the relay end to end on a fresh connection.
pub type Probe = fn(&mut UnixStream) -> io::Result<()>;

fn bad(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

/// A 1-byte echo.
pub fn echo_probe(s: &mut UnixStream) -> io::Result<()> {
    s.write_all(&[0x5a])?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    if b[0] != 0x5a {
        return Err(bad("wrong echo byte"));
    }
    Ok(())
}

/// One byte through `collect_then_reply_handler`.
pub fn collect_probe(s: &mut UnixStream) -> io::Result<()> {
    s.write_all(b"p")?;
    s.shutdown(Shutdown::Write)?;
    let mut v = Vec::new();
    s.read_to_end(&mut v)?;
    if v != collect_reply(b"p") {
        return Err(bad("wrong reply"));
    }
    Ok(())
}

/// Reads the greeting of `greet_then_collect_handler`.
pub fn greet_probe(s: &mut UnixStream) -> io::Result<()> {
    let mut v = vec![0u8; GREETING.len()];
    s.read_exact(&mut v)?;
    if v != GREETING {
        return Err(bad("wrong greeting"));
    }
    Ok(())
}

/// A 1-byte download.
pub fn download_probe(s: &mut UnixStream) -> io::Result<()> {
    s.write_all(&download_request(1, 1))?;
    let mut v = Vec::new();
    s.read_to_end(&mut v)?;
    if v != pattern(1, 1) {
        return Err(bad("wrong download"));
    }
    Ok(())
}

/// Retries `probe` on fresh connections to `host_sock` until one works, for up to
/// [`READY_TIMEOUT`]. Panics with the relays' stderr if it never works.
pub fn wait_for_relay(host_sock: &Path, probe: Probe, relays: &mut [&mut Relay]) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("never tried");
    while Instant::now() < deadline {
        match UnixStream::connect(host_sock) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                match probe(&mut s) {
                    Ok(()) => return,
                    Err(e) => last = format!("probe: {e}"),
                }
            }
            Err(e) => last = format!("connect {}: {e}", host_sock.display()),
        }
        thread::sleep(Duration::from_millis(100));
    }
    let reports: Vec<String> = relays.iter_mut().map(|r| r.report()).collect();
    panic!(
        "the relay never worked end to end within {READY_TIMEOUT:?} (last: {last})\n{}",
        reports.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Setup: server app + DPU + host
// ---------------------------------------------------------------------------------------------

/// The channel between the two relay processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chan {
    /// `tcp:127.0.0.1:PORT`, with a PSK on both sides.
    Tcp,
    /// `unix:DIR/chan.sock`, without a PSK unless the test asks for keys.
    Unix,
    /// `doca` over the fake DOCA Comm Channel libraries of this API generation (no PSK unless
    /// the test asks for keys).
    Doca(fake_doca::Api),
    /// `doca` over the fake DOCA Comch libraries (picked because `libdoca_comch` is there).
    Comch(fake_comch::ComchApi),
}

pub use fake_comch::ComchApi;
pub use fake_doca::Api;

/// The fake DOCA device and representor addresses.
pub const FAKE_PCI: &str = "03:00.0";
/// See [`FAKE_PCI`].
pub const FAKE_REP_PCI: &str = "b1:00.0";

/// Environment that makes the relay load the fake DOCA libraries and meet in `dir`.
pub fn fake_doca_env(api: Api, dir: &Path) -> Vec<(String, String)> {
    fake_env(fake_doca::build(api), dir)
}

/// Environment that makes the relay load the fake Comch libraries and meet in `dir`.
pub fn fake_comch_env(api: ComchApi, dir: &Path) -> Vec<(String, String)> {
    fake_env(fake_comch::build(api), dir)
}

fn fake_env(libs: PathBuf, dir: &Path) -> Vec<(String, String)> {
    let rendezvous = dir.join("doca");
    std::fs::create_dir_all(&rendezvous).expect("creating the DOCA rendezvous dir");
    vec![
        ("LD_LIBRARY_PATH".into(), libs.display().to_string()),
        ("FAKE_DOCA_DIR".into(), rendezvous.display().to_string()),
    ]
}

/// Builds a test environment: a server app, a DPU-side relay and a host-side relay.
pub struct Setup {
    chan: Chan,
    server: Option<Handler>,
    probe: Option<Probe>,
    start_dpu: bool,
    host_name: String,
    dpu_name: String,
    host_extra: Vec<String>,
    dpu_extra: Vec<String>,
    envs: Vec<(String, String)>,
    dpu_envs: Vec<(String, String)>,
    keys: Keys,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Default,
    Same,
    Different,
    DpuOnly,
    NoAuth,
}

impl Setup {
    /// An echo server app, both relays, and a wait until a 1-byte echo works.
    pub fn new(chan: Chan) -> Setup {
        Setup {
            chan,
            server: Some(echo_handler()),
            probe: Some(echo_probe),
            start_dpu: true,
            host_name: SERVICE.into(),
            dpu_name: SERVICE.into(),
            host_extra: Vec::new(),
            dpu_extra: Vec::new(),
            envs: Vec::new(),
            dpu_envs: Vec::new(),
            keys: Keys::Default,
        }
    }

    /// Serves the server app with `handler`, and waits for readiness with `probe`.
    pub fn server(mut self, handler: Handler, probe: Probe) -> Setup {
        self.server = Some(handler);
        self.probe = Some(probe);
        self
    }

    /// Does not wait for the relay to work end to end.
    pub fn no_wait(mut self) -> Setup {
        self.probe = None;
        self
    }

    /// Does not start the DPU side (the test starts it with [`Env::start_dpu`]).
    pub fn no_dpu(mut self) -> Setup {
        self.start_dpu = false;
        self.probe = None;
        self
    }

    /// Extra arguments for the host side.
    pub fn host_args(mut self, args: &[&str]) -> Setup {
        self.host_extra.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Extra arguments for the DPU side.
    pub fn dpu_args(mut self, args: &[&str]) -> Setup {
        self.dpu_extra.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// An extra environment variable for both relay processes.
    pub fn env(mut self, key: &str, value: &str) -> Setup {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// An extra environment variable for the DPU side only (it wins over [`Setup::env`]).
    pub fn dpu_env(mut self, key: &str, value: &str) -> Setup {
        self.dpu_envs.push((key.into(), value.into()));
        self
    }

    /// Service names (`-n`) of the host and DPU sides.
    pub fn names(mut self, host: &str, dpu: &str) -> Setup {
        self.host_name = host.into();
        self.dpu_name = dpu.into();
        self
    }

    /// Both sides get a PSK file, with different keys.
    pub fn different_keys(mut self) -> Setup {
        self.keys = Keys::Different;
        self
    }

    /// Only the DPU side gets a PSK file (on a unix channel, where the host may run without).
    pub fn dpu_key_only(mut self) -> Setup {
        self.keys = Keys::DpuOnly;
        self
    }

    /// Both sides get the same PSK file (also on a unix channel).
    pub fn same_keys(mut self) -> Setup {
        self.keys = Keys::Same;
        self
    }

    /// Both sides run with `--no-auth`.
    pub fn no_auth(mut self) -> Setup {
        self.keys = Keys::NoAuth;
        self
    }

    /// Starts everything (server app, DPU, host) and waits for readiness if a probe is set.
    pub fn start(self) -> Env {
        let dir = tempdir();
        let host_sock = dir.path().join("h.sock");
        let server_sock = dir.path().join("srv.sock");
        let channel = match self.chan {
            Chan::Tcp => format!("tcp:127.0.0.1:{}", free_tcp_port()),
            Chan::Unix => format!("unix:{}", dir.path().join("chan.sock").display()),
            Chan::Doca(_) | Chan::Comch(_) => "doca".into(),
        };
        let mut envs = self.envs;
        match self.chan {
            Chan::Doca(api) => envs.extend(fake_doca_env(api, dir.path())),
            Chan::Comch(api) => envs.extend(fake_comch_env(api, dir.path())),
            Chan::Tcp | Chan::Unix => {}
        }
        let keys = match (self.keys, self.chan) {
            (Keys::Default, Chan::Tcp) | (Keys::Same, _) => {
                let k = write_psk(dir.path(), "shared.key");
                Some((k.clone(), k))
            }
            (Keys::Different, _) => Some((
                write_psk(dir.path(), "host.key"),
                write_psk(dir.path(), "dpu.key"),
            )),
            (Keys::Default, Chan::Unix | Chan::Doca(_) | Chan::Comch(_))
            | (Keys::NoAuth, _)
            | (Keys::DpuOnly, _) => None,
        };
        let common = |role: &str, sock: &Path, name: &str| -> Vec<String> {
            vec![
                "--role".into(),
                role.into(),
                "--channel".into(),
                channel.clone(),
                "-s".into(),
                sock.display().to_string(),
                "-n".into(),
                name.into(),
                "--log-level".into(),
                "60".into(),
            ]
        };
        let mut host_args = common("host", &host_sock, &self.host_name);
        let mut dpu_args = common("dpu", &server_sock, &self.dpu_name);
        if self.keys == Keys::DpuOnly {
            let k = write_psk(dir.path(), "dpu.key");
            dpu_args.extend(["--psk-file".into(), k.display().to_string()]);
        }
        match (&keys, self.keys) {
            (Some((hk, dk)), _) => {
                host_args.extend(["--psk-file".into(), hk.display().to_string()]);
                dpu_args.extend(["--psk-file".into(), dk.display().to_string()]);
            }
            (None, Keys::NoAuth) => {
                host_args.push("--no-auth".into());
                dpu_args.push("--no-auth".into());
            }
            (None, _) => {}
        }
        if let Chan::Doca(_) | Chan::Comch(_) = self.chan {
            host_args.extend(["-p".into(), FAKE_PCI.into()]);
            dpu_args.extend([
                "-p".into(),
                FAKE_PCI.into(),
                "-r".into(),
                FAKE_REP_PCI.into(),
            ]);
        }
        host_args.extend(self.host_extra);
        dpu_args.extend(self.dpu_extra);

        let server = self.server.map(|h| Server::start(&server_sock, h));
        let mut env = Env {
            host: None,
            dpu: None,
            old_dpus: Vec::new(),
            server,
            host_sock,
            server_sock,
            channel,
            dpu_args,
            dpu_envs: envs.iter().cloned().chain(self.dpu_envs).collect(),
            envs,
            dpu_starts: 0,
            dir,
        };
        if self.start_dpu {
            env.start_dpu();
        }
        env.host = Some(Relay::spawn_env(
            env.dir.path(),
            "host",
            &host_args,
            &env.envs,
        ));
        env.wait_host_socket();
        if let Some(probe) = self.probe {
            env.wait_ready(probe);
        }
        env
    }
}

/// A running test environment. Dropping it kills both relays, stops the server app and
/// removes the temp dir.
pub struct Env {
    host: Option<Relay>,
    dpu: Option<Relay>,
    old_dpus: Vec<Relay>,
    /// The server application (None when the test runs without one).
    pub server: Option<Server>,
    /// The host socket clients connect to.
    pub host_sock: PathBuf,
    /// The server application's socket the DPU side connects to.
    pub server_sock: PathBuf,
    /// The `--channel` value both sides use.
    pub channel: String,
    dpu_args: Vec<String>,
    envs: Vec<(String, String)>,
    dpu_envs: Vec<(String, String)>,
    dpu_starts: usize,
    /// The temp dir; dropped last.
    pub dir: tempfile::TempDir,
}

impl Env {
    /// The extra environment both relays got (e.g. the fake DOCA libraries), for starting more.
    pub fn relay_env(&self) -> Vec<(String, String)> {
        self.envs.clone()
    }

    /// The host-side relay.
    pub fn host(&mut self) -> &mut Relay {
        self.host.as_mut().expect("host relay")
    }

    /// The host and DPU relays at once.
    pub fn relays(&mut self) -> (&mut Relay, &mut Relay) {
        (
            self.host.as_mut().expect("host relay"),
            self.dpu.as_mut().expect("DPU relay not started"),
        )
    }

    /// The current DPU-side relay.
    pub fn dpu(&mut self) -> &mut Relay {
        self.dpu.as_mut().expect("DPU relay not started")
    }

    /// Starts (or restarts) the DPU side with the same arguments.
    pub fn start_dpu(&mut self) {
        if let Some(old) = self.dpu.take() {
            self.old_dpus.push(old);
        }
        self.dpu_starts += 1;
        let label = format!("dpu{}", self.dpu_starts);
        self.dpu = Some(Relay::spawn_env(
            self.dir.path(),
            &label,
            &self.dpu_args,
            &self.dpu_envs,
        ));
    }

    /// SIGKILLs the DPU side.
    pub fn kill_dpu(&mut self) {
        self.dpu().kill();
    }

    /// Waits until the host socket accepts connections (the host side listens before the
    /// channel is up). The test connection is closed at once.
    pub fn wait_host_socket(&mut self) {
        let sock = self.host_sock.clone();
        if !wait_listening(&sock, Duration::from_secs(10)) {
            panic!(
                "host socket {} never appeared\n{}",
                sock.display(),
                self.logs()
            );
        }
    }

    /// Waits until `probe` works through the relay; panics with the logs if it never does.
    pub fn wait_ready(&mut self, probe: Probe) {
        let mut relays: Vec<&mut Relay> = self.host.iter_mut().chain(self.dpu.iter_mut()).collect();
        wait_for_relay(&self.host_sock, probe, &mut relays);
    }

    /// A new client connection to the host socket, with timeouts.
    pub fn client(&mut self) -> UnixStream {
        match try_client(&self.host_sock) {
            Ok(s) => s,
            Err(e) => {
                let sock = self.host_sock.display().to_string();
                panic!("connecting to {sock}: {e}\n{}", self.logs())
            }
        }
    }

    /// The stderr tails of all relay processes, for failure messages.
    pub fn logs(&mut self) -> String {
        let mut out = Vec::new();
        for r in self
            .host
            .iter_mut()
            .chain(self.old_dpus.iter_mut())
            .chain(self.dpu.iter_mut())
        {
            out.push(r.report());
        }
        out.join("\n")
    }
}

/// Over a DOCA channel a second host connecting to the same DPU service is refused while the
/// first keeps working (one host at a time; an unauthenticated newcomer must not end a session).
pub fn check_second_host_is_refused(chan: Chan) {
    let mut env = Setup::new(chan).start();
    let first = env.client();
    let second_sock = env.dir.path().join("second.sock");
    let envs = env.relay_env();
    let args = [
        "--role",
        "host",
        "-s",
        second_sock.to_str().unwrap(),
        "-n",
        SERVICE,
        "-p",
        FAKE_PCI,
        "-l",
        "60",
    ];
    let mut second = Relay::spawn_env(env.dir.path(), "second", &args, &envs);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !env
        .dpu()
        .stderr()
        .contains("refusing a second host connection")
    {
        assert!(
            Instant::now() < deadline,
            "the DPU never refused the second host\n{}",
            env.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let res = echo_check(&first, &pattern(9, 1 << 20));
    assert!(
        res.is_ok(),
        "the first host's client broke: {res:?}\n{}",
        env.logs()
    );
    assert!(
        second.is_running(),
        "the second host exited:\n{}",
        second.stderr()
    );
}

/// Under backpressure from the channel (a tiny send queue or task pool): 8 MiB on one stream and
/// 1 MiB on each of 8 concurrent ones come back byte-exact.
pub fn check_no_loss_under_backpressure(env: &mut Env) {
    const MIB: usize = 1 << 20;
    let s = env.client();
    let res = echo_check(&s, &pattern(4096, 8 * MIB));
    assert!(
        res.is_ok(),
        "8 MiB under backpressure: {res:?}\n{}",
        env.logs()
    );
    let host_sock = env.host_sock.clone();
    let results: Vec<Result<(), String>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let host_sock = host_sock.clone();
                sc.spawn(move || {
                    let s = try_client(&host_sock).map_err(|e| e.to_string())?;
                    echo_check(&s, &pattern(100 + i, MIB))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "client {i}: {r:?}\n{}", env.logs());
    }
}

/// Runs one relay in a fake DOCA environment (`base_env` builds it in the temp dir, `envs`
/// adds to it) and expects a runtime failure: exit 1, one error line containing `want`, and no
/// host socket created.
pub fn expect_start_failure(
    base_env: impl FnOnce(&Path) -> Vec<(String, String)>,
    role_args: &[&str],
    envs: &[(&str, &str)],
    want: &str,
) {
    let dir = tempdir();
    let sock = dir.path().join("h.sock");
    let mut env = base_env(dir.path());
    env.extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut args = vec!["-s", sock.to_str().unwrap(), "-n", "svc"];
    args.extend_from_slice(role_args);
    let mut relay = Relay::spawn_env(dir.path(), "relay", &args, &env);
    let status = relay.wait_exit(Duration::from_secs(20));
    let err = relay.stderr();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "expected exit 1; stderr:\n{err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("doca_socket_relay: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert!(
        line.contains(want),
        "error line {line:?} should contain {want:?}"
    );
    assert!(!sock.exists(), "the host socket was created");
}

/// The DPU's device allows bigger messages (`env_key` = 8192) than the host's: frames are
/// packed to what both accept, and a 4 MiB echo comes back exact.
pub fn check_different_message_sizes(chan: Chan, env_key: &str) {
    let mut env = Setup::new(chan).dpu_env(env_key, "8192").start();
    let s = env.client();
    let res = echo_check(&s, &pattern(8192, 4 << 20));
    assert!(
        res.is_ok(),
        "echo across sizes 8192/4080: {res:?}\n{}",
        env.logs()
    );
}
