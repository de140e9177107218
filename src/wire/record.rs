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
mod tests;
