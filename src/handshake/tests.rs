//! The handshake over a real TCP channel between the two roles.
use super::{conclude, handshake};
use crate::config::cli::{self, Command};
use crate::config::{Config, Psk};
use crate::link::{FrameReader, Transport};
use crate::wire::Cipher;
use crate::wire::Frame;
use crate::wire::Verdict;
use futures_lite::future;
use std::io::IoSlice;

fn cfg(role: &str, port: u16) -> Config {
    let args = format!("-s dsr.sock -n svc --role {role} --channel tcp:127.0.0.1:{port} --no-auth");
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
    let got = crate::sys::reactor::block_on(async {
        let listener = async_net::TcpListener::try_from(listener).unwrap();
        let (dpu, host) = future::zip(
            async { Transport::tcp(listener.accept().await.unwrap().0).unwrap() },
            async { Transport::tcp(async_net::TcpStream::connect(addr).await.unwrap()).unwrap() },
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
        assert_eq!(dpu_agreed.host.label, crate::handshake::identity::label());
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
