//! The HLS conformance rules judged through a real puller: a small live HLS server written here
//! serves a conforming stream, and variants of it that each break exactly one rule by how they
//! are served (headers, the playlist's evolution over time, segment responses, the master's
//! attributes); an `HlsPuller` pulls each one and its sink feeds a `StreamConformance`, exactly
//! as the stream probe does. Every case must find exactly its one rule, the baseline none.
//!
//! Time is scaled down: the target duration is 1 s, each segment's EXTINF 1 s, and the server
//! lists one new segment every [`STEP`] (faster than real time, which no rule forbids), so a
//! pull lasts a few seconds; all cases run at once on one runtime.
//!
//! Segments are served as opaque TS-packet-sized bytes and judged with `decoded = None`, so the
//! rules that need decoded media (HLS-SEGMENT-NOT-KEYFRAME, HLS-SEGMENT-DURATION-MISMATCH,
//! HLS-SEGMENT-OVER-TARGET, HLS-VARIANT-CODECS-MISMATCH, HLS-VARIANT-RESOLUTION-MISMATCH,
//! HLS-VARIANT-FRAME-RATE-MISMATCH, HLS-TIMELINE-MISALIGNED) cannot fire here: the baseline's
//! empty set says nothing about them. Every other rule is in the assertion.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::stream_conformance::{SegmentMeta, StreamConformance};
use probes::{HlsOptions, HlsPuller, PullEvent, http_client, pull_stop};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{read_request_path, runtime};

/// Wall time between two new segments of the live playlist.
const STEP: Duration = Duration::from_millis(500);
/// Segments listed at once (Apple's minimum for a live playlist).
const WINDOW: u64 = 6;
/// The window's first segment once the playlist ends (EXT-X-ENDLIST).
const LAST_BASE: u64 = 8;
/// The last segment listed.
const LAST_SEQ: u64 = LAST_BASE + WINDOW - 1;
/// Bytes of each segment: 20 TS packets, 30 kbit/s at 1 s.
const SEGMENT_BYTES: usize = 188 * 20;
/// Stale case: the playlist stops growing at this window start ...
const FREEZE_AT: u64 = 2;
/// ... for this many steps (3 s, twice the 1.5 s a 1 s target duration allows).
const FREEZE_STEPS: u64 = 6;
/// Reappeared case: this segment is listed with the URI of [`REUSED`], which left long before.
const REUSING: u64 = 11;
const REUSED: u64 = 2;
/// The segment the 404 and empty cases break.
const BROKEN_SEGMENT: u64 = 3;

const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=200000,AVERAGE-BANDWIDTH=150000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
v0/index.m3u8
";

/// How the served stream breaks a rule, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    Conforming,
    /// The media playlist (a `.m3u8` path) as `text/plain`.
    PlaylistTextPlain,
    /// The live media playlist without Cache-Control.
    NoCacheControl,
    /// The live media playlist cacheable for a minute.
    CacheMaxAge60,
    /// One refresh lists the window one segment back.
    SequenceBack,
    /// The playlist lists nothing new for 3 s, without EXT-X-ENDLIST.
    Stale,
    /// A segment URI that left the window is listed again for a new segment.
    Reappeared,
    /// One segment answers 404.
    Segment404,
    /// One segment answers 200 with no body.
    SegmentEmpty,
    /// The master's EXT-X-STREAM-INF has no CODECS.
    CodecsMissing,
}

const CASES: [(Case, Option<&str>); 10] = [
    (Case::Conforming, None),
    (Case::PlaylistTextPlain, Some("HLS-PLAYLIST-MIME-TYPE")),
    (Case::NoCacheControl, Some("HLS-PLAYLIST-CACHE-CONTROL")),
    (Case::CacheMaxAge60, Some("HLS-PLAYLIST-CACHE-CONTROL")),
    (Case::SequenceBack, Some("HLS-MEDIA-SEQUENCE-DECREASED")),
    (Case::Stale, Some("HLS-PLAYLIST-STALE")),
    (Case::Reappeared, Some("HLS-SEGMENT-REAPPEARED")),
    (Case::Segment404, Some("HLS-SEGMENT-UNAVAILABLE")),
    (Case::SegmentEmpty, Some("HLS-SEGMENT-EMPTY")),
    (Case::CodecsMissing, Some("HLS-STREAM-INF-CODECS-MISSING")),
];

