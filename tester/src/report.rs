//! Reports around a run directory: rendering (`lpt report`, and the end of every run) and
//! comparison of two runs (`lpt compare`), both done by the `reports` crate.

use std::path::Path;

use reports::{CompareOptions, ReportOptions, ReportOutcome, finalize_run, finish_run};
use tracing::warn;

use crate::exit_code::{ExitCode, Failure};
use crate::output::Terminal;
use crate::summary::Summary;

/// The end of a run: renders every report of `run_dir` (HTML, plots, JUnit, Markdown, Parquet)
/// and writes `summary.json` once, with the breakdowns. A report that cannot be rendered never
/// changes a run's verdict: it is logged and `summary.json` is written without breakdowns; the
/// error is only a summary that cannot be written at all.
pub fn finish(run_dir: &Path, summary: &Summary) -> std::io::Result<Option<ReportOutcome>> {
    match finish_run(run_dir, summary, &ReportOptions::default()) {
        Ok(outcome) => Ok(Some(outcome)),
        Err(error) => {
            warn!(
                "the reports for {} could not be rendered: {error}",
                run_dir.display()
            );
            observation::summary::write_summary(run_dir, summary)?;
            Ok(None)
        }
    }
}

/// Says where the report is and what it found missing.
pub fn announce(run_dir: &Path, outcome: Option<&ReportOutcome>, terminal: Terminal) {
    let Some(outcome) = outcome else {
        return;
    };
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
