//! Hostile publishers and HTTP clients against the broadcaster's RTMP, HTTP push and HLS servers.
//! Each test sends the hostile input over a real socket, with limits set small so it runs in
//! seconds, and checks that the node refuses or drops it with a recorded reason and keeps serving.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_broadcaster::BroadcasterConfig;
use reference_transcoder::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::rtmp_client::Publisher;
use crate::support::*;

const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Reads until the server closes the connection or `limit` passes; returns what was read, or
/// `None` when the connection was still open at the deadline.
async fn read_until_closed(socket: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn live(b: &node_broadcaster::RunningBroadcaster, id: &str) -> bool {
    b.state()
        .stream_status()
        .iter()
        .any(|s| s.manifest_id == id && s.live)
}

fn pending(b: &node_broadcaster::RunningBroadcaster, id: &str) -> usize {
    b.state()
        .stream_status()
        .iter()
        .find(|s| s.manifest_id == id)
        .map_or(0, |s| s.pending)
}

/// The sequence header and the first key frame of a short source.
fn header_and_key_frame() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let src = source(320, 180, 1.0);
    let packets: Vec<_> = src
        .flv_packets()
        .into_iter()
        .filter(|p| p.kind == MediaKind::Video)
        .collect();
    let header = packets.iter().find(|p| p.is_sequence_header).unwrap();
    let key = packets
        .iter()
        .find(|p| p.is_key && !p.is_sequence_header)
        .unwrap();
    let inter = packets
        .iter()
        .find(|p| !p.is_key && !p.is_sequence_header)
        .unwrap();
    (header.tag_body(), key.tag_body(), inter.tag_body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_timestamps_growing_a_segment_past_max_segment_bytes_disconnect_the_publisher() {
    let mut cfg = config("", vec![]);
    cfg.max_segment_bytes = 256 * 1024;
    let b = start(cfg).await;
    let (header, key, _) = header_and_key_frame();
    let mut p = Publisher::connect(b.rtmp_addr, "live", "frozen")
        .await
        .unwrap();
    p.video(header, 0);
    // Every frame at timestamp 0: media time never reaches a cut, only the byte cap can.
    let copies = 4 * 256 * 1024 / key.len() + 1;
    for _ in 0..copies {
        p.video(key.clone(), 0);
    }
    assert!(
        p.closed_by_server(Duration::from_secs(10)).await,
        "a publisher holding a segment past max_segment_bytes stayed connected"
    );
    wait_finished(&b, "frozen", Duration::from_secs(10)).await;
    wait_ingest_error(&b, "segment_limit", 1).await;
    let (_, media) = get_text(&format!("http://{}/stream/frozen/source.m3u8", b.http_addr)).await;
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");
    assert!(
        !media.contains(".ts"),
        "the oversized segment was served: {media}"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_timestamps_holding_a_segment_past_max_segment_wall_ms_disconnect_the_publisher() {
    let mut cfg = config("", vec![]);
    cfg.segment_duration_ms = 200;
    cfg.max_segment_duration_ms = 500;
    cfg.max_segment_wall_ms = 800;
    let b = start(cfg).await;
    let (header, key, inter) = header_and_key_frame();
    let mut p = Publisher::connect(b.rtmp_addr, "live", "stuck")
        .await
        .unwrap();
    p.video(header, 0);
    p.video(key, 0);
    let started = Instant::now();
    let mut closed = false;
    // A publisher pacing small frames in real time, all stamped 0.
    while started.elapsed() < Duration::from_secs(5) {
        p.video(inter.clone(), 0);
        if p.closed_by_server(Duration::from_millis(100)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a segment open for 5 s of wall time kept its publisher"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    wait_finished(&b, "stuck", Duration::from_secs(10)).await;
    wait_ingest_error(&b, "segment_limit", 1).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_head_trickled_byte_by_byte_is_closed_at_the_header_timeout() {
    let mut cfg = config("", vec![]);
    cfg.http_header_timeout_ms = 300;
    let b = start(cfg).await;
    let mut socket = TcpStream::connect(b.http_addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        if socket.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        if read_until_closed(&mut socket, Duration::from_millis(100))
            .await
            .is_some()
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a request head trickled for 5 s kept its connection"
    );
    // An idle keep-alive connection is bounded by the same deadline.
    let mut idle = TcpStream::connect(b.http_addr).await.unwrap();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(3))
            .await
            .is_some()
    );
    let (code, _) = get_text(&format!("http://{}/healthz", b.http_addr)).await;
    assert_eq!(code, 200);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_body_that_stalls_gets_408_at_the_idle_timeout() {
    let mut cfg = config("", vec![]);
    cfg.http_idle_timeout_ms = 300;
    let b = start(cfg).await;
    let mut socket = TcpStream::connect(b.http_addr).await.unwrap();
    socket
        .write_all(b"PUT /live/slowbody/0.ts HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nG0123456789")
        .await
        .unwrap();
    let answer = read_until_closed(&mut socket, Duration::from_secs(5))
        .await
        .expect("a push body stalled for 5 s kept its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    wait_ingest_error(&b, "push_body", 1).await;
    assert!(b.state().stream("slowbody").is_none());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_past_the_cap_get_503_and_are_closed() {
    let mut cfg = config("", vec![]);
    cfg.http_max_connections = 3;
    cfg.http_header_timeout_ms = 60_000;
    let b = start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(b.http_addr).await.unwrap());
    }
    let state = b.state().clone();
    let mut extra = TcpStream::connect(b.http_addr).await.unwrap();
    let answer = read_until_closed(&mut extra, Duration::from_secs(5))
        .await
        .expect("a connection past http_max_connections stayed open");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    wait_ingest_error(&b, "http_connection_cap", 1).await;
    // A freed slot serves again.
    drop(held.pop());
    let url = format!("http://{}/healthz", b.http_addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let code = reqwest::get(&url).await.map(|r| r.status().as_u16());
        if code.as_ref().is_ok_and(|c| *c == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot was freed: {code:?} {:?}",
            state.records().ingest_errors()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_handshake_trickled_byte_by_byte_is_dropped_at_the_deadline() {
    let mut cfg = config("", vec![]);
    cfg.rtmp_handshake_timeout_ms = 500;
    let b = start(cfg).await;
    let mut socket = TcpStream::connect(b.rtmp_addr).await.unwrap();
    socket.write_all(&[3]).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    // C1 is 1536 bytes: one every 100 ms would take minutes.
    while started.elapsed() < Duration::from_secs(5) {
        if socket.write_all(&[0]).await.is_err()
            || read_until_closed(&mut socket, Duration::from_millis(100))
                .await
                .is_some()
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a handshake trickled for 5 s kept its connection");
    wait_ingest_error(&b, "rtmp_handshake_timeout", 1).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_connections_past_the_cap_are_closed() {
    let mut cfg = config("", vec![]);
    cfg.rtmp_max_connections = 2;
    let b = start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(b.rtmp_addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(b.rtmp_addr).await.unwrap();
    assert!(
        read_until_closed(&mut extra, Duration::from_secs(5))
            .await
            .is_some(),
        "a connection past rtmp_max_connections stayed open"
    );
    wait_ingest_error(&b, "rtmp_connection_cap", 1).await;
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let p = loop {
        match Publisher::connect(b.rtmp_addr, "live", "afterslot").await {
            Ok(p) => break p,
            Err(e) => assert!(Instant::now() < deadline, "no slot was freed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    p.finish().await;
    b.shutdown().await;
}

/// A TS segment of `secs` to push.
fn ts_segment() -> Vec<u8> {
    source(320, 180, 2.0)
        .ts_segments(2.0)
        .unwrap()
        .remove(0)
        .data
        .to_vec()
}

async fn put(
    b: &node_broadcaster::RunningBroadcaster,
    path: &str,
    duration_ms: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    put_from(None, b, path, duration_ms, body).await
}

async fn put_from(
    from: Option<IpAddr>,
    b: &node_broadcaster::RunningBroadcaster,
    path: &str,
    duration_ms: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut req = client
        .put(format!("http://{}{path}", b.http_addr))
        .body(body);
    if let Some(d) = duration_ms {
        req = req.header("Content-Duration", d);
    }
    let resp = req.send().await.expect("the push gets an answer");
    let code = resp.status().as_u16();
    (code, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_gone_mid_transcode_leaves_nothing_pending() {
    // An orchestrator that accepts and never answers keeps the push's transcode waiting.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("https://{}", silent.local_addr().unwrap());
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut cfg = config("P144p30fps16x9", vec![uri]);
    cfg.failure_cooldown_secs = 0;
    let b = start(cfg).await;
    let segment = ts_segment();
    let mut socket = TcpStream::connect(b.http_addr).await.unwrap();
    let head = format!(
        "PUT /live/gone/0.ts HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        segment.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&segment).await.unwrap();
    wait_for(
        "the pushed segment to be pending",
        Duration::from_secs(5),
        || pending(&b, "gone") == 1,
    )
    .await;
    drop(socket);
    // Discovery of the silent orchestrator takes 3 s per try: the count must drop before that.
    wait_for(
        "pending back to 0 after the client left",
        Duration::from_secs(2),
        || pending(&b, "gone") == 0,
    )
    .await;
    b.shutdown().await;
    silent_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_cannot_poison_an_rtmp_stream_and_push_bounds_hold() {
    let b = start(config("", vec![])).await;
    let src = source(320, 180, 2.0);
    let mut p = Publisher::connect(b.rtmp_addr, "live", "mixed")
        .await
        .unwrap();
    queue(&mut p, &src, 0, true);
    p.flush().await.unwrap();
    let segment = ts_segment();
    let (code, body) = put(&b, "/live/mixed/0.ts", Some("2000"), segment.clone()).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("RTMP"), "{body}");
    let (code, body) = put(
        &b,
        "/live/mixed/18446744073709551614.ts",
        None,
        segment.clone(),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    wait_ingest_error(&b, "publish_wrong_ingest", 2).await;
    assert!(live(&b, "mixed"));

    // A push stream of its own: durations past max_segment_duration_ms and far sequence jumps
    // are refused; the playlist keeps its target duration.
    let (code, body) = put(
        &b,
        "/live/pushed/0.ts",
        Some("1000000000000"),
        segment.clone(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = put(&b, "/live/pushed/0.ts", Some("2000"), segment.clone()).await;
    assert_eq!(code, 200, "{body}");
    for seq in ["18446744073709551614", "18446744073709551615", "1002"] {
        let (code, body) = put(
            &b,
            &format!("/live/pushed/{seq}.ts"),
            Some("2000"),
            segment.clone(),
        )
        .await;
        assert_eq!(code, 400, "seq {seq}: {body}");
    }
    wait_ingest_error(&b, "push_seq_jump", 3).await;
    let (code, body) = put(&b, "/live/pushed/1.ts", Some("2000"), segment.clone()).await;
    assert_eq!(code, 200, "{body}");
    let (_, media) = get_text(&format!("http://{}/stream/pushed/source.m3u8", b.http_addr)).await;
    assert!(media.contains("#EXT-X-TARGETDURATION:2\n"), "{media}");
    let listed: Vec<&str> = media.lines().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(listed, ["source/0.ts", "source/1.ts"], "{media}");

    p.finish().await;
    wait_finished(&b, "mixed", Duration::from_secs(10)).await;
    let (_, media) = get_text(&format!("http://{}/stream/mixed/source.m3u8", b.http_addr)).await;
    assert!(media.contains("#EXT-X-TARGETDURATION:2\n"), "{media}");
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");
    b.shutdown().await;
}

/// An auth webhook on a loopback port: approves `/good` (renaming it `renamed`) and `/plain`,
/// never answers `/slow`, refuses the rest; records every request body.
async fn webhook() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body.clone());
                let url = serde_json::from_str::<serde_json::Value>(&body).unwrap()["url"]
                    .as_str()
                    .unwrap()
                    .to_string();
                if url.contains("/slow") {
                    std::future::pending::<()>().await;
                }
                if url.contains("/good") {
                    (StatusCode::OK, r#"{"manifestID":"renamed"}"#.to_string())
                } else if url.contains("/plain") {
                    (StatusCode::OK, String::new())
                } else {
                    (StatusCode::FORBIDDEN, "no such stream".to_string())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_webhook_approves_renames_refuses_and_times_out() {
    let (hook, seen, task) = webhook().await;
    let mut cfg = config("", vec![]);
    cfg.auth_webhook_url = Some(hook);
    cfg.auth_webhook_timeout_ms = 500;
    let b = start(cfg).await;

    let p = Publisher::connect(b.rtmp_addr, "live", "good?token=abc")
        .await
        .unwrap();
    assert!(live(&b, "renamed"), "{:?}", b.state().stream_status());
    assert!(b.state().stream("good").is_none());
    let expected =
        serde_json::json!({ "url": format!("rtmp://{}/live/good?token=abc", b.rtmp_addr) });
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen.lock().unwrap()[0]).unwrap(),
        expected
    );

    assert!(
        Publisher::connect(b.rtmp_addr, "live", "bad")
            .await
            .is_err()
    );
    wait_ingest_error(&b, "publish_refused", 1).await;
    let asked = Instant::now();
    assert!(
        Publisher::connect(b.rtmp_addr, "live", "slow")
            .await
            .is_err()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    wait_ingest_error(&b, "publish_webhook_failed", 1).await;
    assert!(b.state().stream("bad").is_none() && b.state().stream("slow").is_none());

    // A push stream is asked about once, with its URL; later segments need no new answer.
    let segment = ts_segment();
    let before = seen.lock().unwrap().len();
    assert_eq!(
        put(&b, "/live/plain/0.ts", None, segment.clone()).await.0,
        200
    );
    assert_eq!(
        put(&b, "/live/plain/1.ts", None, segment.clone()).await.0,
        200
    );
    let asked: Vec<String> = seen.lock().unwrap()[before..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains(&format!("http://{}/live/plain/0.ts", b.http_addr)),
        "{asked:?}"
    );
    assert_eq!(put(&b, "/live/nope/0.ts", None, segment).await.0, 403);

    p.finish().await;
    b.shutdown().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_are_required_when_a_key_file_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# publishers\ns3cret\n").unwrap();
    let mut cfg = config("", vec![]);
    cfg.stream_keys_file = Some(keys);
    let b = start(cfg).await;
    for key in ["k1", "k1?key=wrong", "k1?key="] {
        let refused = Publisher::connect(b.rtmp_addr, "live", key).await.is_err();
        assert!(refused, "{key} was accepted");
    }
    wait_ingest_error(&b, "publish_unauthorized", 3).await;
    let p = Publisher::connect(b.rtmp_addr, "live", "k1?key=s3cret")
        .await
        .unwrap();
    assert!(live(&b, "k1"));
    let segment = ts_segment();
    assert_eq!(put(&b, "/live/k2/0.ts", None, segment.clone()).await.0, 403);
    assert_eq!(
        put(&b, "/live/k2/0.ts?key=s3cret", None, segment.clone())
            .await
            .0,
        200
    );
    // The key guards every segment, not only the first.
    assert_eq!(put(&b, "/live/k2/1.ts", None, segment).await.0, 403);
    p.finish().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_caps_hold_and_another_client_cannot_take_over_an_ended_stream() {
    let cfg = BroadcasterConfig {
        max_live_streams: 3,
        max_live_streams_per_ip: 2,
        ..config("", vec![])
    };
    let b = start(cfg).await;
    let addr = b.rtmp_addr;
    let a = Publisher::connect(addr, "live", "a").await.unwrap();
    let _b1 = Publisher::connect(addr, "live", "b").await.unwrap();
    assert!(Publisher::connect(addr, "live", "c").await.is_err());
    wait_ingest_error(&b, "publish_client_cap", 1).await;
    let _c = Publisher::connect_from(Some(OTHER_CLIENT), addr, "live", "c")
        .await
        .unwrap();
    assert!(
        Publisher::connect_from(Some(OTHER_CLIENT), addr, "live", "d")
            .await
            .is_err()
    );
    wait_ingest_error(&b, "publish_stream_cap", 1).await;
    // Push counts towards the same caps.
    let (code, body) = put_from(Some(OTHER_CLIENT), &b, "/live/e/0.ts", None, ts_segment()).await;
    assert_eq!(code, 503, "{body}");

    a.finish().await;
    wait_finished(&b, "a", Duration::from_secs(10)).await;
    let err = Publisher::connect_from(Some(OTHER_CLIENT), addr, "live", "a")
        .await
        .err();
    assert!(err.is_some(), "another client took over an ended stream");
    wait_ingest_error(&b, "publish_taken", 1).await;
    let (code, body) = put_from(Some(OTHER_CLIENT), &b, "/live/a/9.ts", None, ts_segment()).await;
    assert_eq!(code, 409, "{body}");
    // Its own publisher may come back.
    let again = Publisher::connect(addr, "live", "a").await.unwrap();
    assert!(live(&b, "a"));
    again.finish().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sps_with_overflowing_dimensions_neither_panics_nor_leaves_the_stream_live() {
    let b = start(config("", vec![])).await;
    // Baseline SPS with pic_width_in_mbs_minus1 = 2^28: width × 16 overflows 32 bits.
    let sps = [
        0x67, 0x42, 0x00, 0x1e, 0xf4, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x85, 0xf2,
    ];
    let mut header = vec![
        0x17,
        0,
        0,
        0,
        0,
        1,
        0x42,
        0,
        0x1e,
        0xff,
        0xe1,
        0,
        sps.len() as u8,
    ];
    header.extend_from_slice(&sps);
    header.extend_from_slice(&[1, 0, 2, 0x68, 0xce]);
    let mut p = Publisher::connect(b.rtmp_addr, "live", "spsbomb")
        .await
        .unwrap();
    p.video(header, 0);
    p.flush().await.unwrap();
    // Still served: the connection is alive and the node answers.
    let (code, _) = get_text(&format!("http://{}/healthz", b.http_addr)).await;
    assert_eq!(code, 200);
    p.finish().await;
    wait_finished(&b, "spsbomb", Duration::from_secs(10)).await;
    b.shutdown().await;
}
