//! The broadcaster's HTTP face: HLS playback, push ingest, `/status`, `/metrics`, `/healthz`.
//!
//! Routes follow go-livepeer's paths (PROTOCOL.md §1). HLS bodies are `Bytes` shared with the
//! playlists' windows, so serving a segment copies nothing. Push ingest
//! (`POST|PUT /live/<id>/<seq>.ts`) runs the segment through the same transcode path as RTMP and
//! answers with every rendition as `multipart/mixed` when asked to.
//!
//! [`serve`] runs hyper's HTTP/1 server itself rather than `axum::serve` because a public server
//! needs limits that one does not set: a connection cap (`http_max_connections`, past it a 503
//! and close), a deadline for each request head that also ends idle keep-alive connections
//! (`http_header_timeout_ms`), and a stall limit on writing responses (`http_idle_timeout_ms`).
//! A push body is read by its handler under the same stall limit, a total deadline
//! (`http_body_timeout_ms`) and the segment byte cap, so a trickled or endless body costs a
//! bounded time and memory.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::accept::{Accepted, CappedListener};
use crate::hls;
use crate::orch::OrchestratorStatus;
use crate::records::SourceSegmentRecord;
use crate::segmenter::SourceSegment;
use crate::stream::{
    Broadcaster, PublishError, Publisher, StreamStatus, query_key, validate_manifest_id,
};

/// What a connection past `http_max_connections` reads before it is closed.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves [`router`] on `listener` with the limits in the module docs until `shutdown` turns
/// true; open connections then finish their request and close.
pub async fn serve(
    listener: TcpListener,
    b: Arc<Broadcaster>,
    mut shutdown: watch::Receiver<bool>,
) {
    let header_timeout = Duration::from_millis(b.config.http_header_timeout_ms);
    let stall = Duration::from_millis(b.config.http_idle_timeout_ms);
    let app = router(b.clone());
    let listener = CappedListener::new(
        listener,
        b.config.http_max_connections,
        "HTTP",
        "http_max_connections",
        "http_connection_cap",
        BUSY,
    );
    while let Some(Accepted { socket, peer, slot }) =
        listener.next(&mut shutdown, b.records()).await
    {
        let app = app.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = socket.set_nodelay(true);
            let io = TokioIo::new(WriteStall::new(socket, stall));
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req)
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("HTTP {peer}: {e}");
            }
        });
    }
}

