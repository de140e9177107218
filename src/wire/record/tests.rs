use super::*;
use crate::wire::test_rng::Rng;
use crate::wire::Frame;

/// Records cover the frames in order, each at most the largest run; a record over the
/// target holds one frame, and no two neighbours would fit the target together.
#[test]
fn records_gather_frames_up_to_the_target() {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    for _ in 0..300 {
        let max_run = 2000 + rng.below(2 * RECORD_TARGET);
        let mut frames = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..1 + rng.below(60) {
            let big = vec![7; rng.below(max_run - HEADER_LEN)];
            match rng.below(3) {
                0 => Frame::Data(1, &big),
                1 => Frame::Data(2, &[9; 100]),
                _ => Frame::Window(3, 5),
            }
            .encode(&mut frames);
            ends.push(frames.len());
        }
        let runs = record_runs(&frames, max_run).unwrap();
        let target = RECORD_TARGET.min(max_run);
        assert_eq!(runs.first().unwrap().start, 0);
        assert_eq!(runs.last().unwrap().end, frames.len());
        for (i, r) in runs.iter().enumerate() {
            assert!(ends.contains(&r.end) && r.len() <= max_run);
            if r.len() > target {
                assert_eq!(
                    frame_len(&frames[r.start..]),
                    r.len(),
                    "a large run of frames"
                );
            }
            if let Some(next) = runs.get(i + 1) {
                assert_eq!(next.start, r.end);
                assert!(next.end - r.start > target, "two records that fit one");
            }
        }
    }
    let mut big = Vec::new();
    Frame::Data(1, &[0; 5000]).encode(&mut big);
    assert!(record_runs(&big, 4000).is_err());
}

/// A direction refuses to seal or open at the nonce Noise reserves, and the record before
/// it still goes through; the sender's error ends the session instead of reusing a nonce.
#[test]
fn the_record_counter_stops_at_its_limit() {
    let key = [4u8; 32];
    for cipher in [Cipher::AesGcm, Cipher::ChaChaPoly] {
        let mut tx = CipherState::at(cipher, &key, NONCE_LIMIT - 1);
        let mut rx = CipherState::at(cipher, &key, NONCE_LIMIT - 1);
        let mut rec = *b"last";
        let tag = tx.seal(&mut rec).expect("the last nonce is usable");
        rx.open(&mut rec, &tag).expect("and opens");
        assert_eq!(&rec, b"last");
        assert_eq!(tx.seal(&mut rec), Err(RecordError::Exhausted));
        assert_eq!(rx.open(&mut rec, &tag), Err(RecordError::Exhausted));
        let mut sealer = Sealer::new(tx, 4096);
        let mut frames = Vec::new();
        Frame::Ping(1).encode(&mut frames);
        let err = sealer.seal(&mut frames).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }
}
