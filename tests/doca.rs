//! The DOCA Comm Channel backend against the fake DOCA libraries (tests/fake_doca): start-up
//! failures, both API name generations, message-size boundaries, send-queue backpressure and a
//! DPU restart in the middle of a transfer. The scenarios shared with tcp and unix channels are
//! in tests/relay.rs (the `*_doca` tests).

mod common;

use common::*;

const MIB: usize = 1024 * 1024;

#[test]
fn unknown_pci_address_is_a_clear_error() {
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["-p", "04:00.0"],
        &[],
        "no DOCA device at PCI address 04:00.0",
    );
    expect_start_failure(
        |d| fake_doca_env(Api::V27, d),
        &["-p", FAKE_PCI, "-r", "b2:00.0"],
        &[],
        "no DOCA representor at PCI address b2:00.0",
    );
}

#[test]
fn missing_library_is_a_clear_error() {
    let empty = tempdir();
    let lib_dir = empty.path().display().to_string();
    expect_start_failure(
        |d| fake_doca_env(Api::V22, d),
        &["-p", FAKE_PCI],
        &[("LD_LIBRARY_PATH", &lib_dir)],
        "libdoca_comm_channel.so.2",
    );
}

/// The device functions renamed in DOCA 2.5 are found as well as the 2.2 ones.
#[test]
fn doca_27_names_relay_byte_exact() {
    let mut env = Setup::new(Chan::Doca(Api::V27)).start();
    let data = pattern(27, 4 * MIB);
    let s = env.client();
    let res = echo_check(&s, &data);
    assert!(
        res.is_ok(),
        "echo over DOCA 2.7 names: {res:?}\n{}",
        env.logs()
    );
    assert!(
        env.host().stderr().contains("device API names of DOCA 2.5+"),
        "host should log the 2.5+ API\n{}",
        env.logs()
    );
}

/// Payloads around the message size (4080 bytes, 9 of them frame header) and its multiples,
/// each echoed exactly; and the same with a device that only allows 1024-byte messages.
#[test]
fn message_size_boundaries() {
    for max_msg in ["4080", "1024"] {
        let mut env = Setup::new(Chan::Doca(Api::V22))
            .env("FAKE_DOCA_MAX_MSG", max_msg)
            .start();
        let m: usize = max_msg.parse().unwrap();
        let data_max = m - 9;
        let sizes = [
            1,
            data_max - 1,
            data_max,
            data_max + 1,
            m,
            m + 1,
            2 * data_max,
            2 * data_max + 1,
            3 * m,
            65536,
        ];
        let s = env.client();
        for (i, &n) in sizes.iter().enumerate() {
            let data = pattern(i as u64 + 7, n);
            let res = echo_check(&s, &data);
            assert!(
                res.is_ok(),
                "max message {m}: payload of {n} bytes: {res:?}\n{}",
                env.logs()
            );
        }
    }
}

/// A send queue of a few messages keeps answering "try again": everything still arrives, in
/// order, for one large stream and for several concurrent ones.
#[test]
fn send_queue_full_backpressure_loses_nothing() {
    let mut env = Setup::new(Chan::Doca(Api::V22))
        .env("FAKE_DOCA_SNDBUF", "4096")
        .start();
    check_no_loss_under_backpressure(&mut env);
}

/// A second host is refused while the first keeps working.
#[test]
fn second_host_is_refused() {
    check_second_host_is_refused(Chan::Doca(Api::V22));
}

/// The DPU's device allows bigger messages than the host's: frames are packed to what both
/// accept.
#[test]
fn different_message_sizes_on_the_two_sides() {
    check_different_message_sizes(Chan::Doca(Api::V22), "FAKE_DOCA_MAX_MSG");
}

/// The binary has no link-time dependency on DOCA: one package serves machines without it.
#[test]
fn binary_does_not_link_doca() {
    let out = std::process::Command::new("readelf")
        .args(["-d", relay_bin()])
        .output()
        .expect("running readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NEEDED"),
        "readelf printed no NEEDED entries:\n{text}"
    );
    assert!(
        !text.contains("doca"),
        "the binary links a DOCA library:\n{text}"
    );
}
