//! Hand-written declarations of the DOCA Comch C API (DOCA 2.7 and later), resolved at run time
//! from `libdoca_comch` and `libdoca_common`. Written from the published signatures.

use crate::doca::error::{Described, Failure, Step};
use crate::doca::ffi::{
    check, get, opaque, open, open_common_of, runtime_version, sym, Descr, Dev, DevInfo, DevRep,
    DocaError,
};
use libloading::Library;
use std::ffi::{c_char, c_int, c_void};

/// `union doca_data`: 8 bytes, passed by value like an integer.
#[repr(C)]
#[derive(Clone, Copy)]
pub union DocaData {
    /// As a pointer.
    pub ptr: *mut c_void,
    /// As an integer.
    pub u64: u64,
}

opaque!(
    /// `struct doca_pe`
    Pe,
    /// `struct doca_ctx`
    Ctx,
    /// `struct doca_task`
    Task,
    /// `struct doca_comch_server`
    Server,
    /// `struct doca_comch_client`
    Client,
    /// `struct doca_comch_connection`
    Conn,
    /// `struct doca_comch_task_send`
    TaskSend,
    /// `struct doca_comch_event_msg_recv`
    EventMsgRecv,
    /// `struct doca_comch_event_connection_status_changed`
    EventConn
);

/// `enum doca_ctx_states` values, kept as plain integers.
pub mod state {
    /// `DOCA_CTX_STATE_IDLE`
    pub const IDLE: i32 = 0;
    /// `DOCA_CTX_STATE_STARTING`
    pub const STARTING: i32 = 1;
    /// `DOCA_CTX_STATE_RUNNING`
    pub const RUNNING: i32 = 2;
}

/// `DOCA_ERROR_NO_MEMORY`: no free send task.
pub const NO_MEMORY: DocaError = DocaError(7);
/// `DOCA_ERROR_IN_PROGRESS`: an asynchronous start or stop.
pub const IN_PROGRESS: DocaError = DocaError(26);

type Err = DocaError;
/// Send task completion and error callback.
pub type SendCb = unsafe extern "C" fn(*mut TaskSend, DocaData, DocaData);
/// Message receive callback.
pub type RecvCb = unsafe extern "C" fn(*mut EventMsgRecv, *mut u8, u32, *mut Conn);
/// Server connection and disconnection callback.
pub type ConnCb = unsafe extern "C" fn(*mut EventConn, *mut Conn, u8);
/// Context state change callback.
pub type StateCb = unsafe extern "C" fn(DocaData, *mut Ctx, c_int, c_int);

/// SONAMEs of the Comch library, newest first.
pub const COMCH_LIBS: &[&str] = &["libdoca_comch.so.3", "libdoca_comch.so.2"];

/// The resolved functions; the libraries stay loaded while this lives.
#[allow(missing_docs)]
pub struct ComchLib {
    pub pe_create: unsafe extern "C" fn(*mut *mut Pe) -> Err,
    pub pe_destroy: unsafe extern "C" fn(*mut Pe) -> Err,
    pub pe_progress: unsafe extern "C" fn(*mut Pe) -> u8,
    pub pe_connect_ctx: unsafe extern "C" fn(*mut Pe, *mut Ctx) -> Err,
    pub ctx_start: unsafe extern "C" fn(*mut Ctx) -> Err,
    pub ctx_stop: unsafe extern "C" fn(*mut Ctx) -> Err,
    pub ctx_get_state: unsafe extern "C" fn(*const Ctx, *mut c_int) -> Err,
    pub ctx_set_state_changed_cb: unsafe extern "C" fn(*mut Ctx, StateCb) -> Err,
    pub task_submit: unsafe extern "C" fn(*mut Task) -> Err,
    pub task_free: unsafe extern "C" fn(*mut Task),
    pub task_get_status: unsafe extern "C" fn(*const Task) -> Err,
    pub error_descr: Descr,

    pub cap_get_max_msg_size: unsafe extern "C" fn(*const DevInfo, *mut u32) -> Err,
    pub cap_get_max_send_tasks: unsafe extern "C" fn(*const DevInfo, *mut u32) -> Err,
    pub dev_as_devinfo: unsafe extern "C" fn(*const Dev) -> *mut DevInfo,
    pub server_create:
        unsafe extern "C" fn(*mut Dev, *mut DevRep, *const c_char, *mut *mut Server) -> Err,
    pub server_destroy: unsafe extern "C" fn(*mut Server) -> Err,
    pub server_as_ctx: unsafe extern "C" fn(*mut Server) -> *mut Ctx,
    pub server_set_max_msg_size: unsafe extern "C" fn(*mut Server, u32) -> Err,
    pub server_get_max_msg_size: unsafe extern "C" fn(*const Server, *mut u32) -> Err,
    pub server_task_send_set_conf: unsafe extern "C" fn(*mut Server, SendCb, SendCb, u32) -> Err,
    pub server_task_send_alloc_init:
        unsafe extern "C" fn(*mut Server, *mut Conn, *const c_void, u32, *mut *mut TaskSend) -> Err,
    pub server_event_msg_recv_register: unsafe extern "C" fn(*mut Server, RecvCb) -> Err,
    pub server_event_connection_register: unsafe extern "C" fn(*mut Server, ConnCb, ConnCb) -> Err,
    pub server_disconnect: unsafe extern "C" fn(*mut Server, *mut Conn) -> Err,
    pub client_create: unsafe extern "C" fn(*mut Dev, *const c_char, *mut *mut Client) -> Err,
    pub client_destroy: unsafe extern "C" fn(*mut Client) -> Err,
    pub client_as_ctx: unsafe extern "C" fn(*mut Client) -> *mut Ctx,
    pub client_set_max_msg_size: unsafe extern "C" fn(*mut Client, u32) -> Err,
    pub client_get_max_msg_size: unsafe extern "C" fn(*const Client, *mut u32) -> Err,
    pub client_task_send_set_conf: unsafe extern "C" fn(*mut Client, SendCb, SendCb, u32) -> Err,
    pub client_task_send_alloc_init:
        unsafe extern "C" fn(*mut Client, *mut Conn, *const c_void, u32, *mut *mut TaskSend) -> Err,
    pub client_event_msg_recv_register: unsafe extern "C" fn(*mut Client, RecvCb) -> Err,
    pub client_get_connection: unsafe extern "C" fn(*const Client, *mut *mut Conn) -> Err,
    pub task_send_as_task: unsafe extern "C" fn(*mut TaskSend) -> *mut Task,

