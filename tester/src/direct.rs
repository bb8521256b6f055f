//! The `direct-orchestrator` executor: the tester acts as a broadcaster itself and tests each
//! orchestrator on its own, the way the community leaderboard does, with `probes::direct`.
//!
//! Design: this module only resolves *which* orchestrators (the embedded stack's, a list of
//! service URIs, or the ServiceRegistry of a chain) and turns the probe's observations into the
//! catalogue's metrics and the journal's records. Every segment is written as one record per
//! ladder rendition, tagged with the orchestrator's address and the region, so the reports build
//! `leaderboard.json` from the same records as everything else. A segment that failed before any
//! rendition existed (unreachable, price above cap…) still gets its records, failed with the
//! reason, so a zero score always carries its explanation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use observation::record::SegmentRecord;
use probes::ProbeObserver;
use probes::QualityObservation;
use probes::direct::{
    DirectObserver, DirectSegmentObservation, DirectSender, DirectSource, DirectTestConfig,
    DirectTestSummary, run_direct_tests, wire_ladder,
};
use probes::quality::QualitySampler;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::executors::WorkloadResult;
use crate::metrics::Tags;
use crate::scenario::{Executor, OrchestratorList, Profile, Workload};
use crate::streams::MetricsObserver;

/// What a direct workload needs from the run.
pub struct DirectContext {
    /// The embedded stack's orchestrators, when the target is embedded.
    pub embedded_orchestrators: Vec<String>,
    /// Pays with tickets (embedded on-chain stack); `None` tests off-chain.
    pub sender: Option<DirectSender>,
    pub source: Arc<DirectSource>,
    pub ladder: Vec<Profile>,
    pub quality: Option<Arc<QualitySampler>>,
    pub observer: Arc<MetricsObserver>,
}

/// Runs one `direct-orchestrator` workload to its end (or until `cancel`).
pub async fn run_direct_workload(
    workload: &Workload,
    run_id: &str,
    context: DirectContext,
    cancel: CancellationToken,
) -> WorkloadResult {
    let Executor::DirectOrchestrator {
        orchestrators,
        price_cap_wei_per_pixel,
        duration,
        region,
        concurrency,
    } = &workload.executor
    else {
        return failed(format!(
            "workload `{}` is not direct-orchestrator",
            workload.name
        ));
    };
    let uris = match resolve(orchestrators, &context.embedded_orchestrators).await {
        Ok(uris) if uris.is_empty() => return failed("no orchestrator to test".into()),
        Ok(uris) => uris,
        Err(error) => return failed(format!("{error:#}")),
    };
    info!(workload = %workload.name, orchestrators = uris.len(), "direct tests starting");
    let ladder = wire_ladder(&context.ladder);
    let configs = uris
        .iter()
        .enumerate()
        .map(|(i, uri)| {
            let mut config = DirectTestConfig::new(uri, ladder.clone());
            config.price_cap_wei_per_pixel = *price_cap_wei_per_pixel;
            config.duration = Some(*duration);
            config.sender = context.sender.clone();
            config.region = region.clone();
            config.stream_key = format!("{run_id}-{}-{i}", workload.name);
            config
        })
        .collect();
    let observer = Arc::new(DirectMetrics {
        inner: context.observer.clone(),
        region: region.clone(),
        ladder: context.ladder.iter().map(|p| p.name.clone()).collect(),
        orchestrators: Mutex::new(HashMap::new()),
    });
    let tests = run_direct_tests(
        configs,
        context.source,
        observer,
        context.quality,
        *concurrency as usize,
    );
    let results = tokio::select! {
        results = tests => results,
        () = cancel.cancelled() => return WorkloadResult {
            completed: false,
            capacity: None,
            message: Some("interrupted".into()),
        },
    };
    let mut lines = Vec::new();
    for (uri, result) in uris.iter().zip(results) {
        match result {
            Ok(summary) => lines.push(describe(&summary)),
            Err(error) => {
                warn!("direct test of {uri} could not run: {error}");
                lines.push(format!("{uri}: could not run: {error}"));
            }
        }
    }
    WorkloadResult {
        completed: true,
        capacity: None,
        message: Some(lines.join("; ")),
    }
}

fn failed(message: String) -> WorkloadResult {
    warn!("{message}");
    WorkloadResult {
        completed: false,
        capacity: None,
        message: Some(message),
    }
}

/// The service URIs a workload tests.
async fn resolve(list: &OrchestratorList, embedded: &[String]) -> anyhow::Result<Vec<String>> {
    match list {
        OrchestratorList::Embedded => Ok(embedded.to_vec()),
        OrchestratorList::Uris(uris) => Ok(uris.clone()),
        OrchestratorList::Chain {
            rpc,
            service_registry,
        } => {
            let registry = service_registry
                .parse()
                .with_context(|| format!("service_registry {service_registry:?}"))?;
            let found = protocol::chain::RegistryReader::connect(rpc, registry)
                .context("cannot read the ServiceRegistry")?
                .registered_now()
                .await
                .with_context(|| format!("cannot read the ServiceRegistry on {rpc}"))?;
            if found.is_empty() {
                return Err(anyhow!(
                    "no orchestrator has a service URI in the ServiceRegistry {service_registry}"
                ));
            }
            Ok(found.into_iter().map(|o| o.service_uri).collect())
        }
    }
}

