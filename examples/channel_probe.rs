//! The host side's tcp channel on its own, against a running DPU side: the keyed handshake
//! (encrypted unless `--no-encrypt`), then a sealed PING that must come back as PONG.
//!
//! ```text
//! channel_probe HOST:PORT SERVICE KEY_FILE [relay flags...]
//! ```
//!
//! scripts/windows.sh runs the Windows build of this under Wine against the Linux DPU side:
//! Wine has no AF_UNIX sockets, so the Windows relay cannot start there, but its channel code
//! (this platform's event loop, the handshake, the records) can talk to the real DPU process.
//! Prints one line and exits 0 on PONG, 1 with the reason otherwise.

use async_io::Timer;
use doca_socket_relay::config::cli::{self, Command};
use doca_socket_relay::handshake::handshake;
use doca_socket_relay::link::{FrameReader, Transport};
use doca_socket_relay::wire::Frame;
use futures_lite::future;
use std::io::IoSlice;
use std::time::Duration;

const TOKEN: u32 = 0x5eed;

async fn probe(args: &[String]) -> Result<String, String> {
    let [addr, service, key, flags @ ..] = args else {
        return Err("usage: channel_probe HOST:PORT SERVICE KEY_FILE [relay flags...]".into());
    };
    let mut relay_args: Vec<String> = ["-s", "probe.sock", "-n", service, "--role", "host"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    relay_args.extend([
        "--channel".into(),
        format!("tcp:{addr}"),
        "--psk-file".into(),
        key.clone(),
    ]);
    relay_args.extend(flags.iter().cloned());
    let cfg = match cli::parse(relay_args.into_iter().map(Into::into).collect()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(_) => return Err("the flags ask for something other than a run".into()),
        Err(e) => return Err(format!("bad flags: {e}")),
    };
    let stream = async_net::TcpStream::connect(addr.as_str())
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let t = Transport::tcp(stream).map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(t.clone(), t.max_msg());
    let agreed = handshake(&t, &mut reader, &cfg)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut ping = Vec::new();
    Frame::Ping(TOKEN).encode(&mut ping);
    let sealed = agreed.sealer.is_some();
    match agreed.sealer {
        Some(mut sealer) => {
            let mut parts: Vec<IoSlice> = sealer.seal(&mut ping).map_err(|e| e.to_string())?;
            t.write_all_vectored(&mut parts).await
        }
        None => t.write_all(&ping).await,
    }
    .map_err(|e| format!("sending PING: {e}"))?;
    loop {
        match reader.take_frame() {
            Ok(Some(Frame::Pong(TOKEN))) => break,
            Ok(Some(_)) => {}
            Ok(None) => reader.fill().await.map_err(|e| format!("reading: {e}"))?,
            Err(e) => return Err(format!("bad frame from the DPU side: {e}")),
        }
    }
    Ok(format!(
        "channel_probe: handshake with the DPU side at {addr} (service \"{}\", {}), PING answered",
        agreed.peer.service,
        if sealed { "encrypted" } else { "in clear" }
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = doca_socket_relay::sys::reactor::block_on(future::or(probe(&args), async {
        Timer::after(Duration::from_secs(20)).await;
        Err("no answer within 20 s".to_string())
    }));
    match result {
        Ok(Ok(line)) => println!("{line}"),
        Ok(Err(e)) => {
            eprintln!("channel_probe: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("channel_probe: event loop: {e}");
            std::process::exit(1);
        }
    }
}
