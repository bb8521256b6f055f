//! AI records of `leaderboard.json`: the `ai` table (one row per AI probe request) as
//! leaderboard-serverless's `models.Stats` AI records, with the scores the public leaderboard
//! computes for them and ours beside them.
//!
//! The AI record form, the AI score and how its median is taken are those of leaderboard-serverless
//! after v1.0.0 (master, "Add AI Job Support": `models/stats.go`, `score/stats_scorer.go`,
//! `postgres/postgres.go`); v1.0.0 has no AI records.
//!
//! Design decisions:
//! - One record per (orchestrator, region, pipeline, model, model state): requests that found the
//!   model warm and those that were cold starts are separate records (`model_is_warm` true and
//!   false), so a cold start's latency is not mixed into warm latency.
//! - A record is exactly a `models.Stats` in Go's JSON form: `region`, `orchestrator`,
//!   `success_rate`, `round_trip_time`, `errors` (`[]` when none), `timestamp`, then `model`,
//!   `model_is_warm`, `pipeline`, `input_parameters`, `response_payload`, each omitted when empty or
//!   false as Go's `omitempty` does. No transcoding field is written (all would be 0, omitted).
//! - `success_rate` is ok ÷ requests; `round_trip_time` the mean latency (s) of the successful
//!   requests. When none succeeded it is the mean latency of all of them: the public AI tester
//!   writes a failed request's round trip too (docs/sample-json/ai-tester.json: success 0, round
//!   trip 2.2 s), and a 0 would lower the server's mean round trip of the node.
//! - `errors` groups the failed requests by `reason` (`unknown` when none was given), with the
//!   first request's `error` as the message (the code when there was none), sorted by code.
//! - `input_parameters` is the first request's `params`, `response_payload` the first successful
//!   request's `response` (both compact JSON strings), "first" by send time then request number.
//! - An unknown region is [`UNKNOWN_REGION`] as in the transcoding records; an unknown orchestrator
//!   (the probe talked to a gateway) is [`UNKNOWN_ORCHESTRATOR`]: the transcoding records leave
//!   such segments out, but an AI probe often cannot know who served it, and its requests still
//!   say how the pipeline behaved. A request without a pipeline or a model is left out (the server
//!   would take the record for a transcoding one).
//! - The public scores ([`aggregate`]) are computed as the server answers
//!   `GET /api/aggregated_stats?pipeline=P&model=M`: per (orchestrator, region) the means of
//!   `success_rate` and `round_trip_time` over its records (warm and cold together: the server does
//!   not group by model state), `round_trip_score = e^(−k·rtt)` with `k = −ln 0.8 ÷ median`, and
//!   `score = 0.65·success + 0.35·round_trip_score` (0 when success is 0). The median is
//!   PostgreSQL's `PERCENTILE_CONT(0.5)` over the round trips of the records with
//!   `success_rate = 1` and a round trip ≠ 0, of every orchestrator and region, of that pipeline
//!   and model ([`median_round_trip_time`]). Where the server would compute a non-finite value
//!   (no such record and a round trip of 0: NaN, which it cannot encode) we write 0.
//! - Our score ([`AiOurScore`]) is per (pipeline, model, orchestrator, region) from the requests
//!   themselves: `success_rate × e^(−k·p95)`, with the public `k` and the 95th percentile
//!   (nearest rank) of the successful warm requests' latencies (of all successful ones when none
//!   was warm). Multiplying punishes failures harder than the public weighted sum (half the
//!   requests failing caps the score at 0.5), and the p95 sees tail latency the mean hides.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AggregatedScores, LeaderboardError, LeaderboardScore, orchestrator_id};
use crate::aggregate::UNKNOWN_REGION;
use crate::error::ReportError;

/// The orchestrator of a record whose requests did not say who served them.
pub const UNKNOWN_ORCHESTRATOR: &str = "unknown";

