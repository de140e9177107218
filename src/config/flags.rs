//! The flags as given, before validation: the JSON file's layout (DOCA's arg-parser nesting)
//! with strict serde, and the integer ranges both the JSON file and the command line check.

use super::values::{ChannelAddr, MetricsAddr, PciAddr, Role, SocketMode};
use super::{MAX_BUSY_POLL_US, MAX_DRAIN_TIMEOUT, MAX_MAX_CLIENTS};
use crate::error::Error;
use crate::logging::{LogLevel, LogTarget};
use crate::wire::Cipher;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Settings as given, before validation. Filled from the command line or the JSON file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProgramFlags {
    /// `-s, --socket`
    pub socket: Option<PathBuf>,
    /// `-n, --cc-name`
    pub cc_name: Option<String>,
    /// `-p, --pci-addr`
    #[serde(default, deserialize_with = "de_from_str")]
    pub pci_addr: Option<PciAddr>,
    /// `-r, --rep-pci`
    #[serde(default, deserialize_with = "de_from_str")]
    pub rep_pci: Option<PciAddr>,
    /// `--role`
    #[serde(default, deserialize_with = "de_from_str")]
    pub role: Option<Role>,
    /// `--channel`
    #[serde(default, deserialize_with = "de_from_str")]
    pub channel: Option<ChannelAddr>,
    /// `--max-clients`
    #[serde(default, deserialize_with = "de_max_clients")]
    pub max_clients: Option<u32>,
    /// `--busy-poll`, microseconds.
    #[serde(default, deserialize_with = "de_busy_poll")]
    pub busy_poll: Option<u32>,
    /// `--drain-timeout`, seconds.
    #[serde(default, deserialize_with = "de_drain_timeout")]
    pub drain_timeout: Option<u32>,
    /// `--psk-file`
    pub psk_file: Option<PathBuf>,
    /// `--psk-file-next`
    pub psk_file_next: Option<PathBuf>,
    /// `--no-auth`
    pub no_auth: Option<bool>,
    /// `--encrypt`
    pub encrypt: Option<bool>,
    /// `--no-encrypt`
    pub no_encrypt: Option<bool>,
    /// `--cipher`
    #[serde(default, deserialize_with = "de_from_str")]
    pub cipher: Option<Cipher>,
    /// `--socket-mode`, octal digits in a string.
    #[serde(default, deserialize_with = "de_from_str")]
    pub socket_mode: Option<SocketMode>,
    /// `--log-target`
    #[serde(default, deserialize_with = "de_from_str")]
    pub log_target: Option<LogTarget>,
    /// `--metrics`
    #[serde(default, deserialize_with = "de_from_str")]
    pub metrics: Option<MetricsAddr>,
    /// `--check`: only check the configuration (the command line decides; kept out of
    /// [`super::Config`]).
    pub check: Option<bool>,
}

/// General (DOCA) flags as given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GeneralFlags {
    /// `-l, --log-level`
    pub log_level: Option<LogLevel>,
    /// `--sdk-log-level`: validated, otherwise unused (as in DOCA).
    pub sdk_log_level: Option<LogLevel>,
}

/// The JSON flag file in DOCA's arg-parser layout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagFile {
    /// Flags DOCA's arg parser owns.
    #[serde(default)]
    pub doca_general_flags: GeneralFlags,
    /// The program's own flags.
    #[serde(default)]
    pub doca_program_flags: ProgramFlags,
}

fn de_from_str<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// An integer flag whose type error names its range ("expected an integer from 1 to 65535"),
/// not Rust's type (`u32`); the range itself is enforced by [`Config::validate`].
struct Ranged(u32, u32);

impl<'de> serde::de::Visitor<'de> for Ranged {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from {} to {}", self.0, self.1)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v)
            .map_err(|_| E::custom(format!("must be from {} to {}, got {v}", self.0, self.1)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u32, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("must be from {} to {}, got {v}", self.0, self.1)))
            .and_then(|v| self.visit_u64(v))
    }
}

fn de_max_clients<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    d.deserialize_u32(Ranged(1, MAX_MAX_CLIENTS)).map(Some)
}

fn de_busy_poll<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    d.deserialize_u32(Ranged(0, MAX_BUSY_POLL_US)).map(Some)
}

fn de_drain_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    d.deserialize_u32(Ranged(0, MAX_DRAIN_TIMEOUT)).map(Some)
}

/// Parses an integer flag given on the command line; the error names its range.
pub(crate) fn parse_ranged(s: &str, (min, max): (u32, u32)) -> Result<u32, String> {
    match s.parse::<u64>() {
        Ok(v) => u32::try_from(v).map_err(|_| format!("must be from {min} to {max}, got {v}")),
        Err(_) => Err(format!(
            "expected an integer from {min} to {max}, got {s:?}"
        )),
    }
}

/// `--max-clients`' range, for [`parse_ranged`].
pub(crate) const MAX_CLIENTS_RANGE: (u32, u32) = (1, MAX_MAX_CLIENTS);
/// `--busy-poll`'s range, for [`parse_ranged`].
pub(crate) const BUSY_POLL_RANGE: (u32, u32) = (0, MAX_BUSY_POLL_US);
/// `--drain-timeout`'s range, for [`parse_ranged`].
pub(crate) const DRAIN_TIMEOUT_RANGE: (u32, u32) = (0, MAX_DRAIN_TIMEOUT);

impl FlagFile {
    /// Reads a JSON flag file; `//` and `/* */` comments are allowed.
    pub fn load(path: &Path) -> Result<FlagFile, Error> {
        let text = std::fs::read(path)
            .map_err(|e| Error::config(format!("--json {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::config(format!("--json {}: {e}", path.display())))
    }

    /// Parses the text of a flag file. The error names the offending key.
    pub fn parse(text: &[u8]) -> Result<FlagFile, String> {
        let stripped = json_comments::StripComments::new(text);
        let mut de = serde_json::Deserializer::from_reader(stripped);
        let file: FlagFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        })?;
        de.end().map_err(|e| e.to_string())?;
        Ok(file)
    }
}
