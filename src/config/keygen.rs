//! `--gen-key PATH`: writes a new random pre-shared key, as `wg genkey` or `ssh-keygen` would,
//! so that making a key is one step that cannot leave it readable by others.
//!
//! The file is created, never replaced (a key overwritten by mistake would cut the other side
//! off), owner-only from its first byte, and synced before success is reported.

use crate::config::keyfile::looks_like_text;
use crate::error::Error;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Length of a generated key: 256 bits.
pub const KEY_LEN: usize = 32;
/// Random keys drawn before giving up on one that does not look like text (each one does with
/// a chance of ~10^-13, so a second draw is already never needed in practice).
const DRAWS: usize = 8;

/// Writes a new random key to `path`, which must not exist, and returns the line to show.
/// A path that exists or a missing directory is a configuration error (exit 2); a failed
/// write removes the file again and is a runtime error.
pub fn generate(path: &Path) -> Result<String, Error> {
    let shown = path.display();
    let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    for _ in 0..DRAWS {
        getrandom::getrandom(&mut key[..]).map_err(|e| {
            Error::io(
                "reading the OS random source",
                std::io::Error::other(e.to_string()),
            )
        })?;
        // read_psk warns about a key that looks like text; a generated one never should.
        if !looks_like_text(&key[..]) {
            break;
        }
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_EXCL already refuses any existing name, a symlink included; O_NOFOLLOW says so
        // too, in case O_EXCL is ever dropped.
        opts.mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let mut file = opts.open(path).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => {
            Error::config(format!("--gen-key: {shown} exists; not overwritten"))
        }
        ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Error::config(format!(
                "--gen-key: the directory {} does not exist; create it first",
                dir.display()
            ))
        }
        _ => Error::config(format!("--gen-key: {shown}: {e}")),
    })?;
    let written = (|| {
        // Set on the open file, so neither the umask nor a swapped path changes it.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(&key[..])?;
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = written {
        // A short key left behind would only be refused later; better no file at all.
        let _ = std::fs::remove_file(path);
        return Err(Error::io(format!("--gen-key: writing {shown}"), e));
    }
    let mode = if cfg!(unix) { " (mode 0600)" } else { "" };
    Ok(format!(
        "wrote a new {KEY_LEN}-byte key to {shown}{mode}; copy the same file to the other side"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_new_key_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("dsr-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let line = generate(&path).unwrap();
        assert!(line.contains("32-byte key"), "{line}");
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), KEY_LEN);
        let again = generate(&path).unwrap_err();
        assert_eq!(again.exit_code(), 2);
        assert!(
            again.to_string().ends_with("exists; not overwritten"),
            "{again}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), first);
        let missing = generate(&dir.join("no/such/k")).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
