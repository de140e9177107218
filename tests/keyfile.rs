//! The key file checks as a user meets them: a key that others can read, that anyone but its
//! owner can write, a symlink to such a key, or anything but a regular file is refused with
//! exit 2 and one line saying what to run; a group-readable key (the packaged 0640 layout) runs.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::config_errors::*;
use common::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn key_with_mode(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let path = write_psk(dir, name);
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Host-side arguments on a unix channel with `key` as `--psk-file`.
fn host_args(dir: &Path, key: &Path) -> Vec<String> {
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

/// The same settings as a JSON flag file.
fn host_json(dir: &Path, key: &Path) -> String {
    let path = dir.join("flags.json");
    let text = format!(
        r#"{{"doca_program_flags": {{"socket": "{}", "cc-name": "svc",
            "channel": "unix:{}", "psk-file": "{}"}}}}"#,
        dir.join("h.sock").display(),
        dir.join("c.sock").display(),
        key.display()
    );
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn unsafe_key_modes_exit_2_with_the_chmod_to_run() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    for (mode, what, fix) in [
        (0o644, "readable by others", "chmod 0640"),
        (0o604, "readable by others", "chmod 0600"),
        (0o660, "writable by others than its owner", "chmod 0640"),
        (0o620, "writable by others than its owner", "chmod 0600"),
        (0o602, "writable by others than its owner", "chmod 0600"),
        (
            0o666,
            "readable and writable by others than its owner",
            "chmod 0640",
        ),
    ] {
        let key = key_with_mode(dir, &format!("k{mode:o}.key"), mode);
        let want = format!("is {what} (mode {mode:04o}); run: {fix} {}", key.display());
        expect_config_error(dir, &host_args(dir, &key), &want, &sock);
        expect_config_error(dir, &host_args(dir, &key), "--psk-file: ", &sock);
        // Through JSON the line names the JSON key instead of the flag.
        let json = host_json(dir, &key);
        expect_config_error(dir, &strings(&["-j", &json]), &want, &sock);
        expect_config_error(
            dir,
            &strings(&["-j", &json]),
            "doca_program_flags.psk-file: ",
            &sock,
        );
    }
}

#[test]
fn symlink_to_an_unsafe_key_is_refused() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    let target = key_with_mode(dir, "target.key", 0o644);
    let link = dir.join("link.key");
    symlink(&target, &link).unwrap();
    let want = format!(
        "{} (a symlink to {}) is readable by others (mode 0644); run: chmod 0640 {}",
        link.display(),
        target.display(),
        link.display()
    );
    expect_config_error(dir, &host_args(dir, &link), &want, &sock);
    let json = host_json(dir, &link);
    expect_config_error(dir, &strings(&["-j", &json]), &want, &sock);
}

#[test]
fn a_key_that_is_not_a_regular_file_is_refused() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    let fifo = dir.join("fifo.key");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.join("sock.key");
    let _listener = UnixListener::bind(&socket).unwrap();
    let subdir = dir.join("dir.key");
    fs::create_dir(&subdir).unwrap();
    let link_to_dir = dir.join("dirlink.key");
    symlink(&subdir, &link_to_dir).unwrap();
    for (path, what) in [
        (fifo.as_path(), "is a FIFO"),
        (socket.as_path(), "is a socket"),
        (subdir.as_path(), "is a directory"),
        (link_to_dir.as_path(), "is a directory"),
        (Path::new("/dev/null"), "is a device"),
    ] {
        let want = format!("{} {what}; the key must be a regular file", path.display());
        expect_config_error(dir, &host_args(dir, path), &want, &sock);
        let json = host_json(dir, path);
        expect_config_error(dir, &strings(&["-j", &json]), &want, &sock);
    }
}

/// Owner-only and group-readable keys, directly or through a symlink, pass: the host side
/// starts and binds its socket.
#[test]
fn owner_only_and_group_readable_keys_run() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    let group_key = key_with_mode(dir, "group.key", 0o640);
    let link = dir.join("link.key");
    symlink(&group_key, &link).unwrap();
    let mut cases = vec![];
    for mode in [0o600, 0o400, 0o640, 0o440] {
        cases.push(host_args(
            dir,
            &key_with_mode(dir, &format!("{mode:o}.key"), mode),
        ));
    }
    cases.push(host_args(dir, &link));
    cases.push(strings(&["-j", &host_json(dir, &group_key)]));
    for (i, args) in cases.iter().enumerate() {
        let mut relay = Relay::spawn(dir, &format!("ok{i}"), args);
        let up = wait_listening(&sock, Duration::from_secs(10));
        let report = relay.report();
        relay.signal("TERM");
        let st = relay.wait_exit(Duration::from_secs(10));
        assert!(up, "{args:?}: the host socket never appeared\n{report}");
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{args:?}\n{report}");
        let _ = fs::remove_file(&sock);
    }
}
