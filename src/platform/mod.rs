//! What differs between platforms, and where it lives.
//!
//! The relay core (`mux`, `pump`, `host`, `protocol`, `channel`, `secure`, `config`, `cli`) is
//! the same everywhere. Each platform concern is one module with the same API on every
//! platform, chosen in `lib.rs`:
//!
//! | concern | Linux | Windows (host role only) |
//! |---|---|---|
//! | data-path event loop | `reactor` (epoll, edge-triggered) | `reactor/portable.rs` (async-io: IOCP) |
//! | AF_UNIX listener and sockets | `unix` (rustix; systemd socket activation) | `windows/unix.rs` (socket2 over Winsock) |
//! | service manager | `systemd` (sd_notify, watchdog) | `windows/service.rs` (the service control manager) |
//! | stop and statistics requests | `signals` (SIGTERM, SIGINT, SIGUSR1) | `windows/signals.rs` (Ctrl-C, service stop) |
//! | DOCA libraries | `doca`, `comch` (loaded at run time) | `windows/doca.rs` (none: see there) |
//! | DPU role | `dpu` | `windows/dpu.rs` (refused) |
//!
//! What is left here: the flags a platform refuses, checked before the relay binds anything
//! (`run` and `--check`), as a configuration error (exit 2). Validation itself stays the same
//! on every platform, so that one configuration means the same everywhere.

use crate::config::Config;
#[cfg(windows)]
use crate::config::{LogTarget, Role, DEFAULT_SOCKET_MODE};

/// Before binding the AF_UNIX socket `path`, which exists: a socket nobody listens on (`probe`
/// is refused) is removed; a live socket (exit 1: it may go away) or any other kind of file
/// (exit 2) is an error, and the file is left alone. Other probe failures leave the file for
/// `bind` to report.
pub(crate) fn clear_stale_socket(
    path: &std::path::Path,
    is_socket: bool,
    probe: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> Result<(), crate::error::Error> {
    use crate::error::Error;
    // Another kind of file stays until someone removes it: a restart cannot help (exit 2).
    if !is_socket {
        return Err(Error::config(format!(
            "{}: exists and is not a socket; not touching it",
            path.display()
        )));
    }
    match probe(path) {
        Ok(()) => Err(Error::SocketInUse(
            path.into(),
            "another process is listening on it",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("removing stale {}", path.display()), e))
        }
        Err(_) => Ok(()),
    }
}

/// Everything is available on Linux.
#[cfg(unix)]
pub fn refuse(_cfg: &Config) -> Result<(), String> {
    Ok(())
}

/// Windows runs the host role over a tcp or unix channel, logging to stderr; the error names
/// the flag at fault.
#[cfg(windows)]
pub fn refuse(cfg: &Config) -> Result<(), String> {
    if cfg.role == Role::Dpu {
        return Err(format!("--role {}", crate::dpu::UNSUPPORTED));
    }
    if cfg.channel.is_doca() {
        return Err(format!(
            "--channel {}: {}",
            cfg.channel,
            crate::doca::UNSUPPORTED
        ));
    }
    // The default cannot be told from a mode given explicitly; either way nothing is set.
    if cfg.socket_mode != DEFAULT_SOCKET_MODE {
        return Err(
            "--socket-mode has no meaning on Windows: who may connect to the socket \
                    follows the ACL of its directory (which the socket file inherits); set \
                    that ACL instead"
                .into(),
        );
    }
    if matches!(cfg.log_target, LogTarget::Syslog(_)) {
        return Err("--log-target: syslog is not available on Windows; use stderr".into());
    }
    if !cfg.busy_poll.is_zero() {
        return Err(
            "--busy-poll is not available on Windows (it needs the Linux event loop)".into(),
        );
    }
    Ok(())
}

#[cfg(all(test, windows))]
mod tests {
    use crate::cli::{self, Command};

    fn parsed(args: &str) -> crate::config::Config {
        match cli::parse(args.split(' ').map(Into::into).collect()) {
            Ok(Command::Run(cfg)) => *cfg,
            _ => panic!("{args:?} should parse"),
        }
    }

    fn refused(args: &str) -> String {
        super::refuse(&parsed(args)).unwrap_err()
    }

