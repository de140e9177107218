//! The send buffer: encoded frames waiting for the writer task, which takes them all at once.
//!
//! DATA is read from a client's socket straight into it, behind a header reserved first and
//! filled in once the read says how much came ([`DataSlot`]): relayed bytes are never copied
//! on this side. A frame left open may grow with the next read as long as nothing was queued
//! after it and the writer has not taken it.

use crate::wire::{fill_data_header, Frame, HEADER_LEN};
use std::cell::RefMut;
use std::mem::MaybeUninit;

/// Encoded frames waiting for the writer.
pub(in crate::mux) struct OutBuf {
    buf: Vec<u8>,
    /// Batches the writer has taken so far; a frame left open is only valid within one.
    batch: u64,
}

/// Where a DATA frame that may still grow sits in the send buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenFrame {
    batch: u64,
    /// Offset of its header.
    at: usize,
    /// Payload bytes so far.
    len: usize,
}

impl OutBuf {
    pub(in crate::mux) fn with_capacity(n: usize) -> Self {
        OutBuf {
            buf: Vec::with_capacity(n),
            batch: 0,
        }
    }

    /// Bytes queued.
    pub(in crate::mux) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(in crate::mux) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Queues a frame behind those already here.
    pub(in crate::mux) fn push(&mut self, frame: Frame<'_>) {
        frame.encode(&mut self.buf);
    }

    /// The writer takes every queued frame, swapping in `spare` (empty): frames taken can no
    /// longer grow.
    pub(in crate::mux) fn take_batch(&mut self, spare: &mut Vec<u8>) {
        self.batch += 1;
        std::mem::swap(&mut self.buf, spare);
    }

    /// Whether `f` is still the last frame and the writer has not taken it.
    fn is_last(&self, f: OpenFrame) -> bool {
        f.batch == self.batch && self.buf.len() == f.at + HEADER_LEN + f.len
    }
}

/// Room for one read of a stream's bytes at the end of the send buffer: after the payload of
/// the stream's open frame, or behind a new frame's header. Dropped without
/// [`DataSlot::commit`], it leaves the buffer as it was.
pub(crate) struct DataSlot<'a> {
    out: RefMut<'a, OutBuf>,
    id: u32,
    /// Offset of the frame's header.
    hdr: usize,
    /// Payload bytes the frame already holds.
    have: usize,
    /// Room reserved after them.
    want: usize,
    committed: bool,
}

impl<'a> DataSlot<'a> {
    /// Room for up to `credit` bytes of stream `id` in a frame of at most `max_data`; grows
    /// `open` if it is still the last frame and not full.
    pub(in crate::mux) fn new(
        mut out: RefMut<'a, OutBuf>,
        id: u32,
        open: Option<OpenFrame>,
        max_data: usize,
        credit: u32,
    ) -> Self {
        let (hdr, have) = match open {
            Some(f) if out.is_last(f) && f.len < max_data => (f.at, f.len),
            _ => {
                let hdr = out.buf.len();
                out.buf.resize(hdr + HEADER_LEN, 0);
                (hdr, 0)
            }
        };
        let want = (credit as usize).min(max_data - have);
        out.buf.reserve(want);
        DataSlot {
            out,
            id,
            hdr,
            have,
            want,
            committed: false,
        }
    }

    /// Payload bytes the frame already holds: 0 for a new frame.
    pub(crate) fn have(&self) -> usize {
        self.have
    }

    /// Bytes the room holds.
    pub(crate) fn want(&self) -> usize {
        self.want
    }

    /// The room, for one read.
    pub(crate) fn room(&mut self) -> &mut [MaybeUninit<u8>] {
        let want = self.want;
        &mut self.out.buf.spare_capacity_mut()[..want]
    }

    /// Adds the first `n` bytes of the room to the frame and fills in its header. Returns
    /// where the frame is, to grow it with the next read.
    ///
    /// # Safety
    ///
    /// The first `n` bytes of [`DataSlot::room`] must have been initialised (by a read that
    /// returned `n`), and `n` must not exceed [`DataSlot::want`].
    pub(crate) unsafe fn commit(mut self, n: usize) -> OpenFrame {
        debug_assert!(n <= self.want);
        let len = self.have + n;
        let (hdr, id) = (self.hdr, self.id);
        // SAFETY: the caller initialised these bytes of the spare capacity.
        unsafe { self.out.buf.set_len(hdr + HEADER_LEN + len) };
        fill_data_header(&mut self.out.buf[hdr..hdr + HEADER_LEN], id, len as u32);
        self.committed = true;
        OpenFrame {
            batch: self.out.batch,
            at: hdr,
            len,
        }
    }
}

