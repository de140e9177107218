//! Tests of the fake DOCA libraries themselves (`tests/fake_doca/`): they are loaded by full
//! path with `libloading` and driven through hand-written C signatures, the way the relay uses
//! the real ones.
//!
//! The fake reads its configuration from `FAKE_DOCA_*` environment variables, which are
//! process-wide, so every test holds [`LOCK`] while it sets them and uses the libraries. Each
//! test loads its own copy of the libraries and unloads them at the end, so that the 2.2 and 2.7
//! flavours (which share SONAMEs) are never loaded at the same time.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

#[path = "support/fake_doca.rs"]
mod fake_doca;

use fake_doca::Api;
use libloading::Library;
use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

// doca_error_t values.
const SUCCESS: c_int = 0;
const NOT_PERMITTED: c_int = 2;
const AGAIN: c_int = 5;
const INVALID_VALUE: c_int = 6;
const INITIALIZATION: c_int = 8;
const CONNECTION_RESET: c_int = 11;
const CONNECTION_ABORTED: c_int = 12;
const CONNECTION_INPROGRESS: c_int = 13;
const NOT_CONNECTED: c_int = 14;
const BAD_STATE: c_int = 18;

/// `DOCA_DEV_REP_FILTER_NET`.
const REP_FILTER_NET: c_int = 2;

type P = *mut c_void;

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const ENV_VARS: [&str; 6] = [
    "FAKE_DOCA_DIR",
    "FAKE_DOCA_PCI",
    "FAKE_DOCA_REP_PCI",
    "FAKE_DOCA_MAX_MSG",
    "FAKE_DOCA_SNDBUF",
    "FAKE_DOCA_CONNECT_POLLS",
];

/// Clears every FAKE_DOCA_* variable; only call while holding [`LOCK`].
fn clear_env() {
    for v in ENV_VARS {
        std::env::remove_var(v);
    }
}

// ---- poll(2), declared by hand ----

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 1;

extern "C" {
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
}

/// Whether `fd` is readable right now.
fn readable(fd: c_int) -> bool {
    poll_in(fd, 0)
}

/// Whether `fd` becomes readable within 5 s. For readiness that follows a close: while another
/// test thread forks (cbuild's gcc, `uname`), the child holds a copy of the closed socket until
/// its exec, so the hang-up reaches the peer only then.
fn becomes_readable(fd: c_int) -> bool {
    poll_in(fd, 5000)
}

fn poll_in(fd: c_int, timeout_ms: c_int) -> bool {
    let mut p = PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { poll(&mut p, 1, timeout_ms) };
    assert!(n >= 0, "poll failed on fd {fd}");
    n > 0 && p.revents & POLLIN != 0
}

// ---- the libraries ----

type ListCreate = unsafe extern "C" fn(*mut *mut P, *mut u32) -> c_int;
type ListDestroy = unsafe extern "C" fn(*mut P) -> c_int;
type IsEqual = unsafe extern "C" fn(*const c_void, *const c_char, *mut u8) -> c_int;
type RepListCreate = unsafe extern "C" fn(P, c_int, *mut *mut P, *mut u32) -> c_int;
type Open = unsafe extern "C" fn(P, *mut P) -> c_int;
type Close = unsafe extern "C" fn(P) -> c_int;
type AsDevinfo = unsafe extern "C" fn(*const c_void) -> P;
type ErrStr = unsafe extern "C" fn(c_int) -> *const c_char;
type Cap = unsafe extern "C" fn(P, *mut u32) -> c_int;
type EpCreate = unsafe extern "C" fn(*mut P) -> c_int;
type EpFn = unsafe extern "C" fn(P) -> c_int;
type EpSetPtr = unsafe extern "C" fn(P, P) -> c_int;
type EpSetU16 = unsafe extern "C" fn(P, u16) -> c_int;
type EpGetU16 = unsafe extern "C" fn(P, *mut u16) -> c_int;
type Listen = unsafe extern "C" fn(P, *const c_char) -> c_int;
type Connect = unsafe extern "C" fn(P, *const c_char, *mut P) -> c_int;
type EventChannel = unsafe extern "C" fn(P, *mut c_int, *mut c_int) -> c_int;
type SendTo = unsafe extern "C" fn(P, *const c_void, usize, c_int, P) -> c_int;
type RecvFrom = unsafe extern "C" fn(P, *mut c_void, *mut usize, c_int, *mut P) -> c_int;
type GetUserData = unsafe extern "C" fn(P, *mut u64) -> c_int;
type SetUserData = unsafe extern "C" fn(P, u64) -> c_int;

