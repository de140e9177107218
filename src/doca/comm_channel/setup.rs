//! Setting up the Comm Channel endpoint: its sizes from the device's limits, listening or
//! connecting, and its event channels.

use super::endpoint::{Peer, Sizes};
use super::{Worker, QUEUE_SIZE, WANT_MSG};
use crate::config::Role;
use crate::doca::device::RawDev;
use crate::doca::error::Failure;
use crate::doca::ffi::DocaError;
use std::ffi::CString;
use std::time::Duration;

impl Worker<'_> {
    /// Sizes the endpoint from the device's limits, listens (DPU) or connects (host, waiting
    /// here until DOCA has completed the connection).
    pub(super) fn setup(&mut self, raw: RawDev, name: &CString) -> Result<(), Failure> {
        let want = Sizes {
            msg: WANT_MSG,
            queue: QUEUE_SIZE,
        };
        self.ep.configure(&raw, self.role, want)?;
        let peer = match self.role {
            Role::Dpu => self.ep.listen(name).map(|()| None)?,
            Role::Host => Some(self.ep.connect(name)?),
        };
        let m = self.ep.max_msg_size()?;
        if u32::from(m) < crate::wire::MIN_MAX_MSG {
            return Err(Failure::DeviceMessageSize(m.into()));
        }
        self.ep.open_event_channels()?;
        self.shared.lock().max_msg = u32::from(m);
        self.shared.wake_accept();
        if let Some(peer) = peer {
            self.wait_connected(&peer)?;
            self.tag(&peer);
            self.current = Some(peer);
            self.shared.connect(&mut self.shared.lock());
        }
        Ok(())
    }

    /// Host: asks DOCA until the connection to the service has settled. DOCA's Comm Channel
    /// API reports a settled connection only through this call (there is no event for it), so
    /// the thread asks every 2 ms, turning its heartbeat and watching for a stop meanwhile.
    fn wait_connected(&self, peer: &Peer) -> Result<(), Failure> {
        loop {
            self.shared.beat();
            if self.shared.lock().stop {
                return Err(Failure::Stopped);
            }
            match self.ep.connected(peer) {
                DocaError::SUCCESS => return Ok(()),
                DocaError::CONNECTION_INPROGRESS => std::thread::sleep(Duration::from_millis(2)),
                e => return Err(Failure::ConnectFailed(self.describe(e))),
            }
        }
    }
}
