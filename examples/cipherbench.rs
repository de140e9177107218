//! Measures the encrypted channel's pieces in one process: the Noise handshake (both sides)
//! and sealing plus opening full records, for each cipher. `bench/encryption.sh` runs it.
//!
//!     cargo run --release --example cipherbench [MIB]
//!
//! Every record is opened again and compared, so a run is also a correctness check (the
//! aarch64 build runs it under qemu for that).

use doca_socket_relay::config::{Psk, Role};
use doca_socket_relay::handshake::noise;
use doca_socket_relay::wire::record::{max_run, CipherState};
use doca_socket_relay::wire::Cipher;
use doca_socket_relay::wire::STREAM_MAX_MSG;
use std::time::Instant;

fn handshake_us(cipher: Cipher, rounds: u32) -> f64 {
    let key = Psk(vec![3; 32]);
    let prologue = noise::prologue(b"host hello", b"dpu hello");
    let start = Instant::now();
    for _ in 0..rounds {
        let mut host = noise::start(cipher, &key, Role::Host, &prologue).unwrap();
        let mut dpu = noise::start(cipher, &key, Role::Dpu, &prologue).unwrap();
        let (mut msg, mut scratch) = ([0u8; 64], [0u8; 64]);
        let n = host.write_message(&[], &mut msg).unwrap();
        dpu.read_message(&msg[..n], &mut scratch).unwrap();
        let n = dpu.write_message(&[], &mut msg).unwrap();
        host.read_message(&msg[..n], &mut scratch).unwrap();
        let _ = noise::split(host, cipher, Role::Host);
        let _ = noise::split(dpu, cipher, Role::Dpu);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

/// Seals and opens `mib` MiB in full-size records; returns MB/s of each half.
fn records(cipher: Cipher, mib: usize) -> (f64, f64) {
    let key = [9u8; 32];
    let (mut tx, mut rx) = (
        CipherState::new(cipher, &key),
        CipherState::new(cipher, &key),
    );
    let run = max_run(STREAM_MAX_MSG as usize);
    let plain: Vec<u8> = (0..run).map(|i| (i * 31 % 251) as u8).collect();
    let mut buf = plain.clone();
    let count = mib * 1024 * 1024 / run;
    let (mut seal, mut open) = (0.0, 0.0);
    for _ in 0..count {
        let t = Instant::now();
        let tag = tx.seal(&mut buf).expect("far below the record limit");
        seal += t.elapsed().as_secs_f64();
        assert_ne!(buf, plain, "sealing changed nothing");
        let t = Instant::now();
        rx.open(&mut buf, &tag).expect("a sealed record opens");
        open += t.elapsed().as_secs_f64();
        assert_eq!(buf, plain, "a record did not come back intact");
    }
    let bytes = (count * run) as f64;
    (bytes / seal / 1e6, bytes / open / 1e6)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(256, |s| s.parse().expect("MIB is a number"));
    println!("cipher       handshake_us  seal_MBps  open_MBps");
    for cipher in [Cipher::AesGcm, Cipher::ChaChaPoly] {
        let hs = handshake_us(cipher, 200);
        let (seal, open) = records(cipher, mib);
        println!(
            "{:<12} {hs:>12.0} {seal:>10.0} {open:>10.0}",
            cipher.to_string()
        );
    }
}