/// A socket whose writes fail with `TimedOut` once one has made no progress for `limit` (a
/// client that stops reading its response). Reads are bounded elsewhere: request heads by
/// hyper's header timeout, push bodies by their handler.
struct WriteStall {
    inner: TcpStream,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl WriteStall {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Called when a write is pending: starts the stall clock, or fails once it ran out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.armed {
            self.timer.as_mut().reset(Instant::now() + self.limit);
            self.armed = true;
        }
        ready!(self.timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("client accepted no response bytes for {:?}", self.limit),
        ))
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

impl AsyncRead for WriteStall {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteStall {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

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
    pub segments: Vec<SourceSegmentRecord>,
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

/// Every answer under `/stream/` lets web players of any origin read it, as go-livepeer's
/// (lpms `vidplayer.handleLive`: `Access-Control-Allow-Origin: *`, `Content-Length` exposed).
async fn stream_file(state: State<Arc<Broadcaster>>, path: Path<String>) -> Response {
    let mut response = stream_file_answer(state, path).await;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("Content-Length"),
    );
    response
}

async fn stream_file_answer(
    State(b): State<Arc<Broadcaster>>,
    Path(path): Path<String>,
) -> Response {
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

/// A push body that could not be read whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("push body is larger than max_segment_bytes ({0})")]
    TooLarge(usize),
    #[error("push body stalled for {0:?}")]
    Stalled(Duration),
    #[error("push body took longer than {0:?}")]
    TooSlow(Duration),
    #[error("push body: {0}")]
    Broken(String),
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Stalled(_) | Self::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a push body within the byte cap, the stall limit and the total deadline.
async fn read_body(b: &Broadcaster, headers: &HeaderMap, body: Body) -> Result<Bytes, BodyError> {
    let max = b.config.max_segment_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let stall = Duration::from_millis(b.config.http_idle_timeout_ms);
    let total = Duration::from_millis(b.config.http_body_timeout_ms);
    let deadline = Instant::now() + total;
    let mut data = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    let mut chunks = body.into_data_stream();
    loop {
        let next_by = (Instant::now() + stall).min(deadline);
        let chunk = match tokio::time::timeout_at(next_by, chunks.next()).await {
            Err(_) if next_by == deadline => return Err(BodyError::TooSlow(total)),
            Err(_) => return Err(BodyError::Stalled(stall)),
            Ok(None) => return Ok(data.freeze()),
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if data.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        data.extend_from_slice(&chunk);
    }
}

fn refused(e: &PublishError) -> StatusCode {
    match e {
        PublishError::InvalidManifestId(_) | PublishError::SeqJump { .. } => {
            StatusCode::BAD_REQUEST
        }
        PublishError::Unauthorized | PublishError::Refused(_) | PublishError::WebhookFailed(_) => {
            StatusCode::FORBIDDEN
        }
        PublishError::AlreadyLive(_)
        | PublishError::Taken(_)
        | PublishError::WrongIngest { .. } => StatusCode::CONFLICT,
        PublishError::TooManyFromClient { .. } => StatusCode::TOO_MANY_REQUESTS,
        PublishError::TooManyStreams(_) | PublishError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// A response that also closes the connection (the rest of a refused body is not read).
fn closing(status: StatusCode, why: String) -> Response {
    (status, [(header::CONNECTION, "close")], why).into_response()
}

async fn push(
    State(b): State<Arc<Broadcaster>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = validate_manifest_id(&id) {
        return closing(StatusCode::BAD_REQUEST, e.to_string());
    }
    let Some(seq) = file.strip_suffix(".ts").and_then(|s| s.parse::<u64>().ok()) else {
        return closing(
            StatusCode::BAD_REQUEST,
            format!("segment name {file:?} is not <seq>.ts"),
        );
    };
    let max_ms = b.config.max_segment_duration_ms;
    let duration_ms = match headers
        .get("Content-Duration")
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()))
    {
        None => b.config.segment_duration_ms,
        Some(Some(ms)) if (1..=max_ms).contains(&ms) => ms,
        Some(_) => {
            return closing(
                StatusCode::BAD_REQUEST,
                format!(
                    "Content-Duration must be 1..={max_ms} milliseconds (max_segment_duration_ms)"
                ),
            );
        }
    };
    let body = match read_body(&b, &headers, body).await {
        Ok(body) => body,
        Err(e) => {
            tracing::info!("push {id}/{seq} from {peer}: {e}");
            b.records().ingest_error("push_body");
            return closing(e.status(), e.to_string());
        }
    };
    if body.len() < 188 || body[0] != 0x47 {
        b.records().ingest_error("push_not_mpegts");
        return (StatusCode::UNPROCESSABLE_ENTITY, "body is not MPEG-TS").into_response();
    }
    let query = query.unwrap_or_default();
    let publisher = Publisher {
        ip: peer.ip(),
        key: query_key(&query).map(str::to_owned),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| b.config.http_addr.to_string(), str::to_owned);
    let url = if query.is_empty() {
        format!("http://{host}/live/{id}/{file}")
    } else {
        format!("http://{host}/live/{id}/{file}?{query}")
    };
    let stream = match b.begin_push(&id, seq, &url, &publisher).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!("push {id}/{seq} from {peer} refused: {e}");
            b.records().ingest_error(e.kind());
            return (refused(&e), e.to_string()).into_response();
        }
    };
    let seg = SourceSegment {
        seq,
        size: None,
        video_frames: (duration_ms.saturating_mul(30) / 1000) as u32,
        data: body,
        start_ms: 0,
        duration_ms: duration_ms as i64,
        discontinuity: false,
        forced_cut: false,
    };
    let _pending = stream.add_pushed(&b, &seg);
    let renditions = b.transcode(&stream.manifest_id, &seg).await;
    stream.add_renditions(&b, &seg, renditions.clone());
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
