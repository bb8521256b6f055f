//! Records journal, Polars aggregation, plots and report writers (HTML, JUnit, Markdown, JSON).
//!
//! The pipeline is visible in the module list: a run appends typed records (`observation::record`)
//! to a crash-safe [`journal`]; at the end (or later, from `lpt report DIR`) [`finalize_run`] reads
//! the journal into Polars tables ([`frames`]), [`aggregate`]s them, draws the [`plots`], and writes every output
//! ([`render`], [`summary`], [`leaderboard`]). [`compare()`] puts two runs side by side. Posting
//! leaderboard records to the public API is the tester's `publish` module: this crate reads and
//! writes files only.
//!
//! Design decision: one pipeline renders every artifact from the run directory, so a run that
//! finished ([`finish_run`], handed the run's summary), one that crashed and one re-rendered a
//! month later ([`finalize_run`], reading `summary.json`) go through the same code. `summary.json`
//! is written once: by [`finish_run`] with the report's `report` and `breakdowns` added, or by
//! [`finalize_run`] only when the run left none.
//! Content problems (a torn journal line, a missing `summary.json`, a run with no records) never
//! stop the report: they are listed in it under "missing".

pub mod aggregate;
pub mod breakdowns;
pub mod compare;
pub mod error;
pub mod frames;
pub mod journal;
pub mod leaderboard;
pub mod plots;
pub mod render;
pub mod summary;
pub mod util;

use std::path::{Path, PathBuf};

pub use aggregate::AggregateOptions;
pub use breakdowns::Aggregates;
pub use compare::{CompareOptions, Comparison, compare};
pub use error::ReportError;
pub use journal::{JOURNAL_FILE, JournalReader, JournalStats, JournalWriter};
pub use summary::{RunVerdict, SummarySource};

/// File names written into a run directory.
pub mod files {
    /// The journal (input).
    pub const JOURNAL: &str = crate::journal::JOURNAL_FILE;
    /// The run's summary.
    pub const SUMMARY: &str = observation::summary::SUMMARY_FILE;
    /// All records, one table with a `type` column.
    pub const PARQUET: &str = "records.parquet";
    /// The HTML report.
    pub const HTML: &str = "report.html";
    /// JUnit XML.
    pub const JUNIT: &str = "junit.xml";
    /// Markdown summary.
    pub const MARKDOWN: &str = "summary.md";
    /// Leaderboard records (only when the run tested orchestrators).
    pub const LEADERBOARD: &str = crate::leaderboard::LEADERBOARD_FILE;
    /// Plot directory.
    pub const PLOTS_DIR: &str = "plots";
}

/// Options of [`finalize_run`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Aggregation options (plot bucket width).
    pub aggregate: AggregateOptions,
    /// Also write PNG copies of the plots.
    pub png: bool,
    /// Region to put on leaderboard records whose segments carry none; `None` writes `unknown`.
    pub default_region: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            aggregate: AggregateOptions::default(),
            png: true,
            default_region: None,
        }
    }
}

/// What [`finalize_run`] did.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The headline verdict (from the tester's outcome; unknown when summary.json was missing).
    pub verdict: RunVerdict,
    /// Where the base summary came from.
    pub summary_source: SummarySource,
    /// What the journal reader found.
    pub journal: JournalStats,
    /// Rows written to `records.parquet` (= usable journal records).
    pub records: usize,
    /// Everything missing or skipped, as sentences (also shown in every report).
    pub missing: Vec<String>,
    /// Every file written.
    pub artifacts: Vec<PathBuf>,
    /// Leaderboard records written (0 when the run tested no orchestrator).
    pub leaderboard_records: usize,
    /// The aggregates, for the terminal summary.
    pub aggregates: Aggregates,
}

/// Prints phase timings to stderr when `LPT_REPORT_TIMINGS` is set (for the soak benchmark).
struct PhaseTimer {
    enabled: bool,
    last: std::time::Instant,
}

