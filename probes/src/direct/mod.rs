//! The direct-to-orchestrator test: the tester acts as a broadcaster itself and tests ONE
//! orchestrator from outside, the way the community leaderboard does, explaining every failure.
//!
//! Design: a test is discovery (signed `GetOrchestrator`), a price check against an optional cap,
//! then the stamped source's segments sent on a real-time schedule (segment n leaves at start +
//! the durations before it, each in its own task as a go-livepeer broadcaster sends them, so a
//! slow orchestrator never delays the schedule; the lag behind it is recorded), paid with tickets
//! when the orchestrator charges and a sender is configured, every rendition downloaded, decoded
//! and checked ([`crate::checks::SegmentChecker`]: resolution, codec, frames, stamps of this
//! stream), optionally sampled for VMAF ([`crate::quality`]). Every outcome is a
//! [`DirectSegmentObservation`] reported to the [`DirectObserver`] as it happens; a test that
//! cannot start (unreachable, refused, price above cap, unusable ticket params) still reports one
//! failed record per planned segment with that [`FailureReason`], so a zero success rate always
//! comes with a reason. The wire client is `protocol::client`: probes never link the node stack.

mod reason;
mod run;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use bytes::Bytes;
use protocol::client::ClientLimits;
use protocol::net::VideoProfile;
use protocol::ticket::SenderLimits;
use reference_transcoder::{EncodedSource, Profile};
use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;
use crate::observe::CheckObservation;
use crate::observe::QualityObservation;

pub use reason::{FAILURE_CODES, FailureReason};
pub use run::{run_direct_test, run_direct_tests};

/// One segment of the source as a broadcaster would send it.
#[derive(Debug, Clone)]
pub struct DirectSegment {
    /// Stand-alone MPEG-TS bytes.
    pub data: Bytes,
    /// Media duration (the real-time schedule advances by it).
    pub duration: Duration,
}

/// The pre-encoded stamped source, cut into segments, shared by every test of a run.
#[derive(Debug, Clone)]
pub struct DirectSource {
    /// Stream id drawn in the frame stamps (renditions must carry it).
    pub stream_id: u32,
    /// The segments, sent in order (and again from the start when a test outlasts them).
    pub segments: Vec<DirectSegment>,
}

impl DirectSource {
    /// Validates the segments: at least one, each non-empty with a duration of 1 ms to 60 s.
    pub fn new(stream_id: u32, segments: Vec<DirectSegment>) -> Result<Self, DirectTestError> {
        if segments.is_empty() {
            return Err(DirectTestError::Source("no segments".into()));
        }
        for (i, s) in segments.iter().enumerate() {
            if s.data.is_empty() {
                return Err(DirectTestError::Source(format!("segment {i} is empty")));
            }
            if s.duration < Duration::from_millis(1) || s.duration > Duration::from_secs(60) {
                return Err(DirectTestError::Source(format!(
                    "segment {i} lasts {:?}, outside 1 ms..=60 s",
                    s.duration
                )));
            }
        }
        Ok(Self {
            stream_id,
            segments,
        })
    }

    /// The encoded source cut at key frames about every `target_secs` (use the source's GOP,
    /// 2 s for go-livepeer-like segments).
    pub fn from_encoded(source: &EncodedSource, target_secs: f64) -> Result<Self, DirectTestError> {
        let segments = source
            .ts_segments(target_secs)
            .map_err(|e| DirectTestError::Source(e.to_string()))?
            .into_iter()
            .map(|s| DirectSegment {
                data: Bytes::from(s.data),
                duration: Duration::from_secs_f64(s.duration_secs.max(0.001)),
            })
            .collect();
        Self::new(source.format.stream_id, segments)
    }

