//! Counters behind `/metrics` (Prometheus text format) and `/status`.
//!
//! Design: a handful of atomics and one small map of failure reasons, rendered by hand in the
//! Prometheus exposition format; the metric set is fixed and small, so a metrics library would
//! add more than it saves. Failure reasons are a closed list of short labels
//! ([`FailureReason`]), so label cardinality stays bounded whatever peers send.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a segment failed; the label of `lpt_orchestrator_segment_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// Undecodable `Livepeer-Payment`.
    BadPaymentHeader,
    /// Undecodable `Livepeer-Segment`.
    BadSegmentHeader,
    /// Payment refused.
    PaymentRejected,
    /// Segment signature invalid.
    BadSignature,
    /// Capabilities not offered.
    Capability,
    /// Auth token missing, forged or expired.
    AuthToken,
    /// Session limit reached.
    Capped,
    /// No transcoder available.
    Busy,
    /// Body hash differs from `SegData.hash`.
    HashMismatch,
    /// Credit below one ticket's EV.
    InsufficientBalance,
    /// Body too large or too slow.
    BadBody,
    /// Transcoding failed.
    Transcode,
    /// Dropped by the fault switch.
    FaultDrop,
    /// The node's budget of segment bytes in flight is spent (503).
    Overloaded,
    /// The session's budget of segment bytes or segments in flight is spent (429).
    SessionLimit,
}

impl FailureReason {
    /// Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadPaymentHeader => "bad_payment_header",
            Self::BadSegmentHeader => "bad_segment_header",
            Self::PaymentRejected => "payment_rejected",
            Self::BadSignature => "bad_signature",
            Self::Capability => "capability",
            Self::AuthToken => "auth_token",
            Self::Capped => "capped",
            Self::Busy => "busy",
            Self::HashMismatch => "hash_mismatch",
            Self::InsufficientBalance => "insufficient_balance",
            Self::BadBody => "bad_body",
            Self::Transcode => "transcode",
            Self::FaultDrop => "fault_drop",
            Self::Overloaded => "overloaded",
            Self::SessionLimit => "session_limit",
        }
    }
}

/// Redemption gauges for [`Metrics::render`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RedemptionGauges {
    /// Winners in the queue.
    pub pending: u64,
    /// Redemptions mined, not yet confirmed.
    pub unconfirmed: u64,
}

/// The orchestrator's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Segments received (any outcome).
    pub segments_received: AtomicU64,
    /// Segments transcoded and answered with renditions.
    pub segments_transcoded: AtomicU64,
    /// Transcode wall time, microseconds.
    pub transcode_micros: AtomicU64,
    /// Output pixels billed.
    pub pixels_billed: AtomicU64,
    /// Tickets received (accepted or not).
    pub tickets_received: AtomicU64,
    /// Tickets accepted.
    pub tickets_accepted: AtomicU64,
    /// Accepted tickets that won.
    pub tickets_won: AtomicU64,
    /// Redemptions mined (one a reorg dropped and that was redeemed again counts twice).
    pub tickets_redeemed: AtomicU64,
    /// Redemption attempts the chain refused (a revert, a failed transaction, an error answer).
    pub redemption_failures: AtomicU64,
    /// Redemption tries that could not reach the chain (they spend no attempt).
    pub redemption_unreachable: AtomicU64,
    /// Redemptions a reorg dropped (the ticket went back in the queue).
    pub tickets_reorged: AtomicU64,
    /// Winning tickets given up (attempts spent, or too old to redeem).
    pub redemptions_failed: AtomicU64,
    /// Connections open now (TLS handshakes included).
    pub connections_open: AtomicU64,
    /// Connections closed at accept because `limits.max_connections` were open.
    pub connections_refused: AtomicU64,
    failures: Mutex<BTreeMap<FailureReason, u64>>,
}

