//! Every metric `lpt` knows, with its type and unit, so thresholds are type-checked before a run.
//!
//! The catalogue is closed on purpose: a threshold naming a metric that nothing produces would
//! otherwise fail with "no data" only after the whole run; here it fails at validation, with the
//! closest known name as a hint.

use serde::Serialize;

/// The four metric types (k6's taxonomy), which decide the aggregations a threshold may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A running sum (segments downloaded, tickets sent). Aggregations: `count`, `rate` (per second).
    Counter,
    /// The fraction of true samples (segment succeeded, check passed). Aggregations: `rate`, `count`.
    Rate,
    /// A distribution of values (latency, VMAF). Aggregations: `p(N)`, `mean`, `med`, `min`, `max`, `count`.
    Trend,
    /// A value that is set (streams live, EV error). Aggregations: `value` (last), `min`, `max`.
    Gauge,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// What a metric's numbers mean; time metrics are stored in milliseconds and accept `ms`/`s`/`m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    #[serde(rename = "ms")]
    Milliseconds,
    #[serde(rename = "none")]
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub unit: Unit,
    pub description: &'static str,
}

const fn def(
    name: &'static str,
    kind: MetricKind,
    unit: Unit,
    description: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        description,
    }
}

use MetricKind::*;
use Unit::*;

pub const CATALOG: &[MetricDef] = &[
    def(
        "segment_success",
        Rate,
        Plain,
        "a rendition segment was downloaded and passed every check",
    ),
    def("segments", Counter, Plain, "rendition segments downloaded"),
    def(
        "latency",
        Trend,
        Milliseconds,
        "glass-to-glass latency: stamped frame sent → its segment downloadable",
    ),
    def(
        "segment_latency",
        Trend,
        Milliseconds,
        "stream-tester's latency: last packet of a source segment sent → rendition segment downloaded",
    ),
    def(
        "checks",
        Rate,
        Plain,
        "segment checks that passed (tag `check` names the check)",
    ),
    def(
        "stalls",
        Counter,
        Plain,
        "renditions with no new segment for 3 × target duration",
    ),
    def("streams", Gauge, Plain, "streams publishing"),
    def(
        "publish_lag",
        Trend,
        Milliseconds,
        "how far a publisher fell behind the wall clock",
    ),
    def(
        "vmaf",
        Trend,
        Plain,
        "VMAF of a sampled rendition segment against the source",
    ),
    def(
        "vmaf_reference",
        Trend,
        Plain,
        "VMAF of the local reference transcoder's rendition of the same segment",
    ),
    def(
        "vmaf_deficit",
        Trend,
        Plain,
        "vmaf_reference − vmaf for the same segment and profile",
    ),
    def(
        "psnr",
        Trend,
        Plain,
        "PSNR-Y (dB) of a sampled rendition segment against the source",
    ),
    def(
        "round_trip",
        Trend,
        Milliseconds,
        "direct-to-orchestrator: upload start → last rendition downloaded",
    ),
    def(
        "upload_time",
        Trend,
        Milliseconds,
        "time to upload a segment to an orchestrator",
    ),
    def(
        "transcode_time",
        Trend,
        Milliseconds,
        "time an orchestrator took to transcode a segment",
    ),
    def(
        "download_time",
        Trend,
        Milliseconds,
        "time to download a segment's renditions",
    ),
    def(
        "orchestrator_success",
        Rate,
        Plain,
        "direct-to-orchestrator: a segment came back complete and correct",
    ),
    def(
        "orchestrator_failures",
        Counter,
        Plain,
        "direct-to-orchestrator: failed segments, tagged with their reason",
    ),
    def(
        "transcode_realtime_ratio",
        Trend,
        Plain,
        "transcode time ÷ segment duration (below 1 is faster than real time)",
    ),
    def(
        "realtime_segments",
        Rate,
        Plain,
        "segments transcoded within their own duration",
    ),
    def(
        "tickets_sent",
        Counter,
        Plain,
        "payment tickets sent by the broadcaster",
    ),
    def("tickets_won", Counter, Plain, "winning tickets"),
    def(
        "tickets_redeemed",
        Counter,
        Plain,
        "winning tickets redeemed on chain",
    ),
    def(
        "payment_ev_error",
        Gauge,
        Plain,
        "relative error of value redeemed vs fees expected for pixels delivered",
    ),
];

/// Tag keys that probes attach to samples; selectors may use only these.
pub const TAG_KEYS: &[&str] = &[
    "workload",
    "stream",
    "rendition",
    "orchestrator",
    "region",
    "check",
    "reason",
    "sessions",
];

pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|m| m.name == name)
}
