//! The JSON flag file: parsing (comments, unknown and duplicate keys, every value type) and
//! the validation pass. Errors must be one line; nothing may panic.

#![no_main]

use doca_socket_relay::config::{Config, FlagFile};
use doca_socket_relay::Error;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let file = match FlagFile::parse(data) {
        Ok(f) => f,
        Err(e) => {
            // As the binary shows it: through the error type, which escapes control characters
            // (a JSON key or value may hold an escaped line break).
            let shown = Error::config(e).to_string();
            assert!(!shown.contains('\n'), "a multi-line error: {shown:?}");
            return;
        }
    };
    let mut program = file.doca_program_flags;
    // The key file is read from disk: point any given path at one the harness controls, so
    // the fuzzer never opens an arbitrary file (tests/keyfile.rs covers the file checks).
    if program.psk_file.is_some() {
        program.psk_file = Some(PathBuf::from("/nonexistent/fuzz.key"));
    }
    let key = |name: &str| format!("doca_program_flags.{name}");
    if let Err(e) = Config::validate(file.doca_general_flags, program, &key) {
        assert_eq!(e.exit_code(), 2);
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
});
