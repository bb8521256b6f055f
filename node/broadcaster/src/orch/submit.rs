//! Sending one segment to one orchestrator: `POST /segment`, the transcode result, the downloads.
//!
//! Timing follows go-livepeer so our numbers compare with its: the upload phase ends when O
//! answers 200 (O flushes before transcoding) and must finish within `max(2 s, 0.5 × duration)`;
//! the whole exchange, downloads included, within `max(8 s, 4 × duration)`. Each failure is a
//! [`SubmitError`] with a stable `kind()` that records and metrics aggregate on.
//!
//! O writes the rendition URLs, and off-chain nothing signs what they return, yet the broadcaster
//! serves it. So a rendition is fetched only from O's own host and port (the configured URI or
//! the `transcoder` O advertises, where the segment went) or a host in
//! `rendition_fetch.allowed_hosts`; a redirect is followed (at most [`MAX_REDIRECTS`]) only when
//! its target passes the same check, so O cannot point B at loopback or private services; and
//! reading stops at the rendition cap (a factor of the source segment's size plus an allowance)
//! and at [`RESULT_CAP`] for the result itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use protocol::headers;
use protocol::net;
use protocol::sig::{self, NodeKey, SigPolicy};
use protocol::ticket::{ParamsRejection, SenderError};
use reference_transcoder::ladder::Profile;

use super::payment::{CreditKey, Payer, PaymentError, estimated_pixels};
use super::{OrchestratorPool, Session};
use crate::config::AllowedHost;
use crate::segmenter::SourceSegment;

/// Why a segment attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Tickets could not be made for this orchestrator (B's view is stale: params about to
    /// expire, nonces used up).
    #[error("payment: {0}")]
    Payment(String),
    /// The orchestrator's ticket params break B's rules (e.g. an EV so small that a segment would
    /// take more than `payment.max_tickets_per_segment` tickets): nothing was signed or sent.
    #[error("unusable ticket params: {0}")]
    TicketParams(String),
    /// The segment could not be signed.
    #[error("segment signature: {0}")]
    Sign(String),
    /// No 200 within the upload timeout.
    #[error("upload not acknowledged within {0:?}")]
    UploadTimeout(Duration),
    /// No complete result within the total timeout.
    #[error("no complete result within {0:?}")]
    Timeout(Duration),
    /// Connection-level failure.
    #[error("connection: {0}")]
    Connection(String),
    /// O answered with an error status.
    #[error("HTTP {status}: {body}")]
    HttpStatus {
        /// Status code.
        status: u16,
        /// First bytes of the body.
        body: String,
    },
    /// The body is not a TranscodeResult.
    #[error("garbage result: {0}")]
    BadResult(String),
    /// O reported a transcoding error.
    #[error("transcode error: {0}")]
    Transcode(String),
    /// Wrong number of renditions.
    #[error("{got} renditions for a ladder of {expected}")]
    RenditionCount {
        /// Ladder size.
        expected: usize,
        /// Renditions returned.
        got: usize,
    },
    /// A rendition could not be downloaded.
    #[error("download {url}: {reason}")]
    Download {
        /// Rendition URL.
        url: String,
        /// Cause.
        reason: String,
    },
    /// TranscodeData.sig does not verify.
    #[error("transcode result signature: {0}")]
    ResultSignature(String),
}

impl SubmitError {
    /// Whether O refused B's payment (expired params, refused tickets, too little credit): B's
    /// view of the session's params or credit is stale, which a fresh session fixes.
    pub fn is_payment_refusal(&self) -> bool {
        match self {
            Self::Payment(_) => true,
            Self::HttpStatus { status: 400, body } => {
                body.contains("ticket") || body.contains("balance")
            }
            _ => false,
        }
    }

    /// Stable short name for records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Payment(_) => "payment",
            Self::TicketParams(_) => "ticket_params",
            Self::Sign(_) => "sign",
            Self::UploadTimeout(_) => "upload_timeout",
            Self::Timeout(_) => "timeout",
            Self::Connection(_) => "connection",
            Self::HttpStatus { .. } => "http_status",
            Self::BadResult(_) => "bad_result",
            Self::Transcode(_) => "transcode_error",
            Self::RenditionCount { .. } => "rendition_count",
            Self::Download { .. } => "download",
            Self::ResultSignature(_) => "result_signature",
        }
    }
}

