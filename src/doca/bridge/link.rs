//! The relay's side of one DOCA connection: reads and writes through the worker's queues.

use super::{signal, wait, Channel, State, OUTBOX_LIMIT};
use crate::counters;
use std::cell::Cell;
use std::io;
use std::rc::Rc;

/// One DOCA connection used as a channel transport.
pub struct Link {
    pub(super) ch: Rc<Channel>,
    pub(super) generation: u64,
    /// Largest message, header included; lowered to the peer's by the handshake.
    pub max_msg: Cell<u32>,
}

impl Link {
    fn gone(&self, st: &State) -> Option<io::Error> {
        if st.generation != self.generation || !st.connected {
            let reset = io::ErrorKind::ConnectionReset;
            return Some(match &st.closed {
                Some(why) => io::Error::new(reset, why.clone()),
                None => io::Error::new(reset, "the DOCA connection closed"),
            });
        }
        None
    }

    /// Lowers the packing size to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        self.max_msg.set(self.max_msg.get().min(agreed));
    }

    /// Receives the next messages: as many whole ones as fit in `buf`, at least one. Messages
    /// hold whole frames, so back to back they are a valid frame stream, and a reader woken
    /// once takes a burst in one call.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut st = self.ch.shared.lock();
                // Messages of earlier connections are stale; those of a later one are not ours.
                // Ours are delivered even after the connection closed (a last ERROR says why).
                let mut n = 0;
                loop {
                    while st.inbox.front().is_some_and(|(g, _)| *g < self.generation) {
                        st.inbox.pop_front();
                    }
                    let Some((_, msg)) = st.inbox.front().filter(|(g, _)| *g == self.generation)
                    else {
                        break;
                    };
                    if msg.len() > buf.len() - n {
                        if n == 0 {
                            return Err(io::Error::other("a DOCA message larger than agreed"));
                        }
                        break;
                    }
                    buf[n..n + msg.len()].copy_from_slice(msg);
                    n += msg.len();
                    st.inbox.pop_front();
                    counters::add_messages(&counters::DOCA_MESSAGES_IN, 1);
                }
                if n > 0 {
                    return Ok(n);
                }
                if let Some(e) = self.gone(&st) {
                    return Err(e);
                }
            }
            wait(&self.ch.reader).await;
        }
    }

    /// Sends `buf`, which holds whole frames, as messages of at most `max_msg` bytes; waits
    /// while the thread's queue is full.
    pub async fn write_frames(&self, buf: &[u8]) -> io::Result<()> {
        let shared = &self.ch.shared;
        for msg in crate::wire::pack_messages(buf, self.max_msg.get() as usize) {
            let msg = msg?;
            loop {
                {
                    let mut st = shared.lock();
                    if let Some(e) = self.gone(&st) {
                        return Err(e);
                    }
                    if st.outbox.len() < OUTBOX_LIMIT {
                        st.outbox.push_back(msg);
                        counters::add_messages(&counters::DOCA_MESSAGES_OUT, 1);
                        break;
                    }
                }
                signal(&shared.wake_thread);
                wait(&self.ch.writer).await;
            }
        }
        // One wakeup for the whole batch: the thread sends until the outbox is empty.
        signal(&shared.wake_thread);
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.ch.shared.lock().release = Some(self.generation);
        signal(&self.ch.shared.wake_thread);
    }
}
