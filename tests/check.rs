//! `--check` and the configuration errors an operator meets first: what would run, exit 0 or
//! 2, nothing bound or created; every missing flag at once; one prefix for JSON errors.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let (st, out, err) = run_relay(dir, args, Duration::from_secs(10));
    let code = st.and_then(|s| s.code());
    (
        code.unwrap_or_else(|| panic!("{args:?}: no exit code\n{err}")),
        out,
        err,
    )
}

/// `--check` for a host side on `sock` and `chan`, service `svc`.
fn check_args<'a>(sock: &'a Path, chan: &'a str) -> Vec<&'a str> {
    let sock = sock.to_str().unwrap();
    vec!["--check", "-s", sock, "-n", "svc", "--channel", chan]
}

#[test]
fn check_prints_what_would_run_and_binds_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let sock = d.join("h.sock");
    let key = write_psk(d, "k");
    let chan = "tcp:127.0.0.1:9";
    let mut args = check_args(&sock, chan);
    args.extend(["--psk-file", key.to_str().unwrap()]);
    let (code, out, err) = run(d, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("role host, service \"svc\", channel tcp:127.0.0.1:9"),
        "{out}"
    );
    assert!(
        out.contains(&format!("clients connect to {}", sock.display())),
        "{out}"
    );
    assert!(out.contains("48-byte pre-shared key"), "{out}");
    assert!(out.trim_end().ends_with("configuration OK"), "{out}");
    assert!(!sock.exists(), "--check created the socket");

    // The same from a JSON file, with --check or with "check": true inside.
    let json = d.join("f.json");
    let text = format!(
        r#"{{"doca_program_flags": {{"socket": "{}", "cc-name": "svc", "channel": "{chan}",
            "psk-file": "{}" CHECK}}}}"#,
        sock.display(),
        key.display()
    );
    std::fs::write(&json, text.replace(" CHECK", "")).unwrap();
    let (code, out, _) = run(d, &["--check", "--json", json.to_str().unwrap()]);
    assert_eq!((code, out.contains("configuration OK")), (0, true), "{out}");
    std::fs::write(&json, text.replace(" CHECK", r#", "check": true"#)).unwrap();
    let (code, out, _) = run(d, &["--json", json.to_str().unwrap()]);
    assert_eq!((code, out.contains("configuration OK")), (0, true), "{out}");
    assert!(!sock.exists());
}

#[test]
fn check_fails_with_2_on_paths_that_would_not_work() {
    let dir = tempdir();
    let d = dir.path();
    let missing = d.join("no/such/dir/h.sock");
    let chan = format!("unix:{}", d.join("c.sock").display());
    let check = |sock: &Path| {
        let (code, _, err) = run(d, &check_args(sock, &chan));
        assert_eq!(code, 2, "{err}");
        err
    };
    let err = check(&missing);
    assert!(
        err.contains("the directory") && err.contains("no/such/dir") && err.contains("is missing"),
        "{err}"
    );
    let file = d.join("plain");
    std::fs::write(&file, b"data").unwrap();
    let err = check(&file);
    assert!(err.contains("exists and is not a socket"), "{err}");
    // A bad flag is still a plain configuration error.
    let (code, _, err) = run(d, &["--check", "-n", "svc", "--channel", &chan]);
    assert_eq!(code, 2);
    assert!(err.contains("--socket: is mandatory"), "{err}");
}

#[test]
fn every_missing_flag_at_once_and_values_before_doca() {
    let dir = tempdir();
    let d = dir.path();
    let (code, _, err) = run(d, &["--role", "dpu"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--socket, --cc-name, --pci-addr, --rep-pci: are mandatory"),
        "{err}"
    );
    let (code, _, err) = run(d, &["--max-clients", "0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--max-clients: must be from 1 to 65535, got 0"),
        "{err}"
    );
}

#[test]
fn json_errors_share_one_prefix() {
    let dir = tempdir();
    let d = dir.path();
    let json = d.join("f.json");
    let path = json.display().to_string();
    // A problem found while reading the file, and one found by validation.
    std::fs::write(&json, r#"{"doca_program_flags": {"max-clients": "many"}}"#).unwrap();
    let (_, _, parse) = run(d, &["--json", &path]);
    std::fs::write(
        &json,
        r#"{"doca_program_flags": {"cc-name": "x", "max-clients": 0}}"#,
    )
    .unwrap();
    let (_, _, validate) = run(d, &["--json", &path]);
    for err in [&parse, &validate] {
        let want =
            format!("doca_socket_relay: error: --json {path}: doca_program_flags.max-clients: ");
        assert!(err.starts_with(&want), "{err}");
    }
}

/// What `--check` finds, the start meets too: a busy tcp port and a live socket stop both
/// (`--check` with 2; the start with 1, since the holder may go away and a restart then
/// succeeds), a missing directory and a file in the socket's place stop both with 2 (only the
/// operator can fix those, so systemd must not restart in a loop).
#[test]
fn check_and_start_agree() {
    let dir = tempdir();
    let d = dir.path();
    let key = write_psk(d, "k");
    let key = key.to_str().unwrap();
    let app = d.join("app.sock");
    let app = app.to_str().unwrap();
    let start = |args: &[&str]| {
        let mut all = args.to_vec();
        all.retain(|a| *a != "--check");
        run(d, &all)
    };

    // A tcp port another process listens on (the DPU side listens on the channel address).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let chan = format!("tcp:{}", holder.local_addr().unwrap());
    let args = [
        "--check",
        "--role",
        "dpu",
        "-s",
        app,
        "-n",
        "svc",
        "--channel",
        &chan,
        "--psk-file",
        key,
    ];
    let (code, _, err) = run(d, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is in use by another process"), "{err}");
    let (code, _, err) = start(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    drop(holder);

    // A host socket a live process listens on.
    let live = d.join("live.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let chan = format!("unix:{}", d.join("c.sock").display());
    let args = check_args(&live, &chan);
    let (code, _, err) = run(d, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another process is listening on it"), "{err}");
    let (code, _, err) = start(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another process is listening on it"), "{err}");

    // A stale socket is only a note, and the start replaces it.
    let stale = d.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, _, err) = run(d, &check_args(&stale, &chan));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("is a stale socket; it is replaced at start"),
        "{err}"
    );

    // What a restart cannot fix: exit 2 from both.
    let missing = d.join("no/such/dir/h.sock");
    let args = check_args(&missing, &chan);
    assert_eq!(run(d, &args).0, 2);
    let (code, _, err) = start(&args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the directory") && err.contains("is missing; create it"),
        "{err}"
    );
    let file = d.join("plain");
    std::fs::write(&file, b"data").unwrap();
    let args = check_args(&file, &chan);
    assert_eq!(run(d, &args).0, 2);
    let (code, _, err) = start(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}
