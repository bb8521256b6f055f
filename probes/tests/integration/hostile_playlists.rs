//! Hostile HLS servers against the puller: absurd target durations, sequence numbers at the end
//! of `u64`, endless bodies, variant floods and a sink that cannot keep up. Each must become a
//! recorded failure (or back-pressure) with bounded time and memory, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::hls::Delivery;
use probes::{HlsOptions, HlsPuller, PullError, PullEvent, PullSink, PullSummary, http_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::{http_response, read_request_path, runtime};

const VARIANTS: usize = 10_000;
const MANY_SEGMENTS: usize = 100;

/// Paths the server was asked for, with counts.
type Requests = Arc<Mutex<BTreeMap<String, u32>>>;

fn media(target: &str, first_seq: &str, segments: &[&str]) -> String {
    let mut text =
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first_seq}\n");
    for s in segments {
        text.push_str(s);
    }
    text
}

/// Serves the hostile routes below on a loopback port until the runtime stops.
async fn hostile_server() -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                *seen.lock().unwrap().entry(path.clone()).or_default() += 1;
                let respond = |ctype: &str, body: &[u8]| http_response("200 OK", ctype, body);
                let playlist =
                    |text: String| respond("application/vnd.apple.mpegurl", text.as_bytes());
                let segment = respond("video/mp2t", &[0x47; 188]);
                let reply = match path.as_str() {
                    "/target/index.m3u8" => playlist(media(
                        "18446744073709551615",
                        "0",
                        &["#EXTINF:2.0,\nseg0.ts\n"],
                    )),
                    "/seq/index.m3u8" => playlist(media(
                        "1",
                        "18446744073709551615",
                        &[
                            "#EXTINF:1.0,\na.ts\n",
                            "#EXTINF:1.0,\nb.ts\n",
                            "#EXTINF:1.0,\nc.ts\n",
                        ],
                    )),
                    // The last two numbers a u64 holds, one with a byte range at the end of u64.
                    "/edge/index.m3u8" => playlist(media(
                        "1",
                        "18446744073709551614",
                        &[
                            "#EXTINF:1.0,\na.ts\n",
                            "#EXT-X-BYTERANGE:18446744073709551615@18446744073709551615\n#EXTINF:1.0,\nb.ts\n",
                        ],
                    )),
                    "/bigseg/index.m3u8" => playlist(media(
                        "1",
                        "0",
                        &[
                            "#EXTINF:1.0,\nendless.ts\n",
                            "#EXTINF:1.0,\nannounced.ts\n",
                            "#EXTINF:1.0,\nfine.ts\n",
                            "#EXT-X-ENDLIST\n",
                        ],
                    )),
                    "/endless/index.m3u8" | "/bigseg/endless.ts" => {
                        // No length, and bytes until the client hangs up.
                        let ctype = if path.ends_with(".ts") {
                            "video/mp2t"
                        } else {
                            "application/vnd.apple.mpegurl"
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n#EXTM3U\n"
                        );
                        if conn.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let filler = b"#EXT-X-COMMENT:filler\n".repeat(3000);
                        while conn.write_all(&filler).await.is_ok() {}
                        return;
                    }
                    "/bigseg/announced.ts" => {
                        // Announces 10 GB, then sends nothing.
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n";
                        let _ = conn.write_all(head.as_bytes()).await;
                        let _ = conn.read(&mut [0u8; 1]).await;
                        return;
                    }
                    "/flood/master.m3u8" => {
                        let mut text = String::from("#EXTM3U\n");
                        for i in 0..VARIANTS {
                            text.push_str(&format!(
                                "#EXT-X-STREAM-INF:BANDWIDTH={}\nv{i}/index.m3u8\n",
                                100_000 + i
                            ));
                        }
                        playlist(text)
                    }
                    p if p.starts_with("/flood/v") => {
                        playlist(media("1", "0", &["#EXT-X-ENDLIST\n"]))
                    }
                    "/many/index.m3u8" => {
                        let segments: Vec<String> = (0..MANY_SEGMENTS)
                            .map(|i| format!("#EXTINF:1.0,\ns{i}.ts\n"))
                            .collect();
                        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
                        playlist(media("1", "0", &refs))
                    }
                    p if p.ends_with(".ts") => segment,
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, requests)
}

fn collect() -> (Arc<Mutex<Vec<PullEvent>>>, Arc<dyn PullSink>) {
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    (events, Arc::new(move |e| sink.lock().unwrap().push(e)))
}

