//! What a peer without the key gets from the real binaries: a DPU side that says nothing to
//! garbage and no label to a valid HELLO, a host that does not take a clear ERROR for a
//! refusal, a genuine refusal whose details never travel in clear, and a handshake flood from
//! one address slowed down while the real host still connects. docs/SECURITY.md cites these.

// These tests drive the Linux binary over loopback and AF_UNIX sockets; the Windows build runs
// the unit tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use doca_socket_relay::wire::{Frame, Hello, NONCE_LEN, VERSION};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A host side with a key on a tcp channel `chan`, serving `sock`.
fn keyed_host(dir: &Path, label: &str, chan: &str, key: &str, sock: &str) -> Relay {
    let args = [
        "--role",
        "host",
        "--channel",
        chan,
        "--psk-file",
        key,
        "-s",
        sock,
        "-n",
        SERVICE,
    ];
    Relay::spawn(dir, label, &args)
}

/// A HELLO of this version for `service`, as a host with a key and encryption sends it.
fn hello_frame(service: &str) -> Vec<u8> {
    let hello = Hello {
        version: VERSION,
        security: 2,
        max_msg: 1 << 20,
        window: 4 << 20,
        nonce: [3; NONCE_LEN],
        service: service.into(),
    };
    let mut out = Vec::new();
    Frame::Hello(&hello.encode()).encode(&mut out);
    out
}

/// Reads until the peer closes or `limit` passes; the bytes, and whether it closed (EOF or a
/// reset) rather than stayed open.
fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// Reads one whole frame: its type and payload.
fn read_frame(c: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    c.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as usize;
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).ok()?;
    Some((head[0], payload))
}

fn this_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `GET / HTTP/1.0`, random bytes or a DATA header announcing a MiB, sent to the DPU side's
/// port: nothing comes back, the connection is closed well before the handshake timeout (10 s;
/// a DATA header used to be waited on), and the relay goes on serving.
#[test]
fn garbage_gets_no_answer_and_is_closed_at_once() {
    let mut env = Setup::new(Chan::Tcp).start();
    let addr = env.channel.trim_start_matches("tcp:").to_string();
    let mut random = pattern(17, 64);
    random[0] = 0xd7;
    let data_header = [0x11, 0, 0, 0, 1, 0x00, 0x0f, 0xff, 0xf7];
    let payloads: [(&str, &[u8]); 3] = [
        ("GET / HTTP/1.0", b"GET / HTTP/1.0\r\n\r\n"),
        ("random bytes", &random),
        ("a DATA header", &data_header),
    ];
    for (what, payload) in payloads {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(payload).unwrap();
        let (got, closed) = read_until_closed(&mut c, Duration::from_secs(5));
        assert!(got.is_empty(), "{what}: the DPU side answered {got:?}");
        assert!(closed, "{what}: still open after 5 s\n{}", env.logs());
    }
    let res = echo_check(&env.client(), &pattern(6, 100_000));
    assert!(res.is_ok(), "{res:?}\n{}", env.logs());
}

/// A stranger with a valid HELLO (any service name) gets the DPU side's HELLO, which holds no
/// instance and no label, and after a wrong AUTH only ERROR and the close: nothing names the
/// DPU's machine or process.
#[test]
fn a_valid_hello_learns_no_label() {
    let mut env = Setup::new(Chan::Tcp).start();
    let addr = env.channel.trim_start_matches("tcp:").to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&hello_frame("guess")).unwrap();
    let (ty, payload) = read_frame(&mut c).expect("the DPU side's HELLO");
    assert_eq!(ty, 0x01);
    // A HELLO of this version decodes only if nothing follows the service name.
    let hello = Hello::decode(&payload).expect("a HELLO of this version, exactly");
    assert_eq!(hello.version, VERSION);
    let mut auth = Vec::new();
    Frame::Auth(&pattern(4, 48)).encode(&mut auth);
    c.write_all(&auth).unwrap();
    let (rest, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(closed, "still open after a wrong AUTH");
    assert_eq!(rest.first(), Some(&0x03), "ERROR expected: {rest:?}");
    let all = [&payload[..], &rest[..]].concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("transcript or key mismatch"), "{text:?}");
    let name = this_host_name();
    assert!(
        !text.contains(" pid ") && (name.is_empty() || !text.contains(&name)),
        "a label went to a stranger: {text:?}"
    );
    assert!(env.dpu().is_running(), "{}", env.logs());
}

