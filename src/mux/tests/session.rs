//! The session around its streams: OPEN on either side, the stream limit, frames for streams
//! it does not know, keepalive, the shutdown, and every way a session ends.

use super::*;
use crate::counters::{Outcome, SessionEnd};

#[test]
fn the_host_side_opens_streams() {
    run(|ex| async move {
        let mut mux = Mux::start(
            &ex,
            Setup {
                dpu: false,
                ..Setup::default()
            },
        );
        let first = mux.connect().await;
        let second = mux.connect().await;
        assert_eq!((first.id(), second.id()), (1, 2));
        second.write(b"two").await;
        first.write(b"one").await;
        assert_eq!(mux.peer.data(2, 3, mux.setup.max_data).await, b"two");
        assert_eq!(mux.peer.data(1, 3, mux.setup.max_data).await, b"one");
        mux.peer
            .send(&[Frame::Data(1, b"1"), Frame::Data(2, b"2")])
            .await;
        assert_eq!(first.read(1).await, b"1");
        assert_eq!(second.read(1).await, b"2");
    });
}

#[test]
fn the_host_side_refuses_open() {
    run(|ex| async move {
        let mux = Mux::start(
            &ex,
            Setup {
                dpu: false,
                ..Setup::default()
            },
        );
        mux.peer.send(&[Frame::Open(1)]).await;
        let (why, streams, mut peer) = mux.ended().await;
        assert!(matches!(why, EndReason::OpenRefused), "{why}");
        assert_eq!(streams, 0);
        assert_eq!(peer.until_closed().await, vec![]);
    });
}

#[test]
fn frames_for_unknown_streams_are_dropped() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer
            .send(&[
                Frame::Data(9, b"nobody"),
                Frame::Window(9, 100),
                Frame::Close(9),
                Frame::Stop(9),
                Frame::Reset(9, ResetReason::PROTOCOL),
            ])
            .await;
        assert_eq!(mux.peer.settle().await, vec![]);
        assert!(!mux.session.is_dead());
        assert_eq!(mux.session.stream_count(), 1);
        mux.peer.send(&[Frame::Data(1, b"ok")]).await;
        assert_eq!(conn.read(2).await, b"ok");
    });
}

#[test]
fn streams_over_the_limit_are_refused_until_it_rises() {
    run(|ex| async move {
        let mut mux = Mux::start(
            &ex,
            Setup {
                max_streams: 2,
                ..Setup::default()
            },
        );
        let _one = mux.open(1).await;
        let _two = mux.open(2).await;
        mux.peer.send(&[Frame::Open(3)]).await;
        assert_eq!(mux.peer.recv().await, Got::Reset(3, ResetReason::LIMIT));
        assert_eq!(mux.session.stream_count(), 2);
        let refused = mux
            .session
            .stats
            .counters
            .streams_ended(Outcome::RefusedLimit);
        assert_eq!(refused, 1);
        mux.session.set_max_streams(3);
        let three = mux.open(3).await;
        assert_eq!(three.id(), 3);
        assert_eq!(mux.peer.settle().await, vec![]);
    });
}

#[test]
fn a_closed_streams_id_may_open_again() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Close(1)]).await;
        conn.shut_write();
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        assert_eq!(conn.end().await, End::Closed);
        let again = mux.open(1).await;
        mux.peer.send(&[Frame::Data(1, b"new")]).await;
        assert_eq!(again.read(3).await, b"new");
    });
}

#[test]
fn open_for_an_open_stream_ends_the_session() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Open(1)]).await;
        let (why, streams, _) = mux.ended().await;
        assert!(matches!(why, EndReason::DuplicateOpen(1)), "{why}");
        assert_eq!(streams, 1);
        assert_eq!(conn.end().await, End::Reset(ResetReason::CHANNEL_LOST));
    });
}

#[test]
fn ping_is_answered() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        mux.peer.send(&[Frame::Ping(42)]).await;
        assert_eq!(mux.peer.recv().await, Got::Pong(42));
        let before = mux.session.last_heard();
        mux.peer.send(&[Frame::Pong(1)]).await;
        assert_eq!(mux.peer.settle().await, vec![]);
        assert!(mux.session.last_heard() >= before);
    });
}

#[test]
fn goaway_ends_the_session_and_resets_its_streams_as_a_shutdown() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::GoAway(b"maintenance")]).await;
        let session = mux.session.clone();
        let (why, streams, mut peer) = mux.ended().await;
        assert_eq!(
            why.to_string(),
            "the peer is shutting down: \"maintenance\""
        );
        assert_eq!(session.counted_end(), SessionEnd::PeerShutdown);
        assert_eq!(session.peer_goaway().as_deref(), Some("\"maintenance\""));
        assert_eq!(streams, 1);
        assert_eq!(conn.end().await, End::Reset(ResetReason::SHUTDOWN));
        assert_eq!(peer.until_closed().await, vec![]);
    });
}

