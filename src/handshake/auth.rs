//! Mutual pre-shared-key authentication of the channel.
//!
//! Each side proves it holds the key by sending `HMAC-SHA256(key, transcript)` where the
//! transcript is a fixed label, the prover's role, both HELLO payloads (host's first) and what
//! the AUTH carries besides the proof: the host's identity, and in the DPU side's proof also its
//! verdict, so that a refusal is as authenticated as an admission. Both HELLOs carry fresh
//! 32-byte nonces, so a proof is bound to this one handshake (no replay), to the service name
//! and parameters inside the HELLOs (no downgrade), and to the prover's role (a proof cannot be
//! reflected back to the side that sent it).

use crate::config::{Psk, Role};
use crate::wire::PROOF_LEN;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LABEL: &[u8] = b"doca-socket-relay auth v2\0";

fn mac(key: &Psk, prover: Role, parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    m.update(LABEL);
    m.update(match prover {
        Role::Host => b"host\0",
        Role::Dpu => b"dpu\0\0",
    });
    // Length prefixes keep the variable-length parts from being re-split.
    for part in parts {
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part);
    }
    m
}

/// The proof `prover` sends over the transcript `parts`: both HELLO payloads (host's first),
/// the host's identity and, from the DPU side, its verdict.
pub fn proof(key: &Psk, prover: Role, parts: &[&[u8]]) -> [u8; PROOF_LEN] {
    mac(key, prover, parts).finalize().into_bytes().into()
}

/// Checks the peer's proof over `parts` in constant time.
pub fn verify(key: &Psk, prover: Role, parts: &[&[u8]], got: &[u8]) -> bool {
    mac(key, prover, parts).verify_slice(got).is_ok()
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
        let p = proof(&k, Role::Host, &[b"h", b"d", b"who"]);
        assert!(verify(&k, Role::Host, &[b"h", b"d", b"who"], &p));
        assert!(
            !verify(&k, Role::Dpu, &[b"h", b"d", b"who"], &p),
            "reflection"
        );
        assert!(
            !verify(&k, Role::Host, &[b"h", b"e", b"who"], &p),
            "replay with another nonce"
        );
        assert!(
            !verify(&k, Role::Host, &[b"h", b"d", b"whom"], &p),
            "another identity"
        );
        assert!(
            !verify(&Psk(vec![2; 32]), Role::Host, &[b"h", b"d", b"who"], &p),
            "wrong key"
        );
        assert!(
            !verify(&k, Role::Host, &[b"hd", b"", b"who"], &p),
            "re-split transcript"
        );
        assert!(!verify(&k, Role::Host, &[b"h", b"d", b"who"], &p[..31]));
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
