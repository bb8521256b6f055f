//! The plain-HTTP routes of the orchestrator's port: segments, payments, rendition downloads,
//! remote-transcoder hand-back, metrics, status, health and the admin fault switches.
//!
//! The remote-transcoder routes speak go-livepeer's dialect exactly (server/ot_rpc.go), so go
//! transcoders work against this node: a task's source is a plain GET of its unguessable URL,
//! and `/transcodeResults` checks `Authorization: Livepeer-Transcoder-1.0` and the secret in
//! `Credentials` (401), the content type (415), `TaskId` (400), then either takes a
//! `livepeer/transcoding-error` body as the task's failure or requires the top-level `Pixels`
//! (400) and reads a `multipart/mixed` body as go does.
//!
//! Design: handlers take the raw body and read it themselves under a size cap and a deadline, so
//! an oversized or trickled upload ends in a 413/408 with a reason and releases its memory,
//! whatever the route. A segment's 200 is sent as soon as the body checks out; the
//! `TranscodeResult` follows on the same response body when transcoding is done (go-livepeer's
//! "write 200 and flush" contract, which lets a broadcaster time upload and transcode apart).
//!
//! The segment route is the node's hot path, and its cost is per byte: the body is hashed
//! (keccak256, the largest cost) chunk by chunk as it arrives, on the task that reads it, and
//! lands in one buffer sized from `Content-Length` (see `node/orchestrator/benches/overhead.rs`
//! for the measured effect). Hashing on a thread of its own overlapped better on paper but made
//! three busy threads (client, reader, hasher) on a 2-core machine whose kernel preempts only at
//! its 4 ms tick: p99 8.2–8.9 ms against 6.3–7.1 ms inline, the same p50.

// Helpers return the ready `Response` as their error: it is what the handler sends, once.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use keccak_asm::Digest;
use prost::Message;
use protocol::headers::{PAYMENT_HEADER, SEGMENT_HEADER};
use protocol::net::PaymentResult;
use serde_json::json;

use crate::faults::FaultConfig;
use crate::metrics::FailureReason;
use crate::multipart;
use crate::node::Node;
use crate::node::admission::{CheckedSegment, Refusal};
use crate::node::sessions::{BudgetExceeded, BytesHeld};
use crate::remote::{Completion, Posted, PostedRendition};

/// `Authorization` value of a remote transcoder's results (go-livepeer's `protoVerLPT`).
pub const TRANSCODER_PROTOCOL: &str = "Livepeer-Transcoder-1.0";
/// Header carrying the orchestrator's transcoder secret on `/transcodeResults`.
pub const CREDENTIALS_HEADER: &str = "Credentials";
/// Content type of a segment upload whose body is the segment's URL.
pub const SEGMENT_URI_TYPE: &str = "application/vnd+livepeer.uri";
/// The longest segment URL accepted.
const SEGMENT_URI_MAX: usize = 4096;
/// Header carrying a remote transcoder's task id on `/transcodeResults`.
pub const TASK_ID_HEADER: &str = "TaskId";
/// Header carrying pixels: decoded ones at the top level, encoded ones on a rendition part.
pub const PIXELS_HEADER: &str = "Pixels";
/// Content type of a remote transcoder's error report (its body is the message).
pub const TRANSCODE_ERROR_TYPE: &str = "livepeer/transcoding-error";
/// Content type of a part holding the previous rendition's perceptual hash.
pub const PHASH_TYPE: &str = "application/octet-stream";
/// The longest transcoder error message passed on to the broadcaster.
const ERROR_MESSAGE_MAX: usize = 4096;

/// The HTTP router over `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/segment", post(segment))
        .route("/payment", post(payment))
        .route("/stream/{*path}", get(stored))
        .route("/task/{*path}", get(task_source))
        .route("/transcodeResults", post(transcode_results))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/pool", get(pool))
        .route("/healthz", get(|| async { "ok" }))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .with_state(node)
}

fn text(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, reason.into()).into_response()
}

