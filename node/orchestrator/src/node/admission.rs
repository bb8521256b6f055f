//! Admission: every check a segment request passes before it is transcoded, in go-livepeer's
//! order (headers, credentials, capacity, payment, balance, then the body against its hash), each
//! failure a [`Refusal`] with its status, reason text and metric label.

use std::sync::atomic::Ordering;

use alloy::primitives::{Address, B256};
use bytes::Bytes;
use http::StatusCode;
use protocol::capabilities::CapabilitySet;
use protocol::net::{self, SegData};
use protocol::{fields, headers, sig};
use reference_transcoder::Profile;

use super::Node;
use super::sessions::{BytesHeld, SessionClaim};
use crate::faults::FaultConfig;
use crate::metrics::FailureReason;
use crate::profiles;

/// A refused request: HTTP status, reason text and the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Body text.
    pub reason: String,
    /// Failure label.
    pub label: FailureReason,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, label: FailureReason, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            label,
        }
    }
}

/// What [`Node::check_headers`] returns: the decoded segment, its sender, session and ladder,
/// and the request's hold on its session slot (given back when this is dropped unused).
#[derive(Debug)]
pub struct CheckedSegment {
    /// The decoded `Livepeer-Segment`.
    pub seg: SegData,
    /// The payment's sender (zero off-chain).
    pub sender: Address,
    /// The auth token's session id.
    pub session: String,
    /// The requested ladder.
    pub profiles: Vec<Profile>,
    /// The segment bytes this request holds in the node's and its session's budgets.
    pub bytes: BytesHeld,
    pub(super) claim: SessionClaim,
}

/// A segment that passed every check and is ready to transcode.
#[derive(Debug)]
pub struct AcceptedSegment {
    pub(super) checked: CheckedSegment,
    pub(super) body: Bytes,
    /// The fault switches as they were when the segment was accepted.
    pub(super) faults: FaultConfig,
}

impl Node {
    pub(super) fn refuse(&self, refusal: Refusal) -> Refusal {
        self.metrics.fail(refusal.label);
        refusal
    }

    /// Every check before the body is read: headers, credentials, payment, balance. Returns the
    /// decoded segment, its sender and session.
    pub async fn check_headers(
        &self,
        segment_header: Option<&str>,
        payment_header: Option<&str>,
    ) -> Result<CheckedSegment, Refusal> {
        use FailureReason as F;
        self.metrics
            .segments_received
            .fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = self.faults.snapshot().crash_after_segments
            && self.transcoded.load(Ordering::Relaxed) >= limit
        {
            tracing::error!(limit, "crash fault switch: stopping the node");
            let _ = self.crash.send(true);
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                F::Transcode,
                "crashed",
            ));
        }
        let payment = match payment_header {
            Some(value) => headers::decode_payment(value).map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::PAYMENT_REQUIRED,
                    F::BadPaymentHeader,
                    e.to_string(),
                ))
            })?,
            None => net::Payment::default(),
        };
        let sender = if payment.sender.is_empty() {
            Address::ZERO
        } else {
            fields::address("Payment.sender", &payment.sender).map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::PAYMENT_REQUIRED,
                    F::BadPaymentHeader,
                    e.to_string(),
                ))
            })?
        };
        let Some(segment_header) = segment_header else {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSegmentHeader,
                "missing Livepeer-Segment header",
            )));
        };
        let seg = headers::decode_segment(segment_header).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSegmentHeader,
                e.to_string(),
            ))
        })?;
        sig::verify_segment(self.policy, sender, &seg).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSignature,
                format!("invalid segment signature: {e}"),
            ))
        })?;
        if let Some(caps) = &seg.capabilities
            && !CapabilitySet::from(caps).compatible_with(&self.capabilities)
        {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::Capability,
                "incompatible capabilities",
            )));
        }
        let profiles = profiles::requested(&seg).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::Capability,
                e.to_string(),
            ))
        })?;
        let session = self
            .auth
            .verify(seg.auth_token.as_ref())
            .map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::FORBIDDEN,
                    F::AuthToken,
                    e.to_string(),
                ))
            })?
            .to_string();
        // Refused early when full, as go-livepeer does, so a capped node does no payment work;
        // the slot itself is taken only after payment and balance pass.
        self.check_capacity(&session)?;
        if self.payments.priced() {
            if payment.ticket_params.is_some() {
                self.payments
                    .process(&payment, &session)
                    .await
                    .map_err(|e| {
                        self.refuse(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            F::PaymentRejected,
                            e.to_string(),
                        ))
                    })?;
            }
            if !self.payments.sufficient_balance(sender, &session) {
                return Err(self.refuse(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    F::InsufficientBalance,
                    "Insufficient balance",
                )));
            }
        }
        let (claim, bytes) = self.claim_slot(&session)?;
        Ok(CheckedSegment {
            seg,
            sender,
            session,
            profiles,
            bytes,
            claim,
        })
    }

    /// Checks the body against `SegData.hash`; `body_hash` is keccak256(body), computed while the
    /// body was read.
    pub fn accept_body(
        &self,
        checked: CheckedSegment,
        body: Bytes,
        body_hash: B256,
    ) -> Result<AcceptedSegment, Refusal> {
        if body_hash.as_slice() != checked.seg.hash.as_slice() {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                FailureReason::HashMismatch,
                "segment hash mismatch",
            )));
        }
        Ok(AcceptedSegment {
            checked,
            body,
            faults: self.faults.snapshot(),
        })
    }
}
