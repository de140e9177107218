//! The DOCA channels: the Comm Channel backend (DOCA 2.2 to 2.8) and what it shares with the
//! Comch backend (device opening, the worker-thread bridge, error hints), loaded at run time.
//!
//! The Comm Channel endpoint lives on its own thread (`comm_channel.rs`): its disconnect and destroy
//! block until DOCA has freed the peer's resources, which must never stall the event loop.
//!
//! Every DOCA pointer has one owner type, which states its invariant (who made the pointer, which
//! thread uses it, why it is valid until dropped), makes the unsafe calls behind safe methods and
//! destroys it in DOCA's order: [`Device`] (device and representor), `comm_channel/endpoint.rs`
//! (the endpoint and its peers), `comch/engine.rs` (the progress engine) and `comch/context.rs`
//! (the server or client and its context). The worker threads call only their methods.

pub mod bridge;
pub mod comch;
pub mod comm_channel;
pub mod device;
pub mod error;
pub mod ffi;
pub mod hints;

pub use bridge::{Channel, Link};
pub use device::Device;
pub use error::Failure;

use crate::config::Role;
use comm_channel::ffi::CcLib;
use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

/// Which DOCA channel API drives the device.
pub enum Api {
    /// DOCA Comm Channel (DOCA 2.2 to 2.8).
    CommChannel(Arc<CcLib>),
    /// DOCA Comch (DOCA 2.7 and later).
    Comch(Arc<crate::doca::comch::ffi::ComchLib>),
}

/// The DOCA channel chosen at start-up: the device plus the library that drives it.
pub struct Backend {
    /// The opened device.
    pub dev: Rc<Device>,
    /// The channel API.
    pub api: Api,
}

fn version_note(v: &Option<String>) -> String {
    v.as_ref()
        .map(|v| format!(", DOCA {v}"))
        .unwrap_or_default()
}

/// Which DOCA channel library this machine has, for `-v`.
pub fn installed() -> String {
    match (crate::doca::comch::ffi::ComchLib::load(), CcLib::load()) {
        (Ok(c), _) => format!(
            "DOCA Comch ({}, {} API{})",
            c.file,
            c.generation,
            version_note(&c.version)
        ),
        (Err(_), Ok(cc)) => format!(
            "DOCA Comm Channel ({}{})",
            cc.file,
            version_note(
                &device::DevLib::load(&cc.common)
                    .ok()
                    .and_then(|d| d.version)
            )
        ),
        (Err(_), Err(_)) => "no DOCA channel library (the tcp and unix channels work)".into(),
    }
}

impl Backend {
    /// Loads the channel library (`--channel doca`: Comch if installed, else Comm Channel) and
    /// opens the device named by `-p` (and `-r` on the DPU).
    pub fn open(cfg: &crate::config::Config) -> Result<Backend, Failure> {
        use crate::config::ChannelAddr;
        use crate::doca::comch::ffi::ComchLib;
        let api = match cfg.channel {
            ChannelAddr::Comch => Api::Comch(Arc::new(ComchLib::load()?)),
            ChannelAddr::CommChannel => Api::CommChannel(Arc::new(CcLib::load()?)),
            _ => match ComchLib::load() {
                Ok(c) => Api::Comch(Arc::new(c)),
                Err(comch) => match CcLib::load() {
                    Ok(cc) => Api::CommChannel(Arc::new(cc)),
                    Err(cc) => {
                        return Err(Failure::NoLibrary {
                            comch: Box::new(comch),
                            comm_channel: Box::new(cc),
                        })
                    }
                },
            },
        };
        hints::memlock_at_start();
        let common = match &api {
            Api::Comch(c) => &c.common,
            Api::CommChannel(cc) => &cc.common,
        };
        let dev = Device::open(cfg, common)?;
        match &api {
            Api::Comch(c) => log::info!(
                "DOCA Comch backend: {} ({} API{})",
                c.file,
                c.generation,
                version_note(&c.version)
            ),
            Api::CommChannel(cc) => log::info!(
                "DOCA Comm Channel backend: {}{}",
                cc.file,
                version_note(&dev.lib.version)
            ),
        }
        Ok(Backend { dev, api })
    }
}

impl Backend {
    /// Starts the chosen API's thread: listening for hosts on the DPU, connecting to the
    /// service `name` on the host. Returns once the endpoint is configured; [`Channel::accept`]
    /// then hands out the connection (on the host, once DOCA has completed it).
    pub async fn start(&self, role: Role, name: &str) -> Result<Rc<Channel>, Failure> {
        match &self.api {
            Api::CommChannel(cc) => start(&self.dev, cc, role, name).await,
            Api::Comch(lib) => comch::start(&self.dev, lib, role, name).await,
        }
    }

    /// The API's name, for log lines about a peer.
    pub fn name(&self) -> &'static str {
        match &self.api {
            Api::CommChannel(_) => "DOCA Comm Channel",
            Api::Comch(_) => "DOCA Comch",
        }
    }
}

/// The host side's channel over `backend`: connects to the DOCA service `cc_name`.
pub async fn connect_host(backend: &Backend, cc_name: &str) -> Result<Link, Failure> {
    let ch = backend.start(Role::Host, cc_name).await?;
    match backend.api {
        // The thread completes the connection in the background.
        Api::CommChannel(_) => ch.accept().await.map_err(|why| Failure::NoAnswer {
            service: cc_name.to_string(),
            why: Box::new(why),
        }),
        Api::Comch(_) => ch.accept().await,
    }
}

/// Starts the Comm Channel thread: listening for hosts on the DPU, connecting to the service on
/// the host. Returns once the endpoint is configured; [`Channel::accept`] then hands out the
/// connection (on the host, once DOCA has completed it).
pub async fn start(
    dev: &Rc<Device>,
    cc: &Arc<CcLib>,
    role: Role,
    name: &str,
) -> Result<Rc<Channel>, Failure> {
    let name = CString::new(name).map_err(|_| Failure::BadServiceName)?;
    let (raw, descr, cc) = (dev.raw(), dev.lib.error_descr, cc.clone());
    Channel::spawn(dev, "comm-channel", move |shared| {
        comm_channel::thread_main(&cc, descr, raw, role, &name, shared)
    })
    .await
}
