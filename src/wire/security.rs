//! Channel security: which mode a side runs (no key, key proofs, or encryption), the Noise
//! handshake that keys an encrypted channel, and the record layer that seals frames.
//!
//! An encrypted channel runs `Noise_NNpsk0_25519_{AESGCM,ChaChaPoly}_SHA256` right after the
//! HELLO exchange, with both HELLOs as the prologue, so the service name, limits, version and
//! mode are bound into the keys. Afterwards every batch of frames travels as sealed records,
//! each one Noise transport message holding whole frames. See `docs/PROTOCOL.md`.

use std::fmt;

/// How a side protects the channel, as announced in HELLO. Both sides must announce the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// No key: frames in clear and nobody authenticated.
    None,
    /// Pre-shared-key proofs (AUTH both ways), then frames in clear.
    Psk,
    /// A Noise handshake keyed by the pre-shared key, then every frame inside sealed records.
    Sealed(Cipher),
}

/// The AEAD cipher of an encrypted channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM (AES-NI and PCLMULQDQ on x86-64, the Armv8 crypto extensions on Arm).
    AesGcm,
    /// ChaCha20-Poly1305.
    ChaChaPoly,
}

impl Security {
    /// The code carried in HELLO.
    pub fn code(self) -> u16 {
        match self {
            Security::None => 0,
            Security::Psk => 1,
            Security::Sealed(Cipher::AesGcm) => 2,
            Security::Sealed(Cipher::ChaChaPoly) => 3,
        }
    }

    /// The mode a HELLO code stands for, if this version knows it.
    pub fn from_code(code: u16) -> Option<Security> {
        Some(match code {
            0 => Security::None,
            1 => Security::Psk,
            2 => Security::Sealed(Cipher::AesGcm),
            3 => Security::Sealed(Cipher::ChaChaPoly),
            _ => return None,
        })
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::None => f.write_str("no key"),
            Security::Psk => f.write_str("a pre-shared key without encryption"),
            Security::Sealed(c) => write!(f, "a pre-shared key with encryption ({c})"),
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cipher::AesGcm => "aes-gcm",
            Cipher::ChaChaPoly => "chacha-poly",
        })
    }
}

impl std::str::FromStr for Cipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aes-gcm" => Ok(Cipher::AesGcm),
            "chacha-poly" => Ok(Cipher::ChaChaPoly),
            _ => Err(format!("expected aes-gcm or chacha-poly, got {s:?}")),
        }
    }
}
