//! Setting up the Comch thread's objects: the progress engine, the server or client, its
//! configuration and its start.

use super::super::callbacks::{
    on_connect, on_disconnect, on_recv, on_send_error, on_sent, on_state,
};
use super::{Worker, SEND_TASKS};
use crate::config::Role;
use crate::doca::comch::ffi;
use crate::doca::device::RawDev;
use crate::doca::ffi::DocaError;
use std::ffi::CString;

impl Worker<'_> {
    /// Creates the engine and the server or client, configures it and starts it.
    pub(super) fn setup(&mut self, raw: RawDev, name: &CString) -> Result<(), String> {
        let (l, role, shared) = (self.lib, self.role, self.shared);
        let w = self;
        // SAFETY: every call gets valid out-pointers and objects created just before; the
        // device pointers stay valid for the thread's life (see `RawDev`).
        unsafe {
            l.check("creating the progress engine", (l.pe_create)(&mut w.pe))?;
            let info = (l.dev_as_devinfo)(raw.dev());
            let mut cap = 0u32;
            l.check(
                "reading the message size limit",
                (l.cap_get_max_msg_size)(info, &mut cap),
            )?;
            let mut tasks = SEND_TASKS;
            if (l.cap_get_max_send_tasks)(info, &mut tasks) != DocaError::SUCCESS || tasks == 0 {
                tasks = SEND_TASKS;
            }
            let tasks = tasks.min(SEND_TASKS);
            let mut max_msg = 0u32;
            // The steps the server and the client share, on their own functions.
            macro_rules! configure {
                ($obj:expr, $as_ctx:ident, $set_max:ident, $set_conf:ident, $recv:ident) => {{
                    w.ctx = (l.$as_ctx)($obj);
                    l.check("setting the message size", (l.$set_max)($obj, cap))?;
                    l.check(
                        "connecting the progress engine",
                        (l.pe_connect_ctx)(w.pe, w.ctx),
                    )?;
                    let conf = (l.$set_conf)($obj, on_sent, on_send_error, tasks);
                    l.check("configuring send tasks", conf)?;
                    l.check("registering for messages", (l.$recv)($obj, on_recv))?;
                }};
            }
            match role {
                Role::Dpu => {
                    let r = (l.server_create)(raw.dev(), raw.rep(), name.as_ptr(), &mut w.server);
                    l.check("creating the server", r)?;
                    configure!(
                        w.server,
                        server_as_ctx,
                        server_set_max_msg_size,
                        server_task_send_set_conf,
                        server_event_msg_recv_register
                    );
                    let r =
                        (l.server_event_connection_register)(w.server, on_connect, on_disconnect);
                    l.check("registering for connections", r)?;
                    let r = (l.server_get_max_msg_size)(w.server, &mut max_msg);
                    l.check("reading the message size", r)?;
                }
                Role::Host => {
                    let r = (l.client_create)(raw.dev(), name.as_ptr(), &mut w.client);
                    l.check("creating the client", r)?;
                    configure!(
                        w.client,
                        client_as_ctx,
                        client_set_max_msg_size,
                        client_task_send_set_conf,
                        client_event_msg_recv_register
                    );
                    let r = (l.client_get_max_msg_size)(w.client, &mut max_msg);
                    l.check("reading the message size", r)?;
                }
            }
            l.check(
                "registering for state changes",
                (l.ctx_set_state_changed_cb)(w.ctx, on_state),
            )?;
            match ((l.ctx_start)(w.ctx), role) {
                (DocaError::SUCCESS, _) | (ffi::IN_PROGRESS, Role::Host) => {}
                (e, _) => l.check("starting", e)?,
            }
            if max_msg < crate::wire::MIN_MAX_MSG {
                return Err(format!(
                    "Comch: the message size ({max_msg} bytes) is below the {} the relay needs",
                    crate::wire::MIN_MAX_MSG
                ));
            }
            shared.lock().max_msg = max_msg;
        }
        shared.wake_accept();
        Ok(())
    }
}
