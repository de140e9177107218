//! The Comch thread: owns the progress engine, the server or client context (context.rs) and
//! makes every Comch call. Callbacks only record what happened; the loop acts on it between
//! progress calls.

mod setup;

use super::callbacks::{Event, EVENTS};
use super::context::{Context, Unsent};
use super::engine::{Connection, Engine};
use super::ffi::{state, ComchLib};
use crate::config::Role;
use crate::doca::bridge::{drain, Shared, State};
use crate::doca::device::RawDev;
use crate::doca::error::Failure;
use crate::doca::ffi::DocaError;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// The first idle wait; each idle turn doubles it up to [`IDLE_MAX`].
const IDLE_MIN: Duration = Duration::from_micros(10);
/// The longest idle wait: an idle relay wakes about 200 times a second.
const IDLE_MAX: Duration = Duration::from_millis(5);
/// Progress calls in one burst before the thread looks at its queues again.
const PROGRESS_BURST: usize = 64;

pub(super) fn thread_main(
    lib: &ComchLib,
    raw: RawDev,
    role: Role,
    name: &CString,
    shared: &Shared,
) {
    let engine = match Engine::create(lib) {
        Ok(engine) => engine,
        Err(e) => {
            shared.finish(Err(e));
            return;
        }
    };
    let (limits, ctx) = match setup::open(lib, &engine, &raw, role, name) {
        Ok(made) => made,
        Err(e) => {
            shared.finish(Err(e));
            // Destroys the engine, after `finish`.
            return;
        }
    };
    let mut w = Worker::new(ctx, role, name, shared);
    // The teardown below takes up to two seconds.
    shared.finish(w.setup(&limits).and_then(|()| w.run()));
    w.teardown();
    // DOCA's order: the server or client (stopped by `teardown`), then the engine.
    drop(w);
    drop(engine);
}

/// The Comch thread's state: every DOCA object lives here and is used only here.
struct Worker<'a> {
    /// The server or client, with the buffers of the sends in flight.
    ctx: Context<'a>,
    shared: &'a Shared,
    role: Role,
    /// The service name, for messages.
    name: String,
    current: Option<Connection>,
    /// The relay let go of the connection; end it once its queued messages (an ERROR
    /// saying why, typically) are out, or after a second.
    closing: Option<Instant>,
    refuse: Vec<Connection>,
    /// Host: messages that came before the RUNNING state change in the same burst. The host
    /// has one connection, so they are its own.
    early: Vec<Vec<u8>>,
    /// DPU: when the server context last had to be restarted, and how often since.
    restarts: (Option<Instant>, u32),
    /// The thread is ending: a context reaching IDLE is not restarted.
    stopping: bool,
}

impl<'a> Worker<'a> {
    fn new(ctx: Context<'a>, role: Role, name: &CString, shared: &'a Shared) -> Self {
        Worker {
            ctx,
            shared,
            name: name.to_string_lossy().into_owned(),
            role,
            current: None,
            closing: None,
            refuse: Vec::new(),
            early: Vec::new(),
            restarts: (None, 0),
            stopping: false,
        }
    }

