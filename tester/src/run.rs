//! `lpt run`: load the scenario, bring up the target, run the workloads, judge, write, exit.
//!
//! The pipeline is always the same and always ends by writing `summary.json`, whatever happened:
//! an interrupted, aborted or failed-to-start run still leaves its results. The ways a run can
//! stop early — Ctrl-C, an `abort_on_fail` threshold, the target or a probe failing, the records
//! journal failing to write (a full disk) — race the workloads in one `select!`, and each maps to
//! its exit code. A second Ctrl-C does not wait for the streams to drain: it syncs the journal,
//! writes the summary if it is not written yet and exits with 105 at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use tracing::{info, warn};

use reports::JournalWriter;

use crate::ai::{AiContext, run_ai_workload};
use crate::direct::{DirectContext, run_direct_workload};
use crate::executors::{LiveLoad, WorkloadResult, run_workload};
use crate::exit_code::{ExitCode, Failure, WithExitCode};
use crate::metrics::Registry;
use crate::metrics::Tags;
use crate::metrics::prometheus::MetricsListener;
use crate::output::Terminal;
use crate::scenario::Sampling;
use crate::scenario::{
    self, DirectPayment, Executor, Scenario, Source, StackNode, Target, Workload,
};
use crate::stack::embedded::{current_lpt, stack_dir};
use crate::stack::{EmbeddedStack, StackOptions};
use crate::streams::{DeliveredPixels, MetricsObserver, ProbeRunner, StreamTarget};
use crate::summary::{Summary, WorkloadOutcome};
use crate::thresholds::{Threshold, ThresholdVerdict};
use futures_util::FutureExt;
use probes::ReplaySource;
use probes::direct::{DirectSender, DirectSource};
use probes::payments::{OrchestratorPrice, PaymentProbe, PaymentProbeConfig, PaymentReport};
use probes::players::{PlayerOptions, Players, StreamPlayers};
use probes::quality::{QualitySampler, QualitySamplerConfig, sustainable_fraction};
use reference_transcoder::source::EncodedSource;
use reference_transcoder::source::SourceConfig;
use tokio_util::sync::CancellationToken;

pub struct RunOptions {
    /// The scenario file; `None` runs the built-in default (`scenarios/smoke.toml`).
    pub scenario: Option<PathBuf>,
    /// The run directory; `None` makes `runs/<scenario>-<UTC time>` in the working directory.
    pub out: Option<PathBuf>,
    /// `--metrics-listen`: serve the live registry at `http://ADDR/metrics` while the run goes.
    pub metrics_listen: Option<String>,
    pub terminal: Terminal,
}

/// How the execution phase ended, before thresholds are judged.
enum Stop {
    Completed(Vec<WorkloadResult>),
    Interrupted,
    Aborted(ThresholdVerdict),
    CouldNotRun(anyhow::Error),
}

