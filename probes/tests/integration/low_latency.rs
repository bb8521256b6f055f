//! Low-Latency HLS: the whole stream probe through a real LL-HLS server (gohlslib's muxer,
//! `testkit::llhls`) — parts read as they appear, blocking reloads asked for and answered, part
//! latency below the segments' — and the puller against small servers written here that hold a
//! blocking reload too long or for good, do not block at all, or list a flood of parts: each
//! costs at most the blocking deadline, a timer poll, or one refused playlist.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    HlsOptions, HlsPuller, PlaylistPoll, PullError, PullEvent, PulledPart, StreamProbe,
    StreamProbeConfig, http_client,
};
use testkit::llhls::{LlHls, LlHlsOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{Recorder, encoded_source, http_response, read_request_path, runtime};

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn the_stream_probe_reads_parts_of_a_real_ll_hls_server_with_blocking_reloads() {
    let (_, source) = encoded_source();
    let key = "llhls";
    let server = LlHls::start(key, &LlHlsOptions::default());
    let mut config = StreamProbeConfig::new(
        key,
        &server.rtmp_url(),
        &server.playlist_url(),
        Duration::from_secs(16),
    );
    config.drain = Duration::from_secs(4);
    // The server lists seven gap segments ahead of its first real one (iOS asks for them); a
    // player joins at the live edge.
    config.hls.live_edge = Some(1);
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let report = runtime().block_on(probe.run(recorder.clone()));
    let stats = server.stats();

    assert_eq!(report.publish_error, None);
    assert_eq!(report.pull_error, None);
    assert_eq!(report.renditions, ["stream"]);
    let segments = recorder.segments.lock().unwrap().clone();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    assert!(
        segments.iter().all(|s| s.success),
        "{:#?}",
        segments
            .iter()
            .filter(|s| !s.success)
            .map(|s| (s.seq, &s.failure))
            .collect::<Vec<_>>()
    );
    let failed = recorder.failed_checks();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    let violations = recorder.violations.lock().unwrap().clone();
    let found: Vec<String> = violations
        .iter()
        .map(|v| format!("{} ({})", v.rule, v.detail))
        .collect();
    eprintln!("conformance findings on lpt-llhls's stream: {found:?}");
    assert!(
        violations.iter().all(|v| !v.rule.contains("PART")
            && !v.rule.contains("PRELOAD")
            && v.rule != "HLS-TAG-VALUE-INVALID"
            && v.rule != "HLS-TAG-DUPLICATE"),
        "the low-latency tags were judged wrongly: {violations:#?}"
    );

    // Parts: read as they appeared, most of them requested from the hint before they were listed,
    // each decoded behind its lead, each of ours with a latency.
    let parts = recorder.parts.lock().unwrap().clone();
    assert!(
        parts.len() >= 30,
        "{} parts in 16 s of 200 ms parts (ffmpeg's probing takes the first 5 s)",
        parts.len()
    );
    assert!(
        parts.iter().all(|p| p.success),
        "{:#?}",
        parts
            .iter()
            .filter(|p| !p.success)
            .map(|p| (p.msn, p.index, &p.failure))
            .collect::<Vec<_>>()
    );
    let keys: Vec<(u64, u64)> = parts.iter().map(|p| (p.msn, p.index)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "parts out of order or twice: {keys:?}"
    );
    let hinted = parts.iter().filter(|p| p.hinted).count();
    assert!(
        hinted * 2 >= parts.len(),
        "{hinted} of {} hinted",
        parts.len()
    );
    assert!(
        parts
            .iter()
            .any(|p| !p.independent && p.frames.is_some_and(|f| f > 0)),
        "a part without a key frame decodes behind its lead"
    );
    for p in &parts {
        assert!(
            (0.05..=0.25).contains(&p.duration_secs),
            "part {}.{} lasts {} s",
            p.msn,
            p.index,
            p.duration_secs
        );
        // The part's own pictures, not its lead's: 30 frames a second.
        let frames = p.frames.expect("decoded") as f64;
        assert!(
            frames >= 1.0 && (frames - p.duration_secs * 30.0).abs() <= 1.0,
            "{p:#?}"
        );
    }
    let part_latency = report.part_latency_ms.clone();
    assert!(
        part_latency.len() * 10 >= parts.len() * 9,
        "{} of {} parts timed",
        part_latency.len(),
        parts.len()
    );
    assert!(
        part_latency.iter().all(|l| *l > 0.0 && *l < 5_000.0),
        "{part_latency:?}"
    );

    // Segments, timed the same way (last byte − first frame sent), and from when they were
    // listed (glass to glass): a part's wait is a part's, a segment's a segment's.
    let segment_latency: Vec<f64> = segments
        .iter()
        .filter_map(|s| {
            let sent = s.latency.first_frame_sent_unix_ms?;
            Some((s.download_finished_unix_ms? - sent) as f64)
        })
        .collect();
    let glass: Vec<f64> = segments
        .iter()
        .filter_map(|s| s.latency.glass_to_glass_ms)
        .collect();
    let (part_p50, segment_p50, glass_p50) = (
        median(part_latency.clone()),
        median(segment_latency.clone()),
        median(glass.clone()),
    );
    eprintln!(
        "LL-HLS through lpt-llhls: {} parts ({hinted} hinted), part latency p50 {part_p50:.0} ms \
         (min {:.0}, max {:.0}); {} segments, latency p50 {segment_p50:.0} ms, glass-to-glass p50 \
         {glass_p50:.0} ms, stream-tester's segment latency (from the last frame) p50 {:.0} ms; \
         {} blocking reloads answered, {} given up; server: {stats:?}",
        parts.len(),
        part_latency.iter().copied().fold(f64::MAX, f64::min),
        part_latency.iter().copied().fold(0.0, f64::max),
        segments.len(),
        median(report.segment_latency_ms.clone()),
        report.blocking_reloads,
        report.blocking_reloads_given_up,
    );
    assert!(
        part_p50 + 500.0 < segment_p50,
        "part latency p50 {part_p50} ms is not well below the segments' {segment_p50} ms"
    );
    assert!(
        part_p50 < glass_p50,
        "{part_p50} ms vs glass to glass {glass_p50} ms"
    );

    // Blocking reloads: asked for, answered, and seen by the server.
    assert!(
        stats.blocking_playlist_requests >= 30,
        "{stats:?}: the follower did not block"
    );
    assert!(report.blocking_reloads >= 30, "{report:?}");
    assert!(
        stats.blocking_playlist_requests >= report.blocking_reloads,
        "{stats:?} vs {report:?}"
    );
    // Only the drain, when no part comes, gives reloads up: each after its 1.1 s wait.
    assert!(
        report.blocking_reloads_given_up <= 5,
        "{} given up",
        report.blocking_reloads_given_up
    );
    assert!(stats.part_requests as usize >= parts.len(), "{stats:?}");
}

/// How a small server answers what a low-latency follower asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Blocking reloads are held for good; a hinted part is held until it is published.
    NeverAnswers,
    /// Blocking reloads are answered after this long (within the follower's wait).
    AnswersAfter(Duration),
    /// Blocking reloads are answered at once with the playlist as it is; an unpublished part is
    /// 404: a server that says CAN-BLOCK-RELOAD=YES but does not block.
    DoesNotBlock,
    /// The playlist lists this many parts.
    Flood(usize),
}

