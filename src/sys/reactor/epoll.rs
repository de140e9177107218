//! The executor thread's own event loop for the data-path sockets.
//!
//! async-io's reactor is general: every wait re-arms its timerfd and notifier with
//! `timerfd_settime` and two `epoll_ctl` calls, and each socket is registered one-shot, so every
//! readiness costs another `epoll_ctl`. Measured with `strace -c -f`, that was 11 of the 17
//! system calls a relay process spent per 64-byte round trip. The sockets that carry relayed
//! bytes (clients, the server application's connections and the tcp/unix channel) are therefore
//! waited on here instead:
//!
//! - one epoll set per thread; each socket is added once, edge-triggered, for both directions,
//!   and removed when dropped, so a readiness change costs no `epoll_ctl`;
//! - readiness is remembered per socket ([`Io`]) and forgotten only when an operation says the
//!   socket is drained (EAGAIN, or a short read or write), so a socket is read exactly as often
//!   as it has data, with no read that only says "try again";
//! - [`block_on`] drives the executor and sleeps in `epoll_pwait` without a timeout when no task
//!   is runnable. Wakeups from the same thread only set a flag; a wakeup from another thread
//!   (async-io's thread, which keeps signals, timers, listeners and the DOCA fds) writes an
//!   eventfd, and only while this loop sleeps.
//!
//! There is no busy polling unless asked for: by default the loop sleeps whenever nothing is
//! runnable. With [`set_busy_poll`] (`--busy-poll`) it first polls the epoll set without
//! sleeping for up to the given time. A relay that sleeps is woken through the scheduler,
//! and on a machine whose idle cores halt (a VM above all) that wakeup is most of a hop's
//! latency; a relay still polling needs none. Between polls the loop yields its core, so the
//! client or server application it relays for runs first when it shares that core: polling
//! in a tight loop instead made latency worse than sleeping whenever processes outnumbered
//! cores (bench/RESULTS-busy-poll.md). The cost is CPU time for that long after each burst.

mod io;

pub use io::{Io, BULK};
/// What a socket must offer to be waited on here (`AsSocket` in `portable.rs`).
pub use std::os::fd::AsFd as Socket;

use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// epoll data of the eventfd; sockets use their slot index, which never reaches it.
const NOTIFY_KEY: u64 = u64::MAX;
/// How many times in a row the loop may skip the epoll set because tasks kept it busy before
/// it collects socket events anyway (with a zero timeout), so that I/O is never starved.
const BUSY_TURNS: u32 = 8;
/// What every socket is registered for.
const INPUT: EventFlags = EventFlags::IN
    .union(EventFlags::RDHUP)
    .union(EventFlags::ET);

/// The readiness one socket has shown and the tasks waiting for it.
#[derive(Default)]
pub(crate) struct Source {
    pub(crate) readable: Cell<bool>,
    pub(crate) writable: Cell<bool>,
    /// The peer closed or the socket failed. Sticky: the end of input is a state, not an edge,
    /// so a read that drained the last bytes must not wait for an edge that already came.
    pub(crate) hung_up: Cell<bool>,
    /// Whether EPOLLOUT is in the interest set; see [`Reactor::want_writable`].
    out_interest: Cell<bool>,
    pub(crate) reader: RefCell<Option<Waker>>,
    pub(crate) writer: RefCell<Option<Waker>>,
}

impl Source {
    fn wake(slot: &RefCell<Option<Waker>>) {
        if let Some(w) = slot.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Tells a sleeping loop that a task became runnable; shared with other threads via wakers.
struct Notifier {
    eventfd: OwnedFd,
    /// Set by any wakeup; cleared by the loop before it polls.
    notified: AtomicBool,
    /// The loop is in (or about to enter) `epoll_pwait`.
    sleeping: AtomicBool,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both flags, here and in `Reactor::wait`: either the loop sees `notified`
        // before it sleeps, or this side sees `sleeping` and writes the eventfd.
        if !self.notified.swap(true, SeqCst) && self.sleeping.load(SeqCst) {
            let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
        }
    }
}

/// One thread's epoll set.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    /// Registered sockets by slot; the slot index is the epoll data.
    slots: RefCell<Vec<Option<Rc<Source>>>>,
    free: RefCell<Vec<usize>>,
    notifier: Arc<Notifier>,
    busy_turns: Cell<u32>,
    /// How long to poll before sleeping; see [`set_busy_poll`].
    busy_poll: Cell<Duration>,
}

