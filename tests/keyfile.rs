//! The key file checks as a user meets them: a key that others can read, that anyone but its
//! owner can write, that someone other than root or the relay's user owns, that a group the
//! relay is not in can read, that is over the size cap, a symlink to such a key, or anything
//! but a regular file is refused with exit 2 and one line saying what to run; a group-readable
//! key (the packaged 0640 layout) runs; a text key runs with a warning. tests/gen_key.rs has
//! the generator whose keys pass all of these.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::config_errors::*;
use common::*;
use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
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
    keyed_host_args(dir, key)
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

/// Whether the test runs as root; if not, says which test is skipped and why.
fn root_or_skip(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: needs root to give a file to another user or group");
    }
    root
}

/// `args` with `--check` added.
fn checking(mut args: Vec<String>) -> Vec<String> {
    args.push("--check".into());
    args
}

#[test]
fn a_key_owned_by_another_user_is_refused() {
    if !root_or_skip("a_key_owned_by_another_user_is_refused") {
        return;
    }
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    // 65534 is nobody on Debian and most others; the uid is what matters, the name is a bonus.
    let key = key_with_mode(dir, "nobody.key", 0o600);
    chown(&key, Some(65534), None).unwrap();
    let link = dir.join("link.key");
    symlink(&key, &link).unwrap();
    for path in [&key, &link] {
        let want = "is owned by uid 65534";
        let fix = format!("; run: chown root {}", path.display());
        for args in [host_args(dir, path), checking(host_args(dir, path))] {
            expect_config_error(dir, &args, want, &sock);
            expect_config_error(dir, &args, &fix, &sock);
        }
    }
    expect_config_error(
        dir,
        &host_args(dir, &link),
        &format!("link.key (a symlink to {}) is owned", key.display()),
        &sock,
    );
}

#[test]
fn a_key_readable_by_a_group_the_relay_is_not_in_is_refused() {
    if !root_or_skip("a_key_readable_by_a_group_the_relay_is_not_in_is_refused") {
        return;
    }
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    // The relay inherits this process's groups: pick one it is not in.
    let ours: Vec<u32> = rustix::process::getgroups()
        .unwrap()
        .into_iter()
        .map(|g| g.as_raw())
        .chain([rustix::process::getegid().as_raw()])
        .collect();
    let gid = (65534..65544).find(|g| !ours.contains(g)).unwrap();
    let key = key_with_mode(dir, "foreign.key", 0o640);
    chown(&key, None, Some(gid)).unwrap();
    let link = dir.join("link.key");
    symlink(&key, &link).unwrap();
    for path in [&key, &link] {
        let want = format!("is readable by its group, gid {gid}");
        let fix = format!(
            "which the relay is not in; run: chmod 0600 {}",
            path.display()
        );
        for args in [host_args(dir, path), checking(host_args(dir, path))] {
            expect_config_error(dir, &args, &want, &sock);
            expect_config_error(dir, &args, &fix, &sock);
        }
    }
    // A relay in that group, as a supplementary group (as the packaged service is in
    // doca-socket-relay), may read it.
    if Command::new("setpriv").arg("--version").output().is_ok() {
        let relay = relay_command();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--groups={gid}"))
            .arg("--")
            .arg(relay.get_program())
            .args(relay.get_args())
            .args(checking(host_args(dir, &link)));
        let mut r = Relay::spawn_command(dir, "ingroup", cmd);
        let st = r.wait_exit(Duration::from_secs(10));
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", r.report());
    } else {
        eprintln!("the in-group case skipped: no setpriv to start the relay in group {gid}");
    }
    // Owner-only, the same file runs: the group no longer matters.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = run(dir, &checking(host_args(dir, &link)));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_oversized_key_is_refused_before_it_is_read() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    // Sparse: nothing is written, and reading it all (as before the cap) would take tens of
    // seconds, past the 10 s that `run` waits.
    let big = key_with_mode(dir, "big.key", 0o600);
    fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let want = format!(
        "{} is 3221225472 bytes, over the 4096-byte limit for a key file; a key is 32 random \
         bytes: doca_socket_relay --gen-key NEWPATH writes one",
        big.display()
    );
    for args in [host_args(dir, &big), checking(host_args(dir, &big))] {
        expect_config_error(dir, &args, &want, &sock);
    }
    // The cap itself is allowed, one byte more is not.
    let at_cap = dir.join("cap.key");
    let mut bytes = vec![0u8; 4097];
    Pattern::new(7).fill(&mut bytes);
    fs::write(&at_cap, &bytes[..4096]).unwrap();
    fs::set_permissions(&at_cap, fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = run(dir, &checking(host_args(dir, &at_cap)));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4096-byte pre-shared key"), "{out}");
    fs::write(&at_cap, &bytes).unwrap();
    let args = host_args(dir, &at_cap);
    expect_config_error(dir, &args, "is 4097 bytes, over the 4096-byte limit", &sock);
}

#[test]
fn a_text_key_runs_with_one_warning() {
    let d = tempdir();
    let dir = d.path();
    let sock = dir.join("h.sock");
    let key = dir.join("text.key");
    fs::write(&key, "password-password-password-12345\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let want = format!(
        "--psk-file: {} looks like text: its 33 bytes, trailing newline included, are the key \
         as is",
        key.display()
    );
    let (code, out, err) = run(dir, &checking(host_args(dir, &key)));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK"), "{out}");
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("looks like text"))
        .collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].starts_with("doca_socket_relay: note: "), "{err}");
    assert!(notes[0].contains(&want), "{err}");
    assert!(notes[0].ends_with("doca_socket_relay --gen-key NEWPATH makes a random one"));
    // A start logs it once, at WARN, and runs.
    let mut relay = Relay::spawn(dir, "text", &host_args(dir, &key));
    let up = wait_listening(&sock, Duration::from_secs(10));
    let report = relay.report();
    relay.signal("TERM");
    relay.wait_exit(Duration::from_secs(10));
    let log = relay.stderr();
    assert!(up, "{report}");
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("looks like text"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains("WRN") && warned[0].contains(&want),
        "{log}"
    );
    // A binary key gets no such line.
    let binary = key_with_mode(dir, "binary.key", 0o600);
    let (code, _, err) = run(dir, &checking(host_args(dir, &binary)));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("looks like text"), "{err}");
}
