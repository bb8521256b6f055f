//! Misbehaving HLS servers: garbage playlists, 500s, truncated segments, wrong content types,
//! servers that never answer. Every failure must be a recorded event with a reason, and no
//! puller may outlive its deadline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    CheckOptions, HlsOptions, HlsPuller, PullError, PullEvent, SegmentChecker, StreamProbe,
    StreamProbeConfig, decode_segment, http_client,
};
use testkit::ports::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{Recorder, encoded_source, http_response, read_request_path, runtime};

/// Serves the routes below on a loopback port until the runtime stops.
async fn bad_server(segment: Arc<Vec<u8>>, extinf: f64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sliding_polls = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let segment = segment.clone();
            let sliding_polls = sliding_polls.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                let playlist = format!(
                    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n{}",
                    (0..6)
                        .map(|i| format!("#EXTINF:{extinf:.3},\nseg{i}.ts\n"))
                        .collect::<String>()
                );
                // First poll: segments 0..=2; later: the window has slid to 10..=12 after a
                // discontinuity (segments 3..=9 were never listed to this client).
                let sliding = if sliding_polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (0..3)
                        .map(|i| format!("#EXTINF:{extinf:.3},\nseg{i}.ts\n"))
                        .collect::<String>()
                } else {
                    "#EXT-X-DISCONTINUITY\n".to_string()
                        + &(10..13)
                            .map(|i| format!("#EXTINF:{extinf:.3},\nseg{i}.ts\n"))
                            .collect::<String>()
                };
                let first_seq = if sliding.starts_with("#EXT-X-DISCONTINUITY") {
                    10
                } else {
                    0
                };
                let sliding = format!(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first_seq}\n{sliding}"
                );
                let reply = match path.as_str() {
                    "/sliding/index.m3u8" => http_response(
                        "200 OK",
                        "application/vnd.apple.mpegurl",
                        sliding.as_bytes(),
                    ),
                    p if p.starts_with("/sliding/seg") => {
                        http_response("200 OK", "video/mp2t", &segment)
                    }
                    "/garbage/index.m3u8" => {
                        http_response("200 OK", "text/html", b"<html>not a playlist</html>")
                    }
                    "/error/index.m3u8" => {
                        http_response("500 Internal Server Error", "text/plain", b"boom")
                    }
                    "/live/index.m3u8" => http_response(
                        "200 OK",
                        "application/vnd.apple.mpegurl",
                        playlist.as_bytes(),
                    ),
                    "/live/seg0.ts" => http_response("200 OK", "video/mp2t", &segment),
                    "/live/seg1.ts" => {
                        // Announces the whole segment, sends half, hangs up.
                        let mut r = http_response("200 OK", "video/mp2t", &segment);
                        r.truncate(r.len() - segment.len() / 2);
                        r
                    }
                    "/live/seg2.ts" => {
                        http_response("500 Internal Server Error", "text/plain", b"boom")
                    }
                    "/live/seg3.ts" => http_response("200 OK", "text/plain", &segment),
                    "/live/seg4.ts" | "/slow/index.m3u8" => {
                        // Never answers; holds the connection until the client gives up.
                        let _ = conn.read(&mut [0u8; 1]).await;
                        return;
                    }
                    "/live/seg5.ts" => {
                        http_response("200 OK", "video/mp2t", &segment[..segment.len() - 100])
                    }
                    _ => http_response("404 Not Found", "text/plain", b"no"),
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

fn first_segment() -> (Arc<Vec<u8>>, f64) {
    let (encoded, _) = encoded_source();
    let seg = encoded.ts_segments(2.0).unwrap().remove(0);
    (Arc::new(seg.data), seg.duration_secs)
}

fn collect() -> (Arc<Mutex<Vec<PullEvent>>>, Arc<dyn probes::PullSink>) {
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    (events, Arc::new(move |e| sink.lock().unwrap().push(e)))
}

#[test]
fn bad_segments_become_failures_with_reasons_and_a_stall_is_recorded() {
    let (segment, extinf) = first_segment();
    let (_, source) = encoded_source();
    let rt = runtime();
    let (events, sink) = collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(6);
    let summary = rt.block_on(async {
        let port = bad_server(segment, extinf).await;
        let options = HlsOptions {
            request_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let url = format!("http://127.0.0.1:{port}/live/index.m3u8");
        HlsPuller::new(http_client().unwrap(), &url, "bad", options)
            .unwrap()
            .run(deadline, sink)
            .await
    });
    assert!(
        Instant::now() < deadline + Duration::from_millis(1500),
        "ran past its deadline"
    );
    assert_eq!(summary.error, None);
    assert_eq!(
        (summary.segments_ok, summary.segments_failed),
        (3, 3),
        "{summary:?}"
    );
    assert_eq!(summary.stalls, 1, "{summary:?}");

    let checker = SegmentChecker::new("bad", None, CheckOptions::default())
        .expect_stream_id(source.format.stream_id);
    let events = events.lock().unwrap();
    let mut by_seq = std::collections::BTreeMap::new();
    for e in events.iter() {
        if let PullEvent::Segment(s) = e {
            let decoded = s.body.as_ref().ok().map(|b| decode_segment(b));
            assert!(
                by_seq
                    .insert(s.seq, checker.check(s, decoded.as_ref()))
                    .is_none(),
                "seq {} twice",
                s.seq
            );
        }
    }
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    let failed_reason = |seq: u64, check: &str| {
        let v = by_seq[&seq]
            .verdict(check)
            .unwrap_or_else(|| panic!("no {check} verdict for {seq}"));
        assert!(!v.passed, "seq {seq} {check} passed: {v:?}");
        v.reason.clone()
    };
    assert!(
        by_seq[&0].checks.iter().all(|c| c.passed),
        "{:#?}",
        by_seq[&0].checks
    );
    assert!(by_seq[&0].observation.success);
    assert!(
        failed_reason(1, "download").contains("cut short"),
        "{}",
        failed_reason(1, "download")
    );
    assert!(failed_reason(2, "download").contains("HTTP 500"));
    assert!(failed_reason(3, "content_type").contains("text/plain"));
    assert!(
        by_seq[&3].observation.success,
        "a wrong content type is a failed check, not a lost segment"
    );
    assert!(failed_reason(4, "download").contains("no complete response within 1000 ms"));
    assert!(
        failed_reason(5, "decode").contains("truncated"),
        "{}",
        failed_reason(5, "decode")
    );
    for seq in [1, 2, 4, 5] {
        assert!(!by_seq[&seq].observation.success);
        assert!(by_seq[&seq].observation.failure.is_some());
    }

    let stalls: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let PullEvent::Stall(s) = e {
                Some(s.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(stalls.len(), 2, "{stalls:#?}");
    assert!(!stalls[0].ended && stalls[1].ended);
    assert!(stalls[0].stalled_ms >= 3000.0, "{stalls:#?}");
    assert_eq!(stalls[0].last_seq, Some(5));
}

#[test]
fn garbage_and_erroring_playlists_are_recorded_until_the_wait_runs_out() {
    let (segment, extinf) = first_segment();
    let rt = runtime();
    for (route, expect) in [
        ("garbage", "does not start with #EXTM3U"),
        ("error", "HTTP 500"),
    ] {
        let (events, sink) = collect();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        let summary = rt.block_on(async {
            let port = bad_server(segment.clone(), extinf).await;
            let options = HlsOptions {
                playlist_wait: Duration::from_millis(1500),
                ..Default::default()
            };
            let url = format!("http://127.0.0.1:{port}/{route}/index.m3u8");
            HlsPuller::new(http_client().unwrap(), &url, "bad", options)
                .unwrap()
                .run(deadline, sink)
                .await
        });
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{route}: gave up after {took:?}"
        );
        let error = summary
            .error
            .expect("the failure is in the summary")
            .to_string();
        assert!(error.contains(expect), "{route}: {error}");
        let polls: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                PullEvent::Playlist(p) => Some(p.outcome.clone().unwrap_err().to_string()),
                _ => None,
            })
            .collect();
        assert!(
            polls.len() >= 3,
            "{route}: polling stopped early: {polls:?}"
        );
        assert!(
            polls.iter().all(|p| p.contains(expect)),
            "{route}: {polls:?}"
        );
        assert_eq!(summary.playlist_failures, polls.len() as u64);
    }
}

#[test]
fn a_server_that_never_answers_cannot_hold_the_puller_past_its_deadline() {
    let (segment, extinf) = first_segment();
    let rt = runtime();
    let (_, sink) = collect();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1500);
    let summary = rt.block_on(async {
        let port = bad_server(segment, extinf).await;
        let url = format!("http://127.0.0.1:{port}/slow/index.m3u8");
        HlsPuller::new(http_client().unwrap(), &url, "slow", HlsOptions::default())
            .unwrap()
            .run(deadline, sink)
            .await
    });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(
        matches!(summary.error, Some(PullError::Deadline { .. })),
        "{:?}",
        summary.error
    );
}

