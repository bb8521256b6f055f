//! Report writers: HTML, JUnit XML and Markdown, all rendered from one [`ReportContext`] so the
//! three always show the same numbers (the criterion/k6 way: data first, rendering second).

pub mod html;
pub mod junit;
pub mod markdown;

use crate::breakdowns::{
    Aggregates, AiLevelStats, AiLiveStats, AiStats, ChaosEventStats, PlayerBreakdowns,
    PoolTranscoderStats, ReasonCount,
};
use crate::journal::JournalStats;
use crate::leaderboard::Leaderboard;
use crate::plots::{PlotOutput, SkippedPlot};
use crate::summary::{LoadedSummary, RunVerdict, ThresholdView};
use crate::util::{fmt_num, fmt_pct};

/// Everything a writer renders.
pub struct ReportContext<'a> {
    /// The base summary (read or synthesized).
    pub summary: &'a LoadedSummary,
    /// The headline.
    pub verdict: &'a RunVerdict,
    /// The aggregates.
    pub aggregates: &'a Aggregates,
    /// What the journal reader found.
    pub journal: &'a JournalStats,
    /// Whether the journal file existed.
    pub journal_present: bool,
    /// Everything missing or skipped, as sentences.
    pub missing: &'a [String],
    /// The plots drawn.
    pub plots: &'a [PlotOutput],
    /// The plots not drawn.
    pub skipped_plots: &'a [SkippedPlot],
    /// The leaderboard records, when the run tested orchestrators.
    pub leaderboard: Option<&'a Leaderboard>,
    /// Scenario (or run directory) name.
    pub run_name: String,
    /// When the run happened, human UTC.
    pub when: String,
    /// When the report was generated (RFC 3339).
    pub generated_at: String,
}

impl ReportContext<'_> {
    /// A threshold's observed value with the metric's unit, or why there is none.
    pub fn observed(&self, t: &ThresholdView) -> String {
        match t.observed {
            Some(v) => match self.summary.unit_of(&t.metric) {
                Some(unit) => format!("{} {unit}", fmt_num(Some(v))),
                None => fmt_num(Some(v)),
            },
            None => t.reason.clone().unwrap_or_else(|| "no data".to_string()),
        }
    }
}

/// A chaos event's duration for a table: seconds, or what its missing end means.
fn chaos_duration(event: &ChaosEventStats) -> String {
    match event.duration_s {
        Some(s) => fmt_num(Some(s)),
        // A chaos record leaves the end out for an event that lasts to the end of the run; one
        // that was not carried out has no end to speak of.
        None if event.ok => "to the end of the run".to_string(),
        None => "–".to_string(),
    }
}

/// Milliseconds as seconds for a table.
fn ms_as_s(ms: Option<f64>) -> String {
    fmt_num(ms.map(|v| v / 1000.0))
}

/// The sentence under the "Chaos events" heading: what the columns are measured against.
const CHAOS_INTRO: &str = "One row per chaos event carried out (or attempted). Start is seconds \
    since the run's first record, the time axis of the plots, which mark each event. Stream \
    figures are over the streams that ran through the event; payment figures over the winning \
    tickets the orchestrators received around it.";

/// The sentence under the "Viewer QoE" heading: how many players, and what the columns measure.
fn viewer_qoe_intro(players: &PlayerBreakdowns) -> String {
    let (started, ok, failed) = players.totals();
    format!(
        "{started} browser player(s) (hls.js in headless Chromium) on {} stream(s): {ok} played \
         to the end, {failed} failed. TTFF is loading the stream → its first frame on screen; \
         latency is a stamped frame sent → the same frame shown; the stall ratio is stall time \
         over the time from each player's first frame to its end; dropped is the share of \
         decoded frames shown too late.",
        players.by_stream.len()
    )
}

