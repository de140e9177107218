//! Reading the pre-shared key file, after checking who can read and write it, in the spirit of
//! OpenSSH's rules for private keys.
//!
//! Anyone who can read the key can impersonate either side; anyone who can write it can make
//! this side accept their own key. So on Unix the file must be owned by root or by the user the
//! relay runs as, others may not read it, the group and others may not write it, and group read
//! is allowed only for a group the relay is in or the packaged group `doca-socket-relay`: the
//! packaged layout is `0640 root:doca-socket-relay` with the service in that group (and root
//! running `--check` on it accepted too), while a symlink to
//! `/etc/shadow` (`0640 root:shadow`) is refused even when root could read it. A symlink is
//! followed and its target judged, and the checks are made on the opened file, so a file swapped
//! in after the check is not read. Every refusal is one line with the command that fixes it.
//!
//! On every platform the file may hold at most [`MAX_KEY_FILE`] bytes, refused before anything
//! is read, and it is read into one buffer sized from its length, so no reallocation leaves a
//! copy of the key in freed memory. A key that looks like text is accepted with a warning: its
//! bytes, a trailing newline included, are the key, which the other side must match exactly.

use crate::config::{Psk, MIN_PSK_LEN};
use std::fs::{self, File};
use std::io::{self, Read};
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Largest accepted key file, in bytes: a key is 32 random bytes, so anything near this is a
/// wrong file.
pub const MAX_KEY_FILE: u64 = 4096;

#[cfg(unix)]
/// Permission bits that make a key file unsafe: read by others, write by group or others.
const UNSAFE_BITS: u32 = 0o027;
#[cfg(unix)]
/// Group read: allowed only for a group the relay is in.
const GROUP_READ: u32 = 0o040;

/// A key read from its file.
pub struct KeyFile {
    /// The key.
    pub psk: Psk,
    /// One line to show the operator when the key is usable but doubtful (it looks like text).
    pub warning: Option<String>,
}

/// Who the relay runs as: what the owner and group of a key file are judged against.
#[cfg(unix)]
struct Ids {
    euid: u32,
    egid: u32,
    groups: Vec<u32>,
}

#[cfg(unix)]
impl Ids {
    fn current() -> Ids {
        use rustix::process;
        Ids {
            euid: process::geteuid().as_raw(),
            egid: process::getegid().as_raw(),
            // Unknown supplementary groups only make the group rule stricter.
            groups: process::getgroups()
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        gid == self.egid || self.groups.contains(&gid)
    }
}

#[cfg(unix)]
/// Reads and checks the key file at `path`. The error is one line naming the file and the
/// command that fixes the problem.
pub fn read_psk(path: &Path) -> Result<KeyFile, String> {
    let shown = path.display();
    // The type is looked at before opening: opening a FIFO would block, a socket fails with a
    // confusing "no such device or address".
    let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    check_type(path, &meta)?;
    // O_NONBLOCK: if a FIFO was swapped in since the check, opening it must not hang.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    check_type(path, &meta)?;
    let ids = Ids::current();
    let group_ok = ids.in_group(meta.gid()) || is_packaged_group(meta.gid());
    check_mode(path, meta.mode(), group_ok)?;
    if !owner_ok(meta.uid(), ids.euid) {
        return Err(owner_error(path, meta.uid(), ids.euid));
    }
    if meta.mode() & GROUP_READ != 0 && !group_ok {
        return Err(group_error(path, meta.mode(), meta.gid()));
    }
    read_key(path, file, meta.len())
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

/// The path as given, with its target when it is a symlink: the fixes (`chmod`, `chown`)
/// follow the link, so the path as given is the one they name, but the reader should see
/// which file they would change.
fn described(path: &Path) -> String {
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(t) => format!(" (a symlink to {})", t.display()),
            Err(_) => " (a symlink)".into(),
        },
        _ => String::new(),
    };
    format!("{}{target}", path.display())
}

#[cfg(unix)]
/// `group_ok`: the file's group is one the relay is in, so the suggested mode may keep group
/// read.
fn check_mode(path: &Path, mode: u32, group_ok: bool) -> Result<(), String> {
    let perm = mode & 0o7777;
    if perm & UNSAFE_BITS == 0 {
        return Ok(());
    }
    let who = match (perm & 0o004 != 0, perm & 0o022 != 0) {
        (true, true) => "readable and writable by others than its owner",
        (true, false) => "readable by others",
        _ => "writable by others than its owner",
    };
    // The suggestion keeps the owner's bits and group read where allowed, drops the rest.
    let keep = if group_ok { 0o640 } else { 0o600 };
    let fixed = (perm & keep) | 0o400;
    Err(format!(
        "{} is {who} (mode {perm:04o}); run: chmod {fixed:04o} {}",
        described(path),
        path.display()
    ))
}

#[cfg(unix)]
/// Only root and the relay's own user may own the key: the owner can always rewrite it.
fn owner_ok(uid: u32, euid: u32) -> bool {
    uid == 0 || uid == euid
}

