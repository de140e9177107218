//! Hand-written declarations of the DOCA Comm Channel C API (DOCA 1.5 to 2.8), resolved at run
//! time from `libdoca_common.so.2` and `libdoca_comm_channel.so.2`.
//!
//! Written from the published function signatures; no NVIDIA header is used. Device lookup
//! functions were renamed between DOCA 2.2 and 2.7, so each is looked up under both names.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt;
use std::marker::{PhantomData, PhantomPinned};

/// A `doca_error_t`. A newtype over the C integer, since the library may return codes that a
/// Rust enum would not know (which would be undefined behaviour).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocaError(pub c_int);

impl DocaError {
    /// `DOCA_SUCCESS`
    pub const SUCCESS: Self = Self(0);
    /// `DOCA_ERROR_AGAIN`: queue empty (receive) or full (send).
    pub const AGAIN: Self = Self(5);
    /// `DOCA_ERROR_INVALID_VALUE`
    pub const INVALID_VALUE: Self = Self(6);
    /// `DOCA_ERROR_CONNECTION_RESET`: the peer failed and must be disconnected.
    pub const CONNECTION_RESET: Self = Self(11);
    /// `DOCA_ERROR_CONNECTION_ABORTED`: connecting failed.
    pub const CONNECTION_ABORTED: Self = Self(12);
    /// `DOCA_ERROR_CONNECTION_INPROGRESS`: connecting, ask again.
    pub const CONNECTION_INPROGRESS: Self = Self(13);
    /// `DOCA_ERROR_NOT_CONNECTED`
    pub const NOT_CONNECTED: Self = Self(14);
    /// `DOCA_ERROR_NOT_FOUND`
    pub const NOT_FOUND: Self = Self(16);

    /// `Ok(())` for success, else the error.
    pub fn ok(self) -> Result<(), DocaError> {
        if self == Self::SUCCESS {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for DocaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DOCA error {}", self.0)
    }
}

macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident),*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque!(
    /// `struct doca_devinfo`
    DevInfo,
    /// `struct doca_devinfo_rep`
    DevInfoRep,
    /// `struct doca_dev`
    Dev,
    /// `struct doca_dev_rep`
    DevRep,
    /// `struct doca_comm_channel_ep_t`
    Ep,
    /// `struct doca_comm_channel_addr_t`
    Addr
);

/// `DOCA_DEV_REP_FILTER_NET` (2 in every version).
pub const REP_FILTER_NET: c_int = 2;

type Err = DocaError;

/// The resolved functions. The libraries stay loaded as long as this lives.
#[allow(missing_docs)]
pub struct Lib {
    pub devinfo_list_create: unsafe extern "C" fn(*mut *mut *mut DevInfo, *mut u32) -> Err,
    pub devinfo_list_destroy: unsafe extern "C" fn(*mut *mut DevInfo) -> Err,
    pub devinfo_is_equal_pci: unsafe extern "C" fn(*const DevInfo, *const c_char, *mut u8) -> Err,
    pub dev_open: unsafe extern "C" fn(*mut DevInfo, *mut *mut Dev) -> Err,
    pub dev_close: unsafe extern "C" fn(*mut Dev) -> Err,
    pub dev_as_devinfo: unsafe extern "C" fn(*const Dev) -> *mut DevInfo,
    pub rep_list_create:
        unsafe extern "C" fn(*mut Dev, c_int, *mut *mut *mut DevInfoRep, *mut u32) -> Err,
    pub rep_list_destroy: unsafe extern "C" fn(*mut *mut DevInfoRep) -> Err,
    pub rep_is_equal_pci: unsafe extern "C" fn(*const DevInfoRep, *const c_char, *mut u8) -> Err,
    pub dev_rep_open: unsafe extern "C" fn(*mut DevInfoRep, *mut *mut DevRep) -> Err,
    pub dev_rep_close: unsafe extern "C" fn(*mut DevRep) -> Err,
    pub error_descr: unsafe extern "C" fn(Err) -> *const c_char,

