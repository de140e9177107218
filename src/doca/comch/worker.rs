//! The Comch thread: owns the progress engine, the server or client context and every Comch
//! call. Callbacks only record what happened; the loop acts on it between progress calls.

mod setup;

use super::callbacks::{Event, EVENTS};
use super::ffi::{self, state, ComchLib, Conn, Ctx, TaskSend};
use crate::config::Role;
use crate::doca::bridge::{drain, Shared, State};
use crate::doca::device::RawDev;
use crate::doca::ffi::DocaError;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::collections::HashMap;
use std::ffi::{c_int, CString};
use std::ptr;
use std::time::{Duration, Instant};

/// Send tasks asked for (NVIDIA's own users take 1024), capped by the device.
const SEND_TASKS: u32 = 1024;
const IDLE_MIN: Duration = Duration::from_micros(10);
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
    let mut w = Worker::new(lib, role, name, shared);
    // The teardown below takes up to two seconds.
    shared.finish(w.setup(raw, name).and_then(|()| w.run()));
    w.teardown();
}

/// The Comch thread's state: every DOCA object lives here and is used only here.
struct Worker<'a> {
    lib: &'a ComchLib,
    shared: &'a Shared,
    role: Role,
    /// The service name, for messages.
    name: String,
    pe: *mut ffi::Pe,
    server: *mut ffi::Server,
    client: *mut ffi::Client,
    ctx: *mut Ctx,
    current: Option<*mut Conn>,
    /// Submitted sends: the connection each went to and the buffer DOCA reads from.
    in_flight: HashMap<*mut TaskSend, (*mut Conn, Vec<u8>)>,
    /// The relay let go of the connection; end it once its queued messages (an ERROR
    /// saying why, typically) are out, or after a second.
    closing: Option<Instant>,
    refuse: Vec<*mut Conn>,
    /// Host: messages that came before the RUNNING state change in the same burst. The host
    /// has one connection, so they are its own.
    early: Vec<Vec<u8>>,
    /// DPU: when the server context last had to be restarted, and how often since.
    restarts: (Option<Instant>, u32),
    /// The thread is ending: a context reaching IDLE is not restarted.
    stopping: bool,
}

