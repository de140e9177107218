//! The DOCA Comch backend (DOCA 2.7 and later; the only host-DPU channel API since 2.9).
//!
//! Comch has no event-triggered completions: someone must call `doca_pe_progress`. One
//! dedicated thread owns the progress engine, the context and every Comch call. It exchanges
//! whole messages with the async relay through queues under one mutex and wakes it through
//! eventfds the reactor watches. While traffic flows the thread keeps progressing; when idle it
//! sleeps on its own eventfd with a timeout that doubles from 10 µs to 5 ms, so an idle relay
//! costs about 200 wakeups a second.

mod callbacks;
pub mod ffi;
mod worker;

use crate::config::Role;
use crate::doca::ffi::{Dev, DevRep};
use crate::doca::Device;
use async_io::Async;
use ffi::ComchLib;
use rustix::event::EventfdFlags;
use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Messages the relay may queue for the thread before its writer waits.
const OUTBOX_LIMIT: usize = 256;

#[derive(Default)]
struct State {
    /// Message size in force, set once the context is configured.
    max_msg: u32,
    /// Relay to thread: messages to send on the current connection.
    outbox: VecDeque<Vec<u8>>,
    /// Thread to relay: messages received, tagged with their connection's generation.
    inbox: VecDeque<(u64, Vec<u8>)>,
    /// Counts connections; a link belongs to one generation.
    generation: u64,
    connected: bool,
    /// The generation the relay has taken (DPU: accepted).
    taken: u64,
    /// The relay is done with this generation: disconnect it.
    release: Option<u64>,
    /// Set when the thread has ended, with why.
    closed: Option<String>,
    stop: bool,
}

struct Shared {
    st: Mutex<State>,
    wake_thread: OwnedFd,
    wake_reader: OwnedFd,
    wake_writer: OwnedFd,
    wake_accept: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
    )?)
}

