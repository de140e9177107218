//! The service manager glue on Windows, under the Linux module's name (`systemd`) so that the
//! roles make the same calls everywhere: start-up, readiness, stop requests, the end.
//!
//! One binary runs both ways. [`entry`] first offers itself to the service control manager
//! (SCM); a process the SCM did not start is told so at once
//! (ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) and runs as a console program, where Ctrl-C stops
//! it ([`crate::sys::signals`]) and the calls below do nothing. As a service:
//!
//! - the SCM sees START_PENDING until the socket is bound and the channel is up or being
//!   retried ([`ready`]: RUNNING), STOP_PENDING while it drains ([`stopping`]), then STOPPED
//!   with the exit code (0, or service-specific 1 or 2 as on the command line);
//! - Stop and Shutdown requests stop it as SIGTERM does on Linux ([`stop_requested`]);
//! - stderr, which a service does not have, is a log file,
//!   `%ProgramData%\doca-socket-relay\SERVICE.log` (appended; the lines are the console's).
//!
//! The command line is the one the service was created with
//! (`sc.exe create NAME binPath= "C:\...\doca_socket_relay.exe --json C:\...\NAME.json"`).

use event_listener::Event;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::ServiceStatusHandle;
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The SCM's answer to a process it did not start.
const NOT_A_SERVICE: i32 = 1063;

/// The program to run, set once by [`entry`].
static MAIN: OnceLock<fn() -> u8> = OnceLock::new();
/// The status handle, when running as a service.
static STATUS: Mutex<Option<ServiceStatusHandle>> = Mutex::new(None);
/// The program's exit code, for the process once the dispatcher returns.
static EXIT: AtomicU8 = AtomicU8::new(0);
static STOP_ASKED: AtomicBool = AtomicBool::new(false);
static STOP: Event = Event::new();

define_windows_service!(ffi_service_main, service_main);

/// Runs `main` as a service when the SCM started this process, else as a console program;
/// returns its exit code.
pub fn entry(main: fn() -> u8) -> u8 {
    let _ = MAIN.set(main);
    match service_dispatcher::start("doca_socket_relay", ffi_service_main) {
        Ok(()) => EXIT.load(Ordering::SeqCst),
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(NOT_A_SERVICE) => main(),
        Err(e) => {
            eprintln!("doca_socket_relay: note: not running as a service ({e})");
            main()
        }
    }
}

fn service_main(args: Vec<OsString>) {
    // The SCM passes the service's name first.
    let name = args
        .first()
        .cloned()
        .unwrap_or_else(|| "doca_socket_relay".into());
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            STOP_ASKED.store(true, Ordering::SeqCst);
            STOP.notify(usize::MAX);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(&name, handler) else {
        return;
    };
    *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    report(ServiceState::StartPending, ServiceExitCode::NO_ERROR);
    log_to_file(&name);
    let code = MAIN.get().map_or(1, |main| main());
    EXIT.store(code, Ordering::SeqCst);
    let exit = match code {
        0 => ServiceExitCode::NO_ERROR,
        n => ServiceExitCode::ServiceSpecific(n.into()),
    };
    report(ServiceState::Stopped, exit);
}

/// Points stderr at `%ProgramData%\doca-socket-relay\NAME.log`; without it log lines are lost.
fn log_to_file(name: &OsString) {
    use std::os::windows::io::IntoRawHandle;
    let dir = std::env::var_os("ProgramData")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "C:\\ProgramData".into())
        .join("doca-socket-relay");
    let mut file = name.clone();
    file.push(".log");
    let opened = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(file))
    });
    if let Ok(f) = opened {
        // The handle stays open for the life of the process, as a console's stderr would.
        let handle = f.into_raw_handle();
        // SAFETY: a valid handle this process owns from now on; SetStdHandle only records it.
        unsafe {
            windows_sys::Win32::System::Console::SetStdHandle(
                windows_sys::Win32::System::Console::STD_ERROR_HANDLE,
                handle as windows_sys::Win32::Foundation::HANDLE,
            );
        }
    }
}

/// Tells the SCM the state, when running as a service.
fn report(state: ServiceState, exit_code: ServiceExitCode) {
    let Some(handle) = *STATUS.lock().unwrap_or_else(|e| e.into_inner()) else {
        return;
    };
    let controls_accepted = match state {
        ServiceState::Running => ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        _ => ServiceControlAccept::empty(),
    };
    let _ = handle.set_service_status(ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint: 0,
        // Start-up waits for the channel at most this long before READY; the drain takes
        // up to 3 s.
        wait_hint: Duration::from_secs(15),
        process_id: None,
    });
}

/// The relay is serving: the socket is bound and the channel is up or being retried.
pub fn ready(_status: &str) {
    report(ServiceState::Running, ServiceExitCode::NO_ERROR);
}

/// The service manager shows no status line: nothing to send.
pub fn send_status(_line: &str) {}

/// A reload started: Windows has none (no SIGHUP), so nothing to tell.
pub fn reloading() {}

/// A reload is over: nothing to tell the service manager.
pub fn reloaded(_status: &str) {}

/// The relay is shutting down.
pub fn stopping() {
    report(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
}

/// The SCM has no status text, so no status line is wanted.
pub fn wants_status() -> bool {
    false
}

/// There is no watchdog on Windows.
pub fn watchdog_period() -> Option<Duration> {
    None
}

/// There is no watchdog on Windows: nothing to tell.
pub fn watchdog_ping() {}

/// Stderr is never the systemd journal on Windows.
pub fn stderr_is_journal() -> bool {
    false
}

/// Resolves when the SCM asks the service to stop (Stop, or Shutdown of the machine); never
/// from a console.
pub async fn stop_requested() -> Option<&'static str> {
    loop {
        if STOP_ASKED.load(Ordering::SeqCst) {
            return Some("service stop request");
        }
        let listener = STOP.listen();
        if STOP_ASKED.load(Ordering::SeqCst) {
            return Some("service stop request");
        }
        listener.await;
    }
}
