//! Key rotation without downtime (`psk-file-next` and reloads): while 8 clients stream
//! checksummed data, both sides move from the old key to the new one, each with a reload, and
//! every byte arrives; at every step of the procedure a fresh handshake succeeds (no refused
//! handshake), and a host holding neither key is refused as before.

#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

struct Pair {
    dir: tempfile::TempDir,
    chan: String,
    app: PathBuf,
    sock: PathBuf,
    _server: Server,
    dpu: Relay,
    host: Relay,
    old: PathBuf,
    new: PathBuf,
}

/// A side's JSON file with `keys` (psk-file, then psk-file-next if any). The channel is
/// encrypted (Noise) unless the test's name of it says `clear` (key proofs, frames in clear).
fn write_json(path: &Path, role: &str, sock: &Path, chan: &str, keys: &[&Path]) {
    let clear = if chan.ends_with("#clear") {
        r#", "no-encrypt": true"#
    } else {
        ""
    };
    let chan = chan.trim_end_matches("#clear");
    let next = keys.get(1).map_or(String::new(), |k| {
        format!(r#", "psk-file-next": "{}""#, k.display())
    });
    std::fs::write(
        path,
        format!(
            r#"{{ "doca_general_flags": {{ "log-level": 60 }},
  "doca_program_flags": {{ "role": "{role}", "socket": "{}", "cc-name": "{SERVICE}",
    "channel": "{chan}", "psk-file": "{}"{next}{clear} }} }}"#,
            sock.display(),
            keys[0].display()
        ),
    )
    .unwrap();
}

impl Pair {
    fn start(clear: bool) -> Pair {
        let dir = tempdir();
        let d = dir.path();
        let app = d.join("app.sock");
        let server = Server::start(&app, echo_handler());
        let mut chan = format!("tcp:127.0.0.1:{}", free_tcp_port());
        if clear {
            chan.push_str("#clear");
        }
        let (old, new) = (write_psk(d, "old.key"), write_psk(d, "new.key"));
        let sock = d.join("h.sock");
        write_json(&d.join("dpu.json"), "dpu", &app, &chan, &[&old]);
        write_json(&d.join("host.json"), "host", &sock, &chan, &[&old]);
        let dpu = Relay::spawn(d, "dpu", &["--json", d.join("dpu.json").to_str().unwrap()]);
        let host = Relay::spawn(
            d,
            "host",
            &["--json", d.join("host.json").to_str().unwrap()],
        );
        let mut pair = Pair {
            chan,
            app,
            sock,
            _server: server,
            dpu,
            host,
            old,
            new,
            dir,
        };
        pair.wait_up("start");
        pair
    }

    fn json(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}.json"))
    }

    /// Rewrites `role`'s file with `keys` and reloads it.
    fn reload(&mut self, role: &str, keys: &[&Path]) {
        let sock = if role == "dpu" { &self.app } else { &self.sock };
        write_json(&self.json(role), role, sock, &self.chan, keys);
        let relay = if role == "dpu" {
            &mut self.dpu
        } else {
            &mut self.host
        };
        let before = relay.stderr().matches("reloaded ").count();
        relay.signal("HUP");
        let done = wait_until(Duration::from_secs(10), || {
            relay.stderr().matches("reloaded ").count() > before
        });
        assert!(done, "{role} did not reload\n{}", relay.report());
    }

    /// Waits until a client is relayed end to end.
    fn wait_up(&mut self, when: &str) {
        let sock = self.sock.clone();
        let ok = wait_until(Duration::from_secs(15), || {
            UnixStream::connect(&sock).is_ok_and(|s| echo_check(&s, b"ping").is_ok())
        });
        assert!(
            ok,
            "{when}: no relayed client\n{}\n{}",
            self.host.report(),
            self.dpu.report()
        );
    }

    /// Restarts `role` from its file: the next handshake uses what the file holds now on that
    /// side, and what the other side holds live.
    fn restart(&mut self, role: &str) {
        let d = self.dir.path().to_path_buf();
        let json = self.json(role);
        let relay = if role == "dpu" {
            &mut self.dpu
        } else {
            &mut self.host
        };
        relay.signal("TERM");
        relay.wait_exit(Duration::from_secs(20));
        *relay = Relay::spawn(&d, role, &["--json", json.to_str().unwrap()]);
        self.wait_up(&format!("after restarting {role}"));
    }

    fn no_refusal(&mut self) {
        for relay in [&mut self.host, &mut self.dpu] {
            let log = relay.stderr();
            assert!(
                !log.contains("mismatch") && !log.contains("refused"),
                "a handshake was refused during the rotation\n{}",
                relay.report()
            );
        }
    }
}

