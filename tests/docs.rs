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

/// `text` with every run of whitespace as one space, so that a phrase may wrap across lines.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The limits docs/SECURITY.md and docs/PROTOCOL.md state are the code's: each phrase is built
/// from the constant it names, so changing one without the documents fails here.
#[test]
fn security_md_states_the_codes_limits() {
    use doca_socket_relay::link::HANDSHAKE_BUF;
    use doca_socket_relay::roles::dpu::{gate, rate, FIRST_BYTES_TIMEOUT};
    use doca_socket_relay::wire::{MAX_AUTH_PAYLOAD, MAX_CONTROL_PAYLOAD, MAX_REASON, VERSION};
    use doca_socket_relay::wire::{STREAM_MAX_MSG, STREAM_WINDOW};
    let mib = |n: u32| n >> 20;
    let security = one_line(&repo_file("docs/SECURITY.md"));
    let phrases = [
        format!("(protocol version {VERSION})"),
        format!("names version {VERSION}"),
        format!("AUTH payloads at most {MAX_AUTH_PAYLOAD} bytes"),
        format!("HELLO, ERROR and GOAWAY payloads at most {MAX_CONTROL_PAYLOAD} bytes"),
        format!("messages of at most {} MiB", mib(STREAM_MAX_MSG)),
        format!("receive window of {} MiB", mib(STREAM_WINDOW)),
        format!("through a {} KiB buffer", HANDSHAKE_BUF / 1024),
        format!("not the full {} MiB", mib(2 * STREAM_MAX_MSG)),
        format!(
            "{} handshakes a second per source address, bursts of {}",
            rate::PER_ADDRESS_RATE,
            rate::PER_ADDRESS_BURST
        ),
        format!(
            "{} a second from all addresses together, bursts of {}",
            rate::GLOBAL_RATE,
            rate::GLOBAL_BURST
        ),
        format!("held unanswered for {} s", rate::HOLD.as_secs()),
        format!(
            "at most {} connections in their handshake",
            gate::MAX_HANDSHAKES
        ),
        format!("sends nothing within {} s", FIRST_BYTES_TIMEOUT.as_secs()),
        format!(
            "handshake within {} s",
            doca_socket_relay::roles::host::HANDSHAKE_TIMEOUT.as_secs()
        ),
        format!(
            "(default {})",
            doca_socket_relay::config::DEFAULT_MAX_CLIENTS
        ),
        format!(
            "answers a PING within {} s",
            doca_socket_relay::roles::dpu::takeover::PROBE_TIMEOUT.as_secs()
        ),
    ];
    let missing: Vec<_> = phrases.iter().filter(|p| !security.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "docs/SECURITY.md does not say {missing:?}"
    );

    let protocol = one_line(&repo_file("docs/PROTOCOL.md"));
    let phrases = [
        format!("wire protocol, version {VERSION}"),
        format!("version u16 (={VERSION})"),
        format!("payload length (≤ {MAX_AUTH_PAYLOAD})"),
        format!("at most {MAX_REASON} bytes"),
        format!("a {} KiB buffer", HANDSHAKE_BUF / 1024),
        format!(
            "({} a second, bursts of {};",
            rate::PER_ADDRESS_RATE,
            rate::PER_ADDRESS_BURST
        ),
        format!(
            "({} a second, bursts of {})",
            rate::GLOBAL_RATE,
            rate::GLOBAL_BURST
        ),
        format!("held for {} s", rate::HOLD.as_secs()),
        format!("At most {} connections", gate::MAX_HANDSHAKES),
    ];
    let missing: Vec<_> = phrases.iter().filter(|p| !protocol.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md does not say {missing:?}"
    );
}
