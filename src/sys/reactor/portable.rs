//! The data-path event loop where there is no epoll (Windows): the same API as the Linux loop
//! in `reactor/mod.rs`, built on async-io's reactor (IOCP through `polling` on Windows).
//!
//! The Linux loop exists to save system calls per relayed message; here correctness and the
//! same readiness rules come first. Each [`Io`] keeps the Linux loop's per-socket flags
//! (optimistic until an operation finds the socket drained) and asks async-io for the next
//! readiness only then, so the relay core drives both loops the same way.
//! [`block_on`] is async-io's: it runs the reactor on this thread while the executor idles.

use async_io::Async;
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

/// What a socket must offer to be waited on here (`AsFd` on Linux).
#[cfg(unix)]
pub use std::os::fd::AsFd as Socket;
#[cfg(windows)]
pub use std::os::windows::io::AsSocket as Socket;

/// As on Linux: a read of at least this much leaves the socket marked readable.
pub const BULK: usize = 64 * 1024;

/// A non-blocking socket waited on by async-io's reactor, with the Linux loop's readiness
/// flags (see [`Io::drained_read`]).
pub struct Io<T: Socket> {
    inner: Async<T>,
    /// A message socket: a short read is one message, not a drained socket.
    messages: bool,
    readable: Cell<bool>,
    writable: Cell<bool>,
}

impl<T: Socket> Io<T> {
    /// Registers `inner`, a stream socket (made non-blocking here).
    pub fn new(inner: T) -> io::Result<Io<T>> {
        Self::register(inner, false)
    }

    /// Registers `inner`, a message socket: only "would block" says it is drained.
    pub fn with_messages(inner: T) -> io::Result<Io<T>> {
        Self::register(inner, true)
    }

    fn register(inner: T, messages: bool) -> io::Result<Io<T>> {
        Ok(Io {
            inner: Async::new(inner)?,
            messages,
            readable: Cell::new(true),
            writable: Cell::new(true),
        })
    }

    /// The socket, for system calls.
    pub fn get_ref(&self) -> &T {
        self.inner.get_ref()
    }

    /// Ready when the socket may have bytes (or EOF, or an error) to read.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        poll_flag(&self.readable, || self.inner.poll_readable(cx))
    }

    /// Ready when the socket may take bytes.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        poll_flag(&self.writable, || self.inner.poll_writable(cx))
    }

    /// Whether the socket may take bytes, without waiting.
    pub fn is_writable(&self) -> bool {
        self.writable.get()
    }

    /// A read said "would block": wait for readiness before reading again.
    pub fn drained_read(&self) {
        self.readable.set(false);
    }

    /// A write said "would block" or took less than offered.
    pub fn drained_write(&self) {
        self.writable.set(false);
    }

    /// The Linux loop's rule for a read of `n` bytes into `room`. Without a sticky hang-up
    /// flag, a read of 0 (EOF) keeps the socket readable so that EOF is reported again.
    pub fn after_read(&self, n: usize, room: usize, keep_bulk: bool) {
        let bulk = keep_bulk && n >= BULK;
        if n > 0 && n < room && !bulk && !self.messages {
            self.drained_read();
        }
    }

    /// One read into spare capacity; the count of bytes it initialised. Leaves the readiness
    /// flags to the caller, as a plain `read` would.
    pub fn read_spare(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        socket2::SockRef::from(self.get_ref()).recv(buf)
    }

    /// Reads some bytes into `buf`, waiting for readiness as needed; 0 is EOF.
    pub async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| loop {
            if self.poll_readable(cx).is_pending() {
                return Poll::Pending;
            }
            // SAFETY: `recv` only writes initialised bytes into the buffer.
            let spare = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            match self.read_spare(spare) {
                Ok(n) => {
                    self.after_read(n, buf.len(), false);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained_read(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// Writes all of `buf`, waiting for room as needed.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| self.poll_send(cx, buf.len(), |s| s.send(buf))).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Writes all of `bufs`, in order, waiting for room as needed.
    pub async fn write_all_vectored(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        while !bufs.is_empty() {
            let offered = bufs.iter().map(|b| b.len()).sum();
            let n = poll_fn(|cx| self.poll_send(cx, offered, |s| s.send_vectored(bufs))).await?;
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    }

    /// One write attempt that keeps the readiness flag right.
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_once(buf.len(), &mut |s| s.send(buf))
    }

    /// [`Io::write_now`] for several buffers in one call.
    pub fn write_vectored_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        self.send_once(offered, &mut |s| s.send_vectored(bufs))
    }

    /// Waits for room, then sends what `send` takes of `offered` bytes; 0 taken is an error.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        offered: usize,
        mut send: impl FnMut(socket2::SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.poll_writable(cx).is_pending() {
                return Poll::Pending;
            }
            match self.send_once(offered, &mut send) {
                Ok(0) if offered > 0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    /// One send, retried on EINTR; a short send or "would block" marks the socket full.
    fn send_once(
        &self,
        offered: usize,
        send: &mut impl FnMut(socket2::SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match send(socket2::SockRef::from(self.get_ref())) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => {
                    let full = match &r {
                        Ok(n) => *n < offered,
                        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                    };
                    if full {
                        self.drained_write();
                    }
                    return r;
                }
            }
        }
    }
}

/// Ready while `flag` is set; otherwise asks async-io (`poll`), which registers the task and
/// reports readiness that arrived since the operation that cleared the flag.
fn poll_flag(flag: &Cell<bool>, poll: impl FnOnce() -> Poll<io::Result<()>>) -> Poll<()> {
    if flag.get() {
        return Poll::Ready(());
    }
    match poll() {
        // An error is readiness too: the next operation reports it.
        Poll::Ready(_) => {
            flag.set(true);
            Poll::Ready(())
        }
        Poll::Pending => Poll::Pending,
    }
}

/// Busy polling needs the Linux event loop (`reactor/mod.rs`); this one is async-io's, which
/// has none. Zero is accepted; `ops::refuse` turns anything else down first, with a
/// message naming the flag.
pub fn set_busy_poll(window: std::time::Duration) -> io::Result<()> {
    if window.is_zero() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "busy polling needs the Linux event loop",
        ))
    }
}

/// Runs `future` to completion on this thread, driving async-io's reactor while it waits.
pub fn block_on<T>(future: impl Future<Output = T>) -> io::Result<T> {
    Ok(async_io::block_on(future))
}