    /// Total media duration of one pass.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// A broadcaster account that pays with tickets.
#[derive(Debug, Clone)]
pub struct DirectSender {
    /// Signs the discovery request, segments and tickets.
    pub signer: PrivateKeySigner,
    /// JSON-RPC URL of the chain the TicketBroker lives on (for the block number and deposit).
    pub rpc_url: String,
    /// TicketBroker address.
    pub ticket_broker: Address,
    /// Acceptance limits on the orchestrator's ticket params.
    pub limits: SenderLimits,
}

/// One direct test.
#[derive(Debug, Clone)]
pub struct DirectTestConfig {
    /// The orchestrator's service URI (`https://host:port`).
    pub uri: String,
    /// Renditions asked for (see [`wire_ladder`] to convert presets).
    pub ladder: Vec<VideoProfile>,
    /// Highest acceptable price, wei per pixel; `None` accepts any.
    pub price_cap_wei_per_pixel: Option<f64>,
    /// Media time to send; `None` sends the source once. Rounded up to whole segments.
    pub duration: Option<Duration>,
    /// Pays with tickets when the orchestrator charges; `None` sends unsigned, unpaid segments
    /// (off-chain).
    pub sender: Option<DirectSender>,
    /// Region code recorded with every observation (e.g. `LOCAL`, `FRA`).
    pub region: String,
    /// Manifest id of the test's session (unique per test in a run).
    pub stream_key: String,
    /// Deadlines and size caps of every call to the orchestrator.
    pub limits: ClientLimits,
}

impl DirectTestConfig {
    /// A test of `uri` with `ladder`, no cap, off-chain, the source once, region `LOCAL`.
    pub fn new(uri: &str, ladder: Vec<VideoProfile>) -> Self {
        Self {
            uri: uri.to_string(),
            ladder,
            price_cap_wei_per_pixel: None,
            duration: None,
            sender: None,
            region: "LOCAL".into(),
            stream_key: "direct".into(),
            limits: ClientLimits::default(),
        }
    }

    fn validate(&self) -> Result<(), DirectTestError> {
        if self.ladder.is_empty() {
            return Err(DirectTestError::Config {
                key: "ladder",
                reason: "no profiles".into(),
            });
        }
        for p in &self.ladder {
            if p.name.is_empty() || p.width <= 0 || p.height <= 0 {
                return Err(DirectTestError::Config {
                    key: "ladder",
                    reason: format!(
                        "profile {:?} needs a name and a positive size, has {}x{}",
                        p.name, p.width, p.height
                    ),
                });
            }
        }
        if let Some(cap) = self.price_cap_wei_per_pixel
            && !(cap.is_finite() && cap >= 0.0)
        {
            return Err(DirectTestError::Config {
                key: "price_cap_wei_per_pixel",
                reason: format!("{cap} is not a non-negative number"),
            });
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(DirectTestError::Config {
                key: "duration",
                reason: "zero".into(),
            });
        }
        if self.stream_key.is_empty() {
            return Err(DirectTestError::Config {
                key: "stream_key",
                reason: "empty".into(),
            });
        }
        Ok(())
    }
}

/// A test that could not be run at all because of the tester's own input (never because of the
/// orchestrator: those are [`FailureReason`]s in the summary).
#[derive(Debug, thiserror::Error)]
pub enum DirectTestError {
    #[error("direct test config {key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("direct test source: {0}")]
    Source(String),
    #[error("reading the sender's chain state at {rpc_url}: {reason}")]
    Chain { rpc_url: String, reason: String },
}

/// One rendition of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectRendition {
    /// Profile name.
    pub name: String,
    pub url: String,
    pub ok: bool,
    pub reason: Option<FailureReason>,
    pub bytes: u64,
    pub download_ms: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frames: Option<u64>,
    /// Pixels the orchestrator reported (and bills).
    pub pixels_reported: i64,
    /// Every check verdict on the downloaded rendition.
    pub checks: Vec<CheckObservation>,
}

/// One source segment sent to one orchestrator, with everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectSegmentObservation {
    pub orchestrator_uri: String,
    /// The orchestrator's Ethereum address from discovery (none off-chain or before discovery).
    pub orchestrator_address: Option<String>,
    pub region: String,
    pub stream_key: String,
    pub seq: u64,
    /// Media duration of the segment.
    pub duration_ms: f64,
    /// When the real-time schedule said to send it.
    pub scheduled_unix_ms: UnixMs,
    /// When it was sent (`None` when the test could not start).
    pub sent_unix_ms: Option<UnixMs>,
    /// How late it left behind the schedule.
    pub send_lag_ms: f64,
    /// True when every rendition came back and passed the output checks.
    pub ok: bool,
    pub reason: Option<FailureReason>,
    /// Request start to the 200.
    pub upload_ms: Option<f64>,
    /// The 200 to the transcode result.
    pub transcode_ms: Option<f64>,
    /// All rendition downloads.
    pub download_ms: Option<f64>,
    /// Request start to the last rendition byte.
    pub round_trip_ms: Option<f64>,
    pub bytes_sent: u64,
    /// Tickets sent with the segment.
    pub tickets: u64,
    pub renditions: Vec<DirectRendition>,
}

/// How often one reason occurred, with the first message seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub error_code: String,
    pub message: String,
    pub count: u64,
}

