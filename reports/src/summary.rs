//! `summary.json` as the reports read it: a lenient view of the run's summary, and the `report` and
//! `breakdowns` keys the report step adds before the run writes it.
//!
//! Design decisions:
//! - The run's summary is kept as a raw JSON object and every key of it is written unchanged; this
//!   crate only adds two top-level keys: `report` (what was read, what was missing, which files
//!   were written) and `breakdowns` (the `Aggregates`). Unknown keys survive, so the tester can
//!   grow the summary without touching this crate. The file is written once, by
//!   `observation::summary::write_summary`, under its one schema.
//! - The typed view uses `#[serde(default)]` everywhere, so `lpt report` and `lpt compare` read
//!   summaries of every earlier version; a file that does not even fit the lenient view is reported
//!   as unreadable and the run is rendered from the journal alone.
//! - When there is no summary (a crashed run), a minimal one is synthesized with
//!   `outcome.status = "unknown"` and `report.summary_source = "journal"`; `lpt report` writes it,
//!   so a later `lpt report` recognizes it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::breakdowns::Aggregates;
use crate::error::ReportError;
use crate::journal::JournalStats;

use observation::summary::SUMMARY_FILE;
/// Version of the `report` + `breakdowns` extension.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The tool that wrote the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolView {
    /// Tool name.
    pub name: String,
    /// Tool version.
    pub version: String,
}

/// Reads a string that may be `null` as the empty string.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// The scenario that ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScenarioView {
    /// Scenario name.
    pub name: String,
    /// Scenario file path.
    pub path: String,
    /// Description (`null` in summary.json when the scenario has none).
    #[serde(deserialize_with = "null_as_empty")]
    pub description: String,
    /// The TOML text.
    pub source: String,
}

/// How the run ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OutcomeView {
    /// Process exit code.
    pub exit_code: Option<i64>,
    /// `passed`, `thresholds_failed`, `invalid_scenario`, `interrupted`, `not_run`,
    /// `aborted_by_threshold`, or `unknown` when the summary was missing.
    pub status: String,
    /// Explanation.
    pub message: Option<String>,
}

/// One tagged series of a metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricSeriesView {
    /// Tag selector values.
    pub tags: BTreeMap<String, String>,
    /// Statistic name → value.
    pub values: BTreeMap<String, Option<f64>>,
}

/// One metric as the tester summarized it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricView {
    /// `trend`, `rate`, `counter` or `gauge`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ms` or `none`.
    pub unit: String,
    /// Statistic name → value.
    pub values: BTreeMap<String, Option<f64>>,
    /// Per tag set.
    pub series: Vec<MetricSeriesView>,
}

/// One threshold verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ThresholdView {
    /// Metric with tag selector, e.g. `latency{rendition=P360p30fps16x9}`.
    pub metric: String,
    /// Expression, e.g. `p(95) < 4s`.
    pub expression: String,
    /// Observed value (in the metric's unit), `None` without data.
    pub observed: Option<f64>,
    /// Whether the threshold held.
    pub passed: bool,
    /// Why it failed without an observation (`no data`).
    pub reason: Option<String>,
    /// Whether failing aborts the run.
    pub abort_on_fail: bool,
}

/// The lenient typed view of a base `summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BaseSummary {
    /// Base schema version.
    pub schema_version: u32,
    /// The tool.
    pub tool: ToolView,
    /// The scenario.
    pub scenario: ScenarioView,
    /// Start (RFC 3339).
    pub started_at: Option<String>,
    /// End (RFC 3339).
    pub ended_at: Option<String>,
    /// Wall time (s).
    pub duration_s: Option<f64>,
    /// How it ended.
    pub outcome: OutcomeView,
    /// Free-form environment description.
    pub environment: Map<String, Value>,
    /// Metrics by name.
    pub metrics: BTreeMap<String, MetricView>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdView>,
}

/// Where the summary came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummarySource {
    /// The tester wrote it at the end of the run.
    Tester,
    /// It was missing or unreadable; only the journal was used.
    Journal,
}

/// A base summary, as read (or synthesized).
#[derive(Debug, Clone)]
pub struct LoadedSummary {
    /// The whole JSON object, every key kept.
    pub raw: Map<String, Value>,
    /// The typed view.
    pub view: BaseSummary,
    /// Where it came from.
    pub source: SummarySource,
    /// Why it is missing or unreadable, when `source` is `Journal`.
    pub problem: Option<String>,
}

/// Report metadata added under the `report` key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportMeta {
    /// Version of the `report` + `breakdowns` extension.
    pub schema_version: u32,
    /// When the report was generated (RFC 3339).
    pub generated_at: String,
    /// `reports <version>`.
    pub generated_by: String,
    /// Where the base summary came from.
    pub summary_source: SummarySource,
    /// What the journal reader found.
    pub journal: JournalStats,
    /// Whether `records.jsonl` existed.
    pub journal_present: bool,
    /// Everything missing or skipped, as sentences.
    pub missing: Vec<String>,
    /// Files written, relative to the run directory.
    pub artifacts: Vec<String>,
}

