//! Segments a live playlist marks `#EXT-X-GAP`: each is a failure with the code `gap`, never
//! requested, and the seconds the gaps cover are no stall.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    CheckOptions, HlsOptions, HlsPuller, PullError, PullEvent, SegmentChecker, http_client,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{http_response, read_request_path, runtime};

/// Seconds between two entries of the live playlist (and its target duration).
const STEP: Duration = Duration::from_secs(1);
/// Entries 1..=4 are gaps; 0 and 5 are media.
const GAPS: std::ops::RangeInclusive<u64> = 1..=4;
const ENTRIES: u64 = 6;

/// Serves `/live/index.m3u8`, one entry more every [`STEP`] until all six are listed with
/// ENDLIST, and every `/live/s<n>.ts`, a gap's too (a 200 with TS bytes, so a puller that
/// fetched a gap would count it a success); returns its port and the paths asked for.
async fn gappy_server() -> (u16, Arc<Mutex<BTreeMap<String, u32>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = requests.clone();
    let born = Instant::now();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                *seen.lock().unwrap().entry(path.clone()).or_default() += 1;
                let reply = if path == "/live/index.m3u8" {
                    let listed = (1 + born.elapsed().as_millis() / STEP.as_millis()) as u64;
                    let mut text = String::from(
                        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n",
                    );
                    for seq in 0..listed.min(ENTRIES) {
                        if GAPS.contains(&seq) {
                            text.push_str("#EXT-X-GAP\n");
                        }
                        text.push_str(&format!("#EXTINF:1.000,\ns{seq}.ts\n"));
                    }
                    if listed >= ENTRIES {
                        text.push_str("#EXT-X-ENDLIST\n");
                    }
                    http_response("200 OK", "application/vnd.apple.mpegurl", text.as_bytes())
                } else if path.starts_with("/live/s") && path.ends_with(".ts") {
                    http_response("200 OK", "video/mp2t", &[0x47; 188])
                } else {
                    http_response("404 Not Found", "text/plain", b"no")
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, requests)
}

#[test]
fn gaps_are_failures_coded_gap_never_fetched_and_never_a_stall() {
    let rt = runtime();
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    let (summary, requests, port, took) = rt.block_on(async {
        let (port, requests) = gappy_server().await;
        let started = Instant::now();
        let summary = HlsPuller::new(
            http_client().unwrap(),
            &format!("http://127.0.0.1:{port}/live/index.m3u8"),
            "gappy",
            HlsOptions::default(),
        )
        .unwrap()
        .run(
            started + Duration::from_secs(20),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        )
        .await;
        (summary, requests, port, started.elapsed())
    });
    // ENDLIST ended the pull, well before the deadline.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let events = events.lock().unwrap();
    let segments: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Segment(s) => Some(s.as_ref().clone()),
            _ => None,
        })
        .collect();
    let outcomes: Vec<(u64, Result<usize, PullError>)> = segments
        .iter()
        .map(|s| {
            (
                s.seq,
                s.body.as_ref().map(|b| b.len()).map_err(Clone::clone),
            )
        })
        .collect();
    let url = |seq: u64| format!("http://127.0.0.1:{port}/live/s{seq}.ts");
    let expected: Vec<(u64, Result<usize, PullError>)> = (0..ENTRIES)
        .map(|seq| {
            let body = if GAPS.contains(&seq) {
                Err(PullError::Gap { url: url(seq) })
            } else {
                Ok(188)
            };
            (seq, body)
        })
        .collect();
    assert_eq!(outcomes, expected);
    // Media entries to media entries took 5 s, beyond the 3 s stall threshold (3 × 1 s); the
    // gaps between them kept the playlist moving.
    let stalls: Vec<&PullEvent> = events
        .iter()
        .filter(|e| matches!(e, PullEvent::Stall(_)))
        .collect();
    assert!(stalls.is_empty(), "{stalls:?}");
    assert_eq!(
        (
            summary.segments_ok,
            summary.segments_failed,
            summary.segments_missed,
            summary.stalls
        ),
        (2, 4, 0, 0)
    );
    let fetched: Vec<String> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.ends_with(".ts"))
        .map(|(path, n)| format!("{path} ×{n}"))
        .collect();
    assert_eq!(fetched, ["/live/s0.ts ×1", "/live/s5.ts ×1"]);

    // What the stream probe journals for a gap: a failed segment whose failure is `gap`, with
    // its URL and duration, and no status, bytes or decode.
    let gap = &segments[2];
    assert_eq!(gap.extinf_secs, 1.0);
    assert_eq!(gap.url, url(2));
    assert_eq!((gap.http_status, gap.size), (None, 0));
    let checked = SegmentChecker::new("gappy", None, CheckOptions::default()).check(gap, None);
    let o = &checked.observation;
    assert!(!o.success);
    assert_eq!(o.failure.as_deref(), Some("gap"));
    assert_eq!(o.url.as_deref(), Some(url(2).as_str()));
    assert_eq!((o.http_status, o.bytes, o.media.is_none()), (None, 0, true));
    let verdicts: Vec<(&str, bool, &str)> = checked
        .checks
        .iter()
        .map(|c| (c.check.as_str(), c.passed, c.reason.as_str()))
        .collect();
    assert_eq!(verdicts, [("download", false, "gap")]);
}