impl Metrics {
    /// Counts one failure.
    pub fn fail(&self, reason: FailureReason) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Failures by reason.
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(r, n)| (r.label(), *n))
            .collect()
    }

    /// Prometheus text exposition; `balance_wei` is the total credit held for senders,
    /// `inflight_bytes` the segment bytes held now, `redemptions` the winners waiting in the
    /// queue and mined but unconfirmed.
    pub fn render(
        &self,
        balance_wei: f64,
        sessions: usize,
        transcoders: usize,
        inflight_bytes: usize,
        redemptions: RedemptionGauges,
    ) -> String {
        let mut out = String::with_capacity(2048);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "lpt_orchestrator_segments_total",
            "Segments received.",
            load(&self.segments_received),
        );
        counter(
            "lpt_orchestrator_segments_transcoded_total",
            "Segments answered with renditions.",
            load(&self.segments_transcoded),
        );
        counter(
            "lpt_orchestrator_pixels_billed_total",
            "Output pixels billed.",
            load(&self.pixels_billed),
        );
        counter(
            "lpt_orchestrator_tickets_received_total",
            "Tickets received.",
            load(&self.tickets_received),
        );
        counter(
            "lpt_orchestrator_tickets_accepted_total",
            "Tickets accepted.",
            load(&self.tickets_accepted),
        );
        counter(
            "lpt_orchestrator_tickets_won_total",
            "Accepted tickets that won.",
            load(&self.tickets_won),
        );
        counter(
            "lpt_orchestrator_tickets_redeemed_total",
            "Redemptions of winning tickets mined (a redemption a reorg dropped and redeemed again counts twice).",
            load(&self.tickets_redeemed),
        );
        counter(
            "lpt_orchestrator_redemption_failures_total",
            "Redemption attempts the chain refused.",
            load(&self.redemption_failures),
        );
        counter(
            "lpt_orchestrator_redemption_unreachable_total",
            "Redemption tries that could not reach the chain (no attempt spent).",
            load(&self.redemption_unreachable),
        );
        counter(
            "lpt_orchestrator_tickets_reorged_total",
            "Redemptions a reorg dropped; the ticket was queued again.",
            load(&self.tickets_reorged),
        );
        counter(
            "lpt_orchestrator_redemptions_failed_total",
            "Winning tickets given up.",
            load(&self.redemptions_failed),
        );
        counter(
            "lpt_orchestrator_connections_refused_total",
            "Connections closed at accept because limits.max_connections were open.",
            load(&self.connections_refused),
        );
        let _ = writeln!(
            out,
            "# HELP lpt_orchestrator_transcode_seconds Transcode wall time.\n\
             # TYPE lpt_orchestrator_transcode_seconds summary\n\
             lpt_orchestrator_transcode_seconds_sum {}\n\
             lpt_orchestrator_transcode_seconds_count {}",
            load(&self.transcode_micros) as f64 / 1e6,
            load(&self.segments_transcoded)
        );
        let _ = writeln!(
            out,
            "# HELP lpt_orchestrator_segment_failures_total Segments refused or failed, by reason.\n\
             # TYPE lpt_orchestrator_segment_failures_total counter"
        );
        for (reason, n) in self.failures() {
            let _ = writeln!(
                out,
                "lpt_orchestrator_segment_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lpt_orchestrator_balance_wei Credit held for senders.\n\
             # TYPE lpt_orchestrator_balance_wei gauge\nlpt_orchestrator_balance_wei {balance_wei}\n\
             # HELP lpt_orchestrator_sessions Open sessions.\n\
             # TYPE lpt_orchestrator_sessions gauge\nlpt_orchestrator_sessions {sessions}\n\
             # HELP lpt_orchestrator_transcoders Attached remote transcoders.\n\
             # TYPE lpt_orchestrator_transcoders gauge\nlpt_orchestrator_transcoders {transcoders}\n\
             # HELP lpt_orchestrator_connections Open connections.\n\
             # TYPE lpt_orchestrator_connections gauge\nlpt_orchestrator_connections {}\n\
             # HELP lpt_orchestrator_inflight_bytes Segment bytes held (received, queued, transcoding).\n\
             # TYPE lpt_orchestrator_inflight_bytes gauge\nlpt_orchestrator_inflight_bytes {inflight_bytes}\n\
             # HELP lpt_orchestrator_redemptions_pending Winning tickets waiting in the redemption queue.\n\
             # TYPE lpt_orchestrator_redemptions_pending gauge\nlpt_orchestrator_redemptions_pending {}\n\
             # HELP lpt_orchestrator_redemptions_unconfirmed Redemptions mined but not yet payments.confirmations deep.\n\
             # TYPE lpt_orchestrator_redemptions_unconfirmed gauge\nlpt_orchestrator_redemptions_unconfirmed {}",
            load(&self.connections_open),
            redemptions.pending,
            redemptions.unconfirmed,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_failure_labels() {
        let m = Metrics::default();
        m.segments_received.fetch_add(3, Ordering::Relaxed);
        m.fail(FailureReason::HashMismatch);
        m.fail(FailureReason::HashMismatch);
        m.connections_refused.fetch_add(4, Ordering::Relaxed);
        m.tickets_reorged.fetch_add(2, Ordering::Relaxed);
        let gauges = RedemptionGauges {
            pending: 3,
            unconfirmed: 5,
        };
        let text = m.render(12.5, 1, 0, 77, gauges);
        assert!(text.contains("lpt_orchestrator_segments_total 3\n"));
        assert!(
            text.contains("lpt_orchestrator_segment_failures_total{reason=\"hash_mismatch\"} 2\n")
        );
        assert!(text.contains("lpt_orchestrator_balance_wei 12.5\n"));
        assert!(text.contains("lpt_orchestrator_connections_refused_total 4\n"));
        assert!(text.contains("lpt_orchestrator_inflight_bytes 77\n"));
        assert!(text.contains("lpt_orchestrator_tickets_reorged_total 2\n"));
        assert!(text.contains("lpt_orchestrator_redemption_unreachable_total 0\n"));
        assert!(text.contains("lpt_orchestrator_redemptions_pending 3\n"));
        assert!(text.contains("lpt_orchestrator_redemptions_unconfirmed 5"));
    }
}
