//! Builds the fake DOCA libraries (`tests/fake_doca/*.c`) for the tests.
//!
//! Include with `#[path = "support/fake_doca.rs"] mod fake_doca;` and put the directory returned
//! by [`build`] into `LD_LIBRARY_PATH` of the process that loads `libdoca_common.so.2` and
//! `libdoca_comm_channel.so.2` by SONAME.
//!
//! The compiler is `$CC` if set, else `cc` when the test binary runs on its build host's
//! architecture, else `<arch>-linux-gnu-gcc` (e.g. `aarch64-linux-gnu-gcc` for aarch64 tests run
//! under qemu-user). The output directory is named after a hash of the sources, compiler and
//! flags, built under a private temporary name and renamed into place, so concurrent test
//! processes never see a half-written build and rebuild only when something changed.
#![allow(dead_code)]

// Both fakes include the shared builder, and test crates include one fake or both.
#[allow(clippy::duplicate_mod)]
#[path = "cbuild.rs"]
mod cbuild;

use std::path::PathBuf;
use std::sync::OnceLock;

/// Which generation of the DOCA device/error API names the libraries export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// DOCA 2.2 names: `doca_devinfo_list_create`, `doca_get_error_string`, ...
    V22,
    /// DOCA 2.7 names: `doca_devinfo_create_list`, `doca_error_get_descr`, ...
    V27,
}

impl Api {
    /// The value of `-DFAKE_DOCA_API`.
    pub fn number(self) -> u32 {
        match self {
            Api::V22 => 22,
            Api::V27 => 27,
        }
    }
}

/// File name of the fake common library (its SONAME).
pub const COMMON_LIB: &str = "libdoca_common.so.2";
/// File name of the fake Comm Channel library (its SONAME).
pub const CC_LIB: &str = "libdoca_comm_channel.so.2";

/// Builds (once per process and flavour) both fake libraries and returns their directory.
///
/// Panics with the compiler's output when the build fails.
pub fn build(api: Api) -> PathBuf {
    static V22: OnceLock<PathBuf> = OnceLock::new();
    static V27: OnceLock<PathBuf> = OnceLock::new();
    let cell = match api {
        Api::V22 => &V22,
        Api::V27 => &V27,
    };
    cell.get_or_init(|| build_uncached(api)).clone()
}

fn build_uncached(api: Api) -> PathBuf {
    cbuild::build(&cbuild::Spec {
        name: "fake-doca",
        dir: "fake_doca",
        sources: &[
            "fake_doca.h",
            "fake_common.c",
            // Shared with the other fake; #included by the common source and the header.
            "../fake_common/fake_devices.h",
            "../fake_common/fake_devices.c",
            "fake_comm_channel.c",
            "exports.map",
        ],
        define: format!("FAKE_DOCA_API={}", api.number()),
        flavour: api.number(),
        common: (COMMON_LIB, "fake_common.c"),
        channel: (CC_LIB, "fake_comm_channel.c"),
    })
}
