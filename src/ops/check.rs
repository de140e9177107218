//! `--check`: validates a configuration without running it, as `nginx -t` and `sshd -t` do.
//!
//! The flags (or JSON file) and the key file (owner, mode, size) have been validated by the
//! time this runs. Here the start is rehearsed as far as it can be without keeping anything:
//! the directories exist and are writable where the relay would create a socket, an existing
//! path is a stale socket (a live one is a problem: the start would stop there), the server
//! application's socket can be opened for writing, the DPU side's tcp address resolves and is
//! free (listened on for a moment and released), and a DOCA channel has its library. Then
//! what would run is printed.

use crate::config::{ChannelAddr, Config, LogTarget, MetricsAddr, Role};
use crate::sys::unix_socket::{file_kind, may_write, FileKind};
use std::path::Path;

/// The outcome: lines describing what would run, and the problems found (none: exit 0).
pub struct Report {
    /// What would run, one line each.
    pub plan: Vec<String>,
    /// Notes that do not stop a start (e.g. the server application is not up yet).
    pub notes: Vec<String>,
    /// Problems that would stop or break a start.
    pub problems: Vec<String>,
}

/// Checks `cfg`; nothing it binds outlives the call.
pub fn check(cfg: &Config) -> Report {
    let mut r = Report {
        plan: plan(cfg),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    if let Err(e) = crate::ops::refuse::refuse(cfg) {
        r.problems.push(e);
    }
    r.notes.extend(cfg.psk_warning.clone());
    let socket = cfg.socket.as_path();
    match cfg.role {
        Role::Host if std::env::var_os("LISTEN_FDS").is_some() => r
            .notes
            .push("--socket: systemd passes the listening socket; the path is not checked".into()),
        Role::Host => check_bind_path(&mut r, "--socket", socket),
        Role::Dpu => check_server_socket(&mut r, socket),
    }
    match &cfg.channel {
        ChannelAddr::Unix(path) if cfg.role == Role::Dpu => {
            check_bind_path(&mut r, "--channel", path)
        }
        ChannelAddr::Unix(_) => {}
        ChannelAddr::Tcp(host, port) => {
            use std::net::ToSocketAddrs;
            match (host.as_str(), *port).to_socket_addrs().map(|a| a.count()) {
                Ok(n) if n > 0 && cfg.role == Role::Dpu => {
                    check_listen(&mut r, "--channel", host, *port)
                }
                Ok(n) if n > 0 => {}
                Ok(_) => r
                    .problems
                    .push(format!("--channel: {host} resolves to no address")),
                Err(e) => r
                    .problems
                    .push(format!("--channel: cannot resolve {host}: {e}")),
            }
        }
        ChannelAddr::Doca | ChannelAddr::Comch | ChannelAddr::CommChannel => {
            let found = crate::doca::installed();
            if found.starts_with("no DOCA") {
                r.problems
                    .push(format!("--channel {}: {found}", cfg.channel));
            } else {
                r.notes
                    .push(format!("--channel {}: found {found}", cfg.channel));
            }
        }
    }
    match &cfg.metrics {
        Some(MetricsAddr::Tcp(host, port)) => check_listen(&mut r, "--metrics", host, *port),
        Some(MetricsAddr::Unix(path)) => check_bind_path(&mut r, "--metrics", path),
        None => {}
    }
    if let LogTarget::Syslog(Some(path)) = &cfg.log_target {
        if !is_socket(path) {
            r.notes.push(format!(
                "--log-target: {} is not a socket yet; lines wait in a queue until it is",
                path.display()
            ));
        }
    }
    r
}

fn plan(cfg: &Config) -> Vec<String> {
    let mut plan = vec![format!(
        "role {}, service {:?}, channel {} ({})",
        cfg.role,
        cfg.cc_name,
        cfg.channel,
        match cfg.role {
            Role::Host => "connects to the DPU side",
            Role::Dpu => "listens for the host side",
        }
    )];
    plan.push(match cfg.role {
        Role::Host => format!(
            "clients connect to {} ({}), up to {} at once",
            cfg.socket.display(),
            crate::sys::unix_socket::access_note(cfg.socket_mode),
            cfg.max_clients
        ),
        Role::Dpu => format!(
            "streams connect to the server application at {}, up to {} at once",
            cfg.socket.display(),
            cfg.max_clients
        ),
    });
    if !cfg.busy_poll.is_zero() {
        plan.push(format!(
            "the event loop polls for up to {} µs before it sleeps (--busy-poll)",
            cfg.busy_poll.as_micros()
        ));
    }
    plan.push(match &cfg.psk {
        Some(k) => format!(
            "channel authenticated with a {}-byte pre-shared key, {}",
            k.0.len(),
            match cfg.encrypt {
                Some(c) => format!("encrypted ({c})"),
                None => "frames in clear (--no-encrypt)".into(),
            }
        ),
        None => "channel not authenticated (no pre-shared key)".into(),
    });
    if cfg.psk_next.is_some() {
        plan.push("a second key (--psk-file-next) is accepted from the peer: a rotation".into());
    }
    if let Some(p) = &cfg.pci_addr {
        plan.push(format!(
            "DOCA device {}{}",
            p.0,
            cfg.rep_pci
                .as_ref()
                .map_or(String::new(), |r| format!(", representor {}", r.0))
        ));
    }
    plan.push(format!(
        "on SIGTERM, open streams may finish for up to {} s (--drain-timeout)",
        cfg.drain_timeout.as_secs()
    ));
    if let Some(addr) = &cfg.metrics {
        plan.push(format!("metrics on {addr} (GET /metrics, /streams)"));
    }
    plan.push(format!(
        "log level {}, to {}",
        cfg.log_level.0,
        match &cfg.log_target {
            LogTarget::Stderr => "stderr".to_string(),
            LogTarget::Syslog(p) => format!(
                "syslog at {}",
                p.as_deref().unwrap_or(Path::new("/dev/log")).display()
            ),
        }
    ));
    plan
}

fn is_socket(path: &Path) -> bool {
    file_kind(path, true).is_ok_and(|k| k == FileKind::Socket)
}

/// A path the relay would bind: its directory must exist and be writable, and an existing
/// file there must be a socket (a stale one is replaced, anything else is refused at start).
fn check_bind_path(r: &mut Report, flag: &str, path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match file_kind(dir, true) {
        Err(e) => {
            r.problems.push(format!(
                "{flag}: the directory {} is missing ({e}); create it (under systemd, \
                 RuntimeDirectory= does)",
                dir.display()
            ));
            return;
        }
        Ok(k) if k != FileKind::Directory => {
            r.problems
                .push(format!("{flag}: {} is not a directory", dir.display()));
            return;
        }
        Ok(_) => {}
    }
    if let Err(e) = may_write(dir, true) {
        r.problems.push(format!(
            "{flag}: cannot create a socket in {} ({e}) as this user",
            dir.display()
        ));
    }
    match file_kind(path, false) {
        Ok(k) if k != FileKind::Socket => r.problems.push(format!(
            "{flag}: {} exists and is not a socket",
            path.display()
        )),
        Ok(_) if crate::sys::unix_socket::listening(path) => r.problems.push(format!(
            "{flag}: {}: another process is listening on it (a running relay? stop it first)",
            path.display()
        )),
        Ok(_) => r.notes.push(format!(
            "{flag}: {} is a stale socket; it is replaced at start",
            path.display()
        )),
        Err(_) => {}
    }
}

/// The DPU side's tcp address: listened on for a moment, as the start would, so that a port
/// in use (or one this user may not take) is found now rather than at start.
fn check_listen(r: &mut Report, flag: &str, host: &str, port: u16) {
    use std::io::ErrorKind;
    use std::net::{TcpListener, ToSocketAddrs};
    let Some(addr) = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        return; // reported by the caller
    };
    match TcpListener::bind(addr) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AddrInUse => r.problems.push(format!(
            "{flag}: tcp:{host}:{port} is in use by another process (a running relay? stop \
             it first; `ss -ltnp` shows who holds it)"
        )),
        // The relay listens with IP_FREEBIND, so an address the machine does not have yet
        // (tmfifo_net0 not configured at boot) is not fatal: the host connects once it is up.
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => r.notes.push(format!(
            "{flag}: {host} is not an address of this machine yet; the relay listens \
             anyway and the host connects once it is configured"
        )),
        Err(e) => r.problems.push(format!(
            "--channel: cannot listen on tcp:{host}:{port}: {e}"
        )),
    }
}

