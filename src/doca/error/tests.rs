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
