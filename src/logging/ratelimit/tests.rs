//! Each test works on a table of its own: the process-wide one is shared by tests running at
//! once.

use super::*;

fn say(t: &mut Table, kind: Kind, now: Instant, text: &str) -> bool {
    matches!(
        decide(t, kind, log::Level::Warn, now, &format_args!("{text}")),
        Verdict::Full(_)
    )
}

#[test]
fn kinds_ignore_numbers() {
    assert_eq!(
        kind_of("stream 7: cannot connect: Permission denied (os error 13)"),
        kind_of("stream 812: cannot connect: Permission denied (os error 13)")
    );
    assert_ne!(
        kind_of("cannot connect: Permission denied"),
        kind_of("cannot connect: Connection refused")
    );
}

#[test]
fn repeats_are_held_counted_and_dated() {
    let mut t = Table::default();
    let start = Instant::now();
    assert!(say(&mut t, Kind::ClientLimit, start, "first"));
    assert!(!say(&mut t, Kind::ClientLimit, start, "second"));
    assert!(!say(&mut t, Kind::ClientLimit, start, "third"));
    // Another kind is not held back by this one.
    assert!(say(&mut t, Kind::Accept, start, "other"));
    let e = &t.kinds[&Kind::ClientLimit];
    assert_eq!(e.held, 2);
    assert_eq!(e.last.as_ref().map(|l| l.1.as_str()), Some("third"));
    // Not due yet: the window has not passed.
    assert!(due(&mut t, start, false).is_empty());
    let later = start + window() + Duration::from_secs(1);
    let lines = due(&mut t, later, false);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0].1;
    assert!(
        line.starts_with("held back since ")
            && line.contains(&format!(
                "s ago): 2 more like \"third\", the last {} s ago",
                window().as_secs() + 1
            )),
        "{line}"
    );
    assert_eq!(t.kinds[&Kind::ClientLimit].held, 0);
    // At exit every count is logged, due or not.
    say(&mut t, Kind::ClientLimit, later, "again");
    assert!(!say(&mut t, Kind::ClientLimit, later, "fourth"));
    assert!(due(&mut t, later, false).is_empty());
    assert_eq!(due(&mut t, later, true).len(), 1);
}

#[test]
fn the_next_full_line_carries_the_count() {
    let mut t = Table::default();
    let start = Instant::now();
    assert!(say(&mut t, Kind::NoChannel, start, "a"));
    for _ in 0..9_999 {
        say(&mut t, Kind::NoChannel, start, "b");
    }
    let later = start + window();
    match decide(
        &mut t,
        Kind::NoChannel,
        log::Level::Warn,
        later,
        &format_args!("c"),
    ) {
        Verdict::Full(Some(held)) => {
            let text = held.to_string();
            assert!(text.starts_with("9,999 more like this since "), "{text}");
            assert!(
                text.ends_with(&format!("Z, {} s ago", window().as_secs())),
                "{text}"
            );
        }
        _ => panic!("expected a full line with a count"),
    }
}

#[test]
fn new_peer_kinds_are_capped() {
    let mut t = Table::default();
    let start = Instant::now();
    assert!(say(&mut t, Kind::Peer("one".into()), start, "one"));
    // A different text within the second: held, yet remembered for the summary.
    assert!(!say(&mut t, Kind::Peer("two".into()), start, "two"));
    assert_eq!(t.kinds[&Kind::Peer("two".into())].held, 1);
    // Other kinds are not capped.
    assert!(say(&mut t, Kind::Accept, start, "mine"));
    assert!(say(
        &mut t,
        Kind::Peer("three".into()),
        start + PEER_KIND_GAP,
        "three"
    ));
}

#[test]
fn the_table_is_bounded() {
    let mut t = Table::default();
    let now = Instant::now();
    for i in 0..(MAX_KINDS + 10) {
        say(&mut t, Kind::Peer(format!("kind {i:x}")), now, "x");
    }
    assert!(t.kinds.len() <= MAX_KINDS);
}

#[test]
fn counts_and_clock_read_well() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(18_306), "18,306");
    assert_eq!(thousands(1_234_567), "1,234,567");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(80_043);
    assert_eq!(clock(t), "22:14:03Z");
}