    pub get_max_message_size: unsafe extern "C" fn(*mut DevInfo, *mut u32) -> Err,
    pub get_max_send_queue_size: unsafe extern "C" fn(*mut DevInfo, *mut u32) -> Err,
    pub get_max_recv_queue_size: unsafe extern "C" fn(*mut DevInfo, *mut u32) -> Err,
    pub ep_create: unsafe extern "C" fn(*mut *mut Ep) -> Err,
    pub ep_set_device: unsafe extern "C" fn(*mut Ep, *mut Dev) -> Err,
    pub ep_set_device_rep: unsafe extern "C" fn(*mut Ep, *mut DevRep) -> Err,
    pub ep_set_max_msg_size: unsafe extern "C" fn(*mut Ep, u16) -> Err,
    pub ep_set_send_queue_size: unsafe extern "C" fn(*mut Ep, u16) -> Err,
    pub ep_set_recv_queue_size: unsafe extern "C" fn(*mut Ep, u16) -> Err,
    pub ep_get_max_msg_size: unsafe extern "C" fn(*mut Ep, *mut u16) -> Err,
    pub ep_listen: unsafe extern "C" fn(*mut Ep, *const c_char) -> Err,
    pub ep_connect: unsafe extern "C" fn(*mut Ep, *const c_char, *mut *mut Addr) -> Err,
    pub peer_addr_update_info: unsafe extern "C" fn(*mut Addr) -> Err,
    pub ep_get_event_channel: unsafe extern "C" fn(*mut Ep, *mut c_int, *mut c_int) -> Err,
    pub ep_arm_send: unsafe extern "C" fn(*mut Ep) -> Err,
    pub ep_arm_recv: unsafe extern "C" fn(*mut Ep) -> Err,
    pub ep_sendto: unsafe extern "C" fn(*mut Ep, *const c_void, usize, c_int, *mut Addr) -> Err,
    pub ep_recvfrom:
        unsafe extern "C" fn(*mut Ep, *mut c_void, *mut usize, c_int, *mut *mut Addr) -> Err,
    pub ep_disconnect: unsafe extern "C" fn(*mut Ep, *mut Addr) -> Err,
    pub ep_destroy: unsafe extern "C" fn(*mut Ep) -> Err,
    pub peer_get_user_data: unsafe extern "C" fn(*mut Addr, *mut u64) -> Err,
    pub peer_set_user_data: unsafe extern "C" fn(*mut Addr, u64) -> Err,

    /// Which naming generation the library uses: "2.2" or "2.7".
    pub generation: &'static str,
    _common: Library,
    _cc: Library,
}

/// The library file names, by SONAME.
pub const COMMON_LIB: &str = "libdoca_common.so.2";
/// See [`COMMON_LIB`].
pub const CC_LIB: &str = "libdoca_comm_channel.so.2";

fn open(name: &str) -> Result<Library, String> {
    // SAFETY: loading a DOCA library runs its initialisers; that is what linking would do too.
    let first = unsafe { Library::new(name) };
    first.or_else(|e| {
        let fallback = format!(
            "/opt/mellanox/doca/lib/{}-linux-gnu/{name}",
            std::env::consts::ARCH
        );
        // SAFETY: as above.
        unsafe { Library::new(&fallback) }
            .map_err(|_| format!("cannot load {name} (DOCA 1.5-2.8 Comm Channel): {e}"))
    })
}

/// Copies one function pointer out of `lib`, trying each name in turn.
fn sym<T: Copy>(lib: &Library, lib_name: &str, names: &[&str]) -> Result<T, String> {
    for name in names {
        let cname = format!("{name}\0");
        // SAFETY: `T` is the hand-written signature of this DOCA function; the pointer is used
        // only while `Lib` keeps the library loaded.
        if let Ok(s) = unsafe { lib.get::<T>(cname.as_bytes()) } {
            return Ok(*s);
        }
    }
    Err(format!("{lib_name} has no symbol {}", names.join(" or ")))
}

