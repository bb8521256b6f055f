//! One AI request sent and its answer read, bounded and timed.
//!
//! A gateway or worker under test is not trusted: every wait has the request's deadline, every
//! body (the answer, each media URL it names, each `data:` URL) has a size limit enforced while
//! it streams in, so a hostile or broken peer costs at most the limits, never the process. Every
//! failure carries a stable snake_case reason code ([`reason`]) that records and reports group
//! by, plus a human message; the HTTP status and the first bytes of an error body are kept.
//!
//! Timing splits the latency where the user's wait goes: `upload` (request start until the body
//! was handed to the connection), `inference` (until the response headers: the worker's compute
//! and queueing), `download` (the answer's body plus every media URL it names).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde_json::{Map, Value};
use url::Url;

use super::api::{
    AudioResponse, HTTPError, HTTPValidationError, ImageResponse, ImageToTextResponse, LLMResponse,
    LiveVideoToVideoResponse, MasksResponse, Pipeline, TextResponse, VideoResponse,
};

/// The reason codes of failed requests: stable, snake_case, what records group by.
pub mod reason {
    /// The answer's status was not 2xx.
    pub const HTTP_STATUS: &str = "http_status";
    /// A 2xx whose body is not JSON.
    pub const NOT_JSON: &str = "not_json";
    /// A 2xx whose JSON is not the route's response schema.
    pub const SCHEMA: &str = "schema";
    /// A media URL could not be fetched (status, transport, bad URL).
    pub const MEDIA_FETCH: &str = "media_fetch";
    /// A media's bytes are not what they claim (bad base64, undecodable image or video).
    pub const MEDIA_DECODE: &str = "media_decode";
    /// A body or a media exceeded its limit.
    pub const TOO_LARGE: &str = "too_large";
    /// The request's deadline passed.
    pub const TIMEOUT: &str = "timeout";
    /// No connection could be made.
    pub const CONNECT: &str = "connect";
    /// The connection failed after it was made.
    pub const TRANSPORT: &str = "transport";
    /// An output's size is not the one asked for.
    pub const WRONG_SIZE: &str = "wrong_size";
    /// Not as many outputs as asked for.
    pub const WRONG_COUNT: &str = "wrong_count";
    /// An output's seed is not the requested seed plus its index.
    pub const SEED_NOT_ECHOED: &str = "seed_not_echoed";
    /// The same request with the same seed gave other pixels.
    pub const NOT_DETERMINISTIC: &str = "not_deterministic";
    /// A transcription chunk lies outside the input audio.
    pub const TIMESTAMPS_OUT_OF_RANGE: &str = "timestamps_out_of_range";
    /// A video has no frames or not the expected count.
    pub const VIDEO_FRAMES: &str = "video_frames";
    /// A 2xx with nothing in it (no choice, empty audio).
    pub const EMPTY_OUTPUT: &str = "empty_output";
    /// The request was not sent: the client's in-flight cap was reached.
    pub const CLIENT_OVERLOADED: &str = "client_overloaded";
    /// Live: no output segment within the start timeout (or an output with no frame).
    pub const NO_OUTPUT: &str = "no_output";
    /// Live: output frames decode but none carries a readable stamp.
    pub const STAMPS_UNREADABLE: &str = "stamps_unreadable";
    /// Live: the output's frame rate is more than 5 % below the target.
    pub const LOW_FPS: &str = "low_fps";
    /// Live: the output channel ended while the input was still being sent.
    pub const OUTPUT_ENDED_EARLY: &str = "output_ended_early";
    /// Live: the output went silent for the stall limit while the input was still being sent.
    pub const OUTPUT_STALLED: &str = "output_stalled";
    /// Live: the probe's own side failed (its Trickle server, the source, the plan): not the
    /// target's fault.
    pub const PROBE_FAILED: &str = "probe_failed";

