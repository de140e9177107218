//! The encrypted tcp channel end to end: a man in the middle between the two relays that
//! flips a byte, drops, replays or reorders sealed records; what the wire shows; mismatched
//! settings on the two sides; a peer of the previous protocol version; both ciphers.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use doca_socket_relay::wire::{
    frame_len, Frame, Hello, HEADER_LEN, INSTANCE_LEN, NONCE_LEN, VERSION,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The frame type of a sealed record (protocol versions 3 and 4).
const T_SEALED: u8 = 0x05;

/// What the man in the middle does to the host's sealed records.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Passes everything through.
    None,
    /// Flips one ciphertext byte of the first record.
    Flip,
    /// Drops the first record and passes the next.
    Drop,
    /// Passes the first two records, then the first again.
    Replay,
    /// Passes the second record before the first.
    Reorder,
}

/// Listens on a free loopback port and relays the first connection to `target`, applying
/// `fault` from the host to the DPU side. Everything sent toward the DPU side is also kept
/// in the returned buffer.
fn man_in_the_middle(fault: Fault, target: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let wire = Arc::new(Mutex::new(Vec::new()));
    let seen = wire.clone();
    thread::spawn(move || {
        let Ok((mut host, _)) = listener.accept() else {
            return;
        };
        drop(listener); // a reconnecting host finds nobody: one session is what is tested
        let Ok(mut dpu) = TcpStream::connect(&target) else {
            return;
        };
        let (mut host_r, mut dpu_w) = (host.try_clone().unwrap(), dpu.try_clone().unwrap());
        thread::spawn(move || {
            let _ = std::io::copy(&mut dpu, &mut host);
        });
        let mut forward = |bytes: &[u8]| {
            seen.lock().unwrap().extend_from_slice(bytes);
            dpu_w.write_all(bytes).is_ok()
        };
        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 256 * 1024]);
        let (mut records, mut held): (usize, Option<Vec<u8>>) = (0, None);
        let mut first: Option<Vec<u8>> = None;
        loop {
            let n = match host_r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= HEADER_LEN && buf.len() >= frame_len(&buf) {
                let mut frame: Vec<u8> = buf.drain(..frame_len(&buf)).collect();
                if frame[0] != T_SEALED {
                    if !forward(&frame) {
                        return;
                    }
                    continue;
                }
                let index = records;
                records += 1;
                let ok = match (fault, index) {
                    (Fault::Flip, 0) => {
                        let mid = HEADER_LEN + (frame.len() - HEADER_LEN) / 2;
                        frame[mid] ^= 0x01;
                        forward(&frame)
                    }
                    (Fault::Drop, 0) => true,
                    (Fault::Replay, 0) => {
                        first = Some(frame.clone());
                        forward(&frame)
                    }
                    (Fault::Replay, 1) => {
                        forward(&frame) && forward(first.as_deref().expect("first record"))
                    }
                    (Fault::Reorder, 0) => {
                        held = Some(frame);
                        true
                    }
                    (Fault::Reorder, 1) => {
                        forward(&frame) && forward(&held.take().expect("held record"))
                    }
                    _ => forward(&frame),
                };
                if !ok {
                    return;
                }
            }
        }
    });
    (addr, wire)
}

