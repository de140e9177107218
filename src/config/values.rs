//! The typed values of single flags: role, channel and metrics addresses, PCI address, key,
//! socket mode. Each parses from the text a user writes and prints back the same way.

use super::check_socket_path;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
