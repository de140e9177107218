//! AF_UNIX sockets: binding listeners (stale-file handling, a backlog sized for bursts, the mode
//! bits, removal on exit, or the socket systemd passes), and the relay's own connections,
//! accepted or connected straight into its event loop ([`crate::sys::reactor`]).

use crate::error::Error;
use crate::sys::reactor::Io;
use async_io::Async;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A listening AF_UNIX socket, as [`accept`] takes it.
pub use std::os::unix::net::UnixListener;
/// A relayed connection's local socket (a Winsock AF_UNIX socket on Windows).
pub use std::os::unix::net::UnixStream;

/// Removes the socket file when dropped, unless the file was replaced meanwhile.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn nonblocking_socket() -> io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// Whether something listens on `path`: a non-blocking connect, so that a live listener with a
/// full backlog (EAGAIN) counts as live instead of hanging the start-up.
fn probe(path: &Path) -> io::Result<()> {
    let fd = nonblocking_socket()?;
    match rustix::net::connect(&fd, &SocketAddrUnix::new(path)?) {
        Ok(()) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a process listens on the socket `path` (for `--check`).
pub fn listening(path: &Path) -> bool {
    probe(path).is_ok()
}

/// Binds `path` with a listen backlog of at least `backlog` and mode `mode`.
///
/// An existing socket file nobody listens on is replaced; a live socket or any other kind of
/// file is an error, and the file is left alone. A failure that a restart cannot fix (missing
/// directory, path too long, no permission) is a configuration error (exit 2), so that systemd
/// does not restart the relay every few seconds for ever; a busy path stays a runtime error.
pub fn bind(
    path: &Path,
    mode: u32,
    backlog: u32,
) -> Result<(Async<UnixListener>, SocketFile), Error> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = fs::symlink_metadata(path) {
        super::clear_stale_socket(path, meta.file_type().is_socket(), probe)?;
    }
    let what = || format!("binding {}", path.display());
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io(what(), e.into()))?;
    let addr = SocketAddrUnix::new(path).map_err(|e| bind_error(path, e))?;
    bind_with_mode(&fd, &addr, mode).map_err(|e| bind_error(path, e))?;
    let ino = fs::symlink_metadata(path)
        .map_err(|e| Error::io(what(), e))?
        .ino();
    let file = SocketFile {
        path: path.into(),
        ino,
    };
    // The kernel caps this at net.core.somaxconn; ask for enough to absorb a burst of clients.
    let backlog = backlog.max(128).min(i32::MAX as u32) as i32;
    rustix::net::listen(&fd, backlog).map_err(|e| Error::io(what(), e.into()))?;
    let listener = Async::new(UnixListener::from(fd)).map_err(|e| Error::io(what(), e))?;
    Ok((listener, file))
}

/// Binds with the socket file created in its final mode. The mode is not set by path after
/// the bind: in a directory others may write to, the path could by then be a symlink to
/// another file, whose mode a `chmod` would change. bind(2) creates the file as 0777 less the
/// umask, so the umask is set to the complement of `mode` for the bind alone. The umask is
/// process-wide; no other thread of the relay creates files, and it is restored at once.
fn bind_with_mode(
    fd: &std::os::fd::OwnedFd,
    addr: &SocketAddrUnix,
    mode: u32,
) -> rustix::io::Result<()> {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_bits_truncate((!mode & 0o777) as _));
    let bound = rustix::net::bind(fd, addr);
    rustix::process::umask(old);
    bound
}

/// The error for a failed bind: exit 2 for what only the operator can fix.
fn bind_error(path: &Path, e: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fix = match e {
        Errno::NOENT | Errno::NOTDIR => format!(
            "the directory {} is missing; create it (under systemd, RuntimeDirectory= does)",
            dir.display()
        ),
        Errno::ACCESS | Errno::PERM | Errno::ROFS => format!(
            "this user may not create files in {}; pick another directory or give the relay \
             its group (under systemd, ReadWritePaths= for a read-only file system)",
            dir.display()
        ),
        Errno::NAMETOOLONG | Errno::INVAL => "the path is too long for an AF_UNIX socket".into(),
        _ => return Error::io(format!("binding {}", path.display()), e.into()),
    };
    Error::config(format!(
        "binding {}: {}: {fix}",
        path.display(),
        io::Error::from(e)
    ))
}