/// The round-trip score the median round trip gets (`desiredScoreAtMedian`).
pub const DESIRED_SCORE_AT_MEDIAN: f64 = 0.8;

/// Weight of the success rate in the public AI score (`weightSuccess`).
pub const WEIGHT_SUCCESS: f64 = 0.65;

/// Weight of the round-trip score in the public AI score (`weightRTT`).
pub const WEIGHT_RTT: f64 = 0.35;

/// The percentile of latency our score uses.
pub const OUR_LATENCY_PERCENTILE: f64 = 0.95;

fn is_false(b: &bool) -> bool {
    !*b
}

/// An AI record, in leaderboard-serverless's `models.Stats` JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiLeaderboardRecord {
    /// Region the probe ran from.
    pub region: String,
    /// Orchestrator address (lowercase), URI, or [`UNKNOWN_ORCHESTRATOR`].
    pub orchestrator: String,
    /// Successful ÷ sent requests (0–1).
    pub success_rate: f64,
    /// Mean latency of the successful requests (of all when none succeeded), s.
    pub round_trip_time: f64,
    /// Failed requests by reason.
    pub errors: Vec<LeaderboardError>,
    /// When the test ended (unix s).
    pub timestamp: i64,
    /// The model (`model_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Whether these requests found the model warm (false: cold starts).
    #[serde(default, skip_serializing_if = "is_false")]
    pub model_is_warm: bool,
    /// The pipeline (`text-to-image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// The first request's parameters, compact JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input_parameters: String,
    /// The first successful request's answer summary, compact JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_payload: String,
}

/// Our AI score of one (pipeline, model, orchestrator, region), from its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiOurScore {
    /// Requests sent.
    pub requests: u64,
    /// Of them, cold starts.
    pub cold_requests: u64,
    /// Successful ÷ sent (0–1).
    pub success_rate: f64,
    /// 95th percentile (nearest rank) latency of the successful warm requests (of all successful
    /// ones when none was warm), s; absent when none succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_s: Option<f64>,
    /// `e^(−k·p95)` with the public `k` (0 without a p95 or a median).
    pub latency_score: f64,
    /// `success_rate × latency_score`.
    pub score: f64,
}

/// pipeline → model → orchestrator → region → public scores: for each (pipeline, model), what
/// `GET /api/aggregated_stats?pipeline=…&model=…` answers.
pub type AiAggregatedScores = BTreeMap<String, BTreeMap<String, AggregatedScores>>;

/// pipeline → model → orchestrator → region → our scores.
pub type AiOurScores =
    BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<String, AiOurScore>>>>;

/// pipeline → model → the median round trip (s) the public score is relative to.
pub type AiMedians = BTreeMap<String, BTreeMap<String, f64>>;

/// Everything AI in `leaderboard.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AiLeaderboard {
    /// The records.
    pub records: Vec<AiLeaderboardRecord>,
    /// Public scores, as the server computes them from the records.
    pub aggregated: AiAggregatedScores,
    /// The medians the public scores use (only for a (pipeline, model) that has one).
    pub medians: AiMedians,
    /// Our scores.
    pub ours: AiOurScores,
}

/// PostgreSQL's `PERCENTILE_CONT(0.5)` of the round trips of the records with `success_rate = 1`
/// and a round trip ≠ 0; `None` when there is none (the server then reads NULL as 0).
pub fn median_round_trip_time<'a>(
    records: impl IntoIterator<Item = &'a AiLeaderboardRecord>,
) -> Option<f64> {
    let mut rtts: Vec<f64> = records
        .into_iter()
        .filter(|r| r.success_rate == 1.0 && r.round_trip_time != 0.0)
        .map(|r| r.round_trip_time)
        .collect();
    percentile_cont(&mut rtts, 0.5)
}

/// Linear interpolation between the closest ranks, as `PERCENTILE_CONT` does.
fn percentile_cont(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let position = fraction * (values.len() - 1) as f64;
    let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
    let (a, b) = (values[lower], values[upper]);
    Some(a + (position - lower as f64) * (b - a))
}

