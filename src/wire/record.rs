//! Sealed records: the encrypted channel's unit on the wire.
//!
//! A record is a SEALED frame header (`0x05 | stream 0 | length`) followed by the ciphertext of
//! a run of whole frames and its 16-byte tag. Frames never span records, so a receiver opens a
//! record in place in its receive buffer and decodes the frames straight out of it, and a sender
//! seals each run of frames where it lies in the send buffer and writes header, run and tag with
//! one vectored write: no copy of the frames.
//!
//! A record may be as large as a channel message (1 MiB on stream transports), not only the
//! 64 KiB of a Noise transport message: with 64 KiB records the largest DATA frame had to shrink
//! to 64 KiB too, and each relay process then spent about twice the system calls per MiB on its
//! local sockets that it spends in clear. Each record is still one AEAD message under the Noise
//! keys and nonces, far inside both ciphers' per-message limits (64 GiB).
//!
//! Nonces are the Noise ones: a per-direction counter from 0, never sent, so a record that is
//! lost, replayed or moved fails to open. Every [`REKEY_EVERY`] records both sides replace the
//! direction's key with Noise's REKEY, which bounds what one key ever protects.

use super::Cipher;
use crate::wire::{frame_len, HEADER_LEN, T_SEALED};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use std::fmt;
use std::io::{self, IoSlice};

/// Length of a record's authentication tag.
pub const TAG_LEN: usize = 16;
/// Records sealed under one key; then both sides move to the next key (Noise REKEY). With
/// records of at most 1 MiB a key protects at most 4 GiB (2^28 AES blocks).
pub const REKEY_EVERY: u64 = 1 << 12;
/// The first nonce a record may not use: Noise reserves 2^64 - 1 for REKEY, and a counter
/// that got there refuses to go on (the session ends and the host reconnects with fresh keys).
pub const NONCE_LIMIT: u64 = u64::MAX;

/// Largest record (ciphertext and tag) on a channel whose messages hold `max_msg` bytes: a
/// record and its header fill one message.
pub fn max_record(max_msg: usize) -> usize {
    max_msg - HEADER_LEN
}

/// Largest run of frames one record carries on a channel whose messages hold `max_msg` bytes.
pub fn max_run(max_msg: usize) -> usize {
    max_record(max_msg) - TAG_LEN
}

/// One direction's key, as ring's AEAD (its assembly uses AES-NI/VAES and CLMUL on x86-64 and
/// the Armv8 crypto extensions on the BlueField's Cortex-A72).
fn aead_key(cipher: Cipher, key: &[u8; 32]) -> LessSafeKey {
    let alg = match cipher {
        Cipher::AesGcm => &AES_256_GCM,
        Cipher::ChaChaPoly => &CHACHA20_POLY1305,
    };
    LessSafeKey::new(UnboundKey::new(alg, key).expect("both ciphers take 32-byte keys"))
}

/// One direction's key and nonce counter.
pub struct CipherState {
    cipher: Cipher,
    aead: LessSafeKey,
    n: u64,
}

impl fmt::Debug for CipherState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CipherState({}, nonce {})", self.cipher, self.n)
    }
}

impl CipherState {
    /// A direction keyed with `key` (from the handshake's split), nonce 0.
    pub fn new(cipher: Cipher, key: &[u8; 32]) -> CipherState {
        CipherState {
            cipher,
            aead: aead_key(cipher, key),
            n: 0,
        }
    }

    /// The 96-bit nonce for counter `n`, laid out as the Noise cipher functions define it.
    fn nonce(&self, n: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        match self.cipher {
            Cipher::AesGcm => nonce[4..].copy_from_slice(&n.to_be_bytes()),
            Cipher::ChaChaPoly => nonce[4..].copy_from_slice(&n.to_le_bytes()),
        }
        Nonce::assume_unique_for_key(nonce)
    }

    fn seal_at(&self, n: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .aead
            .seal_in_place_separate_tag(self.nonce(n), Aad::empty(), buf)
            // Both ciphers refuse only inputs of gigabytes; a record fills at most one message.
            .expect("a record is within the cipher's length limit");
        tag.as_ref().try_into().expect("tags are TAG_LEN bytes")
    }

    /// Encrypts `buf` in place and returns its tag. Refuses once the nonce counter reached
    /// [`NONCE_LIMIT`]: the session must end rather than reuse a nonce.
    pub fn seal(&mut self, buf: &mut [u8]) -> Result<[u8; TAG_LEN], RecordError> {
        self.check_limit()?;
        let tag = self.seal_at(self.n, buf);
        self.advance();
        Ok(tag)
    }

