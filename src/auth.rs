//! Mutual pre-shared-key authentication of the channel.
//!
//! Each side proves it holds the key by sending `HMAC-SHA256(key, transcript)` where the
//! transcript is a fixed label, the prover's role, and both HELLO payloads (host's first). Both
//! HELLOs carry fresh 32-byte nonces, so a proof is bound to this one handshake (no replay), to
//! the service name and parameters inside the HELLOs (no downgrade), and to the prover's role (a
//! proof cannot be reflected back to the side that sent it).

use crate::config::{Psk, Role};
use crate::protocol::PROOF_LEN;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LABEL: &[u8] = b"doca-socket-relay auth v1\0";

fn mac(key: &Psk, prover: Role, host_hello: &[u8], dpu_hello: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    m.update(LABEL);
    m.update(match prover {
        Role::Host => b"host\0",
        Role::Dpu => b"dpu\0\0",
    });
    // Length prefixes keep the two variable-length HELLOs from being re-split.
    for hello in [host_hello, dpu_hello] {
        m.update(&(hello.len() as u32).to_be_bytes());
        m.update(hello);
    }
    m
}

/// The proof `prover` sends for a handshake with these HELLO payloads.
pub fn proof(key: &Psk, prover: Role, host_hello: &[u8], dpu_hello: &[u8]) -> [u8; PROOF_LEN] {
    mac(key, prover, host_hello, dpu_hello)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks the peer's proof in constant time.
pub fn verify(key: &Psk, prover: Role, host_hello: &[u8], dpu_hello: &[u8], got: &[u8]) -> bool {
    mac(key, prover, host_hello, dpu_hello)
        .verify_slice(got)
        .is_ok()
}

/// 32 fresh random bytes from the operating system.
pub fn nonce() -> std::io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::getrandom(&mut n).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_key_role_and_transcript() {
        let k = Psk(vec![1; 32]);
        let p = proof(&k, Role::Host, b"h", b"d");
        assert!(verify(&k, Role::Host, b"h", b"d", &p));
        assert!(!verify(&k, Role::Dpu, b"h", b"d", &p), "reflection");
        assert!(
            !verify(&k, Role::Host, b"h", b"e", &p),
            "replay with another nonce"
        );
        assert!(
            !verify(&Psk(vec![2; 32]), Role::Host, b"h", b"d", &p),
            "wrong key"
        );
        assert!(
            !verify(&k, Role::Host, b"hd", b"", &p),
            "re-split transcript"
        );
        assert!(!verify(&k, Role::Host, b"h", b"d", &p[..31]));
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
