//! What the reader task does with each frame it receives: DATA goes to the stream's socket
//! (straight from the receive buffer when nothing is queued for it), control frames change the
//! stream's lifecycle or flow control, and a frame that breaks the session's rules ends it.

use super::{EndReason, Session};
use crate::counters::Outcome;
use crate::mux::lifecycle::DataVerdict;
use crate::mux::stream::{Stream, StreamState};
use crate::wire::{Frame, ResetReason};
use std::io::IoSlice;
use std::rc::Rc;

impl Session {
    /// Counts `n` bytes written to the local socket, and credits them back to the peer when a
    /// WINDOW is due.
    pub(in crate::mux) fn delivered(&self, id: u32, st: &mut StreamState, n: usize) {
        self.stats
            .bytes_in
            .set(self.stats.bytes_in.get() + n as u64);
        let frames = &self.stats.counters.frames_in;
        frames.set(frames.get() + 1);
        if st.life.reset_reason().is_some() {
            return; // the peer no longer sends on this stream
        }
        st.count_received(n);
        if let Some(due) = st.flow.on_written(n) {
            self.queue(Frame::Window(id, due));
        }
    }

    fn stream(&self, id: u32) -> Option<Rc<Stream>> {
        self.inner.borrow().streams.get(&id).cloned()
    }

    /// DATA for stream `id`: one frame's payload, or the payloads of consecutive frames for it,
    /// which are written to the socket in one call.
    pub(super) fn on_data(&self, id: u32, parts: &[&[u8]]) {
        let Some(stream) = self.stream(id) else {
            return; // already closed here; the peer will learn it from our CLOSE or RESET
        };
        let mut st = stream.st.borrow_mut();
        let verdict = st.life.on_data();
        if verdict == DataVerdict::Ignore {
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let over = !st.flow.admits(len);
        if over || verdict == DataVerdict::Violation {
            crate::logging::ratelimit::log(
                log::Level::Warn,
                crate::logging::ratelimit::Kind::FlowControl,
                format_args!(
                    "stream {id}: peer broke flow control or sent data after close; resetting"
                ),
            );
            return self.reset_stream(&stream, &mut st, ResetReason::PROTOCOL);
        }
        if verdict == DataVerdict::Discard {
            return; // sent before the peer saw our STOP
        }
        st.flow.on_received(len);
        let mut written = 0;
        // Fast path: nothing queued, so hand the bytes to the socket without copying them.
        if st.inbound.is_empty() {
            if let Some(sock) = st.writable_socket() {
                let r = match parts {
                    [one] => sock.write_now(one),
                    _ => {
                        let slices: Vec<_> = parts.iter().map(|p| IoSlice::new(p)).collect();
                        sock.write_vectored_now(&slices)
                    }
                };
                match r {
                    Ok(n) => {
                        written = n;
                        self.delivered(id, &mut st, n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return self.stop_writing(id, &mut st),
                }
            }
        }
        if written < len {
            st.inbound.append(parts, written);
            st.wake();
        }
    }

    fn on_open(&self, id: u32) -> Result<Option<Rc<Stream>>, EndReason> {
        if !self.accept_opens {
            return Err(EndReason::OpenRefused);
        }
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
            return Ok(None);
        }
        if inner.draining || inner.closing {
            inner.out.push(Frame::Reset(id, ResetReason::SHUTDOWN));
            inner.wake_writer();
            return Ok(None);
        }
        if id == 0 || inner.streams.contains_key(&id) {
            return Err(EndReason::DuplicateOpen(id));
        }
        if inner.streams.len() >= self.max_streams.get() {
            self.stats.counters.stream_ended(Outcome::RefusedLimit);
            crate::logging::ratelimit::log(
                log::Level::Warn,
                crate::logging::ratelimit::Kind::StreamLimit,
                format_args!(
                    "stream {id}: refused, {} streams are open (the limit)",
                    self.max_streams.get()
                ),
            );
            inner.out.push(Frame::Reset(id, ResetReason::LIMIT));
            inner.wake_writer();
            return Ok(None);
        }
        let stream = self.new_stream(id, None);
        inner.streams.insert(id, stream.clone());
        Ok(Some(stream))
    }

    /// Handles one received frame. An `Err` ends the session.
    pub(super) fn dispatch(
        &self,
        frame: Frame<'_>,
        on_open: &mut dyn FnMut(Rc<Stream>),
    ) -> Result<(), EndReason> {
        let with = |id: u32, f: &mut dyn FnMut(&mut StreamState)| {
            if let Some(stream) = self.stream(id) {
                let mut st = stream.st.borrow_mut();
                f(&mut st);
                st.wake();
            }
        };
        match frame {
            Frame::Data(id, data) => self.on_data(id, &[data]),
            Frame::Window(id, n) => with(id, &mut |st| st.flow.grant(n)),
            Frame::Close(id) => with(id, &mut |st| {
                st.life.on_peer_close();
            }),
            Frame::Stop(id) => with(id, &mut |st| {
                st.life.on_stop();
            }),
            Frame::Reset(id, why) => {
                if let Some(stream) = self.stream(id) {
                    stream.st.borrow_mut().life.reset(why);
                    stream.st.borrow_mut().wake();
                    self.forget(&stream);
                }
            }
            Frame::Open(id) => {
                if let Some(stream) = self.on_open(id)? {
                    on_open(stream);
                }
            }
            Frame::Ping(token) => self.queue(Frame::Pong(token)),
            // The takeover probe waits for an answer to its PING (rare: once a second at most).
            Frame::Pong(_) => {
                self.progress.notify(usize::MAX);
            }
            Frame::Error(msg) => {
                return Err(EndReason::PeerError(crate::logging::text::lossy(msg)))
            }
            Frame::GoAway(msg) => {
                let why = crate::logging::text::lossy(msg);
                *self.goaway.borrow_mut() = Some(why.clone());
                return Err(EndReason::PeerShutdown(why));
            }
            Frame::Hello(_) | Frame::Auth(_) => return Err(EndReason::HandshakeFrame),
        }
        Ok(())
    }
}
