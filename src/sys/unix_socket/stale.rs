//! The one rule both platforms share before a bind: what to do with a file already at the path.

use crate::error::Error;

/// Before binding the AF_UNIX socket `path`, which exists: a socket nobody listens on (`probe`
/// is refused) is removed; a live socket (exit 1: it may go away) or any other kind of file
/// (exit 2) is an error, and the file is left alone. Other probe failures leave the file for
/// `bind` to report.
pub(crate) fn clear_stale_socket(
    path: &std::path::Path,
    is_socket: bool,
    probe: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> Result<(), Error> {
    // Another kind of file stays until someone removes it: a restart cannot help (exit 2).
    if !is_socket {
        return Err(Error::config(format!(
            "{}: exists and is not a socket; not touching it",
            path.display()
        )));
    }
    match probe(path) {
        Ok(()) => Err(Error::SocketInUse(
            path.into(),
            "another process is listening on it",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("removing stale {}", path.display()), e))
        }
        Err(_) => Ok(()),
    }
}