/// Both fake libraries of one flavour, loaded by full path, with every function resolved.
struct Doca {
    list_create: ListCreate,
    list_destroy: ListDestroy,
    is_equal: IsEqual,
    rep_list_create: RepListCreate,
    rep_list_destroy: ListDestroy,
    rep_is_equal: IsEqual,
    dev_open: Open,
    dev_close: Close,
    dev_rep_open: Open,
    dev_rep_close: Close,
    dev_as_devinfo: AsDevinfo,
    err_descr: ErrStr,
    err_name: ErrStr,
    max_msg: Cap,
    max_sq: Cap,
    max_rq: Cap,
    ep_create: EpCreate,
    ep_destroy: EpFn,
    set_device: EpSetPtr,
    set_device_rep: EpSetPtr,
    set_max_msg: EpSetU16,
    set_sq: EpSetU16,
    set_rq: EpSetU16,
    get_max_msg: EpGetU16,
    get_sq: EpGetU16,
    get_rq: EpGetU16,
    listen: Listen,
    connect: Connect,
    update_info: EpFn,
    event_channel: EventChannel,
    arm_send: EpFn,
    arm_recv: EpFn,
    sendto: SendTo,
    recvfrom: RecvFrom,
    disconnect: EpSetPtr,
    get_user_data: GetUserData,
    set_user_data: SetUserData,
    // Dropped last (fields drop in order): the function pointers above die with them.
    _cc: Library,
    _common: Library,
}

fn sym<T: Copy>(lib: &Library, name: &str) -> T {
    let cname = format!("{name}\0");
    // SAFETY: `T` is the hand-written C signature of `name`; it is used only while the
    // library stays loaded (both live in the same `Doca`).
    let s = unsafe { lib.get::<T>(cname.as_bytes()) };
    *s.unwrap_or_else(|e| panic!("symbol {name}: {e}"))
}

fn has_sym(lib: &Library, name: &str) -> bool {
    let cname = format!("{name}\0");
    // SAFETY: only checks for presence; the pointer is not used.
    unsafe { lib.get::<unsafe extern "C" fn()>(cname.as_bytes()) }.is_ok()
}

/// The device and error function names of each flavour.
fn common_names(api: Api) -> [&'static str; 8] {
    match api {
        Api::V22 => [
            "doca_devinfo_list_create",
            "doca_devinfo_list_destroy",
            "doca_devinfo_get_is_pci_addr_equal",
            "doca_devinfo_rep_list_create",
            "doca_devinfo_rep_list_destroy",
            "doca_devinfo_rep_get_is_pci_addr_equal",
            "doca_get_error_string",
            "doca_get_error_name",
        ],
        Api::V27 => [
            "doca_devinfo_create_list",
            "doca_devinfo_destroy_list",
            "doca_devinfo_is_equal_pci_addr",
            "doca_devinfo_rep_create_list",
            "doca_devinfo_rep_destroy_list",
            "doca_devinfo_rep_is_equal_pci_addr",
            "doca_error_get_descr",
            "doca_error_get_name",
        ],
    }
}

impl Doca {
    fn load(api: Api) -> Doca {
        let dir = fake_doca::build(api);
        // SAFETY: our own fake libraries; their initialisers do nothing. The common library is
        // loaded first so that the Comm Channel library's NEEDED entry resolves to it.
        let common = unsafe { Library::new(dir.join(fake_doca::COMMON_LIB)) }
            .unwrap_or_else(|e| panic!("loading {}: {e}", fake_doca::COMMON_LIB));
        // SAFETY: as above.
        let cc = unsafe { Library::new(dir.join(fake_doca::CC_LIB)) }
            .unwrap_or_else(|e| panic!("loading {}: {e}", fake_doca::CC_LIB));
        let n = common_names(api);
        let other = common_names(match api {
            Api::V22 => Api::V27,
            Api::V27 => Api::V22,
        });
        for name in other {
            assert!(!has_sym(&common, name), "{api:?} must not export {name}");
        }
        Doca {
            list_create: sym(&common, n[0]),
            list_destroy: sym(&common, n[1]),
            is_equal: sym(&common, n[2]),
            rep_list_create: sym(&common, n[3]),
            rep_list_destroy: sym(&common, n[4]),
            rep_is_equal: sym(&common, n[5]),
            err_descr: sym(&common, n[6]),
            err_name: sym(&common, n[7]),
            dev_open: sym(&common, "doca_dev_open"),
            dev_close: sym(&common, "doca_dev_close"),
            dev_rep_open: sym(&common, "doca_dev_rep_open"),
            dev_rep_close: sym(&common, "doca_dev_rep_close"),
            dev_as_devinfo: sym(&common, "doca_dev_as_devinfo"),
            max_msg: sym(&cc, "doca_comm_channel_get_max_message_size"),
            max_sq: sym(&cc, "doca_comm_channel_get_max_send_queue_size"),
            max_rq: sym(&cc, "doca_comm_channel_get_max_recv_queue_size"),
            ep_create: sym(&cc, "doca_comm_channel_ep_create"),
            ep_destroy: sym(&cc, "doca_comm_channel_ep_destroy"),
            set_device: sym(&cc, "doca_comm_channel_ep_set_device"),
            set_device_rep: sym(&cc, "doca_comm_channel_ep_set_device_rep"),
            set_max_msg: sym(&cc, "doca_comm_channel_ep_set_max_msg_size"),
            set_sq: sym(&cc, "doca_comm_channel_ep_set_send_queue_size"),
            set_rq: sym(&cc, "doca_comm_channel_ep_set_recv_queue_size"),
            get_max_msg: sym(&cc, "doca_comm_channel_ep_get_max_msg_size"),
            get_sq: sym(&cc, "doca_comm_channel_ep_get_send_queue_size"),
            get_rq: sym(&cc, "doca_comm_channel_ep_get_recv_queue_size"),
            listen: sym(&cc, "doca_comm_channel_ep_listen"),
            connect: sym(&cc, "doca_comm_channel_ep_connect"),
            update_info: sym(&cc, "doca_comm_channel_peer_addr_update_info"),
            event_channel: sym(&cc, "doca_comm_channel_ep_get_event_channel"),
            arm_send: sym(&cc, "doca_comm_channel_ep_event_handle_arm_send"),
            arm_recv: sym(&cc, "doca_comm_channel_ep_event_handle_arm_recv"),
            sendto: sym(&cc, "doca_comm_channel_ep_sendto"),
            recvfrom: sym(&cc, "doca_comm_channel_ep_recvfrom"),
            disconnect: sym(&cc, "doca_comm_channel_ep_disconnect"),
            get_user_data: sym(&cc, "doca_comm_channel_peer_addr_get_user_data"),
            set_user_data: sym(&cc, "doca_comm_channel_peer_addr_set_user_data"),
            _cc: cc,
            _common: common,
        }
    }

