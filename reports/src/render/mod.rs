//! Report writers: HTML, JUnit XML and Markdown, all rendered from one [`ReportContext`] so the
//! three always show the same numbers (the criterion/k6 way: data first, rendering second).

pub mod html;
pub mod junit;
pub mod markdown;

use crate::breakdowns::Aggregates;
use crate::journal::JournalStats;
use crate::leaderboard::Leaderboard;
use crate::plots::{PlotOutput, SkippedPlot};
use crate::summary::{LoadedSummary, RunVerdict, ThresholdView};
use crate::util::fmt_num;

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
