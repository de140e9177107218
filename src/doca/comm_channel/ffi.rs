//! Hand-written declarations of the DOCA Comm Channel C API (DOCA 2.2 to 2.8), resolved at run
//! time from `libdoca_comm_channel.so.2` and the `libdoca_common` it links against. Written
//! from the published function signatures; no NVIDIA header is used.

use crate::doca::error::Failure;
use crate::doca::ffi::{get, opaque, open, open_common_of, sym, Dev, DevInfo, DevRep, DocaError};
use libloading::Library;
use std::ffi::{c_char, c_int, c_void};

opaque!(
    /// `struct doca_comm_channel_ep_t`
    Ep,
    /// `struct doca_comm_channel_addr_t`
    Addr
);

type Err = DocaError;

/// The DOCA Comm Channel functions (`libdoca_comm_channel`, DOCA 2.2 to 2.8).
#[allow(missing_docs)]
pub struct CcLib {
    pub dev_as_devinfo: unsafe extern "C" fn(*const Dev) -> *mut DevInfo,
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
    /// Service side: reports `CONNECTION_RESET` once the service is in an unrecoverable state.
    pub update_service_state: Option<unsafe extern "C" fn(*mut Ep) -> Err>,
    /// The file that was loaded.
    pub file: String,
    /// The `libdoca_common` this library links against.
    pub common: String,
    _lib: Library,
    _common: Library,
}

// SAFETY: function pointers and a library handle, never mutated after loading; the endpoint they
// act on is used by one thread only (the Comm Channel thread).
unsafe impl Send for CcLib {}
// SAFETY: as above.
unsafe impl Sync for CcLib {}

/// SONAME of the Comm Channel library (DOCA 2.x; 1.5's was version 1 and is not supported).
pub const CC_LIBS: &[&str] = &["libdoca_comm_channel.so.2"];

impl CcLib {
    /// Loads `libdoca_comm_channel` and resolves every function the relay uses.
    pub fn load() -> Result<CcLib, Failure> {
        let (lib, file) = open(CC_LIBS)?;
        let (common_lib, common) = open_common_of(&file)?;
        Ok(CcLib {
            dev_as_devinfo: get!(common_lib, common, "doca_dev_as_devinfo"),
            get_max_message_size: get!(lib, file, "doca_comm_channel_get_max_message_size"),
            get_max_send_queue_size: get!(lib, file, "doca_comm_channel_get_max_send_queue_size"),
            get_max_recv_queue_size: get!(lib, file, "doca_comm_channel_get_max_recv_queue_size"),
            ep_create: get!(lib, file, "doca_comm_channel_ep_create"),
            ep_set_device: get!(lib, file, "doca_comm_channel_ep_set_device"),
            ep_set_device_rep: get!(lib, file, "doca_comm_channel_ep_set_device_rep"),
            ep_set_max_msg_size: get!(lib, file, "doca_comm_channel_ep_set_max_msg_size"),
            ep_set_send_queue_size: get!(lib, file, "doca_comm_channel_ep_set_send_queue_size"),
            ep_set_recv_queue_size: get!(lib, file, "doca_comm_channel_ep_set_recv_queue_size"),
            ep_get_max_msg_size: get!(lib, file, "doca_comm_channel_ep_get_max_msg_size"),
            ep_listen: get!(lib, file, "doca_comm_channel_ep_listen"),
            ep_connect: get!(lib, file, "doca_comm_channel_ep_connect"),
            peer_addr_update_info: get!(lib, file, "doca_comm_channel_peer_addr_update_info"),
            ep_get_event_channel: get!(lib, file, "doca_comm_channel_ep_get_event_channel"),
            ep_arm_send: get!(lib, file, "doca_comm_channel_ep_event_handle_arm_send"),
            ep_arm_recv: get!(lib, file, "doca_comm_channel_ep_event_handle_arm_recv"),
            ep_sendto: get!(lib, file, "doca_comm_channel_ep_sendto"),
            ep_recvfrom: get!(lib, file, "doca_comm_channel_ep_recvfrom"),
            ep_disconnect: get!(lib, file, "doca_comm_channel_ep_disconnect"),
            ep_destroy: get!(lib, file, "doca_comm_channel_ep_destroy"),
            peer_get_user_data: get!(lib, file, "doca_comm_channel_peer_addr_get_user_data"),
            peer_set_user_data: get!(lib, file, "doca_comm_channel_peer_addr_set_user_data"),
            update_service_state: sym(
                &lib,
                &file,
                &["doca_comm_channel_ep_update_service_state_info"],
            )
            .ok(),
            file,
            common,
            _lib: lib,
            _common: common_lib,
        })
    }
}