    /// Decrypts `buf` in place if `tag` authenticates it under the next nonce.
    pub fn open(&mut self, buf: &mut [u8], tag: &[u8]) -> Result<(), RecordError> {
        self.check_limit()?;
        let tag = Tag::try_from(tag).map_err(|_| RecordError::Forged)?;
        self.aead
            .open_in_place_separate_tag(self.nonce(self.n), Aad::empty(), tag, buf, 0..)
            .map_err(|_| RecordError::Forged)?;
        self.advance();
        Ok(())
    }

    fn check_limit(&self) -> Result<(), RecordError> {
        if self.n == NONCE_LIMIT {
            return Err(RecordError::Exhausted);
        }
        Ok(())
    }

    /// A direction whose counter is already at `n`, to test the limit without 2^64 records.
    #[cfg(test)]
    fn at(cipher: Cipher, key: &[u8; 32], n: u64) -> CipherState {
        CipherState {
            n,
            ..CipherState::new(cipher, key)
        }
    }

    fn advance(&mut self) {
        self.n += 1;
        if self.n % REKEY_EVERY == 0 {
            self.rekey();
        }
    }

    /// Noise's default REKEY: the first 32 bytes of ENCRYPT(k, 2^64 - 1, "", 32 zero bytes).
    /// The nonce counter goes on.
    pub fn rekey(&mut self) {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        self.seal_at(u64::MAX, &mut *key);
        self.aead = aead_key(self.cipher, &key);
    }
}

/// Why a received record was refused. Any of these drops the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Something other than a record where one must be.
    NotSealed(u8),
    /// A record length outside what the channel allows: the length and the largest allowed.
    BadLength(u32, usize),
    /// The tag did not verify.
    Forged,
    /// The direction's nonce counter reached [`NONCE_LIMIT`].
    Exhausted,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NotSealed(t) => {
                write!(
                    f,
                    "a frame of type 0x{t:02x} in clear on an encrypted channel"
                )
            }
            RecordError::BadLength(n, max) => {
                write!(f, "a record of {n} bytes (records hold {TAG_LEN} to {max})")
            }
            RecordError::Forged => f.write_str(
                "a record failed authentication: altered, replayed, reordered or lost on the way",
            ),
            RecordError::Exhausted => f.write_str(
                "the record counter reached its limit; the session must start over with fresh keys",
            ),
        }
    }
}

/// Opens the record at the front of `buf` in place, on a channel whose messages hold `max_msg`
/// bytes. `Ok(None)` while the record is not all there; else the length of its frames, which
/// start at [`HEADER_LEN`] and are followed by the tag.
pub fn open_record(
    cs: &mut CipherState,
    buf: &mut [u8],
    max_msg: usize,
) -> Result<Option<usize>, RecordError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != T_SEALED || buf[1..5] != [0; 4] {
        return Err(RecordError::NotSealed(buf[0]));
    }
    let len = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
    let max = max_record(max_msg);
    if !(TAG_LEN..=max).contains(&(len as usize)) {
        return Err(RecordError::BadLength(len, max));
    }
    let len = len as usize;
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let (run, tag) = buf[HEADER_LEN..HEADER_LEN + len].split_at_mut(len - TAG_LEN);
    cs.open(run, tag)?;
    Ok(Some(len - TAG_LEN))
}

/// Most bytes of frames gathered into one record unless a single frame is larger. A receiver
/// opens nothing before its whole record is in, so a batch sealed as one record would hold back
/// its first frames (another stream's, often) until its last arrived; with this bound a batch
/// flows frame by frame as in clear, where a frame is also decoded only once whole.
pub const RECORD_TARGET: usize = 64 * 1024;

/// The runs of whole frames in `frames` to seal as records: frames gathered up to
/// [`RECORD_TARGET`] bytes (or `max_run`, if smaller), a larger frame in a record of its own.
fn record_runs(frames: &[u8], max_run: usize) -> io::Result<Vec<std::ops::Range<usize>>> {
    let target = RECORD_TARGET.min(max_run);
    let mut runs = Vec::new();
    let (mut start, mut end) = (0, 0);
    while end < frames.len() {
        let len = frame_len(&frames[end..]);
        if len > max_run {
            return Err(io::Error::other(
                "a frame larger than the channel's message size",
            ));
        }
        if end > start && end + len - start > target {
            runs.push(start..end);
            start = end;
        }
        end += len;
    }
    if end > start {
        runs.push(start..end);
    }
    Ok(runs)
}

