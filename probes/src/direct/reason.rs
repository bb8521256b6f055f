//! Why a direct-to-orchestrator segment failed: a closed set of reasons, each with a stable
//! snake_case code (what summaries count and leaderboard records carry in `errors`) and a human
//! message that names the offending thing (O's own words, both prices, the broken rule).
//!
//! Design: the mapping from a client error to a reason lives here, next to the reasons, so the
//! probe's control flow never inspects error texts. The one place texts are read is O's refusal
//! body, because `OrchestratorBusy`/`OrchestratorCapped` arrive only as text (PROTOCOL.md §1).

use std::fmt;

use protocol::client::{ClientError, ConnectStage};
use serde::{Deserialize, Serialize};

/// Every reason code, in the order of [`FailureReason`]'s variants.
pub const FAILURE_CODES: &[&str] = &[
    "unreachable",
    "discovery_refused",
    "price_above_cap",
    "no_ticket_params",
    "invalid_ticket_params",
    "capacity",
    "upload_timeout",
    "upload_failed",
    "segment_rejected",
    "transcode_timeout",
    "transcode_error",
    "bad_response",
    "download_failed",
    "wrong_output",
    "payment_rejected",
];

/// Why a segment (or the whole test) failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum FailureReason {
    /// DNS, TCP, TLS or the gRPC service could not be reached (`stage` says which).
    Unreachable { stage: String, detail: String },
    /// `GetOrchestrator` answered with an error status.
    DiscoveryRefused { message: String },
    /// O's price is above the test's cap (wei per pixel).
    PriceAboveCap {
        price_wei_per_pixel: f64,
        cap_wei_per_pixel: f64,
        price_per_unit: i64,
        pixels_per_unit: i64,
    },
    /// O charges but sent no ticket params.
    NoTicketParams,
    /// O's ticket params break a rule (parse or broadcaster acceptance rule).
    InvalidTicketParams { rule: String },
    /// O refused for capacity (`OrchestratorBusy` / `OrchestratorCapped`).
    Capacity { message: String },
    /// The 200 did not come within the upload deadline.
    UploadTimeout { after_ms: u64 },
    /// The upload failed on the wire (connection reset, closed).
    UploadFailed { detail: String },
    /// O refused the segment (signature, token, capability or hash; HTTP 403 and others).
    SegmentRejected { status: u16, message: String },
    /// The transcode result did not come within the total deadline.
    TranscodeTimeout { after_ms: u64 },
    /// O reported a transcode error, answered 5xx, or cut the connection before the result.
    TranscodeError { message: String },
    /// O's reply is not the expected protobuf or is over the size cap.
    BadResponse { detail: String },
    /// A rendition could not be downloaded (HTTP error, timeout, bad URL, over the cap).
    DownloadFailed { rendition: String, detail: String },
    /// A rendition's resolution, frames, codec or stamps are wrong.
    WrongOutput { rendition: String, detail: String },
    /// O refused the payment (HTTP 400/402, insufficient balance) with its reason.
    PaymentRejected { status: u16, message: String },
}