impl Lib {
    /// Loads both libraries and resolves every function the relay uses.
    pub fn load() -> Result<Lib, String> {
        let common = open(COMMON_LIB)?;
        let cc = open(CC_LIB)?;
        macro_rules! get {
            ($lib:ident, $($name:literal),+) => {
                sym(&$lib, if std::ptr::eq(&$lib, &common) { COMMON_LIB } else { CC_LIB }, &[$($name),+])?
            };
        }
        let generation =
            if sym::<unsafe extern "C" fn()>(&common, COMMON_LIB, &["doca_devinfo_create_list"])
                .is_ok()
            {
                "2.7"
            } else {
                "2.2"
            };
        Ok(Lib {
            devinfo_list_create: get!(
                common,
                "doca_devinfo_create_list",
                "doca_devinfo_list_create"
            ),
            devinfo_list_destroy: get!(
                common,
                "doca_devinfo_destroy_list",
                "doca_devinfo_list_destroy"
            ),
            devinfo_is_equal_pci: get!(
                common,
                "doca_devinfo_is_equal_pci_addr",
                "doca_devinfo_get_is_pci_addr_equal"
            ),
            dev_open: get!(common, "doca_dev_open"),
            dev_close: get!(common, "doca_dev_close"),
            dev_as_devinfo: get!(common, "doca_dev_as_devinfo"),
            rep_list_create: get!(
                common,
                "doca_devinfo_rep_create_list",
                "doca_devinfo_rep_list_create"
            ),
            rep_list_destroy: get!(
                common,
                "doca_devinfo_rep_destroy_list",
                "doca_devinfo_rep_list_destroy"
            ),
            rep_is_equal_pci: get!(
                common,
                "doca_devinfo_rep_is_equal_pci_addr",
                "doca_devinfo_rep_get_is_pci_addr_equal"
            ),
            dev_rep_open: get!(common, "doca_dev_rep_open"),
            dev_rep_close: get!(common, "doca_dev_rep_close"),
            error_descr: get!(common, "doca_error_get_descr", "doca_get_error_string"),
            get_max_message_size: get!(cc, "doca_comm_channel_get_max_message_size"),
            get_max_send_queue_size: get!(cc, "doca_comm_channel_get_max_send_queue_size"),
            get_max_recv_queue_size: get!(cc, "doca_comm_channel_get_max_recv_queue_size"),
            ep_create: get!(cc, "doca_comm_channel_ep_create"),
            ep_set_device: get!(cc, "doca_comm_channel_ep_set_device"),
            ep_set_device_rep: get!(cc, "doca_comm_channel_ep_set_device_rep"),
            ep_set_max_msg_size: get!(cc, "doca_comm_channel_ep_set_max_msg_size"),
            ep_set_send_queue_size: get!(cc, "doca_comm_channel_ep_set_send_queue_size"),
            ep_set_recv_queue_size: get!(cc, "doca_comm_channel_ep_set_recv_queue_size"),
            ep_get_max_msg_size: get!(cc, "doca_comm_channel_ep_get_max_msg_size"),
            ep_listen: get!(cc, "doca_comm_channel_ep_listen"),
            ep_connect: get!(cc, "doca_comm_channel_ep_connect"),
            peer_addr_update_info: get!(cc, "doca_comm_channel_peer_addr_update_info"),
            ep_get_event_channel: get!(cc, "doca_comm_channel_ep_get_event_channel"),
            ep_arm_send: get!(cc, "doca_comm_channel_ep_event_handle_arm_send"),
            ep_arm_recv: get!(cc, "doca_comm_channel_ep_event_handle_arm_recv"),
            ep_sendto: get!(cc, "doca_comm_channel_ep_sendto"),
            ep_recvfrom: get!(cc, "doca_comm_channel_ep_recvfrom"),
            ep_disconnect: get!(cc, "doca_comm_channel_ep_disconnect"),
            ep_destroy: get!(cc, "doca_comm_channel_ep_destroy"),
            peer_get_user_data: get!(cc, "doca_comm_channel_peer_addr_get_user_data"),
            peer_set_user_data: get!(cc, "doca_comm_channel_peer_addr_set_user_data"),
            generation,
            _common: common,
            _cc: cc,
        })
    }

    /// The library's description of `e`, with its number.
    pub fn describe(&self, e: DocaError) -> String {
        // SAFETY: the function takes any code and returns a static string or NULL.
        let p = unsafe { (self.error_descr)(e) };
        if p.is_null() {
            return format!("DOCA error {}", e.0);
        }
        // SAFETY: non-NULL results are NUL-terminated static strings.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        format!("{s} (DOCA error {})", e.0)
    }
}
