//! The relay's configuration: typed values, the JSON flag file, and the validation pass that
//! turns loose settings (from the command line or JSON) into a [`Config`].
//!
//! Every error names the flag (`--max-clients`) or JSON key (`doca_program_flags.max-clients`)
//! and maps to exit code 2. Nothing is bound or created until validation has passed.

pub mod cli;
mod flags;
pub mod keyfile;
pub mod keygen;
mod live;
#[cfg(test)]
mod tests;
mod values;

pub use crate::logging::LogTarget;
pub use flags::*;
pub use live::Live;
pub use values::*;

use crate::error::Error;
use crate::logging::LogLevel;
use crate::wire::{Cipher, Security};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest AF_UNIX path in bytes: `sun_path` is 108 bytes including the trailing NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Longest accepted service name in bytes.
pub const MAX_SERVICE_NAME: usize = 120;
/// Smallest accepted pre-shared key.
pub const MIN_PSK_LEN: usize = 32;
/// Default and largest `--max-clients`.
pub const DEFAULT_MAX_CLIENTS: u32 = 512;
const MAX_MAX_CLIENTS: u32 = 65535;
/// Longest `--busy-poll`, in microseconds: one second, beyond which spinning only burns a core.
const MAX_BUSY_POLL_US: u32 = 1_000_000;
/// Seconds open streams may go on after SIGTERM unless `--drain-timeout` says otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: u32 = 10;
/// Longest `--drain-timeout`: an hour (the unit's TimeoutStopSec= must be raised to match).
const MAX_DRAIN_TIMEOUT: u32 = 3600;

/// The validated configuration the relay runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Program log level.
    pub log_level: LogLevel,
    /// Host role: the path clients connect to. DPU role: the server application's socket.
    pub socket: PathBuf,
    /// Service name both sides must agree on.
    pub cc_name: String,
    /// DOCA device PCI address.
    pub pci_addr: Option<PciAddr>,
    /// DOCA representor PCI address (DPU only).
    pub rep_pci: Option<PciAddr>,
    /// This side's role.
    pub role: Role,
    /// The channel between the roles.
    pub channel: ChannelAddr,
    /// Most clients relayed at once.
    pub max_clients: u32,
    /// How long the event loop keeps polling its sockets before it sleeps; zero (the
    /// default) sleeps at once.
    pub busy_poll: Duration,
    /// How long open streams may go on after SIGTERM before the rest are cut.
    pub drain_timeout: Duration,
    /// Pre-shared key, or `None` when authentication is off.
    pub psk: Option<Psk>,
    /// A second key accepted from the peer while keys are rotated (`--psk-file-next`).
    pub psk_next: Option<Psk>,
    /// What is doubtful about the key file (it looks like text), naming the flag or JSON key:
    /// logged at WARN on start, a note under `--check`.
    pub psk_warning: Option<String>,
    /// The cipher of an encrypted channel, or `None` when frames travel in clear.
    pub encrypt: Option<Cipher>,
    /// Mode bits for the host socket.
    pub socket_mode: u32,
    /// Where log lines go.
    pub log_target: LogTarget,
    /// Where the metrics endpoint listens (`--metrics`), if anywhere.
    pub metrics: Option<MetricsAddr>,
    /// The JSON file the configuration came from (`--json`), which a reload reads again.
    pub json: Option<PathBuf>,
}

/// Checks that `path` fits in `sun_path`.
pub fn check_socket_path(path: &Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len == 0 {
        return Err("the path is empty".into());
    }
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "{} is {len} bytes long, over the AF_UNIX limit of {MAX_SOCKET_PATH}",
            path.display()
        ));
    }
    Ok(())
}

