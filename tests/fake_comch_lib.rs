//! Tests of the fake DOCA Comch libraries themselves (`tests/fake_comch/`): loaded by full path
//! with `libloading` and driven through hand-written C signatures, with a server and a client
//! in one process on two progress engines.
//!
//! The fake reads `FAKE_*` environment variables, which are process-wide, so every test holds
//! [`LOCK`] while it sets them and uses the libraries, and loads (and unloads) its own copy of
//! the libraries so that the 2.9 and 2.7 flavours (same SONAMEs) are never loaded together.
//! Callbacks record what they see in thread-local state, and note any call that happens outside
//! `doca_pe_progress`.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

#[path = "support/fake_comch.rs"]
mod fake_comch;

use fake_comch::ComchApi;
use libloading::Library;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

// doca_error_t values.
const SUCCESS: c_int = 0;
const NOT_PERMITTED: c_int = 2;
const IN_USE: c_int = 3;
const NOT_SUPPORTED: c_int = 4;
const AGAIN: c_int = 5;
const INVALID_VALUE: c_int = 6;
const NO_MEMORY: c_int = 7;
const INITIALIZATION: c_int = 8;
const CONNECTION_RESET: c_int = 11;
const CONNECTION_ABORTED: c_int = 12;
const NOT_CONNECTED: c_int = 14;
const BAD_STATE: c_int = 18;
const IN_PROGRESS: c_int = 26;

// enum doca_ctx_states
const IDLE: c_int = 0;
const STARTING: c_int = 1;
const RUNNING: c_int = 2;
const STOPPING: c_int = 3;

type P = *mut c_void;

#[repr(C)]
#[derive(Clone, Copy)]
union DocaData {
    ptr: *mut c_void,
    u64: u64,
}

fn data(v: u64) -> DocaData {
    DocaData { u64: v }
}

fn u64_of(d: DocaData) -> u64 {
    // SAFETY: both fields are 8 plain bytes.
    unsafe { d.u64 }
}

static LOCK: Mutex<()> = Mutex::new(());

const ENV_VARS: [&str; 10] = [
    "FAKE_DOCA_DIR",
    "FAKE_DOCA_PCI",
    "FAKE_DOCA_REP_PCI",
    "FAKE_COMCH_MAX_MSG",
    "FAKE_COMCH_MAX_SEND_TASKS",
    "FAKE_COMCH_SNDBUF",
    "FAKE_COMCH_FAIL_START",
    "FAKE_COMCH_LAZY_DISCONNECT",
    "FAKE_COMCH_DISCONNECT_AGAIN",
    "FAKE_COMCH_NO_SERVER_CAP",
];

/// Holds the lock and a fresh rendezvous directory in FAKE_DOCA_DIR, with every other knob
/// cleared.
struct Env {
    dir: tempfile::TempDir,
    _g: MutexGuard<'static, ()>,
}

