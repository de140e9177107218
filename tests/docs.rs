//! The documentation cannot drift from the binary: every flag `--help` prints is in the man
//! page and the reverse, `-h` says what a first-time user needs, and both packages ship the man
//! page and the changelog.

// These tests drive the Linux binary over AF_UNIX sockets; the Windows build runs the unit
// tests and scripts/windows.sh instead.
#![cfg(unix)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn help() -> String {
    let dir = tempdir();
    let (st, out, err) = run_relay(dir.path(), &["--help"], Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{err}");
    out
}

/// Every `--long-flag` and every `-x` short flag (as a whole word) in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i] == b'-' && (i == 0 || !word(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        let flag = &text[i..end];
        let long =
            flag.len() > 3 && flag.starts_with("--") && flag.as_bytes()[2].is_ascii_lowercase();
        let short = flag.len() == 2 && flag.as_bytes()[1].is_ascii_lowercase();
        if long || short {
            out.insert(flag.to_string());
        }
        i = end;
    }
    out
}

/// The man page's text with roff's escaped hyphens (`\-`) as plain ones, comments dropped.
fn man_text() -> String {
    repo_file("docs/doca_socket_relay.1")
        .lines()
        .filter(|l| !l.starts_with(".\\\""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\-", "-")
        .replace("\\fI", " ")
        .replace("\\fR", " ")
}

#[test]
fn man_page_and_help_name_the_same_flags() {
    let in_help = flags(&help());
    let in_man = flags(&man_text());
    assert!(
        in_help.len() >= 20,
        "too few flags found in --help: {in_help:?}"
    );
    let missing: Vec<_> = in_help.difference(&in_man).collect();
    assert!(
        missing.is_empty(),
        "in --help but not in the man page: {missing:?}"
    );
    let extra: Vec<_> = in_man.difference(&in_help).collect();
    assert!(
        extra.is_empty(),
        "in the man page but not in --help: {extra:?}"
    );
}

#[test]
fn help_lists_channels_mandatory_flags_and_level_names() {
    let h = help();
    for want in [
        "comch",
        "comm-channel",
        "tcp:HOST:PORT",
        "unix:PATH",
        "--check",
        "SIGUSR1",
    ] {
        assert!(h.contains(want), "--help should mention {want}:\n{h}");
    }
    for flag in ["-s, --socket PATH", "-n, --cc-name NAME"] {
        let line = h.lines().find(|l| l.contains(flag)).unwrap_or_default();
        assert!(
            line.contains("Mandatory"),
            "{flag} should be marked mandatory:\n{h}"
        );
    }
    for name in [
        "disable", "critical", "error", "warning", "info", "debug", "trace",
    ] {
        assert!(
            h.contains(name),
            "--help should name the level {name}:\n{h}"
        );
    }
}

/// Both packages install the man page and the changelog (cargo-deb gzips both).
#[test]
fn both_packages_ship_man_page_changelog_and_license() {
    let cargo = repo_file("Cargo.toml");
    let deb = &cargo[cargo.find("[package.metadata.deb]").unwrap()..];
    let rpm_at = deb.find("[package.metadata.generate-rpm]").unwrap();
    let (deb, rpm) = deb.split_at(rpm_at);
    for (name, section) in [("deb", deb), ("rpm", rpm)] {
        for source in ["docs/doca_socket_relay.1", "CHANGELOG.md"] {
            assert!(
                section.contains(source),
                "the {name} package does not ship {source}"
            );
        }
    }
    assert!(
        rpm.contains("\"LICENSE\""),
        "the rpm package does not ship LICENSE"
    );
    // The Debian short description (the first line of Description:) is Cargo's description.
    let desc = cargo
        .lines()
        .find_map(|l| l.strip_prefix("description = \""))
        .expect("a description in Cargo.toml");
    assert!(
        desc.len() < 80,
        "Debian's short description must stay under 80: {desc}"
    );
    assert!(repo_file("LICENSE").contains("Apache License"));
    assert!(cargo.contains("license = \"Apache-2.0\""));
}
