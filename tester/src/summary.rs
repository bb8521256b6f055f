//! `summary.json`: the machine-readable end of every run, written first and rendered second.
//!
//! It holds everything the terminal shows — the outcome, every metric's aggregates overall and per
//! tag set, every threshold with its observed value. The run hands it to the report step
//! (`crate::report::finish`), which adds the breakdowns and writes `summary.json` once through
//! `observation::summary::write_summary`, under the one versioned schema checked in at
//! `observation/schema/summary.schema.json`; consumers must ignore keys they do not know.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::exit_code::ExitCode;
use crate::metrics::{Registry, Tags};
use crate::scenario::Scenario;
use crate::thresholds::ThresholdVerdict;
use observation::metric::{MetricKind, Unit};

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: u32,
    pub tool: Tool,
    pub scenario: ScenarioInfo,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub outcome: Outcome,
    pub environment: Environment,
    pub workloads: Vec<WorkloadOutcome>,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub thresholds: Vec<ThresholdVerdict>,
    /// `lpt bench` only: the benchmark's own summary (loads, real-time fractions, capacity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    /// The scenario's TOML text, so a report says exactly what ran.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub exit_code: i32,
    pub status: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub os: String,
    pub arch: &'static str,
    pub cpu: String,
    pub cores: usize,
    pub hostname: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadOutcome {
    pub name: String,
    pub executor: &'static str,
    /// `completed`, `interrupted`, `aborted` or `not_run`.
    pub status: &'static str,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    #[serde(rename = "type")]
    pub kind: MetricKind,
    pub unit: Unit,
    pub values: BTreeMap<String, f64>,
    pub series: Vec<SeriesSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesSummary {
    pub tags: Tags,
    pub values: BTreeMap<String, f64>,
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T01:02:03.456Z`.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Every metric that has samples, overall and per tag set.
pub fn metric_summaries(registry: &Registry) -> BTreeMap<String, MetricSummary> {
    let elapsed = registry.elapsed();
    registry
        .snapshot()
        .into_iter()
        .filter_map(|(name, series)| {
            let def = observation::metric::lookup(name)?;
            let mut overall = crate::metrics::Sink::new(def.kind);
            for (_, sink) in &series {
                overall.merge(sink);
            }
            Some((
                name.to_owned(),
                MetricSummary {
                    kind: def.kind,
                    unit: def.unit,
                    values: overall.summary_values(elapsed).into_iter().collect(),
                    series: series
                        .into_iter()
                        .filter(|(tags, _)| !tags.is_empty())
                        .map(|(tags, sink)| SeriesSummary {
                            tags,
                            values: sink.summary_values(elapsed).into_iter().collect(),
                        })
                        .collect(),
                },
            ))
        })
        .collect()
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: ScenarioInfo,
        started: SystemTime,
        ended: SystemTime,
        code: ExitCode,
        message: String,
        workloads: Vec<WorkloadOutcome>,
        registry: &Registry,
        thresholds: Vec<ThresholdVerdict>,
    ) -> Summary {
        Summary {
            schema_version: observation::summary::SCHEMA_VERSION,
            tool: Tool {
                name: "lpt",
                version: env!("CARGO_PKG_VERSION"),
            },
            scenario,
            started_at: timestamp(started),
            ended_at: timestamp(ended),
            duration_s: ended
                .duration_since(started)
                .unwrap_or_default()
                .as_secs_f64(),
            outcome: Outcome {
                exit_code: code.code(),
                status: code.status(),
                message,
            },
            environment: Environment::detect(),
            workloads,
            metrics: metric_summaries(registry),
            thresholds,
            bench: None,
        }
    }
}

impl From<&Scenario> for ScenarioInfo {
    fn from(scenario: &Scenario) -> Self {
        ScenarioInfo {
            name: scenario.name.clone(),
            path: scenario.path.display().to_string(),
            description: scenario.description.clone(),
            source: scenario.text.clone(),
        }
    }
}

impl Environment {
    pub fn detect() -> Environment {
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Environment {
            os,
            arch: std::env::consts::ARCH,
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname,
        }
    }
}
