//! A session's own tasks: reading frames, writing frames, keepalive, and the drain at shutdown.

use super::{EndReason, Session};
use crate::link::{FrameReader, Transport};
use crate::mux::{Stream, OUT_HIGH};
use crate::wire::record::Sealer;
use crate::wire::ResetReason;
use crate::wire::STREAM_MAX_MSG;
use async_io::Timer;
use futures_lite::future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

const PING_AFTER: Duration = Duration::from_secs(5);
const DEAD_AFTER: Duration = Duration::from_secs(20);
/// The reader stops taking frames from the channel while this much is queued to send. Stream
/// tasks stop adding DATA at [`OUT_HIGH`] and add at most one frame (of the largest message)
/// past it, so only control replies a peer provokes (PONG, RESET for refused OPENs) can reach
/// this: a peer that floods them is read no faster than it reads its answers, and memory stays
/// bounded. The 1 MiB of headroom above data's own bound matters: if data alone could reach it,
/// two sides in a full-duplex transfer could both stop reading and wait on each other forever.
const OUT_PAUSE: usize = OUT_HIGH + STREAM_MAX_MSG as usize + 1024 * 1024;
/// Frames handled before the reader lets other tasks run, so that a peer that keeps the
/// channel full cannot starve every other connection on the thread.
const READ_BATCH: usize = 1024;
/// Most DATA frames of one stream written with one call (`sendmsg` takes up to 1024 buffers).
const MAX_RUN: usize = 64;

/// Takes the DATA frames for stream `id` at the front of `reader`, up to [`MAX_RUN`], into
/// `run` (where their payloads lie in the reader's buffer): consecutive DATA for one stream (a
/// burst of small DOCA messages, above all) is written to its socket in one call. A frame the
/// reader cannot decode ends the run; the caller's next look reports it.
fn take_run(reader: &mut FrameReader, id: u32, run: &mut Vec<std::ops::Range<usize>>) {
    while run.len() < MAX_RUN && matches!(reader.peek_data(), Ok(Some(i)) if i == id) {
        match reader.take_data() {
            Ok(Some((_, range))) => run.push(range),
            _ => break,
        }
    }
}