fn env() -> Env {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for v in ENV_VARS {
        std::env::remove_var(v);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FAKE_DOCA_DIR", dir.path());
    reset_recorder();
    Env { dir, _g: g }
}

// ---- poll(2), declared by hand ----

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

extern "C" {
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
}

fn readable(fd: c_int) -> bool {
    let mut p = PollFd {
        fd,
        events: 1, // POLLIN
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { poll(&mut p, 1, 0) };
    assert!(n >= 0, "poll failed on fd {fd}");
    n > 0
}

// ---- what the callbacks saw ----

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    State {
        ctx: P,
        prev: c_int,
        next: c_int,
    },
    Conn {
        conn: P,
        ok: u8,
    },
    Disconn {
        conn: P,
        ok: u8,
    },
    Recv {
        conn: P,
        data: Vec<u8>,
    },
    Done {
        task: P,
        user: u64,
        ctx_user: u64,
        status: c_int,
    },
    Fail {
        task: P,
        user: u64,
        ctx_user: u64,
        status: c_int,
    },
}

type AsTask = unsafe extern "C" fn(P) -> P;
type TaskStatus = unsafe extern "C" fn(P) -> c_int;
type TaskFree = unsafe extern "C" fn(P);

thread_local! {
    static EVENTS: RefCell<Vec<Ev>> = const { RefCell::new(Vec::new()) };
    static IN_PROGRESS_CALL: Cell<bool> = const { Cell::new(false) };
    static OUTSIDE: Cell<u32> = const { Cell::new(0) };
    static AUTO_FREE: Cell<bool> = const { Cell::new(true) };
    static TASK_FNS: Cell<Option<(AsTask, TaskStatus, TaskFree)>> = const { Cell::new(None) };
    static LAST_RECV_BUF: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

fn reset_recorder() {
    EVENTS.with(|e| e.borrow_mut().clear());
    OUTSIDE.set(0);
    AUTO_FREE.set(true);
    IN_PROGRESS_CALL.set(false);
    LAST_RECV_BUF.set((0, 0));
}

fn record(ev: Ev) {
    if !IN_PROGRESS_CALL.get() {
        OUTSIDE.set(OUTSIDE.get() + 1);
    }
    EVENTS.with(|e| e.borrow_mut().push(ev));
}

/// Takes the events recorded so far.
fn events() -> Vec<Ev> {
    assert_eq!(
        OUTSIDE.get(),
        0,
        "a callback fired outside doca_pe_progress"
    );
    EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

unsafe extern "C" fn on_state(_ud: DocaData, ctx: P, prev: c_int, next: c_int) {
    record(Ev::State { ctx, prev, next });
}

unsafe extern "C" fn on_conn(_ev: P, conn: P, ok: u8) {
    record(Ev::Conn { conn, ok });
}

unsafe extern "C" fn on_disconn(_ev: P, conn: P, ok: u8) {
    record(Ev::Disconn { conn, ok });
}

unsafe extern "C" fn on_recv(_ev: P, buf: *mut u8, len: u32, conn: P) {
    let data = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: the fake passes a buffer of `len` bytes, valid during the callback.
        unsafe { std::slice::from_raw_parts(buf, len as usize).to_vec() }
    };
    LAST_RECV_BUF.set((buf as usize, len));
    record(Ev::Recv { conn, data });
}

fn task_end(task: P, user: DocaData, ctx_user: DocaData, ok: bool) {
    let (as_task, status, free) = TASK_FNS.get().expect("task functions");
    // SAFETY: `task` is the send task handed to the callback; it is ours now.
    let status = unsafe { status(as_task(task)) };
    let (user, ctx_user) = (u64_of(user), u64_of(ctx_user));
    record(if ok {
        Ev::Done {
            task,
            user,
            ctx_user,
            status,
        }
    } else {
        Ev::Fail {
            task,
            user,
            ctx_user,
            status,
        }
    });
    if AUTO_FREE.get() {
        // SAFETY: as above; freed once.
        unsafe { free(as_task(task)) };
    }
}

unsafe extern "C" fn on_send_done(task: P, user: DocaData, ctx_user: DocaData) {
    task_end(task, user, ctx_user, true);
}

unsafe extern "C" fn on_send_fail(task: P, user: DocaData, ctx_user: DocaData) {
    task_end(task, user, ctx_user, false);
}

// ---- the libraries ----

type ListCreate = unsafe extern "C" fn(*mut *mut P, *mut u32) -> c_int;
type ListDestroy = unsafe extern "C" fn(*mut P) -> c_int;
type IsEqual = unsafe extern "C" fn(*const c_void, *const c_char, *mut u8) -> c_int;
type RepListCreate = unsafe extern "C" fn(P, c_int, *mut *mut P, *mut u32) -> c_int;
type Open = unsafe extern "C" fn(P, *mut P) -> c_int;
type Fn1 = unsafe extern "C" fn(P) -> c_int;
type Fn2 = unsafe extern "C" fn(P, P) -> c_int;
type ToPtr = unsafe extern "C" fn(P) -> P;
type ErrStr = unsafe extern "C" fn(c_int) -> *const c_char;
type Out32 = unsafe extern "C" fn(P, *mut u32) -> c_int;
type Set32 = unsafe extern "C" fn(P, u32) -> c_int;
type OutPtr = unsafe extern "C" fn(P, *mut P) -> c_int;
type OutInt = unsafe extern "C" fn(P, *mut c_int) -> c_int;
type OutSize = unsafe extern "C" fn(P, *mut usize) -> c_int;
type Progress = unsafe extern "C" fn(P) -> u8;
type SetData = unsafe extern "C" fn(P, DocaData) -> c_int;
type GetData = unsafe extern "C" fn(P) -> DocaData;
type SetDataVoid = unsafe extern "C" fn(P, DocaData);
type StateCb = unsafe extern "C" fn(DocaData, P, c_int, c_int);
type SendCb = unsafe extern "C" fn(P, DocaData, DocaData);
type RecvCb = unsafe extern "C" fn(P, *mut u8, u32, P);
type ConnCb = unsafe extern "C" fn(P, P, u8);
type SetStateCb = unsafe extern "C" fn(P, StateCb) -> c_int;
type SetConf = unsafe extern "C" fn(P, SendCb, SendCb, u32) -> c_int;
type AllocInit = unsafe extern "C" fn(P, P, *const c_void, u32, *mut P) -> c_int;
type RecvRegister = unsafe extern "C" fn(P, RecvCb) -> c_int;
type ConnRegister = unsafe extern "C" fn(P, ConnCb, ConnCb) -> c_int;
type ServerCreate = unsafe extern "C" fn(P, P, *const c_char, *mut P) -> c_int;
type ClientCreate = unsafe extern "C" fn(P, *const c_char, *mut P) -> c_int;
type ClearNotif = unsafe extern "C" fn(P, c_int) -> c_int;

/// Both fake libraries of one flavour, loaded by full path, with every function resolved.
struct Comch {
    list_create: ListCreate,
    list_destroy: ListDestroy,
    is_equal: IsEqual,
    rep_list_create: RepListCreate,
    rep_list_destroy: ListDestroy,
    rep_is_equal: IsEqual,
    dev_open: Open,
    dev_close: Fn1,
    dev_rep_open: Open,
    dev_rep_close: Fn1,
    dev_as_devinfo: ToPtr,
    err_name: ErrStr,
    err_descr: ErrStr,

    pe_create: unsafe extern "C" fn(*mut P) -> c_int,
    pe_destroy: Fn1,
    pe_progress: Progress,
    pe_notification_handle: OutInt,
    pe_request_notification: Fn1,
    pe_clear_notification: ClearNotif,
    pe_connect_ctx: Fn2,

    ctx_start: Fn1,
    ctx_stop: Fn1,
    ctx_get_state: OutInt,
    ctx_set_state_cb: SetStateCb,
    ctx_set_user_data: SetData,
    ctx_inflight: OutSize,

    task_submit: Fn1,
    task_free: TaskFree,
    task_set_user_data: SetDataVoid,
    task_get_user_data: GetData,
    task_get_ctx: ToPtr,

    cap_max_msg: Out32,
    cap_max_recv_queue: Out32,
    cap_max_clients: Out32,
    cap_max_name_len: Out32,
    cap_max_send_tasks: Out32,
    cap_server_supported: Fn1,
    cap_client_supported: Fn1,

    server_create: ServerCreate,
    server_destroy: Fn1,
    server_as_ctx: ToPtr,
    server_set_max_msg: Set32,
    server_get_max_msg: Out32,
    server_set_recv_queue: Set32,
    server_set_conf: SetConf,
    server_alloc: AllocInit,
    server_recv_register: RecvRegister,
    server_conn_register: ConnRegister,
    server_disconnect: Fn2,
    server_get_server_ctx: ToPtr,

    client_create: ClientCreate,
    client_destroy: Fn1,
    client_as_ctx: ToPtr,
    client_set_max_msg: Set32,
    client_get_max_msg: Out32,
    client_set_recv_queue: Set32,
    client_set_conf: SetConf,
    client_alloc: AllocInit,
    client_recv_register: RecvRegister,
    client_get_connection: OutPtr,
    client_get_client_ctx: ToPtr,

    conn_set_user_data: SetData,
    conn_get_user_data: GetData,
    task_send_as_task: ToPtr,

    // Dropped last (fields drop in order): the function pointers above die with them.
    comch: Library,
    _common: Library,
}

fn sym<T: Copy>(lib: &Library, name: &str) -> T {
    let cname = format!("{name}\0");
    // SAFETY: `T` is the hand-written C signature of `name`; it is used only while the library
    // stays loaded (both live in the same `Comch`).
    let s = unsafe { lib.get::<T>(cname.as_bytes()) };
    *s.unwrap_or_else(|e| panic!("symbol {name}: {e}"))
}

fn has_sym(lib: &Library, name: &str) -> bool {
    let cname = format!("{name}\0");
    // SAFETY: only checks for presence; the pointer is not used.
    unsafe { lib.get::<unsafe extern "C" fn()>(cname.as_bytes()) }.is_ok()
}

const CONN_EVENT_29: &str = "doca_comch_server_event_connection_status_changed_register";
const CONN_EVENT_27: &str = "doca_comch_server_event_connection_register";

/// A server or client with its context and progress engine.
#[derive(Clone, Copy)]
struct Side {
    obj: P,
    ctx: P,
    pe: P,
    server: bool,
}

impl Comch {
    fn load(api: ComchApi) -> Comch {
        let dir = fake_comch::build(api);
        // SAFETY: our own fake libraries, whose initialisers do nothing. The common library is
        // loaded first so that the Comch library's NEEDED entry resolves to it.
        let common = unsafe { Library::new(dir.join(fake_comch::COMMON_LIB)) }
            .unwrap_or_else(|e| panic!("loading {}: {e}", fake_comch::COMMON_LIB));
        // SAFETY: as above.
        let comch = unsafe { Library::new(dir.join(fake_comch::COMCH_LIB)) }
            .unwrap_or_else(|e| panic!("loading {}: {e}", fake_comch::COMCH_LIB));
        let conn_event = match api {
            ComchApi::V29 => CONN_EVENT_29,
            ComchApi::V27 => CONN_EVENT_27,
        };
        let c = &common;
        let m = &comch;
        let lib = Comch {
            list_create: sym(c, "doca_devinfo_create_list"),
            list_destroy: sym(c, "doca_devinfo_destroy_list"),
            is_equal: sym(c, "doca_devinfo_is_equal_pci_addr"),
            rep_list_create: sym(c, "doca_devinfo_rep_create_list"),
            rep_list_destroy: sym(c, "doca_devinfo_rep_destroy_list"),
            rep_is_equal: sym(c, "doca_devinfo_rep_is_equal_pci_addr"),
            dev_open: sym(c, "doca_dev_open"),
            dev_close: sym(c, "doca_dev_close"),
            dev_rep_open: sym(c, "doca_dev_rep_open"),
            dev_rep_close: sym(c, "doca_dev_rep_close"),
            dev_as_devinfo: sym(c, "doca_dev_as_devinfo"),
            err_name: sym(c, "doca_error_get_name"),
            err_descr: sym(c, "doca_error_get_descr"),
            pe_create: sym(c, "doca_pe_create"),
            pe_destroy: sym(c, "doca_pe_destroy"),
            pe_progress: sym(c, "doca_pe_progress"),
            pe_notification_handle: sym(c, "doca_pe_get_notification_handle"),
            pe_request_notification: sym(c, "doca_pe_request_notification"),
            pe_clear_notification: sym(c, "doca_pe_clear_notification"),
            pe_connect_ctx: sym(c, "doca_pe_connect_ctx"),
            ctx_start: sym(c, "doca_ctx_start"),
            ctx_stop: sym(c, "doca_ctx_stop"),
            ctx_get_state: sym(c, "doca_ctx_get_state"),
            ctx_set_state_cb: sym(c, "doca_ctx_set_state_changed_cb"),
            ctx_set_user_data: sym(c, "doca_ctx_set_user_data"),
            ctx_inflight: sym(c, "doca_ctx_get_num_inflight_tasks"),
            task_submit: sym(c, "doca_task_submit"),
            task_free: sym(c, "doca_task_free"),
            task_set_user_data: sym(c, "doca_task_set_user_data"),
            task_get_user_data: sym(c, "doca_task_get_user_data"),
            task_get_ctx: sym(c, "doca_task_get_ctx"),
            cap_max_msg: sym(m, "doca_comch_cap_get_max_msg_size"),
            cap_max_recv_queue: sym(m, "doca_comch_cap_get_max_recv_queue_size"),
            cap_max_clients: sym(m, "doca_comch_cap_get_max_clients"),
            cap_max_name_len: sym(m, "doca_comch_cap_get_max_name_len"),
            cap_max_send_tasks: sym(m, "doca_comch_cap_get_max_send_tasks"),
            cap_server_supported: sym(m, "doca_comch_cap_server_is_supported"),
            cap_client_supported: sym(m, "doca_comch_cap_client_is_supported"),
            server_create: sym(m, "doca_comch_server_create"),
            server_destroy: sym(m, "doca_comch_server_destroy"),
            server_as_ctx: sym(m, "doca_comch_server_as_ctx"),
            server_set_max_msg: sym(m, "doca_comch_server_set_max_msg_size"),
            server_get_max_msg: sym(m, "doca_comch_server_get_max_msg_size"),
            server_set_recv_queue: sym(m, "doca_comch_server_set_recv_queue_size"),
            server_set_conf: sym(m, "doca_comch_server_task_send_set_conf"),
            server_alloc: sym(m, "doca_comch_server_task_send_alloc_init"),
            server_recv_register: sym(m, "doca_comch_server_event_msg_recv_register"),
            server_conn_register: sym(m, conn_event),
            server_disconnect: sym(m, "doca_comch_server_disconnect"),
            server_get_server_ctx: sym(m, "doca_comch_server_get_server_ctx"),
            client_create: sym(m, "doca_comch_client_create"),
            client_destroy: sym(m, "doca_comch_client_destroy"),
            client_as_ctx: sym(m, "doca_comch_client_as_ctx"),
            client_set_max_msg: sym(m, "doca_comch_client_set_max_msg_size"),
            client_get_max_msg: sym(m, "doca_comch_client_get_max_msg_size"),
            client_set_recv_queue: sym(m, "doca_comch_client_set_recv_queue_size"),
            client_set_conf: sym(m, "doca_comch_client_task_send_set_conf"),
            client_alloc: sym(m, "doca_comch_client_task_send_alloc_init"),
            client_recv_register: sym(m, "doca_comch_client_event_msg_recv_register"),
            client_get_connection: sym(m, "doca_comch_client_get_connection"),
            client_get_client_ctx: sym(m, "doca_comch_client_get_client_ctx"),
            conn_set_user_data: sym(m, "doca_comch_connection_set_user_data"),
            conn_get_user_data: sym(m, "doca_comch_connection_get_user_data"),
            task_send_as_task: sym(m, "doca_comch_task_send_as_task"),
            comch,
            _common: common,
        };
        TASK_FNS.set(Some((
            lib.task_send_as_task,
            sym(&lib._common, "doca_task_get_status"),
            lib.task_free,
        )));
        lib
    }

    // ---- devices ----

    /// Looks `pci` up in the device list (or the representor list of `rep_of`): (entries, index).
    fn find(&self, rep_of: Option<P>, pci: &str) -> (u32, Option<usize>) {
        let want = CString::new(pci).unwrap();
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: out-pointers valid; list entries used before the list is destroyed.
        unsafe {
            let r = match rep_of {
                None => (self.list_create)(&mut list, &mut n),
                Some(dev) => (self.rep_list_create)(dev, 2, &mut list, &mut n),
            };
            assert_eq!(r, SUCCESS);
            let mut found = None;
            for i in 0..n as usize {
                let mut eq = 0u8;
                let f = if rep_of.is_none() {
                    self.is_equal
                } else {
                    self.rep_is_equal
                };
                assert_eq!(f(*list.add(i), want.as_ptr(), &mut eq), SUCCESS);
                if eq == 1 && found.is_none() {
                    found = Some(i);
                }
            }
            match rep_of {
                None => assert_eq!((self.list_destroy)(list), SUCCESS),
                Some(_) => assert_eq!((self.rep_list_destroy)(list), SUCCESS),
            }
            (n, found)
        }
    }

    /// Opens the device (or representor of `rep_of`) at `pci`.
    fn open(&self, rep_of: Option<P>, pci: &str) -> P {
        let want = CString::new(pci).unwrap();
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        let mut out = ptr::null_mut();
        // SAFETY: as in `find`; the opened device copies what it needs.
        unsafe {
            match rep_of {
                None => assert_eq!((self.list_create)(&mut list, &mut n), SUCCESS),
                Some(d) => assert_eq!((self.rep_list_create)(d, 2, &mut list, &mut n), SUCCESS),
            }
            for i in 0..n as usize {
                let mut eq = 0u8;
                let info = *list.add(i);
                match rep_of {
                    None => assert_eq!((self.is_equal)(info, want.as_ptr(), &mut eq), SUCCESS),
                    Some(_) => {
                        assert_eq!((self.rep_is_equal)(info, want.as_ptr(), &mut eq), SUCCESS)
                    }
                }
                if eq == 1 {
                    let r = match rep_of {
                        None => (self.dev_open)(info, &mut out),
                        Some(_) => (self.dev_rep_open)(info, &mut out),
                    };
                    assert_eq!(r, SUCCESS);
                    break;
                }
            }
            match rep_of {
                None => assert_eq!((self.list_destroy)(list), SUCCESS),
                Some(_) => assert_eq!((self.rep_list_destroy)(list), SUCCESS),
            }
        }
        assert!(!out.is_null(), "no device at {pci}");
        out
    }

    fn devinfo(&self, dev: P) -> P {
        // SAFETY: an open device.
        unsafe { (self.dev_as_devinfo)(dev) }
    }

    fn cap(&self, f: Out32, info: P) -> u32 {
        let mut v = 0;
        // SAFETY: valid devinfo (or object) and out-pointer.
        assert_eq!(unsafe { f(info, &mut v) }, SUCCESS);
        v
    }

    fn name(&self, e: c_int) -> String {
        // SAFETY: the fake returns static NUL-terminated strings.
        unsafe { CStr::from_ptr((self.err_name)(e)) }
            .to_string_lossy()
            .into_owned()
    }

    fn descr(&self, e: c_int) -> String {
        // SAFETY: as above.
        unsafe { CStr::from_ptr((self.err_descr)(e)) }
            .to_string_lossy()
            .into_owned()
    }

    // ---- progress engines and contexts ----

    fn pe(&self) -> P {
        let mut pe = ptr::null_mut();
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { (self.pe_create)(&mut pe) }, SUCCESS);
        pe
    }

    fn progress(&self, pe: P) -> u8 {
        IN_PROGRESS_CALL.set(true);
        // SAFETY: a live progress engine.
        let r = unsafe { (self.pe_progress)(pe) };
        IN_PROGRESS_CALL.set(false);
        r
    }

    /// Progresses every engine in `pes` `n` times; returns whether anything happened.
    fn pump(&self, pes: &[P], n: usize) -> bool {
        let mut did = false;
        for _ in 0..n {
            for &pe in pes {
                did |= self.progress(pe) != 0;
            }
        }
        did
    }

    /// Progresses `pes` until `done()` holds (at most 1000 rounds).
    fn until(&self, pes: &[P], what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            self.pump(pes, 1);
        }
        panic!("never happened: {what}");
    }

    fn state(&self, ctx: P) -> c_int {
        let mut s = -1;
        // SAFETY: valid context and out-pointer.
        assert_eq!(unsafe { (self.ctx_get_state)(ctx, &mut s) }, SUCCESS);
        s
    }

    fn call(&self, f: Fn1, p: P) -> c_int {
        // SAFETY: `p` is a valid object for `f`.
        unsafe { f(p) }
    }

    fn inflight(&self, ctx: P) -> usize {
        let mut n = usize::MAX;
        // SAFETY: valid context and out-pointer.
        assert_eq!(unsafe { (self.ctx_inflight)(ctx, &mut n) }, SUCCESS);
        n
    }

    /// A configured server (callbacks, `tasks` send tasks, user data 0x5e), connected to its own
    /// progress engine, not started.
    fn new_server(&self, dev: P, rep: P, name: &str, tasks: u32) -> Side {
        let name = CString::new(name).unwrap();
        let mut obj = ptr::null_mut();
        let pe = self.pe();
        // SAFETY: open device/representor, valid name and out-pointer; callbacks are ours.
        unsafe {
            assert_eq!(
                (self.server_create)(dev, rep, name.as_ptr(), &mut obj),
                SUCCESS
            );
            let ctx = (self.server_as_ctx)(obj);
            assert!(!ctx.is_null());
            assert_eq!(
                (self.server_set_conf)(obj, on_send_done, on_send_fail, tasks),
                SUCCESS
            );
            assert_eq!((self.server_recv_register)(obj, on_recv), SUCCESS);
            assert_eq!(
                (self.server_conn_register)(obj, on_conn, on_disconn),
                SUCCESS
            );
            assert_eq!((self.ctx_set_state_cb)(ctx, on_state), SUCCESS);
            assert_eq!((self.ctx_set_user_data)(ctx, data(0x5e)), SUCCESS);
            assert_eq!((self.pe_connect_ctx)(pe, ctx), SUCCESS);
            Side {
                obj,
                ctx,
                pe,
                server: true,
            }
        }
    }

    /// A configured client (user data 0xc1), connected to its own engine, not started.
    fn new_client(&self, dev: P, name: &str, tasks: u32) -> Side {
        let name = CString::new(name).unwrap();
        let mut obj = ptr::null_mut();
        let pe = self.pe();
        // SAFETY: as in `new_server`.
        unsafe {
            assert_eq!((self.client_create)(dev, name.as_ptr(), &mut obj), SUCCESS);
            let ctx = (self.client_as_ctx)(obj);
            assert!(!ctx.is_null());
            assert_eq!(
                (self.client_set_conf)(obj, on_send_done, on_send_fail, tasks),
                SUCCESS
            );
            assert_eq!((self.client_recv_register)(obj, on_recv), SUCCESS);
            assert_eq!((self.ctx_set_state_cb)(ctx, on_state), SUCCESS);
            assert_eq!((self.ctx_set_user_data)(ctx, data(0xc1)), SUCCESS);
            assert_eq!((self.pe_connect_ctx)(pe, ctx), SUCCESS);
            Side {
                obj,
                ctx,
                pe,
                server: false,
            }
        }
    }

    fn client_conn(&self, cli: Side) -> Result<P, c_int> {
        let mut conn = ptr::null_mut();
        // SAFETY: valid client and out-pointer.
        match unsafe { (self.client_get_connection)(cli.obj, &mut conn) } {
            SUCCESS => Ok(conn),
            e => Err(e),
        }
    }

    /// Starts a server and a client and progresses both until connected; returns the server's
    /// and the client's connection objects. Consumes the events.
    fn connect(&self, srv: Side, cli: Side) -> (P, P) {
        if self.state(srv.ctx) == IDLE {
            assert_eq!(self.call(self.ctx_start, srv.ctx), SUCCESS);
        }
        assert_eq!(self.call(self.ctx_start, cli.ctx), IN_PROGRESS);
        self.until(&[cli.pe, srv.pe], "client RUNNING", || {
            self.state(cli.ctx) != STARTING
        });
        assert_eq!(self.state(cli.ctx), RUNNING);
        let sconn = events()
            .into_iter()
            .find_map(|e| match e {
                Ev::Conn { conn, ok: 1 } => Some(conn),
                _ => None,
            })
            .expect("connection callback on the server");
        (sconn, self.client_conn(cli).expect("client connection"))
    }

    /// alloc_init + task user data + submit. The message must stay alive until sent.
    fn try_send(&self, side: Side, conn: P, msg: &[u8], user: u64) -> Result<P, c_int> {
        let alloc = if side.server {
            self.server_alloc
        } else {
            self.client_alloc
        };
        let mut task = ptr::null_mut();
        // SAFETY: valid context object and connection; `msg` outlives the send (caller).
        unsafe {
            let r = alloc(
                side.obj,
                conn,
                msg.as_ptr().cast(),
                msg.len() as u32,
                &mut task,
            );
            if r != SUCCESS {
                return Err(r);
            }
            let t = (self.task_send_as_task)(task);
            (self.task_set_user_data)(t, data(user));
            assert_eq!(u64_of((self.task_get_user_data)(t)), user);
            assert_eq!((self.task_get_ctx)(t), side.ctx);
            let r = (self.task_submit)(t);
            if r != SUCCESS {
                (self.task_free)(t);
                return Err(r);
            }
        }
        Ok(task)
    }

    fn send(&self, side: Side, conn: P, msg: &[u8], user: u64) -> P {
        self.try_send(side, conn, msg, user)
            .unwrap_or_else(|e| panic!("send: {}", self.name(e)))
    }

    /// Stops (if needed), progresses to IDLE, destroys the context and its engine.
    fn finish(&self, side: Side) {
        if self.state(side.ctx) != IDLE {
            let r = self.call(self.ctx_stop, side.ctx);
            assert!(r == SUCCESS || r == IN_PROGRESS, "stop: {}", self.name(r));
            self.until(&[side.pe], "IDLE", || self.state(side.ctx) == IDLE);
        }
        self.pump(&[side.pe], 1);
        let destroy = if side.server {
            self.server_destroy
        } else {
            self.client_destroy
        };
        assert_eq!(self.call(destroy, side.obj), SUCCESS);
        assert_eq!(self.call(self.pe_destroy, side.pe), SUCCESS);
    }

    fn close_devs(&self, dev: P, rep: P) {
        assert_eq!(self.call(self.dev_rep_close, rep), SUCCESS);
        assert_eq!(self.call(self.dev_close, dev), SUCCESS);
    }
}

