//! `lpt compare BASE NEW`: per metric, the relative change from a baseline run with a bootstrap
//! confidence interval, judged the way criterion judges benchmarks.
//!
//! Design decisions:
//! - Samples come from each run's journal (the raw per-segment values), not from summaries, so the
//!   interval reflects the real spread. Each run is resampled with replacement (`resamples`
//!   times, default 1 000); the statistic's relative change `new/base − 1` of every resample pair
//!   gives the distribution whose central `confidence` interval (default 95 %) is reported.
//! - A change is a **regression** only when the whole interval lies beyond the noise threshold in
//!   the bad direction (default 2 %), an **improvement** only when it lies wholly beyond it in the
//!   good direction; an interval wholly inside ±noise is **within noise**, anything else is
//!   **inconclusive**. Which direction is bad is a property of the metric, read from the metric
//!   table (`observation::metric`): latency up, success rate and VMAF down.
//! - Which journal column holds a metric's samples is also the table's: the run's live registry
//!   was fed from the same columns of the same records.
//! - Large runs are subsampled to at most `max_samples` values per metric (deterministic seed), so
//!   comparing two 24-hour soaks takes seconds; the reported point estimates use all values.
//! - Runs of different scenarios are not compared: the result says why (`comparable = false`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use observation::metric::{self, Better, MetricDef};

use crate::error::ReportError;
use crate::frames::RecordFrames;
use crate::journal::JOURNAL_FILE;
use crate::summary::{LoadedSummary, SummarySource};

/// File name of the comparison written into the new run's directory.
pub const COMPARE_FILE: &str = "compare.json";

/// How to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Noise threshold as a fraction (0.02 = 2 %).
    pub noise: f64,
    /// Confidence level of the interval (0.95).
    pub confidence: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Values per run and metric used for resampling.
    pub max_samples: usize,
    /// Seed of the resampling generator.
    pub seed: u64,
    /// Where to write `compare.json`; `None` = `<new>/compare.json`.
    pub output: Option<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            noise: 0.02,
            confidence: 0.95,
            resamples: 1000,
            max_samples: 5000,
            seed: 0x5eed_1234_abcd_0001,
            output: None,
        }
    }
}

/// The judgement of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeVerdict {
    /// Whole interval beyond the noise threshold in the bad direction.
    Regression,
    /// Whole interval beyond the noise threshold in the good direction.
    Improvement,
    /// Whole interval inside ± noise.
    WithinNoise,
    /// The interval straddles the noise threshold.
    Inconclusive,
    /// One run has no samples (or the base statistic is zero).
    InsufficientData,
}

/// The change of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    /// Metric with tags, e.g. `latency_p95{rendition=P360p30fps16x9}`.
    pub metric: String,
    /// Unit of `base` and `new`.
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
    /// Statistic in the base run.
    pub base: Option<f64>,
    /// Statistic in the new run.
    pub new: Option<f64>,
    /// Samples in the base run.
    pub base_samples: usize,
    /// Samples in the new run.
    pub new_samples: usize,
    /// `new / base − 1`.
    pub change: Option<f64>,
    /// Lower end of the confidence interval of `change`.
    pub ci_low: Option<f64>,
    /// Upper end.
    pub ci_high: Option<f64>,
    /// The judgement.
    pub verdict: ChangeVerdict,
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Base run directory.
    pub base_dir: PathBuf,
    /// New run directory.
    pub new_dir: PathBuf,
    /// Base scenario name (empty when unknown).
    pub base_scenario: String,
    /// New scenario name.
    pub new_scenario: String,
    /// Whether the runs could be compared.
    pub comparable: bool,
    /// Why not, when `comparable` is false.
    pub reason: Option<String>,
    /// Caveats (unknown scenario, edited scenario, skipped journal lines).
    pub warnings: Vec<String>,
    /// Noise threshold used (fraction).
    pub noise: f64,
    /// Confidence level used.
    pub confidence: f64,
    /// Per metric.
    pub metrics: Vec<MetricChange>,
    /// Metrics judged regressions.
    pub regressions: usize,
    /// Metrics judged improvements.
    pub improvements: usize,
}

