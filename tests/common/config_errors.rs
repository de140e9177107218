//! Running the relay on a configuration that must be refused: exit code 2, one stderr line.

use super::run_relay;
use std::path::Path;
use std::time::Duration;

/// How every error line starts.
pub const PREFIX: &str = "doca_socket_relay: error: ";

/// Runs the relay, expecting it to exit by itself within 10 s.
pub fn run(dir: &Path, args: &[String]) -> (i32, String, String) {
    let (st, out, err) = run_relay(dir, args, Duration::from_secs(10));
    let st = st.unwrap_or_else(|| panic!("{args:?}: still running after 10 s; stderr:\n{err}"));
    let code = st
        .code()
        .unwrap_or_else(|| panic!("{args:?}: killed by a signal ({st}); stderr:\n{err}"));
    (code, out, err)
}

/// Asserts a configuration error: exit 2, exactly one stderr line with the prefix that
/// contains `want`, nothing on stdout, and `sock` not created.
pub fn expect_config_error(dir: &Path, args: &[String], want: &str, sock: &Path) {
    let (code, out, err) = run(dir, args);
    assert_eq!(code, 2, "{args:?}: exit code; stderr:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one stderr line expected, got:\n{err}"
    );
    assert!(
        lines[0].starts_with(PREFIX),
        "{args:?}: stderr should start with {PREFIX:?}:\n{err}"
    );
    assert!(
        lines[0].contains(want),
        "{args:?}: stderr should contain {want:?}:\n{err}"
    );
    assert!(out.is_empty(), "{args:?}: unexpected stdout:\n{out}");
    assert!(
        !sock.exists(),
        "{args:?}: {} was created on a config error",
        sock.display()
    );
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Host-side arguments on a unix channel in `dir` with `key` as `--psk-file`.
pub fn keyed_host_args(dir: &Path, key: &Path) -> Vec<String> {
    let sock = dir.join("h.sock").display().to_string();
    let chan = format!("unix:{}", dir.join("c.sock").display());
    let key = key.display().to_string();
    strings(&[
        "-s",
        &sock,
        "-n",
        "svc",
        "--channel",
        &chan,
        "--psk-file",
        &key,
    ])
}
