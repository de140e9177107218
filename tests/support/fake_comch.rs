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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

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

const SOURCES: [&str; 4] = [
    "fake_comch.h",
    "fake_comch_common.c",
    "fake_comch.c",
    "exports.map",
];

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

/// The directory holding the C sources.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_comch")
}

/// Architecture of the machine the tests run on (the real one, even under qemu-user, whose
/// emulated uname(2) reports the guest: the `uname` program runs natively).
fn host_arch() -> String {
    match Command::new("uname").arg("-m").output() {
        Ok(o) if o.status.success() => match String::from_utf8_lossy(&o.stdout).trim() {
            "arm64" => "aarch64".to_string(),
            "amd64" => "x86_64".to_string(),
            "" => std::env::consts::ARCH.to_string(),
            m => m.to_string(),
        },
        _ => std::env::consts::ARCH.to_string(),
    }
}

/// The C compiler for the test binary's target.
fn compiler() -> String {
    if let Ok(cc) = std::env::var("CC") {
        if !cc.trim().is_empty() {
            return cc;
        }
    }
    let target = std::env::consts::ARCH;
    if host_arch() == target {
        "cc".to_string()
    } else {
        format!("{target}-linux-gnu-gcc")
    }
}

fn flags(api: ComchApi) -> Vec<String> {
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
    .chain([format!("-DFAKE_COMCH_API={}", api.number())])
    .collect()
}

/// 64-bit FNV-1a, a stable fingerprint for the build directory name.
fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("fake Comch: cannot run {cmd:?} ({what}): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "fake Comch: building {what} failed ({}):\n{cmd:?}\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if !stderr.trim().is_empty() {
        eprintln!("fake Comch: warnings building {what}:\n{stderr}");
    }
}

fn build_uncached(api: ComchApi) -> PathBuf {
    let src = source_dir();
    let cc = compiler();
    let flags = flags(api);

    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, cc.as_bytes());
    for f in &flags {
        fnv1a(&mut h, f.as_bytes());
    }
    for name in SOURCES {
        let path = src.join(name);
        let text = fs::read(&path)
            .unwrap_or_else(|e| panic!("fake Comch: reading {}: {e}", path.display()));
        fnv1a(&mut h, name.as_bytes());
        fnv1a(&mut h, &text);
    }

    let arch = std::env::consts::ARCH;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("fake-comch-{}-{arch}-{h:016x}", api.number()));
    if dir.join(COMCH_LIB).is_file() && dir.join(COMMON_LIB).is_file() {
        return dir; // complete: directories appear only by rename
    }

    fs::create_dir_all(root).expect("creating CARGO_TARGET_TMPDIR");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = root.join(format!(
        ".fake-comch-{}-{}-{nanos}.tmp",
        api.number(),
        std::process::id()
    ));
    fs::create_dir_all(&tmp).expect("creating the fake Comch build directory");

    let version_script = format!("-Wl,--version-script={}", src.join("exports.map").display());
    let common = tmp.join(COMMON_LIB);
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{COMMON_LIB}"))
            .arg(&version_script)
            .arg("-o")
            .arg(&common)
            .arg(src.join("fake_comch_common.c")),
        COMMON_LIB,
    );
    // Linking the common library by path records its SONAME as NEEDED.
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{COMCH_LIB}"))
            .arg(&version_script)
            .arg("-o")
            .arg(tmp.join(COMCH_LIB))
            .arg(src.join("fake_comch.c"))
            .arg("-Wl,--no-as-needed")
            .arg(&common),
        COMCH_LIB,
    );
    let _ = std::os::unix::fs::symlink(COMMON_LIB, tmp.join("libdoca_common.so"));
    let _ = std::os::unix::fs::symlink(COMCH_LIB, tmp.join("libdoca_comch.so"));

    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process finished the same build first; use theirs.
        Err(_) if dir.join(COMCH_LIB).is_file() => {
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => panic!(
            "fake Comch: moving {} to {}: {e}",
            tmp.display(),
            dir.display()
        ),
    }
    dir
}