impl Comparison {
    /// Whether any metric regressed (the CLI exits 99 then).
    pub fn has_regression(&self) -> bool {
        self.regressions > 0
    }

    /// A plain-text table for the terminal.
    pub fn render_table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        if !self.comparable {
            let _ = writeln!(
                out,
                "cannot compare: {}",
                self.reason.as_deref().unwrap_or("unknown reason")
            );
            return out;
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let _ = writeln!(
            out,
            "{:<48} {:>12} {:>12} {:>9}  {:<21} verdict",
            "metric",
            "base",
            "new",
            "change",
            format!("{:.0} % CI", self.confidence * 100.0)
        );
        let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:+.2} %", v * 100.0));
        for m in &self.metrics {
            let _ = writeln!(
                out,
                "{:<48} {:>12} {:>12} {:>9}  [{:>8}, {:>8}]  {:?}",
                m.metric,
                crate::util::fmt_num(m.base),
                crate::util::fmt_num(m.new),
                pct(m.change),
                pct(m.ci_low),
                pct(m.ci_high),
                m.verdict
            );
        }
        let _ = writeln!(
            out,
            "{} regression(s), {} improvement(s) beyond ±{:.1} % noise",
            self.regressions,
            self.improvements,
            self.noise * 100.0
        );
        out
    }
}

/// The statistic a metric compares.
#[derive(Debug, Clone, Copy)]
enum Stat {
    Mean,
    Quantile(f64),
}

impl Stat {
    fn compute(self, v: &mut [f64]) -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        match self {
            Stat::Mean => Some(v.iter().sum::<f64>() / v.len() as f64),
            Stat::Quantile(q) => {
                // Linear interpolation between closest ranks, as in `aggregate`.
                let h = q * (v.len() - 1) as f64;
                let lo = h.floor() as usize;
                let (_, x_lo, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
                let x_lo = *x_lo;
                let frac = h - lo as f64;
                if frac == 0.0 || rest.is_empty() {
                    return Some(x_lo);
                }
                let x_hi = rest.iter().copied().fold(f64::INFINITY, f64::min);
                Some(x_lo + frac * (x_hi - x_lo))
            }
        }
    }
}

