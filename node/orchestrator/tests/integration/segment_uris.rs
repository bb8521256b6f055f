//! Segments uploaded by reference (`Content-Type: application/vnd+livepeer.uri`, the body the
//! segment's URL), as go-livepeer's broadcaster sends segments it keeps in object storage:
//! refused with the config key named unless enabled; when enabled, downloaded from a real
//! loopback server, hash-checked and transcoded like an uploaded body, and every bad URL is a 400
//! with its reason.

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use node_orchestrator::http::SEGMENT_URI_TYPE;
use prost::Message;
use protocol::headers;
use protocol::net::{TranscodeResult, transcode_result};

use crate::common::*;

/// Serves `segment` at `/segment.ts`, `big` (over the node's cap) at `/big.ts`, and at
/// `/slow.ts` a body that sends one chunk and then nothing, forever.
async fn object_store(segment: Bytes, big: Bytes) -> String {
    let slow = || async {
        let first =
            futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"G")) });
        axum::body::Body::from_stream(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
    };
    let app = Router::new()
        .route("/segment.ts", get(move || async move { segment }))
        .route("/big.ts", get(move || async move { big }))
        .route("/slow.ts", get(slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn post_uri(session: &Session, seg: &protocol::net::SegData, uri: &str) -> (u16, Bytes) {
    let response = session
        .client
        .http()
        .post(format!("{}/segment", session.client.uri()))
        .header("Content-Type", SEGMENT_URI_TYPE)
        .header(headers::SEGMENT_HEADER, headers::encode_segment(seg))
        .body(uri.to_owned())
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_by_uri_is_refused_unless_enabled() {
    let orchestrator = node_orchestrator::start(offchain_config()).await.unwrap();
    let session = Session::offchain(orchestrator.service_uri()).await;
    let body = segments()[0].clone();
    let seg = session.segment(0, &body);
    let store = object_store(body, Bytes::new()).await;
    let (status, text) = post_uri(&session, &seg, &format!("{store}/segment.ts")).await;
    assert_eq!(status, 415);
    assert_eq!(
        String::from_utf8_lossy(&text),
        "segments by URI (application/vnd+livepeer.uri) are not accepted here (limits.segment_uri_uploads)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_by_uri_is_downloaded_checked_and_transcoded_when_enabled() {
    let mut config = offchain_config();
    config.limits.segment_uri_uploads = true;
    config.limits.max_segment_bytes = 8 * 1024 * 1024;
    config.limits.upload_timeout_ms = 3000;
    let limit = config.limits.max_segment_bytes;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let session = Session::offchain(orchestrator.service_uri()).await;
    let body = segments()[0].clone();
    let store = object_store(body.clone(), Bytes::from(vec![0u8; limit + 1])).await;

    let (status, reply) = post_uri(
        &session,
        &session.segment(0, &body),
        &format!("{store}/segment.ts"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let result = TranscodeResult::decode(reply).unwrap();
    let Some(transcode_result::Result::Data(data)) = result.result else {
        panic!("no renditions: {result:?}");
    };
    assert_eq!(data.segments.len(), session.ladder.len());
    for (rendition, profile) in data.segments.iter().zip(&session.ladder) {
        let bytes = session.client.download(&rendition.url).await.unwrap();
        let (w, h, _) = ffprobe(&bytes).await;
        assert_eq!((w, h), (profile.width, profile.height));
    }

    // The downloaded bytes are what the signature's hash covers.
    let (status, text) = post_uri(
        &session,
        &session.segment(1, b"other bytes"),
        &format!("{store}/segment.ts"),
    )
    .await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&text));

    for (uri, reason) in [
        ("file:///etc/passwd".to_owned(), "only http(s) is fetched"),
        ("not a url".to_owned(), "relative URL without a base"),
        (format!("{store}/missing.ts"), "404 Not Found"),
        (format!("{store}/big.ts"), &format!("is over {limit} bytes")),
        (
            format!("{store}/slow.ts"),
            "did not arrive within the upload deadline (3s)",
        ),
    ] {
        let (status, text) = post_uri(&session, &session.segment(2, &body), &uri).await;
        let text = String::from_utf8_lossy(&text);
        assert_eq!(status, 400, "{uri}: {text}");
        assert!(text.contains(reason), "{uri}: {text}");
    }
}
