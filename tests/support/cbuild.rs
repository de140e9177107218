//! Builds a pair of fake DOCA shared libraries (a `libdoca_common` and the channel library that
//! needs it) from C sources under `tests/`, for the tests. Shared by `fake_doca.rs` and
//! `fake_comch.rs`.
//!
//! Compiler: `$CC` if set, else `cc` when the test binary runs on its build host's
//! architecture, else `<arch>-linux-gnu-gcc` (e.g. `aarch64-linux-gnu-gcc` under qemu-user).
//! The output directory `$CARGO_TARGET_TMPDIR/<name>-<flavour>-<arch>-<hash>` is named after a
//! hash of the sources, compiler and flags, and is built under a private name and renamed into
//! place, so concurrent test processes never see a half-written build.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// What to build.
pub struct Spec {
    /// Directory name prefix and message prefix, e.g. `fake-doca`.
    pub name: &'static str,
    /// Source directory under `tests/`.
    pub dir: &'static str,
    /// Every file whose content must change the build (sources, headers, the version script),
    /// relative to `dir` (`../<folder>/<file>` for one #included from another folder).
    pub sources: &'static [&'static str],
    /// `-D` define selecting the API flavour, e.g. `FAKE_DOCA_API=22`.
    pub define: String,
    /// Flavour number for the directory name.
    pub flavour: u32,
    /// (SONAME, source) of the common library.
    pub common: (&'static str, &'static str),
    /// (SONAME, source) of the channel library, linked against the common one.
    pub channel: (&'static str, &'static str),
}

/// Architecture of the machine the tests run on (the real one, even under qemu-user).
fn host_arch() -> String {
    // Under qemu-user the emulated uname(2) reports the guest architecture, but the `uname`
    // program is a host binary run natively, so ask it.
    match Command::new("uname").arg("-m").output() {
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
    } else {
        format!("{target}-linux-gnu-gcc")
    }
}

/// 64-bit FNV-1a: a stable fingerprint for the build directory name.
fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn run(cmd: &mut Command, name: &str, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{name}: cannot run {cmd:?} ({what}): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "{name}: building {what} failed ({}):\n{cmd:?}\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if !stderr.trim().is_empty() {
        eprintln!("{name}: warnings building {what}:\n{stderr}");
    }
}

/// Builds both libraries (or finds a complete earlier build) and returns their directory.
/// Panics with the compiler's output when the build fails.
pub fn build(spec: &Spec) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(spec.dir);
    let cc = compiler();
    let flags: Vec<String> = [
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
    .chain([format!("-D{}", spec.define)])
    .collect();

    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, cc.as_bytes());
    for f in &flags {
        fnv1a(&mut h, f.as_bytes());
    }
    for name in spec.sources {
        let path = src.join(name);
        let text = fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: reading {}: {e}", spec.name, path.display()));
        fnv1a(&mut h, name.as_bytes());
        fnv1a(&mut h, &text);
    }

    let (common_lib, common_src) = spec.common;
    let (channel_lib, channel_src) = spec.channel;
    let arch = std::env::consts::ARCH;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("{}-{}-{arch}-{h:016x}", spec.name, spec.flavour));
    if dir.join(channel_lib).is_file() && dir.join(common_lib).is_file() {
        return dir; // complete: directories appear only by rename
    }

    fs::create_dir_all(root).expect("creating CARGO_TARGET_TMPDIR");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = root.join(format!(
        ".{}-{}-{}-{nanos}.tmp",
        spec.name,
        spec.flavour,
        std::process::id()
    ));
    fs::create_dir_all(&tmp).expect("creating the build directory");

    let version_script = format!("-Wl,--version-script={}", src.join("exports.map").display());
    let common = tmp.join(common_lib);
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{common_lib}"))
            .arg(&version_script)
            .arg("-o")
            .arg(&common)
            .arg(src.join(common_src)),
        spec.name,
        common_lib,
    );
    // Linking the common library by its full path records its SONAME as NEEDED.
    run(
        Command::new(&cc)
            .args(&flags)
            .arg(format!("-Wl,-soname,{channel_lib}"))
            .arg(&version_script)
            .arg("-o")
            .arg(tmp.join(channel_lib))
            .arg(src.join(channel_src))
            .arg("-Wl,--no-as-needed")
            .arg(&common),
        spec.name,
        channel_lib,
    );
    // Plain development names too, for anyone linking with -l.
    for lib in [common_lib, channel_lib] {
        let dev_name = lib.split(".so").next().unwrap_or(lib);
        let _ = std::os::unix::fs::symlink(lib, tmp.join(format!("{dev_name}.so")));
    }

    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process finished the same build first; use theirs.
        Err(_) if dir.join(channel_lib).is_file() => {
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => panic!(
            "{}: moving {} to {}: {e}",
            spec.name,
            tmp.display(),
            dir.display()
        ),
    }
    dir
}