/// Sample sets of one run, keyed by (metric name, tag string).
type Samples = BTreeMap<(&'static str, String), Vec<f64>>;

fn push(s: &mut Samples, name: &'static str, tags: String, v: f64) {
    s.entry((name, tags)).or_default().push(v);
}

fn column_f64(df: &DataFrame, name: &str) -> Result<Float64Chunked, ReportError> {
    df.column(name)
        .and_then(|c| c.cast(&DataType::Float64))
        .and_then(|c| c.f64().cloned())
        .map_err(ReportError::polars(format!("compare: column {name}")))
}

fn column_str(df: &DataFrame, name: &str) -> Result<StringChunked, ReportError> {
    df.column(name)
        .and_then(|c| c.cast(&DataType::String))
        .and_then(|c| c.str().cloned())
        .map_err(ReportError::polars(format!("compare: column {name}")))
}

/// A metric's samples from the journal column the metric table names, overall and (when
/// `by_rendition`) per rendition.
fn journal_samples(
    s: &mut Samples,
    frames: &RecordFrames,
    def: &'static MetricDef,
    by_rendition: bool,
) -> Result<(), ReportError> {
    let Some(source) = def.journal else {
        return Ok(());
    };
    let Some((_, df)) = frames
        .tables()
        .into_iter()
        .find(|(t, _)| *t == source.record)
    else {
        return Ok(());
    };
    if df.height() == 0 {
        return Ok(());
    }
    let values = column_f64(df, source.column)?;
    let rendition = column_str(df, "rendition")?;
    let filter = match source.only {
        Some((column, value)) => Some((column_str(df, column)?, value)),
        None => None,
    };
    for i in 0..df.height() {
        if let Some((column, value)) = &filter
            && column.get(i) != Some(*value)
        {
            continue;
        }
        if let Some(v) = values.get(i).filter(|v| v.is_finite()) {
            push(s, def.name, String::new(), v);
            if by_rendition {
                let r = rendition.get(i).unwrap_or("");
                push(s, def.name, format!("{{rendition={r}}}"), v);
            }
        }
    }
    Ok(())
}

/// Real-time samples of `lpt bench`'s segments (transcode time ÷ duration, and whether it was at
/// most 1), per session count: derived from two columns, so not a column of the table's.
fn bench_samples(s: &mut Samples, frames: &RecordFrames) -> Result<(), ReportError> {
    let b = &frames.bench;
    if b.height() == 0 {
        return Ok(());
    }
    let sessions = column_f64(b, "sessions")?;
    let ok = column_f64(b, "ok")?;
    let transcode = column_f64(b, "transcode_ms")?;
    let duration = column_f64(b, "duration_s")?;
    for i in 0..b.height() {
        if ok.get(i) != Some(1.0) {
            continue;
        }
        if let (Some(n), Some(t), Some(d)) = (sessions.get(i), transcode.get(i), duration.get(i))
            && d > 0.0
        {
            let ratio = t / 1000.0 / d;
            let tag = format!("{{sessions={n}}}");
            push(s, TRANSCODE_RATIO, tag.clone(), ratio);
            push(
                s,
                REALTIME_SEGMENTS,
                tag,
                if ratio <= 1.0 { 1.0 } else { 0.0 },
            );
        }
    }
    Ok(())
}

const TRANSCODE_RATIO: &str = "transcode_realtime_ratio";
const REALTIME_SEGMENTS: &str = "realtime_segments";

fn samples(frames: &RecordFrames) -> Result<Samples, ReportError> {
    let mut s = Samples::new();
    let mut seen: Vec<&str> = Vec::new();
    for c in COMPARED {
        if seen.contains(&c.metric) {
            continue;
        }
        seen.push(c.metric);
        journal_samples(&mut s, frames, c.def(), c.by_rendition)?;
    }
    bench_samples(&mut s, frames)?;
    Ok(s)
}

/// One statistic `lpt compare` judges: a metric of the table, under the name it is reported as.
struct Compared {
    /// The metric (`observation::metric::CATALOG`), whose samples and better direction it uses.
    metric: &'static str,
    /// The name in `compare.json` and the table.
    label: &'static str,
    stat: Stat,
    /// The unit of the statistic as reported.
    unit: &'static str,
    /// Also judged per rendition.
    by_rendition: bool,
}

impl Compared {
    fn def(&self) -> &'static MetricDef {
        metric::lookup(self.metric).expect("every compared metric is in the metric table")
    }
}

const fn compared(
    metric: &'static str,
    label: &'static str,
    stat: Stat,
    unit: &'static str,
    by_rendition: bool,
) -> Compared {
    Compared {
        metric,
        label,
        stat,
        unit,
        by_rendition,
    }
}

/// What is compared, in the order it is reported.
const COMPARED: &[Compared] = &[
    compared("latency", "latency_mean", Stat::Mean, "ms", true),
    compared("latency", "latency_p50", Stat::Quantile(0.5), "ms", true),
    compared("latency", "latency_p95", Stat::Quantile(0.95), "ms", true),
    compared(
        "segment_success",
        "segment_success_rate",
        Stat::Mean,
        "ratio",
        true,
    ),
    compared("round_trip", "round_trip_mean", Stat::Mean, "ms", false),
    compared("vmaf", "vmaf_mean", Stat::Mean, "vmaf", true),
    compared(
        TRANSCODE_RATIO,
        "transcode_ratio_mean",
        Stat::Mean,
        "ratio",
        false,
    ),
    compared(
        REALTIME_SEGMENTS,
        "real_time_fraction",
        Stat::Mean,
        "ratio",
        false,
    ),
];

