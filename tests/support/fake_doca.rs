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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

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

const SOURCES: [&str; 4] = [
    "fake_doca.h",
    "fake_common.c",
    "fake_comm_channel.c",
    "exports.map",
];

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

/// The directory holding the C sources.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_doca")
}

/// Architecture of the machine the tests run on (the real one, even under qemu-user).
fn host_arch() -> String {
    // Under qemu-user the emulated uname(2) reports the guest architecture, but the `uname`
    // program is a host binary run natively, so ask it.
    let out = Command::new("uname").arg("-m").output();
    match out {
        Ok(o) if o.status.success() => {
            let m = String::from_utf8_lossy(&o.stdout).trim().to_string();
            match m.as_str() {
                "arm64" => "aarch64".to_string(),
                "amd64" => "x86_64".to_string(),
                "" => std::env::consts::ARCH.to_string(),
                _ => m,
            }
        }
        _ => std::env::consts::ARCH.to_string(),
    }
}

/// The C compiler to use for the test binary's target.
fn compiler() -> String {
    if let Ok(cc) = std::env::var("CC") {
        if !cc.trim().is_empty() {
            return cc;
        }
    }
    let target = std::env::consts::ARCH;
    if host_arch() == target {
        "cc".to_string()
    } else if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu-gcc".to_string()
    } else {
        format!("{target}-linux-gnu-gcc")
    }
}

fn base_flags(api: Api) -> Vec<String> {
    [
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-O2",
        "-g",
        "-fPIC",
        "-shared",
        "-D_GNU_SOURCE",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("-DFAKE_DOCA_API={}", api.number())])
    .collect()
}

/// 64-bit FNV-1a: a stable fingerprint for the build directory name.
fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("fake DOCA: cannot run {cmd:?} ({what}): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "fake DOCA: building {what} failed ({}):\n{cmd:?}\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if !stderr.trim().is_empty() {
        eprintln!("fake DOCA: warnings building {what}:\n{stderr}");
    }
}

fn build_uncached(api: Api) -> PathBuf {
    let src = source_dir();
    let cc = compiler();
    let flags = base_flags(api);

    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, cc.as_bytes());
    for f in &flags {
        fnv1a(&mut h, f.as_bytes());
    }
    for name in SOURCES {
        let path = src.join(name);
        let text = fs::read(&path)
            .unwrap_or_else(|e| panic!("fake DOCA: reading {}: {e}", path.display()));
        fnv1a(&mut h, name.as_bytes());
        fnv1a(&mut h, &text);
    }

    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!(
        "fake-doca-{}-{}-{h:016x}",
        api.number(),
        std::env::consts::ARCH
    ));
    if dir.join(CC_LIB).is_file() && dir.join(COMMON_LIB).is_file() {
        return dir; // a complete build: directories appear only by rename
    }

    fs::create_dir_all(root).expect("creating CARGO_TARGET_TMPDIR");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = root.join(format!(
        ".fake-doca-{}-{}-{}.tmp",
        api.number(),
        std::process::id(),
        nanos
    ));
    fs::create_dir_all(&tmp).expect("creating the fake DOCA build directory");

    let map = src.join("exports.map");
    let version_script = format!("-Wl,--version-script={}", map.display());
    let common = tmp.join(COMMON_LIB);
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{COMMON_LIB}"))
            .arg(&version_script)
            .arg("-o")
            .arg(&common)
            .arg(src.join("fake_common.c")),
        COMMON_LIB,
    );
    // Linking the common library by its full path records its SONAME as NEEDED.
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{CC_LIB}"))
            .arg(&version_script)
            .arg("-o")
            .arg(tmp.join(CC_LIB))
            .arg(src.join("fake_comm_channel.c"))
            .arg("-Wl,--no-as-needed")
            .arg(&common),
        CC_LIB,
    );
    // Plain development names too, for anyone linking with -ldoca_common / -ldoca_comm_channel.
    let _ = std::os::unix::fs::symlink(COMMON_LIB, tmp.join("libdoca_common.so"));
    let _ = std::os::unix::fs::symlink(CC_LIB, tmp.join("libdoca_comm_channel.so"));

    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process finished the same build first; use theirs.
        Err(_) if dir.join(CC_LIB).is_file() => {
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => panic!(
            "fake DOCA: moving {} to {}: {e}",
            tmp.display(),
            dir.display()
        ),
    }
    dir
}