/// A new part every PART; five to a segment, whose target duration is 1 s.
const PART: Duration = Duration::from_millis(200);
const PARTS_PER_SEGMENT: u64 = 5;

/// The playlist after `published` parts: the newest six whole segments, the parts of the
/// newest two and of the segment being made, the hint of the next part.
fn playlist(published: u64) -> String {
    let done = published / PARTS_PER_SEGMENT;
    let first = done.saturating_sub(6);
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n\
         #EXT-X-PART-INF:PART-TARGET=0.2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    let parts = |text: &mut String, seq: u64, count: u64| {
        for i in 0..count {
            let n = seq * PARTS_PER_SEGMENT + i;
            let independent = if i == 0 { ",INDEPENDENT=YES" } else { "" };
            text.push_str(&format!(
                "#EXT-X-PART:DURATION=0.2,URI=\"p{n}.ts\"{independent}\n"
            ));
        }
    };
    for seq in first..done {
        if seq + 2 >= done {
            parts(&mut text, seq, PARTS_PER_SEGMENT);
        }
        text.push_str(&format!("#EXTINF:1.0,\ns{seq}.ts\n"));
    }
    parts(&mut text, done, published % PARTS_PER_SEGMENT);
    text.push_str(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p{published}.ts\"\n"
    ));
    text
}

