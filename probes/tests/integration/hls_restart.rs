//! A server that dies mid-stream and comes back as a broadcaster restarted on its segment files
//! does: connections refused for a while, then 404 until the stream is published again, then the
//! same playlists numbered on from where they were, the segment lost in the crash a gap and the
//! first new one after a discontinuity. The puller follows through all of it until the stream
//! ends: nothing while the server is away is final, segments that left the window unseen are
//! missed, the gap is a gap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{HlsOptions, HlsPuller, PullError, PullEvent, http_client, pull_stop};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{http_response, read_request_path, runtime};

/// One entry a second (the target duration). Up, then refusing connections, then answering 404, then up again (from the server's start).
const DIES_AT: Duration = Duration::from_millis(3500);
const LISTENS_AT: Duration = Duration::from_secs(6);
const PUBLISHED_AT: Duration = Duration::from_secs(7);
/// After the restart: entry 4 slid out unseen, 5 was being cut when the server died (a gap), 6
/// is the first new one, and the stream ends after 9.
const RESTART_FIRST: u64 = 5;
const LAST: u64 = 9;

/// The media playlist of rendition `name` `since` the server first started.
fn media_playlist(name: &str, since: Duration) -> String {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n");
    let entry = |seq: u64| format!("#EXTINF:1.000,\n{name}/{seq}.ts\n");
    if since < DIES_AT {
        text.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
        for seq in 0..=since.as_secs() {
            text.push_str(&entry(seq));
        }
        return text;
    }
    let new = (since - PUBLISHED_AT).as_secs() + 1;
    text.push_str(&format!(
        "#EXT-X-MEDIA-SEQUENCE:{RESTART_FIRST}\n#EXT-X-GAP\n"
    ));
    text.push_str(&entry(RESTART_FIRST));
    text.push_str("#EXT-X-DISCONTINUITY\n");
    let last = (RESTART_FIRST + new).min(LAST);
    for seq in RESTART_FIRST + 1..=last {
        text.push_str(&entry(seq));
    }
    if last == LAST {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// Serves `/live/index.m3u8` (renditions `a` and `b`), their playlists and segments through the
/// phases above, on one port; returns it.
async fn dying_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let born = Instant::now();
    tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let open = listener.take().unwrap();
            let dies = tokio::time::sleep_until(born + DIES_AT);
            tokio::pin!(dies);
            loop {
                let mut conn = tokio::select! {
                    accepted = open.accept() => match accepted {
                        Ok((conn, _)) => conn,
                        Err(_) => continue,
                    },
                    _ = &mut dies, if born.elapsed() < DIES_AT => break,
                };
                tokio::spawn(async move {
                    let Some(path) = read_request_path(&mut conn).await else {
                        return;
                    };
                    let since = born.elapsed();
                    let playlist = |body: String| {
                        http_response("200 OK", "application/vnd.apple.mpegurl", body.as_bytes())
                    };
                    let reply = match path.as_str() {
                        _ if since < PUBLISHED_AT && since >= DIES_AT => {
                            http_response("404 Not Found", "text/plain", b"unknown stream")
                        }
                        "/live/index.m3u8" => playlist(
                            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nindex/a.m3u8\n\
                             #EXT-X-STREAM-INF:BANDWIDTH=2000\nindex/b.m3u8\n"
                                .into(),
                        ),
                        "/live/index/a.m3u8" => playlist(media_playlist("a", since)),
                        "/live/index/b.m3u8" => playlist(media_playlist("b", since)),
                        p if p.ends_with(".ts") => {
                            http_response("200 OK", "video/mp2t", &[0x47; 188])
                        }
                        _ => http_response("404 Not Found", "text/plain", b"no"),
                    };
                    let _ = conn.write_all(&reply).await;
                    let _ = conn.shutdown().await;
                });
            }
            // Dead: the port refuses connections until the server listens again.
            drop(open);
            tokio::time::sleep_until(born + LISTENS_AT).await;
            listener = Some(
                TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("the server's port again"),
            );
        }
    });
    port
}

#[test]
fn the_puller_follows_a_server_that_dies_and_comes_back_numbering_on() {
    let rt = runtime();
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    let (stop_handle, stop) = pull_stop();
    let summary = rt.block_on(async {
        let port = dying_server().await;
        let deadline = Instant::now() + Duration::from_secs(40);
        // The renditions end with the stream (ENDLIST); the master would be read on until the
        // deadline, so the pull is stopped once both have their last segment.
        let mut ended = 0;
        let sink = move |e: PullEvent| {
            if matches!(&e, PullEvent::Segment(s) if s.seq == LAST) {
                ended += 1;
                if ended == 2 {
                    stop_handle.stop();
                }
            }
            sink.lock().unwrap().push(e);
        };
        let sink = Arc::new(Mutex::new(sink));
        HlsPuller::new(
            http_client().unwrap(),
            &format!("http://127.0.0.1:{port}/live/index.m3u8"),
            "restarted",
            HlsOptions::default(),
        )
        .unwrap()
        .run_until(deadline, Arc::new(move |e| (sink.lock().unwrap())(e)), stop)
        .await
    });
    assert_eq!(summary.error, None, "{summary:?}");
    assert_eq!(summary.renditions, 2);
    let events = events.lock().unwrap();
    for rendition in ["a", "b"] {
        // seq → (downloaded, gap, discontinuity); missed ones apart.
        let mut segments = BTreeMap::new();
        let mut missed = Vec::new();
        let (mut refused, mut not_found) = (0, 0);
        for e in events.iter() {
            match e {
                PullEvent::Segment(s) if s.rendition == rendition => {
                    let gap = matches!(s.body, Err(PullError::Gap { .. }));
                    segments.insert(s.seq, (s.body.is_ok(), gap, s.discontinuity));
                }
                PullEvent::Missed {
                    rendition: r, seq, ..
                } if r == rendition => missed.push(*seq),
                PullEvent::Playlist(p) if p.rendition.as_deref() == Some(rendition) => {
                    match &p.outcome {
                        Err(PullError::Transport { .. }) => refused += 1,
                        Err(PullError::Status { status: 404, .. }) => not_found += 1,
                        Err(e) => panic!("{rendition}: unexpected poll failure {e}"),
                        Ok(_) => {}
                    }
                }
                _ => {}
            }
        }
        let expected: BTreeMap<u64, (bool, bool, bool)> = (0..=3)
            .map(|seq| (seq, (true, false, false)))
            .chain([(RESTART_FIRST, (false, true, false))])
            .chain((RESTART_FIRST + 1..=LAST).map(|seq| (seq, (true, false, seq == 6))))
            .collect();
        assert_eq!(segments, expected, "{rendition}");
        assert_eq!(missed, [4], "{rendition}");
        assert!(
            refused >= 1 && not_found >= 1,
            "{rendition}: {refused} refused, {not_found} 404"
        );
    }
    let stalls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Stall(s) => Some((s.rendition.clone(), s.ended)),
            _ => None,
        })
        .collect();
    for rendition in ["a", "b"] {
        let of = |ended| stalls.contains(&(rendition.to_string(), ended));
        assert!(
            of(false) && of(true),
            "the outage is a stall that ended: {stalls:?}"
        );
    }
}