impl FailureReason {
    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::DiscoveryRefused { .. } => "discovery_refused",
            Self::PriceAboveCap { .. } => "price_above_cap",
            Self::NoTicketParams => "no_ticket_params",
            Self::InvalidTicketParams { .. } => "invalid_ticket_params",
            Self::Capacity { .. } => "capacity",
            Self::UploadTimeout { .. } => "upload_timeout",
            Self::UploadFailed { .. } => "upload_failed",
            Self::SegmentRejected { .. } => "segment_rejected",
            Self::TranscodeTimeout { .. } => "transcode_timeout",
            Self::TranscodeError { .. } => "transcode_error",
            Self::BadResponse { .. } => "bad_response",
            Self::DownloadFailed { .. } => "download_failed",
            Self::WrongOutput { .. } => "wrong_output",
            Self::PaymentRejected { .. } => "payment_rejected",
        }
    }

    /// The human message.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The reason for a failed `GetOrchestrator`.
    pub fn from_discovery(err: &ClientError) -> Self {
        match err {
            ClientError::Unreachable { stage, reason, .. } => Self::Unreachable {
                stage: stage.as_str().into(),
                detail: reason.clone(),
            },
            ClientError::Grpc { status, .. } => {
                let message = status.message().to_string();
                if mentions_capacity(&message) {
                    Self::Capacity { message }
                } else if status.code() == tonic::Code::Unavailable {
                    Self::Unreachable {
                        stage: "grpc".into(),
                        detail: status.to_string(),
                    }
                } else {
                    Self::DiscoveryRefused {
                        message: format!("{:?}: {message}", status.code()),
                    }
                }
            }
            ClientError::Timeout { after, .. } => Self::Unreachable {
                stage: "grpc".into(),
                detail: format!("no GetOrchestrator answer within {after:?}"),
            },
            ClientError::Transport { reason, .. } => Self::Unreachable {
                stage: "grpc".into(),
                detail: reason.clone(),
            },
            ClientError::Decode { .. } | ClientError::TooLarge { .. } => Self::BadResponse {
                detail: err.to_string(),
            },
            other => Self::DiscoveryRefused {
                message: other.to_string(),
            },
        }
    }

    /// The reason for a failed `POST /segment`.
    pub fn from_submit(err: &ClientError) -> Self {
        match err {
            ClientError::Rejected { status, reason } => {
                if mentions_capacity(reason) {
                    Self::Capacity {
                        message: reason.clone(),
                    }
                } else if matches!(status, 400 | 402) {
                    Self::PaymentRejected {
                        status: *status,
                        message: reason.clone(),
                    }
                } else if *status >= 500 {
                    Self::TranscodeError {
                        message: format!("HTTP {status}: {reason}"),
                    }
                } else {
                    Self::SegmentRejected {
                        status: *status,
                        message: reason.clone(),
                    }
                }
            }
            ClientError::Timeout { stage, after } if *stage == "upload" => Self::UploadTimeout {
                after_ms: after.as_millis() as u64,
            },
            ClientError::Timeout { after, .. } => Self::TranscodeTimeout {
                after_ms: after.as_millis() as u64,
            },
            ClientError::Transport { stage, reason } if *stage == "upload" => Self::UploadFailed {
                detail: reason.clone(),
            },
            ClientError::Transport { reason, .. } => Self::TranscodeError {
                message: format!("connection lost before the result: {reason}"),
            },
            ClientError::Transcode(message) => Self::TranscodeError {
                message: message.clone(),
            },
            ClientError::Unreachable { stage, reason, .. } => Self::Unreachable {
                stage: stage.as_str().into(),
                detail: reason.clone(),
            },
            ClientError::Decode { .. } | ClientError::TooLarge { .. } => Self::BadResponse {
                detail: err.to_string(),
            },
            other => Self::UploadFailed {
                detail: other.to_string(),
            },
        }
    }

    /// The reason for a failed rendition download.
    pub fn from_download(rendition: &str, err: &ClientError) -> Self {
        Self::DownloadFailed {
            rendition: rendition.to_string(),
            detail: err.to_string(),
        }
    }

    /// An unreachable orchestrator at `stage`.
    pub fn unreachable(stage: ConnectStage, detail: String) -> Self {
        Self::Unreachable {
            stage: stage.as_str().into(),
            detail,
        }
    }
}

