//! Why a DOCA step failed: [`Failure`], the one error type of the DOCA code (loading the
//! libraries, opening the device, the worker threads and the bridge to them).
//!
//! Its text ([`fmt::Display`]) is the message operators and the tests read, word for word as
//! when these errors were strings; the rest of the crate takes it as text at the call site
//! (`crate::error::Error::Doca`, the host's `ConnectError::Unreachable`). Only text that comes
//! from outside the relay is kept as a `String`: the library's description of an error, the
//! loader's message, file names, the service name and the PCI address from the configuration.

use super::ffi::{Descr, DocaError};
use super::hints::Hint;
use crate::config::PciAddr;
use std::ffi::CStr;
use std::fmt;
use std::io;
use std::sync::Arc;

/// A DOCA error code with what the library says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// The code the call returned.
    pub code: DocaError,
    /// The library's description (`doca_error_get_descr`), when it has one for the code.
    pub text: Option<String>,
}

impl Described {
    /// Describes `code` with a library's `doca_error_get_descr` (or 2.2's
    /// `doca_get_error_string`).
    pub(crate) fn new(descr: Descr, code: DocaError) -> Self {
        // SAFETY: the function takes any code and returns a static string or NULL.
        let p = unsafe { descr(code) };
        // SAFETY: non-NULL results are NUL-terminated static strings.
        let text = (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into());
        Described { code, text }
    }
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => write!(f, "{text} ({})", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

/// What the relay was doing when a DOCA call failed: the text before the colon of
/// [`Failure::Call`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A step of the device code or of the Comm Channel endpoint ("opening the DOCA device").
    Named(&'static str),
    /// A step of the Comch backend, shown after "Comch: ".
    Comch(&'static str),
    /// DPU, Comm Channel: listening on the service of this name.
    Listening(String),
    /// Host, Comm Channel: connecting to the service of this name.
    Connecting(String),
}

impl From<&'static str> for Step {
    fn from(what: &'static str) -> Self {
        Step::Named(what)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Named(what) => f.write_str(what),
            Step::Comch(what) => write!(f, "Comch: {what}"),
            Step::Listening(name) => write!(f, "listening on service {name:?}"),
            Step::Connecting(name) => write!(f, "connecting to service {name:?}"),
        }
    }
}

/// Why a DOCA library, device or channel failed. Cloned when the reason a worker thread ended
/// is handed to every waiter (the acceptor, each link's reader and writer).
#[derive(Clone, Debug)]
pub enum Failure {
    /// A DOCA call returned an error during `step`; `hint` names the usual cause when it lies
    /// in the service's environment (see `hints.rs`).
    Call {
        /// What the relay was doing.
        step: Step,
        /// The code and the library's description of it.
        error: Described,
        /// The environment's likely part in it.
        hint: Option<Hint>,
    },
    /// A library could not be loaded.
    Load {
        /// The file, or the names tried (joined by " or ").
        file: String,
        /// The loader's message (the first one, when several files were tried).
        reason: String,
    },
    /// No `libdoca_common` could be found for the channel library `channel`.
    NoCommon {
        /// The channel library's file.
        channel: String,
        /// The directory looked in, when the channel library's own could be told.
        dir: Option<String>,
    },
    /// A library has none of the names a function goes by.
    MissingSymbol {
        /// The library's file.
        file: String,
        /// The names tried.
        names: &'static [&'static str],
    },
    /// `--channel doca`: neither channel library could be loaded.
    NoLibrary {
        /// Why Comch (DOCA 2.7+) could not be loaded.
        comch: Box<Failure>,
        /// Why Comm Channel (DOCA 2.2 to 2.8) could not be loaded.
        comm_channel: Box<Failure>,
    },
    /// `--pci-addr` is missing.
    NoPciAddr,
    /// `--rep-pci` is missing on the DPU.
    NoRepPci,
    /// A PCI address with a NUL byte.
    BadPciAddr,
    /// No DOCA device has the PCI address of `--pci-addr`.
    NoDevice(PciAddr),
    /// No DOCA representor has the PCI address of `--rep-pci`.
    NoRepresentor(PciAddr),
    /// A service name with a NUL byte.
    BadServiceName,
    /// Host, Comm Channel: connecting to the named service returned no peer.
    NoPeer {
        /// The service name.
        service: String,
    },
    /// Comm Channel: the device's message size is below what the relay needs.
    DeviceMessageSize(u32),
    /// Comch: the message size in force is below what the relay needs.
    ComchMessageSize(u32),
    /// Making the eventfds of a worker thread failed.
    Eventfds(Arc<io::Error>),
    /// Registering the eventfds of a worker thread with the event loop failed.
    WatchEventfds(Arc<io::Error>),
    /// The worker thread `name` could not be started.
    Thread {
        /// The thread's name.
        name: &'static str,
        /// Why.
        error: Arc<io::Error>,
    },
    /// The relay asked the worker thread to end.
    Stopped,
    /// Host, Comm Channel: the connection to the service failed while it settled.
    ConnectFailed(Described),
    /// Host: no service of this name answered, and why (Comm Channel).
    NoAnswer {
        /// The service name.
        service: String,
        /// Why the connection ended.
        why: Box<Failure>,
    },
    /// Host, Comch: the client stopped while starting: no server of this name answered.
    NoComchServer {
        /// The service name.
        service: String,
    },
    /// Comm Channel: a receive failed and named no peer.
    ReceiveFailed(Described),
    /// Comm Channel: the current host's (or on the host the service's) connection failed.
    HostConnectionFailed(Described),
    /// Comm Channel: a send on the current connection failed.
    SendFailed(Described),
    /// DPU, Comm Channel: DOCA reports the service in an unrecoverable state.
    ServiceError(Described),
    /// DPU: the relay let go of the host's connection.
    RelayEnded,
    /// Comch: allocating a send task failed.
    TaskAlloc(Described),
    /// Comch: submitting a send task failed.
    TaskSubmit(Described),
    /// Comch: DOCA handed back a send on the current connection as failed.
    ComchSendFailed(Described),
    /// Comch: the server was asked for a client's own connection.
    NoOwnConnection,
    /// Comch: the context stopped.
    ContextStopped,
    /// DPU, Comch: the server context kept stopping.
    ServerRestarts,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Failure::*;
        match self {
            Call { step, error, hint } => {
                write!(f, "{step}: {error}")?;
                match hint {
                    Some(hint) => write!(f, "{hint}"),
                    None => Ok(()),
                }
            }
            Load { file, reason } => write!(f, "cannot load {file}: {reason}"),
            NoCommon { channel, dir } => write!(
                f,
                "cannot find the libdoca_common that {channel} belongs with (looked in {})",
                dir.as_deref().unwrap_or("its directory")
            ),
            MissingSymbol { file, names } => {
                write!(f, "{file} has no symbol {}", names.join(" or "))
            }
            NoLibrary {
                comch,
                comm_channel,
            } => write!(
                f,
                "no DOCA channel library: {comch} (DOCA 2.7+ Comch); {comm_channel} (DOCA \
                 2.2-2.8 Comm Channel)"
            ),
            NoPciAddr => f.write_str("--pci-addr is required with --channel doca"),
            NoRepPci => f.write_str("--rep-pci is required on the DPU with --channel doca"),
            BadPciAddr => f.write_str("bad PCI address"),
            NoDevice(pci) => write!(f, "no DOCA device at PCI address {} (--pci-addr)", pci.0),
            NoRepresentor(pci) => {
                write!(
                    f,
                    "no DOCA representor at PCI address {} (--rep-pci)",
                    pci.0
                )
            }
            BadServiceName => f.write_str("bad service name"),
            NoPeer { service } => {
                write!(
                    f,
                    "connecting to service {service:?}: DOCA returned no peer"
                )
            }
            DeviceMessageSize(size) => write!(
                f,
                "the device's message size ({size} bytes) is below the {} the relay needs",
                crate::wire::MIN_MAX_MSG
            ),
            ComchMessageSize(size) => write!(
                f,
                "Comch: the message size ({size} bytes) is below the {} the relay needs",
                crate::wire::MIN_MAX_MSG
            ),
            Eventfds(e) => write!(f, "creating eventfds: {e}"),
            WatchEventfds(e) => write!(f, "watching eventfds: {e}"),
            Thread { name, error } => write!(f, "starting the {name} thread: {error}"),
            Stopped => f.write_str("stopped"),
            ConnectFailed(e) => write!(f, "connecting to the DPU service: {e}"),
            NoAnswer { service, why } => write!(f, "no DOCA service {service:?} answered ({why})"),
            NoComchServer { service } => write!(
                f,
                "no DOCA service {service:?} answered (no Comch server; is the DPU side running?)"
            ),
            ReceiveFailed(e) => write!(f, "Comm Channel receive failed: {e}"),
            HostConnectionFailed(e) => write!(f, "the host's connection failed: {e}"),
            SendFailed(e) => write!(f, "a Comm Channel send failed: {e}"),
            ServiceError(e) => write!(
                f,
                "the DOCA Comm Channel service is in an error state ({e}); exiting so that it is \
                 started afresh"
            ),
            RelayEnded => f.write_str("the relay ended the host session"),
            TaskAlloc(e) => write!(f, "allocating a Comch send task: {e}"),
            TaskSubmit(e) => write!(f, "submitting a Comch send task: {e}"),
            ComchSendFailed(e) => write!(f, "a Comch send failed: {e}"),
            NoOwnConnection => f.write_str("Comch: a server has no connection of its own"),
            ContextStopped => f.write_str("the Comch context stopped"),
            ServerRestarts => {
                f.write_str("the Comch server context stopped 5 times within a minute")
            }
        }
    }
}

/// Its text says it all: nothing is given as a source, so no chain repeats it.
impl std::error::Error for Failure {}

#[cfg(test)]
mod tests;
