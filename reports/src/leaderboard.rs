//! `leaderboard.json`: one record per (orchestrator, region) in the public leaderboard's record
//! format (PROTOCOL.md §7), plus the scores the leaderboard would compute from them.
//!
//! Design decisions:
//! - A leaderboard "segment" is a source segment, not a rendition: it counts as received only when
//!   every rendition of it arrived, and its round trip is that of its slowest rendition (the
//!   broadcaster can play it only then). `success_rate` is received ÷ sent source segments.
//!   `segments_received` counts *renditions* received, as the public tester (stream-tester's
//!   orch-tester) writes it: 15 segments of a 2-rendition ladder all received are 15 sent, 30
//!   received. Timings are means over received segments, in seconds; a timing nobody measured is
//!   written as `0`, as the Go orch-tester does.
//! - The round trip is `round_trip_ms` when the probe measured it (direct-to-orchestrator), else
//!   the glass-to-glass `latency_ms`.
//! - An orchestrator named by its address is written in lowercase hex ([`orchestrator_id`]), as
//!   the public leaderboard stores and is queried by it (it compares addresses as plain strings);
//!   every input table is normalised before grouping, so two spellings of one address are one
//!   orchestrator.
//! - The file holds `records` (each exactly a §7 record, postable as-is), `aggregated` in the
//!   shape of `GET /api/aggregated_stats` computed locally by [`aggregate`] exactly as
//!   leaderboard-serverless does (means per (orchestrator, region), then [`score_of`]), and
//!   [`extras`] (quality and price, which the public leaderboard does not have) beside them.
//! - AI probe requests become AI records ([`ai`]): `ai_records` (each a leaderboard-serverless
//!   `models.Stats` AI record, postable as-is), `ai_aggregated` (the public AI scores per pipeline
//!   and model), `ai_median_round_trip_time` (the medians those scores are relative to) and
//!   `ai_ours` (our score). They are added by [`with_ai`] and absent when a run made no AI request.

pub mod ai;
pub mod extras;

use std::borrow::Cow;
use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregate::UNKNOWN_REGION;
use crate::error::ReportError;
pub use extras::{ExtrasMap, LeaderboardExtras, PaymentExtras, QualityExtras};

/// File name in a run directory.
pub const LEADERBOARD_FILE: &str = "leaderboard.json";

/// The checked-in JSON schema of that file, relative to the workspace root.
pub const SCHEMA_PATH: &str = "reports/schema/leaderboard.schema.json";

/// One error kind seen against an orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardError {
    /// Error code.
    pub error_code: String,
    /// First message seen with it.
    pub message: String,
    /// Segments that failed with it.
    pub count: u64,
}

/// A §7 record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRecord {
    /// Region the probe ran from.
    pub region: String,
    /// Orchestrator address.
    pub orchestrator: String,
    /// Received ÷ sent (0–1).
    pub success_rate: f64,
    /// Mean round trip of received segments (s).
    pub round_trip_time: f64,
    /// Mean segment duration (s).
    pub seg_duration: f64,
    /// Source segments sent.
    pub segments_sent: u64,
    /// Renditions received (up to segments sent × ladder renditions), as the public tester counts.
    pub segments_received: u64,
    /// Mean upload time (s).
    pub upload_time: f64,
    /// Mean download time (s).
    pub download_time: f64,
    /// Mean transcode time (s).
    pub transcode_time: f64,
    /// Errors by code.
    pub errors: Vec<LeaderboardError>,
    /// When the test ended (unix s).
    pub timestamp: i64,
}

/// The scores of one (orchestrator, region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardScore {
    /// Success rate (0–1).
    pub success_rate: f64,
    /// `1 − exp(−seg_duration / round_trip_time)`.
    pub round_trip_score: f64,
    /// `success_rate × round_trip_score`.
    pub score: f64,
}

