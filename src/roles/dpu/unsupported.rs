//! The DPU role on Windows: refused. It runs on the BlueField's Arm cores, which run Linux.

use crate::config::Config;
use crate::error::Error;
use crate::mux::Stats;
use crate::roles::shutdown::Shutdown;
use async_executor::LocalExecutor;
use std::rc::Rc;

/// Why `--role dpu` is refused on Windows (a configuration error, exit 2).
pub const UNSUPPORTED: &str = "dpu: the DPU side runs on the BlueField's Arm cores (Linux) \
     only; the Windows build runs the host side (--role host)";

/// Fails at once; configuration validation refuses the role before this is reached.
pub(crate) async fn run(
    _cfg: Config,
    _live: Rc<crate::config::Live>,
    _device: Option<Rc<crate::doca::Backend>>,
    _stats: Rc<Stats>,
    _ex: Rc<LocalExecutor<'static>>,
    _stop: Rc<Shutdown>,
) -> Result<(), Error> {
    Err(Error::config(format!("--role {UNSUPPORTED}")))
}
