//! The command line and the JSON flag file as a user meets them: exit codes, the one-line
//! error naming the flag or key, and nothing created on a configuration error.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::config_errors::*;
use common::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir { dir: tempdir() }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn sock(&self) -> PathBuf {
        self.path().join("h.sock")
    }
    fn s(&self, name: &str) -> String {
        self.path().join(name).display().to_string()
    }
}

#[test]
fn help_exits_0_with_usage_on_stdout() {
    let d = Dir::new();
    for flag in ["-h", "--help"] {
        let (code, out, err) = run(d.path(), &strings(&[flag]));
        assert_eq!(code, 0, "{flag}: {err}");
        assert!(out.contains("Usage"), "{flag}: {out}");
        for f in [
            "--socket",
            "--cc-name",
            "--channel",
            "--max-clients",
            "--psk-file",
        ] {
            assert!(out.contains(f), "{flag}: usage lacks {f}:\n{out}");
        }
    }
    // Help wins over otherwise bad flags.
    let (code, out, _) = run(d.path(), &strings(&["--max-clients", "0", "-h"]));
    assert_eq!(code, 0);
    assert!(out.contains("Usage"));
}

#[test]
fn version_exits_0() {
    let d = Dir::new();
    for flag in ["-v", "--version"] {
        let (code, out, err) = run(d.path(), &strings(&[flag]));
        assert_eq!(code, 0, "{flag}: {err}");
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some(format!("doca_socket_relay {}", env!("CARGO_PKG_VERSION")).as_str()),
            "{flag}"
        );
        // The second line says which DOCA channel library this machine has (none here).
        let doca = lines.next().unwrap_or_default();
        assert!(doca.contains("DOCA"), "{flag}: no DOCA line in {out:?}");
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let d = Dir::new();
    let sock = d.sock();
    let s = sock.display().to_string();
    let psk = write_psk(d.path(), "good.key").display().to_string();
    let short_key = d.s("short.key");
    fs::write(&short_key, [7u8; 31]).unwrap();
    fs::set_permissions(&short_key, fs::Permissions::from_mode(0o600)).unwrap();
    let missing_key = d.s("missing.key");
    let chan = format!("unix:{}", d.s("c.sock"));
    let tcp = "tcp:127.0.0.1:9".to_string();
    let long_sock = format!("{}/{}", d.path().display(), "x".repeat(110));
    let long_chan = format!("unix:{}/{}", d.path().display(), "y".repeat(110));
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = strings(&["--role", "host", "-s", &s, "-n", "svc", "--channel", &chan]);
        v.extend(strings(extra));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(&["--max-clients", "0"]),
            "--max-clients: must be from 1 to 65535, got 0",
        ),
        (base(&["--max-clients", "65536"]), "--max-clients:"),
        (base(&["--max-clients", "lots"]), "--max-clients:"),
        (base(&["--max-clients", "-1"]), "--max-clients"),
        (
            strings(&["--role", "host", "-s", &s, "-n", "svc", "--channel", &tcp]),
            "--psk-file: is required on a tcp channel",
        ),
        (
            strings(&["--role", "dpu", "-s", &s, "-n", "svc", "--channel", &tcp]),
            "--psk-file: is required on a tcp channel",
        ),
        (base(&["--psk-file", &short_key]), "--psk-file:"),
        (base(&["--psk-file", &missing_key]), "--psk-file:"),
        (base(&["--psk-file", &psk, "--no-auth"]), "--no-auth"),
        (
            base(&["-j", &d.s("x.json")]),
            "--json: must be the only flag",
        ),
        (
            strings(&["-n", "svc", "--channel", &chan]),
            "--socket: is mandatory",
        ),
        (
            strings(&["-s", &s, "--channel", &chan]),
            "--cc-name: is mandatory",
        ),
        (base(&["--frobnicate"]), "--frobnicate: unknown argument"),
        (base(&["-s", &s]), "--socket: given more than once"),
        (base(&["--socket", &s]), "--socket: given more than once"),
        (
            base(&["--max-clients", "3", "--max-clients", "4"]),
            "--max-clients: given more than once",
        ),
        (
            strings(&["-s", &long_sock, "-n", "svc", "--channel", &chan]),
            "--socket:",
        ),
        (
            strings(&["-s", &s, "-n", "svc", "--channel", &long_chan]),
            "--channel:",
        ),
        (base(&["-p", "3:0.0"]), "--pci-addr:"),
        (base(&["--pci-addr", "03:20.0"]), "--pci-addr:"),
        (base(&["-r", "b1:00"]), "--rep-pci:"),
        (
            strings(&[
                "-s",
                &s,
                "-n",
                "svc",
                "--role",
                "middle",
                "--channel",
                &chan,
            ]),
            "--role:",
        ),
        (
            strings(&["-s", &s, "-n", "svc", "--channel", "bogus"]),
            "--channel:",
        ),
        (
            strings(&[
                "-s",
                &s,
                "-n",
                "svc",
                "--channel",
                "tcp:127.0.0.1:0",
                "--no-auth",
            ]),
            "--channel:",
        ),
        (
            strings(&[
                "-s",
                &s,
                "-n",
                "svc",
                "--channel",
                "tcp:127.0.0.1",
                "--no-auth",
            ]),
            "--channel:",
        ),
        (
            strings(&["-s", &s, "-n", "svc", "--channel", "doca"]),
            "--pci-addr: is mandatory",
        ),
        (
            strings(&["-s", &s, "-n", "svc", "--role", "dpu", "-p", "03:00.0"]),
            "--rep-pci: is mandatory",
        ),
        (base(&["-l", "55"]), "--log-level:"),
        (base(&["--log-level", "loud"]), "--log-level:"),
        (base(&["--sdk-log-level", "99"]), "--sdk-log-level:"),
        (base(&["--socket-mode", "999"]), "--socket-mode:"),
        (base(&["--socket-mode", "rw"]), "--socket-mode:"),
        (base(&["-l"]), "--log-level: needs a value"),
        (
            strings(&["-s", &s, "-n", "", "--channel", &chan]),
            "--cc-name:",
        ),
        (
            strings(&["-s", &s, "-n", &"n".repeat(121), "--channel", &chan]),
            "--cc-name:",
        ),
    ];
    for (args, want) in &cases {
        expect_config_error(d.path(), args, want, &sock);
    }
}

