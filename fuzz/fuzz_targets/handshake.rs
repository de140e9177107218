//! The handshake state machine on both roles, against a peer whose bytes come from the fuzzer:
//! HELLO and AUTH parsing, every refusal, and success. The first input byte picks the role,
//! whether a key is configured, and whether the harness itself answers with the right proof
//! right after the peer's first frame (so that the paths after AUTH are reached too).
//!
//! Checked: no panic; the relay sends only a HELLO, then at most an AUTH and an ERROR, all
//! well formed; a keyed handshake never succeeds unless the right proof was sent; a success
//! agrees on limits both sides accept; a refusal is told to the peer.

#![no_main]

#[path = "common.rs"]
mod common;

use async_io::Async;
use common::*;
use doca_socket_relay::auth;
use doca_socket_relay::channel::{handshake, FrameReader, HandshakeError, STREAM_MAX_MSG};
use doca_socket_relay::config::{ChannelAddr, Config, LogTarget, Psk, Role};
use doca_socket_relay::protocol::{Frame, Hello, HEADER_LEN, MAX_CONTROL_PAYLOAD, VERSION};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use libfuzzer_sys::fuzz_target;
use rustix::net::SocketType;
use std::io::Read;
use std::net::Shutdown;

const SERVICE: &str = "fuzz";

fn config(role: Role, keyed: bool) -> Config {
    Config {
        log_level: Default::default(),
        socket: "/nonexistent/fuzz.sock".into(),
        cc_name: SERVICE.into(),
        pci_addr: None,
        rep_pci: None,
        role,
        channel: ChannelAddr::Unix("/nonexistent/chan.sock".into()),
        max_clients: 1,
        busy_poll: std::time::Duration::ZERO,
        drain_timeout: std::time::Duration::ZERO,
        psk: keyed.then(|| Psk(vec![7; 32])),
        psk_next: None,
        psk_warning: None,
        // The unix channel's default: key proofs, frames in clear (the Noise handshake has its
        // own tests; this target covers HELLO and the proofs).
        encrypt: None,
        socket_mode: 0o660,
        log_target: LogTarget::Stderr,
        metrics: None,
        json: None,
    }
}

/// The peer: reads the relay's HELLO, sends the script's first frame, the right AUTH if asked,
/// then the rest of the script, and ends its side. Returns the relay's HELLO payload, and
/// whether the right proof was sent.
async fn peer(
    sock: &Async<std::os::unix::net::UnixStream>,
    cfg: &Config,
    script: &[u8],
    honest: bool,
) -> (Vec<u8>, bool) {
    let mut s = sock;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let relay_hello = loop {
        if let Ok(Some((Frame::Hello(p), _))) = Frame::decode(&got, 1 << 20) {
            break p.to_vec();
        }
        let n = s.read(&mut buf).await.expect("reading the relay's HELLO");
        assert!(n > 0, "the relay closed before sending its HELLO");
        got.extend_from_slice(&buf[..n]);
    };
    let (first, rest) = match Frame::decode(script, MAX_CONTROL_PAYLOAD) {
        Ok(Some((_, used))) => script.split_at(used),
        _ => (script, &[][..]),
    };
    let _ = s.write_all(first).await;
    let mut proved = false;
    if let (true, Some(key), Ok(Some((Frame::Hello(peer_hello), _)))) =
        (honest, &cfg.psk, Frame::decode(first, MAX_CONTROL_PAYLOAD))
    {
        let (host_hello, dpu_hello, prover) = match cfg.role {
            Role::Host => (&relay_hello[..], peer_hello, Role::Dpu),
            Role::Dpu => (peer_hello, &relay_hello[..], Role::Host),
        };
        let mut out = Vec::new();
        Frame::Auth(&auth::proof(key, prover, host_hello, dpu_hello)).encode(&mut out);
        let _ = s.write_all(&out).await;
        proved = true;
    }
    let _ = s.write_all(rest).await;
    let _ = sock.get_ref().shutdown(Shutdown::Write);
    (got, proved)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let role = if flags & 1 == 0 {
        Role::Host
    } else {
        Role::Dpu
    };
    let cfg = config(role, flags & 2 != 0);
    let script = input.0;

    let (transport, peer_sock) = pair(SocketType::STREAM);
    let peer_sock = Async::new(peer_sock).expect("nonblocking socket");
    let mut reader = FrameReader::new(transport.clone(), STREAM_MAX_MSG);
    let (result, (mut relay_out, proved)) = run(future::zip(
        handshake(&transport, &mut reader, &cfg),
        peer(&peer_sock, &cfg, script, flags & 4 != 0),
    ));
    drop(reader);
    drop(transport);
    let mut peer_sock = peer_sock.into_inner().unwrap();
    peer_sock.set_nonblocking(false).unwrap();
    peer_sock.read_to_end(&mut relay_out).unwrap();

    // What the relay sent: its HELLO, then at most an AUTH and an ERROR, all well formed.
    let (frames, bad) = reference(&relay_out, 0);
    assert!(!bad, "the relay sent a malformed frame");
    assert_eq!(frames.concat(), relay_out, "the relay sent a partial frame");
    let types: Vec<u8> = frames.iter().map(|f| f[0]).collect();
    let hello = Hello::decode(&frames[0][HEADER_LEN..]).expect("the relay's HELLO decodes");
    assert_eq!(
        (hello.version, hello.security),
        (VERSION, cfg.security().code())
    );
    assert!(
        types.len() <= 3 && types[1..].iter().all(|t| *t == 0x02 || *t == 0x03),
        "{types:?}"
    );

    let peer_hello = match Frame::decode(script, MAX_CONTROL_PAYLOAD) {
        Ok(Some((Frame::Hello(p), _))) => Hello::decode(p).ok(),
        _ => None,
    };
    match result {
        Ok(agreed) => {
            assert!(
                cfg.psk.is_none() || proved,
                "a keyed handshake succeeded without the key"
            );
            let peer = peer_hello.expect("success without a valid peer HELLO");
            assert_eq!(
                (peer.version, peer.security),
                (VERSION, cfg.security().code())
            );
            assert_eq!(peer.service, SERVICE);
            assert_eq!(
                agreed.max_data,
                peer.max_msg.min(STREAM_MAX_MSG) as usize - HEADER_LEN
            );
            assert!(agreed.peer_window >= peer.max_msg);
            assert!(!types.contains(&0x03), "an ERROR sent on success");
        }
        Err(HandshakeError::Refused(_)) => {
            assert_eq!(types.last(), Some(&0x03), "a refusal not told to the peer");
        }
        Err(_) => {}
    }
});