    #[test]
    fn windows_refuses_what_it_cannot_do() {
        let base = "-s C:\\x.sock -n svc --no-auth";
        assert!(
            refused(&format!("{base} --channel tcp:127.0.0.1:1 --role dpu")).contains("--role dpu")
        );
        assert!(refused(&format!("{base} -p 3b:00.0")).contains("DOCA"));
        assert!(refused(&format!(
            "{base} --channel tcp:127.0.0.1:1 --socket-mode 0600"
        ))
        .contains("ACL"));
        assert!(refused(&format!(
            "{base} --channel tcp:127.0.0.1:1 --log-target syslog"
        ))
        .contains("syslog"));
        assert!(
            refused(&format!("{base} --channel tcp:127.0.0.1:1 --busy-poll 50"))
                .contains("--busy-poll is not available")
        );
        let cfg = parsed(&format!("{base} --channel tcp:127.0.0.1:1"));
        assert_eq!(super::refuse(&cfg), Ok(()));
    }
}

/// The tcp channel through this platform's event loop (the epoll loop on Linux, async-io on
/// Windows): both roles' handshake with a key and encryption over loopback, then a sealed
/// frame from the host side read by the DPU side. Under Wine this is the Windows host's
/// channel code running for real (scripts/windows.sh).
#[cfg(test)]
mod channel_tests {
    use crate::channel::{conclude, handshake, FrameReader, Transport};
    use crate::cli::{self, Command};
    use crate::config::{Config, Psk};
    use crate::protocol::Frame;
    use crate::protocol::Verdict;
    use crate::secure::Cipher;
    use futures_lite::future;
    use std::io::IoSlice;

    fn cfg(role: &str, port: u16) -> Config {
        let args =
            format!("-s dsr.sock -n svc --role {role} --channel tcp:127.0.0.1:{port} --no-auth");
        let Ok(Command::Run(cfg)) = cli::parse(args.split(' ').map(Into::into).collect()) else {
            panic!("{args} should parse")
        };
        // The key set directly: a key file's checks differ by platform and are tested apart.
        Config {
            psk: Some(Psk(vec![7; 32])),
            encrypt: Some(Cipher::ChaChaPoly),
            ..*cfg
        }
    }

    #[test]
    fn keyed_encrypted_tcp_channel_between_the_roles() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (host_cfg, dpu_cfg) = (cfg("host", addr.port()), cfg("dpu", addr.port()));
        let got = crate::reactor::block_on(async {
            let listener = async_net::TcpListener::try_from(listener).unwrap();
            let (dpu, host) = future::zip(
                async { Transport::tcp(listener.accept().await.unwrap().0).unwrap() },
                async {
                    Transport::tcp(async_net::TcpStream::connect(addr).await.unwrap()).unwrap()
                },
            )
            .await;
            let mut dpu_reader = FrameReader::for_handshake(dpu.clone(), dpu.max_msg());
            let mut host_reader = FrameReader::for_handshake(host.clone(), host.max_msg());
            let (dpu_agreed, host_agreed) = future::zip(
                async {
                    let mut agreed = handshake(&dpu, &mut dpu_reader, &dpu_cfg).await.unwrap();
                    conclude(&dpu, &mut dpu_reader, &mut agreed, Verdict::Admit)
                        .await
                        .unwrap();
                    agreed
                },
                async { handshake(&host, &mut host_reader, &host_cfg).await.unwrap() },
            )
            .await;
            assert_eq!(host_agreed.peer.service, "svc");
            assert_eq!(dpu_agreed.host.label, crate::takeover::label());
            let mut sealer = host_agreed.sealer.expect("an encrypted channel");
            let mut frame = Vec::new();
            Frame::Ping(0x5eed).encode(&mut frame);
            let mut parts: Vec<IoSlice> = sealer.seal(&mut frame).unwrap();
            host.write_all_vectored(&mut parts).await.unwrap();
            loop {
                if let Some(f) = dpu_reader.take_frame().unwrap() {
                    break format!("{f:?}");
                }
                dpu_reader.fill().await.unwrap();
            }
        })
        .unwrap();
        assert_eq!(got, format!("{:?}", Frame::Ping(0x5eed)));
    }
}
