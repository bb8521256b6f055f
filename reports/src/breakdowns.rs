//! The breakdowns of a run: plain serializable structs (`Option` where no sample exists) that
//! [`crate::aggregate`] computes from the record tables and the JSON (`summary.json`'s
//! `breakdowns`), HTML, Markdown, JUnit and plot writers render.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Count, mean, extremes and percentiles of one numeric column (`None` when there is no sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Non-null samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
}

/// Segment × rendition statistics of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentStats {
    /// Segment × rendition records.
    pub segments: u64,
    /// Records with `ok`.
    pub ok: u64,
    /// Records without `ok`.
    pub failed: u64,
    /// `ok / segments`, `None` without records.
    pub success_rate: Option<f64>,
    /// Glass-to-glass latency (ms).
    pub latency_ms: Distribution,
    /// Upload → transcode → download round trip (ms).
    pub round_trip_ms: Distribution,
    /// Mean rendition download time (ms).
    pub download_ms_mean: Option<f64>,
    /// Mean measured bitrate (kbit/s).
    pub bitrate_kbps_mean: Option<f64>,
    /// Bytes received.
    pub bytes_total: u64,
    /// Mean segment duration (s).
    pub duration_s_mean: Option<f64>,
}

/// Quality statistics of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityStats {
    /// Samples with a VMAF score.
    pub samples: u64,
    /// Mean VMAF.
    pub vmaf_mean: Option<f64>,
    /// 5th percentile VMAF.
    pub vmaf_p5: Option<f64>,
    /// 25th percentile VMAF.
    pub vmaf_p25: Option<f64>,
    /// Median VMAF.
    pub vmaf_p50: Option<f64>,
    /// 75th percentile VMAF.
    pub vmaf_p75: Option<f64>,
    /// 95th percentile VMAF.
    pub vmaf_p95: Option<f64>,
    /// Lowest VMAF.
    pub vmaf_min: Option<f64>,
    /// Highest VMAF.
    pub vmaf_max: Option<f64>,
    /// Mean PSNR (dB).
    pub psnr_mean: Option<f64>,
    /// Lowest PSNR (dB).
    pub psnr_min: Option<f64>,
}

/// One group of a breakdown: its key values and its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group<T> {
    /// Key column → value, e.g. `{"rendition": "P360p30fps16x9"}`.
    pub key: BTreeMap<String, String>,
    /// The group's statistics.
    #[serde(flatten)]
    pub stats: T,
}

impl<T> Group<T> {
    /// The value of one key column.
    pub fn key(&self, name: &str) -> &str {
        self.key.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Segment statistics overall and per tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentBreakdowns {
    /// All records.
    pub overall: SegmentStats,
    /// Per workload.
    pub by_workload: Vec<Group<SegmentStats>>,
    /// Per rendition.
    pub by_rendition: Vec<Group<SegmentStats>>,
    /// Per workload and rendition.
    pub by_workload_rendition: Vec<Group<SegmentStats>>,
    /// Per stream.
    pub by_stream: Vec<Group<SegmentStats>>,
    /// Per orchestrator.
    pub by_orchestrator: Vec<Group<SegmentStats>>,
    /// Per region.
    pub by_region: Vec<Group<SegmentStats>>,
    /// Per orchestrator and region.
    pub by_orchestrator_region: Vec<Group<SegmentStats>>,
}

/// Quality statistics per tag; every group is also split by `origin` (network / reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityBreakdowns {
    /// Per origin.
    pub by_origin: Vec<Group<QualityStats>>,
    /// Per rendition and origin.
    pub by_rendition: Vec<Group<QualityStats>>,
    /// Per orchestrator and origin.
    pub by_orchestrator: Vec<Group<QualityStats>>,
}

/// Outcome counts of one check name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckGroupStats {
    /// Check name.
    pub check: String,
    /// Times it ran.
    pub total: u64,
    /// Times it held.
    pub passed: u64,
    /// Times it did not.
    pub failed: u64,
    /// `passed / total`.
    pub pass_rate: Option<f64>,
    /// The first failure's message.
    pub first_failure: Option<String>,
}

