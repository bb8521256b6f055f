//! Aggregation of the record tables with Polars lazy queries: the breakdowns that go into
//! `summary.json` and every report, and the time-bucketed series the plots draw. The result types
//! are in [`crate::breakdowns`]; this module only computes them.
//!
//! Design decisions:
//! - Percentiles use **linear interpolation between the closest ranks** (Polars
//!   `QuantileMethod::Linear`, numpy's default): for sorted values `x[0..n]`, `p(q)` is
//!   `x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)])` with `h = q * (n - 1)`.
//! - Every breakdown is the same query over different key columns, so per-workload, per-rendition,
//!   per-stream, per-orchestrator and per-region numbers are computed identically. Rows whose key
//!   is null (e.g. no orchestrator known) are left out of that key's breakdown, never lumped into a
//!   fake group; in two-key breakdowns a missing region is shown as `unknown`.
//! - A chaos event's row comes from its `chaos` record; its `recovery` records (one per stream
//!   that ran through it, one per orchestrator paid around it) are matched to it by label and
//!   start time, since a repeated event keeps its label. Recovery records that match no chaos
//!   record are not shown as events: they are listed as a problem of the run.
//! - HLS conformance violations are one row per rule: how often it broke (the records'
//!   `occurrences`, the `hls_violations` metric's column), in how many streams, and the first
//!   record as the example, ordered `must` before `should`, then by count.
//! - Viewer QoE (`player` records) takes two passes per breakdown: the samples (TTFF, latency,
//!   stalls, frames, switches) straight from the records, and the players from one row per
//!   stream × player (its final state and its first frame → end time, which stall time is
//!   measured against, and its frame totals), joined on the breakdown's keys. Players are counted
//!   by their final state, not by records, so a player that both failed and ended counts once,
//!   as failed, with its frames counted once.
//! - The transcoder pool (`pool` records) is one row per orchestrator × transcoder, ordered by
//!   them, straight from the records (the pool probe writes one per transcoder at the end of a
//!   run; a pair reconciled twice keeps its latest); the one figure added is each transcoder's
//!   share of the segments its orchestrator accepted from the pool.
//! - The AI probe's live video-to-video jobs (`ai_live` records) are one row per workload ×
//!   pipeline × model × who answered, like its requests. A job's frame rate and p95 latency are
//!   already summaries of its frames, so a row keeps the worst job's (lowest fps, highest p95)
//!   rather than a mean of them, which would hide one job falling behind.
//! - The segment and quality statistics find their columns (latency, round trip, success,
//!   download time, VMAF, PSNR) through the metric table (`observation::metric`), the same
//!   columns the live metrics are fed from, so a breakdown's latency is the `latency` metric's
//!   samples.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::breakdowns::*;
use crate::error::ReportError;
use crate::frames::RecordFrames;

/// Region name used when records carry none.
pub const UNKNOWN_REGION: &str = "unknown";

type Res<T> = Result<T, ReportError>;

/// The journal column that holds `metric`'s samples, from the metric table.
fn column_of(metric: &str) -> &'static str {
    observation::metric::lookup(metric)
        .and_then(|def| def.journal)
        .map(|journal| journal.column)
        .unwrap_or_else(|| panic!("metric `{metric}` has no journal column in the metric table"))
}

fn f64c(name: &str) -> Expr {
    col(name).cast(DataType::Float64)
}

fn dist_exprs(column: &str, prefix: &str) -> Vec<Expr> {
    let c = f64c(column);
    let q = |p: f64, n: &str| {
        c.clone()
            .quantile(lit(p), QuantileMethod::Linear)
            .alias(format!("{prefix}{n}"))
    };
    vec![
        c.clone()
            .count()
            .cast(DataType::Float64)
            .alias(format!("{prefix}count")),
        c.clone().mean().alias(format!("{prefix}mean")),
        c.clone().min().alias(format!("{prefix}min")),
        q(0.5, "p50"),
        q(0.9, "p90"),
        q(0.95, "p95"),
        q(0.99, "p99"),
        c.max().alias(format!("{prefix}max")),
    ]
}

/// Reads a numeric cell as `f64` whatever its Polars type.
fn num(df: &DataFrame, name: &str, row: usize) -> Option<f64> {
    let column = df.column(name).ok()?;
    let cast = column.cast(&DataType::Float64).ok()?;
    let value = cast.f64().ok()?.get(row)?;
    value.is_finite().then_some(value)
}

fn count(df: &DataFrame, name: &str, row: usize) -> u64 {
    num(df, name, row)
        .map(|v| v.max(0.0).round() as u64)
        .unwrap_or(0)
}

fn text(df: &DataFrame, name: &str, row: usize) -> Option<String> {
    let column = df.column(name).ok()?;
    let cast = column.cast(&DataType::String).ok()?;
    cast.str().ok()?.get(row).map(str::to_string)
}

fn read_dist(df: &DataFrame, row: usize, prefix: &str) -> Distribution {
    let get = |n: &str| num(df, &format!("{prefix}{n}"), row);
    Distribution {
        count: count(df, &format!("{prefix}count"), row),
        mean: get("mean"),
        min: get("min"),
        p50: get("p50"),
        p90: get("p90"),
        p95: get("p95"),
        p99: get("p99"),
        max: get("max"),
    }
}

/// A query family: the aggregation expressions and how to read one result row.
trait StatsQuery: Sized {
    fn exprs() -> Vec<Expr>;
    fn read(df: &DataFrame, row: usize) -> Self;
}