fn st(ctx: P, prev: c_int, next: c_int) -> Ev {
    Ev::State { ctx, prev, next }
}

fn recv(conn: P, data: &[u8]) -> Ev {
    Ev::Recv {
        conn,
        data: data.to_vec(),
    }
}

// ---- tests ----

#[test]
fn devices_caps_and_errors() {
    let _e = env();
    std::env::set_var("FAKE_DOCA_PCI", "0000:03:00.0, 0000:0A:00.1,junk");
    std::env::set_var("FAKE_DOCA_REP_PCI", "b1:00.0,B1:00.2");
    let d = Comch::load(ComchApi::V29);
    assert_eq!(d.find(None, "03:00.0"), (2, Some(0)));
    assert_eq!(d.find(None, "0000:03:00.0"), (2, Some(0)));
    assert_eq!(d.find(None, "0a:00.1"), (2, Some(1)));
    assert_eq!(d.find(None, "0000:0A:00.1"), (2, Some(1)));
    assert_eq!(d.find(None, "05:00.0"), (2, None));
    let dev = d.open(None, "0a:00.1");
    assert_eq!(d.find(Some(dev), "0000:b1:00.2"), (2, Some(1)));
    assert_eq!(d.find(Some(dev), "b1:00.0"), (2, Some(0)));
    let rep = d.open(Some(dev), "B1:00.2");

    let info = d.devinfo(dev);
    assert!(!info.is_null());
    assert_eq!(d.cap(d.cap_max_msg, info), 4080);
    assert_eq!(d.cap(d.cap_max_recv_queue, info), 8192);
    assert_eq!(d.cap(d.cap_max_clients, info), 512);
    assert_eq!(d.cap(d.cap_max_name_len, info), 120);
    assert_eq!(d.cap(d.cap_max_send_tasks, info), 1024);
    assert_eq!(d.call(d.cap_server_supported, info), SUCCESS);
    assert_eq!(d.call(d.cap_client_supported, info), SUCCESS);
    std::env::set_var("FAKE_COMCH_MAX_MSG", "2000");
    std::env::set_var("FAKE_COMCH_MAX_SEND_TASKS", "16");
    std::env::set_var("FAKE_COMCH_NO_SERVER_CAP", "1");
    assert_eq!(d.cap(d.cap_max_msg, info), 2000);
    assert_eq!(d.cap(d.cap_max_send_tasks, info), 16);
    assert_eq!(d.call(d.cap_server_supported, info), NOT_SUPPORTED);
    assert_eq!(d.call(d.cap_client_supported, info), SUCCESS);
    let name = CString::new("x").unwrap();
    let mut srv = ptr::null_mut();
    // SAFETY: open device/representor, valid name and out-pointer.
    unsafe {
        assert_eq!(
            (d.server_create)(dev, rep, name.as_ptr(), &mut srv),
            NOT_SUPPORTED
        );
    }
    std::env::remove_var("FAKE_COMCH_NO_SERVER_CAP");

    // Max message size: the cap at creation, settable up to it.
    let cli = d.new_client(dev, "x", 4);
    assert_eq!(d.cap(d.client_get_max_msg, cli.obj), 2000);
    // SAFETY: valid client.
    unsafe {
        assert_eq!((d.client_set_max_msg)(cli.obj, 2001), INVALID_VALUE);
        assert_eq!((d.client_set_max_msg)(cli.obj, 0), INVALID_VALUE);
        assert_eq!((d.client_set_max_msg)(cli.obj, 100), SUCCESS);
        assert_eq!((d.client_set_recv_queue)(cli.obj, 8193), INVALID_VALUE);
        assert_eq!((d.client_set_recv_queue)(cli.obj, 10), SUCCESS);
    }
    assert_eq!(d.cap(d.client_get_max_msg, cli.obj), 100);
    d.finish(cli);
    // Names: up to 119 bytes plus NUL.
    for (len, want) in [(119, SUCCESS), (120, INVALID_VALUE), (0, INVALID_VALUE)] {
        let name = CString::new("n".repeat(len)).unwrap();
        let mut cli = ptr::null_mut();
        // SAFETY: open device, valid name and out-pointer.
        let r = unsafe { (d.client_create)(dev, name.as_ptr(), &mut cli) };
        assert_eq!(r, want, "name of {len} bytes");
        if r == SUCCESS {
            assert_eq!(d.call(d.client_destroy, cli), SUCCESS);
        }
    }

    assert_eq!(d.name(AGAIN), "DOCA_ERROR_AGAIN");
    assert_eq!(d.name(IN_PROGRESS), "DOCA_ERROR_IN_PROGRESS");
    assert_eq!(d.name(27), "DOCA_ERROR_TOO_BIG");
    assert_eq!(d.descr(CONNECTION_RESET), "Connection reset by peer");
    assert_eq!(d.descr(999), "unrecognized error code");
    d.close_devs(dev, rep);
    assert!(events().is_empty());
}

