//! The frame decoder fed as DOCA-sized messages: the fuzz input is cut into messages of at most
//! the agreed message size and each is delivered as one read (a SEQPACKET pair, as a DOCA
//! receive). The frames read must be a prefix of what decoding the whole input gives, and
//! whole once every message fits. Then the frames are packed again with `pack_messages`, which
//! must give messages of whole frames within the size that carry the same frames, DATA split
//! across messages joined again.

#![no_main]

#[path = "common.rs"]
mod common;

use common::*;
use doca_socket_relay::link::FrameReader;
use doca_socket_relay::wire::MIN_MAX_MSG;
use doca_socket_relay::wire::{pack_messages, Frame, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use rustix::net::SocketType;
use std::net::Shutdown;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // DOCA message sizes are small (Comm Channel 4080, Comch a few KiB). From 1040 up: below
    // that a HELLO or ERROR (up to 1033 bytes) cut across two messages could leave less room
    // than one message, which a SEQPACKET read truncates where a DOCA receive fails instead.
    let max_msg = (MIN_MAX_MSG + 16) + u32::from(input.u16()) % 8192;
    let cut_seed = input.byte();
    let stream = input.0;
    let (want, _) = reference(stream, max_msg as usize - HEADER_LEN);

    let (transport, peer) = pair(SocketType::SEQPACKET);
    let mut reader = FrameReader::new(transport, max_msg);
    let mut got = Vec::new();
    run(async {
        let mut rest = stream;
        let mut i = 0usize;
        let mut bad = false;
        while !rest.is_empty() && !bad {
            let n = (1 + (i * 131 + usize::from(cut_seed) * 17) % max_msg as usize).min(rest.len());
            rest = &rest[send(&peer, &rest[..n])..];
            i += 1;
            if reader.fill().await.is_err() {
                return;
            }
            bad = drain(&mut reader, &mut got).is_err();
        }
        peer.shutdown(Shutdown::Write).unwrap();
        if !bad {
            read_to_end(&mut reader, &mut got).await;
        }
    });
    assert!(
        got.len() <= want.len() && got[..] == want[..got.len()],
        "frames differ"
    );

    // What a sender does with those frames: pack them into messages of at most max_msg.
    let frames: Vec<u8> = want
        .iter()
        .filter(|f| f.len() <= max_msg as usize)
        .flatten()
        .copied()
        .collect();
    let mut packed = Vec::new();
    for msg in pack_messages(&frames, max_msg as usize) {
        let msg = msg.expect("every frame fits");
        assert!(!msg.is_empty() && msg.len() <= max_msg as usize);
        let (inside, err) = reference(&msg, usize::MAX);
        assert!(!err && inside.concat() == msg, "a message is not whole frames");
        packed.extend(inside);
    }
    assert_eq!(join_data(&packed), join_data(&want_fit(&frames)));
});

/// The frames of `bytes` (all whole).
fn want_fit(bytes: &[u8]) -> Vec<Vec<u8>> {
    reference(bytes, usize::MAX).0
}

/// `frames` with consecutive DATA frames of one stream joined into one: (stream, payload) for
/// DATA, (None, the encoded frame) for the others.
fn join_data(frames: &[Vec<u8>]) -> Vec<(Option<u32>, Vec<u8>)> {
    let mut out: Vec<(Option<u32>, Vec<u8>)> = Vec::new();
    for f in frames {
        let (frame, _) = Frame::decode(f, usize::MAX).unwrap().unwrap();
        match (frame, out.last_mut()) {
            (Frame::Data(id, p), Some((Some(last), joined))) if *last == id => {
                joined.extend_from_slice(p)
            }
            (Frame::Data(id, p), _) => out.push((Some(id), p.to_vec())),
            _ => out.push((None, f.clone())),
        }
    }
    out
}
