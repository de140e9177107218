//! The Noise handshake of an encrypted channel: `NNpsk0` keyed by the pre-shared key.
//!
//! The host (initiator) sends `psk, e`, the DPU side answers `e, ee`, each in an AUTH frame.
//! Mixing the key in before the first message means the first message's tag already proves the
//! host holds it, so the DPU side answers nothing to a peer without the key, as with the plain
//! proofs; that message's payload (the host's identity) is encrypted under a key only the PSK
//! gives. The DPU side's message carries its verdict, admitted or refused, encrypted and
//! authenticated after `ee`, so a refusal cannot be forged by someone without the key. The
//! ephemeral keys give forward secrecy: a key file stolen later does not open recorded traffic
//! (the host's identity excepted). Both HELLO payloads are the prologue, so a peer that saw
//! other HELLOs than this side sent (another service name, other limits, another mode) cannot
//! finish.
//!
//! Only the handshake runs in `snow`; its split keys go to [`super::record`], which seals and
//! opens records in place (snow's transport API copies every message into a second buffer).

use super::HandshakeError;
use crate::config::{Psk, Role};
use crate::wire::record::CipherState;
use crate::wire::Cipher;
use crate::wire::{Frame, MAX_AUTH_PAYLOAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const PROLOGUE_LABEL: &[u8] = b"doca-socket-relay noise v1\0";
const PSK_LABEL: &[u8] = b"doca-socket-relay noise psk v1";

/// The two directions' keys after a handshake.
#[derive(Debug)]
pub struct Keys {
    /// Seals what this side sends.
    pub send: CipherState,
    /// Opens what this side receives.
    pub recv: CipherState,
}

/// The Noise protocol name for `cipher`.
pub fn protocol_name(cipher: Cipher) -> &'static str {
    match cipher {
        Cipher::AesGcm => "Noise_NNpsk0_25519_AESGCM_SHA256",
        Cipher::ChaChaPoly => "Noise_NNpsk0_25519_ChaChaPoly_SHA256",
    }
}

/// Noise takes a 32-byte PSK; a key file may be longer, so it is condensed with a label that
/// keeps it apart from the plain proofs made with the same file. Wiped when dropped.
fn noise_psk(key: &Psk) -> Zeroizing<[u8; 32]> {
    let mut m = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    m.update(PSK_LABEL);
    Zeroizing::new(m.finalize().into_bytes().into())
}

/// The prologue: a label and both HELLO payloads (host's first), each with its length.
pub fn prologue(host_hello: &[u8], dpu_hello: &[u8]) -> Vec<u8> {
    let mut p = PROLOGUE_LABEL.to_vec();
    for hello in [host_hello, dpu_hello] {
        p.extend_from_slice(&(hello.len() as u32).to_be_bytes());
        p.extend_from_slice(hello);
    }
    p
}

/// A handshake state for `role`. snow keeps its own copy of the PSK in it: [`split`] (or
/// dropping a [`Handshake`]) overwrites that copy; a state dropped any other way keeps it in
/// freed memory.
pub fn start(
    cipher: Cipher,
    key: &Psk,
    role: Role,
    prologue: &[u8],
) -> Result<snow::HandshakeState, snow::Error> {
    let psk = noise_psk(key);
    let params = protocol_name(cipher).parse()?;
    let builder = snow::Builder::new(params)
        .psk(0, &psk)?
        .prologue(prologue)?;
    match role {
        Role::Host => builder.build_initiator(),
        Role::Dpu => builder.build_responder(),
    }
}

/// Overwrites the PSK snow copied into `hs`, the one secret in it that snow lets us reach. Its
/// ephemeral private key and chaining key stay until the memory is reused (docs/SECURITY.md).
fn wipe(hs: &mut snow::HandshakeState) {
    // Only fails for a wrong slot or length, and slot 0 with 32 bytes is what `start` set.
    let _ = hs.set_psk(0, &[0; 32]);
}

/// The keys of a finished handshake, as `role` uses them; wipes the PSK copy in `hs`.
pub fn split(mut hs: snow::HandshakeState, cipher: Cipher, role: Role) -> Keys {
    let keys = split_keys(&mut hs, cipher, role);
    wipe(&mut hs);
    keys
}

fn split_keys(hs: &mut snow::HandshakeState, cipher: Cipher, role: Role) -> Keys {
    let (initiator_to_responder, responder_to_initiator) = hs.dangerously_get_raw_split();
    let (send, recv) = match role {
        Role::Host => (initiator_to_responder, responder_to_initiator),
        Role::Dpu => (responder_to_initiator, initiator_to_responder),
    };
    // Wiped on return; ring's key schedules cannot be, they live as long as the session.
    let (send, recv) = (Zeroizing::new(send), Zeroizing::new(recv));
    Keys {
        send: CipherState::new(cipher, &send),
        recv: CipherState::new(cipher, &recv),
    }
}