impl<'a> Worker<'a> {
    fn new(lib: &'a ComchLib, role: Role, name: &CString, shared: &'a Shared) -> Self {
        Worker {
            lib,
            shared,
            name: name.to_string_lossy().into_owned(),
            role,
            pe: ptr::null_mut(),
            server: ptr::null_mut(),
            client: ptr::null_mut(),
            ctx: ptr::null_mut(),
            current: None,
            in_flight: HashMap::new(),
            closing: None,
            refuse: Vec::new(),
            early: Vec::new(),
            restarts: (None, 0),
            stopping: false,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut idle = Duration::ZERO;
        loop {
            self.shared.beat();
            let mut active = false;
            for _ in 0..PROGRESS_BURST {
                // SAFETY: the engine is ours and no callback calls progress.
                if unsafe { (self.lib.pe_progress)(self.pe) } == 0 {
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
    fn handle_events(&mut self) -> Result<bool, String> {
        let events = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        let any = !events.is_empty();
        let mut st = self.shared.lock();
        // Hosts that arrived while another was current. Decided after the whole burst: the
        // library may report a newcomer before the departure of the host it replaces.
        let mut waiting: Vec<(*mut Conn, Vec<Vec<u8>>)> = Vec::new();
        let mut failed = None;
        // The context stopped or failed: the thread ends once the whole burst is handled (send
        // buffers freed, messages that came first left in the inbox for the reader to drain).
        let mut end: Option<String> = None;
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
                Event::Done(task, ok) => {
                    let conn = self.in_flight.remove(&task).map(|(conn, _)| conn);
                    let l = self.lib;
                    // SAFETY: the task came back to us through a callback, so it is ours.
                    unsafe {
                        let t = (l.task_send_as_task)(task);
                        // A send that failed for a connection already let go of is no news.
                        if !ok && conn.is_some() && conn == self.current {
                            failed = Some(l.describe((l.task_get_status)(t)));
                        }
                        (l.task_free)(t);
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
                        let mut conn = ptr::null_mut();
                        // SAFETY: the client is running, so it has its connection.
                        let r = unsafe { (self.lib.client_get_connection)(self.client, &mut conn) };
                        // A failure ends the thread, but only after the rest of the burst (send
                        // completions to free, above all) has been handled.
                        if let Err(e) = self.lib.check("getting the connection", r) {
                            end.get_or_insert(e);
                            continue;
                        }
                        self.current = Some(conn);
                        self.shared.connect(&mut st);
                        let generation = st.generation;
                        got |= !self.early.is_empty();
                        st.inbox
                            .extend(self.early.drain(..).map(|data| (generation, data)));
                    }
                    (Role::Host, state::IDLE) if prev == state::STARTING => {
                        end.get_or_insert(format!(
                            "no DOCA service {:?} answered (no Comch server; is the DPU side running?)",
                            self.name
                        ));
                    }
                    (Role::Dpu, state::IDLE) if !self.stopping => restart = true,
                    (_, state::IDLE) => {
                        end.get_or_insert("the Comch context stopped".into());
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
            self.end_current(&mut st, &format!("a Comch send failed: {why}"))?;
        }
        Ok(any)
    }

    /// Ends the current connection after an error: the host's thread ends (the relay reconnects
    /// with a new one), the DPU's server disconnects it and waits for the next host.
    fn end_current(&mut self, st: &mut State, why: &str) -> Result<(), String> {
        if self.role == Role::Host {
            return Err(why.to_string());
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
    fn restart(&mut self, st: &mut State) -> Result<(), String> {
        let (since, n) = self.restarts;
        let n = match since {
            Some(t) if t.elapsed() < Duration::from_secs(60) => n + 1,
            _ => 1,
        };
        self.restarts = (since.filter(|_| n > 1).or(Some(Instant::now())), n);
        if n > 5 {
            return Err("the Comch server context stopped 5 times within a minute".into());
        }
        log::warn!("Comch: the server context stopped; starting it again");
        if self.current.take().is_some() {
            self.shared
                .disconnect(st, "the server context stopped under the host");
        }
        self.refuse.clear();
        self.closing = None;
        // Stopping flushed every task through its callback, so none is still DOCA's.
        self.in_flight.clear();
        // SAFETY: our context, IDLE now, configured as before.
        self.lib.check("restarting the server", unsafe {
            (self.lib.ctx_start)(self.ctx)
        })
    }

    /// Stop requests and released connections. Returns true when the thread should end.
    fn handle_commands(&mut self) -> Result<bool, String> {
        let mut st = self.shared.lock();
        if st.stop_or_release(&mut self.closing) {
            return Ok(true);
        }
        if let Some(since) = self.closing {
            let pending = self
                .in_flight
                .values()
                .any(|(c, _)| Some(*c) == self.current);
            if (st.outbox.is_empty() && !pending) || since.elapsed() > Duration::from_secs(1) {
                if self.role == Role::Host {
                    return Ok(true);
                }
                self.end_current(&mut st, "the relay ended the host session")?;
            }
        }
        drop(st);
        // SAFETY: the server and the connections are ours; AGAIN means "try again later".
        self.refuse.retain(
            |&conn| unsafe { (self.lib.server_disconnect)(self.server, conn) } == DocaError::AGAIN,
        );
        Ok(false)
    }

    /// Hands queued messages to DOCA while send tasks are free. Returns whether any went out.
    fn submit(&mut self) -> Result<bool, String> {
        let Some(conn) = self.current else {
            return Ok(false);
        };
        let l = self.lib;
        let mut sent = false;
        loop {
            let Some(msg) = self.shared.lock().outbox.pop_front() else {
                break;
            };
            let mut task = ptr::null_mut();
            // SAFETY: the buffer lives in `in_flight` until the task's callback returns it.
            let r = unsafe {
                match self.role {
                    Role::Dpu => (l.server_task_send_alloc_init)(
                        self.server,
                        conn,
                        msg.as_ptr().cast(),
                        msg.len() as u32,
                        &mut task,
                    ),
                    Role::Host => (l.client_task_send_alloc_init)(
                        self.client,
                        conn,
                        msg.as_ptr().cast(),
                        msg.len() as u32,
                        &mut task,
                    ),
                }
            };
            if r == ffi::NO_MEMORY || r == DocaError::AGAIN {
                // Every task is in flight: the send queue is full. Keep the message first in
                // line and let progress complete some.
                self.shared.lock().outbox.push_front(msg);
                break;
            }
            if r != DocaError::SUCCESS {
                let why = format!("allocating a Comch send task: {}", l.describe(r));
                self.end_current(&mut self.shared.lock(), &why)?;
                break;
            }
            // SAFETY: a freshly allocated task; on failure it is still ours to free.
            let r = unsafe { (l.task_submit)((l.task_send_as_task)(task)) };
            if r != DocaError::SUCCESS {
                // SAFETY: as above.
                unsafe { (l.task_free)((l.task_send_as_task)(task)) };
                let why = format!("submitting a Comch send task: {}", l.describe(r));
                self.end_current(&mut self.shared.lock(), &why)?;
                break;
            }
            self.in_flight.insert(task, (conn, msg));
            sent = true;
        }
        if sent {
            // The queue shrank: a writer waiting for room may go on.
            self.shared.wake_writer();
        }
        Ok(sent)
    }

    /// Stops the context, lets in-flight tasks drain, and destroys everything in the
    /// documented order.
    fn teardown(&mut self) {
        let l = self.lib;
        // SAFETY: our own objects, each destroyed once, after the context reached IDLE.
        self.stopping = true;
        unsafe {
            if !self.ctx.is_null() {
                let _ = (l.ctx_stop)(self.ctx);
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    (l.pe_progress)(self.pe);
                    let _ = self.handle_events();
                    let mut s: c_int = -1;
                    let _ = (l.ctx_get_state)(self.ctx, &mut s);
                    if s == state::IDLE || Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            if !self.server.is_null() {
                (l.server_destroy)(self.server);
            }
            if !self.client.is_null() {
                (l.client_destroy)(self.client);
            }
            if !self.pe.is_null() {
                (l.pe_destroy)(self.pe);
            }
        }
    }
}
