//! The frame decoder fed as a byte stream: the relay's FrameReader reads the fuzz input from a
//! stream socket in chunks of fuzzer-chosen sizes and must yield exactly the frames (and the
//! error, if any) that decoding the whole input at once yields.

#![no_main]

#[path = "common.rs"]
mod common;

use common::*;
use doca_socket_relay::link::FrameReader;
use doca_socket_relay::wire::{MIN_MAX_MSG, STREAM_MAX_MSG};
use doca_socket_relay::wire::HEADER_LEN;
use libfuzzer_sys::fuzz_target;
use rustix::net::SocketType;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // Any message size the relay can end up with, from the smallest to the stream default.
    let max_msg = MIN_MAX_MSG + u32::from(input.u16()) * 4 % (STREAM_MAX_MSG - MIN_MAX_MSG + 1);
    let chunk_seed = input.byte();
    let stream = input.0;
    let (want, want_err) = reference(stream, max_msg as usize - HEADER_LEN);

    let (transport, peer) = pair(SocketType::STREAM);
    let mut reader = FrameReader::new(transport, max_msg);
    // Chunks of 1 to 256 bytes, or larger ones, as the seed's bits say.
    let (got, bad) = stream_through(&mut reader, &peer, stream, |i| {
        match (chunk_seed >> (i % 8)) & 1 {
            0 => 1 + (i * 7 + usize::from(chunk_seed)) % 256,
            _ => 1 + (i * 4099) % 70_000,
        }
    });
    assert_eq!(
        got, want,
        "streamed frames differ from decoding in one piece"
    );
    assert_eq!(
        bad, want_err,
        "streamed error differs from decoding in one piece"
    );
});