impl Config {
    /// The validation pass: mandatory flags, cross-flag rules, and reading the key file.
    /// `key` turns a flag's long name into how the user wrote it (`--socket` or a JSON key).
    pub fn validate(
        general: GeneralFlags,
        p: ProgramFlags,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Config, Error> {
        let err = |name: &str, msg: &str| Error::config(format!("{}: {msg}", key(name)));
        // Values given are checked first; then every missing mandatory flag is named at once.
        if let Some(socket) = &p.socket {
            check_socket_path(socket).map_err(|m| err("socket", &m))?;
        }
        if let Some(cc_name) = &p.cc_name {
            if cc_name.is_empty() || cc_name.len() > MAX_SERVICE_NAME || cc_name.contains('\0') {
                return Err(err(
                    "cc-name",
                    &format!("must be 1 to {MAX_SERVICE_NAME} bytes without NUL"),
                ));
            }
        }
        let max_clients = p.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS);
        if !(1..=MAX_MAX_CLIENTS).contains(&max_clients) {
            return Err(err(
                "max-clients",
                &format!("must be from 1 to {MAX_MAX_CLIENTS}, got {max_clients}"),
            ));
        }
        let busy_poll = p.busy_poll.unwrap_or(0);
        if busy_poll > MAX_BUSY_POLL_US {
            return Err(err(
                "busy-poll",
                &format!("must be from 0 to {MAX_BUSY_POLL_US} microseconds, got {busy_poll}"),
            ));
        }
        let drain_timeout = p.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        if drain_timeout > MAX_DRAIN_TIMEOUT {
            return Err(err(
                "drain-timeout",
                &format!("must be from 0 to {MAX_DRAIN_TIMEOUT} seconds, got {drain_timeout}"),
            ));
        }
        let role = p.role.unwrap_or(if p.rep_pci.is_some() {
            Role::Dpu
        } else {
            Role::Host
        });
        let channel = p.channel.unwrap_or(ChannelAddr::Doca);
        let doca = channel.is_doca();
        let missing: Vec<(String, &str)> = [
            ("socket", p.socket.is_none(), ""),
            ("cc-name", p.cc_name.is_none(), ""),
            (
                "pci-addr",
                doca && p.pci_addr.is_none(),
                "with the doca channel",
            ),
            (
                "rep-pci",
                doca && role == Role::Dpu && p.rep_pci.is_none(),
                "on the DPU with the doca channel",
            ),
        ]
        .into_iter()
        .filter(|(_, absent, _)| *absent)
        .map(|(name, _, when)| (key(name), when))
        .collect();
        let (Some(socket), Some(cc_name), true) = (p.socket, p.cc_name, missing.is_empty()) else {
            return Err(missing_error(&missing));
        };
        let no_auth = p.no_auth.unwrap_or(false);
        let (psk, mut psk_warning) = match (&p.psk_file, no_auth) {
            (Some(_), true) => {
                return Err(err(
                    "no-auth",
                    &format!("conflicts with {}", key("psk-file")),
                ))
            }
            (Some(path), false) => {
                let (psk, warning) = read_key(path, "psk-file", key)?;
                (Some(psk), warning)
            }
            (None, _) => (None, None),
        };
        let psk_next = match (&p.psk_file_next, &psk) {
            (Some(_), None) => {
                return Err(err(
                    "psk-file-next",
                    &format!("needs {} (the key in use)", key("psk-file")),
                ))
            }
            (Some(path), Some(current)) => {
                let (next, warning) = read_key(path, "psk-file-next", key)?;
                psk_warning = psk_warning.or(warning);
                if &next == current {
                    psk_warning.get_or_insert(format!(
                        "{}: holds the same key as {}",
                        key("psk-file-next"),
                        key("psk-file")
                    ));
                }
                Some(next)
            }
            (None, _) => None,
        };
        if matches!(channel, ChannelAddr::Tcp(..)) && psk.is_none() && !no_auth {
            return Err(err(
                "psk-file",
                &format!(
                    "is required on a tcp channel (or set {} to run without authentication)",
                    key("no-auth")
                ),
            ));
        }
        let encrypt = encryption(
            (p.encrypt, p.no_encrypt, p.cipher),
            &channel,
            psk.is_some(),
            key,
        )
        .map_err(|(k, m)| err(k, &m))?;
        Ok(Config {
            log_level: general.log_level.unwrap_or_default(),
            socket,
            cc_name,
            pci_addr: p.pci_addr,
            rep_pci: p.rep_pci,
            role,
            channel,
            max_clients,
            busy_poll: Duration::from_micros(busy_poll.into()),
            drain_timeout: Duration::from_secs(drain_timeout.into()),
            psk,
            psk_next,
            psk_warning,
            encrypt,
            socket_mode: p.socket_mode.map_or(DEFAULT_SOCKET_MODE, |m| m.0),
            log_target: p.log_target.unwrap_or(LogTarget::Stderr),
            metrics: p.metrics,
            json: None,
        })
    }
}

/// Reads a key file flag (`name`); a doubtful key's warning names the flag as the user wrote it.
fn read_key(
    path: &Path,
    name: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<(Psk, Option<String>), Error> {
    let file = crate::config::keyfile::read_psk(path)
        .map_err(|m| Error::config(format!("{}: {m}", key(name))))?;
    // Through the error type for its escaping: the path must not split the line.
    let warning = file
        .warning
        .map(|w| Error::config(format!("{}: {w}", key(name))).to_string());
    Ok((file.psk, warning))
}

/// Whether and how the channel is encrypted: by default over tcp when a key is given, else only
/// with `--encrypt`. An error names the flag at fault, and any other flag as `key` writes it.
fn encryption(
    (on, off, cipher): (Option<bool>, Option<bool>, Option<Cipher>),
    channel: &ChannelAddr,
    has_key: bool,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<Cipher>, (&'static str, String)> {
    let (on, off) = (on.unwrap_or(false), off.unwrap_or(false));
    if on && off {
        return Err(("no-encrypt", format!("conflicts with {}", key("encrypt"))));
    }
    if on && !has_key {
        return Err((
            "encrypt",
            format!("needs a pre-shared key ({})", key("psk-file")),
        ));
    }
    let wanted = on || (!off && has_key && matches!(channel, ChannelAddr::Tcp(..)));
    match (wanted, cipher) {
        (true, cipher) => Ok(Some(cipher.unwrap_or(DEFAULT_CIPHER))),
        (false, Some(_)) => Err(("cipher", "has no effect on an unencrypted channel".into())),
        (false, None) => Ok(None),
    }
}

/// Mode bits of the host socket unless `--socket-mode` names others.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// The cipher used unless `--cipher` names another; chosen from bench/RESULTS.md.
pub const DEFAULT_CIPHER: Cipher = Cipher::AesGcm;

impl Config {
    /// How this side protects the channel, as announced in HELLO.
    pub fn security(&self) -> Security {
        match (&self.psk, self.encrypt) {
            (None, _) => Security::None,
            (Some(_), None) => Security::Psk,
            (Some(_), Some(cipher)) => Security::Sealed(cipher),
        }
    }
}

/// One error naming every missing mandatory flag (or key), with when it is mandatory.
fn missing_error(missing: &[(String, &str)]) -> Error {
    let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
    let when: Vec<String> = missing
        .iter()
        .filter(|(_, w)| !w.is_empty())
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    Error::config(match (names.as_slice(), missing) {
        ([name], [(_, "")]) => format!("{name}: is mandatory"),
        ([name], [(_, w)]) => format!("{name}: is mandatory {w}"),
        _ if when.is_empty() => format!("{}: are mandatory", names.join(", ")),
        _ => format!("{}: are mandatory ({})", names.join(", "), when.join("; ")),
    })
}