/// One side's Noise handshake over AUTH frames: the host's message carries its identity, the
/// DPU side's its verdict. Boxed so that moving it does not leave copies of snow's state
/// behind, and wiped (as far as snow allows) when dropped.
pub struct Handshake {
    hs: Box<snow::HandshakeState>,
    cipher: Cipher,
    role: Role,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Handshake({}, {:?})",
            protocol_name(self.cipher),
            self.role
        )
    }
}

impl Handshake {
    /// A handshake for `role` with both HELLO payloads as the prologue.
    pub fn new(
        cipher: Cipher,
        key: &Psk,
        role: Role,
        (host_hello, dpu_hello): (&[u8], &[u8]),
    ) -> Result<Handshake, HandshakeError> {
        let hs = start(cipher, key, role, &prologue(host_hello, dpu_hello))
            .map_err(|e| HandshakeError::Protocol(format!("Noise handshake: {e}")))?;
        Ok(Handshake {
            hs: Box::new(hs),
            cipher,
            role,
        })
    }

    /// Appends an AUTH frame holding this side's next handshake message, carrying `payload`.
    pub fn write(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), HandshakeError> {
        let mut msg = Zeroizing::new([0u8; MAX_AUTH_PAYLOAD]);
        let n = self
            .hs
            .write_message(payload, &mut *msg)
            .map_err(|e| HandshakeError::Protocol(format!("Noise handshake: {e}")))?;
        Frame::Auth(&msg[..n]).encode(out);
        Ok(())
    }

    /// The payload of the peer's handshake message `msg`, if it verifies.
    pub fn read(&mut self, msg: &[u8]) -> Option<Vec<u8>> {
        let mut payload = Zeroizing::new([0u8; MAX_AUTH_PAYLOAD]);
        let n = self.hs.read_message(msg, &mut *payload).ok()?;
        Some(payload[..n].to_vec())
    }

    /// The transport keys, once both messages went through.
    pub fn split(mut self) -> Keys {
        split_keys(&mut self.hs, self.cipher, self.role)
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        wipe(&mut self.hs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AUTH frame's payload in `out`.
    fn auth(out: &[u8]) -> &[u8] {
        match Frame::decode(out, 0) {
            Ok(Some((Frame::Auth(p), _))) => p,
            other => panic!("{other:?}"),
        }
    }

    fn pair(cipher: Cipher, host_key: &Psk, dpu_key: &Psk, p: &[u8], q: &[u8]) -> Option<Keys> {
        let mut host = Handshake::new(cipher, host_key, Role::Host, (p, b"dpu")).unwrap();
        let mut dpu = Handshake::new(cipher, dpu_key, Role::Dpu, (q, b"dpu")).unwrap();
        let mut out = Vec::new();
        host.write(b"who", &mut out).unwrap();
        assert_eq!(dpu.read(auth(&out))?, b"who");
        out.clear();
        dpu.write(b"verdict", &mut out).unwrap();
        assert_eq!(host.read(auth(&out))?, b"verdict");
        // Each side's sending key is the other's receiving key.
        let mut h = host.split();
        let mut d = dpu.split();
        let mut rec = *b"frames";
        let tag = h.send.seal(&mut rec).unwrap();
        d.recv.open(&mut rec, &tag).ok()?;
        assert_eq!(&rec, b"frames");
        let tag = d.send.seal(&mut rec).unwrap();
        h.recv.open(&mut rec, &tag).ok()?;
        Some(h)
    }

    #[test]
    fn handshake_needs_the_same_key_and_hellos() {
        let k = Psk(vec![7; 40]);
        for cipher in [Cipher::AesGcm, Cipher::ChaChaPoly] {
            assert!(pair(cipher, &k, &k, b"hello", b"hello").is_some());
            assert!(pair(cipher, &k, &Psk(vec![8; 40]), b"hello", b"hello").is_none());
            assert!(pair(cipher, &k, &k, b"hello", b"hellO").is_none());
        }
        assert_ne!(prologue(b"ab", b"c"), prologue(b"a", b"bc"));
    }

    /// The host's identity in the first message is not in clear: only the key opens it.
    #[test]
    fn the_first_message_hides_its_payload() {
        let k = Psk(vec![7; 40]);
        let mut host = Handshake::new(Cipher::AesGcm, &k, Role::Host, (b"h", b"d")).unwrap();
        let mut out = Vec::new();
        host.write(b"myhost pid 1234", &mut out).unwrap();
        assert!(!out.windows(6).any(|w| w == b"myhost"));
        assert_eq!(auth(&out).len(), 32 + 15 + 16);
    }

    /// Dropping a state, or splitting it, overwrites snow's copy of the PSK: a handshake
    /// started from the wiped state no longer matches one with the key.
    #[test]
    fn the_psk_copy_is_wiped() {
        let k = Psk(vec![7; 40]);
        let mut wiped = start(Cipher::AesGcm, &k, Role::Host, b"p").unwrap();
        wipe(&mut wiped);
        let mut dpu = start(Cipher::AesGcm, &k, Role::Dpu, b"p").unwrap();
        let (mut m, mut scratch) = ([0u8; 64], [0u8; 64]);
        let n = wiped.write_message(&[], &mut m).unwrap();
        assert!(dpu.read_message(&m[..n], &mut scratch).is_err());
    }
}
