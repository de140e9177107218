//! Hints added to DOCA errors whose usual cause is the service's environment rather than the
//! relay: the memory-lock limit RDMA needs, and capabilities the card may want.

use super::ffi::DocaError;
use rustix::process::{getrlimit, setrlimit, Resource};
use std::fmt;

/// `DOCA_ERROR_NOT_PERMITTED`
const NOT_PERMITTED: DocaError = DocaError(2);
/// `DOCA_ERROR_NO_MEMORY`
const NO_MEMORY: DocaError = DocaError(7);

/// Below this the relay warns at start-up: one endpoint's queues alone pin about this much.
const MEMLOCK_LOW: u64 = 8 << 20;

fn show(limit: Option<u64>) -> String {
    match limit {
        None => "unlimited".into(),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        Some(b) if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        Some(b) => format!("{b} bytes"),
    }
}

/// The current memory-lock limit, for messages.
pub fn memlock() -> String {
    show(getrlimit(Resource::Memlock).current)
}

/// What an error's usual cause in the service's environment is, appended to its description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// `DOCA_ERROR_NO_MEMORY`: RDMA pins memory; the memory-lock limit when the call failed.
    Memlock(Option<u64>),
    /// `DOCA_ERROR_NOT_PERMITTED`: the card may want a capability.
    Capability,
}

/// The hint for `e`, if its usual cause is the environment.
pub fn for_error(e: DocaError) -> Option<Hint> {
    if e == NO_MEMORY {
        Some(Hint::Memlock(getrlimit(Resource::Memlock).current))
    } else if e == NOT_PERMITTED {
        Some(Hint::Capability)
    } else {
        None
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::Memlock(limit) => write!(
                f,
                "; RDMA pins memory and the memory-lock limit (RLIMIT_MEMLOCK) is {}: raise it \
                 with LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` when \
                 started by hand",
                show(*limit)
            ),
            Hint::Capability => f.write_str(
                "; if DOCA refused the service user, the card may need a capability \
                 (CAP_NET_RAW, CAP_SYS_RAWIO): packaging/README.md shows the drop-in that \
                 grants it",
            ),
        }
    }
}

/// Raises the soft memory-lock limit to the hard one (allowed without privileges) and logs
/// the limit in force, warning when it is likely too low for RDMA.
pub fn memlock_at_start() {
    let lim = getrlimit(Resource::Memlock);
    if let (Some(cur), max) = (lim.current, lim.maximum) {
        if max.is_none_or(|m| m > cur) {
            let mut raised = lim;
            raised.current = max;
            let _ = setrlimit(Resource::Memlock, raised);
        }
    }
    let lim = getrlimit(Resource::Memlock);
    let line = format!("memory-lock limit (RLIMIT_MEMLOCK): {}", show(lim.current));
    match lim.current {
        Some(b) if b < MEMLOCK_LOW => log::warn!(
            "{line}; RDMA may need more: set LimitMEMLOCK=infinity in the systemd unit (the packaged unit does)"
        ),
        _ => log::info!("{line}"),
    }
}
