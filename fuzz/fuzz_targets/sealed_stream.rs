//! The encrypted channel's reader: the frames the fuzz input decodes to are sealed into records
//! (in batches the input chooses, with either cipher and any message size), one byte of the
//! sealed stream may be flipped, and the result is streamed to the relay's FrameReader in
//! chunks. Unchanged, it must yield exactly those frames; damaged, only a prefix of them and
//! then an error or nothing: never a frame that was not sealed, never a panic.

#![no_main]

#[path = "common.rs"]
mod common;

use common::*;
use doca_socket_relay::link::FrameReader;
use doca_socket_relay::wire::{MIN_MAX_MSG, STREAM_MAX_MSG};
use doca_socket_relay::wire::HEADER_LEN;
use doca_socket_relay::wire::record::{max_run, CipherState, Sealer};
use doca_socket_relay::wire::Cipher;
use libfuzzer_sys::fuzz_target;
use rustix::net::SocketType;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let max_msg = MIN_MAX_MSG + u32::from(input.u16()) * 4 % (STREAM_MAX_MSG - MIN_MAX_MSG + 1);
    let flags = input.byte();
    let cipher = if flags & 1 == 0 {
        Cipher::AesGcm
    } else {
        Cipher::ChaChaPoly
    };
    let flip = input.u16();
    let run = max_run(max_msg as usize);
    let (frames, _) = reference(input.0, run - HEADER_LEN);
    // HELLO and ERROR payloads may be up to 1024 bytes, more than a record holds on the
    // smallest channels; the relay never sends such a frame sealed, so the stream ends there.
    let frames: Vec<Vec<u8>> = frames.into_iter().take_while(|f| f.len() <= run).collect();
    let key = [flags; 32];

    // Seal the frames in batches of 1 to 8 frames, as the writer would.
    let mut sealer = Sealer::new(CipherState::new(cipher, &key), max_msg as usize);
    let mut wire = Vec::new();
    for batch in frames.chunks(1 + usize::from(flags >> 5)) {
        let mut plain = batch.concat();
        let records = sealer.seal(&mut plain).expect("every frame fits a record");
        records.iter().for_each(|r| wire.extend_from_slice(r));
    }
    let damaged = flags & 2 != 0 && !wire.is_empty();
    if damaged {
        let at = usize::from(flip) * 131 % wire.len();
        wire[at] ^= 1 << (flip % 8);
    }

    let (transport, peer) = pair(SocketType::STREAM);
    let mut reader = FrameReader::new(transport, max_msg);
    reader.set_opener(CipherState::new(cipher, &key));
    let (got, bad) = stream_through(&mut reader, &peer, &wire, |i| {
        1 + (i * 7919 + usize::from(flags)) % 70_000
    });
    if damaged {
        assert!(frames.starts_with(&got), "a frame that was never sealed");
        assert!(
            got.len() < frames.len() || bad || frames.is_empty(),
            "damage went unnoticed"
        );
    } else {
        assert_eq!(got, frames, "sealed frames came back different");
        assert!(!bad, "an intact sealed stream was refused");
    }
});
