//! Handshake rate limits on the DPU side's channel listener.
//!
//! The gate ([`super::gate`]) bounds how many connections are in their handshake at once, not
//! how many a peer can run one after the other: a stranger that sends a HELLO and a wrong AUTH,
//! closes and starts again made the DPU side do thousands of handshakes a second. So every
//! connection that speaks takes a token from the bucket of its source address
//! ([`PER_ADDRESS_RATE`] a second, bursts of [`PER_ADDRESS_BURST`]) and one from a bucket
//! shared by all ([`GLOBAL_RATE`], [`GLOBAL_BURST`]). A connection over either limit is held
//! unanswered for [`HOLD`] and closed, so a stranger that waits for an answer is slowed to the
//! limit's pace. When only the shared bucket is empty, the address the last admitted host came
//! from still gets in: many strangers together cannot keep the real host out.
//!
//! IPv6 sources count per /64, the block one machine usually gets. Connections without an
//! address (a unix channel, the DOCA channels) all share one bucket, and the last host's
//! "address" is that same one: over a unix channel the socket's file mode (0600) is what keeps
//! strangers off.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Handshakes a second from one source address, on average.
pub const PER_ADDRESS_RATE: u32 = 20;
/// Handshakes one source address may start at once after a quiet spell.
pub const PER_ADDRESS_BURST: u32 = 10;
/// Handshakes a second from all addresses together, on average.
pub const GLOBAL_RATE: u32 = 50;
/// Handshakes all addresses together may start at once after a quiet spell.
pub const GLOBAL_BURST: u32 = 25;
/// How long a connection over the limit is held unanswered before it is closed.
pub const HOLD: Duration = Duration::from_secs(1);
/// Source addresses remembered at once; past it, those whose bucket is full again are dropped
/// (they are as good as new), and if none is, the whole table: the shared bucket still holds.
const MAX_ADDRESSES: usize = 4096;

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * f64::from(rate);
        self.tokens = (self.tokens + gained).min(f64::from(burst));
        self.at = now;
    }

    fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a connection was not given a handshake.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// Its address is over [`PER_ADDRESS_RATE`].
    Address,
    /// All addresses together are over [`GLOBAL_RATE`], and it is not the last host's.
    Global,
}

impl fmt::Display for Over {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Over::Address => write!(
                f,
                "over the handshake rate of its address ({PER_ADDRESS_RATE} a second); not answered"
            ),
            Over::Global => write!(
                f,
                "over the handshake rate of all peers together ({GLOBAL_RATE} a second); not answered"
            ),
        }
    }
}

/// The buckets of one listener.
#[derive(Debug)]
pub(crate) struct Limiter {
    per_address: RefCell<HashMap<Option<IpAddr>, Bucket>>,
    global: RefCell<Bucket>,
    /// Where the last admitted host came from.
    preferred: RefCell<Option<Option<IpAddr>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            per_address: RefCell::default(),
            global: RefCell::new(Bucket::full(GLOBAL_BURST, Instant::now())),
            preferred: RefCell::default(),
        }
    }
}

/// The bucket a source address counts against: IPv6 per /64.
fn key(peer: Option<IpAddr>) -> Option<IpAddr> {
    peer.map(|ip| match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
        v4 => v4,
    })
}

impl Limiter {
    /// Takes the tokens for a handshake from `peer`, or says which limit it is over.
    pub(crate) fn admit(&self, peer: Option<IpAddr>) -> Result<(), Over> {
        self.admit_at(peer, Instant::now())
    }

    fn admit_at(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Over> {
        let key = key(peer);
        let mut table = self.per_address.borrow_mut();
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&key) {
            table.retain(|_, b| {
                b.refill(PER_ADDRESS_RATE, PER_ADDRESS_BURST, now);
                b.tokens < f64::from(PER_ADDRESS_BURST)
            });
            if table.len() >= MAX_ADDRESSES {
                table.clear();
            }
        }
        let bucket = table
            .entry(key)
            .or_insert_with(|| Bucket::full(PER_ADDRESS_BURST, now));
        if !bucket.take(PER_ADDRESS_RATE, PER_ADDRESS_BURST, now) {
            return Err(Over::Address);
        }
        let shared = self
            .global
            .borrow_mut()
            .take(GLOBAL_RATE, GLOBAL_BURST, now);
        if shared || *self.preferred.borrow() == Some(key) {
            Ok(())
        } else {
            Err(Over::Global)
        }
    }

    /// Records that a host from `peer` was admitted: its address keeps priority when all
    /// addresses together are over the limit.
    pub(crate) fn prefer(&self, peer: Option<IpAddr>) {
        *self.preferred.borrow_mut() = Some(key(peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    /// Handshakes admitted from `peer` at `per_second` attempts a second for `secs` seconds.
    fn admitted(
        l: &Limiter,
        peer: Option<IpAddr>,
        start: Instant,
        per_second: u32,
        secs: u32,
    ) -> u32 {
        let step = Duration::from_secs(1) / per_second;
        (0..per_second * secs)
            .filter(|i| l.admit_at(peer, start + step * *i).is_ok())
            .count() as u32
    }

    #[test]
    fn one_address_gets_its_burst_then_its_rate() {
        let l = Limiter::default();
        let t = Instant::now();
        let got = admitted(&l, ip(1), t, 1000, 10);
        let most = PER_ADDRESS_BURST + 10 * PER_ADDRESS_RATE;
        assert!((most - 2..=most).contains(&got), "{got}");
        // Another address is not affected.
        assert_eq!(l.admit_at(ip(2), t + Duration::from_secs(10)), Ok(()));
    }

    #[test]
    fn the_last_hosts_address_keeps_priority_over_the_shared_limit() {
        let l = Limiter::default();
        let t = Instant::now();
        l.prefer(ip(9));
        // Many addresses, each under its own limit, empty the shared bucket.
        let mut refused = 0;
        for i in 0..200u32 {
            let at = t + Duration::from_millis(u64::from(i));
            if l.admit_at(ip(10 + (i % 20) as u8), at) == Err(Over::Global) {
                refused += 1;
            }
        }
        assert!(refused > 100, "{refused}");
        // At the last attempt's instant: the shared bucket has less than a token left.
        let at = t + Duration::from_millis(199);
        assert_eq!(l.admit_at(ip(8), at), Err(Over::Global));
        assert_eq!(l.admit_at(ip(9), at), Ok(()), "the last host's address");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key(Some(a)), key(Some(b)));
        assert_ne!(key(Some(a)), key(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(key(Some(mapped)), ip(1));
        assert_eq!(key(None), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let l = Limiter::default();
        let t = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let peer = Some(IpAddr::from(i.to_be_bytes()));
            let _ = l.admit_at(peer, t);
        }
        assert!(l.per_address.borrow().len() <= MAX_ADDRESSES);
    }
}
