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

use crate::mux::stream::StreamState;
use crate::mux::{Session, Stream};
use crate::sys::reactor::{Io, BULK};
use crate::sys::unix_socket::UnixStream;
use crate::wire::{Frame, ResetReason};
use async_io::Timer;
use futures_lite::future;
use std::io;
use std::net::Shutdown;
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
    /// The stream was reset: by the peer (its reason), or locally by the relay (shutdown,
    /// channel lost, protocol violation).
    Reset(ResetReason),
    /// The local socket failed (this side's application reset or broke its connection); the
    /// peer was told with a RESET.
    SocketError,
}

/// Relays between `sock` and `stream` until both directions are closed or the stream is reset.
/// The stream is removed from the session when this returns.
pub async fn pump(session: &Session, stream: &Stream, sock: Rc<Io<UnixStream>>) -> End {
    stream.st.borrow_mut().attach(sock.clone());
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
    stream.st.borrow_mut().detach();
    end
}

fn poll_pump(
    session: &Session,
    stream: &Stream,
    sock: &Io<UnixStream>,
    cx: &mut Context<'_>,
) -> Poll<End> {
    let mut st = stream.st.borrow_mut();
    if let Some(why) = st.life.reset_reason() {
        return Poll::Ready(End::Reset(why));
    }
    let id = stream.id;
    match downstream(session, id, &mut st, sock, cx) {
        Ok(drained) => {
            if drained && st.life.on_delivered_all() {
                // ENOTCONN only means the application is gone; the read side will tell.
                let _ = sock.get_ref().shutdown(Shutdown::Write);
            }
        }
        Err(_) => session.stop_writing(id, &mut st),
    }
    if upstream(session, id, &mut st, sock, cx).is_err() {
        session.reset_stream(stream, &mut st, ResetReason::SOCKET_ERROR);
        return Poll::Ready(End::SocketError);
    }
    if st.life.is_finished() {
        return Poll::Ready(End::Closed);
    }
    st.set_waker(cx.waker());
    Poll::Pending
}

/// Writes queued inbound bytes to the socket. `Ok(true)` once nothing is left to write (or
/// writing stopped), `Ok(false)` while waiting for the socket to take more.
fn downstream(
    session: &Session,
    id: u32,
    st: &mut StreamState,
    sock: &Io<UnixStream>,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    if st.life.recv_stopped() {
        return Ok(true);
    }
    while !st.inbound.is_empty() {
        if sock.poll_writable(cx).is_pending() {
            return Ok(false);
        }
        match sock.write_now(st.inbound.pending()) {
            Ok(n) => {
                st.inbound.advance(n);
                session.delivered(id, st, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    // Drained: an idle stream holds no buffer.
    st.inbound.release();
    Ok(true)
}

/// Reads from the socket into DATA frames while there is credit and room in the send buffer.
///
/// A read that came back short but large ([`BULK`]) leaves its frame open: the task yields and
/// the next read extends the same frame, as long as nothing was queued after it and the writer
/// has not taken it. The writer is woken only once the frame is closed (a small read, EAGAIN,
/// a full frame, no credit or room left), so a client streaming through its 208 KiB socket
/// buffer fills one frame of up to the message size with several reads, the channel carries
/// it in one write, and the far side writes it to its socket in one write.
fn upstream(
    session: &Session,
    id: u32,
    st: &mut StreamState,
    sock: &Io<UnixStream>,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    if st.life.stop_pending() {
        // The far application no longer reads: the local one must see EPIPE on its next
        // write, not block. What it already sent stays unread.
        let _ = sock.get_ref().shutdown(Shutdown::Read);
        end_upstream(session, id, st, "the far side stopped reading");
    }
    let result = read_frames(session, id, st, sock, cx);
    if !matches!(result, Ok(true)) && st.open.take().is_some() {
        session.wake_writer();
    }
    result.map(|_| ())
}

/// The reading loop of [`upstream`]; `Ok(true)` when it left a frame open and will be back.
fn read_frames(
    session: &Session,
    id: u32,
    st: &mut StreamState,
    sock: &Io<UnixStream>,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    while st.life.is_sending() && st.flow.credit() > 0 {
        if session.send_blocked(cx) || sock.poll_readable(cx).is_pending() {
            return Ok(false);
        }
        let mut slot = session.reserve_data(id, st.open, st.flow.credit());
        let (new_frame, want) = (slot.have() == 0, slot.want());
        match sock.read_spare(slot.room()) {
            Ok(0) => {
                drop(slot);
                end_upstream(session, id, st, "EOF");
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                // ECONNRESET comes after the last bytes of an application that closed with
                // data unread: the end of its input, like EOF.
                drop(slot);
                end_upstream(session, id, st, "closed with data unread");
            }
            Ok(n) => {
                // SAFETY: `read_spare` initialised the first `n` bytes of the room.
                st.open = Some(unsafe { slot.commit(n) });
                st.flow.consume(n);
                st.count_sent(n);
                session.count_sent(n, new_frame);
                sock.after_read(n, want, true);
                if n < want && n >= BULK {
                    // A streaming sender refills the socket meanwhile: come back after the
                    // other runnable tasks and grow this frame.
                    cx.waker().wake_by_ref();
                    return Ok(true);
                }
            }
            Err(e) => {
                drop(slot);
                match e.kind() {
                    io::ErrorKind::WouldBlock => sock.drained_read(),
                    io::ErrorKind::Interrupted => {}
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(false)
}

/// Ends the sending direction: CLOSE tells the peer no more DATA follows.
fn end_upstream(session: &Session, id: u32, st: &mut StreamState, why: &str) {
    if st.life.on_read_eof() {
        log::debug!("stream {id}: local input ended ({why})");
        session.queue(Frame::Close(id));
    }
}