/// The result of one direct test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectTestSummary {
    pub orchestrator_uri: String,
    pub orchestrator_address: Option<String>,
    pub region: String,
    pub stream_key: String,
    pub started_unix_ms: UnixMs,
    pub finished_unix_ms: UnixMs,
    /// Discovery round trip, when it answered.
    pub discovery_ms: Option<f64>,
    /// The advertised price, wei per pixel, when discovery answered.
    pub price_wei_per_pixel: Option<f64>,
    pub segments_planned: u64,
    /// Segments actually uploaded (0 when the test could not start).
    pub segments_sent: u64,
    pub segments_ok: u64,
    /// `segments_ok / segments_planned` (0 with reasons when nothing could be sent).
    pub success_rate: f64,
    /// Mean media duration of a segment, s.
    pub seg_duration_secs: f64,
    /// Means over successful segments, s (PROTOCOL.md §7 fields).
    pub upload_time: Option<f64>,
    pub transcode_time: Option<f64>,
    pub download_time: Option<f64>,
    pub round_trip_time: Option<f64>,
    /// `1 − exp(−seg_duration / round_trip_time)` (0 when nothing came back).
    pub round_trip_score: f64,
    /// `success_rate × round_trip_score`.
    pub score: f64,
    /// Largest and 99th-percentile lag of a send behind the real-time schedule, ms.
    pub max_send_lag_ms: f64,
    pub p99_send_lag_ms: f64,
    pub tickets_sent: u64,
    /// Failure reasons with counts, most frequent first.
    pub errors: Vec<ReasonCount>,
    /// Quality samples scored during the test.
    pub quality: Vec<QualityObservation>,
    /// Every segment record (also reported to the observer as it happened).
    pub segments: Vec<DirectSegmentObservation>,
}

impl DirectTestSummary {
    /// The count of segments that failed with `code`.
    pub fn count(&self, code: &str) -> u64 {
        self.errors
            .iter()
            .filter(|e| e.error_code == code)
            .map(|e| e.count)
            .sum()
    }

    pub(crate) fn from_segments(
        config: &DirectTestConfig,
        facts: TestFacts,
        mut segments: Vec<DirectSegmentObservation>,
        quality: Vec<QualityObservation>,
    ) -> Self {
        let TestFacts {
            started_unix_ms,
            finished_unix_ms,
            discovery_ms,
            price_wei_per_pixel,
            orchestrator_address,
        } = facts;
        segments.sort_by_key(|s| s.seq);
        let planned = segments.len() as u64;
        let sent = segments.iter().filter(|s| s.sent_unix_ms.is_some()).count() as u64;
        let ok: Vec<&DirectSegmentObservation> = segments.iter().filter(|s| s.ok).collect();
        let mean = |f: fn(&DirectSegmentObservation) -> Option<f64>| -> Option<f64> {
            let values: Vec<f64> = ok.iter().filter_map(|s| f(s)).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64 / 1000.0)
        };
        let seg_duration_secs = if segments.is_empty() {
            0.0
        } else {
            segments.iter().map(|s| s.duration_ms).sum::<f64>() / segments.len() as f64 / 1000.0
        };
        let success_rate = if planned == 0 {
            0.0
        } else {
            ok.len() as f64 / planned as f64
        };
        let round_trip_time = mean(|s| s.round_trip_ms);
        let round_trip_score = match round_trip_time {
            Some(rt) if rt > 0.0 => 1.0 - (-seg_duration_secs / rt).exp(),
            _ => 0.0,
        };
        let mut lags: Vec<f64> = segments
            .iter()
            .filter(|s| s.sent_unix_ms.is_some())
            .map(|s| s.send_lag_ms)
            .collect();
        lags.sort_by(f64::total_cmp);
        let p99 = if lags.is_empty() {
            0.0
        } else {
            lags[((lags.len() as f64 * 0.99).ceil() as usize).clamp(1, lags.len()) - 1]
        };
        let mut errors: Vec<ReasonCount> = Vec::new();
        let mut index: HashMap<&'static str, usize> = HashMap::new();
        for reason in segments.iter().filter_map(|s| s.reason.as_ref()) {
            match index.get(reason.code()) {
                Some(&i) => errors[i].count += 1,
                None => {
                    index.insert(reason.code(), errors.len());
                    errors.push(ReasonCount {
                        error_code: reason.code().into(),
                        message: reason.message(),
                        count: 1,
                    });
                }
            }
        }
        errors.sort_by_key(|e| std::cmp::Reverse(e.count));
        Self {
            orchestrator_uri: config.uri.clone(),
            orchestrator_address,
            region: config.region.clone(),
            stream_key: config.stream_key.clone(),
            started_unix_ms,
            finished_unix_ms,
            discovery_ms,
            price_wei_per_pixel,
            segments_planned: planned,
            segments_sent: sent,
            segments_ok: ok.len() as u64,
            success_rate,
            seg_duration_secs,
            upload_time: mean(|s| s.upload_ms),
            transcode_time: mean(|s| s.transcode_ms),
            download_time: mean(|s| s.download_ms),
            round_trip_time,
            round_trip_score,
            score: success_rate * round_trip_score,
            max_send_lag_ms: lags.last().copied().unwrap_or(0.0),
            p99_send_lag_ms: p99,
            tickets_sent: segments.iter().map(|s| s.tickets).sum(),
            errors,
            quality,
            segments,
        }
    }
}

