//! Builds the fake DOCA Comch libraries (`tests/fake_comch/*.c`) for the tests.
//!
//! Include with `#[path = "support/fake_comch.rs"] mod fake_comch;` and put the directory
//! returned by [`build`] into `LD_LIBRARY_PATH` of the process that loads `libdoca_comch.so.2`
//! and `libdoca_common.so.2` by SONAME (or load them by full path).
//!
//! Compiler: `$CC` if set, else `cc` when the test binary runs on its build host's
//! architecture, else `<arch>-linux-gnu-gcc` (e.g. `aarch64-linux-gnu-gcc` under qemu-user).
//! The output directory `$CARGO_TARGET_TMPDIR/fake-comch-<api>-<arch>-<hash>` is named after a
//! hash of the sources, compiler and flags, and is built under a private name and renamed into
//! place, so concurrent test processes never see a half-written build.
#![allow(dead_code)]

// Both fakes include the shared builder, and test crates include one fake or both.
#[allow(clippy::duplicate_mod)]
#[path = "cbuild.rs"]
mod cbuild;

use std::path::PathBuf;
use std::sync::OnceLock;

/// Which connection-event registration name the Comch library exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComchApi {
    /// DOCA 2.9+: `doca_comch_server_event_connection_status_changed_register`.
    V29,
    /// DOCA 2.7/2.8: `doca_comch_server_event_connection_register`.
    V27,
}

impl ComchApi {
    /// The value of `-DFAKE_COMCH_API`.
    pub fn number(self) -> u32 {
        match self {
            ComchApi::V29 => 29,
            ComchApi::V27 => 27,
        }
    }
}

/// File name (and SONAME) of the fake common library.
pub const COMMON_LIB: &str = "libdoca_common.so.2";
/// File name (and SONAME) of the fake Comch library.
pub const COMCH_LIB: &str = "libdoca_comch.so.2";

/// Builds (once per process and flavour) both fake libraries and returns their directory.
///
/// Panics with the compiler's output when the build fails.
pub fn build(api: ComchApi) -> PathBuf {
    static V29: OnceLock<PathBuf> = OnceLock::new();
    static V27: OnceLock<PathBuf> = OnceLock::new();
    let cell = match api {
        ComchApi::V29 => &V29,
        ComchApi::V27 => &V27,
    };
    cell.get_or_init(|| build_uncached(api)).clone()
}

fn build_uncached(api: ComchApi) -> PathBuf {
    cbuild::build(&cbuild::Spec {
        name: "fake-comch",
        dir: "fake_comch",
        sources: &[
            "fake_comch.h",
            "fake_comch_common.c",
            // Shared with the other fake; #included by the common source and the header.
            "../fake_common/fake_devices.h",
            "../fake_common/fake_devices.c",
            "fake_comch.c",
            "exports.map",
        ],
        define: format!("FAKE_COMCH_API={}", api.number()),
        flavour: api.number(),
        common: (COMMON_LIB, "fake_comch_common.c"),
        channel: (COMCH_LIB, "fake_comch.c"),
    })
}