/// A server app, a DPU side on a free port, and a host side that reaches it through a man in
/// the middle.
struct Tampered {
    dir: tempfile::TempDir,
    host_sock: PathBuf,
    host: Relay,
    dpu: Relay,
    server: Server,
    received: mpsc::Receiver<Vec<u8>>,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl Tampered {
    fn start(fault: Fault, extra: &[&str]) -> Tampered {
        let dir = tempdir();
        let key = write_psk(dir.path(), "shared.key");
        let (tx, received) = mpsc::channel();
        let server_sock = dir.path().join("srv.sock");
        let server = Server::start(&server_sock, greet_then_collect_handler(tx));
        let dpu_addr = format!("127.0.0.1:{}", free_tcp_port());
        let (proxy_addr, wire) = man_in_the_middle(fault, dpu_addr.clone());
        let relay = |label: &str, role: &str, addr: &str, sock: &PathBuf| {
            let mut args: Vec<String> = [
                "--role",
                role,
                "--channel",
                &format!("tcp:{addr}"),
                "-s",
                sock.to_str().unwrap(),
                "-n",
                SERVICE,
                "--psk-file",
                key.to_str().unwrap(),
                "-l",
                "60",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            Relay::spawn(dir.path(), label, &args)
        };
        let mut dpu = relay("dpu", "dpu", &dpu_addr, &server_sock);
        assert!(
            wait_until(Duration::from_secs(15), || TcpStream::connect(&dpu_addr)
                .is_ok()),
            "the DPU side never listened\n{}",
            dpu.report()
        );
        let host_sock = dir.path().join("h.sock");
        let mut host = relay("host", "host", &proxy_addr, &host_sock);
        assert!(
            wait_until(Duration::from_secs(15), || host
                .stderr()
                .contains("channel up")),
            "the channel never came up through the proxy\n{}\n{}",
            host.report(),
            dpu.report()
        );
        Tampered {
            dir,
            host_sock,
            host,
            dpu,
            server,
            received,
            wire,
        }
    }

    fn logs(&mut self) -> String {
        format!("{}\n{}", self.host.report(), self.dpu.report())
    }
}

/// Sends two chunks, 300 ms apart so that they travel in separate records.
fn send_two_chunks(t: &mut Tampered) -> (UnixStream, Vec<u8>) {
    let mut c = try_client(&t.host_sock).unwrap();
    let sent = pattern(77, 3000);
    c.write_all(&sent[..1500]).unwrap();
    thread::sleep(Duration::from_millis(300));
    let _ = c.write_all(&sent[1500..]);
    (c, sent)
}

fn tampering_drops_the_channel(fault: Fault) {
    let mut t = Tampered::start(fault, &[]);
    let (_client, sent) = send_two_chunks(&mut t);
    let refused = wait_until(Duration::from_secs(15), || {
        t.dpu.stderr().contains("a record failed authentication")
            && t.host.stderr().contains("channel lost")
    });
    assert!(
        refused,
        "{fault:?}: no record refused, or no channel drop\n{}",
        t.logs()
    );
    // The DPU side closes the server connection when the channel drops; what reached the
    // server app is all it will ever get from this client.
    let got = if t.server.accepted() == 0 {
        Vec::new()
    } else {
        t.received
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{fault:?}: the server connection never ended"))
    };
    let limit = if fault == Fault::Replay {
        sent.len()
    } else {
        0
    };
    assert!(
        got.len() <= limit && sent.starts_with(&got),
        "{fault:?}: the server app got {} bytes ({} allowed, a prefix of what was sent)\n{}",
        got.len(),
        limit,
        t.logs()
    );
}

#[test]
fn a_flipped_byte_drops_the_channel() {
    tampering_drops_the_channel(Fault::Flip);
}

#[test]
fn a_dropped_record_drops_the_channel() {
    tampering_drops_the_channel(Fault::Drop);
}

#[test]
fn a_replayed_record_drops_the_channel() {
    tampering_drops_the_channel(Fault::Replay);
}

#[test]
fn reordered_records_drop_the_channel() {
    tampering_drops_the_channel(Fault::Reorder);
}

/// Through an honest man in the middle the relay works, and the client's bytes are not on
/// the wire; with `--no-encrypt` on both sides they are (so the check can see them).
#[test]
fn client_bytes_are_not_on_the_wire() {
    for (extra, visible) in [(&[][..], false), (&["--no-encrypt"][..], true)] {
        let mut t = Tampered::start(Fault::None, extra);
        let (c, sent) = send_two_chunks(&mut t);
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let got = t
            .received
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("{extra:?}: nothing reached the server\n{}", t.logs()));
        assert_eq!(got, sent, "{extra:?}: the server app got other bytes");
        let wire = t.wire.lock().unwrap().clone();
        // Ten 32-byte pieces of the client's bytes: in clear, a DATA header may fall inside
        // one of them (how the relay's reads split the upload depends on timing), never inside
        // all; encrypted, none may appear.
        let on_wire = (0..10)
            .map(|i| &sent[100 + i * 280..132 + i * 280])
            .filter(|piece| wire.windows(32).any(|w| w == *piece))
            .count();
        assert_eq!(
            on_wire > 0,
            visible,
            "{extra:?}: {on_wire} of 10 pieces of the client's bytes on the wire"
        );
        drop(t.dir);
    }
}

fn wait_both(host: &mut Relay, dpu: &mut Relay, needle: &str) {
    let ok = wait_until(Duration::from_secs(15), || {
        host.stderr().contains(needle) && dpu.stderr().contains(needle)
    });
    assert!(
        ok,
        "both sides should log {needle:?}\n{}\n{}",
        host.report(),
        dpu.report()
    );
}

#[test]
fn encryption_on_one_side_only_is_refused_on_both() {
    let mut env = Setup::new(Chan::Tcp)
        .host_args(&["--no-encrypt"])
        .no_wait()
        .start();
    let mut c = env.client();
    let _ = c.write_all(b"let me in");
    let (host, dpu) = env.relays();
    wait_both(host, dpu, "encryption mismatch");
    assert_eq!(env.server.as_ref().unwrap().accepted(), 0);
}

#[test]
fn cipher_mismatch_is_refused_on_both() {
    let mut env = Setup::new(Chan::Tcp)
        .host_args(&["--cipher", "chacha-poly"])
        .no_wait()
        .start();
    let (host, dpu) = env.relays();
    wait_both(host, dpu, "cipher mismatch");
    assert_eq!(env.server.as_ref().unwrap().accepted(), 0);
}

/// A host of the previous protocol version (4: its identity in HELLO, after the service name)
/// gets ERROR naming both versions and nothing else (no HELLO of the DPU side), and the DPU
/// side logs it.
#[test]
fn a_previous_version_peer_is_refused() {
    let dir = tempdir();
    let key = write_psk(dir.path(), "k");
    let addr = format!("127.0.0.1:{}", free_tcp_port());
    let mut dpu = Relay::spawn(
        dir.path(),
        "dpu",
        &[
            "--role",
            "dpu",
            "--channel",
            &format!("tcp:{addr}"),
            "-s",
            dir.path().join("srv.sock").to_str().unwrap(),
            "-n",
            SERVICE,
            "--psk-file",
            key.to_str().unwrap(),
        ],
    );
    let hello = Hello {
        version: VERSION - 1,
        security: 1,
        max_msg: 256 * 1024,
        window: 1024 * 1024,
        nonce: [1; NONCE_LEN],
        service: SERVICE.into(),
    };
    let mut payload = hello.encode();
    payload.extend_from_slice(&[2; INSTANCE_LEN]);
    payload.push(8);
    payload.extend_from_slice(b"old host");
    let mut frame = Vec::new();
    Frame::Hello(&payload).encode(&mut frame);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut c = loop {
        match TcpStream::connect(&addr) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no DPU side: {e}\n{}", dpu.report()),
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&frame).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    let want = format!(
        "protocol version mismatch: ours is {VERSION}, the peer's {}",
        VERSION - 1
    );
    assert!(text.contains(&want), "the old host was told: {text:?}");
    assert_eq!(
        got[0], 0x03,
        "the old host got more than an ERROR: {text:?}"
    );
    assert!(!text.contains("DSRL"), "the old host got a HELLO: {text:?}");
    assert!(
        wait_until(Duration::from_secs(10), || dpu.stderr().contains(&want)),
        "{}",
        dpu.report()
    );
}

/// Both ciphers carry 8 MiB byte-exact, on tcp by default and on a unix channel with
/// `--encrypt`.
#[test]
fn both_ciphers_carry_bytes_exactly() {
    for (chan, args) in [
        (Chan::Tcp, &["--cipher", "chacha-poly"][..]),
        (Chan::Unix, &["--encrypt", "--cipher", "aes-gcm"][..]),
    ] {
        let mut env = Setup::new(chan)
            .same_keys()
            .host_args(args)
            .dpu_args(args)
            .start();
        let c = env.client();
        let data = pattern(12, 8 * 1024 * 1024);
        if let Err(e) = echo_check(&c, &data) {
            panic!("{args:?}: {e}\n{}", env.logs());
        }
        let host = env.host();
        assert!(!host.stderr().contains("channel lost"), "{}", host.report());
    }
}

/// `--encrypt` over the DOCA channels (fake libraries): records are packed into the channel's
/// small messages and still carry every byte.
#[test]
fn doca_channels_carry_bytes_encrypted() {
    for chan in [Chan::Doca(Api::V22), Chan::Comch(ComchApi::V29)] {
        let mut env = Setup::new(chan)
            .same_keys()
            .host_args(&["--encrypt"])
            .dpu_args(&["--encrypt"])
            .start();
        let c = env.client();
        if let Err(e) = echo_check(&c, &pattern(21, 1024 * 1024)) {
            panic!("{chan:?}: {e}\n{}", env.logs());
        }
    }
}
