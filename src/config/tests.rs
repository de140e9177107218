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
    let e = Config::validate(GeneralFlags::default(), flags("tcp:127.0.0.1:1"), &key).unwrap_err();
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