/// `k` of the exponential decay: `−ln(0.8) ÷ median` (infinite for a median of 0, as in Go).
pub fn decay_k(median_rtt: f64) -> f64 {
    -DESIRED_SCORE_AT_MEDIAN.ln() / median_rtt
}

/// The public AI score of a (mean) success rate and round trip against a median round trip, as
/// `score/stats_scorer.go` computes it; `median_rtt` is what the server uses (0 when none).
pub fn score_of(success_rate: f64, round_trip_time: f64, median_rtt: f64) -> LeaderboardScore {
    let decay = (-decay_k(median_rtt) * round_trip_time).exp();
    let round_trip_score = if decay.is_finite() { decay } else { 0.0 };
    let score = if success_rate == 0.0 {
        0.0
    } else {
        WEIGHT_SUCCESS * success_rate + WEIGHT_RTT * round_trip_score
    };
    LeaderboardScore {
        success_rate,
        round_trip_score,
        score,
    }
}

/// The public scores of these records, per (pipeline, model) as
/// `GET /api/aggregated_stats?pipeline=…&model=…` answers them, and the medians used.
pub fn aggregate(records: &[AiLeaderboardRecord]) -> (AiAggregatedScores, AiMedians) {
    let mut by_model: BTreeMap<(&str, &str), Vec<&AiLeaderboardRecord>> = BTreeMap::new();
    for r in records {
        by_model
            .entry((r.pipeline.as_str(), r.model.as_str()))
            .or_default()
            .push(r);
    }
    let (mut scores, mut medians) = (AiAggregatedScores::new(), AiMedians::new());
    for ((pipeline, model), records) in by_model {
        let median = median_round_trip_time(records.iter().copied());
        if let Some(m) = median {
            medians
                .entry(pipeline.to_string())
                .or_default()
                .insert(model.to_string(), m);
        }
        let mut sums: BTreeMap<(&str, &str), [f64; 3]> = BTreeMap::new();
        for r in &records {
            let s = sums
                .entry((r.orchestrator.as_str(), r.region.as_str()))
                .or_default();
            s[0] += r.success_rate;
            s[1] += r.round_trip_time;
            s[2] += 1.0;
        }
        let out = scores
            .entry(pipeline.to_string())
            .or_default()
            .entry(model.to_string())
            .or_default();
        for ((orchestrator, region), [success, rtt, n]) in sums {
            out.entry(orchestrator.to_string()).or_default().insert(
                region.to_string(),
                score_of(success / n, rtt / n, median.unwrap_or(0.0)),
            );
        }
    }
    (scores, medians)
}

/// One request, as read from the `ai` table.
struct Request {
    orchestrator: String,
    region: String,
    pipeline: String,
    model: String,
    warm: bool,
    ok: bool,
    reason: Option<String>,
    error: Option<String>,
    latency_ms: f64,
    params: Option<String>,
    response: Option<String>,
    t_ms: i64,
    request: u64,
}

fn strings(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    let n = df.height();
    df.column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::String).ok())
        .and_then(|c| {
            c.str()
                .ok()
                .map(|s| s.iter().map(|v| v.map(str::to_string)).collect())
        })
        .unwrap_or_else(|| vec![None; n])
}

fn floats(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let n = df.height();
    df.column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().map(|s| s.iter().collect()))
        .unwrap_or_else(|| vec![None; n])
}

fn bools(df: &DataFrame, name: &str) -> Vec<Option<bool>> {
    let n = df.height();
    df.column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::Boolean).ok())
        .and_then(|c| c.bool().ok().map(|s| s.iter().collect()))
        .unwrap_or_else(|| vec![None; n])
}