fn refusal(r: Refusal) -> Response {
    text(r.status, r.reason)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The most a declared `Content-Length` reserves up front (8 Mbps × 30 s); larger bodies grow as
/// they arrive, so a header alone cannot make the node reserve hundreds of megabytes.
const PREALLOCATE_MAX: usize = 32 * 1024 * 1024;

/// Reads a body under `limit` bytes within `deadline`; the error is the response to send.
///
/// Past the limit the rest of the upload is read and discarded (bounded by the same deadline and
/// 16 × the limit) before answering: closing a socket with unread data makes the kernel reset the
/// connection, and the client would lose the 413 that explains why.
async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Bytes, Response> {
    read_limited(body, limit, deadline, None, false, None).await
}

/// Reads and throws away a body (within the same bounds as [`read_body`]) so that a refusal
/// reaches a client that is still uploading, without holding what it sends.
async fn discard_body(body: Body, limit: usize, deadline: Duration) {
    let _ = read_limited(body, limit, deadline, None, true, None).await;
}

/// [`read_body`], also hashing the bytes as they arrive, so hashing a segment overlaps with
/// receiving it instead of adding to the latency after it, and holding every byte kept in the
/// node's and the session's budgets (`held`).
async fn read_hashed_body(
    node: &Node,
    body: Body,
    limit: usize,
    deadline: Duration,
    held: &mut BytesHeld,
) -> Result<(Bytes, alloy::primitives::B256), Response> {
    let mut hasher = keccak_asm::Keccak256::default();
    let data = read_limited(
        body,
        limit,
        deadline,
        Some(&mut hasher),
        false,
        Some((node, held)),
    )
    .await?;
    Ok((
        data,
        alloy::primitives::B256::from_slice(&hasher.finalize()),
    ))
}

/// The reader behind [`read_body`], [`discard_body`] and [`read_hashed_body`]. With a budget,
/// the declared length is held before anything is read and every byte past it as it arrives;
/// when a budget cannot spare them, what was kept is freed at once, the rest of the upload is
/// drained like a refused one and the answer is the budget's refusal (503 or 429), also when
/// the deadline cuts the draining short.
async fn read_limited(
    mut body: Body,
    limit: usize,
    deadline: Duration,
    mut hasher: Option<&mut keccak_asm::Keccak256>,
    mut discard: bool,
    mut budget: Option<(&Node, &mut BytesHeld)>,
) -> Result<Bytes, Response> {
    // One allocation of the declared size: growing by doubling copies the segment several times
    // and touches fresh pages at each step (that was a tenth of the node's CPU per segment).
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    let mut refused: Option<Response> = None;
    let mut hold = |total: usize, refused: &mut Option<Response>| -> bool {
        match budget.as_mut() {
            Some((node, held)) => match held.hold(total) {
                Ok(()) => true,
                Err(exceeded) => {
                    *refused = Some(refusal(node.budget_refusal(exceeded)));
                    false
                }
            },
            None => true,
        }
    };
    let read = async {
        let reserve = if discard {
            0
        } else {
            let wanted = usize::try_from(declared).unwrap_or(0).min(limit);
            if hold(wanted, &mut refused) {
                wanted.min(PREALLOCATE_MAX)
            } else {
                discard = true;
                0
            }
        };
        let mut kept = BytesMut::with_capacity(reserve);
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| text(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len());
                if !discard && seen <= limit && !hold(seen, &mut refused) {
                    discard = true;
                    kept = BytesMut::new();
                }
                if discard {
                    if seen > limit.saturating_mul(16) {
                        break;
                    }
                } else if seen <= limit {
                    if let Some(h) = hasher.as_deref_mut() {
                        h.update(&data);
                    }
                    kept.extend_from_slice(&data);
                } else if seen > limit.saturating_mul(16) {
                    break;
                }
            }
        }
        if seen > limit && refused.is_none() {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes"),
            ));
        }
        Ok(kept.freeze())
    };
    let outcome = tokio::time::timeout(deadline, read).await;
    if let Some(response) = refused {
        return Err(response);
    }
    match outcome {
        Ok(result) => result,
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!("body not received within {deadline:?}"),
        )),
    }
}

