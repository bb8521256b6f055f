//! Byte ranges and init segments against a server that ignores `Range` (answers 200 with the
//! whole file, as many static servers and CDNs configured without range support do): the
//! puller keeps exactly the bytes each `#EXT-X-BYTERANGE` names, fetches the `#EXT-X-MAP` init
//! segment once for the whole playlist, puts it in front of every segment's bytes, and a range
//! past the file's end or an init segment that 404s is a failure saying so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{HlsOptions, HlsPuller, PullError, PullEvent, http_client};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{http_response, read_request_path, runtime};

/// The one file the ranges cut: byte `i` is `i % 251`, so every range's content is known.
fn file_byte(i: u64) -> u8 {
    (i % 251) as u8
}

const FILE_LEN: u64 = 10_000;

/// Serves the playlist at `/v/index.m3u8`, `/v/all.mp4` whole whatever the `Range` asked, and
/// 404 for anything else; returns its port and the paths asked for.
async fn range_ignoring_server(playlist: &'static str) -> (u16, Arc<Mutex<BTreeMap<String, u32>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                *seen.lock().unwrap().entry(path.clone()).or_default() += 1;
                let reply = match path.as_str() {
                    "/v/index.m3u8" => http_response(
                        "200 OK",
                        "application/vnd.apple.mpegurl",
                        playlist.as_bytes(),
                    ),
                    "/v/all.mp4" => {
                        let body: Vec<u8> = (0..FILE_LEN).map(file_byte).collect();
                        http_response("200 OK", "video/mp4", &body)
                    }
                    _ => http_response("404 Not Found", "text/plain", b"no"),
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, requests)
}

/// One segment as pulled: seq, body or error, init size, byte range.
type Pulled = (u64, Result<Vec<u8>, PullError>, u64, Option<(u64, u64)>);

/// Pulls the playlist to its end; returns each segment, the requests the server saw and its
/// port.
fn pull(playlist: &'static str) -> (Vec<Pulled>, BTreeMap<String, u32>, u16) {
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    let (requests, port) = runtime().block_on(async {
        let (port, requests) = range_ignoring_server(playlist).await;
        HlsPuller::new(
            http_client().unwrap(),
            &format!("http://127.0.0.1:{port}/v/index.m3u8"),
            "ranges",
            HlsOptions::default(),
        )
        .unwrap()
        .run(
            Instant::now() + Duration::from_secs(10),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        )
        .await;
        let seen = requests.lock().unwrap().clone();
        (seen, port)
    });
    let segments = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            PullEvent::Segment(s) => Some((
                s.seq,
                s.body.as_ref().map(|b| b.to_vec()).map_err(Clone::clone),
                s.init_size,
                s.byte_range,
            )),
            _ => None,
        })
        .collect();
    (segments, requests, port)
}

fn bytes(offset: u64, length: u64) -> Vec<u8> {
    (offset..offset + length).map(file_byte).collect()
}

#[test]
fn ranges_are_cut_from_a_whole_file_and_the_init_segment_goes_in_front_of_each() {
    let (segments, requests, port) = pull(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"100@0\"\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@100\nall.mp4\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:3000\nall.mp4\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:500@9400\nall.mp4\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:500\nall.mp4\n#EXT-X-ENDLIST\n",
    );
    let init = bytes(0, 100);
    let with_init = |offset, length| [init.clone(), bytes(offset, length)].concat();
    assert_eq!(
        segments,
        vec![
            (0, Ok(with_init(100, 1000)), 100, Some((100, 1000))),
            // No offset: right after the previous range of the same file.
            (1, Ok(with_init(1100, 3000)), 100, Some((1100, 3000))),
            (2, Ok(with_init(9400, 500)), 100, Some((9400, 500))),
            (
                3,
                Err(PullError::Range {
                    url: format!("http://127.0.0.1:{port}/v/all.mp4"),
                    offset: 9900,
                    end: 10_400,
                    reason: "HTTP 200 held 100 of its 500 bytes".into(),
                }),
                0,
                Some((9900, 500)),
            ),
        ]
    );
    // The init segment once, and each segment once.
    assert_eq!(requests.get("/v/all.mp4"), Some(&5), "{requests:?}");
}

#[test]
fn an_init_segment_that_cannot_be_had_fails_the_segments_under_its_map_only() {
    let (segments, requests, port) = pull(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-MAP:URI=\"gone.mp4\"\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@100\nall.mp4\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@1100\nall.mp4\n\
         #EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"100@0\"\n\
         #EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@2100\nall.mp4\n#EXT-X-ENDLIST\n",
    );
    let outcomes: Vec<(u64, Result<usize, String>)> = segments
        .iter()
        .map(|(seq, body, _, _)| (*seq, body.as_ref().map(Vec::len).map_err(|e| e.to_string())))
        .collect();
    let gone = Err(format!(
        "init segment gone.mp4: GET http://127.0.0.1:{port}/v/gone.mp4: HTTP 404"
    ));
    assert_eq!(outcomes, vec![(0, gone.clone()), (1, gone), (2, Ok(1100))]);
    // The map that failed was asked for once, not once per segment under it.
    assert_eq!(requests.get("/v/gone.mp4"), Some(&1), "{requests:?}");
}
