//! Sealed records between the Noise handshake that keys them and the frame reader that opens
//! them: what one side seals, the other reads, and nothing else.

use crate::config::{Psk, Role};
use crate::handshake::noise;
use crate::link::{FrameReader, Transport};
use crate::wire::record::*;
use crate::wire::test_rng::Rng;
use crate::wire::{Cipher, Frame};

/// Our records and snow's transport messages are the same thing, across a rekey, both ways.
#[test]
fn records_are_noise_transport_messages() {
    for cipher in [Cipher::AesGcm, Cipher::ChaChaPoly] {
        let key = Psk(vec![5; 32]);
        let prologue = noise::prologue(b"h", b"d");
        let mut host = noise::start(cipher, &key, Role::Host, &prologue).unwrap();
        let mut dpu = noise::start(cipher, &key, Role::Dpu, &prologue).unwrap();
        let (mut m, mut p) = ([0u8; 64], [0u8; 64]);
        let n = host.write_message(&[], &mut m).unwrap();
        dpu.read_message(&m[..n], &mut p).unwrap();
        let n = dpu.write_message(&[], &mut m).unwrap();
        host.read_message(&m[..n], &mut p).unwrap();
        let mut ours = noise::split(host, cipher, Role::Host);
        let mut snow = dpu.into_transport_mode().unwrap();
        let mut out = [0u8; 64];
        for i in 0..REKEY_EVERY + 3 {
            if i > 0 && i % REKEY_EVERY == 0 {
                snow.rekey_incoming();
                snow.rekey_outgoing();
            }
            let msg = i.to_be_bytes();
            let mut rec = msg;
            let tag = ours.send.seal(&mut rec).unwrap();
            let sealed = [&rec[..], &tag[..]].concat();
            let n = snow
                .read_message(&sealed, &mut out)
                .expect("snow opens ours");
            assert_eq!(&out[..n], &msg);
            let n = snow.write_message(&msg, &mut out).unwrap();
            let (body, tag) = out[..n].split_at_mut(msg.len());
            ours.recv.open(body, tag).expect("we open snow's");
            assert_eq!(body, &msg);
        }
    }
}

fn sample_frames(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(40) {
        let id = 1 + rng.below(5) as u32;
        match rng.below(4) {
            0 => {
                let data: Vec<u8> = (0..rng.below(4000)).map(|_| rng.next() as u8).collect();
                Frame::Data(id, &data).encode(&mut out);
            }
            1 => Frame::Window(id, rng.next() as u32).encode(&mut out),
            2 => Frame::Ping(rng.next() as u32).encode(&mut out),
            _ => Frame::Close(id).encode(&mut out),
        }
    }
    out
}

/// Feeds `wire` to a fresh reader keyed with `key`; returns the frames it yields, re-encoded,
/// and whether it stopped at an error.
fn read_all(wire: &[u8], key: &[u8; 32], cipher: Cipher) -> (Vec<u8>, bool) {
    // Any socket will do: the bytes are pushed, never read from it.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    a.set_nonblocking(true).unwrap();
    let t = Transport::Tcp(std::rc::Rc::new(crate::sys::reactor::Io::new(a).unwrap()));
    let mut reader = FrameReader::new(t, 256 * 1024);
    reader.set_opener(CipherState::new(cipher, key));
    reader.push(wire);
    let mut frames = Vec::new();
    loop {
        match reader.take_frame() {
            Ok(Some(f)) => f.encode(&mut frames),
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// The encrypted reader on valid, damaged and random input: it never panics, and every
/// frame it yields is one that was sent, in order (a damaged record yields nothing).
#[test]
fn encrypted_reader_yields_only_what_was_sealed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let key = [11u8; 32];
    for round in 0..300 {
        let cipher = if round % 2 == 0 {
            Cipher::AesGcm
        } else {
            Cipher::ChaChaPoly
        };
        let mut sealer = Sealer::new(CipherState::new(cipher, &key), 4096 + rng.below(70_000));
        let mut plain = Vec::new();
        let mut wire = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let mut batch = sample_frames(&mut rng);
            plain.extend_from_slice(&batch);
            for part in sealer.seal(&mut batch).unwrap() {
                wire.extend_from_slice(&part);
            }
        }
        assert_eq!(read_all(&wire, &key, cipher), (plain.clone(), false));
        let mut bad = wire.clone();
        match rng.below(5) {
            4 => {
                // A clear frame slipped in front: a reader must not take it.
                let mut clear = Vec::new();
                Frame::Data(1, b"injected").encode(&mut clear);
                bad.splice(0..0, clear);
            }
            0 => {
                let i = rng.below(bad.len());
                bad[i] ^= 1 << rng.below(8);
            }
            1 => bad.truncate(rng.below(bad.len())),
            2 => {
                let i = rng.below(bad.len());
                bad.insert(i, rng.next() as u8);
            }
            _ => bad = (0..rng.below(2000)).map(|_| rng.next() as u8).collect(),
        }
        let (got, _) = read_all(&bad, &key, cipher);
        assert!(
            plain.starts_with(&got),
            "round {round}: a frame that was never sent"
        );
    }
}
