//! The handshake's payloads: HELLO, the host's identity (inside its AUTH) and the DPU side's
//! verdict (inside its AUTH). See `docs/PROTOCOL.md`, "Handshake".

use super::{cut, INSTANCE_LEN, MAGIC, MAX_AUTH_PAYLOAD, MAX_LABEL, NONCE_LEN, VERSION};
use std::fmt;

/// Handshake parameters: the host sends its HELLO first, the DPU side answers with its own
/// only after the host's arrived with the right magic and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version; both sides must send the same.
    pub version: u16,
    /// How the sender protects the channel: a [`crate::wire::Security`] code, kept raw so
    /// that a peer of another version is still told about the version first. (Versions 1
    /// and 2 sent 1 with a key and 0 without.)
    pub security: u16,
    /// Largest message the sender can receive, header included.
    pub max_msg: u32,
    /// Receive window per stream the sender grants.
    pub window: u32,
    /// Fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The service (`--cc-name`) the sender serves.
    pub service: String,
}

/// Length of a HELLO payload up to the service name's length byte.
const FIXED: usize = 4 + 2 + 2 + 4 + 4 + NONCE_LEN + 1;

impl Hello {
    /// Encodes the HELLO payload (not the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(FIXED + self.service.len());
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&self.version.to_be_bytes());
        p.extend_from_slice(&self.security.to_be_bytes());
        p.extend_from_slice(&self.max_msg.to_be_bytes());
        p.extend_from_slice(&self.window.to_be_bytes());
        p.extend_from_slice(&self.nonce);
        let service = cut(&self.service, u8::MAX as usize);
        p.push(service.len() as u8);
        p.extend_from_slice(service.as_bytes());
        p
    }

    /// Decodes a HELLO payload. Every version so far starts with the fields of this one, so a
    /// HELLO of another version is decoded as far as they go (versions 2 to 4 carried more
    /// after the service name) and the caller can refuse the peer with a clear "version
    /// mismatch" instead of a parse error.
    pub fn decode(p: &[u8]) -> Result<Hello, PayloadError> {
        if p.len() < FIXED || p[..4] != MAGIC {
            return Err(PayloadError::NotAPeer);
        }
        let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let version = u16_at(4);
        let name_end = FIXED + p[FIXED - 1] as usize;
        if p.len() < name_end || (version == VERSION && p.len() != name_end) {
            return Err(PayloadError::ServiceLength);
        }
        let service =
            std::str::from_utf8(&p[FIXED..name_end]).map_err(|_| PayloadError::ServiceNotUtf8)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&p[16..16 + NONCE_LEN]);
        Ok(Hello {
            version,
            security: u16_at(6),
            max_msg: u32_at(8),
            window: u32_at(12),
            nonce,
            service: service.to_string(),
        })
    }
}

/// Who the host is, sent inside its AUTH: in the encrypted part of the Noise handshake's first
/// message, or after the proof that covers it. The DPU side uses it to tell a host that
/// reconnects from another one (see `crate::roles::dpu::takeover`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Random per process: tells two host processes apart, and a host that reconnects from
    /// one that restarted.
    pub instance: [u8; INSTANCE_LEN],
    /// Host name and process id, for log lines and the refusal message only.
    pub label: String,
}

impl Identity {
    /// Encodes `instance [16] | label_len u8 | label`.
    pub fn encode(&self) -> Vec<u8> {
        let label = cut(&self.label, MAX_LABEL);
        let mut p = Vec::with_capacity(INSTANCE_LEN + 1 + label.len());
        p.extend_from_slice(&self.instance);
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
        p
    }

    /// Decodes what [`Identity::encode`] made; the label is taken lossily (it is only logged).
    pub fn decode(p: &[u8]) -> Result<Identity, PayloadError> {
        if p.len() < INSTANCE_LEN + 1
            || p.len() != INSTANCE_LEN + 1 + p[INSTANCE_LEN] as usize
            || p[INSTANCE_LEN] as usize > MAX_LABEL
        {
            return Err(PayloadError::IdentityLength);
        }
        let mut instance = [0u8; INSTANCE_LEN];
        instance.copy_from_slice(&p[..INSTANCE_LEN]);
        Ok(Identity {
            instance,
            label: String::from_utf8_lossy(&p[INSTANCE_LEN + 1..]).into_owned(),
        })
    }
}

/// The DPU side's decision about a host whose key (if any) it verified: `0` admitted, or `1`
/// and the reason it is refused, inside the DPU side's AUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it (replacing the old session, if any).
    Admit,
    /// Refuse it with this reason.
    Refuse(String),
}

