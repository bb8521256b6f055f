//! Scenario errors that point at the place: file, line, column and the key path, plus a hint.
//!
//! The loader collects every problem it finds rather than stopping at the first one, so a user
//! fixes a file in one pass; [`Diagnostics`] is that collection and the error `load` returns.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column of the offending key or value.
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `workloads.smoke.streams`; empty for file-level problems.
    pub key_path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key_path.is_empty() {
            write!(f, "`{}`: ", self.key_path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Every problem found in one scenario file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        let file = self
            .0
            .first()
            .map(|d| d.file.display().to_string())
            .unwrap_or_default();
        writeln!(
            f,
            "{file}: {count} error{} in the scenario:",
            if count == 1 { "" } else { "s" }
        )?;
        for diagnostic in &self.0 {
            writeln!(f, "  {diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file and turns byte offsets into lines and columns.
pub(crate) struct Collector<'s> {
    file: PathBuf,
    source: &'s str,
    /// Each diagnostic with its byte offset and whether it leads the others at that offset.
    found: Vec<(usize, bool, Diagnostic)>,
}

impl<'s> Collector<'s> {
    pub fn new(file: &Path, source: &'s str) -> Self {
        Collector {
            file: file.to_owned(),
            source,
            found: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        span: Option<Range<usize>>,
        key_path: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.record(span, false, key_path, message.into(), hint);
    }

    /// An error listed before the other errors at its position: a table's unknown keys are
    /// found only once its reader has run, yet are the first thing to fix there.
    pub fn leading_error(
        &mut self,
        span: Option<Range<usize>>,
        key_path: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.record(span, true, key_path, message.into(), hint);
    }

    fn record(
        &mut self,
        span: Option<Range<usize>>,
        leading: bool,
        key_path: &str,
        message: String,
        hint: Option<String>,
    ) {
        let line = self.line(span.clone());
        let offset = span.map(|s| s.start).unwrap_or(0).min(self.source.len());
        let before = &self.source[..offset];
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        self.found.push((
            offset,
            leading,
            Diagnostic {
                file: self.file.clone(),
                line,
                column,
                key_path: key_path.to_owned(),
                message,
                hint,
            },
        ));
    }

    /// The 1-based line where `span` starts (line 1 without a span).
    pub fn line(&self, span: Option<Range<usize>>) -> usize {
        let offset = span.map(|s| s.start).unwrap_or(0).min(self.source.len());
        self.source[..offset].matches('\n').count() + 1
    }

    pub fn has_errors(&self) -> bool {
        !self.found.is_empty()
    }

    pub fn finish(mut self) -> Diagnostics {
        self.found
            .sort_by_key(|(offset, leading, _)| (*offset, !*leading));
        Diagnostics(self.found.into_iter().map(|(_, _, d)| d).collect())
    }
}
