//! Every metric `lpt` knows: its name, type, unit, which direction is better, the tags its samples
//! carry and, when the journal holds it, the record column its samples come from.
//!
//! The catalogue is closed on purpose: a threshold naming a metric that nothing produces would
//! otherwise fail with "no data" only after the whole run; here it fails at validation, with the
//! closest known name as a hint. The live registry (thresholds, progress, `summary.json`), the
//! journal-to-metric mapping ([`crate::sample`]) and `lpt compare` all read this one table.

use serde::{Deserialize, Serialize};

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

/// Which direction of change is an improvement: `lpt compare` calls a change in the other
/// direction a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Lower is better (latency, failures, transcode ratio).
    Lower,
    /// Higher is better (success rate, VMAF).
    Higher,
    /// Neither: a measure of load or activity (streams live, tickets sent).
    Neither,
}

/// Where the journal keeps a metric's samples: a column of one record kind, optionally only the
/// rows whose text column `only.0` equals `only.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalColumn {
    /// The record kind's wire tag (`segment`, `check`, `quality`, …).
    pub record: &'static str,
    /// The numeric or boolean column that holds the sample.
    pub column: &'static str,
    /// A row filter on a text column, e.g. `("origin", "network")`.
    pub only: Option<(&'static str, &'static str)>,
}

/// One metric's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub unit: Unit,
    pub better: Better,
    /// The tag keys its samples may carry (a subset of [`TAG_KEYS`]); the live registry checks
    /// every sample against it when debug assertions are on.
    pub tags: &'static [&'static str],
    /// The journal column its samples come from; `None` for a metric only the live registry
    /// holds (its probe adds it by name).
    pub journal: Option<JournalColumn>,
    pub description: &'static str,
}

use Better::*;
use MetricKind::*;
use Unit::*;

/// Tags of a stream's rendition segment.
const SEGMENT_TAGS: &[&str] = &[
    "workload",
    "stream",
    "rendition",
    "orchestrator",
    "region",
    "sessions",
];
/// Tags of a segment sent straight to an orchestrator.
const DIRECT_TAGS: &[&str] = &["workload", "orchestrator", "region", "reason", "sessions"];
/// Tags of a check outcome.
const CHECK_TAGS: &[&str] = &[
    "workload",
    "stream",
    "rendition",
    "orchestrator",
    "region",
    "check",
    "sessions",
];
/// Tags of a stream (publisher) sample.
const STREAM_TAGS: &[&str] = &["workload", "stream", "orchestrator", "region", "sessions"];
/// Tags of what a chaos event cost a stream.
const RECOVERY_TAGS: &[&str] = &["event", "workload", "stream"];
/// Tags of what a chaos event cost an orchestrator's payments.
const REDEMPTION_RECOVERY_TAGS: &[&str] = &["event", "orchestrator"];
/// Tags of a bench sample.
const BENCH_TAGS: &[&str] = &["sessions"];
/// Tags of an HLS conformance violation: the stream's, the rule's ID and its `must`/`should`.
const VIOLATION_TAGS: &[&str] = &[
    "workload",
    "stream",
    "rendition",
    "rule",
    "severity",
    "sessions",
];

/// Tags of what a browser player saw.
const PLAYER_TAGS: &[&str] = &["workload", "stream", "rendition", "sessions"];
/// Tags of an AI request: the pipeline and model, who answered, why it failed, whether the model
/// was cold (`start`), and in a concurrency sweep the level it was sent at (`sessions`).
const AI_TAGS: &[&str] = &[
    "workload",
    "pipeline",
    "model",
    "orchestrator",
    "region",
    "reason",
    "start",
    "sessions",
];
/// Tags of a live video-to-video job: the pipeline and model, who answered, why it failed.
const AI_LIVE_TAGS: &[&str] = &[
    "workload",
    "pipeline",
    "model",
    "orchestrator",
    "region",
    "reason",
];
/// Tags of a pool transcoder's reconciliation.
const POOL_TAGS: &[&str] = &["orchestrator", "transcoder"];

const fn journal(record: &'static str, column: &'static str) -> Option<JournalColumn> {
    Some(JournalColumn {
        record,
        column,
        only: None,
    })
}

const fn journal_where(
    record: &'static str,
    column: &'static str,
    only: (&'static str, &'static str),
) -> Option<JournalColumn> {
    Some(JournalColumn {
        record,
        column,
        only: Some(only),
    })
}