#[test]
fn connect_and_exchange_messages() {
    let e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "relay", 64);
    let cli = d.new_client(dev, "relay", 64);

    // Start needs a progress engine.
    let name = CString::new("lonely").unwrap();
    let mut lonely = ptr::null_mut();
    // SAFETY: open device, valid name and out-pointer.
    unsafe {
        assert_eq!((d.client_create)(dev, name.as_ptr(), &mut lonely), SUCCESS);
        let ctx = (d.client_as_ctx)(lonely);
        assert_eq!((d.ctx_start)(ctx), NOT_CONNECTED);
        assert_eq!((d.pe_connect_ctx)(srv.pe, ctx), SUCCESS);
        assert_eq!((d.pe_connect_ctx)(srv.pe, ctx), NOT_PERMITTED);
        assert_eq!((d.client_destroy)(lonely), SUCCESS);
    }

    // --- server start: synchronous, RUNNING at once, callback only during progress ---
    assert_eq!(d.call(d.ctx_start, srv.ctx), SUCCESS);
    assert_eq!(d.state(srv.ctx), RUNNING);
    assert_eq!(d.call(d.ctx_start, srv.ctx), BAD_STATE);
    {
        use std::os::unix::fs::FileTypeExt;
        let ft = std::fs::metadata(e.dir.path().join("relay"))
            .unwrap()
            .file_type();
        assert!(ft.is_socket(), "the server binds $FAKE_DOCA_DIR/<name>");
    }
    assert!(events().is_empty(), "no callback inside doca_ctx_start");
    // Setters are refused once started.
    // SAFETY: valid server and context; our callbacks.
    unsafe {
        assert_eq!((d.server_set_max_msg)(srv.obj, 100), BAD_STATE);
        assert_eq!((d.server_set_recv_queue)(srv.obj, 10), BAD_STATE);
        assert_eq!(
            (d.server_set_conf)(srv.obj, on_send_done, on_send_fail, 8),
            BAD_STATE
        );
        assert_eq!((d.server_recv_register)(srv.obj, on_recv), BAD_STATE);
        assert_eq!(
            (d.server_conn_register)(srv.obj, on_conn, on_disconn),
            BAD_STATE
        );
        assert_eq!((d.ctx_set_state_cb)(srv.ctx, on_state), BAD_STATE);
    }
    assert_eq!(d.cap(d.server_get_max_msg, srv.obj), 4080);
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(events(), vec![st(srv.ctx, IDLE, RUNNING)]);
    assert_eq!(d.progress(srv.pe), 0, "nothing to do");

    // --- client start: asynchronous ---
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    assert_eq!(d.state(cli.ctx), STARTING);
    assert_eq!(d.client_conn(cli), Err(BAD_STATE));
    assert!(events().is_empty(), "no callback inside doca_ctx_start");
    // SAFETY: valid client.
    unsafe { assert_eq!((d.client_set_max_msg)(cli.obj, 100), BAD_STATE) };
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(events(), vec![st(cli.ctx, IDLE, STARTING)]);
    assert_eq!(d.state(cli.ctx), STARTING, "not accepted yet");
    assert_eq!(d.progress(cli.pe), 0);
    assert_eq!(d.progress(srv.pe), 1, "accepts");
    let ev = events();
    assert_eq!(ev.len(), 1);
    let sconn = match ev[0] {
        Ev::Conn { conn, ok: 1 } => conn,
        ref x => panic!("expected a connection callback, got {x:?}"),
    };
    assert_eq!(
        d.state(cli.ctx),
        STARTING,
        "RUNNING only during client progress"
    );
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(events(), vec![st(cli.ctx, STARTING, RUNNING)]);
    let cconn = d.client_conn(cli).unwrap();

    // Connection objects.
    // SAFETY: connections of live contexts.
    unsafe {
        assert_eq!((d.server_get_server_ctx)(sconn), srv.obj);
        assert!((d.client_get_client_ctx)(sconn).is_null());
        assert_eq!((d.client_get_client_ctx)(cconn), cli.obj);
        assert!((d.server_get_server_ctx)(cconn).is_null());
        assert_eq!(u64_of((d.conn_get_user_data)(sconn)), 0, "starts at 0");
        assert_eq!((d.conn_set_user_data)(sconn, data(77)), SUCCESS);
        assert_eq!(u64_of((d.conn_get_user_data)(sconn)), 77);
    }

    // --- client -> server ---
    let hello = b"hello".to_vec();
    let t = d.send(cli, cconn, &hello, 1);
    assert_eq!(d.inflight(cli.ctx), 1);
    assert!(events().is_empty(), "no callback inside submit");
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(
        events(),
        vec![Ev::Done {
            task: t,
            user: 1,
            ctx_user: 0xc1,
            status: SUCCESS
        }]
    );
    assert_eq!(d.inflight(cli.ctx), 0);
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(events(), vec![recv(sconn, b"hello")]);
    // The receive buffer is only valid during the callback: scribbled afterwards.
    let (buf, len) = LAST_RECV_BUF.get();
    assert_eq!(len, 5);
    // SAFETY: the server's receive buffer, still allocated (the server lives).
    let after = unsafe { std::slice::from_raw_parts(buf as *const u8, 5) }.to_vec();
    assert_eq!(after, vec![0xa5; 5]);

    // --- the message is read when sent, not at alloc/submit ---
    let mut late = b"AAAA".to_vec();
    d.send(cli, cconn, &late, 2);
    late.copy_from_slice(b"BBBB");
    d.pump(&[cli.pe, srv.pe], 1);
    let ev = events();
    assert!(ev.contains(&recv(sconn, b"BBBB")), "{ev:?}");

    // --- server -> client, empty and maximal messages, order kept ---
    let big: Vec<u8> = (0..4080u32).map(|i| (i % 251) as u8).collect();
    let empty: Vec<u8> = Vec::new();
    d.send(srv, sconn, &empty, 10);
    d.send(srv, sconn, &big, 11);
    d.send(srv, sconn, b"tail", 12);
    let over = vec![0u8; 4081];
    assert_eq!(d.try_send(srv, sconn, &over, 0), Err(INVALID_VALUE));
    assert_eq!(d.try_send(cli, cconn, &over, 0), Err(INVALID_VALUE));
    assert_eq!(
        d.try_send(cli, sconn, b"x", 0),
        Err(INVALID_VALUE),
        "foreign"
    );
    assert_eq!(d.inflight(srv.ctx), 3);
    assert_eq!(d.progress(srv.pe), 1);
    let ev = events();
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| matches!(
        e,
        Ev::Done {
            status: SUCCESS,
            ctx_user: 0x5e,
            ..
        }
    )));
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(
        events(),
        vec![recv(cconn, b""), recv(cconn, &big), recv(cconn, b"tail")]
    );
    assert!(!d.pump(&[cli.pe, srv.pe], 1), "all quiet");

    // --- the notification handle never fires ---
    let mut fd = -1;
    // SAFETY: valid engine and out-pointer.
    unsafe {
        assert_eq!((d.pe_notification_handle)(cli.pe, &mut fd), SUCCESS);
        assert_eq!((d.pe_request_notification)(cli.pe), SUCCESS);
    }
    assert!(fd >= 0);
    d.send(srv, sconn, b"ping", 13);
    d.progress(srv.pe);
    assert!(
        !readable(fd),
        "armed, a message waiting: still not readable"
    );
    d.progress(cli.pe);
    assert!(!readable(fd));
    // SAFETY: valid engine.
    assert_eq!(unsafe { (d.pe_clear_notification)(cli.pe, fd) }, SUCCESS);
    assert!(events().contains(&recv(cconn, b"ping")));

    // --- teardown: the client stops; the server sees the disconnection ---
    assert_eq!(
        d.call(d.pe_destroy, cli.pe),
        IN_USE,
        "a context is connected"
    );
    assert_eq!(d.call(d.client_destroy, cli.obj), BAD_STATE, "not idle");
    assert_eq!(d.call(d.ctx_stop, cli.ctx), SUCCESS, "nothing in flight");
    assert_eq!(d.state(cli.ctx), IDLE);
    assert_eq!(d.call(d.ctx_stop, cli.ctx), BAD_STATE);
    assert!(events().is_empty());
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(events(), vec![st(cli.ctx, RUNNING, IDLE)]);
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(events(), vec![Ev::Disconn { conn: sconn, ok: 1 }]);
    assert_eq!(d.try_send(srv, sconn, b"x", 0), Err(NOT_CONNECTED));
    d.finish(cli);
    assert_eq!(d.call(d.ctx_stop, srv.ctx), SUCCESS);
    assert!(
        !e.dir.path().join("relay").exists(),
        "stop removes the socket"
    );
    d.finish(srv);
    assert_eq!(events(), vec![st(srv.ctx, RUNNING, IDLE)]);
    d.close_devs(dev, rep);
}