/// Ticket and redemption totals of one group (wei as `f64`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentStats {
    /// Tickets sent.
    pub tickets: u64,
    /// Winning tickets.
    pub winning_tickets: u64,
    /// Sum of face values sent.
    pub face_value_total_wei: f64,
    /// Sum of expected values sent.
    pub ev_total_wei: f64,
    /// Sum of winning tickets' face values.
    pub won_face_value_wei: f64,
    /// Pixels paid for.
    pub pixels_total: u64,
    /// Redemptions observed.
    pub redemptions: u64,
    /// Successful redemptions.
    pub redemptions_ok: u64,
    /// Face value redeemed successfully.
    pub redeemed_wei: f64,
}

/// Payment totals overall and per orchestrator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentBreakdowns {
    /// All tickets and redemptions.
    pub overall: PaymentStats,
    /// Per orchestrator.
    pub by_orchestrator: Vec<Group<PaymentStats>>,
}

/// One concurrency step of `lpt bench`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchStep {
    /// Concurrent sessions.
    pub sessions: u32,
    /// Encoder path of this step (the first segment's).
    pub encoder: String,
    /// Segments transcoded (attempts).
    pub segments: u64,
    /// Successful transcodes.
    pub ok: u64,
    /// Fraction of successful segments transcoded in no more than their own duration.
    pub real_time_fraction: Option<f64>,
    /// Transcode time ÷ segment duration over successful segments.
    pub transcode_ratio: Distribution,
}

/// One occurrence of a chaos event (a `chaos` record) and what it cost (its `recovery` records,
/// matched by event label and start time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosEventStats {
    /// The occurrence's label, `kind:target@at`.
    pub event: String,
    /// `kill`, `restart`, `chain_outage`, `chain_reorg`, `disk_full` or `network`.
    pub kind: String,
    /// The node it hit (`orchestrator-0`, `chain`, …).
    pub target: String,
    /// Start (unix ms).
    pub t_ms: i64,
    /// Start, seconds since the run's first record: the plots' time axis.
    pub start_s: f64,
    /// When it was over (unix ms); `None` for an event that lasts to the end of the run.
    pub end_ms: Option<i64>,
    /// `end_ms − t_ms` in seconds.
    pub duration_s: Option<f64>,
    /// Whether the run carried it out as written.
    pub ok: bool,
    /// What happened, or why it could not be done.
    pub message: Option<String>,
    /// Streams with figures for it: every stream that was running through it.
    pub streams_hit: u64,
    /// The longest failover time over those streams (ms).
    pub failover_time_ms_max: Option<f64>,
    /// Source segments it cost, summed over the streams.
    pub segments_lost: u64,
    /// The longest stall time over the streams (ms).
    pub stall_time_ms_max: Option<f64>,
    /// Streams that never delivered a good segment again.
    pub streams_not_recovered: u64,
    /// Winning tickets the orchestrators received around it.
    pub winners: u64,
    /// Of those, the ones never redeemed on chain, summed over the orchestrators.
    pub redemptions_lost: u64,
    /// The longest wait from receiving such a winner to its redemption (ms).
    pub redemption_delay_ms_max: Option<f64>,
}

impl ChaosEventStats {
    /// End, seconds since the run's first record, when it has one.
    pub fn end_s(&self) -> Option<f64> {
        Some(self.start_s + self.duration_s?)
    }
}

/// One HLS conformance rule's violations over a run (its `violation` records), with the first
/// one as the example a reader starts from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViolationStats {
    /// Rule ID, e.g. `HLS-TARGETDURATION-EXCEEDED`.
    pub rule: String,
    /// `must` or `should`.
    pub severity: String,
    /// Times the rule broke (the records' `occurrences`, summed).
    pub count: u64,
    /// Streams it broke in.
    pub streams: u64,
    /// When it first broke (unix ms).
    pub first_t_ms: i64,
    /// The stream of the first example.
    pub first_stream: String,
    /// Its rendition, when the fault was in one.
    pub first_rendition: Option<String>,
    /// The playlist or segment at fault.
    pub first_url: String,
    /// The line of the playlist at fault, when the fault was in a playlist's text.
    pub first_line: Option<u32>,
    /// What was seen.
    pub first_detail: String,
}