/// Requests the small server saw: playlist requests with `_HLS_msn`, plain ones, parts.
#[derive(Debug, Default)]
struct Seen {
    blocking: u32,
    plain: u32,
    parts: BTreeMap<u64, u32>,
}

/// Serves `/ll/stream.m3u8`, its parts and segments as `mode` says; returns the port and what
/// it was asked.
async fn small_server(mode: Mode) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let seen2 = seen.clone();
    let born = Instant::now();
    let published = move || (born.elapsed().as_millis() / PART.as_millis()) as u64 + 10;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                let playlist_reply = |text: String| {
                    http_response("200 OK", "application/vnd.apple.mpegurl", text.as_bytes())
                };
                let reply = if let Some(query) = path.strip_prefix("/ll/stream.m3u8") {
                    let blocking = query.contains("_HLS_msn=");
                    {
                        let mut seen = seen.lock().unwrap();
                        if blocking {
                            seen.blocking += 1;
                        } else {
                            seen.plain += 1;
                        }
                    }
                    match (mode, blocking) {
                        (Mode::Flood(count), _) => {
                            let mut text = playlist(published());
                            for n in 0..count {
                                text.push_str(&format!(
                                    "#EXT-X-PART:DURATION=0.2,URI=\"flood{n}.ts\"\n"
                                ));
                            }
                            playlist_reply(text)
                        }
                        (Mode::NeverAnswers, true) => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        (Mode::AnswersAfter(after), true) => {
                            tokio::time::sleep(after).await;
                            playlist_reply(playlist(published()))
                        }
                        _ => playlist_reply(playlist(published())),
                    }
                } else if let Some(n) = path
                    .strip_prefix("/ll/p")
                    .and_then(|p| p.strip_suffix(".ts"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    *seen.lock().unwrap().parts.entry(n).or_default() += 1;
                    if mode == Mode::DoesNotBlock && n >= published() {
                        http_response("404 Not Found", "text/plain", b"not yet")
                    } else {
                        // A hinted part is held until it is published.
                        while n >= published() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        http_response("200 OK", "video/mp2t", &[0x47; 188 * 4])
                    }
                } else if path.starts_with("/ll/s") {
                    http_response("200 OK", "video/mp2t", &[0x47; 188 * 20])
                } else {
                    http_response("404 Not Found", "text/plain", b"no")
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, seen)
}

/// Pulls the small server in `mode` for `run`, with a blocking wait of 3 × 0.2 s + 200 ms;
/// returns the polls, the parts, what the server saw and how long the pull took.
fn pull_small(mode: Mode, run: Duration) -> (Vec<PlaylistPoll>, Vec<PulledPart>, Seen, Duration) {
    let rt = runtime();
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    let (seen, took) = rt.block_on(async {
        let (port, seen) = small_server(mode).await;
        let options = HlsOptions {
            blocking_reload_margin: Duration::from_millis(200),
            live_edge: Some(1),
            ..HlsOptions::default()
        };
        let started = Instant::now();
        HlsPuller::new(
            http_client().unwrap(),
            &format!("http://127.0.0.1:{port}/ll/stream.m3u8"),
            "ll",
            options,
        )
        .unwrap()
        .run(
            started + run,
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        )
        .await;
        (seen, started.elapsed())
    });
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let events = std::mem::take(&mut *events.lock().unwrap());
    let mut polls = Vec::new();
    let mut parts = Vec::new();
    for e in events {
        match e {
            PullEvent::Playlist(p) => polls.push(p),
            PullEvent::Part(p) => parts.push(*p),
            _ => {}
        }
    }
    (polls, parts, seen, took)
}

