//! The handshake on a fresh channel connection (docs/PROTOCOL.md, "Handshake").
//!
//! The host speaks first: HELLO, and after the DPU side's HELLO an AUTH with its identity
//! (inside the Noise message, or after its proof). The DPU side says nothing until a HELLO of
//! this version has arrived, and nothing after its own HELLO until the host's AUTH verified; it
//! ends every handshake with its verdict, admitted or refused, inside its own AUTH, which is
//! authenticated whenever a key is configured. So a stranger learns no more than the service
//! name and mode, and only an ERROR from the peer that proved the key can be a refusal worth
//! waiting on: a clear ERROR is only the peer's claim ([`HandshakeError::PeerClaim`]).

pub mod auth;
mod error;
pub mod identity;
pub mod noise;
#[cfg(test)]
mod sealed_tests;

pub use error::HandshakeError;
pub(crate) use error::{unexpected, AUTH_FAILED};
#[cfg(test)]
mod tests;

use crate::config::{Config, Psk, Role};
use crate::handshake::noise::Handshake;
use crate::link::{FrameReader, Transport};
use crate::logging::text::lossy;
use crate::wire::record::{self, Sealer};
use crate::wire::Security;
use crate::wire::{cut, Frame, Hello, Identity, Verdict, HEADER_LEN, PROOF_LEN, VERSION};
use crate::wire::{MIN_MAX_MSG, STREAM_WINDOW};
use std::fmt;

/// Largest DATA payload a stream queues on a channel that splits DATA into its messages (in
/// clear only: a sealed record holds whole frames). One read from a socket fills it, where
/// frames of a 4 KiB DOCA message's size took one read each.
const SPLIT_DATA: usize = 256 * 1024;

/// What the handshake settled.
#[derive(Debug)]
pub struct Agreed {
    /// Largest DATA payload to queue (a DOCA channel in clear splits it into its messages).
    pub max_data: usize,
    /// Initial send credit per stream (the peer's window).
    pub peer_window: u32,
    /// The peer's HELLO.
    pub peer: Hello,
    /// The host's identity: the peer's on the DPU side, this process's own on the host side.
    pub host: Identity,
    /// Seals what this side sends, on an encrypted channel (the reader opens what arrives).
    pub sealer: Option<Sealer>,
    /// DPU side: what sending the verdict needs, until [`conclude`] sends it.
    pending: Option<Pending>,
    max_msg: u32,
}

/// The DPU side's half-finished handshake: the host is verified, the verdict not yet sent.
enum Pending {
    /// No key: the verdict goes in clear.
    Clear,
    /// Key proofs: the verdict goes after a proof over the transcript and the verdict.
    Proof { key: Psk, transcript: Vec<Vec<u8>> },
    /// Noise: the verdict is the payload of the second message.
    Noise(Handshake),
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pending::Clear => "Pending::Clear",
            Pending::Proof { .. } => "Pending::Proof",
            Pending::Noise(_) => "Pending::Noise",
        })
    }
}

/// Runs this side's part of the handshake on a fresh channel connection. On the host side it
/// ends with the DPU side's verdict; on the DPU side with the host verified and the verdict
/// still to send with [`conclude`]. On a mismatch the peer is sent an ERROR saying why.
pub async fn handshake(
    t: &Transport,
    reader: &mut FrameReader,
    cfg: &Config,
) -> Result<Agreed, HandshakeError> {
    let security = cfg.security();
    let mine = Hello {
        version: VERSION,
        security: security.code(),
        max_msg: t.max_msg(),
        window: STREAM_WINDOW,
        nonce: auth::nonce().map_err(HandshakeError::Io)?,
        service: cfg.cc_name.clone(),
    };
    let my_payload = mine.encode();
    let mut out = Vec::new();
    Frame::Hello(&my_payload).encode(&mut out);
    if cfg.role == Role::Host {
        t.write_all(&out).await.map_err(HandshakeError::Io)?;
    }
    let peer_payload = match reader.next_frame().await? {
        Frame::Hello(p) => p.to_vec(),
        other => return Err(unexpected(other, "HELLO")),
    };
    // Not this protocol: the DPU side closes without a word (nothing for a scanner).
    let peer = Hello::decode(&peer_payload).map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    if peer.version != VERSION {
        return Err(refuse(
            t,
            format!(
                "protocol version mismatch: ours is {VERSION}, the peer's {} (run the same release on both sides)",
                peer.version
            ),
        )
        .await);
    }
    if cfg.role == Role::Dpu {
        t.write_all(&out).await.map_err(HandshakeError::Io)?;
    }
    // Without a key nothing can be authenticated, so the service name is checked at once;
    // with one, only once the key is proven, so that its refusal is authenticated too.
    let problem = if security.code() != peer.security {
        Some(security_mismatch(security, peer.security))
    } else if peer.max_msg < MIN_MAX_MSG || peer.window < peer.max_msg {
        Some(format!(
            "unusable peer limits (message size {}, window {})",
            peer.max_msg, peer.window
        ))
    } else if cfg.psk.is_none() {
        service_mismatch(cfg, &peer)
    } else {
        None
    };
    if let Some(msg) = problem {
        return Err(refuse(t, msg).await);
    }

    let hellos = match cfg.role {
        Role::Host => (&my_payload[..], &peer_payload[..]),
        Role::Dpu => (&peer_payload[..], &my_payload[..]),
    };
    let max_msg = peer.max_msg.min(mine.max_msg);
    let mut agreed = Agreed {
        max_data: max_msg as usize - HEADER_LEN,
        peer_window: peer.window,
        peer,
        host: Identity {
            instance: identity::instance(),
            label: identity::label().to_string(),
        },
        sealer: None,
        pending: None,
        max_msg,
    };
    match cfg.role {
        Role::Host => host_auth(t, reader, cfg, hellos, &mut agreed).await?,
        Role::Dpu => dpu_auth(t, reader, cfg, hellos, &mut agreed).await?,
    }
    if let Security::Sealed(_) = security {
        agreed.max_data = record::max_run(max_msg as usize) - HEADER_LEN;
    } else if t.splits_data() {
        agreed.max_data = agreed.max_data.max(SPLIT_DATA);
    }
    // Message channels must pack frames to what both sides accept, not only this side.
    t.limit_max_msg(max_msg);
    if cfg.role == Role::Host {
        reader.grow();
    }
    Ok(agreed)
}

