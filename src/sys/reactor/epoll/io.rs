//! A socket registered with this thread's [`Reactor`](super::Reactor), and the readiness rules
//! its users follow.

use super::{Reactor, Source};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::task::{Context, Poll};

/// A read that fills at least this much, even short of the buffer, leaves the socket marked
/// readable: the sender is streaming and has likely refilled the socket by the time the bytes
/// have been passed on, so one more read is worth it. Smaller short reads mark it drained, so
/// request/response traffic never pays for a read that can only say EAGAIN.
pub const BULK: usize = 64 * 1024;

/// A non-blocking socket waited on by this thread's reactor.
///
/// Readiness is edge-triggered: the flags say what the socket showed since an operation last
/// found it drained. Callers clear them with [`Io::drained_read`] and [`Io::drained_write`] on
/// EAGAIN and on short transfers; the kernel reports any later change as a new edge.
pub struct Io<T: AsFd> {
    inner: T,
    /// A message socket (SEQPACKET): a short read is one message, not a drained socket.
    messages: bool,
    key: usize,
    source: Rc<Source>,
    reactor: Rc<Reactor>,
}

impl<T: AsFd> Io<T> {
    /// Registers `inner`, a stream socket already in non-blocking mode.
    pub fn new(inner: T) -> io::Result<Io<T>> {
        Self::register(inner, false)
    }

    /// Registers `inner`, a message socket (SEQPACKET) already in non-blocking mode: only
    /// EAGAIN says it is drained.
    pub fn with_messages(inner: T) -> io::Result<Io<T>> {
        Self::register(inner, true)
    }

    fn register(inner: T, messages: bool) -> io::Result<Io<T>> {
        let reactor = Reactor::current()?;
        let (key, source) = reactor.register(inner.as_fd())?;
        Ok(Io {
            inner,
            messages,
            key,
            source,
            reactor,
        })
    }

    /// The socket, for system calls.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Ready when the socket may have bytes (or EOF, or an error) to read; otherwise the task
    /// is woken when it does.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        poll_flag(&self.source.readable, &self.source.reader, cx)
    }

    /// Ready when the socket may take bytes; otherwise the task is woken when it does.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        poll_flag(&self.source.writable, &self.source.writer, cx)
    }

    /// Whether the socket may take bytes, without waiting.
    pub fn is_writable(&self) -> bool {
        self.source.writable.get()
    }

    /// A read said EAGAIN: wait for the next edge before reading again.
    pub fn drained_read(&self) {
        self.source.readable.set(false);
    }

    /// A write said EAGAIN or took less than offered.
    pub fn drained_write(&self) {
        self.source.writable.set(false);
        self.reactor
            .want_writable(self.key, &self.source, self.inner.as_fd());
    }

    /// Applies the rule for a read of `n` bytes into `room`: a short read means the socket is
    /// drained, unless it was at least [`BULK`] and the caller asks to `keep_bulk` (it will
    /// read again only after other work), or the peer hung up: the end of input is a state,
    /// not an edge, so the next read must report it instead of waiting for an edge that came.
    pub fn after_read(&self, n: usize, room: usize, keep_bulk: bool) {
        let bulk = keep_bulk && n >= BULK;
        if n < room && !bulk && !self.messages && !self.source.hung_up.get() {
            self.drained_read();
        }
    }

    /// One read into spare capacity; the count of bytes it initialised. Leaves the readiness
    /// flags to the caller (see [`Io::after_read`]).
    pub fn read_spare(&self, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
        Ok(rustix::io::read(&self.inner, buf)?.0.len())
    }

    /// Reads some bytes into `buf`, waiting for readiness as needed; 0 is EOF. Any short read
    /// counts as draining the socket: the caller reads again at once, before the sender can
    /// have added much, so waiting for the edge is cheaper than a read that may say EAGAIN.
    pub async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| loop {
            if self.poll_readable(cx).is_pending() {
                return Poll::Pending;
            }
            match rustix::io::read(&self.inner, &mut *buf) {
                Ok(n) => {
                    self.after_read(n, buf.len(), false);
                    return Poll::Ready(Ok(n));
                }
                Err(rustix::io::Errno::AGAIN) => self.drained_read(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        })
        .await
    }

    /// Writes all of `buf`, waiting for room as needed.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        poll_fn(|cx| {
            while !buf.is_empty() {
                if self.poll_writable(cx).is_pending() {
                    return Poll::Pending;
                }
                match self.write_now(buf) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => buf = &buf[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Writes all of `bufs`, in order, waiting for room as needed.
    pub async fn write_all_vectored(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        poll_fn(|cx| {
            while !bufs.is_empty() {
                if self.poll_writable(cx).is_pending() {
                    return Poll::Pending;
                }
                let offered: usize = bufs.iter().map(|b| b.len()).sum();
                let n = match rustix::io::writev(&self.inner, bufs) {
                    Ok(0) if offered > 0 => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
                    }
                    Ok(n) => n,
                    Err(rustix::io::Errno::AGAIN) => {
                        self.drained_write();
                        continue;
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Poll::Ready(Err(e.into())),
                };
                if n < offered {
                    self.drained_write();
                }
                IoSlice::advance_slices(&mut bufs, n);
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// One write attempt that keeps the readiness flag right: a short write or EAGAIN marks the
    /// socket full. EINTR is retried. Never raises SIGPIPE.
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored_now(&[IoSlice::new(buf)])
    }

    /// [`Io::write_now`] for several buffers in one call (`sendmsg`, so never SIGPIPE either).
    pub fn write_vectored_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        loop {
            let r = rustix::net::sendmsg(
                &self.inner,
                bufs,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::NOSIGNAL,
            );
            match r {
                Ok(n) => {
                    if n < offered {
                        self.drained_write();
                    }
                    return Ok(n);
                }
                Err(rustix::io::Errno::AGAIN) => {
                    self.drained_write();
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn poll_flag(
    flag: &std::cell::Cell<bool>,
    slot: &std::cell::RefCell<Option<std::task::Waker>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if flag.get() {
        return Poll::Ready(());
    }
    let mut slot = slot.borrow_mut();
    match slot.as_ref() {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
    Poll::Pending
}

impl<T: AsFd> Drop for Io<T> {
    fn drop(&mut self) {
        self.reactor.deregister(self.key, self.inner.as_fd());
    }
}