impl LoadedSummary {
    /// The summary a run hands over before it is written.
    pub fn from_run(summary: Value) -> Result<Self, ReportError> {
        let Value::Object(raw) = summary else {
            return Err(ReportError::Serialize {
                what: "the run's summary".into(),
                source: serde::de::Error::custom("not a JSON object"),
            });
        };
        let view = serde_json::from_value(Value::Object(raw.clone())).map_err(|source| {
            ReportError::Serialize {
                what: "the run's summary".into(),
                source,
            }
        })?;
        Ok(LoadedSummary {
            raw,
            view,
            source: SummarySource::Tester,
            problem: None,
        })
    }

    /// Reads `<run_dir>/summary.json`, falling back to a synthesized base when it is missing or
    /// unreadable. Only I/O errors other than "not found" are errors.
    pub fn load(run_dir: &Path) -> Result<Self, ReportError> {
        let path = run_dir.join(SUMMARY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::synthesized(
                    "summary.json is missing (the run did not finish normally); rendered from the journal alone"
                        .to_string(),
                ));
            }
            Err(source) => return Err(ReportError::Io { path, source }),
        };
        let raw: Map<String, Value> = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Self::synthesized(format!(
                    "summary.json is unreadable ({e}); rendered from the journal alone"
                )));
            }
        };
        let view: BaseSummary = match serde_json::from_value(Value::Object(raw.clone())) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Self::synthesized(format!(
                    "summary.json does not have the expected shape ({e}); rendered from the journal alone"
                )));
            }
        };
        // A summary this crate synthesized earlier stays a journal-only summary.
        let earlier_source = raw
            .get("report")
            .and_then(|r| r.get("summary_source"))
            .and_then(Value::as_str);
        if earlier_source == Some("journal") {
            let mut s = Self::synthesized(
                "summary.json was missing when the run ended; rendered from the journal alone"
                    .to_string(),
            );
            s.raw = raw;
            s.view = view;
            return Ok(s);
        }
        Ok(LoadedSummary {
            raw,
            view,
            source: SummarySource::Tester,
            problem: None,
        })
    }

    fn synthesized(problem: String) -> Self {
        let view = BaseSummary {
            schema_version: 1,
            tool: ToolView {
                name: "lpt".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            outcome: OutcomeView {
                exit_code: None,
                status: "unknown".into(),
                message: Some(problem.clone()),
            },
            ..BaseSummary::default()
        };
        let raw = match serde_json::to_value(&view) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        LoadedSummary {
            raw,
            view,
            source: SummarySource::Journal,
            problem: Some(problem),
        }
    }

    /// The base summary with `report` and `breakdowns` added.
    pub fn extended(
        &self,
        meta: &ReportMeta,
        aggregates: &Aggregates,
    ) -> Result<Value, ReportError> {
        let mut out = self.raw.clone();
        let ser = |what: &str, v: Result<Value, serde_json::Error>| {
            v.map_err(|source| ReportError::Serialize {
                what: what.to_string(),
                source,
            })
        };
        out.insert(
            "report".into(),
            ser("report metadata", serde_json::to_value(meta))?,
        );
        out.insert(
            "breakdowns".into(),
            ser("breakdowns", serde_json::to_value(aggregates))?,
        );
        Ok(Value::Object(out))
    }

    /// The headline verdict.
    pub fn verdict(&self) -> RunVerdict {
        let status = self.view.outcome.status.as_str();
        let failed = self.view.thresholds.iter().filter(|t| !t.passed).count();
        let total = self.view.thresholds.len();
        let (passed, headline) = match status {
            "passed" => (
                Some(true),
                format!("PASSED — all {total} threshold(s) held"),
            ),
            "thresholds_failed" => (
                Some(false),
                format!("FAILED — {failed} of {total} threshold(s) did not hold"),
            ),
            "aborted_by_threshold" => (
                Some(false),
                "ABORTED — a threshold marked abort_on_fail failed".to_string(),
            ),
            "invalid_scenario" => (Some(false), "NOT RUN — invalid scenario".to_string()),
            "interrupted" => (Some(false), "INTERRUPTED — the run was stopped early".to_string()),
            "not_run" => (
                Some(false),
                "NOT RUN — the stack or a probe could not run".to_string(),
            ),
            "unknown" => (
                None,
                "UNKNOWN — summary.json missing; rendered from the journal alone (no thresholds evaluated)"
                    .to_string(),
            ),
            other => (None, format!("{} — see the outcome message", other.to_uppercase())),
        };
        RunVerdict {
            passed,
            status: status.to_string(),
            headline,
            message: self.view.outcome.message.clone(),
        }
    }

    /// The unit of a threshold's metric, from the metric table (`ms` or none).
    pub fn unit_of(&self, threshold_metric: &str) -> Option<&str> {
        let base = threshold_metric
            .split('{')
            .next()
            .unwrap_or(threshold_metric);
        self.view
            .metrics
            .get(base)
            .map(|m| m.unit.as_str())
            .filter(|u| !u.is_empty() && *u != "none")
    }
}

/// The headline of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunVerdict {
    /// `Some(true)` passed, `Some(false)` failed or did not run, `None` unknown.
    pub passed: Option<bool>,
    /// The outcome status.
    pub status: String,
    /// One line for humans.
    pub headline: String,
    /// The tester's message.
    pub message: Option<String>,
}