impl PhaseTimer {
    fn new() -> Self {
        PhaseTimer {
            enabled: std::env::var_os("LPT_REPORT_TIMINGS").is_some(),
            last: std::time::Instant::now(),
        }
    }
    fn done(&mut self, phase: &str) {
        if self.enabled {
            eprintln!("  {phase}: {:.2} s", self.last.elapsed().as_secs_f64());
        }
        self.last = std::time::Instant::now();
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    // Write then rename, so a reader (or a crash) never sees half a file.
    let tmp = path.with_extension("tmp-write");
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Synced before the rename: a crash or a full disk never leaves an empty or short file
    // under the final name.
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut file, bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Vec<u8>, ReportError> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|source| ReportError::Serialize {
        what: what.to_string(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The end of a run: renders every report artifact from the run's journal and writes `summary`
/// (the run's summary, with `report` and `breakdowns` added) as `summary.json`, once.
pub fn finish_run<S: serde::Serialize + ?Sized>(
    run_dir: &Path,
    summary: &S,
    options: &ReportOptions,
) -> Result<ReportOutcome, ReportError> {
    check_run_dir(run_dir)?;
    let value = serde_json::to_value(summary).map_err(|source| ReportError::Serialize {
        what: "the run's summary".into(),
        source,
    })?;
    render_run(
        run_dir,
        summary::LoadedSummary::from_run(value)?,
        true,
        options,
    )
}

/// `lpt report DIR`: renders every report artifact of a run directory from its journal and
/// `summary.json`: `records.parquet`, `plots/*.svg|png`, `report.html`, `junit.xml`, `summary.md`
/// and `leaderboard.json` (when orchestrators were tested). `summary.json` is read, never
/// rewritten; only a run that left none (or an unreadable one) gets a journal-only summary.
///
/// Works on a finished run, a crashed run (no `summary.json`, torn journal) and an empty directory;
/// what is missing is said in the outputs and in [`ReportOutcome::missing`].
pub fn finalize_run(run_dir: &Path, options: &ReportOptions) -> Result<ReportOutcome, ReportError> {
    check_run_dir(run_dir)?;
    let summary = summary::LoadedSummary::load(run_dir)?;
    let left_none = summary.source == SummarySource::Journal && !summary.raw.contains_key("report");
    render_run(run_dir, summary, left_none, options)
}

fn check_run_dir(run_dir: &Path) -> Result<(), ReportError> {
    if run_dir.is_dir() {
        return Ok(());
    }
    Err(ReportError::NotARunDirectory {
        path: run_dir.to_path_buf(),
        why: if run_dir.exists() {
            "not a directory".into()
        } else {
            "no such directory".into()
        },
    })
}

/// The report pipeline: journal → frames → aggregates → parquet, plots, leaderboard, HTML, JUnit,
/// Markdown, then (when `write_summary`) `summary.json` with `report` and `breakdowns`.
fn render_run(
    run_dir: &Path,
    summary: summary::LoadedSummary,
    write_summary: bool,
    options: &ReportOptions,
) -> Result<ReportOutcome, ReportError> {
    let mut timer = PhaseTimer::new();
    let mut missing = Vec::new();
    if let Some(p) = &summary.problem {
        missing.push(p.clone());
    }

    let journal_path = run_dir.join(JOURNAL_FILE);
    let journal_present = journal_path.is_file();
    let (frames, journal_stats) = if journal_present {
        frames::RecordFrames::read_journal(&journal_path)?
    } else {
        missing.push("records.jsonl is missing: there are no records to aggregate".to_string());
        (frames::RecordFrames::empty()?, JournalStats::default())
    };
    missing.extend(journal_stats.describe_problems());
    if journal_present && journal_stats.total_records() == 0 {
        missing.push("the journal holds no usable records (empty run)".to_string());
    } else if journal_present
        && frames.segments.height() == 0
        && frames.ai.height() == 0
        && frames.ai_live.height() == 0
    {
        missing.push("no segment records: segment success and latency are unknown".to_string());
    }

    timer.done("read journal");
    let aggregates = aggregate::aggregate(&frames, options.aggregate)?;
    missing.extend(aggregates.problems.iter().cloned());
    timer.done("aggregate");
    let mut artifacts = Vec::new();

    let parquet = run_dir.join(files::PARQUET);
    let records = frames.write_parquet(&parquet)?;
    artifacts.push(parquet);
    timer.done("write records.parquet");

    let run_name = if summary.view.scenario.name.is_empty() {
        run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    } else {
        summary.view.scenario.name.clone()
    };
    let when = summary
        .view
        .started_at
        .as_deref()
        .map(|s| s.get(..16).unwrap_or(s).replace('T', " ") + " UTC")
        .or_else(|| aggregates.first_record_ms.map(util::human_utc))
        .unwrap_or_else(|| "time unknown".to_string());
    let ctx = plots::PlotContext {
        run_name: run_name.clone(),
        when: when.clone(),
    };
    let (plots, skipped) = plots::draw_all(
        &run_dir.join(files::PLOTS_DIR),
        &aggregates,
        &ctx,
        options.png,
    )?;
    for p in &plots {
        artifacts.push(p.svg_path.clone());
        artifacts.extend(p.png_path.clone());
    }
    timer.done("plots");

    let timestamp_s = aggregates.last_record_ms.unwrap_or_else(util::now_ms) / 1000;
    // Only segments take the default region: the other tables inherit their region from the
    // segments' (see `leaderboard::extras`).
    let mut segments_for_board = frames.segments.clone();
    if let Some(region) = &options.default_region {
        use polars::prelude::*;
        segments_for_board = segments_for_board
            .lazy()
            .with_column(col("region").fill_null(lit(region.as_str())))
            .collect()
            .map_err(ReportError::polars("default region"))?;
    }
    let board = leaderboard::build(
        leaderboard::LeaderboardInputs {
            segments: &segments_for_board,
            quality: &frames.quality,
            tickets: &frames.tickets,
            redemptions: &frames.redemptions,
        },
        timestamp_s,
    )?;
    let board = leaderboard::with_ai(
        board,
        &frames.ai,
        timestamp_s,
        options.default_region.as_deref(),
    )?;
    if let Some(board) = &board {
        let path = run_dir.join(files::LEADERBOARD);
        write_file(&path, &to_json("leaderboard.json", board)?)?;
        artifacts.push(path);
    }

    timer.done("leaderboard");
    let verdict = summary.verdict();
    let generated_at = util::iso_utc(util::now_ms());
    let rctx = render::ReportContext {
        summary: &summary,
        verdict: &verdict,
        aggregates: &aggregates,
        journal: &journal_stats,
        journal_present,
        missing: &missing,
        plots: &plots,
        skipped_plots: &skipped,
        leaderboard: board.as_ref(),
        run_name,
        when,
        generated_at: generated_at.clone(),
    };
    for (name, text) in [
        (files::HTML, render::html::render(&rctx)),
        (files::JUNIT, render::junit::render(&rctx)),
        (files::MARKDOWN, render::markdown::render(&rctx)),
    ] {
        let path = run_dir.join(name);
        write_file(&path, text.as_bytes())?;
        artifacts.push(path);
    }

    if write_summary {
        write_extended_summary(
            run_dir,
            &summary,
            &journal_stats,
            journal_present,
            &missing,
            &mut artifacts,
            generated_at,
            &aggregates,
        )?;
    }
    timer.done("html, junit, markdown, summary.json");

    Ok(ReportOutcome {
        run_dir: run_dir.to_path_buf(),
        verdict,
        summary_source: summary.source.clone(),
        journal: journal_stats,
        records,
        missing,
        artifacts,
        leaderboard_records: board.map_or(0, |b| b.records.len()),
        aggregates,
    })
}

/// Adds `report` (listing `artifacts`, summary.json included) and `breakdowns` to the summary and
/// writes it.
#[allow(clippy::too_many_arguments)]
fn write_extended_summary(
    run_dir: &Path,
    summary: &summary::LoadedSummary,
    journal_stats: &JournalStats,
    journal_present: bool,
    missing: &[String],
    artifacts: &mut Vec<PathBuf>,
    generated_at: String,
    aggregates: &Aggregates,
) -> Result<(), ReportError> {
    let summary_path = run_dir.join(files::SUMMARY);
    artifacts.push(summary_path.clone());
    let meta = summary::ReportMeta {
        schema_version: summary::REPORT_SCHEMA_VERSION,
        generated_at,
        generated_by: format!("reports {}", env!("CARGO_PKG_VERSION")),
        summary_source: summary.source.clone(),
        journal: journal_stats.clone(),
        journal_present,
        missing: missing.to_vec(),
        artifacts: artifacts
            .iter()
            .map(|p| {
                p.strip_prefix(run_dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    };
    let extended = summary.extended(&meta, aggregates)?;
    observation::summary::write_summary(run_dir, &extended).map_err(|source| ReportError::Io {
        path: summary_path,
        source,
    })?;
    Ok(())
}
