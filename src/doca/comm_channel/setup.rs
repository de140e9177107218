//! Setting up the Comm Channel endpoint: its sizes from the device's limits, listening or
//! connecting, and its event channels.

use super::{Worker, QUEUE_SIZE, WANT_MSG};
use crate::config::Role;
use crate::doca::device::RawDev;
use crate::doca::ffi::{Addr, DevInfo, DocaError};
use std::ffi::CString;
use std::ptr;
use std::time::Duration;

impl Worker<'_> {
    /// Creates the endpoint, sizes it from the device's limits, listens (DPU) or connects
    /// (host, waiting here until DOCA has completed the connection).
    pub(super) fn setup(&mut self, raw: RawDev, name: &CString) -> Result<(), String> {
        let l = self.l;
        let mut ep = ptr::null_mut();
        // SAFETY: out-pointer valid.
        let r = unsafe { (l.ep_create)(&mut ep) };
        self.check("creating the Comm Channel endpoint", r)?;
        self.ep = ep;
        // SAFETY: the device is open for the thread's whole life (see `RawDev`).
        let info = unsafe { (l.dev_as_devinfo)(raw.0) };
        let cap = |f: unsafe extern "C" fn(*mut DevInfo, *mut u32) -> DocaError, want: u32| {
            let mut max = 0u32;
            // SAFETY: valid devinfo and out-pointer.
            let v = match unsafe { f(info, &mut max) } {
                DocaError::SUCCESS if max > 0 => want.min(max),
                _ => want,
            };
            v.min(u16::MAX as u32) as u16
        };
        let msg = cap(l.get_max_message_size, WANT_MSG);
        let (sq, rq) = (
            cap(l.get_max_send_queue_size, QUEUE_SIZE),
            cap(l.get_max_recv_queue_size, QUEUE_SIZE),
        );
        // SAFETY: a fresh endpoint; `dev`/`rep` are open for its whole life.
        unsafe {
            self.check("setting the endpoint device", (l.ep_set_device)(ep, raw.0))?;
            if self.role == Role::Dpu {
                self.check(
                    "setting the endpoint representor",
                    (l.ep_set_device_rep)(ep, raw.1),
                )?;
            }
            self.check("setting the message size", (l.ep_set_max_msg_size)(ep, msg))?;
            self.check(
                "setting the send queue size",
                (l.ep_set_send_queue_size)(ep, sq),
            )?;
            self.check(
                "setting the receive queue size",
                (l.ep_set_recv_queue_size)(ep, rq),
            )?;
        }
        let shown = name.to_string_lossy();
        let mut peer = ptr::null_mut();
        // SAFETY: valid endpoint, NUL-terminated name, out-pointer.
        unsafe {
            match self.role {
                Role::Dpu => self.check(
                    &format!("listening on service {shown:?}"),
                    (l.ep_listen)(ep, name.as_ptr()),
                )?,
                Role::Host => self.check(
                    &format!("connecting to service {shown:?}"),
                    (l.ep_connect)(ep, name.as_ptr(), &mut peer),
                )?,
            }
        }
        let mut m = 0u16;
        // SAFETY: valid endpoint and out-pointer.
        self.check("reading the message size", unsafe {
            (l.ep_get_max_msg_size)(ep, &mut m)
        })?;
        if u32::from(m) < crate::wire::MIN_MAX_MSG {
            return Err(format!(
                "the device's message size ({m} bytes) is below the {} the relay needs",
                crate::wire::MIN_MAX_MSG
            ));
        }
        let (mut sfd, mut rfd) = (-1, -1);
        // SAFETY: the endpoint is active, so its event channels exist.
        self.check("getting the event channels", unsafe {
            (l.ep_get_event_channel)(ep, &mut sfd, &mut rfd)
        })?;
        self.fds = vec![rfd];
        if sfd != rfd {
            self.fds.push(sfd);
        }
        self.shared.lock().max_msg = u32::from(m);
        self.shared.wake_accept();
        if self.role == Role::Host {
            self.wait_connected(peer)?;
            self.tag(peer);
            self.current = Some(peer);
            self.shared.connect(&mut self.shared.lock());
        }
        Ok(())
    }

    /// Host: asks DOCA until the connection to the service has settled.
    fn wait_connected(&self, peer: *mut Addr) -> Result<(), String> {
        loop {
            self.shared.beat();
            if self.shared.lock().stop {
                return Err("stopped".into());
            }
            // SAFETY: `peer` came from `ep_connect` on our endpoint.
            match unsafe { (self.l.peer_addr_update_info)(peer) } {
                DocaError::SUCCESS => return Ok(()),
                DocaError::CONNECTION_INPROGRESS => std::thread::sleep(Duration::from_millis(2)),
                e => {
                    return Err(format!(
                        "connecting to the DPU service: {}",
                        self.describe(e)
                    ))
                }
            }
        }
    }
}