/// The sentence under the "Transcoder pool" heading: how many transcoders, and what the pixel
/// columns compare.
fn pool_intro(rows: &[PoolTranscoderStats]) -> String {
    let mut orchestrators: Vec<&str> = rows.iter().map(|r| r.orchestrator.as_str()).collect();
    orchestrators.dedup();
    format!(
        "{} pool transcoder(s) behind {} orchestrator(s), reconciled at the end of the run: the \
         pixels of the renditions the probe pulled are shown as the probe decoded them (probe), \
         as the orchestrator's ledger counted and paid them (paid) and as the transcoder claimed \
         them (claimed), so the accounting error is |paid − probe| ÷ probe and the claim error \
         (claimed − probe) ÷ probe, both 0 when exact.",
        rows.len(),
        orchestrators.len()
    )
}

/// The "Transcoder pool" columns, in order (the HTML and Markdown tables share them).
const POOL_COLUMNS: [&str; 18] = [
    "Orchestrator",
    "Transcoder",
    "Accepted",
    "Refused",
    "Lost",
    "Real-time ratio",
    "Share of segments",
    "Pixels (probe)",
    "Pixels (paid)",
    "Pixels (claimed)",
    "Accounting error",
    "Claim error",
    "Payout share",
    "Payout (wei)",
    "Checks",
    "Mean check (ms)",
    "Detected after",
    "Bad delivered",
];

/// One pool transcoder's cells under [`POOL_COLUMNS`], unescaped, each with whether it shows
/// the fault (the renderers mark those).
fn pool_cells(r: &PoolTranscoderStats) -> [(String, bool); 18] {
    let plain = |value: String| (value, false);
    [
        plain(r.orchestrator.clone()),
        plain(r.transcoder.clone()),
        plain(r.segments.to_string()),
        (r.refused.to_string(), r.refused > 0),
        (r.lost.to_string(), r.lost > 0),
        plain(fmt_num(r.realtime_ratio)),
        plain(fmt_pct(r.segment_share)),
        plain(r.probe_pixels.to_string()),
        (r.counted_pixels.to_string(), r.accounting_faulty()),
        (r.claimed_pixels.to_string(), r.claim_faulty()),
        (fmt_pct(r.accounting_error), r.accounting_faulty()),
        (fmt_pct(r.claim_error), r.claim_faulty()),
        plain(fmt_pct(r.payout_share)),
        plain(r.payout_wei.as_deref().unwrap_or("–").to_string()),
        plain(r.checked.to_string()),
        plain(fmt_num(r.check_ms)),
        (
            fmt_count(r.cheater_detected_after),
            r.cheater_detected_after.is_some(),
        ),
        (
            r.bad_segments_delivered.to_string(),
            r.bad_segments_delivered > 0,
        ),
    ]
}

/// The sentence under the "AI requests" heading.
const AI_INTRO: &str = "One row per pipeline and model of each AI workload, as one gateway or \
    worker answered it. A request is good when it was answered 200 with an output that passed \
    validation (decodes, size, count, seeds, determinism); latency is over good answers, from \
    sending to the output's last byte with media fetched; inference is from the request body \
    handed over to the answer's headers, queueing included.";

/// The "AI requests" columns, in order (the HTML and Markdown tables share them).
const AI_COLUMNS: [&str; 14] = [
    "Workload",
    "Pipeline",
    "Model",
    "Answered by",
    "Requests",
    "Good",
    "Good answers/s",
    "Latency p50 (s)",
    "p95 (s)",
    "max (s)",
    "Inference mean (s)",
    "Cold starts",
    "Slowest cold (s)",
    "Failures",
];

/// Failures by reason for a table cell, `reason × count` each, with the first error after them.
fn failures_cell(failures: &[ReasonCount], first_error: Option<&str>) -> String {
    let counts = failures
        .iter()
        .map(|f| format!("{} × {}", f.reason, f.count))
        .collect::<Vec<_>>()
        .join(", ");
    match first_error {
        Some(first) if !counts.is_empty() => format!("{counts} (first: {first})"),
        _ => counts,
    }
}