fn requests(ai: &DataFrame, default_region: Option<&str>) -> Vec<Request> {
    let [
        orchestrator,
        region,
        pipeline,
        model,
        start,
        reason,
        error,
        params,
        response,
    ] = [
        "orchestrator",
        "region",
        "pipeline",
        "model",
        "start",
        "reason",
        "error",
        "params",
        "response",
    ]
    .map(|c| strings(ai, c));
    let [latency, t_ms, request] = ["latency_ms", "t_ms", "request"].map(|c| floats(ai, c));
    let ok = bools(ai, "ok");
    let mut out: Vec<Request> = (0..ai.height())
        .filter_map(|i| {
            let pipeline = pipeline[i].clone().filter(|p| !p.is_empty())?;
            let model = model[i].clone().filter(|m| !m.is_empty())?;
            Some(Request {
                orchestrator: orchestrator[i]
                    .as_deref()
                    .filter(|o| !o.is_empty())
                    .map_or(UNKNOWN_ORCHESTRATOR.to_string(), |o| {
                        orchestrator_id(o).into_owned()
                    }),
                region: region[i]
                    .clone()
                    .filter(|r| !r.is_empty())
                    .or_else(|| default_region.map(str::to_string))
                    .unwrap_or_else(|| UNKNOWN_REGION.to_string()),
                pipeline,
                model,
                warm: start[i].as_deref() != Some("cold"),
                ok: ok[i].unwrap_or(false),
                reason: reason[i].clone(),
                error: error[i].clone(),
                latency_ms: latency[i].filter(|v| v.is_finite()).unwrap_or(0.0),
                params: params[i].clone(),
                response: response[i].clone(),
                t_ms: t_ms[i].unwrap_or(0.0) as i64,
                request: request[i].unwrap_or(0.0) as u64,
            })
        })
        .collect();
    out.sort_by_key(|r| (r.t_ms, r.request));
    out
}

/// Nearest-rank percentile.
fn nearest_rank(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (fraction * values.len() as f64).ceil().max(1.0) as usize;
    Some(values[rank.min(values.len()) - 1])
}

