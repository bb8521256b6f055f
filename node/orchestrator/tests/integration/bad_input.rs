//! Hostile input over the real TLS port: malformed headers, garbage protobuf, oversized bodies and
//! slow-loris uploads all end in a 4xx with a reason (or a closed connection for a stalled
//! request head), and the node keeps serving.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use node_orchestrator::config::TranscodeMode;
use node_orchestrator::profiles::wire_ladder;
use protocol::client::segment_data;
use protocol::headers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_and_bodies_get_a_4xx_with_a_reason() {
    let mut config = offchain_config();
    config.limits.max_segment_bytes = 64 * 1024;
    config.transcode.mode = TranscodeMode::PassThrough;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let session = Session::offchain(orchestrator.service_uri()).await;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = Bytes::from_static(b"not really a segment");

    let (status, reason) = post_segment(&session.client, None, None, body.clone()).await;
    assert_eq!(status, 403);
    assert!(reason.contains("Livepeer-Segment"), "{reason}");

    let (status, reason) = post_segment(&session.client, Some("***"), None, body.clone()).await;
    assert_eq!(status, 403);
    assert!(reason.contains("invalid base64"), "{reason}");

    let garbage = b64(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    let (status, reason) = post_segment(&session.client, Some(&garbage), None, body.clone()).await;
    assert_eq!(status, 403);
    assert!(reason.contains("invalid protobuf"), "{reason}");

    let (status, reason) = post_segment(
        &session.client,
        Some(&garbage),
        Some(&garbage),
        body.clone(),
    )
    .await;
    assert_eq!(status, 402);
    assert!(
        reason.contains("Livepeer-Payment") && reason.contains("protobuf"),
        "{reason}"
    );

    // A well-formed segment header with an empty ladder.
    let mut seg = segment_data(&session.key, &session.info, b"m", 0, &body, 1000, &[]).unwrap();
    let (status, reason) = post_segment(
        &session.client,
        Some(&headers::encode_segment(&seg)),
        None,
        body.clone(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(reason.contains("fullProfiles3"), "{reason}");

    // Oversized body: refused while reading, with the limit in the reason.
    let wire = wire_ladder(&ladder());
    seg = segment_data(&session.key, &session.info, b"m", 0, &body, 1000, &wire).unwrap();
    let big = Bytes::from(vec![0x47u8; 200 * 1024]);
    let (status, reason) = post_segment(
        &session.client,
        Some(&headers::encode_segment(&seg)),
        None,
        big,
    )
    .await;
    assert_eq!(status, 413);
    assert!(reason.contains("65536"), "{reason}");

    // The node still serves a good segment.
    let good = segments()[0].clone();
    let seg = segment_data(&session.key, &session.info, b"m", 1, &good, 1000, &wire).unwrap();
    let (code, _) = post_segment(
        &session.client,
        Some(&headers::encode_segment(&seg)),
        None,
        good,
    )
    .await;
    assert_eq!(code, 200);
    let s = crate::common::status(&session.client).await;
    assert_eq!(s["segments"]["failures"]["bad_segment_header"], 3);
    assert_eq!(s["segments"]["failures"]["bad_body"], 1);
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_uploads_are_cut_off() {
    let mut config = offchain_config();
    config.limits.handshake_timeout_ms = 500;
    config.limits.upload_timeout_ms = 500;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let session = Session::offchain(orchestrator.service_uri()).await;
    let addr = orchestrator.local_addr();

    // A request head that never completes: the connection is closed.
    let mut stalled = tls_connect(addr).await;
    stalled
        .write_all(b"POST /segment HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "stalled request head still open after 10 s");

    // A body that trickles: 408 with a reason once the upload deadline passes.
    let good = segments()[0].clone();
    let wire = wire_ladder(&ladder());
    let seg = segment_data(&session.key, &session.info, b"m", 0, &good, 1000, &wire).unwrap();
    let mut slow = tls_connect(addr).await;
    let head = format!(
        "POST /segment HTTP/1.1\r\nHost: localhost\r\n{}: {}\r\nContent-Length: {}\r\n\r\n",
        headers::SEGMENT_HEADER,
        headers::encode_segment(&seg),
        good.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&good[..100]).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf))
        .await
        .expect("server answers the trickled upload");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body not received within"), "{text}");

    // A TLS handshake that never starts is dropped too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    orchestrator.shutdown().await;
}
