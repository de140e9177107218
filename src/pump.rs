//! The per-connection task: moves bytes between one local AF_UNIX socket and its stream.
//!
//! One task drives both directions through a single `poll` function, so a connection costs one
//! task and no buffers while idle. Upstream bytes are read from the socket straight into the
//! session's send buffer behind a reserved frame header; downstream bytes the reader task could
//! not write at once wait in the stream's `inbound` buffer, bounded by the window.
//!
//! Each direction ends on its own. Upstream ends at EOF (or ECONNRESET, which on AF_UNIX
//! follows the last bytes of a peer that closed with unread data) with CLOSE, or when the peer
//! sends STOP, with `shutdown(SHUT_RD)` so that the application's further writes fail with
//! EPIPE as they would against the real server. Downstream ends when the peer's CLOSE has been
//! written out; a failed write only stops downstream (STOP to the peer). A RESET aborts both:
//! what already arrived is still delivered (bounded by [`RESET_FLUSH`]), and the socket is
//! closed without reading what the application sent last, so the kernel reports ECONNRESET to
//! it where AF_UNIX can (see `docs/PROTOCOL.md`).

use crate::mux::{Session, Stream, StreamState, OUT_HIGH};
use crate::protocol::{fill_data_header, Frame, ResetReason, HEADER_LEN};
use async_io::{Async, Timer};
use futures_lite::future;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long an aborted stream may take to deliver the bytes that arrived before the abort.
pub const RESET_FLUSH: Duration = Duration::from_secs(5);

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Both directions closed cleanly.
    Closed,
    /// The stream was reset, by the peer or locally.
    Reset(ResetReason),
}

/// Relays between `sock` and `stream` until both directions are closed or the stream is reset.
/// The stream is removed from the session when this returns.
pub async fn pump(session: &Session, stream: &Stream, sock: Rc<Async<UnixStream>>) -> End {
    stream.st.borrow_mut().socket = Some(sock.clone());
    let end = future::poll_fn(|cx| poll_pump(session, stream, &sock, cx)).await;
    if end != End::Closed {
        let flush = future::poll_fn(|cx| {
            let mut st = stream.st.borrow_mut();
            match downstream(session, stream.id, &mut st, &sock, cx) {
                Ok(true) | Err(_) => Poll::Ready(()),
                Ok(false) => Poll::Pending,
            }
        });
        future::or(flush, async {
            Timer::after(RESET_FLUSH).await;
        })
        .await;
    }
    session.forget(stream);
    let mut st = stream.st.borrow_mut();
    st.socket = None;
    st.inbound = Vec::new();
    end
}

fn poll_pump(
    session: &Session,
    stream: &Stream,
    sock: &Async<UnixStream>,
    cx: &mut Context<'_>,
) -> Poll<End> {
    let mut st = stream.st.borrow_mut();
    if let Some(why) = st.reset {
        return Poll::Ready(End::Reset(why));
    }
    let id = stream.id;
    match downstream(session, id, &mut st, sock, cx) {
        Ok(drained) => {
            if drained && st.peer_closed && !st.write_shut {
                st.write_shut = true;
                // With the sending direction already over, the close does it; after STOP the
                // socket is closed with what the application sent last unread, as a server
                // that stopped reading would leave it.
                if !st.read_eof && !st.write_stopped {
                    // ENOTCONN only means the application is gone; the read side will tell.
                    let _ = sock.get_ref().shutdown(Shutdown::Write);
                }
            }
        }
        Err(_) => session.stop_writing(id, &mut st),
    }
    if upstream(session, id, &mut st, sock, cx).is_err() {
        session.reset_stream(stream, &mut st, ResetReason::SOCKET_ERROR);
        return Poll::Ready(End::Reset(ResetReason::SOCKET_ERROR));
    }
    if st.read_eof && st.write_shut {
        return Poll::Ready(End::Closed);
    }
    st.waker = Some(cx.waker().clone());
    Poll::Pending
}