/// The server application's socket (DPU side): connecting needs write permission on it.
fn check_server_socket(r: &mut Report, path: &Path) {
    match file_kind(path, true) {
        Err(e) => r.notes.push(format!(
            "--socket: the server application's socket {} is not there yet ({e}); each \
             client is refused until it is",
            path.display()
        )),
        Ok(k) if k != FileKind::Socket => r
            .problems
            .push(format!("--socket: {} is not a socket", path.display())),
        Ok(_) => {
            if let Err(e) = may_write(path, false) {
                r.problems.push(format!(
                    "--socket: cannot connect to {} as this user ({e}); give the relay the \
                     application's group (SupplementaryGroups=)",
                    path.display()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GeneralFlags, ProgramFlags};

    fn cfg(role: &str, socket: &Path) -> Config {
        let p = ProgramFlags {
            socket: Some(socket.to_path_buf()),
            cc_name: Some("svc".into()),
            role: Some(role.parse().unwrap()),
            channel: Some("unix:/tmp/dsr-check-chan.sock".parse().unwrap()),
            ..Default::default()
        };
        Config::validate(GeneralFlags::default(), p, &|n| format!("--{n}")).unwrap()
    }

    #[test]
    fn missing_directory_and_wrong_file_type_are_problems() {
        let dir = std::env::temp_dir().join(format!("dsr-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = check(&cfg("host", &dir.join("no/such/h.sock")));
        assert!(r.problems[0].contains("is missing"), "{:?}", r.problems);
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let r = check(&cfg("host", &file));
        assert!(
            r.problems[0].contains("is not a socket"),
            "{:?}",
            r.problems
        );
        let r = check(&cfg("host", &dir.join("fresh.sock")));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.plan[1].contains("fresh.sock"), "{:?}", r.plan);
        // The DPU side only notes a server application that is not up yet (where the
        // platform runs the DPU role at all: Windows reports that it does not).
        let dpu = cfg("dpu", &dir.join("app.sock"));
        let refused: Vec<String> = crate::ops::refuse::refuse(&dpu).err().into_iter().collect();
        let r = check(&dpu);
        assert!(
            r.problems == refused && !r.notes.is_empty(),
            "{:?} {:?}",
            r.problems,
            r.notes
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