#[test]
fn server_restart_and_destroy_remove_socket() {
    let e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    // A stale file where the socket goes is replaced.
    std::fs::write(e.dir.path().join("svc"), b"stale").unwrap();
    let srv = d.new_server(dev, rep, "svc", 8);
    assert_eq!(d.call(d.ctx_start, srv.ctx), SUCCESS);
    assert_eq!(d.call(d.ctx_stop, srv.ctx), SUCCESS);
    assert_eq!(d.call(d.ctx_start, srv.ctx), SUCCESS, "restartable");
    let cli = d.new_client(dev, "svc", 8);
    let (_sconn, cconn) = d.connect(srv, cli);
    d.send(cli, cconn, b"x", 0);
    d.pump(&[cli.pe, srv.pe], 2);
    assert!(events().contains(&recv(_sconn, b"x")));
    d.finish(cli);
    d.pump(&[srv.pe], 1);
    assert_eq!(d.call(d.server_destroy, srv.obj), BAD_STATE, "running");
    assert!(e.dir.path().join("svc").exists());
    d.finish(srv);
    assert!(!e.dir.path().join("svc").exists());
    d.close_devs(dev, rep);
}

#[test]
fn client_without_server_fails_to_idle() {
    let _e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let cli = d.new_client(dev, "nobody", 8);
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    assert!(events().is_empty());
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(
        events(),
        vec![st(cli.ctx, IDLE, STARTING), st(cli.ctx, STARTING, IDLE)]
    );
    assert_eq!(d.state(cli.ctx), IDLE);
    assert_eq!(d.client_conn(cli), Err(BAD_STATE));

    // A stopped server (socket gone) and a server that went away while the client waited.
    let srv = d.new_server(dev, rep, "nobody", 8);
    assert_eq!(d.call(d.ctx_start, srv.ctx), SUCCESS);
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    d.progress(cli.pe); // connected, waiting for acceptance
    assert_eq!(d.state(cli.ctx), STARTING);
    assert_eq!(d.call(d.ctx_stop, srv.ctx), SUCCESS);
    d.progress(cli.pe);
    assert_eq!(d.state(cli.ctx), IDLE, "never accepted");
    events();
    // Retry works once the server is back.
    assert_eq!(d.call(d.ctx_start, srv.ctx), SUCCESS);
    d.connect(srv, cli);
    // A client can stop while STARTING.
    d.finish(cli);
    d.finish(srv);
    let cli = d.new_client(dev, "nobody", 8);
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    assert_eq!(d.call(d.ctx_stop, cli.ctx), SUCCESS);
    assert_eq!(d.state(cli.ctx), IDLE);
    d.finish(cli);
    d.close_devs(dev, rep);
}