/// An HTTP/1.1 response that closes the connection, with an optional Cache-Control.
fn response(status: &str, content_type: &str, cache_control: Option<&str>, body: &[u8]) -> Vec<u8> {
    let cache = cache_control.map_or_else(String::new, |c| format!("Cache-Control: {c}\r\n"));
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{cache}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The program date of segment `seq`: 1 s apart from 01:00:00.
fn date(seq: u64) -> String {
    let s = 3600 + seq;
    format!(
        "2026-11-22T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The window start after `steps` steps of wall time.
fn window_start(case: Case, steps: u64) -> u64 {
    let base = if case != Case::Stale || steps <= FREEZE_AT {
        steps
    } else if steps < FREEZE_AT + FREEZE_STEPS {
        FREEZE_AT
    } else {
        steps - FREEZE_STEPS
    };
    base.min(LAST_BASE)
}

/// The media playlist listing [`WINDOW`] segments from `base`, each dated, 1 s long, at a
/// target duration of 1 s; ended at [`LAST_BASE`].
fn media_playlist(case: Case, base: u64) -> String {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{base}\n"
    );
    for seq in base..base + WINDOW {
        let uri = if case == Case::Reappeared && seq == REUSING {
            REUSED
        } else {
            seq
        };
        text.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:1.000,\ns{uri}.ts\n",
            date(seq)
        ));
    }
    if base >= LAST_BASE {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// What the server remembers between requests.
#[derive(Default)]
struct Served {
    /// The window start of the last media playlist served.
    last_base: Option<u64>,
    /// Whether the one refresh that goes back was served (SequenceBack).
    went_back: bool,
}

/// Serves `/live/index.m3u8` (the master), `/live/v0/index.m3u8` (the live media playlist)
/// and `/live/v0/s<n>.ts`, broken as `case` says; returns its port.
async fn live_server(case: Case) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let born = Instant::now();
    let served: Arc<Mutex<Served>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let served = served.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                let reply = match path.as_str() {
                    "/live/index.m3u8" => {
                        let text = if case == Case::CodecsMissing {
                            MASTER.replace(",CODECS=\"avc1.64001f,mp4a.40.2\"", "")
                        } else {
                            MASTER.to_string()
                        };
                        response(
                            "200 OK",
                            "application/vnd.apple.mpegurl",
                            None,
                            text.as_bytes(),
                        )
                    }
                    "/live/v0/index.m3u8" => {
                        let steps = (born.elapsed().as_millis() / STEP.as_millis()) as u64;
                        let mut base = window_start(case, steps);
                        {
                            let mut s = served.lock().unwrap();
                            if case == Case::SequenceBack
                                && !s.went_back
                                && let Some(last) = s.last_base.filter(|l| *l >= 2)
                            {
                                s.went_back = true;
                                base = last - 1;
                            }
                            s.last_base = Some(base);
                        }
                        let content_type = if case == Case::PlaylistTextPlain {
                            "text/plain"
                        } else {
                            "application/vnd.apple.mpegurl"
                        };
                        let cache = match case {
                            Case::NoCacheControl => None,
                            Case::CacheMaxAge60 => Some("max-age=60"),
                            _ => Some("no-cache"),
                        };
                        let text = media_playlist(case, base);
                        response("200 OK", content_type, cache, text.as_bytes())
                    }
                    _ => match path
                        .strip_prefix("/live/v0/s")
                        .and_then(|p| p.strip_suffix(".ts"))
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        Some(BROKEN_SEGMENT) if case == Case::Segment404 => {
                            response("404 Not Found", "text/plain", None, b"gone")
                        }
                        Some(BROKEN_SEGMENT) if case == Case::SegmentEmpty => {
                            response("200 OK", "video/mp2t", None, b"")
                        }
                        Some(_) => response("200 OK", "video/mp2t", None, &[0x47; SEGMENT_BYTES]),
                        None => response("404 Not Found", "text/plain", None, b"no"),
                    },
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// What one case's pull found: the rule IDs, every violation as text (for messages), how long
/// it took to reach the end of the stream, and how many segments it pulled.
struct Outcome {
    rules: BTreeSet<&'static str>,
    found: Vec<String>,
    took: Duration,
    segments: u64,
    /// Segments that failed: sequence number, HTTP status as pulled, error.
    failed: Vec<(u64, Option<u16>, String)>,
}

/// Pulls `case`'s stream to its end, judging every playlist and segment as the stream probe does.
async fn pull(case: Case) -> Outcome {
    let port = live_server(case).await;
    type State = (
        StreamConformance,
        Vec<(String, &'static str)>,
        u64,
        Vec<(u64, Option<u16>, String)>,
    );
    let state: Arc<Mutex<State>> = Arc::default();
    let sink = state.clone();
    // With a master playlist the puller re-reads it until its deadline; the pull is over once
    // the last segment (listed with EXT-X-ENDLIST) is delivered, so that stops it.
    let (stop_handle, stop) = pull_stop();
    let started = Instant::now();
    HlsPuller::new(
        http_client().unwrap(),
        &format!("http://127.0.0.1:{port}/live/index.m3u8"),
        "conformance",
        HlsOptions::default(),
    )
    .unwrap()
    .run_until(
        started + Duration::from_secs(18),
        Arc::new(move |e: PullEvent| {
            let mut guard = sink.lock().unwrap();
            let (conformance, found, segments, failed) = &mut *guard;
            let new = match &e {
                PullEvent::Playlist(poll) => conformance.playlist(poll),
                PullEvent::Segment(s) => {
                    *segments += 1;
                    if let Err(err) = &s.body {
                        failed.push((s.seq, s.http_status, err.to_string()));
                    }
                    if s.seq == LAST_SEQ {
                        stop_handle.stop();
                    }
                    conformance.segment(&SegmentMeta::of(s), None)
                }
                _ => Vec::new(),
            };
            found.extend(new.into_iter().map(|(_, v)| (v.to_string(), v.rule)));
        }),
        stop,
    )
    .await;
    let took = started.elapsed();
    let mut guard = state.lock().unwrap();
    let (conformance, found, segments, failed) = &mut *guard;
    let end = conformance.finish();
    found.extend(end.into_iter().map(|(_, v)| (v.to_string(), v.rule)));
    Outcome {
        rules: found.iter().map(|(_, r)| *r).collect(),
        found: found.iter().map(|(s, _)| s.clone()).collect(),
        took,
        segments: *segments,
        failed: failed.clone(),
    }
}

#[test]
fn each_served_fault_breaks_exactly_its_rule_and_the_conforming_stream_none() {
    let rt = runtime();
    let outcomes: BTreeMap<Case, Outcome> = rt.block_on(async {
        let tasks: Vec<_> = CASES
            .iter()
            .map(|(case, _)| (*case, tokio::spawn(pull(*case))))
            .collect();
        let mut out = BTreeMap::new();
        for (case, task) in tasks {
            out.insert(case, task.await.unwrap());
        }
        out
    });
    for (case, outcome) in &outcomes {
        // Every pull reached the last segment well before its deadline (the longest, Stale,
        // lists it after about 7 s), and saw the whole stream: 0..=LAST_SEQ at least.
        assert!(
            outcome.took < Duration::from_secs(12),
            "{case:?} took {:?}",
            outcome.took
        );
        assert!(
            outcome.segments > LAST_SEQ,
            "{case:?} pulled {} segments",
            outcome.segments
        );
    }
    // Only the 404 case has failed segments: segment 3, its status kept.
    let failed: Vec<(Case, u64, Option<u16>)> = outcomes
        .iter()
        .flat_map(|(case, o)| o.failed.iter().map(move |(seq, st, _)| (*case, *seq, *st)))
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|f| *f == (Case::Segment404, BROKEN_SEGMENT, Some(404))),
        "{:?}",
        outcomes
            .iter()
            .map(|(c, o)| (c, &o.failed))
            .collect::<Vec<_>>()
    );
    assert!(
        outcomes[&Case::Segment404].failed[0].2.contains("404"),
        "{:?}",
        outcomes[&Case::Segment404].failed
    );
    let found: BTreeMap<Case, BTreeSet<&str>> = outcomes
        .iter()
        .map(|(case, o)| (*case, o.rules.clone()))
        .collect();
    let expected: BTreeMap<Case, BTreeSet<&str>> = CASES
        .iter()
        .map(|(case, rule)| (*case, rule.iter().copied().collect()))
        .collect();
    let details: Vec<String> = outcomes
        .iter()
        .flat_map(|(case, o)| o.found.iter().map(move |f| format!("{case:?}: {f}")))
        .collect();
    assert_eq!(found, expected, "violations found:\n{}", details.join("\n"));
}
