use super::*;

/// The frames of `buf` re-encoded, consecutive DATA frames of one stream joined into one.
fn joined_frames(buf: &[u8]) -> Vec<u8> {
    let (mut out, mut rest) = (Vec::new(), buf);
    let mut data: Option<(u32, Vec<u8>)> = None;
    let flush = |data: &mut Option<(u32, Vec<u8>)>, out: &mut Vec<u8>| {
        if let Some((id, p)) = data.take() {
            Frame::Data(id, &p).encode(out);
        }
    };
    while let Some((frame, used)) = Frame::decode(rest, usize::MAX).unwrap() {
        match frame {
            Frame::Data(id, p) if data.as_ref().is_some_and(|d| d.0 == id) => {
                data.as_mut().unwrap().1.extend_from_slice(p)
            }
            Frame::Data(id, p) => {
                flush(&mut data, &mut out);
                data = Some((id, p.to_vec()));
            }
            other => {
                flush(&mut data, &mut out);
                other.encode(&mut out);
            }
        }
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "a message holds part of a frame");
    flush(&mut data, &mut out);
    out
}

/// Messages are full (all but the last take every byte they can), hold whole frames of at
/// most their size, and carry the same streams' bytes in the same order, DATA larger than a
/// message included; only a non-DATA frame too large for a message is refused.
#[test]
fn pack_messages_fills_messages_and_splits_only_data() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..500 {
        let max = 64 + next(5000);
        let mut frames = Vec::new();
        for _ in 0..1 + next(30) {
            let id = 1 + next(3) as u32;
            match next(4) {
                0 | 1 => {
                    let len = next(3 * max);
                    Frame::Data(id, &vec![round as u8; len]).encode(&mut frames)
                }
                2 => Frame::Window(id, 7).encode(&mut frames),
                _ => Frame::Close(id).encode(&mut frames),
            }
        }
        let msgs: Vec<Vec<u8>> = pack_messages(&frames, max).map(|m| m.unwrap()).collect();
        assert!(msgs.iter().all(|m| !m.is_empty() && m.len() <= max));
        // A message ends early only where the next frame is not DATA and does not fit.
        for pair in msgs.windows(2) {
            let room = max - pair[0].len();
            let next_frame = frame_len(&pair[1]);
            assert!(
                room <= HEADER_LEN || (pair[1][0] != T_DATA && next_frame > room),
                "round {round}: a message left {room} bytes unused"
            );
        }
        assert_eq!(joined_frames(&msgs.concat()), joined_frames(&frames));
    }
    let mut big = Vec::new();
    Frame::Error(&[b'x'; 200]).encode(&mut big);
    let err = pack_messages(&big, 100).next().unwrap().unwrap_err();
    assert!(err
        .to_string()
        .contains("larger than the channel's message size"));
}

fn roundtrip(f: Frame<'_>) {
    let mut buf = Vec::new();
    f.encode(&mut buf);
    let (g, used) = Frame::decode(&buf, 1 << 20).unwrap().unwrap();
    assert_eq!((g, used), (f, buf.len()));
    // Every strict prefix is incomplete, never an error.
    for cut in 0..buf.len() {
        assert_eq!(Frame::decode(&buf[..cut], 1 << 20), Ok(None));
    }
}

#[test]
fn frames_roundtrip() {
    roundtrip(Frame::Hello(b"hello"));
    roundtrip(Frame::Auth(&[7; PROOF_LEN]));
    roundtrip(Frame::Error(b"bad"));
    roundtrip(Frame::GoAway(b"shutting down"));
    roundtrip(Frame::Open(1));
    roundtrip(Frame::Data(7, b"payload"));
    roundtrip(Frame::Data(7, b""));
    roundtrip(Frame::Window(3, 65536));
    roundtrip(Frame::Close(u32::MAX));
    roundtrip(Frame::Reset(9, ResetReason::LIMIT));
    roundtrip(Frame::Stop(9));
    roundtrip(Frame::Ping(42));
    roundtrip(Frame::Pong(42));
}

#[test]
fn frame_len_walks_a_batch() {
    let mut buf = Vec::new();
    Frame::Data(1, b"abc").encode(&mut buf);
    Frame::Window(1, 99).encode(&mut buf);
    Frame::Error(b"x").encode(&mut buf);
    assert_eq!(frame_len(&buf), HEADER_LEN + 3);
    assert_eq!(frame_len(&buf[12..]), HEADER_LEN);
    assert_eq!(frame_len(&buf[21..]), HEADER_LEN + 1);
}

#[test]
fn header_is_big_endian() {
    let mut buf = Vec::new();
    Frame::Window(0x0102_0304, 0x0a0b_0c0d).encode(&mut buf);
    assert_eq!(buf, [0x12, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
    let mut slot = [0u8; HEADER_LEN];
    fill_data_header(&mut slot, 5, 300);
    assert_eq!(slot, [0x11, 0, 0, 0, 5, 0, 0, 1, 44]);
}

#[test]
fn bad_frames_are_errors() {
    assert_eq!(
        Frame::decode(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0], 100),
        Err(DecodeError::UnknownType(0x7f))
    );
    // A record where clear frames are expected says what is wrong, not just the type.
    let sealed = Frame::decode(&[T_SEALED, 0, 0, 0, 0, 0, 0, 0, 32], 100).unwrap_err();
    assert!(
        sealed.to_string().contains("--encrypt/--no-encrypt"),
        "{sealed}"
    );
    let mut buf = Vec::new();
    Frame::Data(1, &[0; 101]).encode(&mut buf);
    assert_eq!(
        Frame::decode(&buf, 100),
        Err(DecodeError::TooLong(0x11, 101))
    );
    buf.clear();
    Frame::Data(0, b"x").encode(&mut buf);
    assert_eq!(
        Frame::decode(&buf, 100),
        Err(DecodeError::BadStream(0x11, 0))
    );
    buf.clear();
    Frame::Ping(1).encode(&mut buf);
    buf[4] = 1;
    assert!(Frame::decode(&buf, 100).is_err());
    buf.clear();
    put_header(&mut buf, T_AUTH, 0, MAX_AUTH_PAYLOAD as u32 + 1);
    assert!(Frame::decode(&buf, 100).is_err());
}

#[test]
fn goaway_is_a_session_frame() {
    let mut buf = Vec::new();
    Frame::GoAway(b"bye").encode(&mut buf);
    assert_eq!(frame_len(&buf), HEADER_LEN + 3);
    buf[4] = 1;
    assert_eq!(
        Frame::decode(&buf, 100),
        Err(DecodeError::BadStream(T_GOAWAY, 1))
    );
}
