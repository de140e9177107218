//! AF_UNIX sockets on Windows (10 build 17063 and later), through Winsock: the host side's
//! listener and the relay's own connections. The same API as `posix.rs`.
//!
//! Built on `socket2`, not `uds_windows`: socket2 (rust-lang, already under async-io's
//! dependents' feet on other platforms) opens AF_UNIX sockets through Winsock with
//! `Domain::UNIX` and `SockAddr::unix`, and gives what the relay needs on every socket:
//! reads into uninitialised buffers, vectored sends, `shutdown`, non-blocking mode, and
//! `AsSocket`, which async-io's `Async` requires. uds_windows wraps the same calls in
//! std-like `UnixStream`/`UnixListener` types, which would add a crate and a second socket type
//! for no call the relay makes.
//!
//! Socket file hygiene as on Linux: a socket file nobody listens on is replaced, a live one
//! (or any other kind of file) refused, and the file removed on exit. There are no mode bits:
//! `--socket-mode` is refused (see `ops::refuse`); the directory's ACL decides who may
//! connect. There is no socket activation.

use crate::error::Error;
use crate::sys::reactor::Io;
use async_io::Async;
use socket2::{Domain, SockAddr, Socket, Type};
use std::fs;
use std::io;
use std::os::windows::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A relayed connection's local socket: a Winsock AF_UNIX stream socket.
pub type UnixStream = Socket;
/// A listening AF_UNIX socket, as [`accept`] takes it.
pub type UnixListener = Socket;

/// Windows marks an AF_UNIX socket file as a reparse point; a regular file is not one.
const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// Removes the socket file when dropped, unless the file was replaced meanwhile (another
/// creation time).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    created: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.creation_time() == self.created) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// WSAEAFNOSUPPORT: Winsock has no AF_UNIX (before Windows 10 build 17063, and under Wine).
const NO_AF_UNIX: i32 = 10047;

fn socket() -> io::Result<Socket> {
    Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| {
        if e.raw_os_error() != Some(NO_AF_UNIX) {
            return e;
        }
        io::Error::new(
            e.kind(),
            "this Windows has no AF_UNIX sockets (Windows 10 build 17063 or later has them)",
        )
    })
}

/// Whether something listens on `path`. AF_UNIX connects at once or is refused.
fn probe(path: &Path) -> io::Result<()> {
    socket()?.connect(&SockAddr::unix(path)?)
}

/// Whether a process listens on the socket `path` (for `--check`).
pub fn listening(path: &Path) -> bool {
    probe(path).is_ok()
}

/// A client listener on `path`, bound here, removed when the guard drops. Windows has no
/// mode bits on a socket file (`--socket-mode` is refused) and no socket activation.
pub fn listener(
    path: &Path,
    _mode: u32,
    backlog: u32,
) -> Result<(Async<UnixListener>, Option<SocketFile>), Error> {
    let (l, file) = bind(path, backlog)?;
    Ok((l, Some(file)))
}

/// Binds `path` with a listen backlog of at least `backlog`.
///
/// An existing socket file nobody listens on is replaced; a live socket or any other kind of
/// file is an error, and the file is left alone.
pub fn bind(path: &Path, backlog: u32) -> Result<(Async<UnixListener>, SocketFile), Error> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        let is_socket =
            meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 && !meta.is_dir();
        super::clear_stale_socket(path, is_socket, probe)?;
    }
    let what = || format!("binding {}", path.display());
    let sock = socket().map_err(|e| Error::io(what(), e))?;
    let addr = SockAddr::unix(path).map_err(|e| Error::io(what(), e))?;
    sock.bind(&addr).map_err(|e| Error::io(what(), e))?;
    let created = fs::symlink_metadata(path)
        .map_err(|e| Error::io(what(), e))?
        .creation_time();
    let file = SocketFile {
        path: path.into(),
        created,
    };
    let backlog = backlog.max(128).min(i32::MAX as u32) as i32;
    sock.listen(backlog).map_err(|e| Error::io(what(), e))?;
    let listener = Async::new(sock).map_err(|e| Error::io(what(), e))?;
    Ok((listener, file))
}

/// Accepts one client as a socket of the relay's event loop, or `WouldBlock`.
pub fn accept(listener: &UnixListener) -> io::Result<Io<UnixStream>> {
    let (sock, _) = listener.accept()?;
    Io::new(sock)
}

/// Connects the host side's `unix:PATH` channel. AF_UNIX connects at once or not at all, so
/// the blocking connect never waits.
pub async fn connect_channel(path: &Path) -> io::Result<Io<UnixStream>> {
    let sock = socket()?;
    sock.connect(&SockAddr::unix(path)?)?;
    Io::new(sock)
}

/// What a path is, as `--check` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// An AF_UNIX socket file (a reparse point that is not a directory).
    Socket,
    /// A directory.
    Directory,
    /// Anything else.
    Other,
}

/// What `path` is. Windows cannot open a socket file's target, so it is never followed.
pub fn file_kind(path: &Path, _follow: bool) -> io::Result<FileKind> {
    let meta = fs::symlink_metadata(path)?;
    Ok(if meta.is_dir() {
        FileKind::Directory
    } else if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        FileKind::Socket
    } else {
        FileKind::Other
    })
}

/// Windows decides by ACL, which is not evaluated here: only a read-only file or directory
/// is reported.
pub fn may_write(path: &Path, _dir: bool) -> io::Result<()> {
    if fs::metadata(path)?.permissions().readonly() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "read-only"));
    }
    Ok(())
}

/// Who may connect to the host socket, for `--check`: there are no mode bits on Windows.
pub fn access_note(_mode: u32) -> String {
    "access per the directory's ACL".into()
}