/// Writes `text` as `dir/flags.json`.
fn json_file(d: &Dir, text: &str) -> String {
    let p = d.s("flags.json");
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_json_exits_2_naming_the_key() {
    let d = Dir::new();
    let sock = d.sock();
    let s = sock.display().to_string();
    let chan = format!("unix:{}", d.s("c.sock"));
    let program = |extra: &str| -> String {
        format!(
            r#"{{"doca_program_flags": {{"socket": "{s}", "cc-name": "svc", "role": "host",
                "channel": "{chan}"{extra}}}}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            program(r#", "max-clients": "many""#),
            "doca_program_flags.max-clients",
        ),
        (
            program(r#", "max-clients": 0"#),
            "doca_program_flags.max-clients",
        ),
        (program(r#", "sockett": "/x""#), "sockett"),
        (
            program(r#", "no-auth": "yes""#),
            "doca_program_flags.no-auth",
        ),
        (
            program(r#", "socket-mode": 660"#),
            "doca_program_flags.socket-mode",
        ),
        (
            program(r#", "pci-addr": "3:0.0""#),
            "doca_program_flags.pci-addr",
        ),
        (
            format!(
                r#"{{"doca_program_flags": {{"socket": "{s}", "cc-name": "svc",
                    "role": "middle", "channel": "{chan}"}}}}"#
            ),
            "doca_program_flags.role",
        ),
        (program(r#", "socket": "/tmp/other.sock""#), "socket"),
        (
            format!(
                r#"{{"doca_general_flags": {{"log-level": 55}}, {}"#,
                &program("")[1..]
            ),
            "doca_general_flags.log-level",
        ),
        (
            format!(
                r#"{{"doca_general_flags": {{"log-level": "loud"}}, {}"#,
                &program("")[1..]
            ),
            "doca_general_flags.log-level",
        ),
        (
            format!(r#"{{"doca_extra_flags": {{}}, {}"#, &program("")[1..]),
            "doca_extra_flags",
        ),
        (
            format!(r#"{{"doca_program_flags": {{"cc-name": "svc", "channel": "{chan}"}}}}"#),
            "doca_program_flags.socket",
        ),
        (
            format!(
                r#"{{"doca_program_flags": {{"socket": "{s}", "cc-name": "svc",
                    "channel": "tcp:127.0.0.1:9"}}}}"#
            ),
            "doca_program_flags.psk-file",
        ),
        (program(r#", "#), "flags.json"),
        (r#"{"doca_program_flags": "#.to_string(), "flags.json"),
    ];
    for (text, want) in &cases {
        let path = json_file(&d, text);
        // The message names the file, and the key.
        expect_config_error(d.path(), &strings(&["-j", &path]), want, &sock);
        expect_config_error(d.path(), &strings(&["--json", &path]), &path, &sock);
    }
    // A duplicate key is an error naming it.
    let path = json_file(&d, &program(r#", "cc-name": "again""#));
    let (code, _, err) = run(d.path(), &strings(&["-j", &path]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cc-name"), "duplicate key not named:\n{err}");
    assert!(!sock.exists());
    // A missing file.
    let missing = d.s("missing.json");
    expect_config_error(d.path(), &strings(&["-j", &missing]), "--json", &sock);
    // --json with any other flag.
    let path = json_file(&d, &program(""));
    expect_config_error(
        d.path(),
        &strings(&["-j", &path, "-l", "60"]),
        "--json: must be the only flag",
        &sock,
    );
    expect_config_error(
        d.path(),
        &strings(&["-s", &s, "--json", &path]),
        "--json: must be the only flag",
        &sock,
    );
}

/// A valid JSON file with comments runs the host side: the socket appears with the mode from
/// the file; SIGTERM ends it with exit 0 and removes the socket.
#[test]
fn valid_json_runs_host_and_sigterm_cleans_up() {
    let d = Dir::new();
    let sock = d.sock();
    let text = format!(
        r#"// a DOCA-style flag file
{{
    "doca_general_flags": {{
        "log-level": 40, // warnings and errors only
        "sdk-log-level": 30
    }},
    /* the relay's own flags */
    "doca_program_flags": {{
        "socket": "{}",
        "cc-name": "svc",
        "role": "host",
        "channel": "unix:{}",
        "max-clients": 8,
        "socket-mode": "0600",
        "pci-addr": "03:00.0"
    }}
}}
"#,
        sock.display(),
        d.s("c.sock")
    );
    let path = json_file(&d, &text);
    let mut relay = Relay::spawn(d.path(), "host", &["-j", &path]);
    let ok = wait_listening(&sock, Duration::from_secs(10));
    assert!(ok, "socket never listened\n{}", relay.report());
    assert!(fs::metadata(&sock).unwrap().file_type().is_socket());
    assert_eq!(
        fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "socket-mode from the JSON file"
    );
    assert!(UnixStream::connect(&sock).is_ok(), "{}", relay.report());
    relay.signal("TERM");
    let st = relay.wait_exit(Duration::from_secs(10));
    assert!(
        st.is_some(),
        "still running after SIGTERM\n{}",
        relay.report()
    );
    assert_eq!(st.unwrap().code(), Some(0), "{}", relay.report());
    assert!(!sock.exists(), "socket left behind after SIGTERM");
    // The log level from the file took effect: no info or debug lines.
    let err = relay.stderr();
    assert!(
        !err.contains("[INF]") && !err.contains("[DBG]"),
        "log-level 40 from the file should hide info and debug lines:\n{err}"
    );
}

/// The same settings on the command line run too (numbers and names for log levels).
#[test]
fn valid_flags_run_host() {
    let d = Dir::new();
    let sock = d.sock();
    let chan = format!("unix:{}", d.s("c.sock"));
    let args = strings(&[
        "-s",
        &sock.display().to_string(),
        "--cc-name=svc",
        "--channel",
        &chan,
        "-l",
        "debug",
        "--sdk-log-level",
        "20",
        "--max-clients",
        "65535",
        "-p",
        "0000:03:00.0",
    ]);
    let mut relay = Relay::spawn(d.path(), "host", &args);
    let ok = wait_listening(&sock, Duration::from_secs(10));
    assert!(ok, "socket never listened\n{}", relay.report());
    assert!(relay.is_running(), "{}", relay.report());
    relay.signal("TERM");
    let st = relay.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", relay.report());
    assert!(!sock.exists());
}

fn host_args(d: &Dir, sock: &str) -> Vec<String> {
    strings(&[
        "--role",
        "host",
        "--channel",
        &format!("unix:{}", d.s("c.sock")),
        "-s",
        sock,
        "-n",
        "svc",
    ])
}

/// Asserts a runtime failure: exit 1 and an error line naming the socket.
fn expect_runtime_error(d: &Dir, args: &[String], sock: &str) {
    expect_start_error(d, args, sock, 1)
}

/// Asserts a failure at start with exit `want` and one error line naming the socket.
fn expect_start_error(d: &Dir, args: &[String], sock: &str, want: i32) {
    let (code, _, err) = run(d.path(), args);
    assert_eq!(code, want, "{args:?}: exit code; stderr:\n{err}");
    let line = err.lines().find(|l| l.starts_with(PREFIX));
    assert!(line.is_some(), "{args:?}: no {PREFIX:?} line:\n{err}");
    assert!(
        line.unwrap().contains(sock),
        "{args:?}: the error should name {sock}:\n{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with(PREFIX)).count(),
        1,
        "one error line expected:\n{err}"
    );
}

#[test]
fn host_socket_path_is_a_regular_file() {
    let d = Dir::new();
    let sock = d.sock();
    fs::write(&sock, b"precious data").unwrap();
    let s = sock.display().to_string();
    // Only the operator can fix it: exit 2, so that systemd does not restart in a loop.
    expect_start_error(&d, &host_args(&d, &s), &s, 2);
    assert_eq!(
        fs::read(&sock).unwrap(),
        b"precious data",
        "the regular file was changed"
    );
}

#[test]
fn host_socket_path_has_a_live_listener() {
    let d = Dir::new();
    let sock = d.sock();
    let listener = UnixListener::bind(&sock).unwrap();
    let s = sock.display().to_string();
    expect_runtime_error(&d, &host_args(&d, &s), &s);
    // The other listener still owns the path.
    let _c = UnixStream::connect(&sock).expect("the live listener's path was taken away");
    listener.set_nonblocking(true).unwrap();
    let accepted = wait_until(Duration::from_secs(2), || listener.accept().is_ok());
    assert!(
        accepted,
        "the connection did not reach the original listener"
    );
}

#[test]
fn host_socket_directory_missing() {
    let d = Dir::new();
    let s = d.s("no/such/dir/h.sock");
    expect_start_error(&d, &host_args(&d, &s), &s, 2);
}

/// The DPU side cannot listen on its channel address: exit 1 naming the address.
#[test]
fn dpu_channel_address_in_use() {
    let d = Dir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let chan = format!("tcp:127.0.0.1:{port}");
    let args = strings(&[
        "--role",
        "dpu",
        "--channel",
        &chan,
        "--no-auth",
        "-s",
        &d.s("srv.sock"),
        "-n",
        "svc",
    ]);
    let (code, _, err) = run(d.path(), &args);
    assert_eq!(code, 1, "stderr:\n{err}");
    let line = err.lines().find(|l| l.starts_with(PREFIX));
    assert!(
        line.is_some_and(|l| l.contains(&port.to_string())),
        "the error should name the address:\n{err}"
    );
}

/// Found by fuzz/fuzz_targets/command_line.rs: a line break in an argument, a path or a JSON
/// value used to split the error over several lines (and could forge a log line).
#[test]
fn control_characters_in_input_keep_the_error_on_one_line() {
    let d = Dir::new();
    let sock = d.sock();
    let s = sock.display().to_string();
    let chan = format!("unix:{}", d.s("c.sock"));
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = strings(&["-s", &s, "-n", "svc", "--channel", &chan]);
        v.extend(strings(extra));
        v
    };
    let json = json_file(
        &d,
        &format!(
            r#"{{"doca_program_flags": {{"socket": "{s}", "cc-name": "svc", "channel": "{chan}", "role": "x\ny"}}}}"#
        ),
    );
    // Found by fuzz/fuzz_targets/flag_file.rs: a JSON key with an escaped line break.
    let key_json = d.s("key.json");
    fs::write(&key_json, r#"{"doca_program_flags": {"a\nb": 1}}"#).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (base(&["\n"]), "\\n: unknown argument"),
        (base(&["--max-clients", "1\n2"]), "--max-clients:"),
        (base(&["--psk-file", &d.s("k\nkey")]), "k\\nkey"),
        (
            strings(&["-j", &d.s("a\r\u{1b}[2J.json")]),
            "a\\r\\u{1b}[2J.json",
        ),
        (strings(&["-j", &json]), "x\\ny"),
        (strings(&["-j", &key_json]), "unknown field `a\\nb`"),
    ];
    for (args, want) in &cases {
        expect_config_error(d.path(), args, want, &sock);
    }
}