/// The sending direction of an encrypted channel.
#[derive(Debug)]
pub struct Sealer {
    cs: CipherState,
    max_run: usize,
    runs: Vec<(std::ops::Range<usize>, [u8; HEADER_LEN], [u8; TAG_LEN])>,
}

impl Sealer {
    /// Seals with `cs` into records that fit messages of `max_msg` bytes.
    pub fn new(cs: CipherState, max_msg: usize) -> Sealer {
        Sealer {
            cs,
            max_run: max_run(max_msg),
            runs: Vec::new(),
        }
    }

    /// Seals the whole frames in `frames` in place, as records of up to the largest run each,
    /// and returns what to write, in order: header, sealed run and tag of every record.
    pub fn seal<'a>(&'a mut self, frames: &'a mut [u8]) -> io::Result<Vec<IoSlice<'a>>> {
        self.runs.clear();
        for range in record_runs(frames, self.max_run)? {
            let tag = self
                .cs
                .seal(&mut frames[range.clone()])
                .map_err(|e| io::Error::other(e.to_string()))?;
            let mut head = [0u8; HEADER_LEN];
            head[0] = T_SEALED;
            head[5..].copy_from_slice(&((range.len() + TAG_LEN) as u32).to_be_bytes());
            self.runs.push((range, head, tag));
        }
        let frames = &*frames;
        Ok(self
            .runs
            .iter()
            .flat_map(|(range, head, tag)| {
                [
                    IoSlice::new(head),
                    IoSlice::new(&frames[range.clone()]),
                    IoSlice::new(tag),
                ]
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Psk, Role};
    use crate::handshake::noise;
    use crate::link::{FrameReader, Transport};
    use crate::wire::Frame;

    /// xorshift64*: a fixed, dependency-free sequence, so a failure can be replayed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Records cover the frames in order, each at most the largest run; a record over the
    /// target holds one frame, and no two neighbours would fit the target together.
    #[test]
    fn records_gather_frames_up_to_the_target() {
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        for _ in 0..300 {
            let max_run = 2000 + rng.below(2 * RECORD_TARGET);
            let mut frames = Vec::new();
            let mut ends = Vec::new();
            for _ in 0..1 + rng.below(60) {
                let big = vec![7; rng.below(max_run - HEADER_LEN)];
                match rng.below(3) {
                    0 => Frame::Data(1, &big),
                    1 => Frame::Data(2, &[9; 100]),
                    _ => Frame::Window(3, 5),
                }
                .encode(&mut frames);
                ends.push(frames.len());
            }
            let runs = record_runs(&frames, max_run).unwrap();
            let target = RECORD_TARGET.min(max_run);
            assert_eq!(runs.first().unwrap().start, 0);
            assert_eq!(runs.last().unwrap().end, frames.len());
            for (i, r) in runs.iter().enumerate() {
                assert!(ends.contains(&r.end) && r.len() <= max_run);
                if r.len() > target {
                    assert_eq!(
                        frame_len(&frames[r.start..]),
                        r.len(),
                        "a large run of frames"
                    );
                }
                if let Some(next) = runs.get(i + 1) {
                    assert_eq!(next.start, r.end);
                    assert!(next.end - r.start > target, "two records that fit one");
                }
            }
        }
        let mut big = Vec::new();
        Frame::Data(1, &[0; 5000]).encode(&mut big);
        assert!(record_runs(&big, 4000).is_err());
    }

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

    /// A direction refuses to seal or open at the nonce Noise reserves, and the record before
    /// it still goes through; the sender's error ends the session instead of reusing a nonce.
    #[test]
    fn the_record_counter_stops_at_its_limit() {
        let key = [4u8; 32];
        for cipher in [Cipher::AesGcm, Cipher::ChaChaPoly] {
            let mut tx = CipherState::at(cipher, &key, NONCE_LIMIT - 1);
            let mut rx = CipherState::at(cipher, &key, NONCE_LIMIT - 1);
            let mut rec = *b"last";
            let tag = tx.seal(&mut rec).expect("the last nonce is usable");
            rx.open(&mut rec, &tag).expect("and opens");
            assert_eq!(&rec, b"last");
            assert_eq!(tx.seal(&mut rec), Err(RecordError::Exhausted));
            assert_eq!(rx.open(&mut rec, &tag), Err(RecordError::Exhausted));
            let mut sealer = Sealer::new(tx, 4096);
            let mut frames = Vec::new();
            Frame::Ping(1).encode(&mut frames);
            let err = sealer.seal(&mut frames).unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");
        }
    }
}