fn playlist_errors(events: &Mutex<Vec<PullEvent>>) -> Vec<PullError> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            PullEvent::Playlist(p) => p.outcome.clone().err(),
            _ => None,
        })
        .collect()
}

/// Pulls `route` from a fresh hostile server for `run_for`; returns the summary, the events,
/// the server's request log and how long the pull took.
fn pull(
    route: &str,
    options: HlsOptions,
    run_for: Duration,
) -> (PullSummary, Arc<Mutex<Vec<PullEvent>>>, Requests, Duration) {
    let rt = runtime();
    let (events, sink) = collect();
    let (summary, requests, took) = rt.block_on(async {
        let (port, requests) = hostile_server().await;
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{port}{route}");
        let summary = HlsPuller::new(http_client().unwrap(), &url, "hostile", options)
            .unwrap()
            .run(started + run_for, sink)
            .await;
        (summary, requests, started.elapsed())
    });
    (summary, events, requests, took)
}

#[test]
fn a_target_duration_of_u64_max_is_a_recorded_failure_not_a_panic() {
    let (summary, events, requests, took) = pull(
        "/target/index.m3u8",
        HlsOptions::default(),
        Duration::from_secs(2),
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let errors = playlist_errors(&events);
    assert!(!errors.is_empty(), "{summary:?}");
    for e in &errors {
        assert!(
            matches!(
                e,
                PullError::TargetDurationTooLong {
                    secs: u64::MAX,
                    limit_secs: 300,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("#EXT-X-TARGETDURATION:18446744073709551615 is beyond the 300 s"),
            "{e}"
        );
    }
    // Refused playlists are retried, not trusted: their segment is never fetched.
    assert_eq!(summary.segments_ok + summary.segments_failed, 0);
    assert!(!requests.lock().unwrap().contains_key("/target/seg0.ts"));
    assert!(errors.len() >= 2, "polling went on: {errors:?}");
}

#[test]
fn media_sequence_numbers_past_u64_max_are_refused_and_the_last_two_still_pull() {
    let (summary, events, _, _) = pull(
        "/seq/index.m3u8",
        HlsOptions::default(),
        Duration::from_millis(1500),
    );
    let errors = playlist_errors(&events);
    assert!(!errors.is_empty(), "{summary:?}");
    assert!(
        errors.iter().all(|e| matches!(
            e,
            PullError::SequenceOverflow {
                first: u64::MAX,
                segments: 3,
                ..
            }
        )),
        "{errors:?}"
    );
    assert_eq!(summary.segments_ok + summary.segments_failed, 0);

    // u64::MAX − 1 and u64::MAX fit: both are listed once, and the polls after them (one past
    // the last number is past u64::MAX) go on without a panic. The second's byte range ends past
    // 2^64: it fails, never asked for.
    let (summary, events, requests, _) = pull(
        "/edge/index.m3u8",
        HlsOptions::default(),
        Duration::from_millis(2500),
    );
    let seqs: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            PullEvent::Segment(s) => Some(s.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [u64::MAX - 1, u64::MAX], "{summary:?}");
    assert_eq!((summary.segments_ok, summary.segments_failed), (1, 1));
    let impossible = events.lock().unwrap().iter().find_map(|e| match e {
        PullEvent::Segment(s) if s.seq == u64::MAX => Some(s.body.clone().unwrap_err()),
        _ => None,
    });
    assert!(
        matches!(
            &impossible,
            Some(PullError::Range { offset: u64::MAX, reason, .. }) if reason == "an empty or impossible range"
        ),
        "{impossible:?}"
    );
    assert!(!requests.lock().unwrap().contains_key("/edge/b.ts"));
    assert_eq!(
        summary.playlist_failures,
        0,
        "{:?}",
        playlist_errors(&events)
    );
    assert!(
        requests.lock().unwrap()["/edge/index.m3u8"] >= 3,
        "polling stopped after the last numbers: {requests:?}"
    );
}

#[test]
fn endless_and_oversized_bodies_are_cut_at_their_caps_with_the_reason() {
    // A request timeout far beyond the run: only the caps can end these bodies in time.
    let options = HlsOptions {
        request_timeout: Duration::from_secs(60),
        playlist_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let (summary, events, _, took) = pull(
        "/endless/index.m3u8",
        options.clone(),
        Duration::from_secs(20),
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let errors = playlist_errors(&events);
    assert!(!errors.is_empty(), "{summary:?}");
    for e in &errors {
        assert!(
            matches!(e, PullError::TooLarge { limit, .. } if *limit == 2 << 20),
            "{e}"
        );
    }
    assert!(
        errors[0]
            .to_string()
            .contains("body larger than the 2097152-byte limit; stopped reading"),
        "{}",
        errors[0]
    );
    assert!(matches!(summary.error, Some(PullError::TooLarge { .. })));

    let (summary, events, _, took) = pull("/bigseg/index.m3u8", options, Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let segments: BTreeMap<String, Result<u64, PullError>> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            PullEvent::Segment(s) => Some((
                s.url.rsplit('/').next().unwrap().to_string(),
                s.body
                    .as_ref()
                    .map(|b| b.len() as u64)
                    .map_err(Clone::clone),
            )),
            _ => None,
        })
        .collect();
    let cap = HlsOptions::default().max_segment_bytes;
    assert!(
        matches!(&segments["endless.ts"], Err(PullError::TooLarge { limit, .. }) if *limit == cap),
        "{segments:?}"
    );
    assert!(
        matches!(&segments["announced.ts"], Err(PullError::TooLarge { limit, .. }) if *limit == cap),
        "{segments:?}"
    );
    assert_eq!(segments["fine.ts"], Ok(188));
    assert_eq!((summary.segments_ok, summary.segments_failed), (1, 2));
}

#[test]
fn a_master_with_ten_thousand_variants_gets_max_renditions_followers_and_one_recorded_refusal() {
    let (summary, events, requests, _) = pull(
        "/flood/master.m3u8",
        HlsOptions {
            master_refresh: Duration::from_millis(300),
            ..Default::default()
        },
        Duration::from_secs(2),
    );
    let limit = HlsOptions::default().max_renditions;
    let followed: BTreeSet<String> = requests
        .lock()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/flood/v"))
        .cloned()
        .collect();
    assert_eq!(followed.len(), limit, "variant playlists fetched");
    assert_eq!(summary.renditions, limit);
    let announced: usize = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            PullEvent::Renditions(r) => r.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(announced, limit);
    let refusals: Vec<PullError> = playlist_errors(&events);
    assert_eq!(
        refusals.len(),
        1,
        "one refusal however often the master is re-read"
    );
    assert!(
        matches!(
            &refusals[0],
            PullError::TooManyRenditions { listed: VARIANTS, limit: l, .. } if *l == limit
        ),
        "{refusals:?}"
    );
    assert!(requests.lock().unwrap()["/flood/master.m3u8"] >= 2);
}

/// A sink whose consumer is behind: a channel of two events that nobody reads until told.
struct SlowSink(mpsc::Sender<PullEvent>);

impl PullSink for SlowSink {
    fn event(&self, _: PullEvent) {
        unreachable!("the puller delivers through `deliver`")
    }

    fn deliver(&self, event: PullEvent) -> Delivery<'_> {
        Box::pin(async move {
            let _ = self.0.send(event).await;
        })
    }
}

#[test]
fn a_sink_that_is_behind_holds_the_puller_back_instead_of_queueing_segments() {
    let rt = runtime();
    let (requested_while_blocked, summary, requests) = rt.block_on(async {
        let (port, requests) = hostile_server().await;
        let (tx, mut rx) = mpsc::channel(2);
        let url = format!("http://127.0.0.1:{port}/many/index.m3u8");
        let puller =
            HlsPuller::new(http_client().unwrap(), &url, "slow", HlsOptions::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let pull = tokio::spawn(async move { puller.run(deadline, Arc::new(SlowSink(tx))).await });
        // Wait (with a deadline) until the puller has fetched what fits and is stuck.
        let segment_requests = |r: &Requests| {
            r.lock()
                .unwrap()
                .keys()
                .filter(|p| p.ends_with(".ts"))
                .count()
        };
        let wait_until = Instant::now() + Duration::from_secs(2);
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = segment_requests(&requests);
            if (now == last && now > 0) || Instant::now() > wait_until {
                break;
            }
            last = now;
        }
        let requested_while_blocked = segment_requests(&requests);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let summary = pull.await.unwrap();
        drain.await.unwrap();
        (requested_while_blocked, summary, requests)
    });
    // Two events in the channel, one waiting to go in, one more downloaded meanwhile at most.
    assert!(
        (1..=3).contains(&requested_while_blocked),
        "{requested_while_blocked} segments fetched while the sink was full"
    );
    assert!(
        summary.segments_ok > requested_while_blocked as u64,
        "the pull went on once the sink had room: {summary:?} {requests:?}"
    );
}