impl ViolationStats {
    /// Over `rows`: every violation, and those of a MUST.
    pub fn totals(rows: &[ViolationStats]) -> (u64, u64) {
        let total = rows.iter().map(|v| v.count).sum();
        let must = rows
            .iter()
            .filter(|v| v.severity == "must")
            .map(|v| v.count)
            .sum();
        (total, must)
    }

    /// Where the first example is: its URL, and `:line` when it has one.
    pub fn first_where(&self) -> String {
        match self.first_line {
            Some(line) => format!("{}:{line}", self.first_url),
            None => self.first_url.clone(),
        }
    }
}

/// What the browser players of one group (a workload, or a stream) saw: their `player` records,
/// each player being one stream × player number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewerQoe {
    /// Players started: distinct stream × player numbers with any record.
    pub players: u64,
    /// Players that ended with `ok` (played to the stream's end with no fatal error).
    pub ok: u64,
    /// Players that ended without `ok`; a player with no `ended` or `failed` record is neither.
    pub failed: u64,
    /// `ok / (ok + failed)`: the `player_success` rate, `None` when no player ended.
    pub success_rate: Option<f64>,
    /// Time to first frame (ms), one sample per player that showed one.
    pub ttff_ms: Distribution,
    /// Playback latency (ms): a stamped frame sent → shown on a player's screen.
    pub latency_ms: Distribution,
    /// Stalls after playback had started, summed over the players.
    pub stalls: u64,
    /// How long those stalls lasted, summed (ms).
    pub stall_ms_total: f64,
    /// Time from first frame to `ended` or `failed`, summed over the players that have both
    /// (ms); `None` when none has.
    pub played_ms_total: Option<f64>,
    /// The stall time of those players over `played_ms_total`: the share of watching time spent
    /// waiting.
    pub stall_ratio: Option<f64>,
    /// Frames the players decoded (the browser's `totalVideoFrames`, dropped ones included),
    /// each player's last total.
    pub decoded_frames: u64,
    /// Frames decoded too late to be shown, each player's last total.
    pub dropped_frames: u64,
    /// `dropped_frames / decoded_frames`, `None` when no frame was decoded.
    pub dropped_rate: Option<f64>,
    /// Rendition switches, summed over the players.
    pub level_switches: u64,
    /// The earliest failed player's error.
    pub first_failure: Option<String>,
}

/// Viewer QoE per workload and per stream; both empty when the run had no players.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayerBreakdowns {
    /// Per workload.
    pub by_workload: Vec<Group<ViewerQoe>>,
    /// Per stream, keyed by workload and stream.
    pub by_stream: Vec<Group<ViewerQoe>>,
}

impl PlayerBreakdowns {
    /// Whether the run had no player records, so the reports leave the section out.
    pub fn is_empty(&self) -> bool {
        self.by_workload.is_empty()
    }

    /// Over every workload: players started, ended ok, failed.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.by_workload.iter().fold((0, 0, 0), |(p, o, f), g| {
            (p + g.stats.players, o + g.stats.ok, f + g.stats.failed)
        })
    }
}

/// The AI probe's requests: one row per workload × pipeline × model × who answered, and one per
/// workload × concurrency (the sweep level, or the requests in flight when a rate's request went);
/// and its live video-to-video jobs, one row per workload × pipeline × model × who answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiBreakdowns {
    pub by_model: Vec<AiStats>,
    pub by_concurrency: Vec<AiLevelStats>,
    /// The live jobs (`ai_live` records); absent from `summary.json` when the run had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<AiLiveStats>,
}

impl AiBreakdowns {
    /// Whether the run had neither `ai` nor `ai_live` records, so the reports leave both
    /// sections out.
    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty() && self.live.is_empty()
    }
}

/// One pipeline and model of one `ai` workload, as one gateway or worker answered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiStats {
    pub workload: String,
    /// The pipeline's route without the slash (`text-to-image`).
    pub pipeline: String,
    pub model: String,
    /// Who answered (`local-ai-worker`, a gateway's host, an orchestrator's address).
    pub orchestrator: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered 200 with an output that passed validation.
    pub ok: u64,
    /// `ok ÷ requests`.
    pub success_rate: Option<f64>,
    /// Good answers per second, from the first request's sending to the last answer.
    pub throughput: Option<f64>,
    /// Latency of the good answers (ms): sending → the output's last byte.
    pub latency_ms: Distribution,
    /// Mean time from the request body handed over to the answer's headers (ms).
    pub inference_ms_mean: Option<f64>,
    /// Requests sent after the model sat idle.
    pub cold_starts: u64,
    /// The slowest of them (ms).
    pub cold_latency_ms_max: Option<f64>,
    /// Failed requests by reason, most frequent first.
    pub failures: Vec<ReasonCount>,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// The live video-to-video jobs of one pipeline and model of one `ai` workload, as one gateway or