/// A fake DPU side that answers the host's HELLO (and, every other time, its AUTH) with a
/// clear ERROR "another host is connected", as someone on the path could: the host logs it as
/// an unauthenticated claim and retries with the ordinary back-off (0.1 s doubling), not the
/// refused one (1 s doubling to 30 s), so four attempts come within 2.5 s.
#[test]
fn a_forged_clear_refusal_gets_the_short_back_off() {
    let dir = tempdir();
    let key = write_psk(dir.path(), "k");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let fake = {
        let (attempts, stop) = (attempts.clone(), stop.clone());
        thread::spawn(move || fake_dpu(listener, &attempts, &stop))
    };
    let sock = dir.path().join("h.sock");
    let mut host = keyed_host(
        dir.path(),
        "host",
        &format!("tcp:{addr}"),
        key.to_str().unwrap(),
        sock.to_str().unwrap(),
    );
    let four = wait_until(Duration::from_secs(20), || {
        attempts.lock().unwrap().len() >= 4
    });
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(addr);
    fake.join().unwrap();
    assert!(four, "fewer than four attempts\n{}", host.report());
    let at = attempts.lock().unwrap().clone();
    let took = at[3] - at[0];
    assert!(
        took < Duration::from_millis(2500),
        "four attempts took {took:?}: the refused back-off\n{}",
        host.report()
    );
    let log = host.stderr();
    assert!(
        log.contains("unauthenticated") && log.contains("another host is connected"),
        "{log}"
    );
    assert!(!log.contains("refused: the peer refused us"), "{log}");
}

/// The fake DPU side of [`a_forged_clear_refusal_gets_the_short_back_off`].
fn fake_dpu(listener: TcpListener, attempts: &Mutex<Vec<Instant>>, stop: &AtomicBool) {
    let forged = b"another host is connected (from 10.9.8.7:4242, elsewhere pid 1, for 99 s); this one is refused until it goes away";
    let mut error = Vec::new();
    Frame::Error(forged).encode(&mut error);
    for n in 0.. {
        let Ok((mut c, _)) = listener.accept() else {
            return;
        };
        if stop.load(Ordering::SeqCst) || n > 50 {
            return;
        }
        attempts.lock().unwrap().push(Instant::now());
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if read_frame(&mut c).is_none() {
            continue;
        }
        if n % 2 == 1 {
            // In place of the verdict: after a real-looking HELLO and the host's AUTH.
            let _ = c.write_all(&hello_frame(SERVICE));
            if read_frame(&mut c).is_none() {
                continue;
            }
        }
        let _ = c.write_all(&error);
        let _ = c.shutdown(Shutdown::Both);
    }
}

