//! Reports around a run directory: rendering (`lpt report`, and the end of every run) and
//! comparison of two runs (`lpt compare`), both done by the `reports` crate.

use std::path::Path;

use reports::{CompareOptions, ReportOptions, finalize_run};
use tracing::warn;

use crate::exit_code::{ExitCode, Failure};
use crate::output::Terminal;

/// Renders every report of `run_dir` (HTML, plots, JUnit, Markdown, Parquet, breakdowns in
/// summary.json). A failure here never changes a run's verdict: it is reported and the run's
/// summary.json and journal stay as written.
pub fn render(run_dir: &Path, terminal: Terminal) -> Option<reports::ReportOutcome> {
    match finalize_run(run_dir, &ReportOptions::default()) {
        Ok(outcome) => {
            if !terminal.quiet {
                println!(
                    "report: {} ({} records)",
                    run_dir.join(reports::files::HTML).display(),
                    outcome.records
                );
            }
            for missing in &outcome.missing {
                warn!("report: {missing}");
            }
            Some(outcome)
        }
        Err(error) => {
            warn!(
                "the reports for {} could not be rendered: {error}",
                run_dir.display()
            );
            None
        }
    }
}

/// `lpt report DIR`.
pub fn report(run_dir: &Path, terminal: Terminal) -> Result<ExitCode, Failure> {
    let outcome = finalize_run(run_dir, &ReportOptions::default())
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    println!("{}", outcome.verdict.headline);
    if !terminal.quiet {
        for artifact in &outcome.artifacts {
            println!("  {}", artifact.display());
        }
    }
    for missing in &outcome.missing {
        eprintln!("missing: {missing}");
    }
    Ok(ExitCode::Passed)
}

/// `lpt compare BASE NEW`: exit 99 on a regression beyond noise.
pub fn compare(base: &Path, new: &Path, noise: f64) -> Result<ExitCode, Failure> {
    let options = CompareOptions {
        noise,
        ..CompareOptions::default()
    };
    let comparison = reports::compare(base, new, &options)
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    if !comparison.comparable {
        return Err(Failure::new(
            ExitCode::InvalidScenario,
            anyhow::anyhow!(
                "cannot compare {} with {}: {}",
                base.display(),
                new.display(),
                comparison.reason.clone().unwrap_or_default()
            ),
        ));
    }
    println!("{}", comparison.render_table());
    Ok(if comparison.has_regression() {
        ExitCode::ThresholdsFailed
    } else {
        ExitCode::Passed
    })
}
