//! Setting up the Comch thread's server or client: the device's limits, the object, its
//! configuration and its start.

use super::Worker;
use crate::config::Role;
use crate::doca::comch::context::{Context, Limits};
use crate::doca::comch::engine::Engine;
use crate::doca::comch::ffi::ComchLib;
use crate::doca::device::RawDev;
use crate::doca::error::Failure;
use std::ffi::CStr;

/// Reads the device's limits and makes the server (DPU) or client (host) on `engine`.
pub(super) fn open<'e>(
    lib: &ComchLib,
    engine: &'e Engine<'e>,
    dev: &RawDev,
    role: Role,
    name: &CStr,
) -> Result<(Limits, Context<'e>), Failure> {
    let limits = Limits::read(lib, dev)?;
    Ok((limits, Context::create(engine, dev, role, name)?))
}

impl Worker<'_> {
    /// Configures the server or client within the device's `limits` and starts it.
    pub(super) fn setup(&mut self, limits: &Limits) -> Result<(), Failure> {
        let max_msg = self.ctx.configure(limits)?;
        self.ctx.watch_state()?;
        self.ctx.start()?;
        if max_msg < crate::wire::MIN_MAX_MSG {
            return Err(Failure::ComchMessageSize(max_msg));
        }
        self.shared.lock().max_msg = max_msg;
        self.shared.wake_accept();
        Ok(())
    }
}