    fn descr(&self, e: c_int) -> String {
        // SAFETY: returns a static NUL-terminated string.
        unsafe { CStr::from_ptr((self.err_descr)(e)) }
            .to_string_lossy()
            .into_owned()
    }

    fn name(&self, e: c_int) -> String {
        // SAFETY: returns a static NUL-terminated string.
        unsafe { CStr::from_ptr((self.err_name)(e)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Lists the devices (or representors of `dev`) and returns the index matching `pci`.
    fn find(&self, rep_of: Option<P>, pci: &str) -> (u32, Option<u32>) {
        let want = CString::new(pci).unwrap();
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: valid out-pointers; the list holds `n` entries until destroyed.
        unsafe {
            let r = match rep_of {
                None => (self.list_create)(&mut list, &mut n),
                Some(dev) => (self.rep_list_create)(dev, REP_FILTER_NET, &mut list, &mut n),
            };
            assert_eq!(r, SUCCESS, "list create");
            let eq_fn = if rep_of.is_some() {
                self.rep_is_equal
            } else {
                self.is_equal
            };
            let mut found = None;
            for i in 0..n {
                let mut eq = 7u8;
                assert_eq!(
                    eq_fn(*list.add(i as usize), want.as_ptr(), &mut eq),
                    SUCCESS
                );
                assert!(eq <= 1);
                if eq == 1 && found.is_none() {
                    found = Some(i);
                }
            }
            let destroy = if rep_of.is_some() {
                self.rep_list_destroy
            } else {
                self.list_destroy
            };
            assert_eq!(destroy(list), SUCCESS);
            (n, found)
        }
    }

    /// Opens the device (or representor of `dev`) with PCI address `pci`.
    fn open(&self, rep_of: Option<P>, pci: &str) -> P {
        let want = CString::new(pci).unwrap();
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: as in `find`; the opened object outlives the list.
        unsafe {
            let r = match rep_of {
                None => (self.list_create)(&mut list, &mut n),
                Some(dev) => (self.rep_list_create)(dev, REP_FILTER_NET, &mut list, &mut n),
            };
            assert_eq!(r, SUCCESS);
            let mut out = ptr::null_mut();
            for i in 0..n as usize {
                let mut eq = 0u8;
                let info = *list.add(i);
                let r = match rep_of {
                    None => (self.is_equal)(info, want.as_ptr(), &mut eq),
                    Some(_) => (self.rep_is_equal)(info, want.as_ptr(), &mut eq),
                };
                if r == SUCCESS && eq == 1 {
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
            assert!(!out.is_null(), "no device at {pci}");
            out
        }
    }

    fn ep(&self) -> P {
        let mut ep = ptr::null_mut();
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { (self.ep_create)(&mut ep) }, SUCCESS);
        assert!(!ep.is_null());
        ep
    }

    /// A listening endpoint with device and representor set.
    fn service(&self, dev: P, rep: P, name: &str) -> P {
        let ep = self.ep();
        let name = CString::new(name).unwrap();
        // SAFETY: fresh endpoint, open device and representor.
        unsafe {
            assert_eq!((self.set_device)(ep, dev), SUCCESS);
            assert_eq!((self.set_device_rep)(ep, rep), SUCCESS);
            assert_eq!((self.listen)(ep, name.as_ptr()), SUCCESS);
        }
        ep
    }

    /// `ep_connect` on a fresh endpoint; returns the endpoint, the result and the peer.
    fn try_client(&self, dev: P, name: &str) -> (P, c_int, P) {
        let ep = self.ep();
        let name = CString::new(name).unwrap();
        let mut peer = ptr::null_mut();
        // SAFETY: fresh endpoint, open device, valid out-pointer.
        let r = unsafe {
            assert_eq!((self.set_device)(ep, dev), SUCCESS);
            (self.connect)(ep, name.as_ptr(), &mut peer)
        };
        (ep, r, peer)
    }

    /// Polls `update_info` until it stops saying INPROGRESS; returns (INPROGRESS count, result).
    fn wait_connected(&self, peer: P) -> (u32, c_int) {
        for n in 0..1000 {
            // SAFETY: peer from ep_connect.
            let r = unsafe { (self.update_info)(peer) };
            if r != CONNECTION_INPROGRESS {
                return (n, r);
            }
        }
        panic!("connection never completed");
    }

    /// A connected client endpoint and its peer.
    fn client(&self, dev: P, name: &str) -> (P, P) {
        let (ep, r, peer) = self.try_client(dev, name);
        assert_eq!(r, SUCCESS);
        assert_eq!(self.wait_connected(peer).1, SUCCESS);
        (ep, peer)
    }

    fn send(&self, ep: P, peer: P, msg: &[u8]) -> c_int {
        // SAFETY: valid endpoint; buffer of msg.len() bytes.
        unsafe { (self.sendto)(ep, msg.as_ptr().cast(), msg.len(), 0, peer) }
    }

    /// recvfrom into a buffer of `cap` bytes: (result, length out, bytes, peer).
    fn recv(&self, ep: P, cap: usize) -> (c_int, usize, Vec<u8>, P) {
        let mut buf = vec![0u8; cap];
        let mut len = cap;
        let mut peer = ptr::null_mut();
        // SAFETY: valid endpoint; buffer of `len` bytes; out-pointers.
        let r = unsafe { (self.recvfrom)(ep, buf.as_mut_ptr().cast(), &mut len, 0, &mut peer) };
        buf.truncate(len.min(cap));
        (r, len, buf, peer)
    }

    fn channels(&self, ep: P) -> Result<(c_int, c_int), c_int> {
        let (mut s, mut r) = (-1, -1);
        // SAFETY: valid endpoint and out-pointers.
        match unsafe { (self.event_channel)(ep, &mut s, &mut r) } {
            SUCCESS => Ok((s, r)),
            e => Err(e),
        }
    }

    fn user_data(&self, peer: P) -> u64 {
        let mut v = u64::MAX;
        // SAFETY: peer from this endpoint.
        assert_eq!(unsafe { (self.get_user_data)(peer, &mut v) }, SUCCESS);
        v
    }

    fn get16(&self, f: EpGetU16, ep: P) -> u16 {
        let mut v = 0;
        // SAFETY: valid endpoint and out-pointer.
        assert_eq!(unsafe { f(ep, &mut v) }, SUCCESS);
        v
    }

    fn call(&self, f: EpFn, p: P) -> c_int {
        // SAFETY: `p` is a valid endpoint or peer for `f`.
        unsafe { f(p) }
    }

    fn destroy(&self, ep: P) {
        assert_eq!(self.call(self.ep_destroy, ep), SUCCESS);
    }
}

/// A fresh rendezvous directory in FAKE_DOCA_DIR; only call while holding [`LOCK`].
fn fresh_env() -> tempfile::TempDir {
    clear_env();
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("FAKE_DOCA_DIR", dir.path());
    dir
}

fn devices_and_errors(api: Api) {
    let _g = lock();
    let _dir = fresh_env();
    std::env::set_var("FAKE_DOCA_PCI", "0000:03:00.0, 0000:0A:00.1,junk");
    std::env::set_var("FAKE_DOCA_REP_PCI", "b1:00.0,B1:00.2");
    std::env::set_var("FAKE_DOCA_MAX_MSG", "2000");
    let d = Doca::load(api);

    // Both address forms, either case; malformed list entries are skipped.
    assert_eq!(d.find(None, "03:00.0"), (2, Some(0)));
    assert_eq!(d.find(None, "0000:03:00.0"), (2, Some(0)));
    assert_eq!(d.find(None, "0a:00.1"), (2, Some(1)));
    assert_eq!(d.find(None, "0000:0A:00.1"), (2, Some(1)));
    assert_eq!(d.find(None, "03:00.1"), (2, None));
    assert_eq!(d.find(None, "0001:03:00.0"), (2, None));
    // Unknown address: not found.
    assert_eq!(d.find(None, "05:00.0"), (2, None));

    let dev = d.open(None, "0a:00.1");
    // SAFETY: all pointers below are valid or deliberately null.
    unsafe {
        let info = (d.dev_as_devinfo)(dev);
        assert!(!info.is_null());
        let mut eq = 0u8;
        let bad = CString::new("not-a-pci").unwrap();
        assert_eq!((d.is_equal)(info, bad.as_ptr(), &mut eq), INVALID_VALUE);
        let good = CString::new("0000:0a:00.1").unwrap();
        assert_eq!((d.is_equal)(info, good.as_ptr(), &mut eq), SUCCESS);
        assert_eq!(eq, 1);
        let mut v = 0u32;
        assert_eq!((d.max_msg)(info, &mut v), SUCCESS);
        assert_eq!(v, 2000);
        assert_eq!((d.max_sq)(info, &mut v), SUCCESS);
        assert_eq!(v, 8192);
        assert_eq!((d.max_rq)(info, &mut v), SUCCESS);
        assert_eq!(v, 8192);
        assert_eq!((d.max_msg)(ptr::null_mut(), &mut v), INVALID_VALUE);

        // Representors need a device.
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        assert_eq!(
            (d.rep_list_create)(ptr::null_mut(), REP_FILTER_NET, &mut list, &mut n),
            INVALID_VALUE
        );
    }
    assert_eq!(d.find(Some(dev), "b1:00.2"), (2, Some(1)));
    assert_eq!(d.find(Some(dev), "0000:B1:00.0"), (2, Some(0)));
    assert_eq!(d.find(Some(dev), "b1:00.1"), (2, None));
    let rep = d.open(Some(dev), "0000:b1:00.2");

    // Message size limits follow the device.
    let ep = d.ep();
    // SAFETY: valid endpoint and device.
    unsafe {
        assert_eq!((d.set_device)(ep, dev), SUCCESS);
        assert_eq!((d.set_max_msg)(ep, 2001), INVALID_VALUE);
        assert_eq!((d.set_max_msg)(ep, 10), SUCCESS);
    }
    assert_eq!(d.get16(d.get_max_msg, ep), 64, "raised to the minimum");
    // SAFETY: as above.
    unsafe { assert_eq!((d.set_max_msg)(ep, 0), SUCCESS) };
    assert_eq!(
        d.get16(d.get_max_msg, ep),
        2000,
        "default: the device maximum"
    );
    d.destroy(ep);

    // SAFETY: opened above, closed once.
    unsafe {
        assert_eq!((d.dev_rep_close)(rep), SUCCESS);
        assert_eq!((d.dev_close)(dev), SUCCESS);
    }

    // An empty list.
    std::env::set_var("FAKE_DOCA_PCI", "");
    assert_eq!(d.find(None, "03:00.0"), (0, None));
    // Defaults.
    std::env::remove_var("FAKE_DOCA_PCI");
    std::env::remove_var("FAKE_DOCA_REP_PCI");
    assert_eq!(d.find(None, "03:00.0"), (1, Some(0)));
    let dev = d.open(None, "03:00.0");
    assert_eq!(d.find(Some(dev), "b1:00.0"), (1, Some(0)));
    // SAFETY: opened above.
    unsafe { assert_eq!((d.dev_close)(dev), SUCCESS) };

    // Error strings.
    assert_eq!(d.descr(SUCCESS), "Success");
    assert!(d.descr(AGAIN).contains("try again"), "{}", d.descr(AGAIN));
    assert_eq!(d.descr(CONNECTION_RESET), "Connection reset by peer");
    assert_eq!(d.descr(NOT_CONNECTED), "Not Connected");
    assert_eq!(d.descr(999), "unrecognized error code");
    assert_eq!(d.descr(-1), "unrecognized error code");
    assert_eq!(d.name(16), "DOCA_ERROR_NOT_FOUND");
    assert_eq!(d.name(AGAIN), "DOCA_ERROR_AGAIN");
    assert_eq!(d.name(12345), "unrecognized error code");
    match api {
        Api::V22 => assert_eq!(d.descr(27), "unrecognized error code"),
        Api::V27 => assert_eq!(d.name(27), "DOCA_ERROR_TOO_BIG"),
    }
}

#[test]
fn devices_and_errors_v22() {
    devices_and_errors(Api::V22);
}

#[test]
fn devices_and_errors_v27() {
    devices_and_errors(Api::V27);
}

fn channel(api: Api) {
    let _g = lock();
    let dir = fresh_env();
    let d = Doca::load(api);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let svc_name = CString::new("svc").unwrap();

    // --- service endpoint before and at listen ---
    let svc = d.ep();
    assert_eq!(d.channels(svc), Err(BAD_STATE));
    assert_eq!(d.call(d.arm_recv, svc), BAD_STATE);
    assert_eq!(d.call(d.arm_send, svc), BAD_STATE);
    assert_eq!(d.recv(svc, 16).0, NOT_CONNECTED, "recvfrom before listen");
    // SAFETY: valid endpoint, device, representor and name throughout.
    unsafe {
        assert_eq!((d.listen)(svc, svc_name.as_ptr()), BAD_STATE, "no device");
        assert_eq!((d.set_device)(svc, dev), SUCCESS);
        assert_eq!(
            (d.listen)(svc, svc_name.as_ptr()),
            BAD_STATE,
            "no representor"
        );
        assert_eq!((d.set_device_rep)(svc, rep), SUCCESS);
        assert_eq!((d.set_max_msg)(svc, 4080), SUCCESS);
        assert_eq!((d.set_max_msg)(svc, 4081), INVALID_VALUE);
        assert_eq!((d.set_sq)(svc, 10), SUCCESS);
        assert_eq!((d.set_rq)(svc, 100), SUCCESS);
        assert_eq!((d.set_sq)(svc, 9000), INVALID_VALUE);
    }
    assert_eq!(d.get16(d.get_sq, svc), 16, "rounded up to a power of two");
    assert_eq!(d.get16(d.get_rq, svc), 128);
    // A stale file where the socket goes is replaced.
    std::fs::write(dir.path().join("svc"), b"stale").unwrap();
    // SAFETY: as above.
    unsafe {
        assert_eq!((d.listen)(svc, svc_name.as_ptr()), SUCCESS);
        assert_eq!((d.listen)(svc, svc_name.as_ptr()), NOT_PERMITTED);
        // Setters are refused once active.
        assert_eq!((d.set_device)(svc, dev), BAD_STATE);
        assert_eq!((d.set_device_rep)(svc, rep), BAD_STATE);
        assert_eq!((d.set_max_msg)(svc, 1024), BAD_STATE);
        assert_eq!((d.set_sq)(svc, 16), BAD_STATE);
        assert_eq!((d.set_rq)(svc, 16), BAD_STATE);
    }
    {
        use std::os::unix::fs::FileTypeExt;
        let ft = std::fs::metadata(dir.path().join("svc"))
            .unwrap()
            .file_type();
        assert!(ft.is_socket(), "the service binds $FAKE_DOCA_DIR/<name>");
    }
    assert_eq!(d.get16(d.get_max_msg, svc), 4080);
    let (s_send, s_recv) = d.channels(svc).expect("event channels after listen");
    assert!(s_send >= 0 && s_recv >= 0 && s_send != s_recv);

    // Nothing yet: AGAIN, and the event fd stays quiet armed or not.
    assert_eq!(d.recv(svc, 4080).0, AGAIN);
    assert!(!readable(s_recv));
    assert_eq!(d.call(d.arm_recv, svc), SUCCESS);
    assert!(!readable(s_recv), "armed, nothing pending");

    // --- client ---
    let cli = d.ep();
    let mut peer = ptr::null_mut();
    // SAFETY: valid endpoint and name.
    unsafe {
        assert_eq!(
            (d.connect)(cli, svc_name.as_ptr(), &mut peer),
            BAD_STATE,
            "no device"
        );
        assert_eq!((d.set_device)(cli, dev), SUCCESS);
        assert_eq!((d.connect)(cli, svc_name.as_ptr(), &mut peer), SUCCESS);
        let mut again = ptr::null_mut();
        assert_eq!(
            (d.connect)(cli, svc_name.as_ptr(), &mut again),
            NOT_PERMITTED
        );
    }
    assert!(!peer.is_null());
    assert_eq!(
        d.wait_connected(peer),
        (3, SUCCESS),
        "3 x INPROGRESS by default"
    );
    assert_eq!(d.call(d.update_info, peer), SUCCESS);
    let (c_send, c_recv) = d.channels(cli).unwrap();

    // A new connection wakes the armed service; accepting it alone yields no message.
    assert!(readable(s_recv), "armed + pending connection");
    assert_eq!(d.recv(svc, 4080).0, AGAIN);
    assert!(
        !readable(s_recv),
        "still armed, connection accepted, no message"
    );

    // --- host -> service ---
    assert_eq!(d.send(cli, peer, b"hello"), SUCCESS);
    assert!(readable(s_recv), "armed + message");
    let (r, n, msg, speer) = d.recv(svc, 4080);
    assert_eq!((r, n, msg.as_slice()), (SUCCESS, 5, &b"hello"[..]));
    assert!(!speer.is_null());
    assert_eq!(d.user_data(speer), 0, "a new peer starts with user data 0");
    // SAFETY: peer from recvfrom.
    assert_eq!(unsafe { (d.set_user_data)(speer, 42) }, SUCCESS);
    assert!(!readable(s_recv), "a delivered message disarms");

    // Not armed: a pending message does not make the fd readable.
    assert_eq!(d.send(cli, peer, b"again"), SUCCESS);
    assert!(!readable(s_recv));
    assert_eq!(d.call(d.arm_recv, svc), SUCCESS);
    assert!(readable(s_recv));
    let (r, _, msg, p2) = d.recv(svc, 4080);
    assert_eq!((r, msg.as_slice(), p2), (SUCCESS, &b"again"[..], speer));
    assert_eq!(d.user_data(speer), 42);
    assert_eq!(d.recv(svc, 4080).0, AGAIN);

    // --- service -> host ---
    assert_eq!(d.recv(cli, 4080).0, AGAIN, "client: nothing waiting");
    assert_eq!(d.call(d.arm_recv, cli), SUCCESS);
    assert!(!readable(c_recv));
    assert_eq!(d.recv(cli, 4080).0, AGAIN, "AGAIN keeps the arming");
    assert_eq!(d.send(svc, speer, b"reply"), SUCCESS);
    assert!(readable(c_recv));
    let (r, _, msg, from) = d.recv(cli, 4080);
    assert_eq!((r, msg.as_slice(), from), (SUCCESS, &b"reply"[..], peer));
    assert!(!readable(c_recv));

    // --- sizes ---
    let big: Vec<u8> = (0..4081u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(d.send(cli, peer, &big), INVALID_VALUE, "over max msg size");
    assert_eq!(d.send(cli, peer, &big[..4080]), SUCCESS);
    let (r, n, _, from) = d.recv(svc, 100);
    assert_eq!(
        (r, n, from),
        (INVALID_VALUE, 4080, speer),
        "buffer too small"
    );
    let (r, n, msg, _) = d.recv(svc, 4080);
    assert_eq!((r, n), (SUCCESS, 4080), "the message was kept");
    assert_eq!(msg, &big[..4080]);
    assert_eq!(d.send(cli, peer, b""), SUCCESS, "empty message");
    let (r, n, _, from) = d.recv(svc, 4080);
    assert_eq!((r, n, from), (SUCCESS, 0, speer));
    // A null peer is not connected.
    assert_eq!(d.send(cli, ptr::null_mut(), b"x"), NOT_CONNECTED);

    // --- send event fd ---
    assert!(!readable(c_send), "not armed");
    assert_eq!(d.call(d.arm_send, cli), SUCCESS);
    assert!(readable(c_send), "armed with room in the queue");
    assert_eq!(d.send(cli, peer, b"x"), SUCCESS);
    assert!(!readable(c_send), "a successful send disarms");
    assert_eq!(d.recv(svc, 4080).0, SUCCESS);

    // --- a second host is a new peer with user data 0 ---
    let (cli2, peer2) = d.client(dev, "svc");
    assert_eq!(d.send(cli2, peer2, b"two"), SUCCESS);
    let (r, _, msg, speer2) = d.recv(svc, 4080);
    assert_eq!((r, msg.as_slice()), (SUCCESS, &b"two"[..]));
    assert!(!speer2.is_null() && speer2 != speer);
    assert_eq!(d.user_data(speer2), 0);
    // SAFETY: peer from recvfrom.
    assert_eq!(unsafe { (d.set_user_data)(speer2, 7) }, SUCCESS);
    // Messages from both arrive with the right peer.
    assert_eq!(d.send(cli, peer, b"from1"), SUCCESS);
    assert_eq!(d.send(cli2, peer2, b"from2"), SUCCESS);
    let mut got = Vec::new();
    for _ in 0..2 {
        let (r, _, msg, from) = d.recv(svc, 4080);
        assert_eq!(r, SUCCESS);
        got.push((d.user_data(from), msg));
    }
    got.sort();
    assert_eq!(got, vec![(7, b"from2".to_vec()), (42, b"from1".to_vec())]);

    // --- the first host goes away: CONNECTION_RESET once, with its peer ---
    assert_eq!(d.call(d.arm_recv, svc), SUCCESS);
    assert!(!readable(s_recv));
    d.destroy(cli);
    assert!(becomes_readable(s_recv), "armed + hang-up");
    let (r, _, _, from) = d.recv(svc, 4080);
    assert_eq!((r, from), (CONNECTION_RESET, speer));
    assert_eq!(d.recv(svc, 4080).0, AGAIN, "reported once");
    assert_eq!(d.send(svc, speer, b"late"), CONNECTION_RESET);
    // SAFETY: endpoint and its peer.
    unsafe {
        assert_eq!((d.disconnect)(svc, speer), SUCCESS);
        assert_eq!((d.disconnect)(svc, speer), NOT_CONNECTED);
    }
    assert_eq!(d.send(svc, speer, b"late"), NOT_CONNECTED);
    // The other host is unaffected.
    assert_eq!(d.send(svc, speer2, b"still"), SUCCESS);
    let (r, _, msg, _) = d.recv(cli2, 4080);
    assert_eq!((r, msg.as_slice()), (SUCCESS, &b"still"[..]));

    // --- the service goes away: the client sees CONNECTION_RESET ---
    d.destroy(svc);
    assert!(
        !dir.path().join("svc").exists(),
        "destroy removes the socket"
    );
    assert_eq!(d.call(d.arm_recv, cli2), SUCCESS);
    let (_, c2_recv) = d.channels(cli2).unwrap();
    assert!(becomes_readable(c2_recv), "armed + service hang-up");
    let (r, _, _, from) = d.recv(cli2, 4080);
    assert_eq!((r, from), (CONNECTION_RESET, peer2));
    assert_eq!(d.recv(cli2, 4080).0, CONNECTION_RESET, "until disconnected");
    assert_eq!(d.send(cli2, peer2, b"x"), CONNECTION_RESET);
    assert_eq!(d.call(d.update_info, peer2), CONNECTION_ABORTED);
    // SAFETY: endpoint and its peer.
    assert_eq!(unsafe { (d.disconnect)(cli2, peer2) }, SUCCESS);
    assert_eq!(d.recv(cli2, 4080).0, NOT_CONNECTED);
    d.destroy(cli2);

    // --- no service: INPROGRESS, then CONNECTION_ABORTED ---
    let (cli3, r, peer3) = d.try_client(dev, "svc");
    assert_eq!(r, SUCCESS);
    assert_eq!(d.wait_connected(peer3), (3, CONNECTION_ABORTED));
    assert_eq!(d.send(cli3, peer3, b"x"), NOT_CONNECTED);
    d.destroy(cli3);
    std::env::set_var("FAKE_DOCA_CONNECT_POLLS", "1");
    let (cli4, r, peer4) = d.try_client(dev, "nobody");
    assert_eq!(r, SUCCESS);
    assert_eq!(d.wait_connected(peer4), (1, CONNECTION_ABORTED));
    d.destroy(cli4);

    // A new service with the same name works again (and with 1 poll now).
    let svc = d.service(dev, rep, "svc");
    let (cli5, peer5) = d.client(dev, "svc");
    assert_eq!(d.send(cli5, peer5, b"back"), SUCCESS);
    let (r, _, msg, from) = d.recv(svc, 4080);
    assert_eq!((r, msg.as_slice()), (SUCCESS, &b"back"[..]));
    assert_eq!(d.user_data(from), 0);
    d.destroy(cli5);
    d.destroy(svc);

    // SAFETY: opened above, closed once.
    unsafe {
        assert_eq!((d.dev_rep_close)(rep), SUCCESS);
        assert_eq!((d.dev_close)(dev), SUCCESS);
    }
}

#[test]
fn channel_v22() {
    channel(Api::V22);
}

#[test]
fn channel_v27() {
    channel(Api::V27);
}

#[test]
fn full_send_queue() {
    let _g = lock();
    let _dir = fresh_env();
    std::env::set_var("FAKE_DOCA_SNDBUF", "4096");
    std::env::set_var("FAKE_DOCA_CONNECT_POLLS", "0");
    let d = Doca::load(Api::V22);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let svc = d.service(dev, rep, "bp");
    let (cli, peer) = d.client(dev, "bp");
    let (c_send, _) = d.channels(cli).unwrap();

    // Fill the queue.
    let msg = |i: u32| -> Vec<u8> {
        let mut m = vec![(i % 256) as u8; 1000];
        m[..4].copy_from_slice(&i.to_le_bytes());
        m
    };
    let mut sent = 0u32;
    loop {
        match d.send(cli, peer, &msg(sent)) {
            SUCCESS => sent += 1,
            AGAIN => break,
            e => panic!("sendto: {e}"),
        }
        assert!(sent < 1000, "the send queue never filled up");
    }
    assert!(sent >= 1, "one message always fits");
    assert_eq!(d.send(cli, peer, &msg(sent)), AGAIN, "still full");

    // The caller's pattern: AGAIN -> arm -> retry (AGAIN) -> wait.
    assert_eq!(d.call(d.arm_send, cli), SUCCESS);
    assert_eq!(d.send(cli, peer, &msg(sent)), AGAIN);
    assert!(!readable(c_send), "armed but full");

    // Drain: everything arrives, in order.
    let mut got = 0u32;
    loop {
        let (r, n, m, _) = d.recv(svc, 4080);
        if r == AGAIN {
            break;
        }
        assert_eq!((r, n), (SUCCESS, 1000));
        assert_eq!(m, msg(got));
        got += 1;
    }
    assert_eq!(got, sent);
    assert!(readable(c_send), "armed + room again");
    assert_eq!(d.send(cli, peer, &msg(sent)), SUCCESS);
    assert!(!readable(c_send), "disarmed by the successful send");
    let (r, _, m, _) = d.recv(svc, 4080);
    assert_eq!((r, m), (SUCCESS, msg(sent)));

    d.destroy(cli);
    d.destroy(svc);
    // SAFETY: opened above, closed once.
    unsafe {
        assert_eq!((d.dev_rep_close)(rep), SUCCESS);
        assert_eq!((d.dev_close)(dev), SUCCESS);
    }
}

#[test]
fn rendezvous_dir_required() {
    let _g = lock();
    clear_env();
    let d = Doca::load(Api::V22);
    let dev = d.open(None, "03:00.0");
    let rep = d.open(Some(dev), "b1:00.0");
    let name = CString::new("svc").unwrap();
    let svc = d.ep();
    // SAFETY: valid endpoint, device, representor and name.
    unsafe {
        assert_eq!((d.set_device)(svc, dev), SUCCESS);
        assert_eq!((d.set_device_rep)(svc, rep), SUCCESS);
        assert_eq!((d.listen)(svc, name.as_ptr()), INITIALIZATION);
    }
    assert_eq!(d.channels(svc), Err(BAD_STATE), "still inactive");
    let (cli, r, _) = d.try_client(dev, "svc");
    assert_eq!(r, INITIALIZATION);
    d.destroy(cli);
    d.destroy(svc);
    // SAFETY: opened above, closed once.
    unsafe {
        assert_eq!((d.dev_rep_close)(rep), SUCCESS);
        assert_eq!((d.dev_close)(dev), SUCCESS);
    }
}

#[test]
fn build_is_reused_and_named_by_soname() {
    let a = fake_doca::build(Api::V22);
    let b = fake_doca::build(Api::V22);
    assert_eq!(a, b);
    let c = fake_doca::build(Api::V27);
    assert_ne!(a, c);
    for dir in [&a, &c] {
        for lib in [fake_doca::COMMON_LIB, fake_doca::CC_LIB] {
            assert!(Path::new(dir).join(lib).is_file(), "{}", dir.display());
        }
    }
}