/// A small deterministic generator (SplitMix64): reproducible intervals without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n
    }
}

fn subsample(v: &[f64], max: usize, rng: &mut SplitMix) -> Vec<f64> {
    if v.len() <= max {
        return v.to_vec();
    }
    (0..max).map(|_| v[rng.below(v.len())]).collect()
}

/// The outcome of judging one metric.
struct Judged {
    base: Option<f64>,
    new: Option<f64>,
    change: Option<f64>,
    ci: Option<(f64, f64)>,
    verdict: ChangeVerdict,
}

fn judge(
    base: &[f64],
    new: &[f64],
    stat: Stat,
    better: Better,
    o: &CompareOptions,
    rng: &mut SplitMix,
) -> Judged {
    let b = stat.compute(&mut base.to_vec());
    let n = stat.compute(&mut new.to_vec());
    let insufficient = |change| Judged {
        base: b,
        new: n,
        change,
        ci: None,
        verdict: ChangeVerdict::InsufficientData,
    };
    let (Some(bv), Some(nv)) = (b, n) else {
        return insufficient(None);
    };
    if bv == 0.0 {
        return insufficient(None);
    }
    let change = nv / bv - 1.0;
    let bs = subsample(base, o.max_samples, rng);
    let ns = subsample(new, o.max_samples, rng);
    let mut changes = Vec::with_capacity(o.resamples);
    let mut rb = vec![0.0; bs.len()];
    let mut rn = vec![0.0; ns.len()];
    for _ in 0..o.resamples {
        for x in rb.iter_mut() {
            *x = bs[rng.below(bs.len())];
        }
        for x in rn.iter_mut() {
            *x = ns[rng.below(ns.len())];
        }
        if let (Some(sb), Some(sn)) = (stat.compute(&mut rb), stat.compute(&mut rn))
            && sb != 0.0
        {
            changes.push(sn / sb - 1.0);
        }
    }
    if changes.is_empty() {
        return insufficient(Some(change));
    }
    changes.sort_by(f64::total_cmp);
    let alpha = (1.0 - o.confidence) / 2.0;
    let last = changes.len() - 1;
    let at = |q: f64| changes[((q * last as f64).round() as usize).min(last)];
    let (lo, hi) = (at(alpha), at(1.0 - alpha));
    let (worse, improved) = match better {
        Better::Lower => (lo > o.noise, hi < -o.noise),
        Better::Higher => (hi < -o.noise, lo > o.noise),
        Better::Neither => (false, false),
    };
    let verdict = if worse {
        ChangeVerdict::Regression
    } else if improved {
        ChangeVerdict::Improvement
    } else if lo >= -o.noise && hi <= o.noise {
        ChangeVerdict::WithinNoise
    } else {
        ChangeVerdict::Inconclusive
    };
    Judged {
        base: b,
        new: n,
        change: Some(change),
        ci: Some((lo, hi)),
        verdict,
    }
}

fn load(dir: &Path) -> Result<(LoadedSummary, RecordFrames, Vec<String>), ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotARunDirectory {
            path: dir.to_path_buf(),
            why: "no such directory".into(),
        });
    }
    let summary = LoadedSummary::load(dir)?;
    let journal = dir.join(JOURNAL_FILE);
    let mut warnings = Vec::new();
    let frames = if journal.is_file() {
        let (frames, stats) = RecordFrames::read_journal(&journal)?;
        for p in stats.describe_problems() {
            warnings.push(format!("{}: {p}", dir.display()));
        }
        frames
    } else {
        warnings.push(format!("{}: records.jsonl is missing", dir.display()));
        RecordFrames::empty()?
    };
    Ok((summary, frames, warnings))
}