/// One AI row's cells under [`AI_COLUMNS`], unescaped, each with whether it shows a fault.
fn ai_cells(r: &AiStats) -> [(String, bool); 14] {
    let plain = |value: String| (value, false);
    let failures = failures_cell(&r.failures, r.first_error.as_deref());
    [
        plain(r.workload.clone()),
        plain(r.pipeline.clone()),
        plain(r.model.clone()),
        plain(r.orchestrator.clone()),
        plain(r.requests.to_string()),
        (fmt_pct(r.success_rate), r.ok < r.requests),
        plain(fmt_num(r.throughput)),
        plain(ms_as_s(r.latency_ms.p50)),
        plain(ms_as_s(r.latency_ms.p95)),
        plain(ms_as_s(r.latency_ms.max)),
        plain(ms_as_s(r.inference_ms_mean)),
        plain(r.cold_starts.to_string()),
        plain(ms_as_s(r.cold_latency_ms_max)),
        (failures, !r.failures.is_empty()),
    ]
}

/// The sentence under the "AI live video-to-video" heading.
const AI_LIVE_INTRO: &str = "One row per pipeline and model of each live AI workload, as one \
    gateway or worker answered it. A job is good when it started, its output kept the target \
    frame rate and it never stalled for good; TTFF is the first input byte sent → the first \
    output frame decoded; the lowest frame rate and the worst p95 frame latency (a stamped input \
    frame sent → its output frame back) are the worst job's; stalls are those of a player fed by \
    the output, summed over the jobs.";

/// The "AI live video-to-video" columns, in order (the HTML and Markdown tables share them).
const AI_LIVE_COLUMNS: [&str; 15] = [
    "Workload",
    "Pipeline",
    "Model",
    "Answered by",
    "Jobs",
    "Good",
    "TTFF p50 (s)",
    "TTFF max (s)",
    "Lowest fps",
    "Target fps",
    "Worst p95 latency (s)",
    "Stalls",
    "Stall time (s)",
    "Unreadable stamps",
    "Failures",
];

/// One live AI row's cells under [`AI_LIVE_COLUMNS`], unescaped, each with whether it shows a
/// fault.
fn ai_live_cells(r: &AiLiveStats) -> [(String, bool); 15] {
    let plain = |value: String| (value, false);
    [
        plain(r.workload.clone()),
        plain(r.pipeline.clone()),
        plain(r.model.clone()),
        plain(r.orchestrator.clone()),
        plain(r.jobs.to_string()),
        (fmt_pct(r.success_rate), r.ok < r.jobs),
        plain(ms_as_s(r.time_to_first_frame_ms.p50)),
        plain(ms_as_s(r.time_to_first_frame_ms.max)),
        plain(fmt_num(r.output_fps_min)),
        plain(fmt_num(r.target_fps)),
        plain(ms_as_s(r.latency_p95_ms_max)),
        plain(r.stalls.to_string()),
        plain(ms_as_s(Some(r.stall_time_ms))),
        plain(r.unreadable_stamps.to_string()),
        (
            failures_cell(&r.failures, r.first_error.as_deref()),
            !r.failures.is_empty(),
        ),
    ]
}

/// The "AI requests by concurrency" columns.
const AI_LEVEL_COLUMNS: [&str; 7] = [
    "Workload",
    "Concurrency",
    "Requests",
    "Good",
    "Good answers/s",
    "Latency p50 (s)",
    "p95 (s)",
];

/// One concurrency level's cells under [`AI_LEVEL_COLUMNS`].
fn ai_level_cells(r: &AiLevelStats) -> [(String, bool); 7] {
    let plain = |value: String| (value, false);
    [
        plain(r.workload.clone()),
        plain(r.concurrency.to_string()),
        plain(r.requests.to_string()),
        (r.ok.to_string(), r.ok < r.requests),
        plain(fmt_num(r.throughput)),
        plain(ms_as_s(r.latency_ms.p50)),
        plain(ms_as_s(r.latency_ms.p95)),
    ]
}

/// A count that may be absent, for a table.
fn fmt_count(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}
