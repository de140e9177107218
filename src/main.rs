//! `doca_socket_relay`: parses the command line, sets up logging and runs the relay.

use doca_socket_relay::cli::{self, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("doca_socket_relay: error: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let config = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("doca_socket_relay {}", env!("CARGO_PKG_VERSION"));
            println!("{}", doca_socket_relay::doca::installed());
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => config,
    };
    doca_socket_relay::logging::init(config.log_level, &config.log_target);
    let to_syslog = config.log_target != doca_socket_relay::config::LogTarget::Stderr;
    let code = match doca_socket_relay::run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if to_syslog {
                log::error!("{e}");
            }
            eprintln!("doca_socket_relay: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    };
    // The syslog writer runs on its own thread; let it hand over the last lines.
    log::logger().flush();
    code
}