fn mentions_capacity(text: &str) -> bool {
    text.contains("OrchestratorBusy") || text.contains("OrchestratorCapped")
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { stage, detail } => {
                write!(f, "unreachable ({stage}): {detail}")
            }
            Self::DiscoveryRefused { message } => write!(f, "discovery refused: {message}"),
            Self::PriceAboveCap {
                price_wei_per_pixel,
                cap_wei_per_pixel,
                price_per_unit,
                pixels_per_unit,
            } => write!(
                f,
                "price {price_wei_per_pixel} wei/pixel ({price_per_unit} wei per {pixels_per_unit} pixels) is above the cap {cap_wei_per_pixel} wei/pixel"
            ),
            Self::NoTicketParams => {
                write!(f, "the orchestrator charges but sent no ticket params")
            }
            Self::InvalidTicketParams { rule } => write!(f, "invalid ticket params: {rule}"),
            Self::Capacity { message } => write!(f, "no capacity: {message}"),
            Self::UploadTimeout { after_ms } => {
                write!(f, "upload not accepted within {after_ms} ms")
            }
            Self::UploadFailed { detail } => write!(f, "upload failed: {detail}"),
            Self::SegmentRejected { status, message } => {
                write!(f, "segment rejected with HTTP {status}: {message}")
            }
            Self::TranscodeTimeout { after_ms } => {
                write!(f, "no transcode result within {after_ms} ms")
            }
            Self::TranscodeError { message } => write!(f, "transcode error: {message}"),
            Self::BadResponse { detail } => write!(f, "bad response: {detail}"),
            Self::DownloadFailed { rendition, detail } => {
                write!(f, "download of {rendition} failed: {detail}")
            }
            Self::WrongOutput { rendition, detail } => {
                write!(f, "wrong output in {rendition}: {detail}")
            }
            Self::PaymentRejected { status, message } => {
                write!(f, "payment rejected with HTTP {status}: {message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_listed_in_order() {
        let samples = [
            FailureReason::Unreachable {
                stage: "tcp".into(),
                detail: String::new(),
            },
            FailureReason::DiscoveryRefused {
                message: String::new(),
            },
            FailureReason::PriceAboveCap {
                price_wei_per_pixel: 2.0,
                cap_wei_per_pixel: 1.0,
                price_per_unit: 2,
                pixels_per_unit: 1,
            },
            FailureReason::NoTicketParams,
            FailureReason::InvalidTicketParams {
                rule: String::new(),
            },
            FailureReason::Capacity {
                message: String::new(),
            },
            FailureReason::UploadTimeout { after_ms: 1 },
            FailureReason::UploadFailed {
                detail: String::new(),
            },
            FailureReason::SegmentRejected {
                status: 403,
                message: String::new(),
            },
            FailureReason::TranscodeTimeout { after_ms: 1 },
            FailureReason::TranscodeError {
                message: String::new(),
            },
            FailureReason::BadResponse {
                detail: String::new(),
            },
            FailureReason::DownloadFailed {
                rendition: String::new(),
                detail: String::new(),
            },
            FailureReason::WrongOutput {
                rendition: String::new(),
                detail: String::new(),
            },
            FailureReason::PaymentRejected {
                status: 400,
                message: String::new(),
            },
        ];
        let codes: Vec<_> = samples.iter().map(FailureReason::code).collect();
        assert_eq!(codes, FAILURE_CODES);
        for reason in &samples {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json["code"], reason.code());
        }
    }

    #[test]
    fn refusals_map_to_their_reasons() {
        let rejected = |status, reason: &str| ClientError::Rejected {
            status,
            reason: reason.into(),
        };
        assert_eq!(
            FailureReason::from_submit(&rejected(403, "OrchestratorCapped")).code(),
            "capacity"
        );
        assert_eq!(
            FailureReason::from_submit(&rejected(400, "Insufficient balance")),
            FailureReason::PaymentRejected {
                status: 400,
                message: "Insufficient balance".into()
            }
        );
        assert_eq!(
            FailureReason::from_submit(&rejected(403, "invalid segment signature")).code(),
            "segment_rejected"
        );
        assert_eq!(
            FailureReason::from_submit(&rejected(500, "boom")).code(),
            "transcode_error"
        );
        let timeout = ClientError::Timeout {
            stage: "upload",
            after: std::time::Duration::from_secs(2),
        };
        assert_eq!(
            FailureReason::from_submit(&timeout),
            FailureReason::UploadTimeout { after_ms: 2000 }
        );
        let price = FailureReason::PriceAboveCap {
            price_wei_per_pixel: 5.0,
            cap_wei_per_pixel: 0.5,
            price_per_unit: 5,
            pixels_per_unit: 1,
        };
        let text = price.message();
        assert!(
            text.contains("5 wei/pixel") && text.contains("cap 0.5 wei/pixel"),
            "{text}"
        );
    }
}