/// The content of `leaderboard.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// One §7 record per (orchestrator, region).
    pub records: Vec<LeaderboardRecord>,
    /// orchestrator → region → scores, as `GET /api/aggregated_stats` returns them.
    pub aggregated: AggregatedScores,
    /// orchestrator → region → quality and price (absent from files written before extras).
    #[serde(default)]
    pub extras: ExtrasMap,
    /// One AI record per (orchestrator, region, pipeline, model, warm or cold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ai_records: Vec<ai::AiLeaderboardRecord>,
    /// pipeline → model → orchestrator → region → public AI scores.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ai_aggregated: ai::AiAggregatedScores,
    /// pipeline → model → the median round trip (s) the public AI scores are relative to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ai_median_round_trip_time: ai::AiMedians,
    /// pipeline → model → orchestrator → region → our AI scores.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ai_ours: ai::AiOurScores,
}

/// The record tables a leaderboard is built from (the `RecordFrames` of a run).
#[derive(Debug, Clone, Copy)]
pub struct LeaderboardInputs<'a> {
    /// `segment` records: the §7 records.
    pub segments: &'a DataFrame,
    /// `quality` records: VMAF extras.
    pub quality: &'a DataFrame,
    /// `ticket` records: price extras.
    pub tickets: &'a DataFrame,
    /// `redemption` records: price extras.
    pub redemptions: &'a DataFrame,
}

/// orchestrator → region → scores, as `GET /api/aggregated_stats` returns them.
pub type AggregatedScores = BTreeMap<String, BTreeMap<String, LeaderboardScore>>;

/// An orchestrator as the public leaderboard keys it: an address (`0x` and 40 hex digits) in
/// lowercase; anything else (a service URI when the address is unknown) unchanged.
pub fn orchestrator_id(orchestrator: &str) -> Cow<'_, str> {
    let is_address = orchestrator.len() == 42
        && orchestrator[..2].eq_ignore_ascii_case("0x")
        && orchestrator[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if is_address && orchestrator.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(orchestrator.to_ascii_lowercase())
    } else {
        Cow::Borrowed(orchestrator)
    }
}

/// The public score of a success rate, segment duration and round trip, as leaderboard-serverless
/// computes it (v1.0.0 `api/aggregated_stats.go`, master `score/stats_scorer.go` for transcoding):
/// `round_trip_score = 1 − e^−(seg_duration / round_trip_time)`, except that a round trip of 0
/// (nothing measured) scores 0, and `score = success_rate × round_trip_score`.
pub fn score_of(success_rate: f64, seg_duration: f64, round_trip_time: f64) -> LeaderboardScore {
    let round_trip_score = if round_trip_time == 0.0 {
        0.0
    } else {
        1.0 - (-(seg_duration / round_trip_time)).exp()
    };
    LeaderboardScore {
        success_rate,
        round_trip_score,
        score: success_rate * round_trip_score,
    }
}

/// The public score of one record.
pub fn score(record: &LeaderboardRecord) -> LeaderboardScore {
    score_of(
        record.success_rate,
        record.seg_duration,
        record.round_trip_time,
    )
}

/// The scores `GET /api/aggregated_stats` returns for these records: per (orchestrator, region),
/// the means of `success_rate`, `seg_duration` and `round_trip_time` over its records, then
/// [`score_of`] those means (leaderboard-serverless averages each field in SQL, then scores).
pub fn aggregate(records: &[LeaderboardRecord]) -> AggregatedScores {
    let mut sums: BTreeMap<(&str, &str), [f64; 4]> = BTreeMap::new();
    for r in records {
        let s = sums
            .entry((r.orchestrator.as_str(), r.region.as_str()))
            .or_default();
        s[0] += r.success_rate;
        s[1] += r.seg_duration;
        s[2] += r.round_trip_time;
        s[3] += 1.0;
    }
    let mut out = AggregatedScores::new();
    for ((orchestrator, region), [success, duration, round_trip, n]) in sums {
        out.entry(orchestrator.to_string()).or_default().insert(
            region.to_string(),
            score_of(success / n, duration / n, round_trip / n),
        );
    }
    out
}

/// The table with its `orchestrator` column (when it has a text one) in [`orchestrator_id`] form.
fn with_orchestrator_ids(df: &DataFrame) -> Result<DataFrame, ReportError> {
    let Some(ids) = df
        .column("orchestrator")
        .ok()
        .and_then(|c| c.str().ok())
        .map(|c| {
            c.iter()
                .map(|o| o.map(orchestrator_id))
                .collect::<StringChunked>()
        })
    else {
        return Ok(df.clone());
    };
    let mut out = df.clone();
    out.replace("orchestrator", ids.into_column())
        .map_err(ReportError::polars("leaderboard orchestrator ids"))?;
    Ok(out)
}