/// Writes queued inbound bytes to the socket. `Ok(true)` once nothing is left to write (or
/// writing stopped), `Ok(false)` while waiting for the socket to take more.
fn downstream(
    session: &Session,
    id: u32,
    st: &mut StreamState,
    sock: &Async<UnixStream>,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    if st.write_stopped {
        return Ok(true);
    }
    while st.pos < st.inbound.len() {
        match sock.get_ref().write(&st.inbound[st.pos..]) {
            Ok(n) => {
                st.pos += n;
                session.delivered(id, st, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match sock.poll_writable(cx) {
                Poll::Ready(r) => r?,
                Poll::Pending => return Ok(false),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if st.inbound.capacity() > 0 {
        // Drained: give the memory back so that an idle stream holds no buffer.
        st.inbound = Vec::new();
    }
    st.pos = 0;
    Ok(true)
}

/// Reads from the socket into DATA frames while there is credit and room in the send buffer.
fn upstream(
    session: &Session,
    id: u32,
    st: &mut StreamState,
    sock: &Async<UnixStream>,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    if st.stop_requested && !st.read_eof {
        // The far application no longer reads: the local one must see EPIPE on its next
        // write, not block. What it already sent stays unread.
        let _ = sock.get_ref().shutdown(Shutdown::Read);
        end_upstream(session, id, st, "the far side stopped reading");
    }
    while !st.read_eof && st.credit > 0 {
        let mut inner = session.inner.borrow_mut();
        if inner.draining {
            return Ok(());
        }
        if inner.out.len() >= OUT_HIGH {
            inner.out_waiters.push(cx.waker().clone());
            return Ok(());
        }
        let want = (st.credit as usize).min(session.max_data);
        let hdr = inner.out.len();
        inner.out.resize(hdr + HEADER_LEN, 0);
        inner.out.reserve(want);
        let spare = &mut inner.out.spare_capacity_mut()[..want];
        match rustix::io::read(sock.get_ref(), spare) {
            Ok(([], _)) => {
                inner.out.truncate(hdr);
                drop(inner);
                end_upstream(session, id, st, "EOF");
            }
            Err(rustix::io::Errno::CONNRESET) => {
                // ECONNRESET comes after the last bytes of an application that closed with
                // data unread: the end of its input, like EOF.
                inner.out.truncate(hdr);
                drop(inner);
                end_upstream(session, id, st, "closed with data unread");
            }
            Ok((filled, _)) => {
                let n = filled.len();
                // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
                unsafe { inner.out.set_len(hdr + HEADER_LEN + n) };
                fill_data_header(&mut inner.out[hdr..hdr + HEADER_LEN], id, n as u32);
                inner.wake_writer();
                st.credit -= n as u32;
                st.sent += n as u64;
                session
                    .stats
                    .bytes_out
                    .set(session.stats.bytes_out.get() + n as u64);
                if n < want {
                    // A short read drained the socket: wait for readiness instead of paying
                    // for a read that would only say "try again". The reactor re-arms the fd
                    // level-triggered, so data that raced in meanwhile is still reported.
                    drop(inner);
                    match sock.poll_readable(cx) {
                        Poll::Ready(r) => r?,
                        Poll::Pending => return Ok(()),
                    }
                }
            }
            Err(e) => {
                inner.out.truncate(hdr);
                drop(inner);
                match e {
                    rustix::io::Errno::AGAIN => match sock.poll_readable(cx) {
                        Poll::Ready(r) => r?,
                        Poll::Pending => return Ok(()),
                    },
                    rustix::io::Errno::INTR => {}
                    e => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Ends the sending direction: CLOSE tells the peer no more DATA follows.
fn end_upstream(session: &Session, id: u32, st: &mut StreamState, why: &str) {
    st.read_eof = true;
    log::debug!("stream {id}: local input ended ({why})");
    session.queue(Frame::Close(id));
}