/// Runs the header checks, then reads the hashed body; the error is the response to send.
///
/// A refusal takes precedence over anything wrong with the body, and is sent once the upload has
/// been read and thrown away (within the same size cap and deadline as any body, and without
/// keeping or hashing it): answering and closing while the client is still writing makes the
/// kernel reset the connection, and the client would get a broken pipe instead of the reason.
async fn check_and_read(
    node: &Arc<Node>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(CheckedSegment, Bytes, alloy::primitives::B256), Response> {
    let limits = &node.config.limits;
    let deadline = Duration::from_millis(limits.upload_timeout_ms);
    let checked = match node
        .check_headers(
            header_str(headers, SEGMENT_HEADER),
            header_str(headers, PAYMENT_HEADER),
        )
        .await
    {
        Ok(checked) => checked,
        Err(r) => {
            discard_body(body, limits.max_segment_bytes, deadline).await;
            return Err(refusal(r));
        }
    };
    let mut checked = checked;
    let by_uri = header_str(headers, "content-type")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(SEGMENT_URI_TYPE));
    let read = if by_uri {
        download_segment(node, body, deadline, &mut checked.bytes).await
    } else {
        read_hashed_body(
            node,
            body,
            limits.max_segment_bytes,
            deadline,
            &mut checked.bytes,
        )
        .await
    };
    // A failed upload drops `checked`, whose claim gives back the slot if that was all it did
    // and whose bytes go back to the budgets (a budget refusal was counted as such).
    let (data, hash) = read.inspect_err(|response| {
        if !matches!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            node.metrics.fail(FailureReason::BadBody)
        }
    })?;
    Ok((checked, data, hash))
}

/// A segment uploaded by reference: the body is its URL (at most [`SEGMENT_URI_MAX`] bytes), and
/// the segment is downloaded from there under the node's size cap, within what is left of the
/// upload deadline, then hashed like an uploaded body. Refused unless
/// `limits.segment_uri_uploads` is on; a URL that is not http(s) or cannot be fetched is a 400,
/// as go-livepeer answers.
async fn download_segment(
    node: &Node,
    body: Body,
    deadline: Duration,
    held: &mut BytesHeld,
) -> Result<(Bytes, alloy::primitives::B256), Response> {
    let started = std::time::Instant::now();
    if !node.config.limits.segment_uri_uploads {
        discard_body(body, SEGMENT_URI_MAX, deadline).await;
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "segments by URI ({SEGMENT_URI_TYPE}) are not accepted here (limits.segment_uri_uploads)"
            ),
        ));
    }
    let text_body = read_body(body, SEGMENT_URI_MAX, deadline).await?;
    let bad = |reason: String| text(StatusCode::BAD_REQUEST, reason);
    let uri = std::str::from_utf8(&text_body)
        .map_err(|_| bad("segment URI is not UTF-8".into()))?
        .trim();
    let url = reqwest::Url::parse(uri).map_err(|e| bad(format!("segment URI {uri:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("segment URI {uri:?}: only http(s) is fetched")));
    }
    let left = deadline.saturating_sub(started.elapsed());
    let limit = node.config.limits.max_segment_bytes;
    enum Failed {
        Bad(String),
        Budget(BudgetExceeded),
    }
    let fetch = async {
        let mut response = segment_fetcher()
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Failed::Bad(format!("cannot get segment from {url}: {e}")))?;
        let mut hasher = keccak_asm::Keccak256::default();
        let mut data = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failed::Bad(format!("segment from {url}: {e}")))?
        {
            if data.len() + chunk.len() > limit {
                return Err(Failed::Bad(format!(
                    "segment from {url} is over {limit} bytes"
                )));
            }
            held.hold(data.len() + chunk.len())
                .map_err(Failed::Budget)?;
            hasher.update(&chunk);
            data.extend_from_slice(&chunk);
        }
        Ok((
            data.freeze(),
            alloy::primitives::B256::from_slice(&hasher.finalize()),
        ))
    };
    match tokio::time::timeout(left, fetch).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(Failed::Bad(reason))) => Err(bad(reason)),
        Ok(Err(Failed::Budget(exceeded))) => Err(refusal(node.budget_refusal(exceeded))),
        Err(_) => Err(bad(format!(
            "segment from {url} did not arrive within the upload deadline ({deadline:?})"
        ))),
    }
}

/// One HTTP client for segment downloads, shared by every request (its TLS setup is the costly
/// part). Like go-livepeer's, it does not verify certificates: object storage is named by the
/// broadcaster, and the segment's hash is what is checked.
fn segment_fetcher() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(protocol::client::http_client)
}

