//! `--metrics`: the counters match what was relayed, `promtool` accepts the page, a real
//! Prometheus scrapes it, and hostile clients of the endpoint neither lock out a scrape nor
//! disturb the relay.

#![cfg(unix)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One HTTP exchange with the endpoint: the whole answer (the server closes the connection).
fn http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to --metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(port: u16, path: &str) -> String {
    http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// The value of the sample `name` (with its labels, as printed) on a metrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Sends `n` bytes through the relay and reads the echo back.
fn echo(sock: &Path, n: usize) {
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let mut reader = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || c.write_all(&sent).unwrap());
    let mut back = vec![0u8; n];
    reader.read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "the echo differs");
}

const OUT: &str = "doca_socket_relay_bytes_total{direction=\"out\"}";
const CLOSED: &str = "doca_socket_relay_streams_ended_total{outcome=\"closed\"}";

#[test]
fn counters_match_the_bytes_relayed_and_promtool_accepts_the_page() {
    let port = free_tcp_port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let env = Setup::new(Chan::Tcp)
        .host_args(&["--metrics", &addr])
        .start();
    // The readiness probes' streams may still be ending: start from a quiet relay.
    let quiet = wait_until(Duration::from_secs(10), || {
        sample(&get(port, "/metrics"), "doca_socket_relay_streams_open") == Some(0.0)
    });
    assert!(quiet, "streams still open before the test");
    let first = get(port, "/metrics");
    let before = sample(&first, OUT).expect("the out counter");
    let closed = sample(&first, CLOSED).expect("the closed counter");
    echo(&env.host_sock, 300_000);
    // The stream's end is counted once the relay has seen both directions close.
    let ended = wait_until(Duration::from_secs(10), || {
        sample(&get(port, "/metrics"), CLOSED) == Some(closed + 1.0)
    });
    let page = get(port, "/metrics");
    assert!(ended, "one more stream should have ended closed:\n{page}");
    let frames = "doca_socket_relay_data_frames_total{direction=\"out\"}";
    assert!(sample(&page, frames).unwrap() >= 1.0, "{page}");
    let sessions = sample(&page, "doca_socket_relay_channel_sessions_total");
    assert_eq!(sessions, Some(1.0), "{page}");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("Content-Type: text/plain; version=0.0.4"),
        "{page}"
    );
    assert_eq!(sample(&page, OUT), Some(before + 300_000.0), "{page}");
    let info = "doca_socket_relay_info{version=\"";
    assert!(
        page.contains(info) && page.contains("role=\"host\",channel=\"tcp\""),
        "{page}"
    );
    assert_eq!(
        sample(&page, "doca_socket_relay_channel_up"),
        Some(1.0),
        "{page}"
    );
    assert!(sample(&page, "process_open_fds").unwrap() > 3.0, "{page}");
    assert!(
        sample(&page, "process_resident_memory_bytes").unwrap() > 1e5,
        "{page}"
    );

    let body = page.split_once("\r\n\r\n").unwrap().1;
    if which("promtool") {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool not installed (Debian package prometheus): page format not checked");
    }

    // The per-stream view: one open stream while a client is connected.
    let mut held = UnixStream::connect(&env.host_sock).unwrap();
    held.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    held.read_exact(&mut one).unwrap();
    let streams = get(port, "/streams");
    let json: serde_json::Value =
        serde_json::from_str(streams.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["streams_open"], 1, "{json}");
    assert_eq!(json["streams"][0]["bytes_sent"], 1, "{json}");
}

fn which(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Debian's Prometheus, with a temporary configuration and data directory, scrapes the host
/// side once a second; its query API must come to report the bytes the test relayed.
#[test]
fn prometheus_scrapes_the_relay() {
    if !which("prometheus") {
        eprintln!("prometheus not installed (Debian package prometheus): not run");
        return;
    }
    let port = free_tcp_port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let env = Setup::new(Chan::Tcp)
        .host_args(&["--metrics", &addr])
        .start();
    let before = sample(&get(port, "/metrics"), OUT).unwrap();
    echo(&env.host_sock, 123_456);
    let want = before + 123_456.0;

    let dir = env.dir.path();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: relay\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let web = free_tcp_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let query = "/api/v1/query?query=doca_socket_relay_bytes_total%7Bdirection%3D%22out%22%7D";
    let mut last = String::new();
    let found = wait_until(Duration::from_secs(60), || {
        if TcpStream::connect(("127.0.0.1", web)).is_err() {
            return false;
        }
        last = get(web, query);
        // The value comes back as a string: "value":[<time>,"123457"].
        last.contains(&format!(",\"{want}\"]"))
    });
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(
        found,
        "Prometheus never reported {want}; last answer:\n{last}\nits log:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

#[test]
fn hostile_clients_do_not_lock_out_a_scrape_or_disturb_the_relay() {
    let port = free_tcp_port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let mut env = Setup::new(Chan::Tcp)
        .host_args(&["--metrics", &addr])
        .start();
    // More idle connections than the endpoint serves at once, each sending half a request.
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metr").unwrap();
            s
        })
        .collect();
    let page = get(port, "/metrics");
    assert!(
        page.starts_with("HTTP/1.1 200 OK"),
        "a scrape was locked out: {page:?}"
    );
    drop(idle);

    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(http(port, big.as_bytes()).starts_with("HTTP/1.1 431 "));
    let post = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET"),
        "{post}"
    );
    assert!(get(port, "/").starts_with("HTTP/1.1 404 "));
    assert!(http(port, b"\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // A flood of connections that close at once.
    for _ in 0..500 {
        drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    assert!(get(port, "/metrics").starts_with("HTTP/1.1 200 OK"));
    echo(&env.host_sock, 100_000);
    assert!(env.host().is_running());
}

/// Over a DOCA channel (the fake Comch library) the page also counts the messages handed to
/// DOCA and taken from it.
#[test]
fn doca_messages_are_counted() {
    let port = free_tcp_port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let env = Setup::new(Chan::Comch(ComchApi::V29))
        .host_args(&["--metrics", &addr])
        .start();
    echo(&env.host_sock, 200_000);
    let page = get(port, "/metrics");
    let out = "doca_socket_relay_doca_messages_total{direction=\"out\"}";
    let inn = "doca_socket_relay_doca_messages_total{direction=\"in\"}";
    // 200 KB each way in messages of a few KiB: dozens of messages at least.
    assert!(sample(&page, out).unwrap_or(0.0) >= 40.0, "{page}");
    assert!(sample(&page, inn).unwrap_or(0.0) >= 40.0, "{page}");
    assert!(page.contains("channel=\"doca\""), "{page}");
}
