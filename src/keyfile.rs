//! Reading the pre-shared key file, after checking that only its owner (and at most its group)
//! can read it and only its owner can write it.
//!
//! Anyone who can read the key can impersonate either side; anyone who can write it can make
//! this side accept their own key. So a key that others may read, or that the group or others
//! may write, is refused with the command that fixes it. Group read stays allowed: the packaged
//! layout is `0640 root:doca-socket-relay`. A symlink is followed and its target judged, and
//! the checks are made on the opened file, so a file swapped in after the check is not read.

use crate::config::{Psk, MIN_PSK_LEN};
use std::fs::{self, File};
use std::io::Read;
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

#[cfg(unix)]
/// Permission bits that make a key file unsafe: read by others, write by group or others.
const UNSAFE_BITS: u32 = 0o027;
/// Most bytes reserved up front for a key file; a larger file still reads, in steps.
const MAX_KEY_READ: usize = 64 * 1024;

#[cfg(unix)]
/// Reads and checks the key file at `path`. The error is one line naming the file and, for a
/// permission problem, the `chmod` that fixes it.
pub fn read_psk(path: &Path) -> Result<Psk, String> {
    let shown = path.display();
    // The type is looked at before opening: opening a FIFO would block, a socket fails with a
    // confusing "no such device or address".
    let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    check_type(path, &meta)?;
    // O_NONBLOCK: if a FIFO was swapped in since the check, opening it must not hang.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    check_type(path, &meta)?;
    check_mode(path, meta.mode())?;
    read_key(path, &mut file)
}

#[cfg(unix)]
fn check_type(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let ft = meta.file_type();
    let what = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{} is {what}; the key must be a regular file",
        path.display()
    ))
}

#[cfg(unix)]
fn check_mode(path: &Path, mode: u32) -> Result<(), String> {
    let perm = mode & 0o7777;
    if perm & UNSAFE_BITS == 0 {
        return Ok(());
    }
    let who = match (perm & 0o004 != 0, perm & 0o022 != 0) {
        (true, true) => "readable and writable by others than its owner",
        (true, false) => "readable by others",
        _ => "writable by others than its owner",
    };
    // The suggestion keeps the owner's bits and group read, and drops everything else.
    let fixed = (perm & 0o640) | 0o400;
    // chmod follows a symlink, so the path as given is the one to name.
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(t) => format!(" (a symlink to {})", t.display()),
            Err(_) => " (a symlink)".into(),
        },
        _ => String::new(),
    };
    Err(format!(
        "{}{target} is {who} (mode {perm:04o}); run: chmod {fixed:04o} {}",
        path.display(),
        path.display()
    ))
}

/// Reads the key file at `path` on Windows, which has no mode bits: the file's ACL decides who
/// may read it and is not judged here (README, "Windows"). It must be a regular file.
#[cfg(windows)]
pub fn read_psk(path: &Path) -> Result<Psk, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file; the key must be one"
        ));
    }
    let mut file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    read_key(path, &mut file)
}

fn read_key(path: &Path, file: &mut File) -> Result<Psk, String> {
    // Sized up front so that growing the buffer leaves no copy of the key behind in freed
    // memory; whatever happens, the buffer is wiped unless it becomes the Psk.
    let size = file.metadata().map_or(0, |m| m.len() as usize);
    let mut key = zeroize::Zeroizing::new(Vec::with_capacity(size.min(MAX_KEY_READ) + 1));
    file.read_to_end(&mut key)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if key.len() < MIN_PSK_LEN {
        return Err(format!(
            "{} holds {} bytes, at least {MIN_PSK_LEN} are needed (e.g. head -c 32 /dev/urandom)",
            path.display(),
            key.len()
        ));
    }
    Ok(Psk(std::mem::take(&mut *key)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let p = Path::new("/k");
        for ok in [0o600, 0o400, 0o640, 0o440, 0o700, 0o100600] {
            assert!(check_mode(p, ok).is_ok(), "{ok:o}");
        }
        for (bad, fix) in [
            (0o644, "chmod 0640"),
            (0o604, "chmod 0600"),
            (0o660, "chmod 0640"),
            (0o620, "chmod 0600"),
            (0o602, "chmod 0600"),
            (0o666, "chmod 0640"),
            (0o000_777, "chmod 0640"),
        ] {
            let e = check_mode(p, bad).unwrap_err();
            assert!(e.contains(fix), "{bad:o}: {e}");
        }
    }
}
