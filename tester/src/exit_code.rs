//! The exit codes `lpt` promises to scripts and CI systems.
//!
//! They follow k6's well-known convention so that existing CI glue keeps working. Every error that
//! reaches `main` carries one of these codes ([`Failure`]); nothing else decides how the process
//! ends. Changing a value here breaks users' pipelines: add, never renumber.

use std::fmt;

/// How a run of `lpt` ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Everything ran and every threshold held.
    Passed,
    /// The run completed but at least one threshold failed.
    ThresholdsFailed,
    /// The scenario or configuration is invalid; nothing ran.
    InvalidScenario,
    /// Interrupted (Ctrl-C / SIGTERM); results up to that point were still written. A second
    /// interrupt exits at once with this code, without waiting for the streams to drain.
    Interrupted,
    /// The stack or a probe could not run (a target unreachable, a part missing or crashed), or
    /// the run could not record its results (the records journal or `summary.json` could not be
    /// written: a full disk); the journal then holds only whole records.
    NotRun,
    /// A threshold marked `abort_on_fail` failed while the run was in progress.
    AbortedByThreshold,
}

impl ExitCode {
    /// The numeric process exit status.
    pub const fn code(self) -> i32 {
        match self {
            ExitCode::Passed => 0,
            ExitCode::ThresholdsFailed => 99,
            ExitCode::InvalidScenario => 104,
            ExitCode::Interrupted => 105,
            ExitCode::NotRun => 107,
            ExitCode::AbortedByThreshold => 108,
        }
    }

    /// A stable, machine-readable name (used in `summary.json`'s `outcome.status`).
    pub const fn status(self) -> &'static str {
        match self {
            ExitCode::Passed => "passed",
            ExitCode::ThresholdsFailed => "thresholds_failed",
            ExitCode::InvalidScenario => "invalid_scenario",
            ExitCode::Interrupted => "interrupted",
            ExitCode::NotRun => "not_run",
            ExitCode::AbortedByThreshold => "aborted_by_threshold",
        }
    }

    /// Every code, in numeric order (for documentation and tests).
    pub const ALL: [ExitCode; 6] = [
        ExitCode::Passed,
        ExitCode::ThresholdsFailed,
        ExitCode::InvalidScenario,
        ExitCode::Interrupted,
        ExitCode::NotRun,
        ExitCode::AbortedByThreshold,
    ];
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.status())
    }
}

/// An error on its way to `main`, carrying the exit code it ends the process with.
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: ExitCode, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Attaches an exit code to any error, like `anyhow::Context` attaches a message.
pub trait WithExitCode<T> {
    fn exit_code(self, code: ExitCode) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> WithExitCode<T> for Result<T, E> {
    fn exit_code(self, code: ExitCode) -> Result<T, Failure> {
        self.map_err(|error| Failure::new(code, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_contract() {
        let codes: Vec<i32> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 99, 104, 105, 107, 108]);
    }
}
