//! `doca_socket_relay`: parses the command line, sets up logging and runs the relay (as a
//! Windows service when the service manager started it; see `sys::service::entry`).

use doca_socket_relay::config::cli::{self, Command};
use doca_socket_relay::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(doca_socket_relay::sys::service::entry(relay))
}

/// The program; returns the exit code.
fn relay() -> u8 {
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("doca_socket_relay: error: {e}");
            return e.exit_code() as u8;
        }
    };
    let config = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Command::Version => {
            println!("doca_socket_relay {}", env!("CARGO_PKG_VERSION"));
            println!("{}", doca_socket_relay::doca::installed());
            return 0;
        }
        Command::Run(config) => config,
        Command::Check(config) => return check(&config),
        Command::GenKey(path) => {
            return match doca_socket_relay::config::keygen::generate(&path) {
                Ok(done) => {
                    eprintln!("doca_socket_relay: {done}");
                    0
                }
                Err(e) => {
                    eprintln!("doca_socket_relay: error: {e}");
                    e.exit_code() as u8
                }
            }
        }
    };
    let instance = format!("{}/{}", config.cc_name, config.role);
    logging::init(config.log_level, &config.log_target, &instance);
    let code = match doca_socket_relay::run(*config) {
        Ok(()) => 0,
        Err(e) => {
            // Already reported (before `stopped`) when the relay had started.
            logging::report_fatal(&e);
            e.exit_code() as u8
        }
    };
    // The syslog writer runs on its own thread; let it hand over the last lines.
    log::logger().flush();
    code
}

/// `--check`: what would run on stdout, notes and problems on stderr; exit 0 or 2.
fn check(config: &doca_socket_relay::config::Config) -> u8 {
    let report = doca_socket_relay::ops::check::check(config);
    for line in &report.plan {
        println!("{line}");
    }
    for note in &report.notes {
        eprintln!("doca_socket_relay: note: {note}");
    }
    for problem in &report.problems {
        eprintln!("doca_socket_relay: error: {problem}");
    }
    if report.problems.is_empty() {
        println!("configuration OK");
        0
    } else {
        2
    }
}
