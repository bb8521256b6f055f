//! The crate's error type: every variant names the file, table or plot it is about, so the CLI
//! can print it without more context. Content problems in a journal are not errors (they are
//! counted in `JournalStats`); these are the failures that stop a report from being written.

use std::path::PathBuf;

/// Why a report, a comparison or a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file exists but is not what it should be.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A record or an output could not be serialized.
    #[error("could not serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A Polars step failed.
    #[error("aggregation step \"{step}\" failed: {source}")]
    Polars {
        /// The step.
        step: String,
        /// The cause.
        source: polars::error::PolarsError,
    },
    /// Drawing a plot failed.
    #[error("plot {plot}: {message}")]
    Plot {
        /// The plot's file stem.
        plot: String,
        /// What went wrong.
        message: String,
    },
    /// The run directory does not exist or is not a directory.
    #[error("{path}: not a run directory ({why})")]
    NotARunDirectory {
        /// The path given.
        path: PathBuf,
        /// Why it is not one.
        why: String,
    },
    /// An option value is out of range.
    #[error("invalid option {name} = {value}: {why}")]
    InvalidOption {
        /// Option name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        why: String,
    },
}

impl ReportError {
    pub(crate) fn polars(
        step: impl Into<String>,
    ) -> impl FnOnce(polars::error::PolarsError) -> Self {
        let step = step.into();
        move |source| ReportError::Polars { step, source }
    }
}
