//! What `lpt` prints for people: the end-of-run summary and validation results.
//!
//! Data first, rendering second: everything here is drawn from [`Summary`] (which is also what
//! `summary.json` holds). Colour is used only on a terminal and never when `NO_COLOR` is set;
//! `--quiet` keeps only the verdict line.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::summary::Summary;
use crate::thresholds::format_value;

#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub color: bool,
    pub quiet: bool,
}

impl Terminal {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    pub fn detect(quiet: bool) -> Terminal {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            color: !no_color && std::io::stdout().is_terminal(),
            quiet,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn print_summary(&self, summary: &Summary, run_dir: &Path) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not turn a finished run into a crash.
        let _ = self.write_summary(&mut out, summary, run_dir);
    }

    fn write_summary(
        &self,
        out: &mut impl Write,
        summary: &Summary,
        run_dir: &Path,
    ) -> std::io::Result<()> {
        let verdict = format!(
            "{} — {} (exit {})",
            summary.scenario.name, summary.outcome.status, summary.outcome.exit_code
        );
        let verdict = if summary.outcome.exit_code == 0 {
            self.green(&verdict)
        } else {
            self.red(&verdict)
        };
        if self.quiet {
            return writeln!(out, "{verdict}");
        }
        writeln!(out)?;
        writeln!(out, "{}", self.bold(&verdict))?;
        writeln!(out, "  {}", summary.outcome.message)?;
        writeln!(
            out,
            "  ran {:.1}s, results in {}",
            summary.duration_s,
            run_dir.display()
        )?;
        if !summary.metrics.is_empty() {
            writeln!(out, "\n{}", self.bold("metrics"))?;
            for (name, metric) in &summary.metrics {
                let values: Vec<String> = metric
                    .values
                    .iter()
                    .map(|(k, v)| {
                        let shown = if k == "count" || k == "passes" || k == "fails" || k == "rate"
                        {
                            format_value(*v, observation::metric::Unit::Plain)
                        } else {
                            format_value(*v, metric.unit)
                        };
                        format!("{k}={shown}")
                    })
                    .collect();
                writeln!(out, "  {name:<24} {}", values.join("  "))?;
            }
        }
        if !summary.thresholds.is_empty() {
            writeln!(out, "\n{}", self.bold("thresholds"))?;
            for verdict in &summary.thresholds {
                let line = format!("  {verdict}");
                let line = if verdict.passed {
                    self.green(&line)
                } else {
                    self.red(&line)
                };
                writeln!(out, "{line}")?;
                if let (false, Some(_), Some(reason)) =
                    (verdict.passed, verdict.observed, &verdict.reason)
                {
                    writeln!(out, "      {reason}")?;
                }
            }
        }
        Ok(())
    }
}