impl StatsQuery for SegmentStats {
    fn exprs() -> Vec<Expr> {
        let mut e = vec![
            len().cast(DataType::Float64).alias("segments"),
            f64c(column_of("segment_success")).sum().alias("ok"),
            f64c(column_of("download_time"))
                .mean()
                .alias("download_ms_mean"),
            f64c("bitrate_kbps").mean().alias("bitrate_kbps_mean"),
            f64c("bytes").sum().alias("bytes_total"),
            f64c("duration_s").mean().alias("duration_s_mean"),
        ];
        e.extend(dist_exprs(column_of("latency"), "latency_"));
        e.extend(dist_exprs(column_of("round_trip"), "round_trip_"));
        e
    }
    fn read(df: &DataFrame, row: usize) -> Self {
        let segments = count(df, "segments", row);
        let ok = count(df, "ok", row);
        SegmentStats {
            segments,
            ok,
            failed: segments - ok.min(segments),
            success_rate: (segments > 0).then(|| ok as f64 / segments as f64),
            latency_ms: read_dist(df, row, "latency_"),
            round_trip_ms: read_dist(df, row, "round_trip_"),
            download_ms_mean: num(df, "download_ms_mean", row),
            bitrate_kbps_mean: num(df, "bitrate_kbps_mean", row),
            bytes_total: count(df, "bytes_total", row),
            duration_s_mean: num(df, "duration_s_mean", row),
        }
    }
}

impl StatsQuery for QualityStats {
    fn exprs() -> Vec<Expr> {
        let v = f64c(column_of("vmaf"));
        let q = |p: f64, n: &str| v.clone().quantile(lit(p), QuantileMethod::Linear).alias(n);
        vec![
            v.clone().count().cast(DataType::Float64).alias("samples"),
            v.clone().mean().alias("vmaf_mean"),
            q(0.05, "vmaf_p5"),
            q(0.25, "vmaf_p25"),
            q(0.5, "vmaf_p50"),
            q(0.75, "vmaf_p75"),
            q(0.95, "vmaf_p95"),
            v.clone().min().alias("vmaf_min"),
            v.max().alias("vmaf_max"),
            f64c(column_of("psnr")).mean().alias("psnr_mean"),
            f64c(column_of("psnr")).min().alias("psnr_min"),
        ]
    }
    fn read(df: &DataFrame, row: usize) -> Self {
        QualityStats {
            samples: count(df, "samples", row),
            vmaf_mean: num(df, "vmaf_mean", row),
            vmaf_p5: num(df, "vmaf_p5", row),
            vmaf_p25: num(df, "vmaf_p25", row),
            vmaf_p50: num(df, "vmaf_p50", row),
            vmaf_p75: num(df, "vmaf_p75", row),
            vmaf_p95: num(df, "vmaf_p95", row),
            vmaf_min: num(df, "vmaf_min", row),
            vmaf_max: num(df, "vmaf_max", row),
            psnr_mean: num(df, "psnr_mean", row),
            psnr_min: num(df, "psnr_min", row),
        }
    }
}

fn overall<T: StatsQuery>(df: &DataFrame, step: &str) -> Res<T> {
    let out = df
        .clone()
        .lazy()
        .select(T::exprs())
        .collect()
        .map_err(ReportError::polars(step))?;
    Ok(T::read(&out, 0))
}

/// Groups `df` by `keys` (the first key must be non-null; later null keys read `unknown`).
fn grouped<T: StatsQuery>(df: &DataFrame, keys: &[&str], step: &str) -> Res<Vec<Group<T>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let mut lf = df.clone().lazy().filter(col(keys[0]).is_not_null());
    for k in &keys[1..] {
        lf = lf.with_column(col(*k).fill_null(lit(UNKNOWN_REGION)));
    }
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let out = lf
        .group_by(key_exprs)
        .agg(T::exprs())
        .sort(
            keys.iter()
                .map(|k| PlSmallStr::from(*k))
                .collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(ReportError::polars(step))?;
    Ok((0..out.height())
        .map(|row| Group {
            key: keys
                .iter()
                .map(|k| (k.to_string(), text(&out, k, row).unwrap_or_default()))
                .collect(),
            stats: T::read(&out, row),
        })
        .collect())
}

/// Options for aggregation.
#[derive(Debug, Clone, Copy, Default)]
pub struct AggregateOptions {
    /// Width of the time buckets in the plot series; `None` picks 10 s, widened so that a run
    /// never has more than 1 000 buckets.
    pub bucket_s: Option<f64>,
}

/// Computes every aggregate of a run.
pub fn aggregate(frames: &RecordFrames, options: AggregateOptions) -> Res<Aggregates> {
    let seg = &frames.segments;
    let (first, last) = time_range(frames)?;
    let segments = SegmentBreakdowns {
        overall: overall(seg, "segments overall")?,
        by_workload: grouped(seg, &["workload"], "segments by workload")?,
        by_rendition: grouped(seg, &["rendition"], "segments by rendition")?,
        by_workload_rendition: grouped(
            seg,
            &["workload", "rendition"],
            "segments by workload and rendition",
        )?,
        by_stream: grouped(seg, &["stream"], "segments by stream")?,
        by_orchestrator: grouped(seg, &["orchestrator"], "segments by orchestrator")?,
        by_region: grouped(seg, &["region"], "segments by region")?,
        by_orchestrator_region: grouped(
            seg,
            &["orchestrator", "region"],
            "segments by orchestrator and region",
        )?,
    };
    let q = &frames.quality;
    let quality = QualityBreakdowns {
        by_origin: grouped(q, &["origin"], "quality by origin")?,
        by_rendition: grouped(q, &["rendition", "origin"], "quality by rendition")?,
        by_orchestrator: grouped(q, &["orchestrator", "origin"], "quality by orchestrator")?,
    };
    let (chaos, problems) = chaos(frames, first.unwrap_or(0))?;
    let bucket_s = match options.bucket_s {
        Some(b) if b.is_finite() && b > 0.0 => b,
        Some(b) => {
            return Err(ReportError::InvalidOption {
                name: "bucket_s",
                value: b.to_string(),
                why: "must be a positive number of seconds".into(),
            });
        }
        None => {
            let span_s = match (first, last) {
                (Some(a), Some(b)) => (b - a) as f64 / 1000.0,
                _ => 0.0,
            };
            (span_s / 1000.0).ceil().max(10.0)
        }
    };
    Ok(Aggregates {
        first_record_ms: first,
        last_record_ms: last,
        segments,
        quality,
        checks: checks(&frames.checks)?,
        payments: payments(frames)?,
        bench: bench(&frames.bench)?,
        chaos,
        violations: violations(&frames.violations)?,
        players: players(&frames.players)?,
        pool: pool(&frames.pool),
        ai: AiBreakdowns {
            live: ai_live(&frames.ai_live)?,
            ..ai(&frames.ai)?
        },
        problems,
        plot: PlotData {
            bucket_s,
            buckets: buckets(seg, first.unwrap_or(0), bucket_s)?,
            latency_cdf: latency_cdf(seg)?,
        },
    })
}

