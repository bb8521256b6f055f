//! Sending one segment to one orchestrator: `POST /segment`, the transcode result, the downloads.
//!
//! Timing follows go-livepeer so our numbers compare with its: the upload phase ends when O
//! answers 200 (O flushes before transcoding) and must finish within `max(2 s, 0.5 × duration)`;
//! the whole exchange, downloads included, within `max(8 s, 4 × duration)`. Each failure is a
//! [`SubmitError`] with a stable `kind()` that records and metrics aggregate on.

use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use protocol::headers;
use protocol::net;
use protocol::sig::{self, NodeKey, SigPolicy};
use reference_transcoder::ladder::Profile;

use super::payment::{Payer, estimated_pixels};
use super::{OrchestratorPool, Session};
use crate::segmenter::SourceSegment;

/// Why a segment attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Tickets could not be made for this orchestrator.
    #[error("payment: {0}")]
    Payment(String),
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

/// go-livepeer's upload timeout: `max(2 s, 0.5 × duration)`.
pub fn upload_timeout(duration_ms: i64) -> Duration {
    Duration::from_millis((duration_ms.max(0) as u64 / 2).max(2000))
}

/// go-livepeer's total timeout: `max(8 s, 4 × duration)`.
pub fn total_timeout(duration_ms: i64) -> Duration {
    Duration::from_millis((duration_ms.max(0) as u64 * 4).max(8000))
}

/// Submits `seg` of stream `manifest_id` to `session`.
pub async fn submit(
    pool: &OrchestratorPool,
    payer: Option<&Payer>,
    session: &Session,
    manifest_id: &str,
    seg: &SourceSegment,
    profiles: &[Profile],
) -> SubmitOutcome {
    let started = Instant::now();
    let mut outcome = SubmitOutcome {
        upload_ms: None,
        transcode_ms: None,
        download_ms: None,
        tickets: 0,
        round_trip: Duration::ZERO,
        result: Err(SubmitError::Connection("not sent".into())),
    };
    outcome.result = run(
        pool,
        payer,
        session,
        manifest_id,
        seg,
        profiles,
        &mut outcome,
        started,
    )
    .await;
    outcome.round_trip = started.elapsed();
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn run(
    pool: &OrchestratorPool,
    payer: Option<&Payer>,
    session: &Session,
    manifest_id: &str,
    seg: &SourceSegment,
    profiles: &[Profile],
    outcome: &mut SubmitOutcome,
    started: Instant,
) -> Result<Transcoded, SubmitError> {
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
                .pay(params, pixels, &session_key(session))
                .map_err(|e| SubmitError::Payment(e.to_string()))?;
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
    let body = match tokio::time::timeout(remaining(Instant::now()), response.bytes()).await {
        Err(_) => return Err(SubmitError::Timeout(total)),
        Ok(Err(e)) => return Err(SubmitError::Connection(error_chain(&e))),
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
    let downloads = data.segments.iter().map(|s| {
        let url = absolute(&session.transcoder, &s.url);
        let http = pool.http.clone();
        async move {
            let fail = |reason: String| SubmitError::Download {
                url: url.clone(),
                reason,
            };
            let resp = http
                .get(&url)
                .send()
                .await
                .map_err(|e| fail(error_chain(&e)))?;
            if !resp.status().is_success() {
                return Err(fail(format!("HTTP {}", resp.status())));
            }
            resp.bytes().await.map_err(|e| fail(error_chain(&e)))
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
        payer.debit(&session_key(session), &params.price, pixels);
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

/// O keeps a balance per (sender, session), the session being its auth token's.
fn session_key(session: &Session) -> String {
    match &session.info.auth_token {
        Some(token) => format!("{}#{}", session.uri, token.session_id),
        None => session.uri.clone(),
    }
}

fn absolute(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("{}/{}", base, url.trim_start_matches('/'))
    }
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
