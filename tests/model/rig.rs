//! The processes under test for one model case: a DPU-side relay, a host-side relay, a proxy
//! between them that can cut the channel on demand, and the server application's listening
//! socket, which the driver (not a thread) accepts on.

use crate::common::*;
use crate::proxy::{Fault, Proxy, Route};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
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
    route: Route,
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
        let route = Route::new(chan, d);
        let host_sock = d.join("h.sock");
        let srv = d.join("srv.sock");
        let listener = UnixListener::bind(&srv).expect("binding the server app socket");
        listener.set_nonblocking(true).unwrap();
        let dpu_args = route.args("dpu", &srv);
        let dpu = Relay::spawn(d, "dpu1", &dpu_args);
        let mut rig = Rig {
            proxy: Proxy::start(chan, &route.host_chan, &route.dpu_chan, Fault::Pass, 1),
            host: Relay::spawn(d, "host", &route.args("host", &host_sock)),
            dpu,
            old_dpus: Vec::new(),
            dpu_args,
            route,
            host_sock,
            listener,
            dir,
        };
        rig.wait_dpu_listening();
        rig
    }

    fn wait_dpu_listening(&mut self) {
        let listening = self.route.wait_dpu_listening(READY_TIMEOUT);
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