fn time_range(frames: &RecordFrames) -> Res<(Option<i64>, Option<i64>)> {
    let mut first: Option<i64> = None;
    let mut last: Option<i64> = None;
    for (kind, df) in frames.tables() {
        if df.height() == 0 {
            continue;
        }
        let t = df
            .column("t_ms")
            .and_then(|c| c.i64().cloned())
            .map_err(ReportError::polars(format!("{kind} t_ms")))?;
        if let Some(m) = t.min() {
            first = Some(first.map_or(m, |f| f.min(m)));
        }
        if let Some(m) = t.max() {
            last = Some(last.map_or(m, |l| l.max(m)));
        }
    }
    Ok((first, last))
}

fn checks(df: &DataFrame) -> Res<Vec<CheckGroupStats>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let out = df
        .clone()
        .lazy()
        .group_by([col("check")])
        .agg([
            len().cast(DataType::Float64).alias("total"),
            f64c("ok").sum().alias("passed"),
            col("message")
                .filter(col("ok").not())
                .first()
                .alias("first_failure"),
        ])
        .sort(["check"], SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("checks by name"))?;
    Ok((0..out.height())
        .map(|row| {
            let total = count(&out, "total", row);
            let passed = count(&out, "passed", row);
            let failed = total - passed.min(total);
            CheckGroupStats {
                check: text(&out, "check", row).unwrap_or_default(),
                total,
                passed,
                failed,
                pass_rate: (total > 0).then(|| passed as f64 / total as f64),
                first_failure: text(&out, "first_failure", row)
                    .or_else(|| (failed > 0).then(|| "failed (no message recorded)".to_string())),
            }
        })
        .collect())
}

fn ticket_exprs() -> Vec<Expr> {
    vec![
        len().cast(DataType::Float64).alias("tickets"),
        f64c("won").sum().alias("winning_tickets"),
        f64c("face_value_wei").sum().alias("face_value_total_wei"),
        f64c("ev_wei").sum().alias("ev_total_wei"),
        f64c("face_value_wei")
            .filter(col("won"))
            .sum()
            .alias("won_face_value_wei"),
        f64c("pixels").sum().alias("pixels_total"),
    ]
}

fn redemption_exprs() -> Vec<Expr> {
    vec![
        len().cast(DataType::Float64).alias("redemptions"),
        f64c("ok").sum().alias("redemptions_ok"),
        f64c("face_value_wei")
            .filter(col("ok"))
            .sum()
            .alias("redeemed_wei"),
    ]
}

fn fill_tickets(s: &mut PaymentStats, df: &DataFrame, row: usize) {
    s.tickets = count(df, "tickets", row);
    s.winning_tickets = count(df, "winning_tickets", row);
    s.face_value_total_wei = num(df, "face_value_total_wei", row).unwrap_or(0.0);
    s.ev_total_wei = num(df, "ev_total_wei", row).unwrap_or(0.0);
    s.won_face_value_wei = num(df, "won_face_value_wei", row).unwrap_or(0.0);
    s.pixels_total = count(df, "pixels_total", row);
}

fn fill_redemptions(s: &mut PaymentStats, df: &DataFrame, row: usize) {
    s.redemptions = count(df, "redemptions", row);
    s.redemptions_ok = count(df, "redemptions_ok", row);
    s.redeemed_wei = num(df, "redeemed_wei", row).unwrap_or(0.0);
}

fn payments(frames: &RecordFrames) -> Res<PaymentBreakdowns> {
    let mut overall = PaymentStats::default();
    let mut by_orch: BTreeMap<String, PaymentStats> = BTreeMap::new();
    let run = |df: &DataFrame, exprs: Vec<Expr>, by: bool, step: &str| -> Res<DataFrame> {
        let lf = df.clone().lazy();
        let lf = if by {
            lf.group_by([col("orchestrator")]).agg(exprs)
        } else {
            lf.select(exprs)
        };
        lf.collect().map_err(ReportError::polars(step))
    };
    if frames.tickets.height() > 0 {
        let all = run(&frames.tickets, ticket_exprs(), false, "tickets overall")?;
        fill_tickets(&mut overall, &all, 0);
        let by = run(
            &frames.tickets,
            ticket_exprs(),
            true,
            "tickets by orchestrator",
        )?;
        for row in 0..by.height() {
            let o = text(&by, "orchestrator", row).unwrap_or_default();
            fill_tickets(by_orch.entry(o).or_default(), &by, row);
        }
    }
    if frames.redemptions.height() > 0 {
        let all = run(
            &frames.redemptions,
            redemption_exprs(),
            false,
            "redemptions overall",
        )?;
        fill_redemptions(&mut overall, &all, 0);
        let by = run(
            &frames.redemptions,
            redemption_exprs(),
            true,
            "redemptions by orchestrator",
        )?;
        for row in 0..by.height() {
            let o = text(&by, "orchestrator", row).unwrap_or_default();
            fill_redemptions(by_orch.entry(o).or_default(), &by, row);
        }
    }
    Ok(PaymentBreakdowns {
        overall,
        by_orchestrator: by_orch
            .into_iter()
            .map(|(o, stats)| Group {
                key: BTreeMap::from([("orchestrator".to_string(), o)]),
                stats,
            })
            .collect(),
    })
}