/// A zero timeout: `epoll_pwait` returns at once.
const NOW: rustix::time::Timespec = rustix::time::Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// Makes this thread's loop poll its sockets for up to `window` before it sleeps (zero, the
/// default, sleeps at once). Polling ends early when a socket or another thread has something
/// for the loop; afterwards the loop sleeps as usual until the next event.
pub fn set_busy_poll(window: Duration) -> std::io::Result<()> {
    Reactor::current()?.busy_poll.set(window);
    Ok(())
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

impl Reactor {
    /// This thread's reactor, created on first use.
    pub(crate) fn current() -> std::io::Result<Rc<Reactor>> {
        CURRENT.with(|c| {
            if let Some(r) = c.borrow().as_ref() {
                return Ok(r.clone());
            }
            let r = Rc::new(Reactor::new()?);
            *c.borrow_mut() = Some(r.clone());
            Ok(r)
        })
    }

    fn new() -> std::io::Result<Reactor> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &fd,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Reactor {
            epoll,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            notifier: Arc::new(Notifier {
                eventfd: fd,
                notified: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
            }),
            busy_turns: Cell::new(0),
            busy_poll: Cell::new(Duration::ZERO),
        })
    }

    /// Adds `fd`, edge-triggered, for input only (see [`Reactor::want_writable`]). The source
    /// starts out assumed ready both ways: the first operation finds out, and at worst says
    /// EAGAIN once.
    pub(crate) fn register(&self, fd: impl AsFd) -> std::io::Result<(usize, Rc<Source>)> {
        let source = Rc::new(Source {
            readable: Cell::new(true),
            writable: Cell::new(true),
            ..Default::default()
        });
        let key = self.free.borrow_mut().pop().unwrap_or_else(|| {
            let mut slots = self.slots.borrow_mut();
            slots.push(None);
            slots.len() - 1
        });
        if let Err(e) = epoll::add(&self.epoll, fd, EventData::new_u64(key as u64), INPUT) {
            self.free.borrow_mut().push(key);
            return Err(e.into());
        }
        self.slots.borrow_mut()[key] = Some(source.clone());
        Ok((key, source))
    }

    /// A write found `fd` full: from now on its EPOLLOUT edges are wanted too.
    ///
    /// Output interest is added only here, not at registration: an AF_UNIX socket signals
    /// room on every read its peer makes, and those edges woke the loop for nothing (one
    /// extra `epoll_pwait` per 256 KiB sent to a client). A socket that filled up once keeps
    /// the interest; the modification is re-armed by the kernel, so room that appeared
    /// meanwhile is still reported.
    pub(crate) fn want_writable(&self, key: usize, source: &Source, fd: impl AsFd) {
        if source.out_interest.replace(true) {
            return;
        }
        let flags = INPUT | EventFlags::OUT;
        if epoll::modify(&self.epoll, fd, EventData::new_u64(key as u64), flags).is_err() {
            // Cannot wait for room: let the next write find out by itself.
            source.out_interest.set(false);
            source.writable.set(true);
        }
    }

    /// Removes `fd`, which must still be open, from the set.
    pub(crate) fn deregister(&self, key: usize, fd: impl AsFd) {
        let _ = epoll::delete(&self.epoll, fd);
        self.slots.borrow_mut()[key] = None;
        self.free.borrow_mut().push(key);
    }

    /// Collects socket events, sleeping until one arrives unless a task is already runnable.
    fn wait(&self) -> std::io::Result<()> {
        let n = &self.notifier;
        let window = self.busy_poll.get();
        if !window.is_zero() && !n.notified.load(SeqCst) {
            self.busy_turns.set(0);
            if self.poll_for(window)? {
                return Ok(());
            }
        }
        n.sleeping.store(true, SeqCst);
        let timeout = if n.notified.load(SeqCst) {
            let turns = self.busy_turns.get() + 1;
            if turns < BUSY_TURNS {
                self.busy_turns.set(turns);
                n.sleeping.store(false, SeqCst);
                return Ok(());
            }
            Some(NOW)
        } else {
            None
        };
        self.busy_turns.set(0);
        let mut buf = [MaybeUninit::<Event>::uninit(); 64];
        let result = epoll::wait(&self.epoll, &mut buf, timeout.as_ref());
        n.sleeping.store(false, SeqCst);
        match result {
            Ok((events, _)) => self.dispatch(events),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Polls the epoll set without sleeping until it has events (handled here), another
    /// thread wakes a task, or `window` has passed; true unless the window ran out. Meanwhile
    /// `sleeping` stays false, so other threads' wakeups only set `notified`, read here.
    /// Each empty poll yields the core (`sched_yield`) to whatever else is runnable on it.
    fn poll_for(&self, window: Duration) -> std::io::Result<bool> {
        let start = Instant::now();
        let mut buf = [MaybeUninit::<Event>::uninit(); 64];
        loop {
            match epoll::wait(&self.epoll, &mut buf, Some(&NOW)) {
                Ok((events, _)) if !events.is_empty() => {
                    self.dispatch(events);
                    return Ok(true);
                }
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
            if self.notifier.notified.load(SeqCst) {
                return Ok(true);
            }
            if start.elapsed() >= window {
                return Ok(false);
            }
            std::thread::yield_now();
        }
    }

    /// Records what `epoll_pwait` reported and wakes the tasks waiting for it.
    fn dispatch(&self, events: &[Event]) {
        let n = &self.notifier;
        for ev in events.iter() {
            let key = ev.data.u64();
            if key == NOTIFY_KEY {
                // Reset the counter so that it can never fill up; the edge already woke us.
                let mut b = [0u8; 8];
                let _ = rustix::io::read(&n.eventfd, &mut b);
                continue;
            }
            let Some(source) = self.slots.borrow().get(key as usize).cloned().flatten() else {
                continue;
            };
            let flags = ev.flags;
            let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
            if failed || flags.contains(EventFlags::RDHUP) {
                source.hung_up.set(true);
            }
            if failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP) {
                source.readable.set(true);
                Source::wake(&source.reader);
            }
            if failed || flags.contains(EventFlags::OUT) {
                source.writable.set(true);
                Source::wake(&source.writer);
            }
        }
    }
}

/// Runs `future` to completion on this thread, waiting on this thread's reactor between polls.
///
/// Meant for the executor's `run` future: tasks woken on this thread cost no system call; a
/// task woken by another thread costs one eventfd write, and only while the loop sleeps.
/// Fails only if the epoll set cannot be created or waited on.
pub fn block_on<T>(future: impl Future<Output = T>) -> std::io::Result<T> {
    let reactor = Reactor::current()?;
    let waker = Waker::from(reactor.notifier.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        reactor.notifier.notified.store(false, SeqCst);
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        reactor.wait()?;
    }
}
