//! One stream's life on a running session: bytes both ways, each direction's end, STOP,
//! RESET, and flow control in both directions.

use super::*;

#[test]
fn data_flows_both_ways() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Data(1, b"ping")]).await;
        assert_eq!(conn.read(4).await, b"ping");
        conn.write(b"pong").await;
        assert_eq!(mux.peer.data(1, 4, mux.setup.max_data).await, b"pong");
        assert_eq!(mux.peer.settle().await, vec![]);
        let f = conn.stream.figures();
        assert_eq!((f.sent, f.received, f.queued), (4, 4, 0));
        assert_eq!(f.credit, mux.setup.peer_window - 4);
    });
}

#[test]
fn consecutive_data_frames_arrive_in_order() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        let frames: Vec<Frame> = [b"a", b"b", b"c"].map(|d| Frame::Data(1, d)).to_vec();
        mux.peer.send(&frames).await;
        mux.peer.send(&[Frame::Data(1, b"d")]).await;
        assert_eq!(conn.read(4).await, b"abcd");
    });
}

#[test]
fn the_peers_close_shuts_the_socket_for_writing_and_the_other_way_goes_on() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer
            .send(&[Frame::Data(1, b"last"), Frame::Close(1)])
            .await;
        assert_eq!(conn.read_to_end().await, b"last");
        conn.write(b"late reply").await;
        assert_eq!(
            mux.peer.data(1, 10, mux.setup.max_data).await,
            b"late reply"
        );
        conn.shut_write();
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        assert_eq!(conn.end().await, End::Closed);
        assert_eq!(mux.session.stream_count(), 0);
        assert_eq!(mux.peer.settle().await, vec![]);
    });
}

#[test]
fn the_applications_eof_sends_close_and_the_other_way_goes_on() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        conn.write(b"request").await;
        conn.shut_write();
        assert_eq!(mux.peer.data(1, 7, mux.setup.max_data).await, b"request");
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        mux.peer
            .send(&[Frame::Data(1, b"answer"), Frame::Close(1)])
            .await;
        assert_eq!(conn.read_to_end().await, b"answer");
        assert_eq!(conn.end().await, End::Closed);
        assert_eq!(mux.peer.settle().await, vec![]);
    });
}

#[test]
fn a_repeated_close_changes_nothing() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Close(1), Frame::Close(1)]).await;
        assert_eq!(conn.read_to_end().await, b"");
        assert_eq!(mux.peer.settle().await, vec![]);
        conn.shut_write();
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        assert_eq!(conn.end().await, End::Closed);
    });
}

#[test]
fn data_after_close_resets_the_stream() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer
            .send(&[Frame::Close(1), Frame::Data(1, b"x")])
            .await;
        assert_eq!(mux.peer.recv().await, Got::Reset(1, ResetReason::PROTOCOL));
        assert_eq!(conn.end().await, End::Reset(ResetReason::PROTOCOL));
        assert_eq!(mux.session.stream_count(), 0);
        // Frames for the forgotten stream are dropped.
        mux.peer
            .send(&[Frame::Data(1, b"y"), Frame::Close(1)])
            .await;
        assert_eq!(mux.peer.settle().await, vec![]);
        assert!(!mux.session.is_dead());
    });
}

#[test]
fn stop_ends_the_sending_direction_and_the_application_sees_epipe() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Stop(1)]).await;
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        let e = conn.app.write_all(b"more").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        // A repeated STOP sends no second CLOSE; the receiving direction goes on.
        mux.peer
            .send(&[Frame::Stop(1), Frame::Data(1, b"still")])
            .await;
        assert_eq!(conn.read(5).await, b"still");
        assert_eq!(mux.peer.settle().await, vec![]);
        mux.peer.send(&[Frame::Close(1)]).await;
        assert_eq!(conn.end().await, End::Closed);
    });
}

#[test]
fn a_socket_that_takes_nothing_more_asks_the_peer_to_stop() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let Conn { stream, app, pump } = mux.open(1).await;
        drop(app);
        assert_eq!(mux.peer.recv().await, Got::Close(1));
        mux.peer.send(&[Frame::Data(1, b"lost")]).await;
        assert_eq!(mux.peer.recv().await, Got::Stop(1));
        // DATA already on its way is dropped, and STOP is not repeated.
        mux.peer.send(&[Frame::Data(1, b"dropped")]).await;
        assert_eq!(mux.peer.settle().await, vec![]);
        mux.peer.send(&[Frame::Close(1)]).await;
        assert_eq!(pump.await, End::Closed);
        assert_eq!(stream.figures().received, 0);
    });
}

#[test]
fn a_reset_from_the_peer_ends_the_stream() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.peer.send(&[Frame::Data(1, b"before")]).await;
        mux.peer
            .send(&[Frame::Reset(1, ResetReason::SOCKET_ERROR)])
            .await;
        assert_eq!(conn.read_to_end().await, b"before");
        assert!(conn.stream.is_reset());
        assert_eq!(conn.end().await, End::Reset(ResetReason::SOCKET_ERROR));
        assert_eq!(mux.session.stream_count(), 0);
        assert_eq!(mux.peer.settle().await, vec![]);
    });
}