fn bench(df: &DataFrame) -> Res<Vec<BenchStep>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let ratio = (f64c("transcode_ms") / lit(1000.0)) / f64c("duration_s");
    let mut exprs = vec![
        len().cast(DataType::Float64).alias("segments"),
        f64c("ok").sum().alias("ok"),
        ratio
            .clone()
            .filter(col("ok"))
            .lt_eq(lit(1.0))
            .cast(DataType::Float64)
            .mean()
            .alias("real_time_fraction"),
        col("encoder").first().alias("encoder"),
    ];
    let okratio = ratio.filter(col("ok"));
    let q = |p: f64, n: &str| {
        okratio
            .clone()
            .quantile(lit(p), QuantileMethod::Linear)
            .alias(format!("ratio_{n}"))
    };
    exprs.extend([
        okratio
            .clone()
            .count()
            .cast(DataType::Float64)
            .alias("ratio_count"),
        okratio.clone().mean().alias("ratio_mean"),
        okratio.clone().min().alias("ratio_min"),
        q(0.5, "p50"),
        q(0.9, "p90"),
        q(0.95, "p95"),
        q(0.99, "p99"),
        okratio.max().alias("ratio_max"),
    ]);
    let out = df
        .clone()
        .lazy()
        .group_by([col("sessions")])
        .agg(exprs)
        .sort(["sessions"], SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("bench by sessions"))?;
    Ok((0..out.height())
        .map(|row| BenchStep {
            sessions: count(&out, "sessions", row) as u32,
            encoder: text(&out, "encoder", row).unwrap_or_default(),
            segments: count(&out, "segments", row),
            ok: count(&out, "ok", row),
            real_time_fraction: num(&out, "real_time_fraction", row),
            transcode_ratio: read_dist(&out, row, "ratio_"),
        })
        .collect())
}

/// One row per rule broken, ordered `must` before `should`, then by count (highest first),
/// then by rule ID; each with its earliest record as the example.
fn violations(df: &DataFrame) -> Res<Vec<ViolationStats>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    // Rows keep their order within a group, so after sorting by time each group's first row is
    // its earliest.
    let out = df
        .clone()
        .lazy()
        .sort(["t_ms"], SortMultipleOptions::default())
        .group_by([col("rule")])
        .agg([
            col("severity").first().alias("severity"),
            f64c(column_of("hls_violations")).sum().alias("count"),
            col("stream")
                .n_unique()
                .cast(DataType::Float64)
                .alias("streams"),
            col("t_ms").first().alias("first_t_ms"),
            col("stream").first().alias("first_stream"),
            col("rendition").first().alias("first_rendition"),
            col("url").first().alias("first_url"),
            col("line").first().alias("first_line"),
            col("detail").first().alias("first_detail"),
        ])
        .collect()
        .map_err(ReportError::polars("violations by rule"))?;
    let mut rows: Vec<ViolationStats> = (0..out.height())
        .map(|row| ViolationStats {
            rule: text(&out, "rule", row).unwrap_or_default(),
            severity: text(&out, "severity", row).unwrap_or_default(),
            count: count(&out, "count", row),
            streams: count(&out, "streams", row),
            first_t_ms: int(&out, "first_t_ms", row).unwrap_or(0),
            first_stream: text(&out, "first_stream", row).unwrap_or_default(),
            first_rendition: text(&out, "first_rendition", row),
            first_url: text(&out, "first_url", row).unwrap_or_default(),
            first_line: int(&out, "first_line", row).and_then(|l| u32::try_from(l).ok()),
            first_detail: text(&out, "first_detail", row).unwrap_or_default(),
        })
        .collect();
    let rank = |severity: &str| match severity {
        "must" => 0,
        "should" => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(b.count.cmp(&a.count))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    Ok(rows)
}

/// Viewer QoE per workload and per stream, from the `player` records.
fn players(df: &DataFrame) -> Res<PlayerBreakdowns> {
    if df.height() == 0 {
        return Ok(PlayerBreakdowns::default());
    }
    Ok(PlayerBreakdowns {
        by_workload: viewer_groups(df, &["workload"])?,
        by_stream: viewer_groups(df, &["workload", "stream"])?,
    })
}

/// The `player` record kinds that end a player; they carry `ok`.
fn is_final() -> Expr {
    col("kind")
        .eq(lit("ended"))
        .or(col("kind").eq(lit("failed")))
}

/// One row per stream × player: `finished` (1 when its final records are all `ok`, 0 when one is
/// not, null without one), `played_ms` (first frame → final record, null without either), its
/// `stall_ms` and its frame totals.
fn per_player(df: &DataFrame) -> LazyFrame {
    let t = || col("t_ms").cast(DataType::Float64);
    df.clone()
        .lazy()
        .group_by([col("workload"), col("stream"), col("player")])
        .agg([
            f64c(column_of("player_success")).min().alias("finished"),
            (t().filter(is_final()).max() - t().filter(col("kind").eq(lit("first_frame"))).min())
                .alias("played_ms"),
            f64c(column_of("player_stall_time")).sum().alias("stall_ms"),
            // Frame counts are the player's running totals, so its last (largest) one is all of
            // them, whether it ended once or failed and then ended.
            f64c("decoded_frames").max().alias("decoded_frames"),
            f64c(column_of("player_dropped_frames"))
                .max()
                .alias("dropped_frames"),
        ])
}