/// What a test learnt besides its segments.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestFacts {
    pub started_unix_ms: UnixMs,
    pub finished_unix_ms: UnixMs,
    pub discovery_ms: Option<f64>,
    pub price_wei_per_pixel: Option<f64>,
    pub orchestrator_address: Option<String>,
}

/// Receives a direct test's records as they happen. Called from many tasks at once: must be
/// cheap and never block.
pub trait DirectObserver: Send + Sync {
    /// One segment's outcome (success or failure with its reason).
    fn segment(&self, s: &DirectSegmentObservation);
    /// One sampled rendition scored by the quality sampler. Called from a blocking-pool thread.
    fn quality(&self, _q: &QualityObservation) {}
}

/// An observer that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullDirectObserver;

impl DirectObserver for NullDirectObserver {
    fn segment(&self, _: &DirectSegmentObservation) {}
}

/// Converts a ladder (e.g. from `reference_transcoder::ladder::parse_ladder`).
pub fn wire_ladder(ladder: &[Profile]) -> Vec<VideoProfile> {
    ladder
        .iter()
        .map(reference_transcoder::wire::to_wire)
        .collect()
}

pub(crate) type SharedObserver = Arc<dyn DirectObserver>;

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(seq: u64, ok: bool, round_trip_ms: f64, lag: f64) -> DirectSegmentObservation {
        DirectSegmentObservation {
            orchestrator_uri: "https://o:1".into(),
            orchestrator_address: None,
            region: "LOCAL".into(),
            stream_key: "s".into(),
            seq,
            duration_ms: 2000.0,
            scheduled_unix_ms: 0,
            sent_unix_ms: Some(0),
            send_lag_ms: lag,
            ok,
            reason: (!ok).then(|| FailureReason::TranscodeError {
                message: "boom".into(),
            }),
            upload_ms: Some(100.0),
            transcode_ms: Some(round_trip_ms - 200.0),
            download_ms: Some(100.0),
            round_trip_ms: Some(round_trip_ms),
            bytes_sent: 1,
            tickets: 1,
            renditions: Vec::new(),
        }
    }

    #[test]
    fn summary_follows_the_leaderboard_formula() {
        let config = DirectTestConfig::new("https://o:1", Vec::new());
        let segments = vec![
            segment(2, false, 9000.0, 3.0),
            segment(0, true, 1000.0, 1.0),
            segment(1, true, 1000.0, 2.0),
            segment(3, true, 1000.0, 40.0),
        ];
        let s =
            DirectTestSummary::from_segments(&config, TestFacts::default(), segments, Vec::new());
        assert_eq!(s.segments_planned, 4);
        assert_eq!(s.segments_ok, 3);
        assert_eq!(s.success_rate, 0.75);
        assert_eq!(s.round_trip_time, Some(1.0));
        let rts = 1.0 - (-2.0f64).exp();
        assert!((s.round_trip_score - rts).abs() < 1e-12);
        assert!((s.score - 0.75 * rts).abs() < 1e-12);
        assert_eq!(s.max_send_lag_ms, 40.0);
        assert_eq!(s.p99_send_lag_ms, 40.0);
        assert_eq!(s.count("transcode_error"), 1);
        assert_eq!(s.tickets_sent, 4);
        assert_eq!(
            s.segments.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn bad_input_is_a_typed_error_naming_the_key() {
        let err = DirectTestConfig::new("https://o:1", Vec::new())
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("ladder"), "{err}");
        let mut config = DirectTestConfig::new(
            "https://o:1",
            vec![VideoProfile {
                name: "p".into(),
                width: 2,
                height: 2,
                ..Default::default()
            }],
        );
        config.price_cap_wei_per_pixel = Some(f64::NAN);
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("price_cap_wei_per_pixel"), "{err}");
        assert!(DirectSource::new(1, Vec::new()).is_err());
    }
}