/// worker answered them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiLiveStats {
    pub workload: String,
    /// The pipeline's route without the slash (`live-video-to-video`).
    pub pipeline: String,
    pub model: String,
    /// Who answered (a gateway's host, an orchestrator's name), `unknown` when the records
    /// name none.
    pub orchestrator: String,
    /// Jobs started.
    pub jobs: u64,
    /// Jobs that kept the target frame rate and never stalled for good.
    pub ok: u64,
    /// `ok ÷ jobs`.
    pub success_rate: Option<f64>,
    /// First input byte sent → first output frame (ms), over the jobs that had one.
    pub time_to_first_frame_ms: Distribution,
    /// The lowest output frame rate of any job.
    pub output_fps_min: Option<f64>,
    /// The frame rate the output had to sustain (the highest over the jobs).
    pub target_fps: Option<f64>,
    /// The worst job's 95th percentile output frame latency (ms).
    pub latency_p95_ms_max: Option<f64>,
    /// Stalls of a player fed by the outputs, summed over the jobs.
    pub stalls: u64,
    /// Their total length (ms).
    pub stall_time_ms: f64,
    /// Output frames whose stamp could not be read, summed over the jobs.
    pub unreadable_stamps: u64,
    /// Failed jobs by reason, most frequent first.
    pub failures: Vec<ReasonCount>,
    /// The earliest failed job's error.
    pub first_error: Option<String>,
}

/// Requests, or live jobs, failed for one reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// A stable code (`http_status`, `wrong_size`, …).
    pub reason: String,
    pub count: u64,
}

/// The requests of one `ai` workload sent at one concurrency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiLevelStats {
    pub workload: String,
    /// The sweep level, or the requests in flight when a rate's request was sent.
    pub concurrency: u32,
    pub requests: u64,
    pub ok: u64,
    /// Good answers per second at this level.
    pub throughput: Option<f64>,
    /// Latency of every request at this level (ms).
    pub latency_ms: Distribution,
}

/// One remote transcoder of an orchestrator's pool, as the pool probe reconciled it at the end of
/// the run (its `pool` record): what the orchestrator took from it, and its pixels three ways —
/// as the probe decoded them, as the orchestrator's ledger counted (billed and paid) them, and as
/// the transcoder claimed them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolTranscoderStats {
    /// The orchestrator, as the stack names it (`orchestrator-0`).
    pub orchestrator: String,
    /// The transcoder, by the name it registered with (`transcoder-0-1`).
    pub transcoder: String,
    /// When the pool was reconciled (unix ms).
    pub t_ms: i64,
    /// Answers accepted.
    pub segments: u64,
    /// Answers refused by a spot check (redone elsewhere).
    pub refused: u64,
    /// Answers spot-checked (refused ones included).
    pub checked: u64,
    /// Segments it was given and went away with (disconnected, or past the task deadline).
    pub lost: u64,
    /// Its share of the answers its orchestrator accepted from the pool: `segments` over the
    /// orchestrator's rows' `segments`; `None` when the orchestrator accepted none.
    pub segment_share: Option<f64>,
    /// Renditions it made that the probe pulled and decoded.
    pub matched: u64,
    /// Pixels of those renditions as the probe decoded them.
    pub probe_pixels: u64,
    /// Their pixels as the orchestrator counted (and billed and paid) them.
    pub counted_pixels: u64,
    /// Their pixels as the transcoder claimed them.
    pub claimed_pixels: u64,
    /// `|counted − probe| ÷ probe`: 0 when the ledger is exact; `None` without probe pixels.
    pub accounting_error: Option<f64>,
    /// `(claimed − probe) ÷ probe`: above 0 when the transcoder inflates its pixels; `None`
    /// without probe pixels.
    pub claim_error: Option<f64>,
    /// Its fraction of the window's payouts.
    pub payout_share: Option<f64>,
    /// What it is paid for the window, wei (decimal, exact).
    pub payout_wei: Option<String>,
    /// Media seconds per wall second over its answers.
    pub realtime_ratio: Option<f64>,
    /// Mean time the orchestrator spent checking one of its answers (ms).
    pub check_ms: Option<f64>,
    /// Its answers up to and including the first one a check refused; `None` when none was.
    pub cheater_detected_after: Option<u64>,
    /// Renditions it made, accepted by the orchestrator, that the probe found bad.
    pub bad_segments_delivered: u64,
}

