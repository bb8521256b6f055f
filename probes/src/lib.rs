//! Black-box probes: what a real user of a Livepeer network (or any RTMP-in/HLS-out server)
//! sees, measured.
//!
//! The probes know only URLs: an RTMP ingest URL to publish the stamped source to, an HLS
//! playback URL to pull renditions from. They never link the node stack, so the same probe
//! tests our stack, go-livepeer or nginx-rtmp. Pieces:
//! - [`replay`] and [`publisher`]: the pre-encoded source replayed over RTMP in real time by
//!   many cheap publishers, each keeping a [`sendlog::SendLog`] of when every frame went out;
//! - [`hls`]: the HLS puller (master → renditions → every segment once, stalls, failures);
//! - [`checks`]: per-segment decode and named checks; [`latency`]: glass-to-glass and segment
//!   latency from the frame stamps and the send log, and [`part_latency`] that of low-latency
//!   parts;
//! - [`stream`]: one stream end to end, reporting through [`observe::ProbeObserver`];
//! - [`quality`]: VMAF of sampled segments against the source and the reference transcoder;
//! - [`payments`] and [`reconcile`]: on-chain redemptions reconciled with the work delivered;
//! - [`players`]: browser players (hls.js in headless Chromium tabs), what viewers see;
//! - [`direct`]: one orchestrator tested directly, the tester acting as its broadcaster, every
//!   failure with a reason.

pub mod ai;
pub mod checks;
pub mod chunk;
pub mod clock;
pub mod completeness;
pub mod conformance;
pub mod decode;
pub mod direct;
pub mod hls;
pub mod latency;
pub mod observe;
pub mod part_latency;
pub mod payments;
pub mod players;
pub mod publisher;
pub mod quality;
pub mod reconcile;
pub mod replay;
pub mod sendlog;
pub mod stream;
pub mod stream_conformance;

pub use checks::{CHECK_NAMES, CheckOptions, CheckedSegment, SegmentChecker};
pub use decode::{DecodeError, DecodedSegment, FrameFacts, decode_segment};
pub use direct::{
    DirectObserver, DirectRendition, DirectSegment, DirectSegmentObservation, DirectSender,
    DirectSource, DirectTestConfig, DirectTestError, DirectTestSummary, FAILURE_CODES,
    FailureReason, NullDirectObserver, ReasonCount, run_direct_test, run_direct_tests,
};
pub use hls::{
    HlsOptions, HlsPuller, PlaylistPoll, PullError, PullEvent, PullSink, PullStop, PullStopHandle,
    PullSummary, PulledPart, PulledSegment, RenditionInfo, http_client, pull_stop,
};
pub use latency::{part_latency, segment_latency};
pub use observe::{
    CheckObservation, NullObserver, PartObservation, PlayerEvent, PlayerObservation, ProbeObserver,
    PublishObservation, PublishPhase, QualityObservation, SegmentLatency, SegmentMedia,
    SegmentObservation, StallObservation, ViolationObservation,
};
pub use payments::{
    ChainActivity, OrchestratorPrice, PaymentError, PaymentProbe, PaymentProbeConfig,
    PaymentReport, RedeemedTicket,
};
pub use publisher::{PublishError, PublishOptions, PublishSummary, RtmpPublisher, RtmpTarget};
pub use quality::{
    QualityProbeError, QualitySample, QualitySampler, QualitySamplerConfig, QualitySamplerStats,
    Sampling, Submission, sustainable_fraction,
};
pub use replay::{ReplayError, ReplayPacket, ReplaySource};
pub use sendlog::{SendLog, SentFrame};
pub use stream::{StreamProbe, StreamProbeConfig, StreamProbeError, StreamReport};