#[cfg(unix)]
fn owner_error(path: &Path, uid: u32, euid: u32) -> String {
    let p = path.display();
    let (allowed, or) = if euid == 0 {
        ("root, the relay's user".to_string(), String::new())
    } else {
        let name = id_name("/etc/passwd", euid).unwrap_or_else(|| euid.to_string());
        (
            format!(
                "root or the relay's user, {}",
                id_shown("uid", "/etc/passwd", euid)
            ),
            format!(" (or chown {name} {p})"),
        )
    };
    format!(
        "{} is owned by {}, who could rewrite the key; it must be owned by {allowed}; run: \
         chown root {p}{or}",
        described(path),
        id_shown("uid", "/etc/passwd", uid),
    )
}

/// The group the packages create for the service. A key shared with it is the documented
/// layout, so `--check` run by root (which is not in that group) accepts it as the service
/// would; any other group the relay is not in still refuses.
#[cfg(unix)]
const PACKAGED_GROUP: &str = "doca-socket-relay";

#[cfg(unix)]
fn is_packaged_group(gid: u32) -> bool {
    id_name("/etc/group", gid).as_deref() == Some(PACKAGED_GROUP)
}

#[cfg(unix)]
fn group_error(path: &Path, mode: u32, gid: u32) -> String {
    let fixed = (mode & 0o600) | 0o400;
    format!(
        "{} is readable by its group, {}, which the relay is not in; run: chmod {fixed:04o} {} \
         (or, if that group is meant to read the key, run the relay in it)",
        described(path),
        id_shown("gid", "/etc/group", gid),
        path.display()
    )
}

#[cfg(unix)]
/// `uid 65534 (nobody)`, or `uid 65534` when the name cannot be found.
fn id_shown(what: &str, db: &str, id: u32) -> String {
    match id_name(db, id) {
        Some(name) => format!("{what} {id} ({name})"),
        None => format!("{what} {id}"),
    }
}

#[cfg(unix)]
/// The name of `id` in a passwd or group file (`name:x:id:...`). Only the local files are
/// looked at: the name is a courtesy in a message, not worth an NSS lookup.
fn id_name(db: &str, id: u32) -> Option<String> {
    let text = fs::read_to_string(db).ok()?;
    let id = id.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == id).then(|| name.to_string())
    })
}

/// Reads the key file on Windows, which has no mode bits: the file's ACL decides who may read
/// it and is not judged here (docs/WINDOWS.md). It must be a regular file within the size cap.
#[cfg(windows)]
pub fn read_psk(path: &Path) -> Result<KeyFile, String> {
    let shown = path.display();
    let not_file = || format!("{shown} is not a regular file; the key must be one");
    if !fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .is_file()
    {
        return Err(not_file());
    }
    let file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_file());
    }
    read_key(path, file, meta.len())
}

/// Reads the opened key file whose length was `len` when checked.
fn read_key(path: &Path, file: File, len: u64) -> Result<KeyFile, String> {
    if len > MAX_KEY_FILE {
        return Err(format!(
            "{} is {len} bytes, over the {MAX_KEY_FILE}-byte limit for a key file; a key is \
             {} random bytes: doca_socket_relay --gen-key NEWPATH writes one",
            described(path),
            crate::config::keygen::KEY_LEN
        ));
    }
    // One byte more than the file had, to notice a file that grew since; sized once and wiped
    // on every path, so the key never sits in freed memory.
    let room = len as usize + 1;
    let mut key = zeroize::Zeroizing::new(vec![0u8; room]);
    let mut filled = 0;
    let mut reader = file.take(room as u64);
    while filled < room {
        match reader.read(&mut key[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    if filled == room {
        return Err(format!(
            "{} grew while it was read; run again once it is written",
            path.display()
        ));
    }
    key.truncate(filled);
    if key.len() < MIN_PSK_LEN {
        return Err(format!(
            "{} holds {} bytes, at least {MIN_PSK_LEN} are needed (doca_socket_relay --gen-key \
             NEWPATH writes a random key)",
            path.display(),
            key.len()
        ));
    }
    let warning = looks_like_text(&key).then(|| text_warning(path, &key));
    Ok(KeyFile {
        psk: Psk(std::mem::take(&mut *key)),
        warning,
    })
}

/// Every byte printable ASCII or white space: a password or a hex string typed into a file
/// rather than random bytes. 32 random bytes all fall in this range once in ~10^13.
pub fn looks_like_text(key: &[u8]) -> bool {
    key.iter()
        .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

fn text_warning(path: &Path, key: &[u8]) -> String {
    let newline = if key.ends_with(b"\n") {
        ", trailing newline included,"
    } else {
        ""
    };
    format!(
        "{} looks like text: its {} bytes{newline} are the key as is (the other side must hold \
         the same bytes); doca_socket_relay --gen-key NEWPATH makes a random one",
        path.display(),
        key.len()
    )
}

#[cfg(test)]
mod tests;