impl PoolTranscoderStats {
    /// Whether the orchestrator's ledger disagrees with the pixels the probe decoded.
    pub fn accounting_faulty(&self) -> bool {
        self.accounting_error.is_some_and(|e| e != 0.0)
    }

    /// Whether the transcoder's claim disagrees with the pixels the probe decoded (above them
    /// when it inflates).
    pub fn claim_faulty(&self) -> bool {
        self.claim_error.is_some_and(|e| e != 0.0)
    }

    /// Whether anything about this transcoder went wrong: a wrong ledger or claim, a refused,
    /// lost or bad segment.
    pub fn is_faulty(&self) -> bool {
        self.accounting_faulty()
            || self.claim_faulty()
            || self.refused > 0
            || self.lost > 0
            || self.cheater_detected_after.is_some()
            || self.bad_segments_delivered > 0
    }
}

/// A time bucket of one rendition's segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketPoint {
    /// Bucket start, seconds since the run's first record.
    pub t_s: f64,
    /// Rendition, or `all`.
    pub rendition: String,
    /// Records in the bucket.
    pub segments: u64,
    /// `ok / segments`.
    pub success_rate: f64,
    /// Median latency (ms).
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency (ms).
    pub latency_p95_ms: Option<f64>,
}

/// Plot data that is too bulky for `summary.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotData {
    /// Bucket width (s).
    pub bucket_s: f64,
    /// Per rendition and bucket, plus rendition `all`.
    pub buckets: Vec<BucketPoint>,
    /// Latency CDF points per rendition: (latency ms, cumulative fraction 0–1), at most
    /// `CDF_POINTS` + 1 per rendition.
    pub latency_cdf: BTreeMap<String, Vec<(f64, f64)>>,
}

/// Points kept per latency CDF line.
pub const CDF_POINTS: usize = 400;

/// Everything computed from the records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    /// First record time (unix ms).
    pub first_record_ms: Option<i64>,
    /// Last record time (unix ms).
    pub last_record_ms: Option<i64>,
    /// Segment statistics.
    pub segments: SegmentBreakdowns,
    /// Quality statistics.
    pub quality: QualityBreakdowns,
    /// Check outcomes per check name.
    pub checks: Vec<CheckGroupStats>,
    /// Payments.
    pub payments: PaymentBreakdowns,
    /// Bench steps, by sessions ascending.
    pub bench: Vec<BenchStep>,
    /// Chaos event occurrences, by start time (empty when the run had none, and when read from a
    /// summary without the key).
    #[serde(default)]
    pub chaos: Vec<ChaosEventStats>,
    /// HLS conformance rules broken, one row per rule: `must` before `should`, then the most
    /// broken first (empty when none was, and when read from a summary without the key).
    #[serde(default)]
    pub violations: Vec<ViolationStats>,
    /// What browser players saw (empty when the run had none, and when read from a summary
    /// without the key).
    #[serde(default)]
    pub players: PlayerBreakdowns,
    /// The transcoder pools, one row per orchestrator × transcoder ordered by them (empty when
    /// the run had no `pool` records, and when read from a summary without the key).
    #[serde(default)]
    pub pool: Vec<PoolTranscoderStats>,
    /// The AI probe's requests (empty when the run had no `ai` records, and when read from a
    /// summary without the key).
    #[serde(default)]
    pub ai: AiBreakdowns,
    /// Content problems found while aggregating, as sentences for the report's "missing" list
    /// (not serialized: `summary.json` has them in `report.missing`).
    #[serde(skip)]
    pub problems: Vec<String>,
    /// Plot series (not serialized).
    #[serde(skip)]
    pub plot: PlotData,
}
