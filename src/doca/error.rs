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
mod tests {
    use super::*;
    use crate::doca::ffi::check;
    use crate::doca::hints;
    use std::ffi::c_char;

    /// A library's `doca_error_get_descr`: a description for NO_MEMORY, NOT_PERMITTED and
    /// INVALID_VALUE, NULL for the rest.
    unsafe extern "C" fn descr(e: DocaError) -> *const c_char {
        match e.0 {
            2 => c"Operation not permitted".as_ptr(),
            6 => c"Invalid input".as_ptr(),
            7 => c"Not enough memory".as_ptr(),
            _ => std::ptr::null(),
        }
    }

    fn described(code: i32, text: &str) -> Described {
        Described {
            code: DocaError(code),
            text: Some(text.into()),
        }
    }

    fn os(e: io::ErrorKind) -> Arc<io::Error> {
        Arc::new(io::Error::new(e, "no"))
    }

    #[test]
    fn a_description_names_the_code_and_what_the_library_says() {
        assert_eq!(
            Described::new(descr, DocaError(6)).to_string(),
            "Invalid input (DOCA error 6)"
        );
        assert_eq!(
            Described::new(descr, DocaError(6)),
            described(6, "Invalid input")
        );
        // A code the library has no text for.
        let bare = Described::new(descr, DocaError(99));
        assert_eq!(bare.text, None);
        assert_eq!(bare.to_string(), "DOCA error 99");
    }

    /// The one check: the step, the description, and a hint where the environment is the
    /// usual cause.
    #[test]
    fn a_failed_call_names_the_step_the_error_and_the_hint() {
        assert!(check(descr, "opening the DOCA device", DocaError::SUCCESS).is_ok());
        let text = |step: Step, code: i32| check(descr, step, DocaError(code)).unwrap_err();
        assert_eq!(
            text("opening the DOCA device".into(), 6).to_string(),
            "opening the DOCA device: Invalid input (DOCA error 6)"
        );
        assert_eq!(
            text(Step::Comch("creating the server"), 99).to_string(),
            "Comch: creating the server: DOCA error 99"
        );
        assert_eq!(
            text(Step::Listening("svc \"x\"".into()), 6).to_string(),
            "listening on service \"svc \\\"x\\\"\": Invalid input (DOCA error 6)"
        );
        assert_eq!(
            text(Step::Connecting("svc".into()), 6).to_string(),
            "connecting to service \"svc\": Invalid input (DOCA error 6)"
        );
        let no_memory = text("creating the Comm Channel endpoint".into(), 7);
        assert!(matches!(
            no_memory,
            Failure::Call {
                hint: Some(hints::Hint::Memlock(_)),
                ..
            }
        ));
        assert_eq!(
            no_memory.to_string(),
            format!(
                "creating the Comm Channel endpoint: Not enough memory (DOCA error 7); RDMA pins \
                 memory and the memory-lock limit (RLIMIT_MEMLOCK) is {}: raise it with \
                 LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` when \
                 started by hand",
                hints::memlock()
            )
        );
        assert_eq!(
            text(Step::Comch("starting"), 2).to_string(),
            "Comch: starting: Operation not permitted (DOCA error 2); if DOCA refused the \
             service user, the card may need a capability (CAP_NET_RAW, CAP_SYS_RAWIO): \
             packaging/README.md shows the drop-in that grants it"
        );
    }

    #[test]
    fn the_memlock_hint_shows_the_limit_in_force() {
        let hint = |limit| hints::Hint::Memlock(limit).to_string();
        for (limit, shown) in [
            (None, "unlimited"),
            (Some(64 << 20), "64 MiB"),
            (Some(64 << 10), "64 KiB"),
            (Some(1000), "1000 bytes"),
        ] {
            assert_eq!(
                hint(limit),
                format!(
                    "; RDMA pins memory and the memory-lock limit (RLIMIT_MEMLOCK) is {shown}: \
                     raise it with LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l \
                     unlimited` when started by hand"
                )
            );
        }
        assert_eq!(hints::for_error(DocaError(6)), None);
        assert_eq!(
            hints::for_error(DocaError(2)),
            Some(hints::Hint::Capability)
        );
    }