/// Forwards one connection at a time from `listener` to `to`, keeping every byte that comes
/// back from `to`.
fn recording_forwarder(listener: TcpListener, to: String, back: Arc<Mutex<Vec<u8>>>) {
    for _ in 0..20 {
        let Ok((mut from, _)) = listener.accept() else {
            return;
        };
        let Ok(mut up) = TcpStream::connect(&to) else {
            return;
        };
        let (mut from2, mut up2) = (from.try_clone().unwrap(), up.try_clone().unwrap());
        let t = thread::spawn(move || {
            let _ = io::copy(&mut from2, &mut up2);
            let _ = up2.shutdown(Shutdown::Write);
        });
        let mut buf = [0u8; 4096];
        while let Ok(n) = up.read(&mut buf) {
            if n == 0 || from.write_all(&buf[..n]).is_err() {
                break;
            }
            back.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = t.join();
    }
}

/// A second live host is refused with the reason (where the first one is), authenticated:
/// it logs a refusal and backs off slowly, and what the DPU side sent it holds neither the
/// first host's address nor its label in clear.
#[test]
fn a_genuine_refusal_is_authenticated_and_not_in_clear() {
    let mut env = Setup::new(Chan::Tcp).start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let via = listener.local_addr().unwrap();
    let back = Arc::new(Mutex::new(Vec::new()));
    {
        let (to, back) = (
            env.channel.trim_start_matches("tcp:").to_string(),
            back.clone(),
        );
        thread::spawn(move || recording_forwarder(listener, to, back));
    }
    let key = env.dir.path().join("shared.key");
    let sock = env.dir.path().join("second.sock");
    let mut second = keyed_host(
        env.dir.path(),
        "second",
        &format!("tcp:{via}"),
        key.to_str().unwrap(),
        sock.to_str().unwrap(),
    );
    let refused = wait_until(Duration::from_secs(20), || {
        second
            .stderr()
            .contains("refused: the peer refused us: another host is connected (from 127.0.0.1:")
    });
    assert!(refused, "{}\n{}", second.report(), env.logs());
    let wire = back.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&wire);
    let name = this_host_name();
    assert!(!wire.is_empty());
    assert!(
        !text.contains("another host") && !text.contains("127.0.0.1") && !text.contains(" pid "),
        "the refusal travelled in clear: {text:?}"
    );
    assert!(name.is_empty() || !text.contains(&name), "{text:?}");
    assert!(second.is_running(), "{}", second.report());
}

/// Connects from `from` (another loopback address) to `to`.
fn connect_from(from: &str, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    rustix::net::bind(&fd, &local)?;
    rustix::net::connect(&fd, &to)?;
    // SAFETY: a connected TCP socket we own, handed over whole.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

/// Four strangers, each from its own loopback address, send valid HELLOs one connection after
/// the other as fast as the DPU side answers. Each address gets at most its burst and its
/// rate (10, then 20 a second) of answers, together more than the shared limit (50 a second);
/// meanwhile the host restarts and, coming from the last host's address, still connects.
#[test]
fn a_handshake_flood_is_throttled_while_the_host_connects() {
    let mut env = Setup::new(Chan::Tcp).start();
    let to: SocketAddr = env.channel.trim_start_matches("tcp:").parse().unwrap();
    let flooding = Arc::new(AtomicBool::new(true));
    let (tried, answered) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let started = Instant::now();
    let strangers: Vec<_> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .into_iter()
        .map(|from| {
            let (flooding, tried, answered) = (flooding.clone(), tried.clone(), answered.clone());
            thread::spawn(move || {
                let hello = hello_frame("guess");
                let deadline = Instant::now() + Duration::from_secs(60);
                while flooding.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let Ok(mut c) = connect_from(from, to) else {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    tried.fetch_add(1, Ordering::SeqCst);
                    c.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let _ = c.write_all(&hello);
                    if read_frame(&mut c).is_some_and(|(ty, _)| ty == 0x01) {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Until the limit has held someone back: on a slow machine (qemu-user) four sequential
    // strangers take longer to exceed a burst of 10.
    thread::sleep(Duration::from_millis(1500));
    wait_until(Duration::from_secs(30), || {
        env.dpu().stderr().contains("over the handshake rate")
    });
    env.host().kill();
    let key = env.dir.path().join("shared.key");
    let sock = env.host_sock.clone();
    let mut again = keyed_host(
        env.dir.path(),
        "again",
        &env.channel,
        key.to_str().unwrap(),
        sock.to_str().unwrap(),
    );
    wait_for_relay(&sock, echo_probe, &mut [&mut again]);
    flooding.store(false, Ordering::SeqCst);
    for s in strangers {
        s.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (tried, answered) = (
        tried.load(Ordering::SeqCst),
        answered.load(Ordering::SeqCst),
    );
    // What four buckets can give at most, however fast or slow this machine is.
    let most = 4.0 * (10.0 + 20.0 * secs);
    assert!(
        f64::from(answered) <= most,
        "{answered} of {tried} answered in {secs:.1} s (at most {most:.0})"
    );
    assert!(
        tried > answered,
        "the flood was never held back ({tried} tried)"
    );
    let dpu = env.dpu().stderr();
    assert!(dpu.contains("over the handshake rate"), "{dpu}");
    assert!(again.is_running(), "{}", again.report());
}