/// The host's AUTH (its identity, proven or encrypted with the key), then the DPU side's
/// verdict, checked before it is believed.
async fn host_auth(
    t: &Transport,
    reader: &mut FrameReader,
    cfg: &Config,
    (host_hello, dpu_hello): (&[u8], &[u8]),
    agreed: &mut Agreed,
) -> Result<(), HandshakeError> {
    let who = agreed.host.encode();
    let mut out = Vec::new();
    let mut noise = None;
    match (cfg.security(), &cfg.psk) {
        (Security::Sealed(cipher), Some(key)) => {
            let mut hs = Handshake::new(cipher, key, Role::Host, (host_hello, dpu_hello))?;
            hs.write(&who, &mut out)?;
            noise = Some(hs);
        }
        (_, Some(key)) => {
            let proof = auth::proof(key, Role::Host, &[host_hello, dpu_hello, &who]);
            Frame::Auth(&[&proof[..], &who].concat()).encode(&mut out);
        }
        (_, None) => Frame::Auth(&who).encode(&mut out),
    }
    t.write_all(&out).await.map_err(HandshakeError::Io)?;
    let answer = match reader.next_frame().await? {
        Frame::Auth(p) => p.to_vec(),
        other => return Err(unexpected(other, "the DPU side's verdict")),
    };
    let verdict = match (&mut noise, &cfg.psk) {
        (Some(hs), _) => hs.read(&answer),
        (None, Some(_)) if answer.len() >= PROOF_LEN => {
            let (proof, verdict) = answer.split_at(PROOF_LEN);
            let parts = [host_hello, dpu_hello, &who, verdict];
            // The DPU side answers with the key this side proved, or during a rotation with
            // the next one.
            let mut keys = cfg.psk.iter().chain(&cfg.psk_next);
            keys.any(|k| auth::verify(k, Role::Dpu, &parts, proof))
                .then(|| verdict.to_vec())
        }
        (None, Some(_)) => None,
        (None, None) => Some(answer),
    };
    let Some(verdict) = verdict else {
        return Err(refuse(t, AUTH_FAILED.into()).await);
    };
    match Verdict::decode(&verdict).map_err(|e| HandshakeError::Protocol(e.to_string()))? {
        Verdict::Refuse(why) if cfg.psk.is_some() => Err(HandshakeError::PeerRefused(why)),
        Verdict::Refuse(why) => Err(HandshakeError::PeerClaim(lossy(why.as_bytes()))),
        Verdict::Admit => {
            if let Some(hs) = noise {
                let keys = hs.split();
                // Whatever the peer sends after its handshake message is sealed.
                reader.set_opener(keys.recv);
                agreed.sealer = Some(Sealer::new(keys.send, agreed.max_msg as usize));
            }
            match service_mismatch(cfg, &agreed.peer) {
                Some(msg) => Err(refuse(t, msg).await),
                None => Ok(()),
            }
        }
    }
}

