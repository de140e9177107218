//! SIGHUP reloads the JSON file: the log level and the client limit change while a client
//! streams, without dropping it; settings that need a restart are named; a broken file keeps
//! the running configuration; a relay started without `--json` says there is nothing to read.

#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Writes the host side's JSON file.
fn host_json(path: &Path, sock: &Path, chan: &str, extra: &str) {
    let text = format!(
        r#"{{ "doca_general_flags": {{ "log-level": LEVEL }},
  "doca_program_flags": {{ "socket": "{}", "cc-name": "{SERVICE}", "role": "host",
    "channel": "{chan}" EXTRA }} }}"#,
        sock.display()
    );
    let (level, extra) = extra.split_once('|').unwrap_or(("50", extra));
    std::fs::write(path, text.replace("LEVEL", level).replace(" EXTRA", extra)).unwrap();
}

fn wait_log(relay: &mut Relay, what: &str) -> bool {
    wait_until(Duration::from_secs(10), || relay.stderr().contains(what))
}

#[test]
fn sighup_applies_live_settings_without_dropping_a_stream() {
    let dir = tempdir();
    let d = dir.path();
    let app = d.join("app.sock");
    let _server = Server::start(&app, echo_handler());
    let chan = format!("unix:{}", d.join("chan.sock").display());
    let mut dpu = Relay::spawn(
        d,
        "dpu",
        &[
            "--role",
            "dpu",
            "--channel",
            &chan,
            "-s",
            app.to_str().unwrap(),
            "-n",
            SERVICE,
        ],
    );
    let sock = d.join("h.sock");
    let json = d.join("host.json");
    host_json(&json, &sock, &chan, "");
    let mut host = Relay::spawn(d, "host", &["--json", json.to_str().unwrap()]);
    assert!(
        wait_listening(&sock, Duration::from_secs(10)),
        "{}",
        host.report()
    );

    // A client that streams across the reloads.
    let first = UnixStream::connect(&sock).unwrap();
    echo_check(&first, &pattern(1, 100_000)).unwrap_or_else(|e| panic!("{e}\n{}", host.report()));

    // Debug level and a limit of one client: the next client is refused, the first goes on.
    host_json(&json, &sock, &chan, r#"60|, "max-clients": 1"#);
    host.signal("HUP");
    assert!(
        wait_log(
            &mut host,
            "changed: log-level 50 -> 60, max-clients 512 -> 1"
        ),
        "{}",
        host.report()
    );
    let mut second = UnixStream::connect(&sock).unwrap();
    let out = read_outcome(&mut second, Duration::from_secs(5));
    assert!(
        out.is_closed(),
        "a client over the reloaded limit: {out:?}\n{}",
        host.report()
    );
    echo_check(&first, &pattern(2, 100_000)).unwrap_or_else(|e| panic!("{e}\n{}", host.report()));

    // A setting that needs a restart is named and kept; the live one still changes.
    let moved = d.join("moved.sock");
    host_json(&json, &moved, &chan, r#"60|, "max-clients": 2"#);
    host.signal("HUP");
    assert!(
        wait_log(&mut host, "restart to change: socket"),
        "{}",
        host.report()
    );
    assert!(
        wait_log(&mut host, "max-clients 1 -> 2"),
        "{}",
        host.report()
    );
    assert!(!moved.exists() && sock.exists());
    let third = UnixStream::connect(&sock).unwrap();
    echo_check(&third, &pattern(3, 1000)).unwrap_or_else(|e| panic!("{e}\n{}", host.report()));
    let debug = wait_log(&mut host, "[DBG]");
    assert!(
        debug,
        "no debug line at the reloaded level\n{}",
        host.report()
    );

    // A broken file changes nothing.
    std::fs::write(&json, b"{ not json").unwrap();
    host.signal("HUP");
    assert!(
        wait_log(&mut host, "reload failed, the running configuration stays"),
        "{}",
        host.report()
    );
    echo_check(&first, &pattern(4, 100_000)).unwrap_or_else(|e| panic!("{e}\n{}", host.report()));
    assert!(host.is_running() && dpu.is_running());
}

#[test]
fn sighup_without_a_json_file_changes_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let sock = d.join("h.sock");
    let chan = format!("unix:{}", d.join("chan.sock").display());
    let mut host = Relay::spawn(
        d,
        "host",
        &[
            "--role",
            "host",
            "--channel",
            &chan,
            "-s",
            sock.to_str().unwrap(),
            "-n",
            SERVICE,
        ],
    );
    assert!(
        wait_listening(&sock, Duration::from_secs(10)),
        "{}",
        host.report()
    );
    host.signal("HUP");
    assert!(
        wait_log(&mut host, "started without --json"),
        "{}",
        host.report()
    );
    assert!(host.is_running(), "{}", host.report());
}
