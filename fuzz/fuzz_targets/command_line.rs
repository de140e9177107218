//! The command line: arbitrary argument vectors (NUL-separated in the input) through the same
//! parser `main` uses. Errors must be one line with exit code 2; nothing may panic.

#![no_main]

use doca_socket_relay::config::cli;
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    // --json and --psk-file name files that are read: keep the fuzzer away from devices and
    // kernel files (a FIFO or /dev/zero would block or never end, which is not the parser's
    // doing). Relative paths resolve inside fuzz/, which holds only this crate.
    if data
        .windows(5)
        .any(|w| w == b"/dev/" || w == b"/proc" || w == b"/sys/")
    {
        return;
    }
    if let Err(e) = cli::parse(args) {
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
});
