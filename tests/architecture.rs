//! The layers of src/: every `crate::` path in a top-level module names a module below it, so
//! the import graph has no cycle and the code reads from the bottom up. `cargo test
//! architecture` runs these; docs/DESIGN.md draws the same layers.
//!
//! Test code follows the same rule (a module's tests use only it and what is below it);
//! comments, doc links included, are left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules, bottom first. A module may import only from modules before it.
const LAYERS: &[&str] = &[
    "error",     // the typed error at the edges
    "sys",       // platform code: event loop, AF_UNIX sockets, service manager, signals
    "logging",   // log sinks, the log flood limiter, text helpers for log lines
    "wire",      // frames, HELLO, sealed records, security modes: pure encode/decode
    "counters",  // typed reasons and the counters `--metrics` shows
    "config",    // flags, JSON, key files, the live settings
    "doca",      // DOCA FFI, devices, the worker-thread bridge, both backends
    "link",      // Transport and the frame reader
    "handshake", // HELLO/AUTH exchange, key proofs, Noise, this process's identity
    "mux",       // session, streams, flow control, the per-connection pump
    "roles",     // host, DPU (gate, rate limits, takeover), the drain
    "ops",       // the run, metrics, reload, status, statistics dump, --check
];

/// One `crate::` path that points at a module not below its file's module.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    from: String,
    to: String,
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// Removes `//` comments (doc comments included: a link upward in prose is not an import)
/// and `/* … */` blocks. String literals holding `//` are rare enough here to ignore.
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        rest = rest[at..]
            .find("*/")
            .map_or("", |end| &rest[at + end + 2..]);
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::`, including inside
/// `crate::{a, b::c}` groups.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let code = strip_comments(text);
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut part = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    found.insert(ident(&part));
                    part.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    part.push(c);
                }
            }
        } else {
            found.insert(ident(after));
        }
    }
    found.remove("");
    found
}

/// The top-level module a file under src/ belongs to (`None` for the crate roots).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        f => Some(f.strip_suffix(".rs").unwrap_or(f).to_string()),
    }
}

/// Checks one file's text; `rel` is its path under src/.
fn check_file(rel: &Path, text: &str) -> Vec<Violation> {
    let Some(from) = module_of(rel) else {
        return Vec::new();
    };
    let from_rank = rank(&from);
    imported_modules(text)
        .into_iter()
        .filter(|to| *to != from)
        .filter(|to| match (from_rank, rank(to)) {
            (Some(f), Some(t)) => t >= f,
            // An unplaced module (or a name this test does not know) must be placed first.
            _ => true,
        })
        .map(|to| Violation {
            file: rel.display().to_string(),
            from: from.clone(),
            to,
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn architecture_imports_point_down() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 40, "read only {} files", files.len());
    let mut violations = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(src()).unwrap();
        violations.extend(check_file(rel, &std::fs::read_to_string(path).unwrap()));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "{}: `{}` imports `crate::{}`, which is not below it",
                v.file, v.from, v.to
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "imports that do not point down (layers, bottom first: {LAYERS:?}):\n{}",
        report.join("\n")
    );
}

#[test]
fn architecture_every_module_is_placed() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        // Top-level declarations only (not indented): the Windows stand-in's inner `mod`s
        // are not layers.
        .filter_map(|l| {
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches([';', '{', ' ']))
        .collect();
    let placed: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(
        declared, placed,
        "every module of lib.rs has its layer here"
    );
}

#[test]
fn architecture_check_catches_an_upward_import() {
    // The wire format naming a role: the kind of import this test exists to refuse.
    let text = "use crate::wire::Frame;\nuse crate::roles::host;\n";
    assert_eq!(
        check_file(Path::new("wire/mod.rs"), text),
        vec![Violation {
            file: "wire/mod.rs".into(),
            from: "wire".into(),
            to: "roles".into(),
        }]
    );
    // Groups, same-layer imports and unknown modules.
    let grouped = "use crate::{config::Role, mux::Stats};";
    let v = check_file(Path::new("handshake/mod.rs"), grouped);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].to, "mux");
    assert!(check_file(Path::new("mux/stats.rs"), "use crate::link::Transport;").is_empty());
    assert!(!check_file(Path::new("link/mod.rs"), "use crate::handshake::Agreed;").is_empty());
    assert!(!check_file(Path::new("nowhere.rs"), "use crate::error::Error;").is_empty());
}

#[test]
fn architecture_check_reads_tests_and_skips_comments() {
    let text = "//! See [`crate::ops`].\nuse crate::error::Error;\n/* crate::roles */\n\
                fn g() -> crate::error::Error { todo!() }\n";
    assert_eq!(check_file(Path::new("sys/mod.rs"), text), vec![]);
    // A test module is code like any other.
    let tests = format!("{text}#[cfg(test)]\nmod tests {{\n    use crate::mux::Session;\n}}\n");
    assert_eq!(check_file(Path::new("sys/mod.rs"), &tests).len(), 1);
    assert_eq!(
        check_file(Path::new("sys/tests.rs"), "use crate::mux::x;").len(),
        1
    );
}
