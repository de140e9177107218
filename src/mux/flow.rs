//! A stream's flow control: the credit this side may still send, and on the receiving side
//! what the peer may still send and when to tell it it may send more (a WINDOW frame).
//!
//! Each side grants the other a window per stream ([`crate::wire::STREAM_WINDOW`]): DATA
//! beyond it breaks the protocol, and bytes count against it until they are written to the
//! local socket and credited back. Credit goes back in batches of half a window, so that
//! WINDOW frames stay rare: one per 2 MiB of a bulk stream.

/// Both directions' flow control of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flow {
    /// Bytes this side may still send.
    credit: u32,
    /// Received and not yet credited back; never above `window`.
    recv_outstanding: u32,
    /// Of those, written to the local socket: credited back once they reach half the window.
    unacked: u32,
    /// The receive window this side grants.
    window: u32,
}

impl Flow {
    /// A new stream's: `credit` is the window the peer granted in its HELLO, `window` the one
    /// this side grants.
    pub(crate) fn new(credit: u32, window: u32) -> Self {
        Flow {
            credit,
            recv_outstanding: 0,
            unacked: 0,
            window,
        }
    }

    /// Bytes this side may still send.
    pub(crate) fn credit(&self) -> u32 {
        self.credit
    }

    /// `n` bytes were sent; never more than the credit (a read asks for no more).
    pub(crate) fn consume(&mut self, n: usize) {
        self.credit -= n as u32;
    }

    /// The peer's WINDOW granted `n` more. The credit saturates at `u32::MAX` rather than
    /// wrap; a peer that grants more than its window is believed (it is its memory).
    pub(crate) fn grant(&mut self, n: u32) {
        self.credit = self.credit.saturating_add(n);
    }

    /// Whether `len` more received bytes stay within the window this side granted.
    pub(crate) fn admits(&self, len: usize) -> bool {
        self.recv_outstanding as usize + len <= self.window as usize
    }

    /// `len` received bytes were accepted ([`Flow::admits`] said so): they count against the
    /// window until written to the socket.
    pub(crate) fn on_received(&mut self, len: usize) {
        self.recv_outstanding += len as u32;
    }

    /// `n` received bytes were written to the local socket. Returns the WINDOW increment now
    /// due, once half a window's worth has been written since the last one.
    pub(crate) fn on_written(&mut self, n: usize) -> Option<u32> {
        self.unacked += n as u32;
        if self.unacked < self.window / 2 {
            return None;
        }
        let due = self.unacked;
        self.recv_outstanding -= due;
        self.unacked = 0;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u32 = 1000;

    #[test]
    fn sending_spends_the_credit_the_peer_granted() {
        let mut f = Flow::new(300, WINDOW);
        assert_eq!(f.credit(), 300);
        f.consume(100);
        assert_eq!(f.credit(), 200);
        f.consume(200);
        assert_eq!(f.credit(), 0);
        f.grant(50);
        assert_eq!(f.credit(), 50);
    }

    #[test]
    fn a_grant_beyond_the_window_is_believed() {
        let mut f = Flow::new(WINDOW, WINDOW);
        f.grant(WINDOW);
        assert_eq!(f.credit(), 2 * WINDOW);
    }

    #[test]
    fn a_grant_beyond_u32_saturates() {
        let mut f = Flow::new(WINDOW, WINDOW);
        f.grant(u32::MAX);
        assert_eq!(f.credit(), u32::MAX);
        f.grant(1);
        assert_eq!(f.credit(), u32::MAX);
        f.consume(10);
        assert_eq!(f.credit(), u32::MAX - 10);
    }

    #[test]
    fn the_window_admits_up_to_its_size() {
        let mut f = Flow::new(0, WINDOW);
        assert!(f.admits(WINDOW as usize));
        assert!(!f.admits(WINDOW as usize + 1));
        f.on_received(600);
        assert!(f.admits(400));
        assert!(!f.admits(401));
        f.on_received(400);
        assert!(f.admits(0));
        assert!(!f.admits(1));
        // No overflow for any length a frame could announce.
        assert!(!f.admits(usize::MAX - WINDOW as usize));
    }

    #[test]
    fn credit_goes_back_in_half_windows() {
        let mut f = Flow::new(0, WINDOW);
        f.on_received(WINDOW as usize);
        assert_eq!(f.on_written(499), None);
        assert!(!f.admits(1), "written is not yet credited back");
        assert_eq!(f.on_written(1), Some(500));
        assert!(f.admits(500));
        assert!(!f.admits(501));
        assert_eq!(f.on_written(300), None);
        assert_eq!(f.on_written(200), Some(500));
        assert!(f.admits(WINDOW as usize));
    }

    #[test]
    fn one_large_write_is_credited_whole() {
        let mut f = Flow::new(0, WINDOW);
        f.on_received(900);
        assert_eq!(f.on_written(900), Some(900));
        assert!(f.admits(WINDOW as usize));
    }

    #[test]
    fn written_bytes_add_up_across_writes() {
        let mut f = Flow::new(0, WINDOW);
        f.on_received(800);
        for _ in 0..4 {
            assert_eq!(f.on_written(100), None);
        }
        assert_eq!(f.on_written(100), Some(500));
        assert_eq!(f.on_written(300), None);
        assert!(f.admits(700));
        assert!(!f.admits(701));
    }

    #[test]
    fn receiving_and_sending_are_apart() {
        let mut f = Flow::new(10, WINDOW);
        f.on_received(600);
        f.on_written(600);
        assert_eq!(f.credit(), 10);
        f.consume(10);
        assert!(f.admits(WINDOW as usize));
    }
}