    /// Every other failure's text, word for word: operators and tests/doca.rs, tests/comch.rs
    /// grep these lines.
    #[test]
    fn each_failure_reads_as_before() {
        let pci = || PciAddr("0000:03:00.0".into());
        let cases: Vec<(Failure, &str)> = vec![
            (
                Failure::Load {
                    file: "libdoca_comch.so.3 or libdoca_comch.so.2".into(),
                    reason: "libdoca_comch.so.3: cannot open shared object file".into(),
                },
                "cannot load libdoca_comch.so.3 or libdoca_comch.so.2: libdoca_comch.so.3: \
                 cannot open shared object file",
            ),
            (
                Failure::NoCommon {
                    channel: "/opt/x/libdoca_comch.so.3".into(),
                    dir: Some("/opt/x".into()),
                },
                "cannot find the libdoca_common that /opt/x/libdoca_comch.so.3 belongs with \
                 (looked in /opt/x)",
            ),
            (
                Failure::NoCommon {
                    channel: "libdoca_comch.so.3".into(),
                    dir: None,
                },
                "cannot find the libdoca_common that libdoca_comch.so.3 belongs with (looked \
                 in its directory)",
            ),
            (
                Failure::MissingSymbol {
                    file: "libdoca_common.so.2".into(),
                    names: &["doca_devinfo_create_list", "doca_devinfo_list_create"],
                },
                "libdoca_common.so.2 has no symbol doca_devinfo_create_list or \
                 doca_devinfo_list_create",
            ),
            (
                Failure::NoLibrary {
                    comch: Box::new(Failure::Load {
                        file: "a".into(),
                        reason: "x".into(),
                    }),
                    comm_channel: Box::new(Failure::Load {
                        file: "b".into(),
                        reason: "y".into(),
                    }),
                },
                "no DOCA channel library: cannot load a: x (DOCA 2.7+ Comch); cannot load b: y \
                 (DOCA 2.2-2.8 Comm Channel)",
            ),
            (
                Failure::NoPciAddr,
                "--pci-addr is required with --channel doca",
            ),
            (
                Failure::NoRepPci,
                "--rep-pci is required on the DPU with --channel doca",
            ),
            (Failure::BadPciAddr, "bad PCI address"),
            (
                Failure::NoDevice(pci()),
                "no DOCA device at PCI address 0000:03:00.0 (--pci-addr)",
            ),
            (
                Failure::NoRepresentor(pci()),
                "no DOCA representor at PCI address 0000:03:00.0 (--rep-pci)",
            ),
            (Failure::BadServiceName, "bad service name"),
            (
                Failure::NoPeer {
                    service: "svc".into(),
                },
                "connecting to service \"svc\": DOCA returned no peer",
            ),
            (
                Failure::DeviceMessageSize(512),
                "the device's message size (512 bytes) is below the 1024 the relay needs",
            ),
            (
                Failure::ComchMessageSize(512),
                "Comch: the message size (512 bytes) is below the 1024 the relay needs",
            ),
            (
                Failure::Eventfds(os(io::ErrorKind::OutOfMemory)),
                "creating eventfds: no",
            ),
            (
                Failure::WatchEventfds(os(io::ErrorKind::OutOfMemory)),
                "watching eventfds: no",
            ),
            (
                Failure::Thread {
                    name: "comch",
                    error: os(io::ErrorKind::WouldBlock),
                },
                "starting the comch thread: no",
            ),
            (Failure::Stopped, "stopped"),
            (
                Failure::ConnectFailed(described(12, "Connection aborted")),
                "connecting to the DPU service: Connection aborted (DOCA error 12)",
            ),
            (
                Failure::NoAnswer {
                    service: "svc".into(),
                    why: Box::new(Failure::ConnectFailed(described(12, "Connection aborted"))),
                },
                "no DOCA service \"svc\" answered (connecting to the DPU service: Connection \
                 aborted (DOCA error 12))",
            ),
            (
                Failure::NoComchServer {
                    service: "svc".into(),
                },
                "no DOCA service \"svc\" answered (no Comch server; is the DPU side running?)",
            ),
            (
                Failure::ReceiveFailed(described(14, "Not connected")),
                "Comm Channel receive failed: Not connected (DOCA error 14)",
            ),
            (
                Failure::HostConnectionFailed(described(11, "Connection reset")),
                "the host's connection failed: Connection reset (DOCA error 11)",
            ),
            (
                Failure::SendFailed(described(11, "Connection reset")),
                "a Comm Channel send failed: Connection reset (DOCA error 11)",
            ),
            (
                Failure::ServiceError(described(11, "Connection reset")),
                "the DOCA Comm Channel service is in an error state (Connection reset (DOCA \
                 error 11)); exiting so that it is started afresh",
            ),
            (Failure::RelayEnded, "the relay ended the host session"),
            (
                Failure::TaskAlloc(described(6, "Invalid input")),
                "allocating a Comch send task: Invalid input (DOCA error 6)",
            ),
            (
                Failure::TaskSubmit(described(6, "Invalid input")),
                "submitting a Comch send task: Invalid input (DOCA error 6)",
            ),
            (
                Failure::ComchSendFailed(described(11, "Connection reset")),
                "a Comch send failed: Connection reset (DOCA error 11)",
            ),
            (
                Failure::NoOwnConnection,
                "Comch: a server has no connection of its own",
            ),
            (Failure::ContextStopped, "the Comch context stopped"),
            (
                Failure::ServerRestarts,
                "the Comch server context stopped 5 times within a minute",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text, "{failure:?}");
        }
    }
}