#[test]
fn abort_tells_the_peer() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        mux.session
            .abort(&conn.stream, ResetReason::SERVER_UNAVAILABLE);
        assert_eq!(
            mux.peer.recv().await,
            Got::Reset(1, ResetReason::SERVER_UNAVAILABLE)
        );
        assert_eq!(
            conn.end().await,
            End::Reset(ResetReason::SERVER_UNAVAILABLE)
        );
        assert_eq!(mux.session.stream_count(), 0);
    });
}

#[test]
fn sending_stops_without_credit_and_resumes_with_a_window() {
    run(|ex| async move {
        let setup = Setup {
            peer_window: 1000,
            ..Setup::default()
        };
        let mut mux = Mux::start(&ex, setup);
        let conn = mux.open(1).await;
        let bytes = pattern(3000);
        conn.write(&bytes).await;
        assert_eq!(mux.peer.data(1, 1000, setup.max_data).await, bytes[..1000]);
        assert_eq!(mux.peer.settle().await, vec![]);
        assert_eq!(conn.stream.figures().credit, 0);
        mux.peer.send(&[Frame::Window(1, 1000)]).await;
        assert_eq!(
            mux.peer.data(1, 1000, setup.max_data).await,
            bytes[1000..2000]
        );
        assert_eq!(mux.peer.settle().await, vec![]);
        // A grant past u32 saturates; the rest flows.
        mux.peer.send(&[Frame::Window(1, u32::MAX)]).await;
        assert_eq!(mux.peer.data(1, 1000, setup.max_data).await, bytes[2000..]);
        mux.peer.send(&[Frame::Window(1, 5000)]).await;
        assert_eq!(mux.peer.settle().await, vec![]);
        assert_eq!(conn.stream.figures().credit, u32::MAX);
    });
}

#[test]
fn written_bytes_are_credited_back_in_half_windows() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let half = (mux.setup.window / 2) as usize;
        let conn = mux.open(1).await;
        let bytes = pattern(half);
        mux.peer.send(&[Frame::Data(1, &bytes[..half - 1])]).await;
        assert_eq!(mux.peer.settle().await, vec![]);
        mux.peer.send(&[Frame::Data(1, &bytes[half - 1..])]).await;
        assert_eq!(mux.peer.recv().await, Got::Window(1, half as u32));
        assert_eq!(conn.read(half).await, bytes);
    });
}

#[test]
fn data_beyond_the_window_resets_the_stream() {
    run(|ex| async move {
        let mut mux = Mux::start(&ex, Setup::default());
        let conn = mux.open(1).await;
        let over = vec![0; mux.setup.window as usize + 1];
        mux.peer.send(&[Frame::Data(1, &over)]).await;
        assert_eq!(mux.peer.recv().await, Got::Reset(1, ResetReason::PROTOCOL));
        assert_eq!(conn.end().await, End::Reset(ResetReason::PROTOCOL));
    });
}

/// A MiB each way at once, the peer keeping to the window it is granted and granting more as
/// it reads: every byte arrives, in order, in frames no larger than agreed.
#[test]
fn bulk_both_ways_within_the_windows() {
    run(|ex| async move {
        let setup = Setup {
            peer_window: 64 * 1024,
            ..Setup::default()
        };
        let mut mux = Mux::start(&ex, setup);
        let conn = Rc::new(mux.open(1).await);
        let (up, down) = (pattern(1 << 20), pattern((1 << 20) + 17));
        let writer = ex.spawn({
            let (conn, up) = (conn.clone(), up.clone());
            async move { conn.write(&up).await }
        });
        let reader = ex.spawn({
            let (conn, n) = (conn.clone(), down.len());
            async move { conn.read(n).await }
        });
        let (mut sent, mut credit, mut got) = (0, setup.window as usize, Vec::new());
        while sent < down.len() || got.len() < up.len() {
            if sent < down.len() && credit > 0 {
                let n = credit.min(setup.max_data).min(down.len() - sent);
                mux.peer
                    .send(&[Frame::Data(1, &down[sent..sent + n])])
                    .await;
                (sent, credit) = (sent + n, credit - n);
                continue;
            }
            match mux.peer.recv().await {
                Got::Window(1, n) => credit += n as usize,
                Got::Data(1, d) => {
                    assert!(d.len() <= setup.max_data);
                    got.extend_from_slice(&d);
                    mux.peer.send(&[Frame::Window(1, d.len() as u32)]).await;
                }
                g => panic!("unexpected {g:?}"),
            }
        }
        writer.await;
        assert_eq!(reader.await, down);
        assert!(got == up, "the upload arrived changed");
    });
}