#[test]
fn stream_probe_against_nothing_reports_both_failures_and_stops() {
    let (_, source) = encoded_source();
    let (rtmp, http) = (free_port(), free_port());
    let mut config = StreamProbeConfig::new(
        "nothing",
        &format!("rtmp://127.0.0.1:{rtmp}/live/nothing"),
        &format!("http://127.0.0.1:{http}/hls/nothing.m3u8"),
        Duration::from_secs(30),
    );
    config.drain = Duration::from_secs(1);
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let started = Instant::now();
    let report = runtime().block_on(probe.run(recorder.clone()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let error = report.publish_error.expect("publish error");
    assert!(error.contains(&format!("127.0.0.1:{rtmp}")), "{error}");
    assert_eq!(report.segments_ok, 0);
    let publishes = recorder.publishes.lock().unwrap();
    assert_eq!(
        publishes.last().unwrap().phase,
        probes::PublishPhase::Failed
    );
    assert!(
        publishes
            .last()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("cannot connect")
    );
}

#[test]
fn invalid_urls_are_refused_naming_them() {
    let (_, source) = encoded_source();
    let config = StreamProbeConfig::new(
        "x",
        "http://wrong/scheme",
        "http://h/x.m3u8",
        Duration::from_secs(1),
    );
    let err = StreamProbe::new(config, source.clone(), http_client().unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("http://wrong/scheme"), "{err}");
    let config = StreamProbeConfig::new(
        "x",
        "rtmp://h/live/x",
        "ftp://h/x.m3u8",
        Duration::from_secs(1),
    );
    let err = StreamProbe::new(config, source.clone(), http_client().unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("ftp://h/x.m3u8"), "{err}");
}

#[test]
fn a_window_that_slid_past_unseen_segments_records_them_missed_and_discontinuity_resets_continuity()
{
    let (segment, extinf) = first_segment();
    let (_, source) = encoded_source();
    let rt = runtime();
    let (events, sink) = collect();
    let deadline = Instant::now() + Duration::from_millis(2500);
    let summary = rt.block_on(async {
        // The sliding route answers its first poll differently from later ones, so this test
        // gets a server of its own.
        let port = bad_server(segment, extinf).await;
        let url = format!("http://127.0.0.1:{port}/sliding/index.m3u8");
        HlsPuller::new(http_client().unwrap(), &url, "slide", HlsOptions::default())
            .unwrap()
            .run(deadline, sink)
            .await
    });
    assert_eq!(
        (summary.segments_ok, summary.segments_missed),
        (6, 7),
        "{summary:?}"
    );
    let checker = SegmentChecker::new("slide", None, CheckOptions::default())
        .expect_stream_id(source.format.stream_id);
    let mut missed = Vec::new();
    let mut checked = std::collections::BTreeMap::new();
    for e in events.lock().unwrap().iter() {
        match e {
            PullEvent::Missed { seq, .. } => missed.push(*seq),
            PullEvent::Segment(s) => {
                let decoded = decode_segment(s.body.as_ref().unwrap());
                checked.insert(s.seq, checker.check(s, Some(&decoded)));
            }
            _ => {}
        }
    }
    assert_eq!(missed, (3..10).collect::<Vec<u64>>());
    assert_eq!(
        checked.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 10, 11, 12]
    );
    assert!(checked[&10].observation.discontinuity);
    // Every segment here is the same clip segment, so time goes backwards between neighbours:
    // continuity catches it, except across the announced discontinuity, where it is not judged.
    let c1 = checked[&1]
        .verdict("continuity")
        .expect("continuity judged for seq 1");
    assert!(
        !c1.passed && c1.reason.contains("previous one ended"),
        "{c1:?}"
    );
    assert!(checked[&10].verdict("continuity").is_none());
    assert!(!checked[&11].verdict("continuity").unwrap().passed);
    let missed_record = checker.missed("slide", 3, 0);
    assert!(!missed_record.observation.success);
    assert_eq!(missed_record.checks[0].check, "download");
}

#[test]
fn a_stop_ends_the_pull_at_once_even_mid_download_without_blaming_the_target() {
    let (segment, extinf) = first_segment();
    let rt = runtime();
    let (events, sink) = collect();
    let (summary, stopped_after) = rt.block_on(async {
        let port = bad_server(segment, extinf).await;
        let url = format!("http://127.0.0.1:{port}/live/index.m3u8");
        let puller =
            HlsPuller::new(http_client().unwrap(), &url, "stop", HlsOptions::default()).unwrap();
        let (handle, stop) = probes::pull_stop();
        let deadline = Instant::now() + Duration::from_secs(60);
        let pull = puller.run_until(deadline, sink, stop);
        tokio::pin!(pull);
        // seg4 never answers and the request timeout is 10 s: the stop must cut it.
        let stop_at = Instant::now() + Duration::from_secs(2);
        tokio::select! {
            s = &mut pull => panic!("ended before the stop: {s:?}"),
            _ = tokio::time::sleep_until(stop_at) => {}
        }
        handle.stop();
        let summary = pull.await;
        (summary, stop_at.elapsed())
    });
    assert!(
        stopped_after < Duration::from_millis(500),
        "took {stopped_after:?} to stop"
    );
    assert_eq!(
        (summary.segments_ok, summary.segments_failed),
        (2, 2),
        "{summary:?}"
    );
    let seqs: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| {
            if let PullEvent::Segment(s) = e {
                Some(s.seq)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        seqs,
        vec![0, 1, 2, 3],
        "the interrupted seg4 must not be reported"
    );
}