async fn segment(State(node): State<Arc<Node>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (checked, body, hash) = match check_and_read(&node, &parts.headers, body).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let accepted = match node.accept_body(checked, body, hash) {
        Ok(accepted) => accepted,
        Err(r) => return refusal(r),
    };
    let dropped = node.should_drop(&accepted);
    // The 200 goes out now; the result follows on the body once transcoding is done.
    let result = async move {
        if dropped {
            return Err(std::io::Error::other("segment dropped"));
        }
        Ok::<_, std::io::Error>(Bytes::from(node.transcode(accepted).await.encode_to_vec()))
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd+livepeer.uri")
        .body(Body::from_stream(futures_util::stream::once(result)))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn payment(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    match node
        .check_headers(
            header_str(&headers, SEGMENT_HEADER),
            header_str(&headers, PAYMENT_HEADER),
        )
        .await
    {
        Ok(checked) => match node.info(checked.sender, &checked.session).await {
            Ok(info) => {
                let reply = PaymentResult { info: Some(info) };
                (StatusCode::OK, reply.encode_to_vec()).into_response()
            }
            Err(err) => text(StatusCode::BAD_REQUEST, err.to_string()),
        },
        Err(r) => refusal(r),
    }
}

/// A rendition, at the URL its `TranscodeResult` named: the path carries the session's
/// unguessable rendition key ([`crate::auth::AuthTokens::rendition_key`]), which is the
/// credential, as the task source's name is for a transcoder.
async fn stored(State(node): State<Arc<Node>>, Path(path): Path<String>) -> Response {
    match node.store.get(&format!("stream/{path}")) {
        Some(data) => ([(header::CONTENT_TYPE, "video/mp2t")], data).into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            format!("no rendition at /stream/{path}"),
        ),
    }
}

/// Whether `/transcodeResults` carries go-livepeer's protocol tag and this node's secret
/// (compared in constant time).
fn results_authorized(node: &Node, headers: &HeaderMap) -> bool {
    let Some(secret) = &node.config.transcoder_secret else {
        return false;
    };
    if header_str(headers, "authorization") != Some(TRANSCODER_PROTOCOL) {
        return false;
    }
    headers
        .get(CREDENTIALS_HEADER)
        .is_some_and(|given| secret.matches(given.as_bytes()))
}

/// A task's source for the transcoder it was given to: no credentials, the name is the secret.
async fn task_source(State(node): State<Arc<Node>>, Path(path): Path<String>) -> Response {
    match node.store.get(&format!("task/{path}")) {
        Some(data) => ([(header::CONTENT_TYPE, "video/mp2t")], data).into_response(),
        None => text(StatusCode::NOT_FOUND, "no such task source"),
    }
}

/// What `/transcodeResults` headers announce.
enum ResultsHead {
    /// A transcoding error; the body is the message.
    Error(i64),
    /// Renditions in a `multipart/mixed` body with this boundary.
    Renditions {
        task: i64,
        boundary: String,
        decoded_pixels: u64,
    },
}

/// The header checks of `/transcodeResults`, in go-livepeer's order and with its statuses.
fn results_head(node: &Node, headers: &HeaderMap) -> Result<ResultsHead, Response> {
    if !results_authorized(node, headers) {
        return Err(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let content_type = header_str(headers, "content-type").unwrap_or("");
    let media = multipart::parse_media_type(content_type)
        .map_err(|e| text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    let task = header_str(headers, TASK_ID_HEADER)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| text(StatusCode::BAD_REQUEST, "Invalid Task ID"))?;
    if media.essence == TRANSCODE_ERROR_TYPE {
        return Ok(ResultsHead::Error(task));
    }
    let decoded_pixels = header_str(headers, PIXELS_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| text(StatusCode::BAD_REQUEST, "Invalid Pixels"))?;
    if media.essence != "multipart/mixed" {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "results must be multipart/mixed or {TRANSCODE_ERROR_TYPE}, not {content_type:?}"
            ),
        ));
    }
    Ok(ResultsHead::Renditions {
        task,
        // A missing boundary is the body's fault, as in go: the task fails with the reason.
        boundary: media.param("boundary").unwrap_or_default().to_string(),
        decoded_pixels,
    })
}

