//! The bridge between a DOCA worker thread and the async relay, shared by both DOCA backends.
//!
//! Each backend gives its endpoint or context to one dedicated thread, so that DOCA calls that
//! block (Comm Channel's disconnect and destroy) or must be driven (Comch's progress engine)
//! never run on the executor thread. The thread exchanges whole messages with the relay through
//! queues under one mutex and wakes it through eventfds that the executor thread's own reactor
//! watches (edge-triggered, registered once), so a wakeup costs the thread's `write` and the
//! relay's `read` and no more. Each side signals only when a queue turns non-empty or a batch
//! is complete, not per message: a MiB is 258 messages of 4 KiB.
//!
//! Every thread is registered here: the systemd watchdog is pinged only while each running
//! thread's heartbeat is fresh ([`workers_fresh`]), and [`stop_all`] stops and joins them before
//! the relay returns, so that no thread is inside DOCA while the libraries unload.

mod link;

pub use link::Link;

use super::{Device, Failure};
use crate::sys::reactor::Io;
use rustix::event::EventfdFlags;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages the relay may queue for the thread before its writer waits.
const OUTBOX_LIMIT: usize = 256;

/// What the thread and the relay share, under one mutex.
#[derive(Default)]
pub struct State {
    /// Message size in force, set once the endpoint or context is configured.
    pub max_msg: u32,
    /// Relay to thread: messages to send on the current connection.
    pub outbox: VecDeque<Vec<u8>>,
    /// Thread to relay: messages received, tagged with their connection's generation.
    pub inbox: VecDeque<(u64, Vec<u8>)>,
    /// Counts connections; a link belongs to one generation.
    pub generation: u64,
    /// Whether the current generation's connection is up.
    pub connected: bool,
    /// The generation the relay has taken (DPU: accepted).
    pub taken: u64,
    /// The relay is done with this generation: disconnect it.
    pub release: Option<u64>,
    /// Set when the thread has ended, with why.
    pub closed: Option<Failure>,
    /// The relay asks the thread to end.
    pub stop: bool,
}

impl State {
    /// For the thread: whether the relay asks it to end. A release of the current connection
    /// starts `closing` (the thread ends the connection once its queue is out).
    pub fn stop_or_release(&mut self, closing: &mut Option<Instant>) -> bool {
        if self.stop {
            return true;
        }
        if let Some(generation) = self.release.take() {
            if generation == self.generation && self.connected {
                *closing = Some(Instant::now());
            }
        }
        false
    }
}

/// The queues and the eventfds of one worker thread.
pub struct Shared {
    st: Mutex<State>,
    /// Wakes the thread: new messages, a release, a stop.
    pub wake_thread: OwnedFd,
    wake_reader: OwnedFd,
    wake_writer: OwnedFd,
    wake_accept: OwnedFd,
    /// Milliseconds since [`epoch`] at the thread's last loop turn.
    beat: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Shared {
    /// Locks the shared state (a panicked holder does not poison it for the other side).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the thread is alive and not stuck inside DOCA.
    pub fn beat(&self) {
        self.beat.store(now_ms(), Ordering::Relaxed);
    }

    /// Wakes the relay's reader.
    pub fn wake_reader(&self) {
        signal(&self.wake_reader);
    }

    /// Wakes the relay's writer (the outbox has room, or the connection ended).
    pub fn wake_writer(&self) {
        signal(&self.wake_writer);
    }

    /// Wakes whoever waits for a connection (or for start-up).
    pub fn wake_accept(&self) {
        signal(&self.wake_accept);
    }

    /// Wakes every waiter on the relay's side.
    pub fn wake_all(&self) {
        self.wake_reader();
        self.wake_writer();
        self.wake_accept();
    }

    /// The thread's work ended with `outcome` (`Ok` when asked to stop): records why (unless
    /// already known) and wakes everyone. Called before the thread's teardown, which may take
    /// a while, so that the relay learns at once.
    pub fn finish(&self, outcome: Result<(), Failure>) {
        let why = outcome.err().unwrap_or(Failure::Stopped);
        let mut st = self.lock();
        st.closed.get_or_insert(why);
        st.connected = false;
        drop(st);
        self.wake_all();
    }

    /// A new connection: a new generation, an empty outbox, the acceptor woken.
    pub fn connect(&self, st: &mut State) {
        st.generation += 1;
        st.connected = true;
        st.outbox.clear();
        self.wake_accept();
    }

    /// The current connection ended.
    pub fn disconnect(&self, st: &mut State, why: impl fmt::Display) {
        log::debug!("DOCA: {why}");
        st.connected = false;
        st.outbox.clear();
        self.wake_all();
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
    )?)
}