/// The player counts of each group of `keys`, from [`per_player`]'s rows.
fn viewer_counts(df: &DataFrame, keys: &[Expr]) -> LazyFrame {
    let finished_as = |v: f64| col("finished").eq(lit(v)).cast(DataType::Float64).sum();
    per_player(df).group_by(keys).agg([
        len().cast(DataType::Float64).alias("players"),
        finished_as(1.0).alias("ok"),
        finished_as(0.0).alias("failed"),
        col("played_ms")
            .count()
            .cast(DataType::Float64)
            .alias("played_players"),
        col("played_ms").sum().alias("played_ms_total"),
        // Only the stalls of players whose played time is known, so the ratio compares like
        // with like.
        col("stall_ms")
            .filter(col("played_ms").is_not_null())
            .sum()
            .alias("stall_ms_played"),
        col("decoded_frames").sum().alias("decoded_frames"),
        col("dropped_frames").sum().alias("dropped_frames"),
    ])
}

/// The samples of each group of `keys`, straight from the records.
fn viewer_samples(df: &DataFrame, keys: &[Expr]) -> LazyFrame {
    let mut exprs = dist_exprs(column_of("player_ttff"), "ttff_");
    exprs.extend(dist_exprs(column_of("player_latency"), "latency_"));
    exprs.extend([
        f64c(column_of("player_stalls")).sum().alias("stalls"),
        f64c(column_of("player_stall_time"))
            .sum()
            .alias("stall_ms_total"),
        f64c(column_of("player_level_switches"))
            .sum()
            .alias("level_switches"),
        // The first failure that says why: a player may follow its `failed` with an `ended`
        // that repeats no error.
        col("error")
            .filter(col("ok").not().and(col("error").is_not_null()))
            .first()
            .alias("first_failure"),
    ]);
    // Rows keep their order within a group, so after sorting by time the first failure is the
    // earliest.
    df.clone()
        .lazy()
        .sort(["t_ms"], SortMultipleOptions::default())
        .group_by(keys)
        .agg(exprs)
}

/// One row of Viewer QoE per group of `keys`, ordered by them.
fn viewer_groups(df: &DataFrame, keys: &[&str]) -> Res<Vec<Group<ViewerQoe>>> {
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let out = viewer_samples(df, &key_exprs)
        .join(
            viewer_counts(df, &key_exprs),
            key_exprs.clone(),
            key_exprs,
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            keys.iter()
                .map(|k| PlSmallStr::from(*k))
                .collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(ReportError::polars(format!(
            "players by {}",
            keys.join(" and ")
        )))?;
    Ok((0..out.height())
        .map(|row| Group {
            key: keys
                .iter()
                .map(|k| (k.to_string(), text(&out, k, row).unwrap_or_default()))
                .collect(),
            stats: read_viewer_qoe(&out, row),
        })
        .collect())
}

fn read_viewer_qoe(df: &DataFrame, row: usize) -> ViewerQoe {
    let ok = count(df, "ok", row);
    let failed = count(df, "failed", row);
    let played_ms_total = if count(df, "played_players", row) > 0 {
        num(df, "played_ms_total", row)
    } else {
        None
    };
    let stall_ms_played = num(df, "stall_ms_played", row).unwrap_or(0.0);
    let decoded_frames = count(df, "decoded_frames", row);
    let dropped_frames = count(df, "dropped_frames", row);
    ViewerQoe {
        players: count(df, "players", row),
        ok,
        failed,
        success_rate: (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64),
        ttff_ms: read_dist(df, row, "ttff_"),
        latency_ms: read_dist(df, row, "latency_"),
        stalls: count(df, "stalls", row),
        stall_ms_total: num(df, "stall_ms_total", row).unwrap_or(0.0),
        played_ms_total,
        stall_ratio: played_ms_total
            .filter(|played| *played > 0.0)
            .map(|played| stall_ms_played / played),
        decoded_frames,
        dropped_frames,
        dropped_rate: (decoded_frames > 0).then(|| dropped_frames as f64 / decoded_frames as f64),
        level_switches: count(df, "level_switches", row),
        first_failure: text(df, "first_failure", row)
            .or_else(|| (failed > 0).then(|| "failed (no error recorded)".to_string())),
    }
}

/// The transcoder pools from the `pool` records: one row per orchestrator × transcoder, ordered
/// by them, the latest record of a pair that has more than one.
fn pool(df: &DataFrame) -> Vec<PoolTranscoderStats> {
    let u = |name: &str, row: usize| uint(df, name, row).unwrap_or(0);
    let mut rows: Vec<PoolTranscoderStats> = (0..df.height())
        .map(|row| PoolTranscoderStats {
            orchestrator: text(df, "orchestrator", row).unwrap_or_default(),
            transcoder: text(df, "transcoder", row).unwrap_or_default(),
            t_ms: int(df, "t_ms", row).unwrap_or(0),
            segments: u("segments", row),
            refused: u("refused", row),
            checked: u("checked", row),
            lost: u("lost", row),
            segment_share: None,
            matched: u("matched", row),
            probe_pixels: u("probe_pixels", row),
            counted_pixels: u("counted_pixels", row),
            claimed_pixels: u("claimed_pixels", row),
            accounting_error: num(df, "accounting_error", row),
            claim_error: num(df, "claim_error", row),
            payout_share: num(df, "payout_share", row),
            payout_wei: text(df, "payout_wei", row),
            realtime_ratio: num(df, "realtime_ratio", row),
            check_ms: num(df, "check_ms", row),
            cheater_detected_after: uint(df, "cheater_detected_after", row),
            bad_segments_delivered: u("bad_segments_delivered", row),
        })
        .collect();
    // The latest record of a pair first, so that deduplication keeps it.
    rows.sort_by(|a, b| {
        a.orchestrator
            .cmp(&b.orchestrator)
            .then_with(|| a.transcoder.cmp(&b.transcoder))
            .then(b.t_ms.cmp(&a.t_ms))
    });
    rows.dedup_by(|later, kept| {
        later.orchestrator == kept.orchestrator && later.transcoder == kept.transcoder
    });
    let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        *accepted.entry(r.orchestrator.clone()).or_default() += r.segments;
    }
    for r in &mut rows {
        let total = accepted.get(&r.orchestrator).copied().unwrap_or(0);
        r.segment_share = (total > 0).then(|| r.segments as f64 / total as f64);
    }
    rows
}

