//! `--gen-key PATH` as a user meets it: from a shell with the usual umask it writes an
//! owner-only 32-byte key that the key file checks (tests/keyfile.rs) accept without a warning,
//! and it never overwrites, never follows a link, and stands alone; each refusal is exit 2 with
//! one line.

// These tests drive the Linux binary; the Windows build runs the unit tests instead.
#![cfg(unix)]

mod common;

use common::config_errors::*;
use common::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `--check` of a host side on a unix channel with `key` as `--psk-file`.
fn check_with(dir: &Path, key: &Path) -> Vec<String> {
    let mut args = keyed_host_args(dir, key);
    args.push("--check".into());
    args
}

/// Runs `--gen-key PATH` from a shell with the usual umask 0022, as a user would.
fn gen_key(dir: &Path, path: &Path) -> (i32, String) {
    let relay = relay_command();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 0022 && exec \"$@\"")
        .arg("sh")
        .arg(relay.get_program())
        .args(relay.get_args())
        .arg("--gen-key")
        .arg(path);
    let mut r = Relay::spawn_command(dir, "genkey", cmd);
    let st = r.wait_exit(Duration::from_secs(10));
    let err = r.stderr();
    let code = st.and_then(|s| s.code());
    (
        code.unwrap_or_else(|| panic!("--gen-key did not exit: {err}")),
        err,
    )
}

#[test]
fn gen_key_writes_an_owner_only_key_that_passes_the_checks() {
    let d = tempdir();
    let dir = d.path();
    let key = dir.join("new.key");
    let (code, err) = gen_key(dir, &key);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        format!(
            "doca_socket_relay: wrote a new 32-byte key to {} (mode 0600); copy the same file \
             to the other side\n",
            key.display()
        )
    );
    let meta = fs::metadata(&key).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "the umask must not decide");
    assert_eq!(meta.len(), 32);
    let (code, out, err) = run(dir, &check_with(dir, &key));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("32-byte pre-shared key"), "{out}");
    assert!(
        !err.contains("--psk-file"),
        "no note about the key expected: {err}"
    );
    // A second key differs from the first.
    let other = dir.join("other.key");
    assert_eq!(gen_key(dir, &other).0, 0);
    assert_ne!(fs::read(&key).unwrap(), fs::read(&other).unwrap());
}

#[test]
fn gen_key_never_overwrites() {
    let d = tempdir();
    let dir = d.path();
    let key = dir.join("k.key");
    fs::write(&key, b"keep me").unwrap();
    let dangling = dir.join("dangling.key");
    symlink(dir.join("target.key"), &dangling).unwrap();
    for path in [&key, &dangling] {
        let (code, err) = gen_key(dir, path);
        assert_eq!(code, 2, "{err}");
        assert_eq!(
            err,
            format!(
                "{PREFIX}--gen-key: {} exists; not overwritten\n",
                path.display()
            )
        );
    }
    assert_eq!(fs::read(&key).unwrap(), b"keep me");
    assert!(!dir.join("target.key").exists(), "the link was followed");
}

#[test]
fn gen_key_refuses_a_missing_directory_and_other_flags() {
    let d = tempdir();
    let dir = d.path();
    let missing = dir.join("no/such.key");
    let shown = missing.display().to_string();
    expect_config_error(
        dir,
        &strings(&["--gen-key", &shown]),
        &format!(
            "--gen-key: the directory {} does not exist",
            dir.join("no").display()
        ),
        &missing,
    );
    let key = dir.join("k.key");
    let k = key.display().to_string();
    let sock = dir.join("h.sock").display().to_string();
    for args in [
        vec!["--gen-key", &k, "--check"],
        vec!["--check", "--gen-key", &k],
        vec!["--gen-key", &k, "-s", &sock, "-n", "svc"],
        vec!["-j", "x.json", &format!("--gen-key={k}")],
    ] {
        let want = "--gen-key: must be the only flag";
        expect_config_error(dir, &strings(&args), want, &key);
    }
    expect_config_error(
        dir,
        &strings(&["--gen-key", "--check"]),
        "needs a path",
        &key,
    );
}