/// Renditions returned for a segment, in ladder order.
#[derive(Debug, Clone)]
pub struct Transcoded {
    /// (profile name, MPEG-TS bytes).
    pub renditions: Vec<(String, Bytes)>,
    /// Pixels O says it produced.
    pub pixels: u64,
    /// O's refreshed info (params, price).
    pub info: Option<net::OrchestratorInfo>,
}

/// One attempt's timings and result.
#[derive(Debug)]
pub struct SubmitOutcome {
    /// Until the 200, ms.
    pub upload_ms: Option<u64>,
    /// From the 200 to the result, ms.
    pub transcode_ms: Option<u64>,
    /// Rendition downloads, ms.
    pub download_ms: Option<u64>,
    /// Tickets sent.
    pub tickets: u64,
    /// Whole round trip.
    pub round_trip: Duration,
    /// Renditions or the failure.
    pub result: Result<Transcoded, SubmitError>,
}

/// Redirects followed for one rendition, each to an allowed host.
pub const MAX_REDIRECTS: usize = 3;

/// Largest `TranscodeResult` body read: it carries URLs and O's info, never media.
pub const RESULT_CAP: u64 = 1 << 20;

/// go-livepeer's upload timeout: `max(2 s, 0.5 × duration)`.
pub fn upload_timeout(duration_ms: i64) -> Duration {
    Duration::from_millis((duration_ms.max(0) as u64 / 2).max(2000))
}

/// go-livepeer's total timeout: `max(8 s, 4 × duration)`.
pub fn total_timeout(duration_ms: i64) -> Duration {
    Duration::from_millis((duration_ms.max(0) as u64 * 4).max(8000))
}

/// One source segment of a stream, to be sent to one orchestrator session.
#[derive(Clone, Copy)]
pub struct Submission<'a> {
    pub pool: &'a OrchestratorPool,
    /// `None` sends unpaid (off-chain).
    pub payer: Option<&'a Payer>,
    pub session: &'a Session,
    pub manifest_id: &'a str,
    pub seg: &'a SourceSegment,
    pub profiles: &'a [Profile],
}

/// Submits `seg` of stream `manifest_id` to `session`.
pub async fn submit(submission: Submission<'_>) -> SubmitOutcome {
    let started = Instant::now();
    let mut outcome = SubmitOutcome {
        upload_ms: None,
        transcode_ms: None,
        download_ms: None,
        tickets: 0,
        round_trip: Duration::ZERO,
        result: Err(SubmitError::Connection("not sent".into())),
    };
    outcome.result = run(submission, &mut outcome, started).await;
    outcome.round_trip = started.elapsed();
    outcome
}