/// Runs a scenario end to end and returns the exit code the process should end with.
pub async fn run(options: RunOptions) -> Result<ExitCode, Failure> {
    let scenario = scenario::load_or_default(options.scenario.as_deref())
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    // Bound before anything runs, so an address that cannot be listened on is a configuration
    // error; it serves from the registry's creation until the run ends (or drops on an error).
    let metrics_listener = match &options.metrics_listen {
        Some(address) => Some(
            MetricsListener::bind(address)
                .await
                .exit_code(ExitCode::InvalidScenario)?,
        ),
        None => None,
    };
    let run_dir = options
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&scenario));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))
        .exit_code(ExitCode::NotRun)?;
    info!(scenario = %scenario.name, run_dir = %run_dir.display(), "run starting");

    let journal = JournalWriter::in_run_dir(&run_dir)
        .context("cannot open the records journal")
        .exit_code(ExitCode::NotRun)?;
    let registry = Arc::new(Registry::new());
    let metrics_server = metrics_listener.map(|listener| {
        let server = listener.serve(registry.clone());
        eprintln!("metrics: serving {}", server.url());
        server
    });
    let started = SystemTime::now();
    let started_instant = Instant::now();
    let progress = crate::progress::Progress::start(registry.clone(), options.terminal.quiet);
    let summary_written = Arc::new(std::sync::Mutex::new(false));
    let first_signal = watch_signals(Emergency {
        scenario: scenario.clone(),
        run_dir: run_dir.clone(),
        journal: journal.clone(),
        registry: registry.clone(),
        started,
        summary_written: summary_written.clone(),
    });

    // Ctrl-C, abort thresholds and a journal that cannot be written cancel the workloads, which
    // then wind down (streams drain) and report; only the workloads' own end finishes the loop.
    // A second Ctrl-C does not wait for that (see `watch_signals`).
    let cancel = CancellationToken::new();
    let execution = execute(&scenario, &registry, &journal, &run_dir, cancel.clone());
    tokio::pin!(execution);
    let mut interrupted = false;
    let mut aborted: Option<ThresholdVerdict> = None;
    let mut journal_failed: Option<String> = None;
    let executed = loop {
        tokio::select! {
            result = &mut execution => break result,
            verdict = watch_abort_thresholds(&scenario.thresholds, &registry, started_instant), if aborted.is_none() && !interrupted => {
                warn!("aborting: threshold {verdict}");
                aborted = Some(verdict);
                cancel.cancel();
            }
            () = first_signal.cancelled(), if !interrupted => {
                warn!("interrupted: stopping streams and writing results (interrupt again to stop at once)");
                interrupted = true;
                cancel.cancel();
            }
            failure = journal_failure(&journal), if journal_failed.is_none() => {
                warn!(
                    "the records journal {} cannot be written ({failure}): stopping the run",
                    journal.path().display()
                );
                journal_failed = Some(failure);
                cancel.cancel();
            }
        }
    };
    drop(progress);
    // The journal is synced before the verdict: a journal that cannot be written is a run that
    // could not record its results, whatever else happened.
    if let Err(error) = journal.sync()
        && journal_failed.is_none()
    {
        journal_failed = Some(
            journal
                .failure()
                .unwrap_or_else(|| format!("{:#}", anyhow::Error::new(error))),
        );
    }
    let stop = match (executed, aborted, interrupted, journal_failed) {
        (_, _, _, Some(failure)) => Stop::CouldNotRun(anyhow!(
            "the records journal {} could not be written ({failure}); the run was stopped and {} \
             records were not written; the journal holds only whole records",
            journal.path().display(),
            journal.dropped_records()
        )),
        (Err(error), _, _, None) => Stop::CouldNotRun(error),
        (Ok(_), Some(verdict), _, None) => Stop::Aborted(verdict),
        (Ok(_), None, true, None) => Stop::Interrupted,
        (Ok(results), None, false, None) => Stop::Completed(results),
    };

    let verdicts: Vec<ThresholdVerdict> = scenario
        .thresholds
        .iter()
        .map(|t| t.evaluate(&registry))
        .collect();
    let all_passed = verdicts.iter().all(|v| v.passed);
    let results = match &stop {
        Stop::Completed(results) => results.clone(),
        _ => Vec::new(),
    };
    let (code, message, workload_status) = match stop {
        Stop::Completed(_) if all_passed => (
            ExitCode::Passed,
            "every threshold held".to_owned(),
            "completed",
        ),
        Stop::Completed(_) => {
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
    let summary = build_summary(
        &scenario,
        started,
        (code, message, workload_status),
        &results,
        &registry,
        verdicts,
    );
    // The lock is held while the reports render, so a second Ctrl-C in the meantime waits for
    // this one write instead of writing a summary of its own.
    let report = {
        let mut written = summary_written.lock().unwrap_or_else(|e| e.into_inner());
        let report = crate::report::finish(&run_dir, &summary)
            .with_context(|| format!("cannot write {}", run_dir.join("summary.json").display()))
            .with_context(|| summary.outcome.message.clone())
            .exit_code(ExitCode::NotRun)?;
        *written = true;
        report
    };
    options.terminal.print_summary(&summary, &run_dir);
    crate::report::announce(&run_dir, report.as_ref(), options.terminal);
    if code == ExitCode::NotRun {
        warn!("{}", summary.outcome.message);
    }
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    Ok(code)
}

/// The summary of a run that ended with `outcome` (exit code, message, workload status).
fn build_summary(
    scenario: &Scenario,
    started: SystemTime,
    (code, message, workload_status): (ExitCode, String, &'static str),
    results: &[WorkloadResult],
    registry: &Registry,
    verdicts: Vec<ThresholdVerdict>,
) -> Summary {
    let workloads = scenario
        .workloads
        .iter()
        .enumerate()
        .map(|(i, w)| WorkloadOutcome {
            name: w.name.clone(),
            executor: w.executor.name(),
            status: workload_status,
            message: match results.get(i) {
                Some(result) => result.message.clone(),
                None => (workload_status != "completed").then(|| message.clone()),
            },
        })
        .collect();
    Summary::new(
        scenario.into(),
        started,
        SystemTime::now(),
        code,
        message,
        workloads,
        registry,
        verdicts,
    )
}

/// What a second interrupt needs to leave the run's results behind before exiting.
struct Emergency {
    scenario: Scenario,
    run_dir: PathBuf,
    journal: JournalWriter,
    registry: Arc<Registry>,
    started: SystemTime,
    /// Set (under the lock) once the normal path wrote `summary.json`.
    summary_written: Arc<std::sync::Mutex<bool>>,
}

/// Listens for Ctrl-C and SIGTERM for the whole run: the first cancels the returned token (the
/// run drains its streams and reports), the second exits with 105 at once, after syncing the
/// journal and writing `summary.json` if the run had not yet. One listener from the start, so
/// no signal falls between two of them.
fn watch_signals(emergency: Emergency) -> CancellationToken {
    let first = CancellationToken::new();
    let notify = first.clone();
    tokio::spawn(async move {
        let Some(mut signals) = Signals::new() else {
            return;
        };
        signals.recv().await;
        notify.cancel();
        signals.recv().await;
        emergency.exit_now();
    });
    first
}

impl Emergency {
    fn exit_now(self) -> ! {
        eprintln!("interrupted again: stopping at once without draining the streams");
        if let Err(error) = self.journal.sync() {
            eprintln!("the records journal could not be synced: {error}");
        }
        let mut written = self
            .summary_written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !*written {
            let verdicts = self
                .scenario
                .thresholds
                .iter()
                .map(|t| t.evaluate(&self.registry))
                .collect();
            let summary = build_summary(
                &self.scenario,
                self.started,
                (
                    ExitCode::Interrupted,
                    "interrupted twice: stopped at once without draining; records written so far \
                     were kept"
                        .to_owned(),
                    "interrupted",
                ),
                &[],
                &self.registry,
                verdicts,
            );
            match observation::summary::write_summary(&self.run_dir, &summary) {
                Ok(_) => *written = true,
                Err(error) => eprintln!("cannot write summary.json: {error}"),
            }
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // Child processes of the stack die with this process (their parent-death signal).
        std::process::exit(ExitCode::Interrupted.code());
    }
}

/// Ctrl-C and SIGTERM, as one stream of interrupts.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// `None` when the handlers cannot be installed (then interrupts keep their default
    /// action: the process ends at once).
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Signals {
                interrupt: signal(SignalKind::interrupt()).ok()?,
                terminate: signal(SignalKind::terminate()).ok()?,
            })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {},
                _ = self.terminate.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves with the journal's first write failure (checked four times a second).
async fn journal_failure(journal: &JournalWriter) -> String {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if let Some(failure) = journal.failure() {
            return failure;
        }
    }
}

fn default_run_dir(scenario: &Scenario) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "")
        .trim_end_matches('Z')
        .to_owned();
    Path::new("runs").join(format!("{}-{stamp}", scenario.name))
}