/// The DPU side verifies the host's AUTH and takes its identity. With a key, a service name
/// mismatch is refused now, in an authenticated verdict; otherwise the verdict waits for
/// [`conclude`].
async fn dpu_auth(
    t: &Transport,
    reader: &mut FrameReader,
    cfg: &Config,
    (host_hello, dpu_hello): (&[u8], &[u8]),
    agreed: &mut Agreed,
) -> Result<(), HandshakeError> {
    let auth = match reader.next_frame().await? {
        Frame::Auth(p) => p.to_vec(),
        other => return Err(unexpected(other, "AUTH")),
    };
    // During a key rotation a host may prove either key (`--psk-file-next`); the answer is
    // made with the one it proved.
    let keys = cfg.psk.iter().chain(&cfg.psk_next);
    let (who, pending) = match (cfg.security(), &cfg.psk) {
        (Security::Sealed(cipher), Some(_)) => {
            let mut opened = None;
            for key in keys {
                let mut hs = Handshake::new(cipher, key, Role::Dpu, (host_hello, dpu_hello))?;
                if let Some(who) = hs.read(&auth) {
                    opened = Some((who, Pending::Noise(hs)));
                    break;
                }
            }
            // Answer only a first message that verified: a stranger gets nothing to work on.
            match opened {
                Some(opened) => opened,
                None => return Err(refuse(t, AUTH_FAILED.into()).await),
            }
        }
        (_, Some(_)) => {
            let (proof, who) = auth.split_at(auth.len().min(PROOF_LEN));
            let parts = [host_hello, dpu_hello, who];
            let Some(key) = keys
                .into_iter()
                .find(|k| auth::verify(k, Role::Host, &parts, proof))
            else {
                return Err(refuse(t, AUTH_FAILED.into()).await);
            };
            let transcript = vec![host_hello.to_vec(), dpu_hello.to_vec(), who.to_vec()];
            (
                who.to_vec(),
                Pending::Proof {
                    key: key.clone(),
                    transcript,
                },
            )
        }
        (_, None) => (auth, Pending::Clear),
    };
    agreed.pending = Some(pending);
    agreed.host = Identity::decode(&who).map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    if let Some(msg) = service_mismatch(cfg, &agreed.peer) {
        let _ = conclude(t, reader, agreed, Verdict::Refuse(msg.clone())).await;
        return Err(HandshakeError::Refused(msg));
    }
    Ok(())
}

/// DPU side: ends the handshake with `verdict`, inside its AUTH (authenticated with the key,
/// if there is one). Admitted, the channel is ready for the session; refused, it is closed
/// and the error says why.
pub async fn conclude(
    t: &Transport,
    reader: &mut FrameReader,
    agreed: &mut Agreed,
    verdict: Verdict,
) -> Result<(), HandshakeError> {
    let payload = verdict.encode();
    let mut out = Vec::new();
    let mut keys = None;
    match agreed.pending.take() {
        Some(Pending::Clear) => Frame::Auth(&payload).encode(&mut out),
        Some(Pending::Proof { key, transcript }) => {
            let mut parts: Vec<&[u8]> = transcript.iter().map(Vec::as_slice).collect();
            parts.push(&payload);
            let proof = auth::proof(&key, Role::Dpu, &parts);
            Frame::Auth(&[&proof[..], &payload].concat()).encode(&mut out);
        }
        Some(Pending::Noise(mut hs)) => {
            hs.write(&payload, &mut out)?;
            keys = Some(hs.split());
        }
        None => {
            return Err(HandshakeError::Protocol(
                "the verdict was sent already".into(),
            ))
        }
    }
    let sent = t.write_all(&out).await;
    match verdict {
        Verdict::Admit => {
            sent.map_err(HandshakeError::Io)?;
            if let Some(keys) = keys {
                reader.set_opener(keys.recv);
                agreed.sealer = Some(Sealer::new(keys.send, agreed.max_msg as usize));
            }
            reader.grow();
            Ok(())
        }
        Verdict::Refuse(why) => {
            t.close();
            Err(HandshakeError::Refused(why))
        }
    }
}

fn service_mismatch(cfg: &Config, peer: &Hello) -> Option<String> {
    (peer.service != cfg.cc_name).then(|| {
        format!(
            "service name mismatch: this side serves {:?}, the peer {:?}",
            cfg.cc_name, peer.service
        )
    })
}

/// The reason a peer's security mode is refused, naming what to change.
fn security_mismatch(mine: Security, peer: u16) -> String {
    let theirs = Security::from_code(peer);
    let (what, hint) = match (mine, theirs) {
        (Security::None, _) | (_, Some(Security::None)) => ("authentication", ""),
        (Security::Sealed(_), Some(Security::Sealed(_))) => {
            ("cipher", " (give both sides the same --cipher)")
        }
        _ => (
            "encryption",
            " (give --no-encrypt, or --encrypt, to both sides or to neither)",
        ),
    };
    let theirs = theirs.map_or_else(|| format!("an unknown mode ({peer})"), |s| s.to_string());
    format!("{what} mismatch: this side uses {mine}, the peer {theirs}{hint}")
}

/// Sends ERROR with `msg` and closes the channel.
pub async fn refuse(t: &Transport, msg: String) -> HandshakeError {
    let mut out = Vec::new();
    // The peer rejects control payloads over the limit, which would lose the reason.
    let text = cut(&msg, crate::wire::MAX_CONTROL_PAYLOAD);
    Frame::Error(text.as_bytes()).encode(&mut out);
    let _ = t.write_all(&out).await;
    t.close();
    HandshakeError::Refused(msg)
}