async fn run(
    submission: Submission<'_>,
    outcome: &mut SubmitOutcome,
    started: Instant,
) -> Result<Transcoded, SubmitError> {
    let Submission {
        pool,
        payer,
        session,
        manifest_id,
        seg,
        profiles,
    } = submission;
    let total = total_timeout(seg.duration_ms);
    let upload = upload_timeout(seg.duration_ms);
    let mut seg_data = net::SegData {
        manifest_id: manifest_id.as_bytes().to_vec(),
        seq: seg.seq as i64,
        hash: alloy::primitives::keccak256(&seg.data).to_vec(),
        duration: seg.duration_ms.min(i64::from(i32::MAX)) as i32,
        capabilities: Some(pool.capabilities().to_message()),
        auth_token: session.info.auth_token.clone(),
        full_profiles3: profiles
            .iter()
            .map(reference_transcoder::wire::to_wire)
            .collect(),
        ..Default::default()
    };
    seg_data.sig =
        sig::sign_segment(pool.key(), &seg_data).map_err(|e| SubmitError::Sign(e.to_string()))?;
    let payment = match (payer, &session.params) {
        (Some(payer), Some(params)) => {
            let pixels = estimated_pixels(profiles, seg.duration_ms, seg.video_frames);
            let (payment, tickets) = payer
                .pay(params, pixels, &credit_key(session, manifest_id))
                .map_err(payment_error)?;
            outcome.tickets = tickets;
            headers::encode_payment(&payment)
        }
        _ => String::new(),
    };
    let request = pool
        .http
        .post(format!("{}/segment", session.transcoder))
        .header(headers::SEGMENT_HEADER, headers::encode_segment(&seg_data))
        .header(headers::PAYMENT_HEADER, payment)
        .header("Content-Type", "video/MP2T")
        .header("Accept", "application/vnd+livepeer.uri")
        .timeout(total)
        .body(seg.data.clone());
    let response = match tokio::time::timeout(upload, request.send()).await {
        Err(_) => return Err(SubmitError::UploadTimeout(upload)),
        Ok(Err(e)) if e.is_timeout() => return Err(SubmitError::Timeout(total)),
        Ok(Err(e)) => return Err(SubmitError::Connection(error_chain(&e))),
        Ok(Ok(r)) => r,
    };
    outcome.upload_ms = Some(started.elapsed().as_millis() as u64);
    let remaining = |now: Instant| total.saturating_sub(now.duration_since(started));
    let status = response.status();
    let body =
        match tokio::time::timeout(remaining(Instant::now()), read_capped(response, RESULT_CAP))
            .await
        {
            Err(_) => return Err(SubmitError::Timeout(total)),
            Ok(Err(ReadError::Connection(e))) => return Err(SubmitError::Connection(e)),
            Ok(Err(e @ (ReadError::TooLarge { .. } | ReadError::Announced { .. }))) => {
                return Err(SubmitError::BadResult(format!("the result is {e}")));
            }
            Ok(Ok(b)) => b,
        };
    if !status.is_success() {
        return Err(SubmitError::HttpStatus {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string(),
        });
    }
    let transcoded_at = Instant::now();
    outcome.transcode_ms =
        Some((transcoded_at - started).as_millis() as u64 - outcome.upload_ms.unwrap_or(0));
    let result = net::TranscodeResult::decode(body.as_ref())
        .map_err(|e| SubmitError::BadResult(e.to_string()))?;
    let data = match result.result {
        Some(net::transcode_result::Result::Data(d)) => d,
        Some(net::transcode_result::Result::Error(e)) => return Err(SubmitError::Transcode(e)),
        None => {
            return Err(SubmitError::BadResult(
                "TranscodeResult has neither data nor error".into(),
            ));
        }
    };
    if data.segments.len() != profiles.len() {
        return Err(SubmitError::RenditionCount {
            expected: profiles.len(),
            got: data.segments.len(),
        });
    }
    let origins = Origins::of(session, &pool.rendition_fetch.allowed_hosts);
    let cap = pool.rendition_fetch.max_rendition_bytes(seg.data.len());
    let downloads = data.segments.iter().map(|s| {
        let origins = &origins;
        let http = &pool.http;
        async move {
            fetch_rendition(http, origins, &session.transcoder, &s.url, cap)
                .await
                .map_err(|(url, reason)| SubmitError::Download { url, reason })
        }
    });
    let bodies = match tokio::time::timeout(
        remaining(Instant::now()),
        futures::future::join_all(downloads),
    )
    .await
    {
        Err(_) => return Err(SubmitError::Timeout(total)),
        Ok(b) => b.into_iter().collect::<Result<Vec<Bytes>, _>>()?,
    };
    outcome.download_ms = Some(transcoded_at.elapsed().as_millis() as u64);
    if let (NodeKey::Account(_), Some(address)) = (pool.key(), session.address) {
        sig::verify_transcode_result(
            SigPolicy::OnChain,
            address,
            bodies.iter().map(|b| b.as_ref()),
            &data.sig,
        )
        .map_err(|e| SubmitError::ResultSignature(e.to_string()))?;
    }
    let pixels = data.segments.iter().map(|s| s.pixels.max(0) as u64).sum();
    if let (Some(payer), Some(params)) = (payer, &session.params) {
        payer.debit(&credit_key(session, manifest_id), &params.price, pixels);
    }
    Ok(Transcoded {
        pixels,
        renditions: profiles
            .iter()
            .map(|p| p.name.clone())
            .zip(bodies)
            .collect(),
        info: result.info,
    })
}

/// Params that expire too soon or used-up nonces are B's stale view, which a fresh session
/// fixes; params breaking any other rule are O's, and refresh to the same params: a failure of
/// that orchestrator.
fn payment_error(e: PaymentError) -> SubmitError {
    match &e {
        PaymentError::Sender(SenderError::Rejected(ParamsRejection::ExpiresTooSoon { .. })) => {
            SubmitError::Payment(e.to_string())
        }
        PaymentError::Sender(SenderError::Rejected(_) | SenderError::Ev(_)) => {
            SubmitError::TicketParams(e.to_string())
        }
        _ => SubmitError::Payment(e.to_string()),
    }
}

