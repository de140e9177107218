//! The processes under test for one model case: a DPU-side relay, a host-side relay, a proxy
//! between them that can cut the channel on demand, and the server application's listening
//! socket, which the driver (not a thread) accepts on.

use crate::common::*;
use crate::proxy::{Fault, Proxy};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Log lines that mean the relay broke a promise whatever the program did.
const BAD_LOG_LINES: &[&str] = &["peer broke flow control", "panicked", "already open"];

/// Two relays around a cuttable proxy, plus the server application's socket.
pub struct Rig {
    proxy: Proxy,
    host: Relay,
    dpu: Relay,
    old_dpus: Vec<Relay>,
    dpu_args: Vec<String>,
    dpu_chan: String,
    /// The host socket clients connect to.
    pub host_sock: PathBuf,
    /// The server application's socket (non-blocking); the DPU side connects here.
    pub listener: UnixListener,
    dir: tempfile::TempDir,
}

impl Rig {
    /// Starts everything over a `chan` channel (tcp or unix, with a PSK on both sides). Does
    /// not wait for the channel: the driver's first stream does.
    pub fn start(chan: Chan) -> Rig {
        let dir = tempdir();
        let d = dir.path();
        let (dpu_chan, host_chan) = match chan {
            Chan::Tcp => (
                format!("tcp:127.0.0.1:{}", free_tcp_port()),
                format!("tcp:127.0.0.1:{}", free_tcp_port()),
            ),
            _ => (
                format!("unix:{}", d.join("dpu.chan").display()),
                format!("unix:{}", d.join("host.chan").display()),
            ),
        };
        let key = write_psk(d, "k.key").display().to_string();
        let host_sock = d.join("h.sock");
        let srv = d.join("srv.sock");
        let listener = UnixListener::bind(&srv).expect("binding the server app socket");
        listener.set_nonblocking(true).unwrap();
        let args = |role: &str, chan: &str, sock: &Path| -> Vec<String> {
            let sock = sock.display().to_string();
            let a = [
                "--role",
                role,
                "--channel",
                chan,
                "-s",
                &sock,
                "-n",
                SERVICE,
                "--psk-file",
                &key,
            ];
            a.iter().map(|s| s.to_string()).collect()
        };
        let dpu_args = args("dpu", &dpu_chan, &srv);
        let dpu = Relay::spawn(d, "dpu1", &dpu_args);
        let mut rig = Rig {
            proxy: Proxy::start(chan, &host_chan, &dpu_chan, Fault::Pass, 1),
            host: Relay::spawn(d, "host", &args("host", &host_chan, &host_sock)),
            dpu,
            old_dpus: Vec::new(),
            dpu_args,
            dpu_chan,
            host_sock,
            listener,
            dir,
        };
        rig.wait_dpu_listening();
        rig
    }

    /// Waits until the DPU side listens on its channel address, so that the host's first
    /// attempts through the proxy do not run into its growing back-off.
    fn wait_dpu_listening(&mut self) {
        let chan = self.dpu_chan.clone();
        let listening = wait_until(READY_TIMEOUT, || match chan.strip_prefix("tcp:") {
            Some(a) => TcpStream::connect(a).is_ok(),
            None => Path::new(chan.trim_start_matches("unix:")).exists(),
        });
        assert!(listening, "the DPU side never listened\n{}", self.logs());
    }

    /// Cuts the channel in the proxy; returns how many channel connections were cut.
    pub fn cut(&self) -> usize {
        self.proxy.cut_all()
    }

    /// SIGKILLs the DPU side and starts a new one with the same arguments.
    pub fn restart_dpu(&mut self) {
        self.dpu.kill();
        let label = format!("dpu{}", self.old_dpus.len() + 2);
        let new = Relay::spawn(self.dir.path(), &label, &self.dpu_args);
        self.old_dpus.push(std::mem::replace(&mut self.dpu, new));
        self.wait_dpu_listening();
    }

    /// Both relays still run and no log says that a promise was broken.
    pub fn check_health(&mut self) -> Result<(), String> {
        if !self.host.is_running() || !self.dpu.is_running() {
            return Err("a relay exited".into());
        }
        let all = self.old_dpus.iter().chain([&self.host, &self.dpu]);
        for r in all {
            let err = r.stderr();
            if let Some(line) = err
                .lines()
                .find(|l| BAD_LOG_LINES.iter().any(|bad| l.contains(bad)))
            {
                return Err(format!("{} logged: {line}", r.label()));
            }
        }
        Ok(())
    }

    /// The stderr tails of all relay processes, for failure messages.
    pub fn logs(&mut self) -> String {
        let mut out = vec![self.host.report()];
        out.extend(self.old_dpus.iter_mut().map(Relay::report));
        out.push(self.dpu.report());
        out.join("\n")
    }
}

/// How long the driver waits for the channel to come back after a loss.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
