//! The handshake state machine on both roles, against a peer whose bytes come from the fuzzer:
//! HELLO and AUTH parsing, every refusal, and success. The first input byte picks the role,
//! whether a key is configured, and whether the harness itself answers honestly after the
//! peer's first frame (the right AUTH with the host's identity, or the DPU side's verdict with
//! the right proof), so that the paths after AUTH are reached too.
//!
//! Checked: no panic; the relay sends only a HELLO, then at most an AUTH and an ERROR, all well
//! formed; the DPU side says nothing unless the peer's first frame is a HELLO of this version
//! (an older version gets at most an ERROR) and never sends a label; a keyed handshake never
//! succeeds unless the right proof was sent; a success agrees on limits both sides accept; a
//! refusal is told to the peer.

#![no_main]

#[path = "common.rs"]
mod common;

use async_io::Async;
use common::*;
use doca_socket_relay::handshake::auth;
use doca_socket_relay::handshake::{conclude, handshake, HandshakeError};
use doca_socket_relay::link::FrameReader;
use doca_socket_relay::config::{ChannelAddr, Config, LogTarget, Psk, Role};
use doca_socket_relay::wire::{
    Frame, Hello, Identity, Verdict, HEADER_LEN, MAX_CONTROL_PAYLOAD, VERSION,
};
use doca_socket_relay::handshake::identity;
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
        // own tests; this target covers HELLO, the proofs, the identity and the verdict).
        encrypt: None,
        socket_mode: 0o660,
        log_target: LogTarget::Stderr,
        metrics: None,
        json: None,
    }
}