/// The parts' keys are consecutive: none skipped, none twice.
fn assert_consecutive(parts: &[PulledPart]) {
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p.msn * PARTS_PER_SEGMENT + p.index)
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[test]
fn a_blocking_reload_never_answered_costs_its_deadline_and_no_more() {
    let run = Duration::from_secs(5);
    let (polls, parts, seen, took) = pull_small(Mode::NeverAnswers, run);
    assert!(took < run + Duration::from_millis(500), "took {took:?}");
    let blocking: Vec<_> = polls.iter().filter_map(|p| p.blocking.as_ref()).collect();
    // Each cycle: a blocking reload given up after 3 × 0.2 s + 0.2 s, a plain reload, the new
    // parts, the hinted part; about one a second.
    assert!(
        (3..=6).contains(&blocking.len()),
        "{} blocking reloads in {run:?}",
        blocking.len()
    );
    // The run's deadline may cut the last one, which then is no poll.
    assert!((blocking.len()..=blocking.len() + 1).contains(&(seen.blocking as usize)));
    for b in &blocking {
        match &b.given_up {
            Some(PullError::Timeout { timeout_ms, url }) => {
                assert_eq!(*timeout_ms, 800);
                assert!(
                    url.contains("_HLS_msn=") && url.contains("_HLS_part="),
                    "{url}"
                );
            }
            other => panic!("a blocking reload never answered: {other:?}"),
        }
    }
    // The plain reload after each one still moved the follower on: parts kept coming.
    assert!(polls.iter().all(|p| p.outcome.is_ok()), "{polls:#?}");
    let gaps: Vec<i64> = polls
        .windows(2)
        .map(|w| w[1].at_unix_ms - w[0].at_unix_ms)
        .collect();
    assert!(gaps.iter().all(|g| *g < 1_800), "poll gaps {gaps:?} ms");
    assert!(parts.len() >= 15, "{} parts", parts.len());
    assert_consecutive(&parts);
}

#[test]
fn a_slow_blocking_reload_within_the_deadline_is_waited_for() {
    let (polls, parts, seen, _) = pull_small(
        Mode::AnswersAfter(Duration::from_millis(400)),
        Duration::from_secs(3),
    );
    let blocking: Vec<_> = polls.iter().filter_map(|p| p.blocking.as_ref()).collect();
    assert!(blocking.len() >= 3, "{blocking:?}");
    assert!(
        blocking.iter().all(|b| b.given_up.is_none()),
        "{blocking:?}"
    );
    assert!((blocking.len()..=blocking.len() + 1).contains(&(seen.blocking as usize)));
    assert!(parts.len() >= 8, "{} parts", parts.len());
    assert_consecutive(&parts);
}

#[test]
fn a_server_that_does_not_block_is_polled_on_the_timer() {
    let run = Duration::from_secs(3);
    let (polls, parts, seen, _) = pull_small(Mode::DoesNotBlock, run);
    // Half a target duration (0.5 s) between reloads, not as fast as the server answers.
    let requests = seen.blocking + seen.plain;
    assert!(
        (3..=9).contains(&requests),
        "{requests} playlist requests in {run:?}: {seen:?}"
    );
    assert!((polls.len()..=polls.len() + 1).contains(&(requests as usize)));
    assert!(
        polls
            .iter()
            .filter_map(|p| p.blocking.as_ref())
            .all(|b| b.given_up.is_none()),
        "answered at once, so never given up"
    );
    // Parts are read as polling finds them: late, but every one.
    assert!(parts.len() >= 8, "{} parts", parts.len());
    assert!(parts.iter().all(|p| !p.hinted && p.body.is_ok()));
    assert_consecutive(&parts);
}

#[test]
fn a_flood_of_parts_refuses_the_playlist_without_fetching_any() {
    let (polls, parts, seen, _) = pull_small(Mode::Flood(5_000), Duration::from_secs(2));
    assert!(parts.is_empty());
    assert!(seen.parts.is_empty(), "{:?}", seen.parts);
    assert!(!polls.is_empty());
    for p in &polls {
        let e = p.outcome.as_ref().unwrap_err().to_string();
        assert!(
            e.contains("more than 1024 EXT-X-PART tags") && e.ends_with("playlist refused"),
            "{e}"
        );
        assert!(p.blocking.is_none(), "a refused playlist is not blocked on");
    }
}
