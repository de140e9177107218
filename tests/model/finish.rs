//! The end of a program: every write that must fail fails, every end that is owed comes,
//! then every end half-closes and each must see its end exactly once; and a fresh client is
//! still served.

use super::{wait_limit, Driver, Res};
use crate::endpoint::Endpoint;
use crate::program::{Op, Side};

/// What an end writes after its far end closed, at most, to see a write fail. Without STOP
/// the relay would take about a window and the socket buffers, then nothing more.
const ORPHAN_WRITE: usize = 16 << 20;

impl Driver {
    /// Ends the program: every end reads freely, flushes what it queued and half-closes; then
    /// every end still open must see its end, exactly once.
    pub fn finish(&mut self) -> Res {
        self.trace.push("finish".into());
        fn ends(d: &mut Driver) -> impl Iterator<Item = &mut Endpoint> {
            d.streams.iter_mut().flat_map(|s| s.ends.iter_mut())
        }
        ends(self).for_each(|e| e.allowance = None);
        // An end that can still write to a far end that closed (or across a lost channel) is
        // told so by a failing write, as it would be by the real server: it writes until then.
        let orphaned = |d: &Driver| {
            let mut out = Vec::new();
            for (i, st) in d.streams.iter().enumerate() {
                for side in [Side::Client, Side::Server] {
                    let e = &st.ends[side.index()];
                    if e.can_write() && (st.lost || st.ends[1 - side.index()].closed()) {
                        out.push((i, side));
                    }
                }
            }
            out
        };
        for (i, side) in orphaned(self) {
            self.streams[i].ends[side.index()].queue(ORPHAN_WRITE);
        }
        if !self.advance_until(wait_limit(), |d| orphaned(d).is_empty())? {
            let ends: Vec<String> = orphaned(self)
                .iter()
                .map(|(i, side)| {
                    let written = self.streams[*i].ends[side.index()].written;
                    format!("stream {i} {side:?} (wrote {written} bytes)")
                })
                .collect();
            return Err(format!(
                "no write failed within {} s for {}, though the far end closed or the channel \
                 was lost",
                wait_limit().as_secs(),
                ends.join(", ")
            ));
        }
        let flushed = |d: &Driver| {
            d.streams
                .iter()
                .flat_map(|s| s.ends.iter())
                .all(|e| !e.can_write() || e.pending() == 0)
        };
        if !self.advance_until(wait_limit(), flushed)? {
            return Err(format!(
                "queued bytes were not taken in {} s though every end reads",
                wait_limit().as_secs()
            ));
        }
        // An end owed already (the far end closed or half-closed, or the channel was lost)
        // comes without this end doing anything more.
        if !self.advance_until(wait_limit(), |d| d.missing_ends(true).is_empty())? {
            return Err(format!(
                "no end within {} s for {}, though the far end closed or half-closed or the \
                 channel was lost",
                wait_limit().as_secs(),
                self.missing_ends(true).join(", ")
            ));
        }
        ends(self).for_each(|e| e.shut_write());
        if !self.advance_until(wait_limit(), |d| d.missing_ends(false).is_empty())? {
            return Err(format!(
                "no end within {} s for {}, though every end half-closed",
                wait_limit().as_secs(),
                self.missing_ends(false).join(", ")
            ));
        }
        for (i, st) in self.streams.iter_mut().enumerate() {
            for (side, e) in [Side::Client, Side::Server].iter().zip(st.ends.iter_mut()) {
                e.check_after_end()
                    .map_err(|m| format!("stream {i}, {side:?} end: {m}"))?;
                e.close();
            }
        }
        Ok(())
    }

    /// The open ends that have not seen their end; with `owed`, only those whose end is
    /// already due.
    fn missing_ends(&self, owed: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (i, st) in self.streams.iter().enumerate() {
            for side in [Side::Client, Side::Server] {
                let e = &st.ends[side.index()];
                let peer = st.ends[1 - side.index()].as_peer(st.lost);
                let due = peer.lost || peer.shut || peer.closed;
                if !e.closed() && e.end.is_none() && (due || !owed) {
                    out.push(format!("stream {i} {side:?} (read {} bytes)", e.read));
                }
            }
        }
        out
    }

    /// After the program: a fresh client still gets a stream that carries 64 KiB each way.
    pub fn fresh_client(&mut self) -> Res {
        self.open()?;
        let s = self.streams.len() - 1;
        for side in [Side::Client, Side::Server] {
            self.exec(&Op::Write {
                s,
                side,
                len: 64 * 1024,
            })?;
        }
        self.finish()
            .map_err(|e| format!("a fresh client after the program: {e}"))?;
        let st = &self.streams[s];
        match st.ends.iter().all(|e| e.read == 64 * 1024) {
            true => Ok(()),
            false => Err("a fresh client after the program did not get 64 KiB each way".into()),
        }
    }
}
