//! The DOCA channels on Windows: not available in this build, with the reason.
//!
//! What DOCA's Windows documentation says (checked 2026-11-27): NVIDIA's Windows driver
//! package WinOF-2 (v2.90 documentation, "DOCA" chapter,
//! <https://docs.nvidia.com/networking/display/winof2v290/doca>) ships a "DOCA Communication
//! Channel API" for Windows hosts (BlueField-2, Ethernet and embedded-CPU modes, DevX) and its
//! own `doca_socket_relay` tool with other flags (`--doca_name`, `--uds_name`, ...). That
//! documentation names no library (DLL), no header and no API version; the DOCA SDK
//! documentation (Comm Channel, Comch) describes Linux libraries only. The Linux backends here
//! load `libdoca_comm_channel.so.2` / `libdoca_comch.so.{3,2}` with the DOCA 2.2+ ABI; nothing
//! documents a Windows library with that ABI, so this build loads none rather than guess a
//! name. `--channel tcp:HOST:PORT` (for example over the host-DPU network) is the Windows path.
//!
//! The types below keep the relay core's calls the same on every platform; none can be made.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::time::Duration;

/// Why a DOCA channel is refused on Windows (a configuration error, exit 2).
pub const UNSUPPORTED: &str = "DOCA channels are not available in the Windows build: DOCA's \
     Windows documentation names no Comm Channel or Comch library it could load; use \
     --channel tcp:HOST:PORT with a --psk-file";

/// Why a DOCA channel cannot be used. On Windows there is one reason: none can be loaded (the
/// Linux build's `Failure` names what DOCA returned; none of that happens here).
#[derive(Clone, Debug)]
pub enum Failure {
    /// No DOCA channel library can be loaded in this build ([`UNSUPPORTED`]).
    Unsupported,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unsupported => f.write_str(UNSUPPORTED),
        }
    }
}

impl std::error::Error for Failure {}

/// No value of this type exists.
#[derive(Clone, Copy)]
enum Never {}

/// A DOCA device and channel library; never opened on Windows.
pub struct Backend {
    never: Never,
}

impl Backend {
    /// Always fails: there is no DOCA library to load (configuration validation refuses DOCA
    /// channels before this is reached).
    pub fn open(_cfg: &crate::config::Config) -> Result<Backend, Failure> {
        Err(Failure::Unsupported)
    }
}

/// What `-v` reports.
pub fn installed() -> String {
    "no DOCA channel library (not available on Windows; the tcp and unix channels work)".into()
}

/// The host side's channel over `backend`; unreachable, as no backend exists.
pub async fn connect_host(backend: &Backend, _cc_name: &str) -> Result<Link, Failure> {
    match backend.never {}
}

/// A DOCA connection; none exists on Windows.
pub struct Link {
    /// Largest message, as on Linux.
    pub max_msg: Cell<u32>,
    never: Never,
}

impl Link {
    /// Never called: no link exists.
    pub fn limit_max_msg(&self, _agreed: u32) {
        match self.never {}
    }

    /// Never called: no link exists.
    pub async fn read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.never {}
    }

    /// Never called: no link exists.
    pub async fn write_frames(&self, _buf: &[u8]) -> io::Result<()> {
        match self.never {}
    }
}

/// The DOCA worker threads; there are none on Windows.
pub mod bridge {
    use super::Duration;

    /// Stops the DOCA threads; returns how many stayed busy: none.
    pub fn stop_all(_timeout: Duration) -> usize {
        0
    }

    /// Whether every DOCA thread made progress lately: there are none to be stuck.
    pub fn workers_fresh(_within: Duration) -> bool {
        true
    }
}