    /// Every code above.
    pub const ALL: &[&str] = &[
        HTTP_STATUS,
        NOT_JSON,
        SCHEMA,
        MEDIA_FETCH,
        MEDIA_DECODE,
        TOO_LARGE,
        TIMEOUT,
        CONNECT,
        TRANSPORT,
        WRONG_SIZE,
        WRONG_COUNT,
        SEED_NOT_ECHOED,
        NOT_DETERMINISTIC,
        TIMESTAMPS_OUT_OF_RANGE,
        VIDEO_FRAMES,
        EMPTY_OUTPUT,
        CLIENT_OVERLOADED,
        NO_OUTPUT,
        STAMPS_UNREADABLE,
        LOW_FPS,
        OUTPUT_ENDED_EARLY,
        OUTPUT_STALLED,
        PROBE_FAILED,
    ];
}

/// How much of an error body is kept.
pub const ERROR_BODY_KEPT: usize = 512;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct AiTarget {
    /// The gateway's or worker's base URL; routes are appended to its path.
    pub base_url: Url,
    /// Sent as `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// A label copied into observations (which orchestrator this target is or reaches).
    pub orchestrator: Option<String>,
}

/// The bounds of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiLimits {
    /// From request start to the last media byte.
    pub deadline: Duration,
    /// The largest response body read.
    pub max_body: u64,
    /// The largest single media (fetched or decoded from a `data:` URL).
    pub max_media: u64,
    /// Requests in flight at once in an open-model (rate) plan.
    pub max_in_flight: usize,
}

impl Default for AiLimits {
    fn default() -> Self {
        AiLimits {
            deadline: Duration::from_secs(120),
            max_body: 64 << 20,
            max_media: 64 << 20,
            max_in_flight: 64,
        }
    }
}

/// One request: the route, its fields (JSON body, or multipart text fields) and the uploaded
/// file of multipart routes.
#[derive(Debug, Clone)]
pub struct AiRequest {
    pub pipeline: Pipeline,
    pub fields: Map<String, Value>,
    /// The file part ([`Pipeline::file_field`]): PNG bytes for image inputs.
    pub file: Option<Bytes>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiFailure {
    /// One of [`reason::ALL`].
    pub reason: &'static str,
    pub message: String,
    /// The first [`ERROR_BODY_KEPT`] bytes of an error body, lossily UTF-8.
    pub body: Option<String>,
}

impl AiFailure {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        AiFailure {
            reason,
            message: message.into(),
            body: None,
        }
    }
}

/// A route's success answer, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum AiResponse {
    Images(ImageResponse),
    Video(VideoResponse),
    Text(TextResponse),
    ImageText(ImageToTextResponse),
    Llm(LLMResponse),
    Audio(AudioResponse),
    Masks(MasksResponse),
    Live(LiveVideoToVideoResponse),
}

impl AiResponse {
    /// The media URLs the answer names, in order.
    pub fn media_urls(&self) -> Vec<&str> {
        match self {
            AiResponse::Images(r) => r.images.iter().map(|m| m.url.as_str()).collect(),
            AiResponse::Video(r) => r.images.iter().map(|m| m.url.as_str()).collect(),
            AiResponse::Audio(r) => vec![r.audio.url.as_str()],
            _ => Vec::new(),
        }
    }
}

/// A successful exchange: the parsed answer and the bytes of every media it names.
#[derive(Debug, Clone)]
pub struct AiAnswer {
    pub response: AiResponse,
    /// One per [`AiResponse::media_urls`] entry.
    pub media: Vec<Bytes>,
    /// Size of the JSON body.
    pub body_bytes: u64,
}

/// Where the time went; `None` for a phase never reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AiTimings {
    pub upload: Option<Duration>,
    pub inference: Option<Duration>,
    pub download: Option<Duration>,
    /// Request start until success or failure.
    pub latency: Duration,
}

/// What one request gave.
#[derive(Debug, Clone)]
pub struct AiOutcome {
    pub status: Option<u16>,
    pub timings: AiTimings,
    pub result: Result<AiAnswer, AiFailure>,
}

/// Why a client or a plan could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("invalid plan: {0}")]
    Plan(String),
    #[error("{0} is not supported by this probe")]
    Unsupported(Pipeline),
}

/// A client for AI requests. Redirects are not followed (a worker has no reason to redirect, and
/// a redirect would escape the target), and the per-request deadline is enforced by
/// [`send_request`] itself, so the client has only a connect timeout.
pub fn http_client(limits: &AiLimits) -> Result<reqwest::Client, AiError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(limits.deadline.min(Duration::from_secs(30)))
        .build()
        .map_err(AiError::Client)
}

