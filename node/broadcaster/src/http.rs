//! The broadcaster's HTTP face: HLS playback, push ingest, `/status`, `/metrics`, `/healthz`.
//!
//! Routes follow go-livepeer's paths (PROTOCOL.md §1). HLS bodies are `Bytes` shared with the
//! playlists' windows, so serving a segment copies nothing. Push ingest
//! (`POST|PUT /live/<id>/<seq>.ts`) runs the segment through the same transcode path as RTMP and
//! answers with every rendition as `multipart/mixed` when asked to.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;

use crate::hls;
use crate::orch::OrchestratorStatus;
use crate::records::SegmentRecord;
use crate::segmenter::SourceSegment;
use crate::stream::{Broadcaster, StreamStatus, validate_manifest_id};

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusDocument {
    /// Streams.
    pub streams: Vec<StreamStatus>,
    /// Orchestrators.
    pub orchestrators: Vec<OrchestratorStatus>,
    /// Ingest problems by kind.
    pub ingest_errors: std::collections::BTreeMap<String, u64>,
    /// Per-segment outcomes, oldest first.
    pub segments: Vec<SegmentRecord>,
}

/// The router.
pub fn router(b: Arc<Broadcaster>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/stream/{*path}", get(stream_file))
        .route("/live/{id}/{file}", post(push).put(push))
        .with_state(b)
}

async fn status(State(b): State<Arc<Broadcaster>>) -> Response {
    let doc = StatusDocument {
        streams: b.stream_status(),
        orchestrators: b.pool.status(),
        ingest_errors: b.records().ingest_errors(),
        segments: b.records().records(),
    };
    match serde_json::to_vec(&doc) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics(State(b): State<Arc<Broadcaster>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        b.records().prometheus(b.live_streams()),
    )
        .into_response()
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, what).into_response()
}

async fn stream_file(State(b): State<Arc<Broadcaster>>, Path(path): Path<String>) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [master] if master.ends_with(".m3u8") => {
            let id = master.trim_end_matches(".m3u8");
            match b.stream(id) {
                Some(s) => playlist(s.master_playlist()),
                None => not_found(format!("no stream {id:?}")),
            }
        }
        [id, media] if media.ends_with(".m3u8") => {
            let rendition = media.trim_end_matches(".m3u8");
            match b.stream(id).and_then(|s| s.media_playlist(rendition)) {
                Some(p) => playlist(p),
                None => not_found(format!("no rendition {rendition:?} of stream {id:?}")),
            }
        }
        [id, rendition, file] if file.ends_with(".ts") => {
            let Ok(seq) = file.trim_end_matches(".ts").parse::<u64>() else {
                return not_found(format!("bad segment name {file:?}"));
            };
            let Some(segment) = b.stream(id).and_then(|s| s.segment(rendition, seq)) else {
                return not_found(format!(
                    "segment {rendition}/{seq} of {id:?} is not in the window"
                ));
            };
            match segment.bytes().await {
                Ok(data) => ([(header::CONTENT_TYPE, "video/mp2t")], data).into_response(),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("segment {rendition}/{seq} of {id:?}: {e}"),
                )
                    .into_response(),
            }
        }
        _ => not_found(format!("no such HLS path {path:?}")),
    }
}

fn playlist(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn push(
    State(b): State<Arc<Broadcaster>>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = validate_manifest_id(&id) {
        return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    let Some(seq) = file.strip_suffix(".ts").and_then(|s| s.parse::<u64>().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("segment name {file:?} is not <seq>.ts"),
        )
            .into_response();
    };
    if body.len() < 188 || body[0] != 0x47 {
        b.records().ingest_error("push_not_mpegts");
        return (StatusCode::UNPROCESSABLE_ENTITY, "body is not MPEG-TS").into_response();
    }
    let duration_ms = match headers
        .get("Content-Duration")
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<i64>().ok()))
    {
        None => b.config.segment_duration_ms as i64,
        Some(Some(ms)) if ms > 0 => ms,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "Content-Duration must be positive milliseconds",
            )
                .into_response();
        }
    };
    let stream = b.stream_or_create(&id);
    stream.mark_pushed();
    let seg = SourceSegment {
        seq,
        size: None,
        video_frames: (duration_ms * 30 / 1000) as u32,
        data: body,
        start_ms: 0,
        duration_ms,
        discontinuity: false,
        forced_cut: false,
    };
    stream.add_pushed(&b, &seg);
    let renditions = b.transcode(&id, &seg).await;
    stream.finish_pushed(&b, &seg, renditions.clone());
    let wants_multipart = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("multipart/mixed"));
    if !b.profiles.is_empty() && renditions.is_empty() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "transcoding failed on every orchestrator",
        )
            .into_response();
    }
    if !wants_multipart {
        return StatusCode::OK.into_response();
    }
    multipart(seq, renditions)
}

fn multipart(seq: u64, renditions: Vec<(String, Bytes)>) -> Response {
    let boundary = format!("lpt-{seq:016x}");
    let mut body = Vec::new();
    for (name, data) in &renditions {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: video/mp2t\r\n");
        body.extend_from_slice(format!("Rendition-Name: {name}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: attachment; filename=\"{seq}_{name}.ts\"\r\n").as_bytes(),
        );
        body.extend_from_slice(format!("Content-Length: {}\r\n\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The source rendition's name, re-exported for clients building URLs.
pub const SOURCE_RENDITION: &str = hls::SOURCE;
