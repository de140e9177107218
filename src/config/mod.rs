//! The relay's configuration: typed values, the JSON flag file, and the validation pass that
//! turns loose settings (from the command line or JSON) into a [`Config`].
//!
//! Every error names the flag (`--max-clients`) or JSON key (`doca_program_flags.max-clients`)
//! and maps to exit code 2. Nothing is bound or created until validation has passed.

pub mod cli;
pub mod keyfile;
pub mod keygen;
mod live;

pub use crate::logging::LogTarget;
pub use live::Live;

use crate::error::Error;
use crate::logging::LogLevel;
use crate::wire::{Cipher, Security};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
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

/// Which end of the relay this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Binds `--socket` for clients and connects to the channel.
    Host,
    /// Listens on the channel and connects to the server application at `--socket`.
    Dpu,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Host => "host",
            Role::Dpu => "dpu",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host" => Ok(Role::Host),
            "dpu" => Ok(Role::Dpu),
            _ => Err(format!("expected host or dpu, got {s:?}")),
        }
    }
}

/// Where the channel between the two roles runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelAddr {
    /// DOCA over PCIe: Comch when `libdoca_comch` is installed, else Comm Channel.
    Doca,
    /// DOCA Comch (DOCA 2.7 and later), forced.
    Comch,
    /// DOCA Comm Channel (DOCA 1.5 to 2.8), forced.
    CommChannel,
    /// TCP: the DPU role listens on `host:port`, the host role connects to it.
    Tcp(String, u16),
    /// An AF_UNIX stream socket path, for tests and same-machine setups.
    Unix(PathBuf),
}

impl FromStr for ChannelAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "doca" => return Ok(ChannelAddr::Doca),
            "comch" => return Ok(ChannelAddr::Comch),
            "comm-channel" => return Ok(ChannelAddr::CommChannel),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("expected tcp:HOST:PORT, got {s:?}"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port in {s:?} (1-65535)"))?;
            if host.is_empty() {
                return Err(format!("missing host in {s:?}"));
            }
            return Ok(ChannelAddr::Tcp(host.to_string(), port));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            check_socket_path(Path::new(path))?;
            return Ok(ChannelAddr::Unix(PathBuf::from(path)));
        }
        Err(format!(
            "expected doca, comch, comm-channel, tcp:HOST:PORT or unix:PATH, got {s:?}"
        ))
    }
}

impl ChannelAddr {
    /// Whether this is one of the DOCA channels (which need `-p`, and `-r` on the DPU).
    pub fn is_doca(&self) -> bool {
        matches!(
            self,
            ChannelAddr::Doca | ChannelAddr::Comch | ChannelAddr::CommChannel
        )
    }
}

impl fmt::Display for ChannelAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelAddr::Doca => write!(f, "doca"),
            ChannelAddr::Comch => write!(f, "comch"),
            ChannelAddr::CommChannel => write!(f, "comm-channel"),
            ChannelAddr::Tcp(h, p) if h.contains(':') => write!(f, "tcp:[{h}]:{p}"),
            ChannelAddr::Tcp(h, p) => write!(f, "tcp:{h}:{p}"),
            ChannelAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where `--metrics` listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    /// `tcp:HOST:PORT`
    Tcp(String, u16),
    /// `unix:PATH`
    Unix(PathBuf),
}

impl FromStr for MetricsAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<ChannelAddr>() {
            Ok(ChannelAddr::Tcp(h, p)) => Ok(MetricsAddr::Tcp(h, p)),
            Ok(ChannelAddr::Unix(p)) => Ok(MetricsAddr::Unix(p)),
            _ => Err(format!("expected tcp:HOST:PORT or unix:PATH, got {s:?}")),
        }
    }
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsAddr::Tcp(h, p) if h.contains(':') => write!(f, "tcp:[{h}]:{p}"),
            MetricsAddr::Tcp(h, p) => write!(f, "tcp:{h}:{p}"),
            MetricsAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A PCI address in `BB:DD.F` or `DDDD:BB:DD.F` form, as DOCA takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciAddr(pub String);