#[test]
fn task_pool_and_backpressure() {
    let _e = env();
    std::env::set_var("FAKE_COMCH_MAX_SEND_TASKS", "4");
    std::env::set_var("FAKE_COMCH_SNDBUF", "4096");
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "bp", 1024);
    let cli = d.new_client(dev, "bp", 1024);
    assert_eq!(d.cap(d.cap_max_send_tasks, d.devinfo(dev)), 4);
    let (sconn, cconn) = d.connect(srv, cli);

    // The pool holds min(asked, cap) = 4 tasks; allocated means not yet freed.
    let msgs: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            let mut m = vec![(i % 256) as u8; 1000];
            m[..4].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    for (i, m) in msgs.iter().enumerate().take(4) {
        d.send(cli, cconn, m, i as u64);
    }
    assert_eq!(d.try_send(cli, cconn, &msgs[4], 4), Err(NO_MEMORY));
    assert_eq!(d.inflight(cli.ctx), 4);
    d.progress(cli.pe);
    assert_eq!(
        events().len(),
        4,
        "completions, tasks freed in the callback"
    );
    d.send(cli, cconn, &msgs[4], 4);

    // With a small socket buffer and a server that does not progress, tasks stay in flight.
    let mut next = 5usize;
    let mut stuck = false;
    for _ in 0..200 {
        while next < msgs.len() {
            match d.try_send(cli, cconn, &msgs[next], next as u64) {
                Ok(_) => next += 1,
                Err(NO_MEMORY) => break,
                Err(e) => panic!("send: {}", d.name(e)),
            }
        }
        d.progress(cli.pe);
        if d.inflight(cli.ctx) == 4 && d.try_send(cli, cconn, b"", 0) == Err(NO_MEMORY) {
            stuck = true;
            break;
        }
    }
    assert!(stuck, "the send queue never filled up");
    let sent_before = next;
    assert!(sent_before < msgs.len(), "everything was sent");
    // Drain: everything arrives, in order, and the sender moves on.
    let mut got = Vec::new();
    for _ in 0..1000 {
        while next < msgs.len() {
            match d.try_send(cli, cconn, &msgs[next], next as u64) {
                Ok(_) => next += 1,
                Err(NO_MEMORY) => break,
                Err(e) => panic!("send: {}", d.name(e)),
            }
        }
        d.pump(&[srv.pe, cli.pe], 1);
        for e in events() {
            if let Ev::Recv { conn, data } = e {
                assert_eq!(conn, sconn);
                got.push(data);
            }
        }
        if got.len() == msgs.len() {
            break;
        }
    }
    assert_eq!(got, msgs);
    d.finish(cli);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn server_disconnect_stops_the_client() {
    let _e = env();
    std::env::set_var("FAKE_COMCH_DISCONNECT_AGAIN", "1");
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "dc", 8);
    let cli = d.new_client(dev, "dc", 8);
    let (sconn, cconn) = d.connect(srv, cli);
    // A second client stays connected throughout.
    let cli2 = d.new_client(dev, "dc", 8);
    let (sconn2, cconn2) = d.connect(srv, cli2);
    assert_ne!(sconn, sconn2);

    let queued = b"never sent".to_vec();
    let t = d.send(cli, cconn, &queued, 5);
    // SAFETY: server and its connection.
    unsafe {
        assert_eq!((d.server_disconnect)(srv.obj, sconn), AGAIN, "first try");
        assert_eq!((d.server_disconnect)(srv.obj, sconn), SUCCESS, "retry");
        assert_eq!((d.server_disconnect)(srv.obj, sconn), NOT_CONNECTED);
        assert_eq!((d.server_disconnect)(srv.obj, cconn), INVALID_VALUE);
    }
    assert!(events().is_empty(), "no callback inside disconnect");
    assert_eq!(d.try_send(srv, sconn, b"x", 0), Err(NOT_CONNECTED));
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(
        events(),
        vec![
            st(cli.ctx, RUNNING, STOPPING),
            Ev::Fail {
                task: t,
                user: 5,
                ctx_user: 0xc1,
                status: CONNECTION_RESET
            },
            st(cli.ctx, STOPPING, IDLE),
        ]
    );
    assert_eq!(d.client_conn(cli), Err(BAD_STATE));
    // The server reports the end of the connection it closed, once.
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(events(), vec![Ev::Disconn { conn: sconn, ok: 1 }]);
    d.pump(&[srv.pe, cli.pe, cli2.pe], 3);
    assert!(events().is_empty());
    // The other client is unaffected.
    d.send(cli2, cconn2, b"still here", 0);
    d.pump(&[cli2.pe, srv.pe], 1);
    assert!(events().contains(&recv(sconn2, b"still here")));
    d.finish(cli);
    d.finish(cli2);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn client_gone_is_reported_to_the_server() {
    let _e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "gone", 8);
    let cli = d.new_client(dev, "gone", 8);
    let (sconn, cconn) = d.connect(srv, cli);
    // Messages sent before the client left are delivered first.
    d.send(cli, cconn, b"last words", 0);
    d.progress(cli.pe);
    d.finish(cli);
    events();
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(
        events(),
        vec![
            recv(sconn, b"last words"),
            Ev::Disconn { conn: sconn, ok: 1 }
        ]
    );
    assert_eq!(d.try_send(srv, sconn, b"x", 0), Err(NOT_CONNECTED));
    // A send queued before the report fails with CONNECTION_RESET before the callback.
    let cli = d.new_client(dev, "gone", 8);
    let (sconn, _) = d.connect(srv, cli);
    let t = d.send(srv, sconn, b"too late", 9);
    d.finish(cli);
    events();
    d.progress(srv.pe);
    let ev = events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(ev[0], Ev::Fail { task, user: 9, status: CONNECTION_RESET, .. } if task == t));
    assert_eq!(ev[1], Ev::Disconn { conn: sconn, ok: 1 });
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn lazy_disconnect_waits_for_a_send() {
    let _e = env();
    std::env::set_var("FAKE_COMCH_LAZY_DISCONNECT", "1");
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "lazy", 8);
    let cli = d.new_client(dev, "lazy", 8);
    let (sconn, _) = d.connect(srv, cli);
    d.finish(cli);
    events();
    d.pump(&[srv.pe], 5);
    assert!(events().is_empty(), "not noticed without a send");
    let t = d.send(srv, sconn, b"anyone?", 3);
    assert!(events().is_empty());
    d.progress(srv.pe);
    let ev = events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(ev[0], Ev::Fail { task, user: 3, status: CONNECTION_RESET, .. } if task == t));
    assert_eq!(ev[1], Ev::Disconn { conn: sconn, ok: 1 });
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn stop_flushes_in_flight_tasks() {
    let _e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "flush", 8);
    let cli = d.new_client(dev, "flush", 8);
    let (sconn, cconn) = d.connect(srv, cli);

    // Client stop with two tasks in flight.
    let t1 = d.send(cli, cconn, b"one", 1);
    let t2 = d.send(cli, cconn, b"two", 2);
    assert_eq!(d.call(d.ctx_stop, cli.ctx), IN_PROGRESS);
    assert_eq!(d.state(cli.ctx), STOPPING);
    assert_eq!(d.call(d.ctx_stop, cli.ctx), IN_PROGRESS);
    assert_eq!(d.try_send(cli, cconn, b"x", 0), Err(BAD_STATE));
    assert!(events().is_empty());
    assert_eq!(d.progress(cli.pe), 1);
    let fail = |task, user| Ev::Fail {
        task,
        user,
        ctx_user: 0xc1,
        status: CONNECTION_ABORTED,
    };
    assert_eq!(
        events(),
        vec![
            st(cli.ctx, RUNNING, STOPPING),
            fail(t1, 1),
            fail(t2, 2),
            st(cli.ctx, STOPPING, IDLE),
        ]
    );
    d.progress(srv.pe);
    assert_eq!(
        events(),
        vec![Ev::Disconn { conn: sconn, ok: 1 }],
        "nothing sent"
    );

    // Tasks not freed in the error callback keep the context STOPPING until they are.
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    d.until(&[cli.pe, srv.pe], "reconnected", || {
        d.state(cli.ctx) == RUNNING
    });
    events();
    let cconn = d.client_conn(cli).unwrap();
    let t3 = d.send(cli, cconn, b"three", 3);
    AUTO_FREE.set(false);
    assert_eq!(d.call(d.ctx_stop, cli.ctx), IN_PROGRESS);
    d.pump(&[cli.pe], 3);
    assert_eq!(d.state(cli.ctx), STOPPING, "a task is still allocated");
    assert_eq!(events(), vec![st(cli.ctx, RUNNING, STOPPING), fail(t3, 3)]);
    // SAFETY: the task handed back by the error callback, freed once.
    unsafe { (d.task_free)((d.task_send_as_task)(t3)) };
    AUTO_FREE.set(true);
    assert_eq!(d.progress(cli.pe), 1);
    assert_eq!(events(), vec![st(cli.ctx, STOPPING, IDLE)]);

    // Server stop with a task in flight: flushed; the client sees the server go away.
    assert_eq!(d.call(d.ctx_start, cli.ctx), IN_PROGRESS);
    d.until(&[cli.pe, srv.pe], "reconnected", || {
        d.state(cli.ctx) == RUNNING
    });
    let sconn = events()
        .into_iter()
        .find_map(|e| match e {
            Ev::Conn { conn, .. } => Some(conn),
            _ => None,
        })
        .unwrap();
    let cconn = d.client_conn(cli).unwrap();
    let ts = d.send(srv, sconn, b"flushed", 7);
    let tc = d.send(cli, cconn, b"reset", 8);
    assert_eq!(d.call(d.ctx_stop, srv.ctx), IN_PROGRESS);
    assert_eq!(d.progress(srv.pe), 1);
    assert_eq!(
        events(),
        vec![
            st(srv.ctx, RUNNING, STOPPING),
            Ev::Fail {
                task: ts,
                user: 7,
                ctx_user: 0x5e,
                status: CONNECTION_ABORTED
            },
            st(srv.ctx, STOPPING, IDLE),
        ]
    );
    assert_eq!(d.progress(cli.pe), 1);
    let ev = events();
    assert_eq!(ev[0], st(cli.ctx, RUNNING, STOPPING), "{ev:?}");
    assert!(matches!(ev[1], Ev::Fail { task, status: CONNECTION_RESET, .. } if task == tc));
    assert_eq!(ev[2], st(cli.ctx, STOPPING, IDLE));
    assert_eq!(ev.len(), 3);
    d.finish(cli);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn message_above_the_receivers_max_breaks_the_connection() {
    let _e = env();
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "small", 8);
    let cli = d.new_client(dev, "small", 8);
    // SAFETY: idle client.
    assert_eq!(unsafe { (d.client_set_max_msg)(cli.obj, 100) }, SUCCESS);
    let (sconn, cconn) = d.connect(srv, cli);
    let fits = vec![1u8; 100];
    let too_big = vec![2u8; 101];
    assert_eq!(d.try_send(cli, cconn, &too_big, 0), Err(INVALID_VALUE));
    d.send(srv, sconn, &fits, 0);
    d.send(srv, sconn, &too_big, 0);
    d.pump(&[srv.pe, cli.pe], 1);
    let ev = events();
    assert!(ev.contains(&recv(cconn, &fits)), "{ev:?}");
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Ev::Recv { data, .. } if data.len() == 101)));
    assert_eq!(
        ev[ev.len() - 2..],
        [st(cli.ctx, RUNNING, STOPPING), st(cli.ctx, STOPPING, IDLE)]
    );
    d.progress(srv.pe);
    assert_eq!(events(), vec![Ev::Disconn { conn: sconn, ok: 1 }]);
    d.finish(cli);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn start_failures() {
    let _e = env();
    std::env::set_var("FAKE_COMCH_FAIL_START", "1");
    let d = Comch::load(ComchApi::V29);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "f", 8);
    let cli = d.new_client(dev, "f", 8);
    assert_eq!(d.call(d.ctx_start, srv.ctx), INITIALIZATION);
    assert_eq!(d.call(d.ctx_start, cli.ctx), INITIALIZATION);
    assert_eq!((d.state(srv.ctx), d.state(cli.ctx)), (IDLE, IDLE));
    std::env::remove_var("FAKE_COMCH_FAIL_START");
    std::env::remove_var("FAKE_DOCA_DIR");
    assert_eq!(
        d.call(d.ctx_start, srv.ctx),
        INITIALIZATION,
        "no FAKE_DOCA_DIR"
    );
    assert_eq!(
        d.call(d.ctx_start, cli.ctx),
        INITIALIZATION,
        "no FAKE_DOCA_DIR"
    );
    assert!(!d.pump(&[srv.pe, cli.pe], 2));
    assert!(events().is_empty());
    d.finish(cli);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn v27_exports_only_the_old_connection_event_name() {
    let _e = env();
    {
        let d = Comch::load(ComchApi::V29);
        assert!(has_sym(&d.comch, CONN_EVENT_29));
        assert!(!has_sym(&d.comch, CONN_EVENT_27));
        assert!(has_sym(&d.comch, "doca_comch_server_get_device_rep"));
    }
    let d = Comch::load(ComchApi::V27);
    assert!(has_sym(&d.comch, CONN_EVENT_27));
    assert!(!has_sym(&d.comch, CONN_EVENT_29));
    assert!(has_sym(&d.comch, "doca_comch_server_get_device_repr"));
    // And it works the same.
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let srv = d.new_server(dev, rep, "old", 8);
    let cli = d.new_client(dev, "old", 8);
    let (sconn, cconn) = d.connect(srv, cli);
    d.send(cli, cconn, b"v27", 0);
    d.pump(&[cli.pe, srv.pe], 1);
    assert!(events().contains(&recv(sconn, b"v27")));
    d.finish(cli);
    d.finish(srv);
    d.close_devs(dev, rep);
}

#[test]
fn build_is_reused_and_named_by_soname() {
    // Under the lock too: a compiler started while another test has sockets open could hold
    // copies of them for a moment (fork before exec) and delay the EOF that test expects.
    let _e = env();
    let a = fake_comch::build(ComchApi::V29);
    assert_eq!(a, fake_comch::build(ComchApi::V29));
    let b = fake_comch::build(ComchApi::V27);
    assert_ne!(a, b);
    for dir in [&a, &b] {
        for lib in [fake_comch::COMMON_LIB, fake_comch::COMCH_LIB] {
            assert!(Path::new(dir).join(lib).is_file(), "{}", dir.display());
        }
    }
}