/// The AI probe's requests by workload × pipeline × model × who answered, and by workload ×
/// concurrency.
fn ai(df: &DataFrame) -> Res<AiBreakdowns> {
    if df.height() == 0 {
        return Ok(AiBreakdowns::default());
    }
    let ok = || col("ok").eq(lit(true));
    let latency = || f64c(column_of("ai_latency"));
    // Good answers per second from the first sending to the last answer.
    let throughput = || {
        let end = (f64c("t_ms") + latency()).max();
        let span_s = (end - f64c("t_ms").min()) / lit(1000.0);
        (ok().cast(DataType::Float64).sum() / span_s).alias("throughput")
    };
    let mut exprs = vec![
        len().cast(DataType::Float64).alias("requests"),
        ok().cast(DataType::Float64).sum().alias("ok"),
        throughput(),
        f64c(column_of("ai_inference_time"))
            .mean()
            .alias("inference_ms_mean"),
        col("start")
            .eq(lit("cold"))
            .cast(DataType::Float64)
            .sum()
            .alias("cold_starts"),
        latency()
            .filter(col("start").eq(lit("cold")))
            .max()
            .alias("cold_latency_ms_max"),
        col("error")
            .filter(col("ok").eq(lit(false)))
            .first()
            .alias("first_error"),
    ];
    exprs.extend(dist_exprs("good_latency_ms", "lat_"));
    let by_model = df
        .clone()
        .lazy()
        .with_column(
            when(ok())
                .then(latency())
                .otherwise(lit(NULL))
                .alias("good_latency_ms"),
        )
        .sort(["t_ms"], SortMultipleOptions::default())
        .group_by(ai_keys())
        .agg(exprs)
        .sort(AI_KEYS, SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("AI requests by model"))?;
    let reasons = ai_reasons(df, "AI failures by reason")?;
    let by_model = (0..by_model.height())
        .map(|row| {
            let key = ai_key(&by_model, row);
            let failures = ai_failures(&reasons, &key);
            let requests = count(&by_model, "requests", row);
            let ok = count(&by_model, "ok", row);
            let [workload, pipeline, model, orchestrator] = key;
            AiStats {
                workload,
                pipeline,
                model,
                orchestrator,
                requests,
                ok,
                success_rate: (requests > 0).then(|| ok as f64 / requests as f64),
                throughput: num(&by_model, "throughput", row),
                latency_ms: read_dist(&by_model, row, "lat_"),
                inference_ms_mean: num(&by_model, "inference_ms_mean", row),
                cold_starts: count(&by_model, "cold_starts", row),
                cold_latency_ms_max: num(&by_model, "cold_latency_ms_max", row),
                failures,
                first_error: text(&by_model, "first_error", row),
            }
        })
        .collect();
    let mut level_exprs = vec![
        len().cast(DataType::Float64).alias("requests"),
        ok().cast(DataType::Float64).sum().alias("ok"),
        throughput(),
    ];
    level_exprs.extend(dist_exprs(column_of("ai_latency"), "lat_"));
    let levels = df
        .clone()
        .lazy()
        .group_by([col("workload"), col("concurrency")])
        .agg(level_exprs)
        .sort(["workload", "concurrency"], SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("AI requests by concurrency"))?;
    let by_concurrency = (0..levels.height())
        .map(|row| AiLevelStats {
            workload: text(&levels, "workload", row).unwrap_or_default(),
            concurrency: count(&levels, "concurrency", row) as u32,
            requests: count(&levels, "requests", row),
            ok: count(&levels, "ok", row),
            throughput: num(&levels, "throughput", row),
            latency_ms: read_dist(&levels, row, "lat_"),
        })
        .collect();
    Ok(AiBreakdowns {
        by_model,
        by_concurrency,
        live: Vec::new(),
    })
}

/// The key columns of an AI row, in order.
const AI_KEYS: [&str; 4] = ["workload", "pipeline", "model", "orchestrator"];

/// [`AI_KEYS`] as group keys; who answered is `unknown` when a record names no one, so such
/// records still get a row.
fn ai_keys() -> Vec<Expr> {
    vec![
        col("workload"),
        col("pipeline"),
        col("model"),
        col("orchestrator").fill_null(lit("unknown")),
    ]
}

/// One result row's [`AI_KEYS`] values.
fn ai_key(df: &DataFrame, row: usize) -> [String; 4] {
    AI_KEYS.map(|k| text(df, k, row).unwrap_or_default())
}

/// The failed records of an `ai` or `ai_live` table counted by [`AI_KEYS`] and reason (`unknown`
/// when a record gives none); `what` names the query in an error.
fn ai_reasons(df: &DataFrame, what: &str) -> Res<DataFrame> {
    let mut keys = ai_keys();
    keys.push(col("reason").fill_null(lit("unknown")));
    df.clone()
        .lazy()
        .filter(col("ok").eq(lit(false)))
        .group_by(keys)
        .agg([len().cast(DataType::Float64).alias("count")])
        .collect()
        .map_err(ReportError::polars(what))
}