impl FromStr for PciAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected a PCI address like 03:00.0 or 0000:03:00.0, got {s:?}");
        let hex = |part: &str, len: usize, max: u32| {
            (part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(part, 16).ok())
                .flatten()
                .filter(|v| *v <= max)
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [b, df] => (None, *b, *df),
            [d, b, df] => (Some(*d), *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let ok = domain.is_none_or(|d| hex(d, 4, 0xffff).is_some())
            && hex(bus, 2, 0xff).is_some()
            && hex(dev, 2, 0x1f).is_some()
            && hex(func, 1, 7).is_some();
        if ok {
            Ok(PciAddr(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

/// A pre-shared key; its `Debug` never prints the bytes, and its memory is wiped when dropped,
/// so a core dump or a later heap allocation does not carry the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(pub Vec<u8>);

impl Drop for Psk {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk(<{} bytes>)", self.0.len())
    }
}

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
    /// [`Config`]).
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

/// File mode bits for the host socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl FromStr for SocketMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && !s.is_empty())
            .map(SocketMode)
            .ok_or_else(|| format!("expected octal permission bits like 0660, got {s:?}"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        for ok in ["03:00.0", "0000:03:00.0", "b1:1f.7", "FFFF:ff:00.1"] {
            assert!(ok.parse::<PciAddr>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "3:00.0",
            "03:00",
            "03:20.0",
            "03:00.8",
            "000:03:00.0",
            "g3:00.0",
        ] {
            assert!(bad.parse::<PciAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_addresses() {
        assert_eq!("doca".parse(), Ok(ChannelAddr::Doca));
        assert_eq!("comch".parse(), Ok(ChannelAddr::Comch));
        assert_eq!("comm-channel".parse(), Ok(ChannelAddr::CommChannel));
        assert_eq!(
            "tcp:127.0.0.1:9000".parse(),
            Ok(ChannelAddr::Tcp("127.0.0.1".into(), 9000))
        );
        assert_eq!(
            "tcp:[::1]:9000".parse(),
            Ok(ChannelAddr::Tcp("::1".into(), 9000))
        );
        assert!("tcp:host".parse::<ChannelAddr>().is_err());
        assert!("tcp:host:0".parse::<ChannelAddr>().is_err());
        assert!("udp:x:1".parse::<ChannelAddr>().is_err());
        let long = format!("unix:/{}", "a".repeat(200));
        assert!(long.parse::<ChannelAddr>().is_err());
    }

    #[test]
    fn log_targets() {
        assert_eq!("stderr".parse(), Ok(LogTarget::Stderr));
        assert_eq!("syslog".parse(), Ok(LogTarget::Syslog(None)));
        assert_eq!(
            "syslog:/run/x.sock".parse(),
            Ok(LogTarget::Syslog(Some("/run/x.sock".into())))
        );
        assert!("syslog:".parse::<LogTarget>().is_err());
        assert!("journal".parse::<LogTarget>().is_err());
    }

    #[test]
    fn socket_modes() {
        assert_eq!("0660".parse(), Ok(SocketMode(0o660)));
        assert_eq!("600".parse(), Ok(SocketMode(0o600)));
        assert!("0999".parse::<SocketMode>().is_err());
        assert!("1777".parse::<SocketMode>().is_err());
    }

    #[test]
    fn json_with_comments_parses() {
        let text = br#"{
            // general
            "doca_general_flags": { "log-level": 60 },
            /* program */
            "doca_program_flags": { "socket": "/tmp/a.sock", "cc-name": "x",
                                    "channel": "unix:/tmp/c.sock", "max-clients": 8 }
        }"#;
        let f = FlagFile::parse(text).unwrap();
        assert_eq!(f.doca_program_flags.max_clients, Some(8));
        assert_eq!(f.doca_general_flags.log_level, Some(LogLevel(60)));
        let f = FlagFile::parse(br#"{"doca_program_flags": {"busy-poll": 50}}"#).unwrap();
        assert_eq!(f.doca_program_flags.busy_poll, Some(50));
        let e = FlagFile::parse(br#"{"doca_program_flags": {"busy-poll": -1}}"#).unwrap_err();
        assert!(e.contains("doca_program_flags.busy-poll"), "{e}");
    }

    #[test]
    fn json_errors_name_the_key() {
        let e = FlagFile::parse(br#"{"doca_program_flags": {"max-clients": "many"}}"#).unwrap_err();
        assert!(e.contains("doca_program_flags.max-clients"), "{e}");
        let e = FlagFile::parse(br#"{"doca_program_flags": {"sockett": "/x"}}"#).unwrap_err();
        assert!(e.contains("sockett"), "{e}");
        let e = FlagFile::parse(br#"{"doca_program_flags": {"socket": "/a", "socket": "/b"}}"#)
            .unwrap_err();
        assert!(e.contains("duplicate field `socket`"), "{e}");
        let e = FlagFile::parse(br#"{"doca_general_flags": {"log-level": 55}}"#).unwrap_err();
        assert!(e.contains("doca_general_flags.log-level"), "{e}");
    }

    #[test]
    fn shipped_examples_parse() {
        for name in ["example.json", "example-dpu.json", "example-windows.json"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging")
                .join(name);
            let text = std::fs::read(&path).unwrap();
            let f = FlagFile::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let p = f.doca_program_flags;
            assert!(p.socket.is_some() && p.cc_name.is_some(), "{name}");
            // Everything but the key file (absent here) passes validation.
            let no_key = ProgramFlags {
                psk_file: None,
                no_auth: Some(true),
                ..p
            };
            Config::validate(f.doca_general_flags, no_key, &|n| n.to_string())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    fn flags(channel: &str) -> ProgramFlags {
        ProgramFlags {
            socket: Some("/tmp/x.sock".into()),
            cc_name: Some("svc".into()),
            channel: Some(channel.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn encryption_is_on_by_default_over_tcp_with_a_key_only() {
        let tcp: ChannelAddr = "tcp:127.0.0.1:1".parse().unwrap();
        let unix: ChannelAddr = "unix:/tmp/c".parse().unwrap();
        let key = |n: &str| format!("--{n}");
        let on = |e, n, c| encryption((e, n, c), &tcp, true, &key);
        assert_eq!(on(None, None, None), Ok(Some(DEFAULT_CIPHER)));
        assert_eq!(on(None, Some(true), None), Ok(None));
        let chacha = Some(Cipher::ChaChaPoly);
        assert_eq!(on(None, None, chacha), Ok(chacha));
        assert_eq!(
            on(Some(true), Some(true), None).unwrap_err(),
            ("no-encrypt", "conflicts with --encrypt".to_string())
        );
        assert_eq!(on(None, Some(true), chacha).unwrap_err().0, "cipher");
        assert_eq!(encryption((None, None, None), &tcp, false, &key), Ok(None));
        assert_eq!(encryption((None, None, None), &unix, true, &key), Ok(None));
        assert_eq!(
            encryption((Some(true), None, None), &unix, true, &key),
            Ok(Some(DEFAULT_CIPHER))
        );
        let e = encryption((Some(true), None, None), &unix, false, &key).unwrap_err();
        assert_eq!(e, ("encrypt", "needs a pre-shared key (--psk-file)".into()));
        let f = FlagFile::parse(
            br#"{"doca_program_flags": {"no-encrypt": true, "cipher": "chacha-poly"}}"#,
        )
        .unwrap();
        assert_eq!(f.doca_program_flags.cipher, chacha);
        assert!(FlagFile::parse(br#"{"doca_program_flags": {"cipher": "des"}}"#).is_err());
    }

    #[test]
    fn validation_rules() {
        let key = |n: &str| format!("--{n}");
        let e =
            Config::validate(GeneralFlags::default(), flags("tcp:127.0.0.1:1"), &key).unwrap_err();
        assert!(e.to_string().starts_with("--psk-file: is required"), "{e}");
        let mut f = flags("tcp:127.0.0.1:1");
        f.no_auth = Some(true);
        let c = Config::validate(GeneralFlags::default(), f, &key).unwrap();
        assert_eq!(
            (c.role, c.max_clients, c.socket_mode),
            (Role::Host, 512, 0o660)
        );
        let mut f = flags("doca");
        f.pci_addr = Some("03:00.0".parse().unwrap());
        f.rep_pci = Some("b1:00.0".parse().unwrap());
        let c = Config::validate(GeneralFlags::default(), f, &key).unwrap();
        assert_eq!(c.role, Role::Dpu);
        let e = Config::validate(GeneralFlags::default(), flags("doca"), &key).unwrap_err();
        assert!(e.to_string().starts_with("--pci-addr"), "{e}");
        let mut f = flags("unix:/tmp/c");
        f.max_clients = Some(0);
        let e = Config::validate(GeneralFlags::default(), f, &key).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        // A bad value is reported before a missing DOCA prerequisite.
        let mut f = flags("doca");
        f.max_clients = Some(0);
        let e = Config::validate(GeneralFlags::default(), f, &key).unwrap_err();
        assert!(e.to_string().starts_with("--max-clients:"), "{e}");
        // Busy polling: off unless asked for, up to one second.
        let c = Config::validate(GeneralFlags::default(), flags("unix:/tmp/c"), &key).unwrap();
        assert_eq!(c.busy_poll, Duration::ZERO);
        let mut f = flags("unix:/tmp/c");
        f.busy_poll = Some(1_000_000);
        let c = Config::validate(GeneralFlags::default(), f, &key).unwrap();
        assert_eq!(c.busy_poll, Duration::from_secs(1));
        let mut f = flags("unix:/tmp/c");
        f.busy_poll = Some(1_000_001);
        let e = Config::validate(GeneralFlags::default(), f, &key).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--busy-poll: must be from 0 to 1000000 microseconds, got 1000001"
        );
        // Every missing mandatory flag at once.
        let f = ProgramFlags {
            role: Some(Role::Dpu),
            ..Default::default()
        };
        let e = Config::validate(GeneralFlags::default(), f, &key).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--socket, --cc-name, --pci-addr, --rep-pci: are mandatory \
             (--pci-addr with the doca channel; --rep-pci on the DPU with the doca channel)"
        );
    }
}