/// One line per orchestrator for the summary: its score, or why it has none.
fn describe(s: &DirectTestSummary) -> String {
    let who = s
        .orchestrator_address
        .as_deref()
        .unwrap_or(&s.orchestrator_uri);
    let mut line = format!("{who}: success {:.2}, score {:.3}", s.success_rate, s.score);
    if let Some(rt) = s.round_trip_time {
        line.push_str(&format!(", round trip {rt:.2} s"));
    }
    for error in &s.errors {
        line.push_str(&format!(
            ", {} ×{}: {}",
            error.error_code, error.count, error.message
        ));
    }
    line
}

/// Direct observations → metrics and journal records.
struct DirectMetrics {
    inner: Arc<MetricsObserver>,
    region: String,
    ladder: Vec<String>,
    /// Which orchestrator each test's stream key belongs to, for tagging its quality scores.
    orchestrators: Mutex<HashMap<String, String>>,
}

impl DirectMetrics {
    fn tags(&self, s: &DirectSegmentObservation) -> Tags {
        let mut tags = Tags::new();
        tags.insert("workload".into(), self.inner.workload.clone());
        tags.insert("orchestrator".into(), orchestrator_name(s));
        tags.insert("region".into(), self.region.clone());
        tags
    }
}

fn orchestrator_name(s: &DirectSegmentObservation) -> String {
    s.orchestrator_address
        .clone()
        .unwrap_or_else(|| s.orchestrator_uri.clone())
}

impl DirectObserver for DirectMetrics {
    fn segment(&self, s: &DirectSegmentObservation) {
        self.orchestrators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(s.stream_key.clone(), orchestrator_name(s));
        let tags = self.tags(s);
        let registry = &self.inner.registry;
        registry.add_bool("orchestrator_success", &tags, s.ok);
        registry.add_bool("segment_success", &tags, s.ok);
        registry.add("publish_lag", &tags, s.send_lag_ms);
        if s.tickets > 0 {
            registry.add("tickets_sent", &tags, s.tickets as f64);
        }
        for (metric, value) in [
            ("round_trip", s.round_trip_ms),
            ("upload_time", s.upload_ms),
            ("transcode_time", s.transcode_ms),
            ("download_time", s.download_ms),
        ] {
            if let Some(ms) = value {
                registry.add(metric, &tags, ms);
            }
        }
        if let Some(reason) = &s.reason {
            let mut tags = tags.clone();
            tags.insert("reason".into(), reason.code().to_owned());
            registry.add("orchestrator_failures", &tags, 1.0);
        }
        let t_ms = s.sent_unix_ms.unwrap_or(s.scheduled_unix_ms);
        for name in &self.ladder {
            let rendition = s.renditions.iter().find(|r| &r.name == name);
            let reason = rendition
                .and_then(|r| r.reason.as_ref())
                .or(s.reason.as_ref());
            let ok = s.ok && rendition.is_some_and(|r| r.ok);
            self.inner.record(SegmentRecord {
                t_ms,
                workload: self.inner.workload.clone(),
                stream: s.stream_key.clone(),
                rendition: name.clone(),
                seq: s.seq,
                orchestrator: Some(orchestrator_name(s)),
                region: Some(self.region.clone()),
                ok,
                error: (!ok)
                    .then(|| reason.map_or_else(|| "failed".to_owned(), |r| r.code().to_owned())),
                message: (!ok).then(|| reason.map(|r| r.message())).flatten(),
                duration_s: Some(s.duration_ms / 1000.0),
                latency_ms: None,
                upload_ms: s.upload_ms,
                transcode_ms: s.transcode_ms,
                download_ms: rendition.and_then(|r| r.download_ms),
                round_trip_ms: s.round_trip_ms,
                bytes: rendition.map(|r| r.bytes),
                bitrate_kbps: rendition
                    .filter(|_| s.duration_ms > 0.0)
                    .map(|r| r.bytes as f64 * 8.0 / s.duration_ms),
                width: rendition.and_then(|r| r.width),
                height: rendition.and_then(|r| r.height),
                frames: None,
            });
            for check in rendition.iter().flat_map(|r| &r.checks) {
                self.inner.check(check);
            }
        }
    }

    fn quality(&self, q: &QualityObservation) {
        let orchestrator = self
            .orchestrators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&q.stream_key)
            .cloned();
        match orchestrator {
            Some(o) => self.inner.quality_of(q, Some((&o, &self.region))),
            None => self.inner.quality_of(q, None),
        }
    }
}