async fn transcode_results(State(node): State<Arc<Node>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limits = &node.config.limits;
    let limit = limits.max_segment_bytes.saturating_mul(4);
    let deadline = Duration::from_millis(limits.upload_timeout_ms);
    let head = match results_head(&node, &parts.headers) {
        Ok(head) => head,
        Err(response) => {
            discard_body(body, limit, deadline).await;
            return response;
        }
    };
    let body = match read_body(body, limit, deadline).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (task, result) = match head {
        ResultsHead::Error(task) => {
            let message = String::from_utf8_lossy(&body[..body.len().min(ERROR_MESSAGE_MAX)]);
            (task, Err(message.into_owned()))
        }
        ResultsHead::Renditions {
            task,
            boundary,
            decoded_pixels,
        } => match posted_renditions(&boundary, &body) {
            Ok(renditions) => (
                task,
                Ok(Posted {
                    renditions,
                    decoded_pixels,
                }),
            ),
            Err(reason) => {
                let reason = format!("remote transcoder results: {reason}");
                return match node.remote.complete(task, Err(reason.clone())) {
                    Completion::NoTask => no_task(task),
                    _ => text(StatusCode::BAD_REQUEST, reason),
                };
            }
        },
    };
    match node.remote.complete(task, result) {
        Completion::Delivered => text(StatusCode::OK, "OK"),
        Completion::Mismatch(reason) => text(StatusCode::BAD_REQUEST, reason),
        Completion::NoTask => no_task(task),
    }
}

fn no_task(task: i64) -> Response {
    text(StatusCode::NOT_FOUND, format!("no task {task} is waiting"))
}

/// The renditions of a results body as go-livepeer reads it: a part with a `Pixels` header is a
/// rendition, an `application/octet-stream` part without one is the previous rendition's
/// perceptual hash (not kept: this node does not serve perceptual hashes), other parts are
/// skipped.
fn posted_renditions(boundary: &str, body: &Bytes) -> Result<Vec<PostedRendition>, String> {
    if boundary.is_empty() {
        return Err("multipart/mixed without a boundary".into());
    }
    let parts = multipart::decode(boundary, body).map_err(|e| e.to_string())?;
    let mut renditions = Vec::new();
    for (index, part) in parts.into_iter().enumerate() {
        if let Some(pixels) = part.header(PIXELS_HEADER) {
            let pixels = pixels
                .parse::<u64>()
                .map_err(|e| format!("part {index}: Pixels {pixels:?}: {e}"))?;
            renditions.push(PostedRendition {
                data: part.body,
                pixels,
            });
        } else if part
            .header("content-type")
            .is_some_and(|t| t.eq_ignore_ascii_case(PHASH_TYPE))
            && renditions.is_empty()
        {
            return Err(format!(
                "part {index}: perceptual hash without a rendition before it"
            ));
        }
    }
    Ok(renditions)
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let balance = node
        .payments
        .total_balance()
        .to_string()
        .parse::<f64>()
        .unwrap_or(0.0);
    let redemptions = node.payments.redemption_counts();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(
            balance,
            node.session_count(),
            node.remote.len(),
            node.inflight_bytes(),
            crate::metrics::RedemptionGauges {
                pending: redemptions.pending,
                unconfirmed: redemptions.unconfirmed,
            },
        ) + &crate::pool::render_metrics(&node.remote.ledger().totals(), &node.remote.live()),
    )
        .into_response()
}

/// `/pool` (status or admin bearer token): the remote transcoders' totals since the start, the
/// attached ones' speed and checks, the names dropped, and the payouts of the window's redeemed
/// value; with `?entries=true` also the window's ledger entries, which name the transcoder of
/// every segment.
async fn pool(State(node): State<Arc<Node>>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if !status_authorized(&node, &headers) {
        return text(
            StatusCode::UNAUTHORIZED,
            "the pool's ledger needs the status or admin bearer token",
        );
    }
    let ledger = node.remote.ledger();
    let window = ledger.window();
    let horizon = crate::pool::ledger::now_ms().saturating_sub(window.as_millis() as u64);
    let redeemed_wei: u128 = node
        .payments
        .redemptions()
        .iter()
        .filter(|r| r.status == "redeemed" && r.redeemed_ms.is_some_and(|at| at >= horizon))
        .filter_map(|r| r.face_value.parse::<u128>().ok())
        .sum();
    let entries = ledger.entries();
    let terms = node.config.pool.terms();
    let mut doc = json!({
        "window_secs": window.as_secs(),
        "terms": {
            "commission": terms.commission,
            "tx_cost_wei": terms.tx_cost_wei.to_string(),
            "penalty_factor": terms.penalty_factor,
        },
        "totals": ledger.totals(),
        "attached": node.remote.live(),
        "dropped": node.remote.dropped(),
        "payout": crate::pool::plan(&entries, redeemed_wei, &terms),
        "ledger_file_errors": ledger.file_errors(),
    });
    let wants_entries = uri
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "entries=true"));
    if wants_entries {
        doc["entries"] = json!(entries);
    }
    axum::Json(doc).into_response()
}