/// The credit one stream pays from. O keeps one balance per (sender, session), the session being
/// its auth token's, and every stream routed to O shares that token; were the streams to share
/// one credit too, a stream could send a segment without tickets on the strength of another
/// stream's payment that O has not processed yet, and be refused "Insufficient balance". Per
/// stream, each segment's credit comes from that stream's earlier segments, which O answered.
fn credit_key(session: &Session, manifest_id: &str) -> CreditKey {
    let session = match &session.info.auth_token {
        Some(token) => format!("{}#{}", session.uri, token.session_id),
        None => session.uri.to_string(),
    };
    CreditKey {
        stream: manifest_id.to_string(),
        session,
    }
}

/// The places renditions may come from: O's own origins and the configured hosts.
struct Origins<'a> {
    /// (host, port) of the configured URI and of the transcoder URL.
    own: Vec<(String, u16)>,
    extra: &'a [AllowedHost],
}

impl<'a> Origins<'a> {
    fn of(session: &Session, extra: &'a [AllowedHost]) -> Self {
        let own = [session.uri.as_str(), session.transcoder.as_str()]
            .into_iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .filter_map(|u| {
                Some((
                    u.host_str()?.to_ascii_lowercase(),
                    u.port_or_known_default()?,
                ))
            })
            .collect();
        Self { own, extra }
    }

    /// Why `url` may not be fetched, if it may not.
    fn refuse(&self, url: &reqwest::Url) -> Option<String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Some(format!("scheme {:?} is not http(s)", url.scheme()));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Some("no host".into());
        };
        let host = host.to_ascii_lowercase();
        if self.own.iter().any(|(h, p)| *h == host && *p == port)
            || self.extra.iter().any(|a| a.matches(&host, port))
        {
            return None;
        }
        let own: Vec<String> = self.own.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        Some(format!(
            "{host}:{port} is not the orchestrator's host ({}) nor in rendition_fetch.allowed_hosts",
            own.join(", ")
        ))
    }
}

/// Downloads one rendition named `raw` (absolute, or relative to `base`) from an allowed origin,
/// following redirects that stay allowed, reading at most `cap` bytes. The error carries the URL
/// that failed and why.
async fn fetch_rendition(
    http: &reqwest::Client,
    origins: &Origins<'_>,
    base: &str,
    raw: &str,
    cap: u64,
) -> Result<Bytes, (String, String)> {
    let joined = if raw.starts_with("http://") || raw.starts_with("https://") {
        raw.to_string()
    } else {
        format!("{}/{}", base, raw.trim_start_matches('/'))
    };
    let mut url = reqwest::Url::parse(&joined)
        .map_err(|e| (joined.clone(), format!("bad rendition URL: {e}")))?;
    for redirects in 0..=MAX_REDIRECTS {
        if let Some(why) = origins.refuse(&url) {
            let what = if redirects == 0 {
                "not fetched"
            } else {
                "redirect not followed"
            };
            return Err((url.to_string(), format!("{what}: {why}")));
        }
        let fail = |reason: String| (url.to_string(), reason);
        let resp = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| fail(format!("HTTP {status} without a Location")))?;
            url = url
                .join(location)
                .map_err(|e| fail(format!("HTTP {status} to a bad Location {location:?}: {e}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        return read_capped(resp, cap)
            .await
            .map_err(|e| fail(e.to_string()));
    }
    Err((
        url.to_string(),
        format!("more than {MAX_REDIRECTS} redirects"),
    ))
}

/// Why a capped body read failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The body announces more than the cap.
    #[error("larger than the {cap}-byte cap (announces {announced} bytes; none read)")]
    Announced {
        /// The cap.
        cap: u64,
        /// Its Content-Length.
        announced: u64,
    },
    /// The body grew past the cap.
    #[error("larger than the {cap}-byte cap (stopped at {read} bytes)")]
    TooLarge {
        /// The cap.
        cap: u64,
        /// Bytes received when reading stopped.
        read: u64,
    },
    /// The connection failed.
    #[error("{0}")]
    Connection(String),
}

/// Reads a body, stopping as soon as it exceeds `cap` bytes.
async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<Bytes, ReadError> {
    if let Some(announced) = resp.content_length()
        && announced > cap
    {
        return Err(ReadError::Announced { cap, announced });
    }
    let expected = resp.content_length().unwrap_or(0).min(cap);
    let mut body = bytes::BytesMut::with_capacity(expected as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Connection(error_chain(&e)))?
    {
        let read = body.len() as u64 + chunk.len() as u64;
        if read > cap {
            return Err(ReadError::TooLarge { cap, read });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