/// 8 clients echo checksummed data (each its own pattern) until `stop`; returns each one's
/// outcome.
fn streamers(sock: &Path, stop: Arc<AtomicBool>) -> Vec<thread::JoinHandle<Result<u64, String>>> {
    (0..8u64)
        .map(|i| {
            let sock = sock.to_path_buf();
            let stop = stop.clone();
            thread::spawn(move || {
                let s = UnixStream::connect(&sock).map_err(|e| e.to_string())?;
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) && round < 10_000 {
                    echo_check(&s, &pattern(i * 1_000_000 + round, 64 * 1024))?;
                    round += 1;
                }
                Ok(round)
            })
        })
        .collect()
}

#[test]
fn keys_rotate_on_both_sides_while_clients_stream() {
    let mut p = Pair::start(false);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = streamers(&p.sock.clone(), stop.clone());
    thread::sleep(Duration::from_millis(300));
    let (old, new) = (p.old.clone(), p.new.clone());
    // The documented procedure: DPU first, then the host, then the old key retired.
    p.reload("dpu", &[&old, &new]);
    p.reload("host", &[&new, &old]);
    p.reload("dpu", &[&new]);
    p.reload("host", &[&new]);
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for (i, c) in clients.into_iter().enumerate() {
        let rounds = c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}\n{}\n{}", p.host.report(), p.dpu.report()));
        assert!(rounds > 0, "client {i} never echoed");
    }
    assert!(!p.host.stderr().contains("reset"), "{}", p.host.report());
    p.no_refusal();
}

#[test]
fn every_step_of_the_rotation_admits_a_fresh_handshake() {
    rotation_steps(false);
}

#[test]
fn every_step_of_the_rotation_admits_a_fresh_handshake_with_key_proofs() {
    rotation_steps(true);
}

fn rotation_steps(clear: bool) {
    let mut p = Pair::start(clear);
    let (old, new) = (p.old.clone(), p.new.clone());
    // 1. The DPU side accepts both; a host with the old key connects.
    p.reload("dpu", &[&old, &new]);
    p.restart("host");
    // 2. The host moves to the new key (reloaded, not restarted); a DPU side restarted from
    //    its file (old key, next the new one) admits it.
    p.reload("host", &[&new, &old]);
    p.restart("dpu");
    // 3. The DPU side retires the old key; a restarted host with the new key connects.
    p.reload("dpu", &[&new]);
    p.restart("host");
    p.no_refusal();
    // A host with neither key is refused, as without a rotation.
    let third = write_psk(p.dir.path(), "third.key");
    write_json(
        &p.json("host"),
        "host",
        &p.sock.clone(),
        &p.chan.clone(),
        &[&third],
    );
    p.host.signal("TERM");
    p.host.wait_exit(Duration::from_secs(20));
    let d = p.dir.path().to_path_buf();
    p.host = Relay::spawn(&d, "host", &["--json", p.json("host").to_str().unwrap()]);
    let refused = wait_until(Duration::from_secs(10), || {
        p.host.stderr().contains("transcript or key mismatch")
    });
    assert!(
        refused,
        "a host with neither key was not refused\n{}",
        p.host.report()
    );
}