/// Compares two run directories and writes `compare.json` (see [`CompareOptions::output`]).
pub fn compare(
    base: &Path,
    new: &Path,
    options: &CompareOptions,
) -> Result<Comparison, ReportError> {
    if !(options.noise.is_finite() && options.noise >= 0.0) {
        return Err(ReportError::InvalidOption {
            name: "noise",
            value: options.noise.to_string(),
            why: "must be a fraction ≥ 0 (0.02 = 2 %)".into(),
        });
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(ReportError::InvalidOption {
            name: "confidence",
            value: options.confidence.to_string(),
            why: "must lie strictly between 0 and 1".into(),
        });
    }
    if options.resamples == 0 || options.max_samples == 0 {
        return Err(ReportError::InvalidOption {
            name: "resamples",
            value: format!("{}/{}", options.resamples, options.max_samples),
            why: "resamples and max_samples must be at least 1".into(),
        });
    }
    let (bs, bf, mut warnings) = load(base)?;
    let (ns, nf, w2) = load(new)?;
    warnings.extend(w2);
    let mut cmp = Comparison {
        base_dir: base.to_path_buf(),
        new_dir: new.to_path_buf(),
        base_scenario: bs.view.scenario.name.clone(),
        new_scenario: ns.view.scenario.name.clone(),
        comparable: true,
        reason: None,
        warnings,
        noise: options.noise,
        confidence: options.confidence,
        metrics: Vec::new(),
        regressions: 0,
        improvements: 0,
    };
    let known =
        |s: &LoadedSummary| s.source == SummarySource::Tester && !s.view.scenario.name.is_empty();
    if known(&bs) && known(&ns) {
        let (b, n) = (&bs.view.scenario, &ns.view.scenario);
        if b.name != n.name {
            cmp.comparable = false;
            cmp.reason = Some(format!(
                "the runs are of different scenarios: base ran \"{}\" ({}), new ran \"{}\" ({}); \
                 their workloads, ladders and thresholds differ, so a change in a metric would not \
                 mean a change in the software",
                b.name, b.path, n.name, n.path
            ));
        } else if b.source != n.source && !b.source.is_empty() && !n.source.is_empty() {
            cmp.warnings.push(format!(
                "scenario \"{}\" was edited between the runs; differences may come from the edit",
                b.name
            ));
        }
    } else {
        for (which, s) in [("base", &bs), ("new", &ns)] {
            if !known(s) {
                cmp.warnings.push(format!(
                    "the {which} run's scenario is unknown (summary.json missing); cannot check that both runs ran the same scenario"
                ));
            }
        }
    }
    if cmp.comparable {
        let base_samples = samples(&bf)?;
        let new_samples = samples(&nf)?;
        let mut keys: Vec<&(&'static str, String)> =
            base_samples.keys().chain(new_samples.keys()).collect();
        keys.sort();
        keys.dedup();
        let empty = Vec::new();
        let mut rng = SplitMix(options.seed);
        for c in COMPARED {
            let better = c.def().better;
            for key in keys.iter().filter(|k| k.0 == c.metric) {
                let b = base_samples.get(*key).unwrap_or(&empty);
                let n = new_samples.get(*key).unwrap_or(&empty);
                let j = judge(b, n, c.stat, better, options, &mut rng);
                match j.verdict {
                    ChangeVerdict::Regression => cmp.regressions += 1,
                    ChangeVerdict::Improvement => cmp.improvements += 1,
                    _ => {}
                }
                cmp.metrics.push(MetricChange {
                    metric: format!("{}{}", c.label, key.1),
                    unit: c.unit.to_string(),
                    better,
                    base: j.base,
                    new: j.new,
                    base_samples: b.len(),
                    new_samples: n.len(),
                    change: j.change,
                    ci_low: j.ci.map(|c| c.0),
                    ci_high: j.ci.map(|c| c.1),
                    verdict: j.verdict,
                });
            }
        }
    }
    let out = options
        .output
        .clone()
        .unwrap_or_else(|| new.join(COMPARE_FILE));
    let json = serde_json::to_vec_pretty(&cmp).map_err(|source| ReportError::Serialize {
        what: "compare.json".into(),
        source,
    })?;
    std::fs::write(&out, json).map_err(|source| ReportError::Io { path: out, source })?;
    Ok(cmp)
}