/// A client listener on `path`: the socket the service manager passed (socket activation;
/// it owns the file), else `path` bound here ([`bind`]) with the file removed when the guard
/// drops.
pub fn listener(
    path: &Path,
    mode: u32,
    backlog: u32,
) -> Result<(Async<UnixListener>, Option<SocketFile>), Error> {
    if let Some(fd) = crate::sys::service::listen_fd()? {
        log::info!("using the listening socket passed by systemd");
        let l = Async::new(UnixListener::from(fd))
            .map_err(|e| Error::io("watching the socket passed by systemd", e))?;
        return Ok((l, None));
    }
    let (l, file) = bind(path, mode, backlog)?;
    Ok((l, Some(file)))
}

/// Connects a `unix:PATH` channel, with the send buffer of the relay's own AF_UNIX sockets.
pub async fn connect_channel(path: &Path) -> io::Result<Io<UnixStream>> {
    let s = async_net::unix::UnixStream::connect(path).await?;
    tune(&s);
    crate::sys::reactor::own(s.into())
}

/// An AF_UNIX socket of any type as a socket of the event loop: a stream socket, or one that
/// keeps message boundaries (SEQPACKET).
pub fn own_any(s: UnixStream) -> io::Result<Io<UnixStream>> {
    use rustix::net::sockopt;
    s.set_nonblocking(true)?;
    if sockopt::socket_type(&s)? == SocketType::STREAM {
        Io::new(s)
    } else {
        Io::with_messages(s)
    }
}

/// Send buffer asked for on the relay's own AF_UNIX connections (the kernel doubles it and caps
/// it at `net.core.wmem_max`). With the default (208 KiB) a bulk download to a client went out
/// in 214 KiB writes, each followed by a wait for room; with this one, what queued up while
/// the application was busy goes out in one write. The memory is only used for bytes queued.
const SEND_BUFFER: usize = 1024 * 1024;

fn tune(fd: impl std::os::fd::AsFd) {
    // Only a throughput hint: the default works too.
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, SEND_BUFFER);
}

/// Accepts one client as a socket of the relay's own event loop, or `WouldBlock`.
pub fn accept(listener: &UnixListener) -> io::Result<Io<UnixStream>> {
    let fd = rustix::net::accept_with(listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)?;
    tune(&fd);
    Io::new(UnixStream::from(fd))
}

/// Connects to `path` without blocking. AF_UNIX connects at once or not at all: a full listen
/// backlog is `WouldBlock`, a missing listener `ConnectionRefused` or `NotFound`.
pub fn connect(path: &Path) -> io::Result<Io<UnixStream>> {
    let fd = nonblocking_socket()?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    tune(&fd);
    Io::new(UnixStream::from(fd))
}

/// What a path is, as `--check` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// An AF_UNIX socket file.
    Socket,
    /// A directory.
    Directory,
    /// Anything else.
    Other,
}

/// What `path` is; `follow` follows a symlink at the end.
pub fn file_kind(path: &Path, follow: bool) -> io::Result<FileKind> {
    use rustix::fs::FileType;
    let st = if follow {
        rustix::fs::stat(path)
    } else {
        rustix::fs::lstat(path)
    }?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Socket => FileKind::Socket,
        FileType::Directory => FileKind::Directory,
        _ => FileKind::Other,
    })
}

/// Whether this user may create a socket in the directory `path` (`dir`) or connect to the
/// socket `path`.
pub fn may_write(path: &Path, dir: bool) -> io::Result<()> {
    use rustix::fs::Access;
    let access = if dir {
        Access::WRITE_OK | Access::EXEC_OK
    } else {
        Access::WRITE_OK
    };
    Ok(rustix::fs::access(path, access)?)
}

/// Who may connect to the host socket, for `--check`: its mode.
pub fn access_note(mode: u32) -> String {
    format!("mode {mode:04o}")
}