/// Longest refusal reason: what fits in an AUTH with a Noise message's key and tag (48 bytes)
/// and the verdict's status byte.
pub const MAX_REASON: usize = MAX_AUTH_PAYLOAD - 48 - 1;

impl Verdict {
    /// Encodes the status byte and, for a refusal, its reason cut to [`MAX_REASON`].
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Verdict::Admit => vec![0],
            Verdict::Refuse(why) => {
                let why = cut(why, MAX_REASON);
                let mut p = Vec::with_capacity(1 + why.len());
                p.push(1);
                p.extend_from_slice(why.as_bytes());
                p
            }
        }
    }

    /// Decodes what [`Verdict::encode`] made.
    pub fn decode(p: &[u8]) -> Result<Verdict, PayloadError> {
        match p.split_first() {
            Some((0, [])) => Ok(Verdict::Admit),
            Some((1, why)) => Ok(Verdict::Refuse(String::from_utf8_lossy(why).into_owned())),
            _ => Err(PayloadError::Verdict),
        }
    }
}

/// A handshake payload that does not decode. Any of these refuses the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// No HELLO magic, or too short for one.
    NotAPeer,
    /// The service name's length does not match the payload.
    ServiceLength,
    /// The service name is not UTF-8.
    ServiceNotUtf8,
    /// The host identity's instance or label length is wrong.
    IdentityLength,
    /// The verdict is neither admitted nor refused with a reason.
    Verdict,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadError::NotAPeer => "not a doca_socket_relay peer (bad HELLO)",
            PayloadError::ServiceLength => "malformed HELLO (service name length)",
            PayloadError::ServiceNotUtf8 => "malformed HELLO (service name is not UTF-8)",
            PayloadError::IdentityLength => "malformed host identity (instance or label length)",
            PayloadError::Verdict => "malformed verdict from the DPU side",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(version: u16) -> Hello {
        Hello {
            version,
            security: 2,
            max_msg: 4080,
            window: 1 << 19,
            nonce: [9; NONCE_LEN],
            service: "cc_channel".into(),
        }
    }

    #[test]
    fn hello_roundtrip_and_garbage() {
        let h = hello(VERSION);
        assert_eq!(Hello::decode(&h.encode()), Ok(h.clone()));
        let mut p = h.encode();
        p.pop();
        assert_eq!(Hello::decode(&p), Err(PayloadError::ServiceLength));
        let mut p = h.encode();
        p.push(0);
        assert_eq!(Hello::decode(&p), Err(PayloadError::ServiceLength));
        assert_eq!(
            Hello::decode(b"GET / HTTP/1.0\r\n\r\n"),
            Err(PayloadError::NotAPeer)
        );
        let mut p = h.encode();
        p[0] = b'X';
        assert_eq!(Hello::decode(&p), Err(PayloadError::NotAPeer));
    }

    /// A version 4 HELLO (instance and label after the service name) decodes far enough to be
    /// refused by version, and so does a version 1 one (nothing after it).
    #[test]
    fn older_hellos_decode_for_the_mismatch_message() {
        let mut v4 = hello(4).encode();
        v4.extend_from_slice(&[3; INSTANCE_LEN]);
        v4.push(4);
        v4.extend_from_slice(b"host");
        assert_eq!(Hello::decode(&v4), Ok(hello(4)));
        assert_eq!(Hello::decode(&hello(1).encode()), Ok(hello(1)));
    }

    #[test]
    fn identity_and_verdict_roundtrip() {
        let id = Identity {
            instance: [3; INSTANCE_LEN],
            label: "hostname pid 42".into(),
        };
        assert_eq!(Identity::decode(&id.encode()), Ok(id.clone()));
        let mut p = id.encode();
        p.pop();
        assert_eq!(Identity::decode(&p), Err(PayloadError::IdentityLength));
        assert_eq!(
            Identity::decode(&[0; INSTANCE_LEN]),
            Err(PayloadError::IdentityLength)
        );
        let long = Identity {
            label: "x".repeat(300),
            ..id
        };
        assert_eq!(
            Identity::decode(&long.encode()).unwrap().label.len(),
            MAX_LABEL
        );

        for v in [Verdict::Admit, Verdict::Refuse("another host".into())] {
            assert_eq!(Verdict::decode(&v.encode()), Ok(v));
        }
        let huge = Verdict::Refuse("é".repeat(400)).encode();
        assert!(huge.len() <= 1 + MAX_REASON);
        assert_eq!(Verdict::decode(&[0, 1]), Err(PayloadError::Verdict));
        assert_eq!(Verdict::decode(&[2]), Err(PayloadError::Verdict));
        assert_eq!(Verdict::decode(&[]), Err(PayloadError::Verdict));
    }
}