impl Session {
    /// Waits until the send buffer is below `limit`.
    async fn out_below(&self, limit: usize) {
        future::poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.dead || inner.out.len() < limit {
                return Poll::Ready(());
            }
            inner.out_waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    async fn read_loop(
        &self,
        mut reader: FrameReader,
        on_open: &mut dyn FnMut(Rc<Stream>),
    ) -> EndReason {
        let mut run = Vec::new();
        loop {
            let mut handled = 0;
            let mut next_yield = READ_BATCH;
            loop {
                match reader.peek_data() {
                    Ok(Some(id)) => {
                        take_run(&mut reader, id, &mut run);
                        let buf = reader.buffered();
                        let parts: Vec<&[u8]> = run.drain(..).map(|r| &buf[r]).collect();
                        handled += parts.len();
                        if !parts.is_empty() {
                            self.on_data(id, &parts);
                        }
                    }
                    Ok(None) => match reader.take_frame() {
                        Ok(Some(frame)) => {
                            handled += 1;
                            if let Err(e) = self.dispatch(frame, on_open) {
                                return e;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return EndReason::BadFrame(e),
                    },
                    Err(e) => return EndReason::BadFrame(e),
                }
                if handled >= next_yield {
                    next_yield = handled + READ_BATCH;
                    future::yield_now().await;
                }
                if self.inner.borrow().out.len() >= OUT_PAUSE {
                    self.out_below(OUT_PAUSE).await;
                }
            }
            if handled >= READ_BATCH / 4 {
                future::yield_now().await;
            }
            if let Err(e) = reader.fill().await {
                return EndReason::ReadFailed(e);
            }
            self.last_rx.set(Instant::now());
        }
    }

    async fn write_loop(&self, transport: &Transport, mut sealer: Option<Sealer>) -> EndReason {
        let mut spare = Vec::with_capacity(64 * 1024);
        loop {
            future::poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if inner.dead || !inner.out.is_empty() {
                    return Poll::Ready(());
                }
                inner.writer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let waiters = {
                let mut inner = self.inner.borrow_mut();
                if inner.dead {
                    return EndReason::Killed;
                }
                inner.writing = true;
                inner.out.take_batch(&mut spare);
                std::mem::take(&mut inner.out_waiters)
            };
            waiters.into_iter().for_each(Waker::wake);
            let written = match &mut sealer {
                Some(sealer) => match sealer.seal(&mut spare) {
                    Ok(mut records) => transport.write_all_vectored(&mut records).await,
                    Err(e) => Err(e),
                },
                None => transport.write_all(&spare).await,
            };
            self.inner.borrow_mut().writing = false;
            // No listener (the usual case) makes this a check of one pointer.
            self.progress.notify(usize::MAX);
            if let Err(e) = written {
                return EndReason::WriteFailed(e);
            }
            self.last_tx.set(Instant::now());
            spare.clear();
            if spare.capacity() > 4 * OUT_HIGH {
                spare = Vec::with_capacity(64 * 1024);
            }
        }
    }

    async fn keepalive_loop(&self) -> EndReason {
        let mut token = 0u32;
        loop {
            Timer::after(Duration::from_secs(1)).await;
            if self.last_rx.get().elapsed() > DEAD_AFTER {
                return EndReason::Silent(DEAD_AFTER);
            }
            if self.last_tx.get().elapsed() >= PING_AFTER {
                token = token.wrapping_add(1);
                self.queue(crate::wire::Frame::Ping(token));
            }
        }
    }

    async fn killed(&self) -> EndReason {
        loop {
            let listener = self.ended.listen();
            if self.is_dead() {
                return EndReason::Killed;
            }
            listener.await;
        }
    }

    /// Runs the session until the channel fails or the session is killed; returns why it ended
    /// and how many streams were reset. `on_open` is called for each stream the peer opens.
    /// On an encrypted channel `sealer` seals every batch, and `reader` opens what arrives.
    pub async fn run(
        &self,
        transport: Transport,
        reader: FrameReader,
        sealer: Option<Sealer>,
        mut on_open: impl FnMut(Rc<Stream>),
    ) -> (EndReason, usize) {
        self.last_rx.set(Instant::now());
        // `killed` also ends a writer blocked on a channel that takes nothing (a session
        // replaced by a newer one must not linger until the keepalive gives up).
        let why = future::or(
            future::or(
                self.read_loop(reader, &mut on_open),
                self.write_loop(&transport, sealer),
            ),
            future::or(self.keepalive_loop(), self.killed()),
        )
        .await;
        let reason = if self.peer_goaway().is_some() {
            ResetReason::SHUTDOWN
        } else {
            ResetReason::CHANNEL_LOST
        };
        let streams = self.kill_with(reason);
        transport.close();
        (why, streams)
    }

    /// The graceful part of a shutdown: no new streams (an OPEN is answered with RESET
    /// "shutting down"), while the open ones keep relaying both ways until each ends or
    /// `deadline` passes. Returns how many are still open.
    pub async fn finish_streams(&self, deadline: Instant) -> usize {
        self.inner.borrow_mut().closing = true;
        let all_gone = async {
            loop {
                let gone = self.progress.listen();
                if self.is_dead() || self.stream_count() == 0 {
                    return;
                }
                gone.await;
            }
        };
        future::or(all_gone, async {
            Timer::at(deadline).await;
        })
        .await;
        if self.is_dead() {
            0
        } else {
            self.stream_count()
        }
    }

    /// Shutdown: stops reading local sockets, cuts every stream after the bytes already read
    /// (RESET with reason "shutting down" follows them on the channel), and waits up to
    /// `grace` for the writer to hand everything to the channel and for the stream tasks to
    /// deliver what they had received. Returns how many streams were cut.
    pub async fn drain(&self, grace: Duration) -> usize {
        let streams: Vec<Rc<Stream>> = {
            let mut inner = self.inner.borrow_mut();
            inner.draining = true;
            inner.streams.values().cloned().collect()
        };
        for stream in &streams {
            let mut st = stream.st.borrow_mut();
            self.reset_stream(stream, &mut st, ResetReason::SHUTDOWN);
        }
        let deadline = Instant::now() + grace;
        let done = async {
            loop {
                // Listening before looking: a change in between still wakes us.
                let (flush, task) = (self.progress.listen(), self.stats.task_ended.listen());
                let flushed = {
                    let inner = self.inner.borrow();
                    inner.out.is_empty() && !inner.writing
                };
                if self.is_dead() || (flushed && self.stats.clients.get() == 0) {
                    return;
                }
                future::or(flush, task).await;
            }
        };
        future::or(done, async {
            Timer::at(deadline).await;
        })
        .await;
        streams.len()
    }
}