/// The next whole frame from the relay (its bytes also kept in `got`), or `None` at its end.
async fn next_frame(
    mut s: &Async<std::os::unix::net::UnixStream>,
    got: &mut Vec<u8>,
    at: &mut usize,
) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    loop {
        if let Ok(Some((_, used))) = Frame::decode(&got[*at..], 1 << 20) {
            let frame = got[*at..*at + used].to_vec();
            *at += used;
            return Some(frame);
        }
        match s.read(&mut buf).await {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// The payload of `frame` if it is of type `ty`.
fn payload(frame: &[u8], ty: u8) -> Option<&[u8]> {
    (frame[0] == ty).then(|| &frame[HEADER_LEN..])
}

/// The peer: plays the other role from the script. The host role's relay speaks first; the
/// DPU role's relay must hear a HELLO first. With `honest`, after the script's first frame
/// (a HELLO) the harness sends the right AUTH: the host's identity with its proof, or the DPU
/// side's verdict (admitted) with its proof. Then the rest of the script, and the end of its
/// side. Returns all the relay sent, and whether the right proof went.
async fn peer(
    sock: &Async<std::os::unix::net::UnixStream>,
    cfg: &Config,
    script: &[u8],
    honest: bool,
) -> (Vec<u8>, bool) {
    let mut s = sock;
    let (mut got, mut at) = (Vec::new(), 0);
    let (first, rest) = match Frame::decode(script, MAX_CONTROL_PAYLOAD) {
        Ok(Some((_, used))) => script.split_at(used),
        _ => (script, &[][..]),
    };
    let peer_hello = match Frame::decode(first, MAX_CONTROL_PAYLOAD) {
        Ok(Some((Frame::Hello(p), _))) => Some(p.to_vec()),
        _ => None,
    };
    let mut proved = false;
    match cfg.role {
        Role::Host => {
            let relay_hello = next_frame(sock, &mut got, &mut at).await;
            let _ = s.write_all(first).await;
            if let (true, Some(h), Some(d)) = (honest, relay_hello, &peer_hello) {
                // The relay's identity is this process's: known without waiting for its AUTH,
                // which a script that leaves a frame unfinished would never bring.
                let who = Identity {
                    instance: identity::instance(),
                    label: identity::label().to_string(),
                }
                .encode();
                let verdict = Verdict::Admit.encode();
                let mut out = Vec::new();
                match &cfg.psk {
                    Some(key) => {
                        let parts: [&[u8]; 4] = [&h[HEADER_LEN..], d, &who, &verdict];
                        let proof = auth::proof(key, Role::Dpu, &parts);
                        Frame::Auth(&[&proof[..], &verdict].concat()).encode(&mut out);
                        proved = true;
                    }
                    None => Frame::Auth(&verdict).encode(&mut out),
                }
                let _ = s.write_all(&out).await;
            }
        }
        Role::Dpu => {
            let _ = s.write_all(first).await;
            if let (true, Some(h)) = (honest, &peer_hello) {
                if let Some(d) = next_frame(sock, &mut got, &mut at).await {
                    if let Some(dpu_hello) = payload(&d, 0x01) {
                        let who = Identity {
                            instance: [5; 16],
                            label: "fuzz pid 1".into(),
                        }
                        .encode();
                        let mut out = Vec::new();
                        match &cfg.psk {
                            Some(key) => {
                                let parts: [&[u8]; 3] = [h, dpu_hello, &who];
                                let proof = auth::proof(key, Role::Host, &parts);
                                Frame::Auth(&[&proof[..], &who].concat()).encode(&mut out);
                                proved = true;
                            }
                            None => Frame::Auth(&who).encode(&mut out),
                        }
                        let _ = s.write_all(&out).await;
                    }
                }
            }
        }
    }
    let _ = s.write_all(rest).await;
    let _ = sock.get_ref().shutdown(Shutdown::Write);
    while next_frame(sock, &mut got, &mut at).await.is_some() {}
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
    let max_msg = transport.max_msg();
    let mut reader = FrameReader::for_handshake(transport.clone(), max_msg);
    let relay = async {
        let mut result = handshake(&transport, &mut reader, &cfg).await;
        if let (Role::Dpu, Ok(agreed)) = (role, &mut result) {
            if let Err(e) = conclude(&transport, &mut reader, agreed, Verdict::Admit).await {
                result = Err(e);
            }
        }
        // Whatever happened, the peer must see the end of what the relay sent.
        transport.close();
        result
    };
    let (result, (mut relay_out, proved)) = run(future::zip(
        relay,
        peer(&peer_sock, &cfg, script, flags & 4 != 0),
    ));
    drop(reader);
    drop(transport);
    let mut peer_sock = peer_sock.into_inner().unwrap();
    peer_sock.set_nonblocking(false).unwrap();
    let _ = peer_sock.read_to_end(&mut relay_out);

    // What the relay sent: its HELLO, then at most an AUTH and an ERROR, all well formed.
    let (frames, bad) = reference(&relay_out, 0);
    assert!(!bad, "the relay sent a malformed frame");
    assert_eq!(frames.concat(), relay_out, "the relay sent a partial frame");
    let types: Vec<u8> = frames.iter().map(|f| f[0]).collect();
    let label = identity::label().as_bytes();
    let peer_hello = match Frame::decode(script, MAX_CONTROL_PAYLOAD) {
        Ok(Some((Frame::Hello(p), _))) => Hello::decode(p).ok(),
        _ => None,
    };
    if role == Role::Dpu {
        assert!(
            !relay_out.windows(label.len()).any(|w| w == label),
            "the DPU side sent its label"
        );
        let spoke_to = peer_hello.as_ref().map(|h| h.version);
        if spoke_to != Some(VERSION) {
            assert!(
                types.is_empty() || (types == [0x03] && spoke_to.is_some()),
                "the DPU side answered a peer without a HELLO of this version: {types:?}"
            );
        }
    }
    if let Some(first) = frames.first().filter(|f| f[0] == 0x01) {
        let hello = Hello::decode(&first[HEADER_LEN..]).expect("the relay's HELLO decodes");
        assert_eq!(
            (hello.version, hello.security),
            (VERSION, cfg.security().code())
        );
        assert!(
            types.len() <= 3 && types[1..].iter().all(|t| *t == 0x02 || *t == 0x03),
            "{types:?}"
        );
    } else {
        assert!(
            types.len() <= 1 && types.iter().all(|t| *t == 0x03),
            "{types:?}"
        );
    }

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
                peer.max_msg.min(max_msg) as usize - HEADER_LEN
            );
            assert!(agreed.peer_window >= peer.max_msg);
            assert!(!types.contains(&0x03), "an ERROR sent on success");
        }
        Err(HandshakeError::Refused(_)) => {
            assert!(
                matches!(types.last(), Some(&0x03) | Some(&0x02)),
                "a refusal not told to the peer: {types:?}"
            );
        }
        Err(_) => {}
    }
});
