//! The DOCA Comch backend (DOCA 2.7 and later; the only host-DPU channel API since 2.9).
//!
//! Comch has no event-triggered completions: someone must call `doca_pe_progress`. One
//! dedicated thread owns the progress engine, the context and every Comch call, and talks to
//! the relay through [`crate::doca::bridge`]. While traffic flows the thread keeps progressing;
//! when idle it sleeps on its own eventfd with a timeout that doubles from 10 µs to 5 ms, so an
//! idle relay costs about 200 wakeups a second.

mod callbacks;
mod context;
mod engine;
pub mod ffi;
mod worker;

pub use crate::doca::bridge::{Channel, Link};

use crate::config::Role;
use crate::doca::{Device, Failure};
use ffi::ComchLib;
use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

/// Starts the Comch thread: a server named `name` on the DPU, a client connecting to it on the
/// host. Waits until the context is configured and started.
pub async fn start(
    dev: &Rc<Device>,
    lib: &Arc<ComchLib>,
    role: Role,
    name: &str,
) -> Result<Rc<Channel>, Failure> {
    let name = CString::new(name).map_err(|_| Failure::BadServiceName)?;
    let raw = dev.raw();
    let lib = lib.clone();
    Channel::spawn(dev, "comch", move |shared| {
        worker::thread_main(&lib, raw, role, &name, shared)
    })
    .await
}