/// Every metric. `journal` names the record column that holds its samples: the stream probe's
/// records feed the live registry through it ([`crate::sample::journal_samples`]), and `lpt
/// compare` reads it back from the journal. The direct-orchestrator executor adds its samples by
/// name, once per segment, since its journal rows are one per rendition (they repeat the segment's
/// upload, transcode and round-trip times on each).
pub const CATALOG: &[MetricDef] = &[
    MetricDef {
        name: "segment_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: SEGMENT_TAGS,
        journal: journal("segment", "ok"),
        description: "a rendition segment was downloaded and passed every check",
    },
    MetricDef {
        name: "segments",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: SEGMENT_TAGS,
        journal: journal("segment", "ok"),
        description: "rendition segments downloaded",
    },
    MetricDef {
        name: "latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: journal("segment", "latency_ms"),
        description: "glass-to-glass latency: stamped frame sent → its segment downloadable",
    },
    MetricDef {
        name: "segment_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: None,
        description: "stream-tester's latency: last packet of a source segment sent → rendition segment downloaded",
    },
    MetricDef {
        name: "checks",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: CHECK_TAGS,
        journal: journal("check", "ok"),
        description: "segment checks that passed (tag `check` names the check)",
    },
    MetricDef {
        name: "hls_violations",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: VIOLATION_TAGS,
        journal: journal("violation", "occurrences"),
        description: "HLS conformance rules broken (tag `rule` names the rule, `severity` is must or should)",
    },
    MetricDef {
        name: "part_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: journal("part", "part_latency_ms"),
        description: "Low-Latency HLS part latency: its first stamped frame sent → its last byte received",
    },
    MetricDef {
        name: "part_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: SEGMENT_TAGS,
        journal: journal("part", "ok"),
        description: "Low-Latency HLS parts downloaded whole (and, decoded, their pictures read)",
    },
    MetricDef {
        name: "ai_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: AI_TAGS,
        journal: journal("ai", "ok"),
        description: "AI requests answered 200 with an output that passed validation (tag `reason` names a failure's cause)",
    },
    MetricDef {
        name: "ai_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_TAGS,
        journal: journal("ai", "latency_ms"),
        description: "AI request sent → its output's last byte received, media fetched",
    },
    MetricDef {
        name: "ai_cold_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_TAGS,
        journal: journal_where("ai", "latency_ms", ("start", "cold")),
        description: "latency of the AI requests sent after the model sat idle (cold starts)",
    },
    MetricDef {
        name: "ai_upload_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_TAGS,
        journal: journal("ai", "upload_ms"),
        description: "AI request sent → its body handed over",
    },
    MetricDef {
        name: "ai_inference_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_TAGS,
        journal: journal("ai", "inference_ms"),
        description: "AI request body handed over → the answer's headers: queueing and inference",
    },
    MetricDef {
        name: "ai_download_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_TAGS,
        journal: journal("ai", "download_ms"),
        description: "AI answer's headers → its last byte, media URLs fetched",
    },
    MetricDef {
        name: "ai_outputs",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: AI_TAGS,
        journal: journal("ai", "outputs"),
        description: "outputs AI requests returned (images, video frames, text chunks)",
    },
    MetricDef {
        name: "ai_live_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: AI_LIVE_TAGS,
        journal: journal("ai_live", "ok"),
        description: "live video-to-video jobs that started, kept the target frame rate and did not stall for good (tag `reason` names a failure's cause)",
    },
    MetricDef {
        name: "ai_live_fps",
        kind: Trend,
        unit: Plain,
        better: Higher,
        tags: AI_LIVE_TAGS,
        journal: journal("ai_live", "output_fps"),
        description: "live video-to-video output frames delivered per wall-clock second, first output segment excluded (one sample per job)",
    },
    MetricDef {
        name: "ai_live_time_to_first_frame",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_LIVE_TAGS,
        journal: journal("ai_live", "time_to_first_frame_ms"),
        description: "live video-to-video: first input byte sent → first decoded output frame arrived",
    },
    MetricDef {
        name: "ai_live_frame_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_LIVE_TAGS,
        journal: journal("ai_live", "latency_p95_ms"),
        description: "live video-to-video: 95th percentile over a job's output frames of arrival − its stamped input frame's sending (one sample per job)",
    },
    MetricDef {
        name: "ai_live_stall_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: AI_LIVE_TAGS,
        journal: journal("ai_live", "stall_time_ms"),
        description: "live video-to-video: total stall time of a player fed by the output (one sample per job)",
    },
    MetricDef {
        name: "pool_accounting_error",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "accounting_error"),
        description: "per pool transcoder: |pixels the orchestrator paid − pixels the probe decoded| ÷ the probe's, over the renditions both saw",
    },
    MetricDef {
        name: "pool_claim_error",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "claim_error"),
        description: "per pool transcoder: (pixels it claimed − pixels the probe decoded) ÷ the probe's; above 0 when it inflates its counts",
    },
    MetricDef {
        name: "payout_share",
        kind: Trend,
        unit: Plain,
        better: Neither,
        tags: POOL_TAGS,
        journal: journal("pool", "payout_share"),
        description: "per pool transcoder: its fraction of the orchestrator's payouts for the window",
    },
    MetricDef {
        name: "realtime_ratio",
        kind: Trend,
        unit: Plain,
        better: Higher,
        tags: POOL_TAGS,
        journal: journal("pool", "realtime_ratio"),
        description: "per pool transcoder: media seconds transcoded per wall second, as its orchestrator measured it",
    },
    MetricDef {
        name: "transcoder_segments",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: POOL_TAGS,
        journal: journal("pool", "segments"),
        description: "answers an orchestrator accepted from each pool transcoder",
    },
    MetricDef {
        name: "refused_segments",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "refused"),
        description: "pool transcoders' answers refused by the orchestrator's spot checks (and redone elsewhere)",
    },
    MetricDef {
        name: "transcoder_lost_segments",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "lost"),
        description: "segments a pool transcoder went away with (disconnected mid-segment, or past its orchestrator's task deadline)",
    },
    MetricDef {
        name: "bad_segments_delivered",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "bad_segments_delivered"),
        description: "renditions a pool transcoder made, its orchestrator accepted and the probe found bad",
    },
    MetricDef {
        name: "cheater_detected_after",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "cheater_detected_after"),
        description: "a pool transcoder's answers up to and including the first its orchestrator's check refused",
    },
    MetricDef {
        name: "check_cost",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: POOL_TAGS,
        journal: journal("pool", "check_ms"),
        description: "mean time an orchestrator spent spot-checking one answer of a pool transcoder",
    },
    MetricDef {
        name: "player_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: PLAYER_TAGS,
        journal: journal("player", "ok"),
        description: "browser players (hls.js in headless Chromium) that played to the stream's end with no fatal error",
    },
    MetricDef {
        name: "player_ttff",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: PLAYER_TAGS,
        journal: journal("player", "ttff_ms"),
        description: "browser player's time to first frame: stream loaded → first frame on screen",
    },
    MetricDef {
        name: "player_latency",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: PLAYER_TAGS,
        journal: journal("player", "latency_ms"),
        description: "playback latency: stamped frame sent → the same frame on a browser player's screen",
    },
    MetricDef {
        name: "player_stalls",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: PLAYER_TAGS,
        journal: journal("player", "stalls"),
        description: "times a browser player waited for data after playback had started",
    },
    MetricDef {
        name: "player_stall_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: PLAYER_TAGS,
        journal: journal("player", "stall_ms"),
        description: "how long each browser player stall lasted",
    },
    MetricDef {
        name: "player_dropped_frames",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: PLAYER_TAGS,
        journal: journal("player", "dropped_frames"),
        description: "frames browser players decoded too late to show",
    },
    MetricDef {
        name: "player_level_switches",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: PLAYER_TAGS,
        journal: journal("player", "level_switches"),
        description: "times a browser player switched rendition",
    },
    MetricDef {
        name: "stalls",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: None,
        description: "renditions with no new segment for 3 × target duration",
    },
    MetricDef {
        name: "streams",
        kind: Gauge,
        unit: Plain,
        better: Neither,
        tags: &["workload"],
        journal: None,
        description: "streams publishing",
    },
    MetricDef {
        name: "publish_lag",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: STREAM_TAGS,
        journal: None,
        description: "how far a publisher fell behind the wall clock",
    },
    MetricDef {
        name: "publish_reconnects",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: STREAM_TAGS,
        journal: None,
        description: "times a publisher's connection to the ingest was lost and made again",
    },
    MetricDef {
        name: "vmaf",
        kind: Trend,
        unit: Plain,
        better: Higher,
        tags: SEGMENT_TAGS,
        journal: journal_where("quality", "vmaf", ("origin", "network")),
        description: "VMAF of a sampled rendition segment against the source",
    },
    MetricDef {
        name: "vmaf_reference",
        kind: Trend,
        unit: Plain,
        better: Higher,
        tags: SEGMENT_TAGS,
        journal: journal_where("quality", "vmaf", ("origin", "reference")),
        description: "VMAF of the local reference transcoder's rendition of the same segment",
    },
    MetricDef {
        name: "vmaf_deficit",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: None,
        description: "vmaf_reference − vmaf for the same segment and profile",
    },
    MetricDef {
        name: "psnr",
        kind: Trend,
        unit: Plain,
        better: Higher,
        tags: SEGMENT_TAGS,
        journal: journal_where("quality", "psnr", ("origin", "network")),
        description: "PSNR-Y (dB) of a sampled rendition segment against the source",
    },
    MetricDef {
        name: "quality_sample_fraction",
        kind: Gauge,
        unit: Plain,
        better: Neither,
        tags: &[],
        journal: None,
        description: "fraction of each rendition's segments the quality probe scores",
    },
    MetricDef {
        name: "round_trip",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: DIRECT_TAGS,
        journal: journal("segment", "round_trip_ms"),
        description: "direct-to-orchestrator: upload start → last rendition downloaded",
    },
    MetricDef {
        name: "upload_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: DIRECT_TAGS,
        journal: journal("segment", "upload_ms"),
        description: "time to upload a segment to an orchestrator",
    },
    MetricDef {
        name: "transcode_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: DIRECT_TAGS,
        journal: journal("segment", "transcode_ms"),
        description: "time an orchestrator took to transcode a segment",
    },
    MetricDef {
        name: "download_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: SEGMENT_TAGS,
        journal: journal("segment", "download_ms"),
        description: "time to download a segment's renditions",
    },
    MetricDef {
        name: "orchestrator_success",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: DIRECT_TAGS,
        journal: None,
        description: "direct-to-orchestrator: a segment came back complete and correct",
    },
    MetricDef {
        name: "orchestrator_failures",
        kind: Counter,
        unit: Plain,
        better: Lower,
        tags: DIRECT_TAGS,
        journal: None,
        description: "direct-to-orchestrator: failed segments, tagged with their reason",
    },
    MetricDef {
        name: "transcode_realtime_ratio",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: BENCH_TAGS,
        journal: None,
        description: "transcode time ÷ segment duration (below 1 is faster than real time)",
    },
    MetricDef {
        name: "realtime_segments",
        kind: Rate,
        unit: Plain,
        better: Higher,
        tags: BENCH_TAGS,
        journal: None,
        description: "segments transcoded within their own duration",
    },
    MetricDef {
        name: "tickets_sent",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: DIRECT_TAGS,
        journal: None,
        description: "payment tickets sent by the broadcaster",
    },
    MetricDef {
        name: "tickets_won",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: &[],
        journal: None,
        description: "winning tickets",
    },
    MetricDef {
        name: "tickets_redeemed",
        kind: Counter,
        unit: Plain,
        better: Neither,
        tags: &[],
        journal: None,
        description: "winning tickets redeemed on chain",
    },
    MetricDef {
        name: "payment_ev_error",
        kind: Gauge,
        unit: Plain,
        better: Lower,
        tags: &[],
        journal: None,
        description: "relative error of value redeemed vs fees expected for pixels delivered",
    },
    MetricDef {
        name: "failover_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: RECOVERY_TAGS,
        journal: journal("recovery", "failover_time_ms"),
        description: "chaos event → the stream's next good segment, beyond its usual latency (one sample per event and stream)",
    },
    MetricDef {
        name: "segments_lost",
        kind: Trend,
        unit: Plain,
        better: Lower,
        tags: RECOVERY_TAGS,
        journal: journal("recovery", "segments_lost"),
        description: "source segments caught by a chaos event that never arrived with every rendition (one sample per event and stream)",
    },
    MetricDef {
        name: "stall_time",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: RECOVERY_TAGS,
        journal: journal("recovery", "stall_time_ms"),
        description: "time a player of the stream would have stalled because of a chaos event",
    },
    MetricDef {
        name: "redemptions_lost",
        kind: Gauge,
        unit: Plain,
        better: Lower,
        tags: REDEMPTION_RECOVERY_TAGS,
        journal: journal("recovery", "redemptions_lost"),
        description: "winning tickets received around a chaos event and never redeemed on chain (per event and orchestrator)",
    },
    MetricDef {
        name: "redemption_delay",
        kind: Trend,
        unit: Milliseconds,
        better: Lower,
        tags: REDEMPTION_RECOVERY_TAGS,
        journal: journal("recovery", "redemption_delay_ms"),
        description: "winning ticket received around a chaos event → redeemed on chain (the longest, per event and orchestrator)",
    },
];

