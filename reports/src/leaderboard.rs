//! `leaderboard.json`: one record per (orchestrator, region) in the public leaderboard's record
//! format (PROTOCOL.md §7), plus the scores the leaderboard would compute from them.
//!
//! Design decisions:
//! - A leaderboard "segment" is a source segment, not a rendition: it counts as received only when
//!   every rendition of it arrived, and its round trip is that of its slowest rendition (the
//!   broadcaster can play it only then). Timings are means over received segments, in seconds;
//!   a timing nobody measured is written as `0`, as the Go orch-tester does.
//! - The round trip is `round_trip_ms` when the probe measured it (direct-to-orchestrator), else
//!   the glass-to-glass `latency_ms`.
//! - The file holds `records` (each exactly a §7 record, postable as-is), `aggregated` in the
//!   shape of `GET /api/aggregated_stats`, with `round_trip_score = 1 − exp(−seg_duration /
//!   round_trip_time)` and `score = success_rate × round_trip_score` computed locally, and
//!   [`extras`] (quality and price, which the public leaderboard does not have) beside them.

pub mod extras;

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregate::UNKNOWN_REGION;
use crate::error::ReportError;
pub use extras::{ExtrasMap, LeaderboardExtras, PaymentExtras, QualityExtras};

/// File name in a run directory.
pub const LEADERBOARD_FILE: &str = "leaderboard.json";

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
    /// Source segments with every rendition received.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// One §7 record per (orchestrator, region).
    pub records: Vec<LeaderboardRecord>,
    /// orchestrator → region → scores, as `GET /api/aggregated_stats` returns them.
    pub aggregated: BTreeMap<String, BTreeMap<String, LeaderboardScore>>,
    /// orchestrator → region → quality and price (absent from files written before extras).
    #[serde(default)]
    pub extras: ExtrasMap,
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

/// The public score formulas.
pub fn score(record: &LeaderboardRecord) -> LeaderboardScore {
    let round_trip_score = if record.segments_received == 0 || record.seg_duration <= 0.0 {
        0.0
    } else if record.round_trip_time <= 0.0 {
        1.0
    } else {
        1.0 - (-record.seg_duration / record.round_trip_time).exp()
    };
    LeaderboardScore {
        success_rate: record.success_rate,
        round_trip_score,
        score: record.success_rate * round_trip_score,
    }
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
    let segments = inputs.segments;
    if segments.height() == 0 {
        return Ok(None);
    }
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
    };
    let secs = |ms: Option<f64>| ms.map(|v| v / 1000.0).unwrap_or(0.0);
    for row in 0..totals.height() {
        let orchestrator = text(&totals, "orchestrator", row).unwrap_or_default();
        let region = text(&totals, "region", row).unwrap_or_default();
        let sent = num(&totals, "sent", row).unwrap_or(0.0) as u64;
        let received = num(&totals, "received", row).unwrap_or(0.0) as u64;
        let record = LeaderboardRecord {
            success_rate: if sent > 0 {
                received as f64 / sent as f64
            } else {
                0.0
            },
            round_trip_time: secs(num(&totals, "rtt_ms", row)),
            seg_duration: num(&totals, "duration_s", row).unwrap_or(0.0),
            segments_sent: sent,
            segments_received: received,
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
        board
            .aggregated
            .entry(orchestrator)
            .or_default()
            .insert(region, score(&record));
        board.records.push(record);
    }
    board.extras = extras::build(&board.records, inputs)?;
    Ok(Some(board))
}