fn signal(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

fn drain(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// Waits until `fd` (an eventfd the thread signals) is readable, then resets it.
async fn wait(fd: &Async<OwnedFd>) -> io::Result<()> {
    fd.readable().await?;
    drain(fd.get_ref());
    Ok(())
}

/// The device pointers handed to the thread. The [`Channel`] keeps the device open until the
/// thread has been joined.
struct RawDev(*mut Dev, *mut DevRep);
// SAFETY: the pointers are only used by the Comch thread, and the device outlives it.
unsafe impl Send for RawDev {}

/// A running Comch server (DPU) or client (host) and its thread.
pub struct Channel {
    shared: Arc<Shared>,
    reader: Async<OwnedFd>,
    writer: Async<OwnedFd>,
    accept: Async<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    _dev: Rc<Device>,
}

impl Channel {
    /// Starts the thread: a server named `name` on the DPU, a client connecting to it on the
    /// host. Waits until the context is configured and started.
    pub async fn start(
        dev: &Rc<Device>,
        lib: &Arc<ComchLib>,
        role: Role,
        name: &str,
    ) -> Result<Rc<Channel>, String> {
        let fds = || -> io::Result<_> { Ok((eventfd()?, eventfd()?, eventfd()?, eventfd()?)) };
        let (t, r, w, a) = fds().map_err(|e| format!("creating eventfds: {e}"))?;
        let dup = |fd: &OwnedFd| fd.try_clone().and_then(Async::new);
        let (reader, writer, accept) =
            (|| -> io::Result<_> { Ok((dup(&r)?, dup(&w)?, dup(&a)?)) })()
                .map_err(|e| format!("watching eventfds: {e}"))?;
        let shared = Arc::new(Shared {
            st: Mutex::new(State::default()),
            wake_thread: t,
            wake_reader: r,
            wake_writer: w,
            wake_accept: a,
        });
        let name = CString::new(name).map_err(|_| "bad service name")?;
        let raw = RawDev(dev.dev, dev.rep);
        let (lib2, shared2) = (lib.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("comch".into())
            .spawn(move || worker::thread_main(&lib2, raw, role, &name, &shared2))
            .map_err(|e| format!("starting the Comch thread: {e}"))?;
        let ch = Rc::new(Channel {
            shared,
            reader,
            writer,
            accept,
            thread: Some(thread),
            _dev: dev.clone(),
        });
        loop {
            {
                let st = ch.shared.lock();
                if let Some(why) = &st.closed {
                    return Err(why.clone());
                }
                if st.max_msg != 0 {
                    break;
                }
            }
            wait(&ch.accept).await.map_err(|e| e.to_string())?;
        }
        Ok(ch)
    }

    /// Waits for the next connection: the host's on the DPU, the server's on the host.
    pub async fn accept(self: &Rc<Self>) -> Result<Link, String> {
        loop {
            {
                let mut st = self.shared.lock();
                if let Some(why) = &st.closed {
                    return Err(why.clone());
                }
                if st.connected && st.generation > st.taken {
                    st.taken = st.generation;
                    return Ok(Link {
                        ch: self.clone(),
                        generation: st.generation,
                        max_msg: Cell::new(st.max_msg),
                    });
                }
            }
            wait(&self.accept).await.map_err(|e| e.to_string())?;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        signal(&self.shared.wake_thread);
        // The thread tears down in DOCA's order, which may take a while on real hardware. Wait a
        // little so a clean exit usually completes it, but never stall the event loop for long.
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                // Still tearing down: keep the device open for it (a leaked reference only).
                std::mem::forget(self._dev.clone());
            }
        }
    }
}

/// One Comch connection used as a channel transport.
pub struct Link {
    ch: Rc<Channel>,
    generation: u64,
    /// Largest message, header included; lowered to the peer's by the handshake.
    pub max_msg: Cell<u32>,
}

impl Link {
    fn gone(&self, st: &State) -> Option<io::Error> {
        if st.generation != self.generation || !st.connected {
            let why = st
                .closed
                .clone()
                .unwrap_or_else(|| "the Comch connection closed".into());
            return Some(io::Error::new(io::ErrorKind::ConnectionReset, why));
        }
        None
    }

    /// Lowers the packing size to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        self.max_msg.set(self.max_msg.get().min(agreed));
    }

    /// Receives the next message.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut st = self.ch.shared.lock();
                // Messages of earlier connections are stale; those of a later one are not ours.
                // Ours are delivered even after the connection closed (a last ERROR says why).
                while st.inbox.front().is_some_and(|(g, _)| *g < self.generation) {
                    st.inbox.pop_front();
                }
                if st.inbox.front().is_some_and(|(g, _)| *g == self.generation) {
                    let (_, msg) = st.inbox.pop_front().expect("checked above");
                    if msg.len() > buf.len() {
                        return Err(io::Error::other("a Comch message larger than agreed"));
                    }
                    buf[..msg.len()].copy_from_slice(&msg);
                    return Ok(msg.len());
                }
                if let Some(e) = self.gone(&st) {
                    return Err(e);
                }
            }
            wait(&self.ch.reader).await?;
        }
    }

    /// Sends `buf`, which holds whole frames, as messages of at most `max_msg` bytes; waits
    /// while the thread's queue is full.
    pub async fn write_frames(&self, buf: &[u8]) -> io::Result<()> {
        for msg in crate::protocol::pack_frames(buf, self.max_msg.get() as usize) {
            let msg = msg?;
            loop {
                {
                    let mut st = self.ch.shared.lock();
                    if let Some(e) = self.gone(&st) {
                        return Err(e);
                    }
                    if st.outbox.len() < OUTBOX_LIMIT {
                        st.outbox.push_back(msg.to_vec());
                        break;
                    }
                }
                signal(&self.ch.shared.wake_thread);
                wait(&self.ch.writer).await?;
            }
            signal(&self.ch.shared.wake_thread);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.ch.shared.lock().release = Some(self.generation);
        signal(&self.ch.shared.wake_thread);
    }
}