/// Tag keys that probes attach to samples, in alphabetical order; selectors may use only these.
pub const TAG_KEYS: &[&str] = &[
    "check",
    "event",
    "model",
    "orchestrator",
    "pipeline",
    "reason",
    "region",
    "rendition",
    "rule",
    "sessions",
    "severity",
    "start",
    "stream",
    "transcoder",
    "workload",
];

/// The definition of `name`, if it is a metric.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_tags_known() {
        for (i, def) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[..i].iter().all(|d| d.name != def.name),
                "{} is defined twice",
                def.name
            );
            for tag in def.tags {
                assert!(TAG_KEYS.contains(tag), "{}: unknown tag {tag}", def.name);
            }
        }
        let used: std::collections::BTreeSet<&str> = CATALOG
            .iter()
            .flat_map(|d| d.tags.iter().copied())
            .collect();
        assert_eq!(used.into_iter().collect::<Vec<_>>(), TAG_KEYS);
    }

    #[test]
    fn a_violation_counts_once_tagged_with_its_rule_and_severity() {
        let record = crate::record::ViolationRecord {
            t_ms: 1,
            workload: "w".into(),
            stream: "s".into(),
            rendition: Some("P360p30fps16x9".into()),
            rule: "HLS-PLAYLIST-STALE".into(),
            severity: "must".into(),
            url: "https://h/s/P360p30fps16x9.m3u8".into(),
            line: None,
            detail: "no segment after 6 for 3100 ms".into(),
            occurrences: 1,
        };
        let samples: Vec<_> = crate::sample::journal_samples(&record)
            .map(|(d, v)| (d.name, v))
            .collect();
        assert_eq!(samples, [("hls_violations", 1.0)]);
        let tags = crate::sample::record_tags(&record);
        assert_eq!(tags["rule"], "HLS-PLAYLIST-STALE");
        assert_eq!(tags["severity"], "must");
        assert_eq!(tags["rendition"], "P360p30fps16x9");
        let def = lookup("hls_violations").unwrap();
        assert!(tags.keys().all(|k| def.tags.contains(&k.as_str())));
    }

    #[test]
    fn an_ai_request_feeds_its_metrics_tagged_with_pipeline_model_and_start() {
        let cold_failure = crate::record::AiRecord {
            t_ms: 1,
            workload: "t2i".into(),
            pipeline: "text-to-image".into(),
            model: "lpt/seeded-renderer".into(),
            orchestrator: None,
            region: None,
            request: 0,
            concurrency: 1,
            ok: false,
            reason: Some("wrong_size".into()),
            error: Some("image 0 is 128x64, asked for 256x128".into()),
            status: Some(200),
            start: "cold".into(),
            latency_ms: 900.0,
            upload_ms: Some(1.0),
            inference_ms: Some(850.0),
            download_ms: Some(49.0),
            outputs: 2,
            width: Some(128),
            height: Some(64),
            output_bytes: 4000,
            seed: Some(42),
            params: r#"{"prompt":"a","width":256,"height":128}"#.into(),
            response: None,
        };
        let samples: Vec<_> = crate::sample::journal_samples(&cold_failure)
            .map(|(d, v)| (d.name, v))
            .collect();
        assert_eq!(
            samples,
            [
                ("ai_success", 0.0),
                ("ai_latency", 900.0),
                ("ai_cold_latency", 900.0),
                ("ai_upload_time", 1.0),
                ("ai_inference_time", 850.0),
                ("ai_download_time", 49.0),
                ("ai_outputs", 2.0),
            ]
        );
        let tags = crate::sample::record_tags(&cold_failure);
        assert_eq!(tags["pipeline"], "text-to-image");
        assert_eq!(tags["model"], "lpt/seeded-renderer");
        assert_eq!(tags["reason"], "wrong_size");
        assert_eq!(tags["start"], "cold");
        let warm = crate::record::AiRecord {
            start: "warm".into(),
            ..cold_failure
        };
        assert!(crate::sample::journal_samples(&warm).all(|(d, _)| d.name != "ai_cold_latency"));
    }
}