/// Builds the AI records and their scores from the `ai` table; requests without a region take
/// `default_region`, then [`UNKNOWN_REGION`].
pub fn build(
    ai: &DataFrame,
    timestamp_s: i64,
    default_region: Option<&str>,
) -> Result<AiLeaderboard, ReportError> {
    let requests = requests(ai, default_region);
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str, bool);
    let mut groups: BTreeMap<Key<'_>, Vec<&Request>> = BTreeMap::new();
    for r in &requests {
        groups
            .entry((
                r.orchestrator.as_str(),
                r.region.as_str(),
                r.pipeline.as_str(),
                r.model.as_str(),
                r.warm,
            ))
            .or_default()
            .push(r);
    }
    let mut records = Vec::with_capacity(groups.len());
    for ((orchestrator, region, pipeline, model, warm), rs) in &groups {
        let ok: Vec<&&Request> = rs.iter().filter(|r| r.ok).collect();
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let rtt_ms = if ok.is_empty() {
            mean(&rs.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
        } else {
            mean(&ok.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
        };
        let mut errors: BTreeMap<String, LeaderboardError> = BTreeMap::new();
        for r in rs.iter().filter(|r| !r.ok) {
            let code = r
                .reason
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "unknown".to_string());
            errors
                .entry(code.clone())
                .or_insert_with(|| LeaderboardError {
                    message: r
                        .error
                        .clone()
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| code.clone()),
                    error_code: code,
                    count: 0,
                })
                .count += 1;
        }
        records.push(AiLeaderboardRecord {
            region: region.to_string(),
            orchestrator: orchestrator.to_string(),
            success_rate: ok.len() as f64 / rs.len() as f64,
            round_trip_time: rtt_ms / 1000.0,
            errors: errors.into_values().collect(),
            timestamp: timestamp_s,
            model: model.to_string(),
            model_is_warm: *warm,
            pipeline: pipeline.to_string(),
            input_parameters: rs[0].params.clone().unwrap_or_default(),
            response_payload: ok
                .first()
                .and_then(|r| r.response.clone())
                .unwrap_or_default(),
        });
    }
    let (aggregated, medians) = aggregate(&records);

    let mut per_node: BTreeMap<(&str, &str, &str, &str), Vec<&Request>> = BTreeMap::new();
    for r in &requests {
        per_node
            .entry((
                r.pipeline.as_str(),
                r.model.as_str(),
                r.orchestrator.as_str(),
                r.region.as_str(),
            ))
            .or_default()
            .push(r);
    }
    let mut ours = AiOurScores::new();
    for ((pipeline, model, orchestrator, region), rs) in per_node {
        let succeeded = rs.iter().filter(|r| r.ok).count();
        let success_rate = succeeded as f64 / rs.len() as f64;
        let mut warm: Vec<f64> = rs
            .iter()
            .filter(|r| r.ok && r.warm)
            .map(|r| r.latency_ms / 1000.0)
            .collect();
        if warm.is_empty() {
            warm = rs
                .iter()
                .filter(|r| r.ok)
                .map(|r| r.latency_ms / 1000.0)
                .collect();
        }
        let p95 = nearest_rank(&mut warm, OUR_LATENCY_PERCENTILE);
        let median = medians.get(pipeline).and_then(|m| m.get(model)).copied();
        let latency_score = match (p95, median) {
            (Some(p95), Some(median)) => {
                let s = (-decay_k(median) * p95).exp();
                if s.is_finite() { s } else { 0.0 }
            }
            _ => 0.0,
        };
        ours.entry(pipeline.to_string())
            .or_default()
            .entry(model.to_string())
            .or_default()
            .entry(orchestrator.to_string())
            .or_default()
            .insert(
                region.to_string(),
                AiOurScore {
                    requests: rs.len() as u64,
                    cold_requests: rs.iter().filter(|r| !r.warm).count() as u64,
                    success_rate,
                    p95_latency_s: p95,
                    latency_score,
                    score: success_rate * latency_score,
                },
            );
    }
    Ok(AiLeaderboard {
        records,
        aggregated,
        medians,
        ours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_cont_interpolates_between_ranks_as_postgresql_does() {
        assert_eq!(percentile_cont(&mut [], 0.5), None);
        assert_eq!(percentile_cont(&mut [3.0], 0.5), Some(3.0));
        assert_eq!(percentile_cont(&mut [4.0, 1.0], 0.5), Some(2.5));
        assert_eq!(percentile_cont(&mut [5.0, 1.0, 2.0], 0.5), Some(2.0));
        // position 0.25 × 4 = 1: exactly the second; 0.3 × 4 = 1.2: 20 % of the way on.
        assert_eq!(
            percentile_cont(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.25),
            Some(2.0)
        );
        let p = percentile_cont(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.3).unwrap();
        assert!((p - 2.2).abs() < 1e-12, "{p}");
    }

    #[test]
    fn nearest_rank_takes_the_smallest_value_covering_the_fraction() {
        assert_eq!(nearest_rank(&mut [], 0.95), None);
        assert_eq!(nearest_rank(&mut [2.0], 0.95), Some(2.0));
        let mut twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut twenty, 0.95), Some(19.0));
        let mut twenty_one: Vec<f64> = (1..=21).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&mut twenty_one, 0.95), Some(20.0));
    }

    #[test]
    fn the_median_round_trip_scores_the_desired_score() {
        let s = score_of(1.0, 1.7, 1.7);
        assert!((s.round_trip_score - DESIRED_SCORE_AT_MEDIAN).abs() < 1e-15);
        assert_eq!(s.score, WEIGHT_SUCCESS + WEIGHT_RTT * s.round_trip_score);
        assert_eq!(score_of(0.0, 1.7, 1.7).score, 0.0);
    }
}