impl Drop for DataSlot<'_> {
    fn drop(&mut self) {
        if !self.committed && self.have == 0 {
            // Nothing came: the header reserved for a new frame goes.
            self.out.buf.truncate(self.hdr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Reads `bytes` into a slot, as a socket read would.
    fn read(out: &RefCell<OutBuf>, open: Option<OpenFrame>, max: usize, bytes: &[u8]) -> OpenFrame {
        let mut slot = DataSlot::new(out.borrow_mut(), 7, open, max, u32::MAX);
        for (d, b) in slot.room().iter_mut().zip(bytes) {
            d.write(*b);
        }
        // SAFETY: the loop initialised bytes.len() bytes.
        unsafe { slot.commit(bytes.len()) }
    }

    fn frames(out: &RefCell<OutBuf>) -> Vec<(u32, Vec<u8>)> {
        let buf = out.borrow().buf.clone();
        let mut at = 0;
        let mut v = Vec::new();
        while let Ok(Some((frame, used))) = Frame::decode(&buf[at..], usize::MAX) {
            match frame {
                Frame::Data(id, d) => v.push((id, d.to_vec())),
                other => v.push((0, format!("{other:?}").into_bytes())),
            }
            at += used;
        }
        assert_eq!(at, buf.len(), "whole frames only");
        v
    }

    #[test]
    fn a_read_becomes_a_data_frame_in_place() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        read(&out, None, 100, b"hello");
        assert_eq!(frames(&out), vec![(7, b"hello".to_vec())]);
    }

    #[test]
    fn the_open_frame_grows_while_it_is_last() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        let f = read(&out, None, 100, b"hello");
        let f = read(&out, Some(f), 100, b" world");
        assert_eq!(frames(&out), vec![(7, b"hello world".to_vec())]);
        // A frame queued behind it ends its growth.
        out.borrow_mut().push(Frame::Ping(1));
        read(&out, Some(f), 100, b"!");
        assert_eq!(frames(&out).len(), 3);
        assert_eq!(frames(&out)[2], (7, b"!".to_vec()));
    }

    #[test]
    fn a_taken_frame_no_longer_grows() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        let f = read(&out, None, 100, b"abc");
        let mut spare = Vec::new();
        out.borrow_mut().take_batch(&mut spare);
        assert_eq!(spare.len(), HEADER_LEN + 3);
        // Same length again, but in the next batch: a new frame.
        let g = read(&out, Some(f), 100, b"def");
        assert_ne!(f, g);
        assert_eq!(frames(&out), vec![(7, b"def".to_vec())]);
    }

    #[test]
    fn a_full_frame_no_longer_grows() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        let f = read(&out, None, 4, b"abcd");
        read(&out, Some(f), 4, b"ef");
        assert_eq!(
            frames(&out),
            vec![(7, b"abcd".to_vec()), (7, b"ef".to_vec())]
        );
    }

    #[test]
    fn the_room_is_bounded_by_credit_and_frame_size() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        let slot = DataSlot::new(out.borrow_mut(), 1, None, 100, 30);
        assert_eq!((slot.have(), slot.want()), (0, 30));
        drop(slot);
        let f = read(&out, None, 100, &[0; 60]);
        let slot = DataSlot::new(out.borrow_mut(), 7, Some(f), 100, 1000);
        assert_eq!((slot.have(), slot.want()), (60, 40));
    }

    #[test]
    fn an_empty_read_leaves_the_buffer_as_it_was() {
        let out = RefCell::new(OutBuf::with_capacity(0));
        drop(DataSlot::new(out.borrow_mut(), 1, None, 100, 100));
        assert!(out.borrow().is_empty());
        let f = read(&out, None, 100, b"abc");
        drop(DataSlot::new(out.borrow_mut(), 7, Some(f), 100, 100));
        assert_eq!(frames(&out), vec![(7, b"abc".to_vec())]);
    }
}