    /// The Comch library file that was loaded.
    pub file: String,
    /// The `libdoca_common` it links against.
    pub common: String,
    /// Which connection-event name the library has: "2.9+" or "2.7/2.8".
    pub generation: &'static str,
    /// The DOCA version the common library reports, if it says.
    pub version: Option<String>,
    _comch: Library,
    _common: Library,
}

// SAFETY: the struct holds plain function pointers and library handles; the DOCA objects they
// act on are used from one thread only (the Comch thread).
unsafe impl Send for ComchLib {}
// SAFETY: as above; nothing in the struct is mutated after loading.
unsafe impl Sync for ComchLib {}

impl ComchLib {
    /// Loads `libdoca_comch` and `libdoca_common` (same DOCA generation) and resolves every
    /// function the relay uses.
    pub fn load() -> Result<ComchLib, Failure> {
        let (comch, file) = open(COMCH_LIBS)?;
        let (common, cfile) = open_common_of(&file)?;
        const NEW_NAME: &str = "doca_comch_server_event_connection_status_changed_register";
        let generation = if sym::<unsafe extern "C" fn()>(&comch, &file, &[NEW_NAME]).is_ok() {
            "2.9+"
        } else {
            "2.7/2.8"
        };
        Ok(ComchLib {
            pe_create: get!(common, cfile, "doca_pe_create"),
            pe_destroy: get!(common, cfile, "doca_pe_destroy"),
            pe_progress: get!(common, cfile, "doca_pe_progress"),
            pe_connect_ctx: get!(common, cfile, "doca_pe_connect_ctx"),
            ctx_start: get!(common, cfile, "doca_ctx_start"),
            ctx_stop: get!(common, cfile, "doca_ctx_stop"),
            ctx_get_state: get!(common, cfile, "doca_ctx_get_state"),
            ctx_set_state_changed_cb: get!(common, cfile, "doca_ctx_set_state_changed_cb"),
            task_submit: get!(common, cfile, "doca_task_submit"),
            task_free: get!(common, cfile, "doca_task_free"),
            task_get_status: get!(common, cfile, "doca_task_get_status"),
            error_descr: get!(common, cfile, "doca_error_get_descr"),
            dev_as_devinfo: get!(common, cfile, "doca_dev_as_devinfo"),
            cap_get_max_msg_size: get!(comch, file, "doca_comch_cap_get_max_msg_size"),
            cap_get_max_send_tasks: get!(comch, file, "doca_comch_cap_get_max_send_tasks"),
            server_create: get!(comch, file, "doca_comch_server_create"),
            server_destroy: get!(comch, file, "doca_comch_server_destroy"),
            server_as_ctx: get!(comch, file, "doca_comch_server_as_ctx"),
            server_set_max_msg_size: get!(comch, file, "doca_comch_server_set_max_msg_size"),
            server_get_max_msg_size: get!(comch, file, "doca_comch_server_get_max_msg_size"),
            server_task_send_set_conf: get!(comch, file, "doca_comch_server_task_send_set_conf"),
            server_task_send_alloc_init: get!(
                comch,
                file,
                "doca_comch_server_task_send_alloc_init"
            ),
            server_event_msg_recv_register: get!(
                comch,
                file,
                "doca_comch_server_event_msg_recv_register"
            ),
            server_event_connection_register: get!(
                comch,
                file,
                "doca_comch_server_event_connection_status_changed_register",
                "doca_comch_server_event_connection_register"
            ),
            server_disconnect: get!(comch, file, "doca_comch_server_disconnect"),
            client_create: get!(comch, file, "doca_comch_client_create"),
            client_destroy: get!(comch, file, "doca_comch_client_destroy"),
            client_as_ctx: get!(comch, file, "doca_comch_client_as_ctx"),
            client_set_max_msg_size: get!(comch, file, "doca_comch_client_set_max_msg_size"),
            client_get_max_msg_size: get!(comch, file, "doca_comch_client_get_max_msg_size"),
            client_task_send_set_conf: get!(comch, file, "doca_comch_client_task_send_set_conf"),
            client_task_send_alloc_init: get!(
                comch,
                file,
                "doca_comch_client_task_send_alloc_init"
            ),
            client_event_msg_recv_register: get!(
                comch,
                file,
                "doca_comch_client_event_msg_recv_register"
            ),
            client_get_connection: get!(comch, file, "doca_comch_client_get_connection"),
            task_send_as_task: get!(comch, file, "doca_comch_task_send_as_task"),
            file,
            common: cfile,
            generation,
            version: runtime_version(&common),
            _comch: comch,
            _common: common,
        })
    }

    /// The library's description of `e`, with its number.
    pub fn describe(&self, e: DocaError) -> Described {
        Described::new(self.error_descr, e)
    }

    /// `Ok(())` for success, else the error, described, after "Comch: `what`".
    pub fn check(&self, what: &'static str, r: DocaError) -> Result<(), Failure> {
        check(self.error_descr, Step::Comch(what), r)
    }
}
