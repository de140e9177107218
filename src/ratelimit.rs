//! Repeated errors, logged once: the first occurrence of a kind in full, later ones within
//! [`WINDOW`] only counted (and logged at DEBUG), and the count reported with the next full
//! line or by [`flush_loop`] once the window has passed.
//!
//! Both roles use it for errors that repeat without anyone acting: a host refused on every
//! retry (wrong key, wrong service name, another host connected) and a DPU side that cannot
//! reach the server application for each client.

use async_io::Timer;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How long repeats of one kind are held back after a full line.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Kinds remembered at once; the oldest is forgotten past this, so peer-chosen text cannot grow
/// the table.
const MAX_KINDS: usize = 64;

struct Entry {
    /// When the last full line was logged.
    logged: Instant,
    /// Repeats held back since then.
    held: u64,
    level: log::Level,
    /// The last message held back, for the summary line.
    last: String,
}

thread_local! {
    // The relay runs on one thread; a thread-local table needs no lock and no plumbing.
    static KINDS: RefCell<HashMap<String, Entry>> = RefCell::new(HashMap::new());
}

/// The kind of a message: its text without digits, so that the same error about another
/// stream id, port or count is the same kind.
pub fn kind_of(msg: &str) -> String {
    msg.chars()
        .filter(|c| !c.is_ascii_digit())
        .take(120)
        .collect()
}

/// Logs `msg` at `level` unless a message of `kind` was logged in full within [`WINDOW`].
pub fn log(level: log::Level, kind: &str, msg: fmt::Arguments<'_>) {
    let now = Instant::now();
    let held = KINDS.with(|k| {
        let mut kinds = k.borrow_mut();
        if let Some(e) = kinds.get_mut(kind) {
            if now.duration_since(e.logged) < WINDOW {
                e.held += 1;
                e.last = msg.to_string();
                return None;
            }
            let held = std::mem::take(&mut e.held);
            e.logged = now;
            return Some(held);
        }
        if kinds.len() >= MAX_KINDS {
            let oldest = kinds
                .iter()
                .min_by_key(|(_, e)| e.logged)
                .map(|(k, _)| k.clone());
            oldest.map(|o| kinds.remove(&o));
        }
        let entry = Entry {
            logged: now,
            held: 0,
            level,
            last: String::new(),
        };
        kinds.insert(kind.to_string(), entry);
        Some(0)
    });
    match held {
        None => log::debug!("{msg} (repeat, held back)"),
        Some(0) => log::log!(level, "{msg}"),
        Some(n) => log::log!(level, "{msg} ({} held back)", repeats(n, WINDOW)),
    }
}

/// Shorthand for [`log`] at WARN with the kind taken from the message.
pub fn warn(msg: fmt::Arguments<'_>) {
    let text = msg.to_string();
    log(log::Level::Warn, &kind_of(&text), format_args!("{text}"));
}

fn repeats(n: u64, window: Duration) -> String {
    let times = if n == 1 { "time" } else { "times" };
    format!(
        "it repeated {n} more {times} in the last {} s",
        window.as_secs()
    )
}

/// Logs the count of every kind whose repeats were held back and whose window has passed, so
/// that a burst that stopped still gets its count. Returns how many lines it logged.
pub fn flush() -> usize {
    let now = Instant::now();
    let due: Vec<(log::Level, String, u64)> = KINDS.with(|k| {
        let mut kinds = k.borrow_mut();
        let due = kinds
            .values_mut()
            .filter(|e| e.held > 0 && now.duration_since(e.logged) >= WINDOW)
            .map(|e| {
                e.logged = now;
                (
                    e.level,
                    std::mem::take(&mut e.last),
                    std::mem::take(&mut e.held),
                )
            })
            .collect();
        kinds.retain(|_, e| now.duration_since(e.logged) < 2 * WINDOW);
        due
    });
    for (level, last, n) in &due {
        log::log!(*level, "{last} ({})", repeats(*n, WINDOW));
    }
    due.len()
}

/// Runs [`flush`] every few seconds, forever.
pub async fn flush_loop() {
    loop {
        Timer::after(Duration::from_secs(5)).await;
        flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn repeats_are_held_and_counted() {
        let kind = "test kind";
        log(log::Level::Warn, kind, format_args!("first"));
        log(log::Level::Warn, kind, format_args!("second"));
        log(log::Level::Warn, kind, format_args!("third"));
        let held = KINDS.with(|k| k.borrow().get(kind).map(|e| (e.held, e.last.clone())));
        assert_eq!(held, Some((2, "third".to_string())));
        // Not due yet: the window has not passed.
        assert_eq!(flush(), 0);
        KINDS.with(|k| k.borrow_mut().get_mut(kind).unwrap().logged -= WINDOW);
        assert_eq!(flush(), 1);
        let held = KINDS.with(|k| k.borrow().get(kind).map(|e| e.held));
        assert_eq!(held, Some(0));
    }

    #[test]
    fn the_table_is_bounded() {
        for i in 0..(MAX_KINDS + 10) {
            log(log::Level::Debug, &format!("kind {i:x}"), format_args!("x"));
        }
        assert!(KINDS.with(|k| k.borrow().len()) <= MAX_KINDS);
    }
}