/// Makes an eventfd readable.
pub fn signal(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd.
pub fn drain(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// Waits until `fd` (an eventfd the thread signals) is readable, then resets it. Marked drained
/// before the read, so a signal that comes after the read is a new edge and is not lost; one
/// that comes between costs a spurious wakeup, after which the caller looks at the queues again.
async fn wait(fd: &Io<OwnedFd>) {
    std::future::poll_fn(|cx| fd.poll_readable(cx)).await;
    fd.drained_read();
    drain(fd.get_ref());
}

struct Registered {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

fn registry() -> MutexGuard<'static, Vec<Registered>> {
    static WORKERS: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
    WORKERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins the threads that have ended.
fn reap(list: &mut Vec<Registered>) {
    let (done, running): (Vec<_>, Vec<_>) = list.drain(..).partition(|w| w.thread.is_finished());
    *list = running;
    for w in done {
        let _ = w.thread.join();
    }
}

/// Whether every DOCA thread still in use turned its loop within `max_age`. A thread stuck in a
/// DOCA call makes this false, so the watchdog stops being pinged and systemd restarts the relay.
pub fn workers_fresh(max_age: Duration) -> bool {
    let now = now_ms();
    let max = max_age.as_millis() as u64;
    registry().iter().all(|w| {
        w.thread.is_finished()
            || w.shared.lock().stop
            || now.saturating_sub(w.shared.beat.load(Ordering::Relaxed)) <= max
    })
}

/// Asks every DOCA thread to end and waits up to `timeout` for them, so that none is inside a
/// DOCA call when the process exits. Returns how many did not end in time.
pub fn stop_all(timeout: Duration) -> usize {
    let mut list = registry();
    for w in list.iter() {
        w.shared.lock().stop = true;
        signal(&w.shared.wake_thread);
    }
    let deadline = Instant::now() + timeout;
    while list.iter().any(|w| !w.thread.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    reap(&mut list);
    list.len()
}

/// A running DOCA worker thread: a Comm Channel endpoint or a Comch server or client.
pub struct Channel {
    shared: Arc<Shared>,
    reader: Io<OwnedFd>,
    writer: Io<OwnedFd>,
    accept: Io<OwnedFd>,
    /// Kept open until the thread has ended.
    dev: Rc<Device>,
}

impl Channel {
    /// Starts `main` on a thread named `name` and waits until it has set the message size (or
    /// ended, with its error).
    pub async fn spawn(
        dev: &Rc<Device>,
        name: &'static str,
        main: impl FnOnce(&Shared) + Send + 'static,
    ) -> Result<Rc<Channel>, Failure> {
        let fds = || -> io::Result<_> { Ok((eventfd()?, eventfd()?, eventfd()?, eventfd()?)) };
        let (t, r, w, a) = fds().map_err(|e| Failure::Eventfds(Arc::new(e)))?;
        let dup = |fd: &OwnedFd| fd.try_clone().and_then(Io::new);
        let (reader, writer, accept) =
            (|| -> io::Result<_> { Ok((dup(&r)?, dup(&w)?, dup(&a)?)) })()
                .map_err(|e| Failure::WatchEventfds(Arc::new(e)))?;
        let shared = Arc::new(Shared {
            st: Mutex::new(State::default()),
            wake_thread: t,
            wake_reader: r,
            wake_writer: w,
            wake_accept: a,
            beat: AtomicU64::new(now_ms()),
        });
        let shared2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || main(&shared2))
            .map_err(|e| Failure::Thread {
                name,
                error: Arc::new(e),
            })?;
        {
            let mut list = registry();
            reap(&mut list);
            list.push(Registered {
                shared: shared.clone(),
                thread,
            });
        }
        let ch = Rc::new(Channel {
            shared,
            reader,
            writer,
            accept,
            dev: dev.clone(),
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
            wait(&ch.accept).await;
        }
        Ok(ch)
    }

    /// Waits for the next connection: the host's on the DPU, the service's on the host.
    pub async fn accept(self: &Rc<Self>) -> Result<Link, Failure> {
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
            wait(&self.accept).await;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        signal(&self.shared.wake_thread);
        // The thread tears down in DOCA's order, which may block on real hardware. Wait a
        // little so a clean exit usually completes it, but never stall the event loop for long;
        // `stop_all` waits for the rest before the relay returns.
        let deadline = Instant::now() + Duration::from_millis(100);
        let running = || {
            registry()
                .iter()
                .any(|w| Arc::ptr_eq(&w.shared, &self.shared) && !w.thread.is_finished())
        };
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if running() {
            // Still tearing down: keep the device open for it (a leaked reference only).
            std::mem::forget(self.dev.clone());
        } else {
            reap(&mut registry());
        }
    }
}