/// One browser for every stream's players, when a workload has `players`; its pages may reach
/// the playback URL's host besides this machine.
async fn launch_players(
    scenario: &Scenario,
    target: Option<&StreamTarget>,
) -> anyhow::Result<Option<Arc<Players>>> {
    let Some(target) = target.filter(|_| scenario.workloads.iter().any(|w| w.players > 0)) else {
        return Ok(None);
    };
    let playback = target.playback_url.replace("{stream}", "stream");
    let host = url::Url::parse(&playback)
        .with_context(|| format!("the playback URL {playback} is not a URL"))?
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_owned())
        .with_context(|| format!("the playback URL {playback} names no host"))?;
    let players = Players::launch(PlayerOptions::default(), &[host])
        .await
        .context("cannot start the browser players")?;
    Ok(Some(Arc::new(players)))
}

/// The embedded stack of a run, with what the payment probe needs to know of its prices.
struct RunningStack {
    nodes: Arc<EmbeddedStack>,
    /// Each orchestrator's price (wei per `pixels_per_unit` pixels), in start order.
    prices: Vec<u64>,
    pixels_per_unit: u64,
}

/// Brings up the target and runs every workload against it, each from its own start time.
async fn execute(
    scenario: &Scenario,
    registry: &Arc<Registry>,
    journal: &JournalWriter,
    run_dir: &Path,
    cancel: CancellationToken,
) -> anyhow::Result<Vec<WorkloadResult>> {
    let (stack, target) = bring_up_target(scenario, run_dir).await?;
    let publishes = scenario.workloads.iter().any(|w| w.executor.publishes());
    let ai_worker = start_ai_worker(scenario, run_dir).await?;

    // A run of AI requests alone sends no video: no source to encode, nothing to score.
    let sends_video = scenario
        .workloads
        .iter()
        .any(|w| !matches!(w.executor, Executor::Ai(_)));
    let (encoded, source) = if sends_video {
        let (encoded, source) = prepare_source(&scenario.source).await?;
        (Some(encoded), Some(source))
    } else {
        (None, None)
    };
    let quality = match &encoded {
        Some(encoded) => quality_sampler(scenario, encoded, registry)?,
        None => None,
    };
    let players = launch_players(scenario, target.as_ref()).await?;
    // The payment probe reconciles what the broadcaster paid; direct tests pay from the tester.
    let payments = match &stack {
        Some(stack) if scenario.payments.enabled && publishes => {
            Some(payment_probe(&stack.nodes.endpoints, &stack.prices, stack.pixels_per_unit).await?)
        }
        _ => None,
    };
    let direct_source = match &encoded {
        Some(encoded)
            if scenario
                .workloads
                .iter()
                .any(|w| matches!(w.executor, Executor::DirectOrchestrator { .. })) =>
        {
            Some(Arc::new(DirectSource::from_encoded(encoded, 2.0).context(
                "cannot cut the source into segments for direct tests",
            )?))
        }
        _ => None,
    };
    let workloads = Workloads {
        scenario,
        registry,
        journal,
        target,
        source,
        direct_source,
        sender: sender_of(stack.as_ref(), &scenario.target)?,
        embedded_orchestrators: stack
            .as_ref()
            .map(|stack| stack.nodes.endpoints.orchestrators.clone())
            .unwrap_or_default(),
        quality: quality.clone(),
        players,
        pixels: Arc::new(DeliveredPixels::default()),
        client: probes::http_client().context("cannot build the HTTP client")?,
        ai_worker: ai_worker
            .as_ref()
            .map(|w| w.ready_str("url").map(str::to_owned))
            .transpose()?,
        run_id: format!(
            "lpt{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        ),
        cancel: cancel.clone(),
    };
    let chaos = match &stack {
        Some(stack) if !scenario.chaos.is_empty() => {
            Some(start_chaos(scenario, stack, journal, &cancel).await?)
        }
        _ => None,
    };
    let results =
        futures_util::future::join_all(scenario.workloads.iter().map(|w| workloads.start(w))).await;
    let chaos = match chaos {
        Some(timeline) => Some((
            timeline.task.await.context("the chaos timeline failed")?,
            timeline.from_block,
        )),
        None => None,
    };
    tokio::join!(
        settle_payments(payments, &workloads.pixels, registry, run_dir),
        finish_scoring(quality.as_deref(), &cancel)
    );
    if let (Some(stack), Some((occurrences, from_block))) = (&stack, chaos) {
        measure_chaos(stack, &occurrences, from_block, registry, journal).await;
    }
    if let Some(stack) = &stack {
        // After the payments are settled: the payouts share what was redeemed.
        reconcile_pool(stack, registry, journal).await;
    }
    if let Some(stack) = stack {
        stack.nodes.stop().await;
    }
    if let Some(worker) = ai_worker {
        worker.stop().await;
    }
    Ok(results)
}

/// The local AI worker (`lpt node ai-worker`), when an `ai` workload names no gateway: a child
/// of the run like the stack's nodes, its config and log in the run's `stack/` directory.
async fn start_ai_worker(
    scenario: &Scenario,
    run_dir: &Path,
) -> anyhow::Result<Option<crate::stack::supervisor::Child>> {
    let needed = scenario
        .workloads
        .iter()
        .any(|w| matches!(&w.executor, Executor::Ai(ai) if ai.gateway.is_none()));
    if !needed {
        return Ok(None);
    }
    let dir = stack_dir(run_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("ai-worker.toml");
    let text = toml::to_string(&scenario.ai_worker).context("the AI worker's config")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let config = path.to_string_lossy().into_owned();
    let child = crate::stack::supervisor::Child::spawn(
        "ai-worker",
        &current_lpt()?,
        ["node", "ai-worker", "--config", config.as_str()],
        &[],
        &dir,
        Duration::from_secs(60),
    )
    .await
    .context("the local AI worker did not come up")?;
    Ok(Some(child))
}

/// What a run's chaos timeline needs to be measured afterwards.
struct ChaosTimeline {
    task: tokio::task::JoinHandle<Vec<crate::chaos::recovery::Occurrence>>,
    /// The chain's head when the timeline started, from which redemptions are read (`None`: not
    /// measured).
    from_block: Option<u64>,
}

/// Starts the scenario's chaos timeline against the embedded stack, timed from now (when the
/// workloads start).
async fn start_chaos(
    scenario: &Scenario,
    stack: &RunningStack,
    journal: &JournalWriter,
    cancel: &CancellationToken,
) -> anyhow::Result<ChaosTimeline> {
    let endpoints = &stack.nodes.endpoints;
    let chain = match (&endpoints.chain_rpc, &endpoints.ticket_broker) {
        (Some(rpc), Some(broker)) => Some(crate::chaos::ChainAccess {
            rpc: rpc.clone(),
            ticket_broker: broker.parse().context("the stack's ticket broker")?,
        }),
        _ => None,
    };
    // What the events cost in payments is measured only when the run settles its payments:
    // otherwise it does not wait for the last winners to become due, and they would count as lost.
    let from_block = match &chain {
        Some(chain) if scenario.payments.enabled => Some(
            protocol::chain::EventReader::connect(&chain.rpc, chain.ticket_broker)?
                .latest_block()
                .await
                .context("cannot read the chain")?,
        ),
        _ => None,
    };
    let task = tokio::spawn(crate::chaos::run_timeline(
        scenario.chaos.clone(),
        stack.nodes.clone(),
        chain,
        Some(journal.clone()),
        tokio::time::Instant::now(),
        cancel.clone(),
    ));
    Ok(ChaosTimeline { task, from_block })
}

/// Measures what each chaos occurrence cost the streams (from the journal's segments) and the
/// orchestrators' payments (their ticket journals against the chain), as `recovery` records.
async fn measure_chaos(
    stack: &RunningStack,
    occurrences: &[crate::chaos::recovery::Occurrence],
    from_block: Option<u64>,
    registry: &Registry,
    journal: &JournalWriter,
) {
    use crate::chaos::{recovery, redemptions};
    let mut records = Vec::new();
    match segment_records(journal) {
        Ok(segments) => records.extend(recovery::stream_recovery(&segments, occurrences)),
        Err(error) => warn!("cannot read the segments back to measure recovery: {error:#}"),
    }
    let endpoints = &stack.nodes.endpoints;
    if let (Some(rpc), Some(broker), Some(from_block)) =
        (&endpoints.chain_rpc, &endpoints.ticket_broker, from_block)
    {
        let measured = async {
            let mut winners = Vec::new();
            for path in stack.nodes.ticket_journals() {
                winners.extend(redemptions::read_winners(&path)?);
            }
            let broker = broker.parse().context("the stack's ticket broker")?;
            let redeemed = redemptions::read_redeemed(rpc, broker, from_block).await?;
            anyhow::Ok(redemptions::payment_recovery(
                &winners,
                &redeemed,
                occurrences,
            ))
        };
        match measured.await {
            Ok(measured) => records.extend(measured),
            Err(error) => warn!("cannot measure what the chaos events cost in payments: {error:#}"),
        }
    }
    for record in records {
        registry.add_record(&record, &Tags::new());
        if let Err(error) = journal.append(record) {
            warn!("cannot journal a recovery record: {error}");
        }
    }
}

/// Reconciles every remote transcoder of the stack's orchestrators (see [`crate::pool`]) into
/// `pool` records; a stack without remote transcoders has none.
async fn reconcile_pool(stack: &RunningStack, registry: &Registry, journal: &JournalWriter) {
    let ledgers = stack.nodes.pool_ledgers();
    if ledgers.is_empty() {
        return;
    }
    let (segments, checks) = match journaled_segments_and_checks(journal) {
        Ok(read) => read,
        Err(error) => {
            warn!("cannot read the segments back to reconcile the pool: {error:#}");
            return;
        }
    };
    let pulled = crate::pool::pulled_segments(&segments, &checks);
    let now = probes::clock::now_unix_ms() as i64;
    for (index, path) in ledgers.iter().enumerate() {
        let orchestrator = StackNode::Orchestrator(index as u32).to_string();
        let entries = match crate::pool::read_ledger(path) {
            Ok(entries) => entries,
            Err(error) => {
                warn!("cannot read {orchestrator}'s pool ledger: {error:#}");
                continue;
            }
        };
        let uri = &stack.nodes.endpoints.orchestrators[index];
        let views = match crate::pool::read_pool(uri, stack.nodes.status_token()).await {
            Ok(pool) => {
                // Beside the ledger: the totals and payouts the orchestrator ended the run with.
                let kept = path.with_file_name("pool.json");
                if let Err(error) =
                    std::fs::write(&kept, serde_json::to_vec_pretty(&pool).unwrap_or_default())
                {
                    warn!("cannot write {}: {error}", kept.display());
                }
                crate::pool::pool_views(&pool)
            }
            Err(error) => {
                warn!("cannot read {orchestrator}'s payouts: {error:#}");
                Default::default()
            }
        };
        for record in crate::pool::reconcile(&orchestrator, &entries, &pulled, &views, now) {
            // Every transcoder counts, zero included, so `count == 0` judges the pool.
            let tags = observation::sample::record_tags(&record);
            for counter in observation::metric::CATALOG.iter().filter(|def| {
                def.kind == observation::metric::MetricKind::Counter
                    && def.journal.is_some_and(|j| j.record == "pool")
            }) {
                registry.add(counter.name, &tags, 0.0);
            }
            registry.add_record(&record, &Tags::new());
            if let Err(error) = journal.append(record) {
                warn!("cannot journal a pool record: {error}");
            }
        }
    }
}

/// Every segment and check record the run has journaled so far.
fn journaled_segments_and_checks(
    journal: &JournalWriter,
) -> anyhow::Result<(
    Vec<observation::record::SegmentRecord>,
    Vec<observation::record::CheckRecord>,
)> {
    journal.flush()?;
    let mut reader = reports::JournalReader::open(journal.path())?;
    let (mut segments, mut checks) = (Vec::new(), Vec::new());
    while let Some(record) = reader.next_record()? {
        match record {
            observation::record::Record::Segment(segment) => segments.push(segment),
            observation::record::Record::Check(check) => checks.push(check),
            _ => {}
        }
    }
    Ok((segments, checks))
}

/// Every segment record the run has journaled so far.
fn segment_records(
    journal: &JournalWriter,
) -> anyhow::Result<Vec<observation::record::SegmentRecord>> {
    journal.flush()?;
    let mut reader = reports::JournalReader::open(journal.path())?;
    let mut segments = Vec::new();
    while let Some(record) = reader.next_record()? {
        if let observation::record::Record::Segment(segment) = record {
            segments.push(segment);
        }
    }
    Ok(segments)
}

/// Starts the embedded stack, or checks that an external target is reachable; a direct target has
/// no stream target.
async fn bring_up_target(
    scenario: &Scenario,
    run_dir: &Path,
) -> anyhow::Result<(Option<RunningStack>, Option<StreamTarget>)> {
    match &scenario.target {
        Target::Embedded(stack) => {
            let options = StackOptions {
                nodes: stack.clone(),
                ladder: scenario.ladder.clone(),
                deposit_wei: scenario.payments.deposit_wei,
                reserve_wei: scenario.payments.reserve_wei,
                transcoder_capacity: scenario
                    .workloads
                    .iter()
                    .map(|w| w.executor.max_streams())
                    .max()
                    .unwrap_or(1)
                    .max(2),
                dir: stack_dir(run_dir),
                lpt: current_lpt()?,
                ready_deadline: Duration::from_secs(60),
                keep_chain_state: scenario.chaos.iter().any(|e| {
                    matches!(
                        e.action,
                        scenario::ChaosAction::Restart {
                            node: scenario::StackNode::Chain,
                            ..
                        }
                    )
                }),
                own_filesystems: chaos_targets(scenario, "disk_full"),
                impaired_paths: chaos_targets(scenario, "network"),
            };
            let nodes = EmbeddedStack::start(&options)
                .await
                .context("the embedded stack did not come up")?;
            let target = StreamTarget {
                rtmp_url: nodes.endpoints.rtmp_url.clone(),
                playback_url: nodes.endpoints.playback_url.clone(),
            };
            let prices = (0..stack.orchestrators)
                .map(|i| options.price_of(i))
                .collect();
            let stack = RunningStack {
                nodes: Arc::new(nodes),
                prices,
                pixels_per_unit: stack.pixels_per_unit,
            };
            Ok((Some(stack), Some(target)))
        }
        Target::Direct { .. } => Ok((None, None)),
        Target::External {
            rtmp_url,
            playback_url,
            ..
        } => {
            check_reachable("RTMP ingest", rtmp_url, 1935).await?;
            check_reachable("HLS playback", playback_url, 80).await?;
            let target = StreamTarget {
                rtmp_url: rtmp_url.clone(),
                playback_url: playback_url.clone(),
            };
            Ok((None, Some(target)))
        }
    }
}

/// Who pays in direct tests: the scenario's own payment key, else the embedded stack's funded
/// sender when it runs on a chain; `None` tests unpaid.
fn sender_of(
    stack: Option<&RunningStack>,
    target: &Target,
) -> anyhow::Result<Option<DirectSender>> {
    if let Target::Direct {
        payment: Some(payment),
    } = target
    {
        return Ok(Some(direct_sender(payment)?));
    }
    let Some(stack) = stack else {
        return Ok(None);
    };
    let endpoints = &stack.nodes.endpoints;
    match (
        stack.nodes.sender_signer(),
        &endpoints.chain_rpc,
        &endpoints.ticket_broker,
    ) {
        (Some(signer), Some(rpc), Some(broker)) => Ok(Some(DirectSender {
            signer,
            rpc_url: rpc.clone(),
            ticket_broker: broker.parse().context("ticket broker address")?,
            limits: protocol::ticket::SenderLimits::default(),
        })),
        _ => Ok(None),
    }
}

/// What every workload of a run shares: where streams go, the sources, who pays, and where
/// observations end up.
struct Workloads<'a> {
    scenario: &'a Scenario,
    registry: &'a Arc<Registry>,
    journal: &'a JournalWriter,
    target: Option<StreamTarget>,
    /// The stamped source, unless every workload is an `ai` one.
    source: Option<Arc<ReplaySource>>,
    direct_source: Option<Arc<DirectSource>>,
    sender: Option<DirectSender>,
    embedded_orchestrators: Vec<String>,
    quality: Option<Arc<QualitySampler>>,
    /// The run's browser players, when a workload has `players`.
    players: Option<Arc<Players>>,
    pixels: Arc<DeliveredPixels>,
    client: reqwest::Client,
    /// The local AI worker's base URL, when the run started one.
    ai_worker: Option<String>,
    run_id: String,
    cancel: CancellationToken,
}

impl<'a> Workloads<'a> {
    /// One workload, run to its end by its executor.
    fn start(&self, workload: &'a Workload) -> futures_util::future::BoxFuture<'a, WorkloadResult> {
        if let (Executor::DirectOrchestrator { .. }, Some(source)) =
            (&workload.executor, &self.direct_source)
        {
            let context = DirectContext {
                embedded_orchestrators: self.embedded_orchestrators.clone(),
                sender: self.sender.clone(),
                source: source.clone(),
                ladder: self.scenario.ladder.clone(),
                quality: self.quality.clone(),
                observer: Arc::new(MetricsObserver {
                    registry: self.registry.clone(),
                    journal: Some(self.journal.clone()),
                    pixels: self.pixels.clone(),
                    workload: workload.name.clone(),
                    load: None,
                }),
            };
            let run_id = self.run_id.clone();
            let cancel = self.cancel.clone();
            return async move { run_direct_workload(workload, &run_id, context, cancel).await }
                .boxed();
        }
        if let Executor::Ai(_) = &workload.executor {
            let context = AiContext {
                local_worker: self.ai_worker.clone(),
                observer: Arc::new(MetricsObserver {
                    registry: self.registry.clone(),
                    journal: Some(self.journal.clone()),
                    pixels: self.pixels.clone(),
                    workload: workload.name.clone(),
                    load: None,
                }),
            };
            let cancel = self.cancel.clone();
            return async move { run_ai_workload(workload, context, cancel).await }.boxed();
        }
        // The loader refuses stream workloads without a stack to publish to, and a stream
        // workload means the source was encoded.
        let (Some(target), Some(source)) = (self.target.clone(), self.source.clone()) else {
            let message = format!(
                "workload `{}` publishes streams, but the target has none",
                workload.name
            );
            return async move {
                WorkloadResult {
                    completed: false,
                    capacity: None,
                    message: Some(message),
                }
            }
            .boxed();
        };
        let load = Arc::new(LiveLoad::default());
        let capacity = matches!(workload.executor, Executor::Capacity(_));
        let runner = Arc::new(ProbeRunner {
            target,
            source,
            client: self.client.clone(),
            registry: self.registry.clone(),
            journal: Some(self.journal.clone()),
            pixels: self.pixels.clone(),
            quality: self.quality.clone(),
            ladder: self.scenario.ladder.clone(),
            duration: workload.executor.max_duration(),
            load: capacity.then(|| load.clone()),
            players: self
                .players
                .clone()
                .filter(|_| workload.players > 0)
                .map(|players| StreamPlayers {
                    players,
                    count: workload.players,
                }),
        });
        let run_id = self.run_id.clone();
        let cancel = self.cancel.clone();
        let registry = self.registry.clone();
        let thresholds = &self.scenario.thresholds;
        async move {
            run_workload(
                workload, &run_id, runner, registry, load, thresholds, cancel,
            )
            .await
        }
        .boxed()
    }
}

/// Waits for the orchestrators' redemptions to settle and records the reconciliation.
async fn settle_payments(
    payments: Option<PaymentProbe>,
    pixels: &DeliveredPixels,
    registry: &Registry,
    run_dir: &Path,
) {
    let Some(probe) = payments else { return };
    info!("waiting for the orchestrators' redemptions to settle on chain");
    match probe.settle_total(u128::from(pixels.get())).await {
        Ok(report) => record_payments(registry, &report, run_dir),
        Err(error) => {
            warn!("the payment probe failed: {error}");
            registry.add_bool(
                "checks",
                &crate::metrics::tags([("check", "payments")]),
                false,
            );
        }
    }
}

/// Scoring runs at low priority and lags the streams: its last samples are awaited (bounded) so
/// the summary holds every score the run took.
async fn finish_scoring(quality: Option<&QualitySampler>, cancel: &CancellationToken) {
    let Some(sampler) = quality else { return };
    if sampler.pending() == 0 {
        return;
    }
    info!(
        pending = sampler.pending(),
        "waiting for the quality probe's last scores"
    );
    let deadline = tokio::time::Instant::now() + QUALITY_TAIL;
    tokio::select! {
        idle = sampler.wait_idle(deadline) => if !idle {
            warn!(
                pending = sampler.pending(),
                "quality samples still unscored after {QUALITY_TAIL:?}; they are left out"
            );
        },
        () = cancel.cancelled() => {}
    }
}

/// The quality probe's sampler, sized from the scenario (`sample = "auto"`: what one scoring
/// slot keeps up with, from the cost measured in the `quality_sampler` bench). The fraction it
/// samples is the `quality_sample_fraction` gauge.
fn quality_sampler(
    scenario: &Scenario,
    encoded: &EncodedSource,
    registry: &Registry,
) -> anyhow::Result<Option<Arc<QualitySampler>>> {
    let q = &scenario.quality;
    if !q.enabled {
        return Ok(None);
    }
    let fraction = match q.sampling {
        Sampling::Fraction(f) => f,
        Sampling::Auto => {
            // A direct test scores like one stream.
            let streams: u32 = scenario
                .workloads
                .iter()
                .map(|w| w.executor.max_streams().max(1))
                .sum();
            // ≈1.7 s per 2 s 640×360 segment with the reference transcode, one slot.
            sustainable_fraction(1.7, 1, streams as usize * (scenario.ladder.len() + 1), 2.0)
        }
    };
    registry.add("quality_sample_fraction", &Tags::new(), fraction);
    let config = QualitySamplerConfig {
        sampling: probes::quality::Sampling::Fraction(fraction),
        model: q.model.parse().map_err(|e| anyhow!("quality.model: {e}"))?,
        threads: q.threads,
        subsample: q.subsample,
        score_reference: q.reference,
        ..QualitySamplerConfig::default()
    };
    Ok(Some(Arc::new(
        QualitySampler::new(encoded, config).context("cannot set up the quality probe")?,
    )))
}

/// How long a run waits, after its streams, for the quality probe's queued samples.
const QUALITY_TAIL: Duration = Duration::from_secs(120);

async fn payment_probe(
    endpoints: &crate::stack::Endpoints,
    prices: &[u64],
    pixels_per_unit: u64,
) -> anyhow::Result<PaymentProbe> {
    let parse = |what: &str, text: Option<&String>| -> anyhow::Result<protocol::Address> {
        text.ok_or_else(|| anyhow!("the stack announced no {what}"))?
            .parse()
            .with_context(|| format!("{what} is not an address"))
    };
    let rpc = endpoints
        .chain_rpc
        .clone()
        .ok_or_else(|| anyhow!("the stack has no chain"))?;
    let broker = parse("ticket broker", endpoints.ticket_broker.as_ref())?;
    let sender = parse(
        "broadcaster address",
        endpoints.broadcaster_address.as_ref(),
    )?;
    let orchestrators = endpoints
        .orchestrator_addresses
        .iter()
        .zip(prices)
        .map(|(address, price_per_unit)| {
            Ok(OrchestratorPrice {
                address: parse("orchestrator address", address.as_ref())?,
                price_per_unit: u128::from(*price_per_unit),
                pixels_per_unit: u128::from(pixels_per_unit),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The run's window starts at the block the chain is at now.
    let from_block = protocol::chain::EventReader::connect(&rpc, broker)
        .context("cannot read the chain")?
        .latest_block()
        .await
        .context("cannot read the chain")?;
    let mut config = PaymentProbeConfig::new(&rpc, broker, sender, orchestrators, from_block);
    // The last winners only become due once their params expire (a block a second): the chain
    // must stay quiet for longer than that before the redemptions count as settled.
    // The same wait makes a shortfall final: a winner not redeemed by then never will be.
    config.quiet_polls = crate::stack::embedded::PARAMS_EXPIRATION_BLOCKS as u32 + 5;
    config.shortfall_final_polls = Some(config.quiet_polls);
    PaymentProbe::new(config).context("cannot set up the payment probe")
}

fn record_payments(registry: &Registry, report: &PaymentReport, run_dir: &Path) {
    let none = Tags::new();
    if let Some(error) = report.payment_ev_error {
        registry.add("payment_ev_error", &none, error);
    }
    registry.add("tickets_redeemed", &none, report.tickets_redeemed as f64);
    registry.add_bool(
        "checks",
        &crate::metrics::tags([("check", "payments")]),
        report.consistent(),
    );
    match serde_json::to_vec_pretty(report) {
        Ok(json) => {
            if let Err(error) = std::fs::write(run_dir.join("payments.json"), json) {
                warn!("cannot write payments.json: {error}");
            }
        }
        Err(error) => warn!("cannot serialise the payment report: {error}"),
    }
}

/// Generates (or stamps) the source once, on a blocking thread, in its replayable form.
async fn prepare_source(source: &Source) -> anyhow::Result<(EncodedSource, Arc<ReplaySource>)> {
    let config = match source {
        Source::Synthetic(synthetic) => SourceConfig {
            width: synthetic.width,
            height: synthetic.height,
            fps_num: synthetic.fps,
            fps_den: 1,
            duration_secs: synthetic.clip.as_secs_f64(),
            gop_secs: synthetic.gop.as_secs_f64(),
            ..SourceConfig::default()
        },
        Source::File { path, gop } => SourceConfig {
            gop_secs: gop.as_secs_f64(),
            input_file: Some(path.clone()),
            ..SourceConfig::default()
        },
    };
    info!(
        "encoding the {}×{} source once",
        config.width, config.height
    );
    let encoded =
        tokio::task::spawn_blocking(move || reference_transcoder::source::generate(&config))
            .await
            .context("the source encoder panicked")?
            .context("cannot make the source")?;
    let replay = Arc::new(ReplaySource::new(&encoded).context("cannot replay the source")?);
    Ok((encoded, replay))
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
) -> ThresholdVerdict {
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

/// The tester's paying account for a direct target: the key is read from where the scenario
/// says (an environment variable or a file) and never logged or echoed in an error.
fn direct_sender(payment: &DirectPayment) -> anyhow::Result<DirectSender> {
    let signer =
        protocol::key::load_signer(&payment.key).context("the direct target's sender key")?;
    Ok(DirectSender {
        signer,
        rpc_url: payment.chain_rpc.clone(),
        ticket_broker: payment
            .ticket_broker
            .parse()
            .context("ticket broker address")?,
        limits: protocol::ticket::SenderLimits::default(),
    })
}

/// The nodes `scenario`'s chaos events of `kind` act on.
fn chaos_targets(scenario: &Scenario, kind: &str) -> Vec<scenario::StackNode> {
    scenario
        .chaos
        .iter()
        .filter(|e| e.action.kind() == kind)
        .map(|e| e.action.node())
        .collect()
}
