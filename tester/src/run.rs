//! `lpt run`: load the scenario, bring up the target, run the workloads, judge, write, exit.
//!
//! The pipeline is always the same and always ends by writing `summary.json`, whatever happened:
//! an interrupted, aborted or failed-to-start run still leaves its results. The three ways a run
//! can stop early — Ctrl-C, an `abort_on_fail` threshold, the target or a probe failing — race the
//! workloads in one `select!`, and each maps to its exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use tracing::{info, warn};

use crate::exit_code::{ExitCode, Failure, WithExitCode};
use crate::metrics::Registry;
use crate::output::Terminal;
use crate::scenario::{self, Scenario, Target};
use crate::summary::{Summary, WorkloadOutcome};
use crate::thresholds::{Threshold, Verdict};

pub struct RunOptions {
    /// The scenario file; `None` runs the built-in default (`scenarios/smoke.toml`).
    pub scenario: Option<PathBuf>,
    /// The run directory; `None` makes `runs/<scenario>-<UTC time>` in the working directory.
    pub out: Option<PathBuf>,
    pub terminal: Terminal,
}

/// How the execution phase ended, before thresholds are judged.
enum Stop {
    Completed,
    Interrupted,
    Aborted(Verdict),
    CouldNotRun(anyhow::Error),
}

/// Runs a scenario end to end and returns the exit code the process should end with.
pub async fn run(options: RunOptions) -> Result<ExitCode, Failure> {
    let scenario = scenario::load_or_default(options.scenario.as_deref())
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    let run_dir = options
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&scenario));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))
        .exit_code(ExitCode::NotRun)?;
    info!(scenario = %scenario.name, run_dir = %run_dir.display(), "run starting");

    let registry = Arc::new(Registry::new());
    let started = SystemTime::now();
    let started_instant = Instant::now();

    let progress = crate::progress::Progress::start(registry.clone(), options.terminal.quiet);
    let stop = tokio::select! {
        result = execute(&scenario, &registry) => match result {
            Ok(()) => Stop::Completed,
            Err(error) => Stop::CouldNotRun(error),
        },
        verdict = watch_abort_thresholds(&scenario.thresholds, &registry, started_instant) => Stop::Aborted(verdict),
        () = shutdown_signal() => Stop::Interrupted,
    };
    drop(progress);

    let verdicts: Vec<Verdict> = scenario
        .thresholds
        .iter()
        .map(|t| t.evaluate(&registry))
        .collect();
    let all_passed = verdicts.iter().all(|v| v.passed);
    let (code, message, workload_status) = match stop {
        Stop::Completed if all_passed => (
            ExitCode::Passed,
            "every threshold held".to_owned(),
            "completed",
        ),
        Stop::Completed => {
            let failed = verdicts.iter().filter(|v| !v.passed).count();
            (
                ExitCode::ThresholdsFailed,
                format!("{failed} of {} thresholds failed", verdicts.len()),
                "completed",
            )
        }
        Stop::Interrupted => (
            ExitCode::Interrupted,
            "interrupted; results up to the interruption were kept".to_owned(),
            "interrupted",
        ),
        Stop::Aborted(verdict) => (
            ExitCode::AbortedByThreshold,
            format!("aborted by threshold: {verdict}"),
            "aborted",
        ),
        Stop::CouldNotRun(error) => (ExitCode::NotRun, format!("{error:#}"), "not_run"),
    };
    let workloads = scenario
        .workloads
        .iter()
        .map(|w| WorkloadOutcome {
            name: w.name.clone(),
            executor: w.executor.name(),
            status: workload_status,
            message: (workload_status != "completed").then(|| message.clone()),
        })
        .collect();
    let summary = Summary::new(
        (&scenario).into(),
        started,
        SystemTime::now(),
        code,
        message,
        workloads,
        &registry,
        verdicts,
    );
    summary
        .write(&run_dir)
        .with_context(|| format!("cannot write {}", run_dir.join("summary.json").display()))
        .exit_code(ExitCode::NotRun)?;
    options.terminal.print_summary(&summary, &run_dir);
    if code == ExitCode::NotRun {
        warn!("{}", summary.outcome.message);
    }
    Ok(code)
}

fn default_run_dir(scenario: &Scenario) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "")
        .trim_end_matches('Z')
        .to_owned();
    Path::new("runs").join(format!("{}-{stamp}", scenario.name))
}

/// Brings up the target and runs the workloads against it.
async fn execute(scenario: &Scenario, _registry: &Arc<Registry>) -> anyhow::Result<()> {
    match &scenario.target {
        Target::Embedded { .. } => Err(anyhow!(
            "the embedded node stack (anvil chain, orchestrators, transcoders, broadcaster) is not \
             built yet, so there is nothing to run the probes against; this build validates the \
             scenario and writes summary.json (thresholds report \"no data\")"
        )),
        Target::Direct => Err(anyhow!(
            "the direct-to-orchestrator client is not built yet; no orchestrator was contacted"
        )),
        Target::External {
            rtmp_url,
            playback_url,
            ..
        } => {
            check_reachable("RTMP ingest", rtmp_url, 1935).await?;
            check_reachable("HLS playback", playback_url, 80).await?;
            Err(anyhow!(
                "the target is reachable, but the probes (RTMP publisher, HLS puller, checks) are \
                 not built yet; nothing was published"
            ))
        }
    }
}

/// Opens (and closes) a TCP connection to the host and port of a URL template.
async fn check_reachable(what: &str, template: &str, default_port: u16) -> anyhow::Result<()> {
    let url = template.replace("{stream}", "probe");
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .unwrap_or("");
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    match tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(anyhow!(
            "{what} at {address} ({template}) is unreachable: {error}"
        )),
        Err(_) => Err(anyhow!(
            "{what} at {address} ({template}) did not answer within 3s"
        )),
    }
}

/// Resolves with the first `abort_on_fail` threshold that fails on observed data; never resolves
/// when there is none. A threshold with no data yet does not abort: data may still come.
async fn watch_abort_thresholds(
    thresholds: &[Threshold],
    registry: &Registry,
    started: Instant,
) -> Verdict {
    let watched: Vec<&Threshold> = thresholds.iter().filter(|t| t.abort_on_fail).collect();
    if watched.is_empty() {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for threshold in &watched {
            if started.elapsed() < threshold.delay_abort_eval {
                continue;
            }
            let verdict = threshold.evaluate(registry);
            if !verdict.passed && verdict.observed.is_some() {
                return verdict;
            }
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