/// `/status`: aggregates for anyone (counts, totals, price, chain view, redemption outcomes by
/// kind); with the status or admin bearer token also what names sessions, senders and tickets
/// (per-session balances, each winner's redemption record), each remote transcoder and the fault
/// switches.
async fn status(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let detailed = status_authorized(&node, &headers);
    let m = &node.metrics;
    let view = node.payments.view();
    let (objects, bytes) = node.store.usage();
    let transcoders = node.remote.status();
    let mut doc = json!({
        "detail": detailed,
        "address": node.address(),
        "service_uri": node.service_uri,
        "offchain": node.config.offchain,
        "price": {
            "price_per_unit": node.payments.price().price_per_unit,
            "pixels_per_unit": node.payments.price().pixels_per_unit,
        },
        "chain": {
            "block": view.block,
            "round": view.round,
            "reachable": node.payments.chain_reachable(),
        },
        "sessions": node.session_count(),
        "segments": {
            "received": m.segments_received.load(Relaxed),
            "transcoded": m.segments_transcoded.load(Relaxed),
            "failures": m.failures(),
        },
        "pixels_billed": m.pixels_billed.load(Relaxed),
        "tickets": {
            "received": m.tickets_received.load(Relaxed),
            "accepted": m.tickets_accepted.load(Relaxed),
            "won": m.tickets_won.load(Relaxed),
            "redeemed": m.tickets_redeemed.load(Relaxed),
        },
        "pending_redemptions": node.payments.pending_redemptions(),
        "redemption": node.payments.redemption_counts(),
        "redemption_passes": node.payments.redemption_passes(),
        "balance_wei_total": node.payments.total_balance().to_string(),
        "remote": {
            "transcoders": transcoders.len(),
            "capacity": transcoders.iter().map(|t| t.capacity).sum::<usize>(),
            "load": transcoders.iter().map(|t| t.load).sum::<usize>(),
        },
        "connections": m.connections_open.load(Relaxed),
        "inflight_bytes": node.inflight_bytes(),
        "store": { "objects": objects, "bytes": bytes },
    });
    if detailed {
        doc["redemptions"] = json!(node.payments.redemptions());
        doc["balances"] = node
            .payments
            .balances()
            .into_iter()
            .map(|(sender, session, balance)| {
                json!({
                    "sender": sender, "session": session, "balance_wei": balance.to_string(),
                })
            })
            .collect();
        doc["transcoders"] = json!(transcoders);
        doc["faults"] = json!(node.faults.snapshot());
    }
    axum::Json(doc).into_response()
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the request carries the status or the admin token (compared in constant time).
fn status_authorized(node: &Node, headers: &HeaderMap) -> bool {
    let Some(given) = bearer(headers) else {
        return false;
    };
    [&node.config.status_token, &node.config.admin_token]
        .into_iter()
        .flatten()
        .any(|token| token.matches(given.as_bytes()))
}

fn admin_authorized(node: &Node, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &node.config.admin_token else {
        return Err(text(StatusCode::NOT_FOUND, "admin endpoint disabled"));
    };
    if bearer(headers).is_some_and(|given| token.matches(given.as_bytes())) {
        Ok(())
    } else {
        Err(text(StatusCode::UNAUTHORIZED, "invalid admin bearer token"))
    }
}

async fn get_faults(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    if let Err(response) = admin_authorized(&node, &headers) {
        return response;
    }
    axum::Json(node.faults.snapshot()).into_response()
}

async fn put_faults(State(node): State<Arc<Node>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(response) = admin_authorized(&node, &parts.headers) {
        return response;
    }
    let body = match read_body(body, 64 * 1024, Duration::from_secs(10)).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(err) => return text(StatusCode::BAD_REQUEST, format!("fault switches: {err}")),
    };
    match node.faults.set(config) {
        Ok(()) => {
            tracing::warn!(faults = ?node.faults.snapshot(), "fault switches changed");
            axum::Json(node.faults.snapshot()).into_response()
        }
        Err(err) => text(StatusCode::BAD_REQUEST, err.to_string()),
    }
}