#[test]
fn our_goaway_is_sent_and_counted_as_local() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        mux.session.go_away("shutting down");
        assert_eq!(mux.peer.recv().await, Got::GoAway("shutting down".into()));
        let session = mux.session.clone();
        session.kill();
        let (why, _, mut peer) = mux.ended().await;
        assert!(matches!(why, EndReason::Killed), "{why}");
        assert_eq!(session.counted_end(), SessionEnd::Local);
        assert_eq!(peer.until_closed().await, vec![]);
    });
}

#[test]
fn error_from_the_peer_ends_the_session() {
    run(|ex| async move {
        let mux = Mux::start(&ex, Setup::default());
        mux.peer.send(&[Frame::Error(b"key mismatch")]).await;
        let session = mux.session.clone();
        let (why, _, _) = mux.ended().await;
        assert_eq!(
            why.to_string(),
            "the peer ended the session: \"key mismatch\""
        );
        assert_eq!(session.counted_end(), SessionEnd::Lost);
    });
}

#[test]
fn a_handshake_frame_after_the_handshake_ends_the_session() {
    run(|ex| async move {
        let mux = Mux::start(&ex, Setup::default());
        mux.peer.send(&[Frame::Hello(b"again")]).await;
        let (why, _, _) = mux.ended().await;
        assert!(matches!(why, EndReason::HandshakeFrame), "{why}");
    });
}

#[test]
fn a_frame_that_cannot_be_decoded_ends_the_session() {
    run(|ex| async move {
        let mux = Mux::start(&ex, Setup::default());
        mux.peer.send_raw(&[0x7f, 0, 0, 0, 1, 0, 0, 0, 0]).await;
        let (why, _, _) = mux.ended().await;
        assert!(matches!(why, EndReason::BadFrame(_)), "{why}");
        assert!(why.to_string().starts_with("bad frame from the peer: "));
        // OPEN for stream 0 does not even decode.
        let mux = Mux::start(&ex, Setup::default());
        mux.peer.send(&[Frame::Open(0)]).await;
        let (why, _, _) = mux.ended().await;
        assert_eq!(
            why.to_string(),
            "bad frame from the peer: frame type 0x10 on invalid stream 0"
        );
    });
}

#[test]
fn the_channel_closing_resets_every_stream() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        let Mux { run, peer, .. } = mux;
        drop(peer);
        let (why, streams) = run.await;
        assert!(matches!(why, EndReason::ReadFailed(_)), "{why}");
        assert_eq!(streams, 1);
        assert_eq!(conn.end().await, End::Reset(ResetReason::CHANNEL_LOST));
    });
}

#[test]
fn kill_ends_the_session() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let one = mux.open(1).await;
        let two = mux.open(2).await;
        assert_eq!(mux.session.kill(), 2);
        assert!(mux.session.is_dead());
        let (why, streams, mut peer) = mux.ended().await;
        assert!(matches!(why, EndReason::Killed), "{why}");
        assert_eq!(streams, 0, "the kill reset them");
        assert_eq!(one.end().await, End::Reset(ResetReason::CHANNEL_LOST));
        assert_eq!(two.end().await, End::Reset(ResetReason::CHANNEL_LOST));
        assert_eq!(peer.until_closed().await, vec![]);
    });
}

#[test]
fn a_draining_session_cuts_its_streams_and_refuses_new_ones() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        let drain = ex.spawn({
            let session = mux.session.clone();
            async move { session.drain(Duration::from_secs(5)).await }
        });
        assert_eq!(mux.peer.recv().await, Got::Reset(1, ResetReason::SHUTDOWN));
        assert_eq!(drain.await, 1);
        assert_eq!(conn.end().await, End::Reset(ResetReason::SHUTDOWN));
        mux.peer.send(&[Frame::Open(3)]).await;
        assert_eq!(mux.peer.recv().await, Got::Reset(3, ResetReason::SHUTDOWN));
    });
}

#[test]
fn finishing_streams_refuses_new_ones_and_waits_for_the_open_ones() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        let finish = ex.spawn({
            let session = mux.session.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                session.finish_streams(deadline).await
            }
        });
        mux.peer.send(&[Frame::Open(2)]).await;
        assert_eq!(mux.peer.recv().await, Got::Reset(2, ResetReason::SHUTDOWN));
        // The open stream still relays both ways until it ends.
        mux.peer
            .send(&[Frame::Data(1, b"in"), Frame::Close(1)])
            .await;
        assert_eq!(conn.read_to_end().await, b"in");
        conn.write(b"out").await;
        conn.shut_write();
        assert_eq!(mux.peer.data(1, 3, mux.setup.max_data).await, b"out");
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        assert_eq!(conn.end().await, End::Closed);
        assert_eq!(finish.await, 0);
    });
}