/// The URL of `pipeline` under `base` (its path kept: `https://h/api/generate` + `/llm`).
pub fn route_url(base: &Url, pipeline: Pipeline) -> Result<Url, AiError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| AiError::Plan(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .push(pipeline.name());
    Ok(url)
}

/// A request body handed to hyper in chunks, noting when its last chunk is taken: then the whole
/// body is in the connection's hands. Its exact size makes hyper send a `Content-Length`.
struct TimedBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    done: Arc<OnceLock<Instant>>,
}

/// Small enough that "taken" follows the socket's pace, large enough to cost nothing.
const UPLOAD_CHUNK: usize = 64 << 10;

impl TimedBody {
    fn new(body: Bytes, done: Arc<OnceLock<Instant>>) -> Self {
        let remaining = body.len() as u64;
        let mut chunks = VecDeque::new();
        let mut rest = body;
        while rest.len() > UPLOAD_CHUNK {
            chunks.push_back(rest.split_to(UPLOAD_CHUNK));
        }
        if !rest.is_empty() {
            chunks.push_back(rest);
        }
        TimedBody {
            chunks,
            remaining,
            done,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this.chunks.pop_front() {
            Some(chunk) => {
                this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                if this.chunks.is_empty() {
                    let _ = this.done.set(Instant::now());
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => {
                let _ = this.done.set(Instant::now());
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Encodes a multipart body; returns it with its content type. Field values that are not strings
/// go as their JSON text (`7.5`, `true`), as FastAPI's form parsing expects.
pub fn multipart_body(
    fields: &Map<String, Value>,
    file: Option<(&str, &Bytes)>,
) -> (Bytes, String) {
    let boundary = format!("lpt-ai-{:016x}", boundary_seed());
    let mut out = Vec::with_capacity(file.map_or(0, |(_, b)| b.len()) + 1024);
    for (name, value) in fields {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                header_quote(name)
            )
            .as_bytes(),
        );
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some((name, bytes)) = file {
        let (filename, content_type) = file_kind(name, bytes);
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{filename}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n",
                header_quote(name)
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        Bytes::from(out),
        format!("multipart/form-data; boundary={boundary}"),
    )
}

/// A file name and content type from the file's first bytes: workers pick their decoder by them.
fn file_kind(field: &str, bytes: &[u8]) -> (&'static str, &'static str) {
    if bytes.starts_with(b"\x89PNG") {
        ("image.png", "image/png")
    } else if bytes.starts_with(b"\xFF\xD8") {
        ("image.jpg", "image/jpeg")
    } else if bytes.starts_with(b"RIFF") {
        ("audio.wav", "audio/wav")
    } else if bytes.starts_with(b"ID3") || bytes.starts_with(b"\xFF\xFB") {
        ("audio.mp3", "audio/mpeg")
    } else if bytes.starts_with(b"fLaC") {
        ("audio.flac", "audio/flac")
    } else if bytes.starts_with(b"OggS") {
        ("audio.ogg", "audio/ogg")
    } else if bytes.get(4..8) == Some(b"ftyp") {
        ("audio.m4a", "audio/mp4")
    } else if field == "image" {
        ("image.png", "image/png")
    } else {
        ("audio", "application/octet-stream")
    }
}

/// Names come from the plan, not the network; still, a quote or a line break must not break
/// the part's header.
fn header_quote(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' => "%22".to_owned(),
            '\r' => "%0D".to_owned(),
            '\n' => "%0A".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Distinct boundaries per body, so an upload echoing another request's boundary cannot split it.
fn boundary_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What the exchange reached before it ended, kept outside the deadline's future so a timeout
/// still reports the phases that completed.
#[derive(Default)]
struct Progress {
    status: Option<u16>,
    headers_at: Option<Instant>,
    body_done_at: Option<Instant>,
}

/// Sends one request to `target` and reads its answer and media, all within `limits`.
pub async fn send_request(
    http: &reqwest::Client,
    target: &AiTarget,
    request: &AiRequest,
    limits: &AiLimits,
) -> AiOutcome {
    let start = Instant::now();
    let upload_done = Arc::new(OnceLock::new());
    let mut progress = Progress::default();
    let result = tokio::time::timeout(
        limits.deadline,
        exchange(
            http,
            target,
            request,
            limits,
            upload_done.clone(),
            &mut progress,
        ),
    )
    .await
    .unwrap_or_else(|_| {
        Err(AiFailure::new(
            reason::TIMEOUT,
            format!("no complete answer within {:?}", limits.deadline),
        ))
    });
    let end = Instant::now();
    // A server may answer before reading the whole body: the upload then ended with the headers.
    let upload_end = match (upload_done.get().copied(), progress.headers_at) {
        (Some(u), Some(h)) => Some(u.min(h)),
        (u, h) => u.or(h),
    };
    let timings = AiTimings {
        upload: upload_end.map(|u| u.saturating_duration_since(start)),
        inference: progress
            .headers_at
            .zip(upload_end)
            .map(|(h, u)| h.saturating_duration_since(u)),
        download: match (&result, progress.headers_at) {
            (Ok(_), Some(h)) => Some(end.saturating_duration_since(h)),
            (Err(_), Some(h)) => progress
                .body_done_at
                .map(|b| b.saturating_duration_since(h)),
            _ => None,
        },
        latency: end.saturating_duration_since(start),
    };
    AiOutcome {
        status: progress.status,
        timings,
        result,
    }
}

async fn exchange(
    http: &reqwest::Client,
    target: &AiTarget,
    request: &AiRequest,
    limits: &AiLimits,
    upload_done: Arc<OnceLock<Instant>>,
    progress: &mut Progress,
) -> Result<AiAnswer, AiFailure> {
    let url = route_url(&target.base_url, request.pipeline)
        .map_err(|e| AiFailure::new(reason::CONNECT, e.to_string()))?;
    let (body, content_type) = match request.pipeline.file_field() {
        Some(field) => multipart_body(&request.fields, request.file.as_ref().map(|f| (field, f))),
        None => (
            Bytes::from(Value::Object(request.fields.clone()).to_string()),
            "application/json".to_owned(),
        ),
    };
    let mut builder = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(reqwest::Body::wrap(TimedBody::new(body, upload_done)));
    if let Some(token) = &target.bearer {
        builder = builder.bearer_auth(token);
    }
    let mut response = builder.send().await.map_err(transport_failure)?;
    progress.headers_at = Some(Instant::now());
    let status = response.status();
    progress.status = Some(status.as_u16());

    if !status.is_success() {
        // Only the start of an error body matters: read a little, never the limit.
        let body = read_prefix(&mut response, limits.max_body.min(64 << 10)).await;
        progress.body_done_at = Some(Instant::now());
        return Err(status_failure(status.as_u16(), &body));
    }

    let body = match read_bounded(&mut response, limits.max_body).await {
        Ok(body) => body,
        Err(_) => {
            return Err(AiFailure::new(
                reason::TOO_LARGE,
                format!("response body over {} bytes", limits.max_body),
            ));
        }
    };
    progress.body_done_at = Some(Instant::now());
    let response = parse_response(request.pipeline, &body)?;
    let mut media = Vec::new();
    for url in response.media_urls() {
        media.push(fetch_media(http, &target.base_url, url, limits).await?);
    }
    Ok(AiAnswer {
        response,
        media,
        body_bytes: body.len() as u64,
    })
}

/// Reads a body up to `max` bytes, aborting as soon as it goes over: the error carries `None`
/// for over the limit, or what was read for a transport error (useful for error bodies).
async fn read_bounded(
    response: &mut reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, Option<Vec<u8>>> {
    if response.content_length().is_some_and(|len| len > max) {
        return Err(None);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(Some(body)),
        }
    }
}

/// Reads at most `max` bytes of a body and drops the rest: for error bodies, whose start is all
/// that is kept.
async fn read_prefix(response: &mut reqwest::Response, max: u64) -> Vec<u8> {
    let mut body = Vec::new();
    while (body.len() as u64) < max {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = usize::try_from(max - body.len() as u64).unwrap_or(usize::MAX);
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

fn transport_failure(e: reqwest::Error) -> AiFailure {
    let code = if e.is_timeout() {
        reason::TIMEOUT
    } else if e.is_connect() {
        reason::CONNECT
    } else {
        reason::TRANSPORT
    };
    AiFailure::new(code, crate::hls::error_chain(&e))
}

/// The first [`ERROR_BODY_KEPT`] bytes, lossily UTF-8.
pub fn body_snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_KEPT)]).into_owned()
}

/// An error status, with the document's error message when the body has one.
fn status_failure(status: u16, body: &[u8]) -> AiFailure {
    let message = if let Ok(e) = serde_json::from_slice::<HTTPError>(body) {
        e.detail.msg
    } else if let Ok(HTTPValidationError {
        detail: Some(errors),
    }) = serde_json::from_slice::<HTTPValidationError>(body)
    {
        errors
            .iter()
            .map(|e| format!("{}: {}", Value::Array(e.loc.clone()), e.msg))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        body_snippet(body)
    };
    AiFailure {
        reason: reason::HTTP_STATUS,
        message: format!("HTTP {status}: {message}"),
        body: Some(body_snippet(body)),
    }
}

/// Parses a 2xx body as the route's response: `not_json` if it is no JSON, `schema` if it is
/// JSON of another shape.
pub fn parse_response(pipeline: Pipeline, body: &[u8]) -> Result<AiResponse, AiFailure> {
    let value: Value = serde_json::from_slice(body).map_err(|e| AiFailure {
        reason: reason::NOT_JSON,
        message: format!("2xx body is not JSON: {e}"),
        body: Some(body_snippet(body)),
    })?;
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(value)
    }
    let parsed = match pipeline {
        Pipeline::TextToImage | Pipeline::ImageToImage | Pipeline::Upscale => {
            typed(value).map(AiResponse::Images)
        }
        Pipeline::ImageToVideo => typed(value).map(AiResponse::Video),
        Pipeline::AudioToText => typed(value).map(AiResponse::Text),
        Pipeline::ImageToText => typed(value).map(AiResponse::ImageText),
        Pipeline::Llm => typed(value).map(AiResponse::Llm),
        Pipeline::TextToSpeech => typed(value).map(AiResponse::Audio),
        Pipeline::SegmentAnything2 => typed(value).map(AiResponse::Masks),
        Pipeline::LiveVideoToVideo => typed(value).map(AiResponse::Live),
    };
    parsed.map_err(|e| AiFailure {
        reason: reason::SCHEMA,
        message: format!("not a {}: {e}", pipeline.schemas().1),
        body: Some(body_snippet(body)),
    })
}

/// The bytes of one media URL: a `data:` URL decoded, an http(s) one fetched (relative ones
/// against the target), each within `limits.max_media`.
pub async fn fetch_media(
    http: &reqwest::Client,
    base: &Url,
    url: &str,
    limits: &AiLimits,
) -> Result<Bytes, AiFailure> {
    if let Some(rest) = url.strip_prefix("data:") {
        return decode_data_url(rest, limits.max_media);
    }
    let resolved = base.join(url).map_err(|e| {
        AiFailure::new(
            reason::MEDIA_FETCH,
            format!("bad media URL {}: {e}", clip(url)),
        )
    })?;
    if !matches!(resolved.scheme(), "http" | "https") {
        return Err(AiFailure::new(
            reason::MEDIA_FETCH,
            format!("media URL scheme {} is not http(s)", resolved.scheme()),
        ));
    }
    let mut response = http.get(resolved.clone()).send().await.map_err(|e| {
        let f = transport_failure(e);
        let code = if f.reason == reason::TIMEOUT {
            reason::TIMEOUT
        } else {
            reason::MEDIA_FETCH
        };
        AiFailure::new(code, format!("GET {resolved}: {}", f.message))
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = read_prefix(&mut response, 4096).await;
        return Err(AiFailure {
            reason: reason::MEDIA_FETCH,
            message: format!("GET {resolved}: HTTP {}", status.as_u16()),
            body: Some(body_snippet(&body)),
        });
    }
    match read_bounded(&mut response, limits.max_media).await {
        Ok(body) => Ok(Bytes::from(body)),
        Err(None) => Err(AiFailure::new(
            reason::TOO_LARGE,
            format!("media {resolved} over {} bytes", limits.max_media),
        )),
        Err(Some(_)) => Err(AiFailure::new(
            reason::MEDIA_FETCH,
            format!("GET {resolved}: the body broke off"),
        )),
    }
}

/// Decodes the part after `data:`; the size is checked on the encoded length first, so an
/// oversized URL is never decoded.
pub fn decode_data_url(rest: &str, max: u64) -> Result<Bytes, AiFailure> {
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(AiFailure::new(
            reason::MEDIA_DECODE,
            "data: URL without a comma",
        ));
    };
    let decoded_len = if meta.ends_with(";base64") {
        data.len() as u64 / 4 * 3
    } else {
        data.len() as u64
    };
    if decoded_len > max {
        return Err(AiFailure::new(
            reason::TOO_LARGE,
            format!("data: URL of ~{decoded_len} bytes, over {max}"),
        ));
    }
    if meta.ends_with(";base64") {
        // Some encoders wrap lines; whitespace is not part of the data.
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map(Bytes::from)
            .map_err(|e| AiFailure::new(reason::MEDIA_DECODE, format!("bad base64: {e}")))
    } else {
        Ok(Bytes::copy_from_slice(data.as_bytes()))
    }
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_the_base_path() {
        let base = Url::parse("https://gw.example/api/generate").expect("url");
        let url = route_url(&base, Pipeline::Llm).expect("route");
        assert_eq!(url.as_str(), "https://gw.example/api/generate/llm");
        let base = Url::parse("http://127.0.0.1:8000/").expect("url");
        let url = route_url(&base, Pipeline::TextToImage).expect("route");
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/text-to-image");
    }

    #[test]
    fn multipart_has_fields_and_file() {
        let mut fields = Map::new();
        fields.insert("prompt".into(), Value::from("a cat"));
        fields.insert("seed".into(), Value::from(42));
        fields.insert("safety_check".into(), Value::from(false));
        let png = Bytes::from_static(b"\x89PNG");
        let (body, ct) = multipart_body(&fields, Some(("image", &png)));
        let boundary = ct
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"prompt\"\r\n\r\na cat\r\n"));
        assert!(text.contains("name=\"seed\"\r\n\r\n42\r\n"));
        assert!(text.contains("name=\"safety_check\"\r\n\r\nfalse\r\n"));
        assert!(text.contains("filename=\"image.png\"\r\nContent-Type: image/png"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn data_urls_decode_within_bounds() {
        let ok = decode_data_url("image/png;base64,aGVsbG8=", 100).expect("decodes");
        assert_eq!(&ok[..], b"hello");
        let big = format!("image/png;base64,{}", "A".repeat(4000));
        assert_eq!(
            decode_data_url(&big, 100).map_err(|e| e.reason),
            Err(reason::TOO_LARGE)
        );
        assert_eq!(
            decode_data_url("image/png;base64,!!!", 100).map_err(|e| e.reason),
            Err(reason::MEDIA_DECODE)
        );
        assert_eq!(
            decode_data_url("nocomma", 100).map_err(|e| e.reason),
            Err(reason::MEDIA_DECODE)
        );
    }

    #[test]
    fn error_bodies_give_their_message() {
        let f = status_failure(500, br#"{"detail":{"msg":"CUDA out of memory"}}"#);
        assert_eq!(f.reason, reason::HTTP_STATUS);
        assert!(f.message.contains("CUDA out of memory"), "{}", f.message);
        let long = vec![b'x'; 5000];
        let f = status_failure(502, &long);
        assert_eq!(f.body.map(|b| b.len()), Some(ERROR_BODY_KEPT));
        let f = status_failure(
            422,
            br#"{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"missing"}]}"#,
        );
        assert!(f.message.contains("field required"), "{}", f.message);
    }

    #[test]
    fn bodies_are_json_of_the_right_shape() {
        assert_eq!(
            parse_response(Pipeline::TextToImage, b"<html>").map_err(|e| e.reason),
            Err(reason::NOT_JSON)
        );
        assert_eq!(
            parse_response(Pipeline::TextToImage, br#"{"text":"x"}"#).map_err(|e| e.reason),
            Err(reason::SCHEMA)
        );
        let ok = parse_response(
            Pipeline::TextToImage,
            br#"{"images":[{"url":"data:,x","seed":1,"nsfw":false}]}"#,
        )
        .expect("parses");
        assert_eq!(ok.media_urls(), vec!["data:,x"]);
    }
}