    /// The thread's loop. DOCA's Comch API has no event-triggered completions: only progress
    /// shows what DOCA has done (see mod.rs). So the thread progresses while there is work and,
    /// when idle, polls: it sleeps on its own wake-up eventfd (the relay's work) with a timeout
    /// backing off from [`IDLE_MIN`] to [`IDLE_MAX`], then progresses again.
    fn run(&mut self) -> Result<(), Failure> {
        let mut idle = Duration::ZERO;
        loop {
            self.shared.beat();
            let mut active = false;
            for _ in 0..PROGRESS_BURST {
                if !self.ctx.progress() {
                    break;
                }
                active = true;
            }
            active |= self.handle_events()?;
            if self.handle_commands()? {
                return Ok(());
            }
            active |= self.submit()?;
            if active {
                idle = Duration::ZERO;
                continue;
            }
            idle = (idle * 2).clamp(IDLE_MIN, IDLE_MAX);
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: idle.as_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.shared.wake_thread, PollFlags::IN)];
            if rustix::event::poll(&mut fds, Some(&ts)).is_ok_and(|n| n > 0) {
                drain(&self.shared.wake_thread);
            }
        }
    }

    /// Acts on what the callbacks recorded, in the order they saw it. Returns whether anything
    /// happened.
    fn handle_events(&mut self) -> Result<bool, Failure> {
        let events = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        let any = !events.is_empty();
        let mut st = self.shared.lock();
        // Hosts that arrived while another was current. Decided after the whole burst: the
        // library may report a newcomer before the departure of the host it replaces.
        let mut waiting: Vec<(Connection, Vec<Vec<u8>>)> = Vec::new();
        let mut failed = None;
        // The context stopped or failed: the thread ends once the whole burst is handled (send
        // buffers freed, messages that came first left in the inbox for the reader to drain).
        let mut end: Option<Failure> = None;
        let mut restart = false;
        let mut got = false;
        for event in events {
            match event {
                Event::Recv(conn, data) => {
                    if self.current == Some(conn) {
                        let generation = st.generation;
                        st.inbox.push_back((generation, data));
                        got = true;
                    } else if let Some((_, early)) = waiting.iter_mut().find(|w| w.0 == conn) {
                        early.push(data);
                    } else if self.role == Role::Host && self.current.is_none() {
                        self.early.push(data);
                    }
                }
                Event::Done(sent) => {
                    if let Some(why) = self.ctx.complete(sent, self.current) {
                        failed = Some(why);
                    }
                }
                Event::Disconnected(conn) => {
                    if self.current == Some(conn) {
                        self.current = None;
                        self.closing = None;
                        failed = None;
                        self.shared.disconnect(&mut st, "the host disconnected");
                    }
                    waiting.retain(|w| w.0 != conn);
                }
                Event::Connected(conn) if self.current.is_none() => {
                    self.current = Some(conn);
                    self.shared.connect(&mut st);
                }
                Event::Connected(conn) => waiting.push((conn, Vec::new())),
                Event::State(prev, next) => match (self.role, next) {
                    (Role::Host, state::RUNNING) => {
                        // A failure ends the thread, but only after the rest of the burst (send
                        // completions to free, above all) has been handled.
                        let conn = match self.ctx.connection() {
                            Ok(conn) => conn,
                            Err(e) => {
                                end.get_or_insert(e);
                                continue;
                            }
                        };
                        self.current = Some(conn);
                        self.shared.connect(&mut st);
                        let generation = st.generation;
                        got |= !self.early.is_empty();
                        st.inbox
                            .extend(self.early.drain(..).map(|data| (generation, data)));
                    }
                    (Role::Host, state::IDLE) if prev == state::STARTING => {
                        end.get_or_insert(Failure::NoComchServer {
                            service: self.name.clone(),
                        });
                    }
                    (Role::Dpu, state::IDLE) if !self.stopping => restart = true,
                    (_, state::IDLE) => {
                        end.get_or_insert(Failure::ContextStopped);
                    }
                    _ => {}
                },
            }
        }
        for (conn, early) in waiting {
            if self.current.is_none() {
                self.current = Some(conn);
                self.shared.connect(&mut st);
                let generation = st.generation;
                got |= !early.is_empty();
                st.inbox
                    .extend(early.into_iter().map(|data| (generation, data)));
            } else {
                crate::logging::ratelimit::log(
                    log::Level::Warn,
                    crate::logging::ratelimit::Kind::SecondHost,
                    format_args!("Comch: refusing a second host connection; one host at a time"),
                );
                self.refuse.push(conn);
            }
        }
        if got {
            self.shared.wake_reader();
        }
        if let Some(why) = end {
            return Err(why);
        }
        if restart {
            self.restart(&mut st)?;
            return Ok(true);
        }
        if let Some(why) = failed {
            self.end_current(&mut st, Failure::ComchSendFailed(why))?;
        }
        Ok(any)
    }

    /// Ends the current connection after an error: the host's thread ends (the relay reconnects
    /// with a new one), the DPU's server disconnects it and waits for the next host.
    fn end_current(&mut self, st: &mut State, why: Failure) -> Result<(), Failure> {
        if self.role == Role::Host {
            return Err(why);
        }
        if let Some(conn) = self.current.take() {
            self.refuse.push(conn);
        }
        self.closing = None;
        self.shared.disconnect(st, why);
        Ok(())
    }

    /// DPU: the server context stopped by itself (DOCA stops it after a fatal error, such as a
    /// send to a host that died). Its connections are gone; start it again and keep serving.
    /// A context that keeps stopping ends the thread, so systemd restarts the relay.
    fn restart(&mut self, st: &mut State) -> Result<(), Failure> {
        let (since, n) = self.restarts;
        let n = match since {
            Some(t) if t.elapsed() < Duration::from_secs(60) => n + 1,
            _ => 1,
        };
        self.restarts = (since.filter(|_| n > 1).or(Some(Instant::now())), n);
        if n > 5 {
            return Err(Failure::ServerRestarts);
        }
        log::warn!("Comch: the server context stopped; starting it again");
        if self.current.take().is_some() {
            self.shared
                .disconnect(st, "the server context stopped under the host");
        }
        self.refuse.clear();
        self.closing = None;
        // SAFETY: called only when the state callback reported IDLE in this burst, and no
        // progress ran since: stopping flushed every task through its callback.
        unsafe { self.ctx.restart() }
    }

    /// Stop requests and released connections. Returns true when the thread should end.
    fn handle_commands(&mut self) -> Result<bool, Failure> {
        let mut st = self.shared.lock();
        if st.stop_or_release(&mut self.closing) {
            return Ok(true);
        }
        if let Some(since) = self.closing {
            let pending = self.current.is_some_and(|c| self.ctx.pending(c));
            if (st.outbox.is_empty() && !pending) || since.elapsed() > Duration::from_secs(1) {
                if self.role == Role::Host {
                    return Ok(true);
                }
                self.end_current(&mut st, Failure::RelayEnded)?;
            }
        }
        drop(st);
        // AGAIN means "try again later".
        self.refuse
            .retain(|&conn| self.ctx.disconnect(conn) == DocaError::AGAIN);
        Ok(false)
    }

    /// Hands queued messages to DOCA while send tasks are free. Returns whether any went out.
    fn submit(&mut self) -> Result<bool, Failure> {
        let Some(conn) = self.current else {
            return Ok(false);
        };
        let mut sent = false;
        loop {
            let Some(msg) = self.shared.lock().outbox.pop_front() else {
                break;
            };
            match self.ctx.send(conn, msg) {
                Ok(()) => sent = true,
                Err(Unsent::Full(msg)) => {
                    // Every task is in flight: the send queue is full. Keep the message first
                    // in line and let progress complete some.
                    self.shared.lock().outbox.push_front(msg);
                    break;
                }
                Err(Unsent::Failed(why)) => {
                    self.end_current(&mut self.shared.lock(), why)?;
                    break;
                }
            }
        }
        if sent {
            // The queue shrank: a writer waiting for room may go on.
            self.shared.wake_writer();
        }
        Ok(sent)
    }

    /// Stops the context and lets in-flight tasks drain; dropping the worker then destroys
    /// the server or client. DOCA reports the stop only through the state callback, which runs
    /// inside progress: its API offers no way to wait for it but to progress and ask.
    fn teardown(&mut self) {
        self.stopping = true;
        self.ctx.stop();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            self.ctx.progress();
            let _ = self.handle_events();
            if self.ctx.state() == state::IDLE || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}
