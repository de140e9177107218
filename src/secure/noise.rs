//! The Noise handshake of an encrypted channel: `NNpsk0` keyed by the pre-shared key.
//!
//! The host (initiator) sends `psk, e`, the DPU side answers `e, ee`, each in an AUTH frame.
//! Mixing the key in before the first message means the first message's tag already proves the
//! host holds it, so the DPU side answers nothing to a peer without the key, as with the plain
//! proofs. The ephemeral keys give forward secrecy: a key file stolen later does not open
//! recorded traffic. Both HELLO payloads are the prologue, so a peer that saw other HELLOs than
//! this side sent (another service name, other limits, another mode) cannot finish.
//!
//! Only the handshake runs in `snow`; its split keys go to [`super::record`], which seals and
//! opens records in place (snow's transport API copies every message into a second buffer).

use super::record::CipherState;
use super::Cipher;
use crate::channel::{refuse, unexpected, FrameReader, HandshakeError, Transport, AUTH_FAILED};
use crate::config::{Psk, Role};
use crate::protocol::Frame;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PROLOGUE_LABEL: &[u8] = b"doca-socket-relay noise v1\0";
const PSK_LABEL: &[u8] = b"doca-socket-relay noise psk v1";
/// Largest handshake message: an ephemeral public key and the tag of an empty payload.
const MSG_LEN: usize = 32 + 16;

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
/// keeps it apart from the plain proofs made with the same file.
fn noise_psk(key: &Psk) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    m.update(PSK_LABEL);
    m.finalize().into_bytes().into()
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

/// A handshake state for `role`.
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

/// The keys of a finished handshake, as `role` uses them.
pub fn split(mut hs: snow::HandshakeState, cipher: Cipher, role: Role) -> Keys {
    let (initiator_to_responder, responder_to_initiator) = hs.dangerously_get_raw_split();
    let (send, recv) = match role {
        Role::Host => (initiator_to_responder, responder_to_initiator),
        Role::Dpu => (responder_to_initiator, initiator_to_responder),
    };
    // Wiped on return; ring's key schedules cannot be, they live as long as the session.
    let (send, recv) = (zeroize::Zeroizing::new(send), zeroize::Zeroizing::new(recv));
    Keys {
        send: CipherState::new(cipher, &send),
        recv: CipherState::new(cipher, &recv),
    }
}

/// Appends an AUTH frame holding the next handshake message to `out`.
fn write(hs: &mut snow::HandshakeState, out: &mut Vec<u8>) -> Result<(), HandshakeError> {
    let mut msg = [0u8; MSG_LEN];
    let n = hs
        .write_message(&[], &mut msg)
        .map_err(|e| HandshakeError::Protocol(format!("Noise handshake: {e}")))?;
    Frame::Auth(&msg[..n]).encode(out);
    Ok(())
}

async fn receive(
    t: &Transport,
    reader: &mut FrameReader,
    hs: &mut snow::HandshakeState,
) -> Result<(), HandshakeError> {
    match reader.next_frame().await? {
        Frame::Auth(p) => {
            let mut payload = [0u8; MSG_LEN];
            if hs.read_message(p, &mut payload).is_err() {
                return Err(refuse(t, AUTH_FAILED.into()).await);
            }
            Ok(())
        }
        other => Err(unexpected(other, "a Noise handshake message")),
    }
}

/// Runs the handshake over AUTH frames after the HELLO exchange. The DPU side's answer is
/// its verdict: it goes into `verdict`, sent once the DPU side has decided to serve the host.
pub async fn handshake(
    t: &Transport,
    reader: &mut FrameReader,
    (cipher, key, role): (Cipher, &Psk, Role),
    (host_hello, dpu_hello): (&[u8], &[u8]),
    verdict: &mut Vec<u8>,
) -> Result<Keys, HandshakeError> {
    let mut hs = start(cipher, key, role, &prologue(host_hello, dpu_hello))
        .map_err(|e| HandshakeError::Protocol(format!("Noise handshake: {e}")))?;
    match role {
        Role::Host => {
            let mut out = Vec::new();
            write(&mut hs, &mut out)?;
            t.write_all(&out).await.map_err(HandshakeError::Io)?;
            receive(t, reader, &mut hs).await?;
        }
        Role::Dpu => {
            // Answer only a first message that verified: a stranger gets nothing to work on.
            receive(t, reader, &mut hs).await?;
            write(&mut hs, verdict)?;
        }
    }
    Ok(split(hs, cipher, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cipher: Cipher, host_key: &Psk, dpu_key: &Psk, p: &[u8], q: &[u8]) -> Option<Keys> {
        let mut host = start(cipher, host_key, Role::Host, p).unwrap();
        let mut dpu = start(cipher, dpu_key, Role::Dpu, q).unwrap();
        let (mut m, mut scratch) = ([0u8; MSG_LEN], [0u8; MSG_LEN]);
        let n = host.write_message(&[], &mut m).unwrap();
        dpu.read_message(&m[..n], &mut scratch).ok()?;
        let n = dpu.write_message(&[], &mut m).unwrap();
        host.read_message(&m[..n], &mut scratch).ok()?;
        // Each side's sending key is the other's receiving key.
        let mut h = split(host, cipher, Role::Host);
        let mut d = split(dpu, cipher, Role::Dpu);
        let mut rec = *b"frames";
        let tag = h.send.seal(&mut rec);
        d.recv.open(&mut rec, &tag).ok()?;
        assert_eq!(&rec, b"frames");
        let tag = d.send.seal(&mut rec);
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
}