/// The failures of the group `key` from [`ai_reasons`]' result: most frequent first, ties by
/// reason.
fn ai_failures(reasons: &DataFrame, key: &[String; 4]) -> Vec<ReasonCount> {
    let mut failures: Vec<ReasonCount> = (0..reasons.height())
        .filter(|&r| {
            AI_KEYS
                .iter()
                .zip(key)
                .all(|(k, v)| text(reasons, k, r).as_ref() == Some(v))
        })
        .map(|r| ReasonCount {
            reason: text(reasons, "reason", r).unwrap_or_default(),
            count: count(reasons, "count", r),
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    failures
}

/// The AI probe's live video-to-video jobs by workload × pipeline × model × who answered.
fn ai_live(df: &DataFrame) -> Res<Vec<AiLiveStats>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let sum = |column: &str| f64c(column).sum().alias(column);
    let mut exprs = vec![
        len().cast(DataType::Float64).alias("jobs"),
        col("ok").cast(DataType::Float64).sum().alias("ok"),
        f64c(column_of("ai_live_fps")).min().alias("output_fps_min"),
        f64c("target_fps").max().alias("target_fps"),
        f64c(column_of("ai_live_frame_latency"))
            .max()
            .alias("latency_p95_ms_max"),
        sum("stalls"),
        f64c(column_of("ai_live_stall_time"))
            .sum()
            .alias("stall_time_ms"),
        sum("unreadable_stamps"),
        // The table is sorted by time, so the first failed job's error is the earliest.
        col("error")
            .filter(col("ok").eq(lit(false)))
            .first()
            .alias("first_error"),
    ];
    exprs.extend(dist_exprs(
        column_of("ai_live_time_to_first_frame"),
        "ttff_",
    ));
    let rows = df
        .clone()
        .lazy()
        .sort(["t_ms"], SortMultipleOptions::default())
        .group_by(ai_keys())
        .agg(exprs)
        .sort(AI_KEYS, SortMultipleOptions::default())
        .collect()
        .map_err(ReportError::polars("AI live jobs by model"))?;
    let reasons = ai_reasons(df, "AI live failures by reason")?;
    Ok((0..rows.height())
        .map(|row| {
            let key = ai_key(&rows, row);
            let failures = ai_failures(&reasons, &key);
            let jobs = count(&rows, "jobs", row);
            let ok = count(&rows, "ok", row);
            let [workload, pipeline, model, orchestrator] = key;
            AiLiveStats {
                workload,
                pipeline,
                model,
                orchestrator,
                jobs,
                ok,
                success_rate: (jobs > 0).then(|| ok as f64 / jobs as f64),
                time_to_first_frame_ms: read_dist(&rows, row, "ttff_"),
                output_fps_min: num(&rows, "output_fps_min", row),
                target_fps: num(&rows, "target_fps", row),
                latency_p95_ms_max: num(&rows, "latency_p95_ms_max", row),
                stalls: count(&rows, "stalls", row),
                stall_time_ms: num(&rows, "stall_time_ms", row).unwrap_or(0.0),
                unreadable_stamps: count(&rows, "unreadable_stamps", row),
                failures,
                first_error: text(&rows, "first_error", row),
            }
        })
        .collect())
}

fn uint(df: &DataFrame, name: &str, row: usize) -> Option<u64> {
    let column = df.column(name).ok()?;
    let cast = column.cast(&DataType::UInt64).ok()?;
    cast.u64().ok()?.get(row)
}

fn int(df: &DataFrame, name: &str, row: usize) -> Option<i64> {
    let column = df.column(name).ok()?;
    let cast = column.cast(&DataType::Int64).ok()?;
    cast.i64().ok()?.get(row)
}

fn flag(df: &DataFrame, name: &str, row: usize) -> Option<bool> {
    df.column(name).ok()?.bool().ok()?.get(row)
}

/// The chaos events by start time with their recovery figures, and a sentence for each
/// occurrence that has recovery records but no chaos record. `t0` is the plots' time origin.
fn chaos(frames: &RecordFrames, t0: i64) -> Res<(Vec<ChaosEventStats>, Vec<String>)> {
    let mut figures = recovery_figures(&frames.recovery)?;
    let df = &frames.chaos;
    let mut events = Vec::with_capacity(df.height());
    for row in 0..df.height() {
        let t_ms = int(df, "t_ms", row).unwrap_or(t0);
        let event = text(df, "event", row).unwrap_or_default();
        let mut stats = figures.remove(&(event.clone(), t_ms)).unwrap_or_default();
        let end_ms = int(df, "end_ms", row);
        stats.event = event;
        stats.kind = text(df, "kind", row).unwrap_or_default();
        stats.target = text(df, "target", row).unwrap_or_default();
        stats.t_ms = t_ms;
        stats.start_s = (t_ms - t0) as f64 / 1000.0;
        stats.end_ms = end_ms;
        stats.duration_s = end_ms.map(|end| (end - t_ms).max(0) as f64 / 1000.0);
        stats.ok = flag(df, "ok", row).unwrap_or(false);
        stats.message = text(df, "message", row);
        events.push(stats);
    }
    events.sort_by(|a, b| a.t_ms.cmp(&b.t_ms).then_with(|| a.event.cmp(&b.event)));
    let problems = figures
        .into_keys()
        .map(|(event, t_ms)| {
            format!(
                "recovery records of `{event}` at {} have no chaos record: the event is not shown",
                crate::util::iso_utc(t_ms)
            )
        })
        .collect();
    Ok((events, problems))
}

/// Per occurrence, keyed by `(event, t_ms)`: its recovery records summed or maximized over its
/// streams and orchestrators, in the recovery fields of an otherwise empty row.
fn recovery_figures(df: &DataFrame) -> Res<BTreeMap<(String, i64), ChaosEventStats>> {
    if df.height() == 0 {
        return Ok(BTreeMap::new());
    }
    let out = df
        .clone()
        .lazy()
        .group_by([col("event"), col("t_ms")])
        .agg([
            // One record per stream that ran through the occurrence; payment records have none.
            col("stream")
                .count()
                .cast(DataType::Float64)
                .alias("streams_hit"),
            f64c("failover_time_ms").max().alias("failover_time_ms_max"),
            f64c("segments_lost").sum().alias("segments_lost"),
            f64c("stall_time_ms").max().alias("stall_time_ms_max"),
            col("recovered")
                .not()
                .cast(DataType::Float64)
                .sum()
                .alias("streams_not_recovered"),
            f64c("winners").sum().alias("winners"),
            f64c("redemptions_lost").sum().alias("redemptions_lost"),
            f64c("redemption_delay_ms")
                .max()
                .alias("redemption_delay_ms_max"),
        ])
        .collect()
        .map_err(ReportError::polars("recovery by event"))?;
    Ok((0..out.height())
        .map(|row| {
            let key = (
                text(&out, "event", row).unwrap_or_default(),
                int(&out, "t_ms", row).unwrap_or(0),
            );
            let figures = ChaosEventStats {
                streams_hit: count(&out, "streams_hit", row),
                failover_time_ms_max: num(&out, "failover_time_ms_max", row),
                segments_lost: count(&out, "segments_lost", row),
                stall_time_ms_max: num(&out, "stall_time_ms_max", row),
                streams_not_recovered: count(&out, "streams_not_recovered", row),
                winners: count(&out, "winners", row),
                redemptions_lost: count(&out, "redemptions_lost", row),
                redemption_delay_ms_max: num(&out, "redemption_delay_ms_max", row),
                ..ChaosEventStats::default()
            };
            (key, figures)
        })
        .collect())
}

fn buckets(seg: &DataFrame, t0: i64, bucket_s: f64) -> Res<Vec<BucketPoint>> {
    if seg.height() == 0 {
        return Ok(Vec::new());
    }
    let bucket_ms = (bucket_s * 1000.0).round().max(1.0) as i64;
    let lf = seg.clone().lazy().with_column(
        // t_ms ≥ t0, so truncating the quotient is flooring it (Polars' integer floor
        // division needs the `round_series` feature).
        ((col("t_ms") - lit(t0)).cast(DataType::Float64) / lit(bucket_ms as f64))
            .cast(DataType::Int64)
            .alias("bucket"),
    );
    let exprs = || {
        vec![
            len().cast(DataType::Float64).alias("segments"),
            f64c("ok").mean().alias("success_rate"),
            f64c("latency_ms")
                .quantile(lit(0.5), QuantileMethod::Linear)
                .alias("p50"),
            f64c("latency_ms")
                .quantile(lit(0.95), QuantileMethod::Linear)
                .alias("p95"),
        ]
    };
    let per_rendition = lf
        .clone()
        .group_by([col("rendition"), col("bucket")])
        .agg(exprs())
        .collect()
        .map_err(ReportError::polars("buckets by rendition"))?;
    let all = lf
        .group_by([col("bucket")])
        .agg(exprs())
        .with_column(lit("all").alias("rendition"))
        .collect()
        .map_err(ReportError::polars("buckets overall"))?;
    let mut points = Vec::with_capacity(per_rendition.height() + all.height());
    for df in [&per_rendition, &all] {
        // Cast each column once: there can be thousands of buckets.
        let f = |name: &str| -> Res<Float64Chunked> {
            df.column(name)
                .and_then(|c| c.cast(&DataType::Float64))
                .and_then(|c| c.f64().cloned())
                .map_err(ReportError::polars(format!("bucket column {name}")))
        };
        let rendition = df
            .column("rendition")
            .and_then(|c| c.str().cloned())
            .map_err(ReportError::polars("bucket column rendition"))?;
        let (bucket, segments, success, p50, p95) = (
            f("bucket")?,
            f("segments")?,
            f("success_rate")?,
            f("p50")?,
            f("p95")?,
        );
        for row in 0..df.height() {
            points.push(BucketPoint {
                t_s: bucket.get(row).unwrap_or(0.0) * bucket_ms as f64 / 1000.0,
                rendition: rendition.get(row).unwrap_or_default().to_string(),
                segments: segments.get(row).unwrap_or(0.0) as u64,
                success_rate: success.get(row).unwrap_or(0.0),
                latency_p50_ms: p50.get(row).filter(|v| v.is_finite()),
                latency_p95_ms: p95.get(row).filter(|v| v.is_finite()),
            });
        }
    }
    points.sort_by(|a, b| a.rendition.cmp(&b.rendition).then(a.t_s.total_cmp(&b.t_s)));
    Ok(points)
}

fn latency_cdf(seg: &DataFrame) -> Res<BTreeMap<String, Vec<(f64, f64)>>> {
    let mut per: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    if seg.height() == 0 {
        return Ok(BTreeMap::new());
    }
    let err = ReportError::polars("latency CDF");
    let r = seg.column("rendition").and_then(|c| c.str().cloned());
    let l = seg.column("latency_ms").and_then(|c| c.f64().cloned());
    let (r, l) = match (r, l) {
        (Ok(r), Ok(l)) => (r, l),
        (Err(e), _) | (_, Err(e)) => return Err(err(e)),
    };
    for (rendition, latency) in r.iter().zip(l.iter()) {
        if let (Some(rendition), Some(latency)) = (rendition, latency)
            && latency.is_finite()
        {
            match per.get_mut(rendition) {
                Some(v) => v.push(latency),
                None => {
                    per.insert(rendition.to_string(), vec![latency]);
                }
            }
        }
    }
    Ok(per
        .into_iter()
        .map(|(rendition, mut v)| {
            v.sort_by(f64::total_cmp);
            (rendition, cdf_points(&v))
        })
        .collect())
}

/// At most `CDF_POINTS` + 1 points of the empirical CDF of sorted `v`.
fn cdf_points(v: &[f64]) -> Vec<(f64, f64)> {
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let steps = CDF_POINTS.min(n);
    let mut out = Vec::with_capacity(steps + 1);
    out.push((v[0], 1.0 / n as f64));
    for i in 1..=steps {
        let idx = (i * n).div_ceil(steps) - 1;
        out.push((v[idx], (idx + 1) as f64 / n as f64));
    }
    out
}
