//! Helpers shared by the fuzz targets: in-memory socket pairs that the relay's own transports
//! and frame reader run on, and the reference decoding the streamed results are held against.

#![allow(dead_code)]

use doca_socket_relay::link::{FrameReader, Transport};
use doca_socket_relay::wire::Frame;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// A connected AF_UNIX pair: the relay's end as a [`Transport`], the fuzzer's as a plain
/// socket. `SEQPACKET` keeps message boundaries, as the DOCA channels do: each read returns one
/// message, the way a DOCA receive does.
pub fn pair(ty: SocketType) -> (Transport, UnixStream) {
    let (a, b) =
        socketpair(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None).expect("socketpair");
    let relay = Transport::unix_socket(UnixStream::from(a)).expect("registering the socket");
    let peer = UnixStream::from(b);
    peer.set_nonblocking(true).expect("nonblocking socket");
    (relay, peer)
}

/// Runs `f` on the relay's own event loop, which its transports wait on.
pub fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    doca_socket_relay::sys::reactor::block_on(f).expect("the event loop")
}

/// Writes what fits of `bytes` (one message on a SEQPACKET pair) and returns how much. A full
/// socket writes nothing: the caller lets the reader drain it first, as a real peer would wait.
pub fn send(peer: &UnixStream, bytes: &[u8]) -> usize {
    match (&*peer).write(bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("writing to the socket pair: {e}"),
    }
}

/// Decodes `input` front to back in one piece: every whole frame re-encoded, and whether the
/// decoding stopped at an error (rather than at an incomplete frame).
pub fn reference(input: &[u8], max_data: usize) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let mut rest = input;
    loop {
        match Frame::decode(rest, max_data) {
            Ok(Some((f, used))) => {
                let mut enc = Vec::new();
                f.encode(&mut enc);
                // A frame re-encodes to as many bytes as it used (argument-only frames may
                // differ in the ignored value field, nothing else).
                assert_eq!(enc.len(), used, "{f:?}");
                assert_eq!(enc[..5], rest[..5], "{f:?}");
                frames.push(enc);
                rest = &rest[used..];
            }
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// Takes every whole frame the reader holds; `Err` when the reader reports a bad frame.
pub fn drain(reader: &mut FrameReader, out: &mut Vec<Vec<u8>>) -> Result<(), ()> {
    while let Some(f) = reader.take_frame().map_err(|_| ())? {
        let mut enc = Vec::new();
        f.encode(&mut enc);
        out.push(enc);
    }
    Ok(())
}

/// Reads and drains until the channel ends or a frame is bad. Returns the frames and whether
/// a bad frame stopped it.
pub async fn read_to_end(reader: &mut FrameReader, out: &mut Vec<Vec<u8>>) -> bool {
    loop {
        if drain(reader, out).is_err() {
            return true;
        }
        if reader.fill().await.is_err() {
            return false;
        }
    }
}

/// A cursor over the fuzz input for choosing sizes and flags.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    /// The next byte, 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes as a number.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
}

/// Streams `bytes` from `peer` to the reader in chunks of `chunk(i)` bytes for the i-th write,
/// taking the frames after each, then ends the peer's side and reads to the end. Returns the
/// frames and whether a bad frame stopped the reader.
pub fn stream_through(
    reader: &mut FrameReader,
    peer: &UnixStream,
    bytes: &[u8],
    chunk: impl Fn(usize) -> usize,
) -> (Vec<Vec<u8>>, bool) {
    let mut got = Vec::new();
    let mut bad = false;
    run(async {
        let mut rest = bytes;
        let mut i = 0usize;
        while !rest.is_empty() && !bad {
            let n = chunk(i).min(rest.len());
            rest = &rest[send(peer, &rest[..n])..];
            i += 1;
            if reader.fill().await.is_err() {
                panic!("the reader failed while data was still coming");
            }
            bad = drain(reader, &mut got).is_err();
        }
        peer.shutdown(Shutdown::Write).unwrap();
        if !bad {
            bad = read_to_end(reader, &mut got).await;
        }
    });
    (got, bad)
}