fn num(df: &DataFrame, name: &str, row: usize) -> Option<f64> {
    let c = df.column(name).ok()?.cast(&DataType::Float64).ok()?;
    c.f64().ok()?.get(row).filter(|v| v.is_finite())
}

fn text(df: &DataFrame, name: &str, row: usize) -> Option<String> {
    let c = df.column(name).ok()?.cast(&DataType::String).ok()?;
    c.str().ok()?.get(row).map(str::to_string)
}

/// Builds the leaderboard from a run's tables; `None` when no segment record names an
/// orchestrator.
pub fn build(
    inputs: LeaderboardInputs<'_>,
    timestamp_s: i64,
) -> Result<Option<Leaderboard>, ReportError> {
    if inputs.segments.height() == 0 {
        return Ok(None);
    }
    let (segments, quality, tickets, redemptions) = (
        with_orchestrator_ids(inputs.segments)?,
        with_orchestrator_ids(inputs.quality)?,
        with_orchestrator_ids(inputs.tickets)?,
        with_orchestrator_ids(inputs.redemptions)?,
    );
    let inputs = LeaderboardInputs {
        segments: &segments,
        quality: &quality,
        tickets: &tickets,
        redemptions: &redemptions,
    };
    let f = |n: &str| col(n).cast(DataType::Float64);
    let per_segment = segments
        .clone()
        .lazy()
        .filter(col("orchestrator").is_not_null())
        .with_column(col("region").fill_null(lit(UNKNOWN_REGION)))
        .group_by([
            col("orchestrator"),
            col("region"),
            col("stream"),
            col("seq"),
        ])
        .agg([
            col("ok").all(true).alias("ok"),
            f("ok").sum().alias("renditions_ok"),
            f("duration_s").max().alias("duration_s"),
            f("round_trip_ms")
                .max()
                .fill_null(f("latency_ms").max())
                .alias("rtt_ms"),
            f("upload_ms").max().alias("upload_ms"),
            f("transcode_ms").max().alias("transcode_ms"),
            f("download_ms").max().alias("download_ms"),
            col("error").drop_nulls().first().alias("error"),
            col("message").drop_nulls().first().alias("message"),
        ]);
    let keys = [col("orchestrator"), col("region")];
    let okf = |n: &str| f(n).filter(col("ok")).mean().alias(n);
    let totals = per_segment
        .clone()
        .group_by(keys.clone())
        .agg([
            len().cast(DataType::Float64).alias("sent"),
            f("ok").sum().alias("received"),
            f("renditions_ok").sum().alias("renditions_received"),
            okf("rtt_ms"),
            f("duration_s").mean().alias("duration_s"),
            okf("upload_ms"),
            okf("transcode_ms"),
            okf("download_ms"),
        ])
        .sort(["orchestrator", "region"], SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("leaderboard totals"))?;
    if totals.height() == 0 {
        return Ok(None);
    }
    let errors = per_segment
        .filter(col("ok").not())
        .with_column(col("error").fill_null(lit("unknown")))
        .group_by([col("orchestrator"), col("region"), col("error")])
        .agg([
            len().cast(DataType::Float64).alias("count"),
            col("message").drop_nulls().first().alias("message"),
        ])
        .sort(
            ["orchestrator", "region", "error"],
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(ReportError::polars("leaderboard errors"))?;
    let mut errs: BTreeMap<(String, String), Vec<LeaderboardError>> = BTreeMap::new();
    for row in 0..errors.height() {
        let key = (
            text(&errors, "orchestrator", row).unwrap_or_default(),
            text(&errors, "region", row).unwrap_or_default(),
        );
        let code = text(&errors, "error", row).unwrap_or_default();
        errs.entry(key).or_default().push(LeaderboardError {
            message: text(&errors, "message", row).unwrap_or_else(|| code.clone()),
            error_code: code,
            count: num(&errors, "count", row).unwrap_or(0.0) as u64,
        });
    }
    let mut board = Leaderboard {
        records: Vec::new(),
        aggregated: BTreeMap::new(),
        extras: ExtrasMap::new(),
        ..Leaderboard::default()
    };
    let secs = |ms: Option<f64>| ms.map(|v| v / 1000.0).unwrap_or(0.0);
    for row in 0..totals.height() {
        let orchestrator = text(&totals, "orchestrator", row).unwrap_or_default();
        let region = text(&totals, "region", row).unwrap_or_default();
        let sent = num(&totals, "sent", row).unwrap_or(0.0) as u64;
        let received = num(&totals, "received", row).unwrap_or(0.0) as u64;
        let renditions_received = num(&totals, "renditions_received", row).unwrap_or(0.0) as u64;
        let record = LeaderboardRecord {
            success_rate: if sent > 0 {
                received as f64 / sent as f64
            } else {
                0.0
            },
            round_trip_time: secs(num(&totals, "rtt_ms", row)),
            seg_duration: num(&totals, "duration_s", row).unwrap_or(0.0),
            segments_sent: sent,
            segments_received: renditions_received,
            upload_time: secs(num(&totals, "upload_ms", row)),
            download_time: secs(num(&totals, "download_ms", row)),
            transcode_time: secs(num(&totals, "transcode_ms", row)),
            errors: errs
                .remove(&(orchestrator.clone(), region.clone()))
                .unwrap_or_default(),
            timestamp: timestamp_s,
            region: region.clone(),
            orchestrator: orchestrator.clone(),
        };
        board.records.push(record);
    }
    board.aggregated = aggregate(&board.records);
    board.extras = extras::build(&board.records, inputs)?;
    Ok(Some(board))
}

/// Adds the AI records built from the `ai` table (`RecordFrames::ai`) to a leaderboard from
/// [`build`]: a run with AI requests and no segments gets a leaderboard with no transcoding
/// record. Requests without a region take `default_region`. `None` when there is neither.
pub fn with_ai(
    board: Option<Leaderboard>,
    ai: &DataFrame,
    timestamp_s: i64,
    default_region: Option<&str>,
) -> Result<Option<Leaderboard>, ReportError> {
    let built = ai::build(ai, timestamp_s, default_region)?;
    if built.records.is_empty() {
        return Ok(board);
    }
    let mut board = board.unwrap_or_default();
    board.ai_records = built.records;
    board.ai_aggregated = built.aggregated;
    board.ai_median_round_trip_time = built.medians;
    board.ai_ours = built.ours;
    Ok(Some(board))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::RecordFrames;
    use observation::record::{Record, SegmentRecord, TicketRecord};

    const EIP55: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const LOWER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

    fn segment(orch: &str, rendition: &str, seq: u64, round_trip_ms: Option<f64>) -> Record {
        let ok = round_trip_ms.is_some() || rendition.ends_with("untimed");
        SegmentRecord {
            t_ms: 1_795_309_323_000 + seq as i64 * 2000,
            workload: "board".into(),
            stream: format!("s-{orch}"),
            rendition: rendition.into(),
            seq,
            orchestrator: Some(orch.into()),
            region: Some("FRA".into()),
            ok,
            error: (!ok).then(|| "download_timeout".to_string()),
            message: None,
            duration_s: Some(2.0),
            latency_ms: None,
            upload_ms: None,
            transcode_ms: None,
            download_ms: None,
            round_trip_ms,
            bytes: None,
            bitrate_kbps: None,
            width: None,
            height: None,
            frames: None,
        }
        .into()
    }

    fn board(records: &[Record]) -> Leaderboard {
        let frames = RecordFrames::from_records(records).unwrap();
        build(
            LeaderboardInputs {
                segments: &frames.segments,
                quality: &frames.quality,
                tickets: &frames.tickets,
                redemptions: &frames.redemptions,
            },
            1_795_309_330,
        )
        .unwrap()
        .expect("a leaderboard")
    }

    #[test]
    fn an_eip55_address_is_written_in_lowercase_and_both_spellings_are_one_orchestrator() {
        let ticket = TicketRecord {
            t_ms: 1_795_309_323_000,
            workload: None,
            stream: None,
            orchestrator: EIP55.into(),
            region: None,
            face_value_wei: 1e12,
            win_prob: 0.001,
            ev_wei: 1e9,
            won: false,
            pixels: Some(1_000_000),
            price_wei_per_pixel: Some(1000.0),
            recipient_rand_hash: None,
            sender_nonce: None,
        };
        let b = board(&[
            segment(EIP55, "a", 1, Some(1000.0)),
            segment(LOWER, "a", 2, Some(1000.0)),
            ticket.into(),
        ]);
        assert_eq!(b.records.len(), 1, "{:#?}", b.records);
        assert_eq!(b.records[0].orchestrator, LOWER);
        assert_eq!(b.records[0].segments_sent, 2, "both spellings' segments");
        assert!(b.aggregated.contains_key(LOWER), "{:?}", b.aggregated);
        assert!(
            b.extras[LOWER]["FRA"].payments.is_some(),
            "the ticket's EIP-55 address matches: {:?}",
            b.extras
        );
        assert_eq!(
            orchestrator_id("https://Orch.example:8935"),
            "https://Orch.example:8935"
        );
        assert_eq!(orchestrator_id("0xABC"), "0xABC", "not an address");
    }

    #[test]
    fn segments_received_counts_renditions_as_the_public_tester_does() {
        // 3 segments × 2 renditions; seq 3 lost one rendition.
        let b = board(&[
            segment(LOWER, "low", 1, Some(900.0)),
            segment(LOWER, "high", 1, Some(1000.0)),
            segment(LOWER, "low", 2, Some(900.0)),
            segment(LOWER, "high", 2, Some(1000.0)),
            segment(LOWER, "low", 3, Some(900.0)),
            segment(LOWER, "high", 3, None),
        ]);
        let r = &b.records[0];
        assert_eq!((r.segments_sent, r.segments_received), (3, 5));
        assert_eq!(r.success_rate, 2.0 / 3.0, "segments with every rendition");
        assert_eq!(r.round_trip_time, 1.0, "the slowest rendition's");
    }

    #[test]
    fn a_round_trip_of_zero_scores_zero_as_leaderboard_serverless_does() {
        assert_eq!(score_of(1.0, 2.0, 0.0).round_trip_score, 0.0);
        assert_eq!(score_of(1.0, 2.0, 0.0).score, 0.0);
        assert_eq!(score_of(0.5, 0.0, 1.0).score, 0.0);
        let s = score_of(0.5, 2.0, 1.5);
        assert_eq!(s.round_trip_score, 1.0 - (-(2.0f64 / 1.5)).exp());
        assert_eq!(s.score, 0.5 * s.round_trip_score);
        // Received segments without a round-trip measure: the record says 0 s, the score 0.
        let b = board(&[segment(LOWER, "untimed", 1, None)]);
        assert_eq!(b.records[0].success_rate, 1.0);
        assert_eq!(b.records[0].round_trip_time, 0.0);
        assert_eq!(b.aggregated[LOWER]["FRA"].score, 0.0);
    }

    #[test]
    fn aggregate_averages_each_field_then_scores_like_the_server() {
        let record = |success_rate, seg_duration, round_trip_time| LeaderboardRecord {
            region: "FRA".into(),
            orchestrator: LOWER.into(),
            success_rate,
            round_trip_time,
            seg_duration,
            segments_sent: 4,
            segments_received: 8,
            upload_time: 0.0,
            download_time: 0.0,
            transcode_time: 0.0,
            errors: Vec::new(),
            timestamp: 1_795_309_330,
        };
        let got = aggregate(&[record(1.0, 2.0, 1.0), record(0.5, 2.0, 3.0)]);
        assert_eq!(got[LOWER]["FRA"], score_of(0.75, 2.0, 2.0));
        assert_ne!(
            got[LOWER]["FRA"].score,
            (score(&record(1.0, 2.0, 1.0)).score + score(&record(0.5, 2.0, 3.0)).score) / 2.0,
            "not the mean of the records' scores"
        );
    }
}
