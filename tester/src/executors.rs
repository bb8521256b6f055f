//! Workload executors: how many streams run, and when (k6's "executors" for video streams).
//!
//! An executor only schedules: it starts and stops streams through a [`StreamRunner`] and keeps
//! the `streams` gauge current. What a stream does (publish, pull, check) is the runner's business,
//! so the same schedules drive the embedded stack, an external one, or nginx. Each stream gets a
//! cancellation token; stopping a stream means cancelling its token and letting it finish its tail
//! (the last segments still being pulled) within a grace period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::{Registry, Tags, tags};
use crate::scenario::{CapacitySearch, Executor, Stage, Workload};
use crate::thresholds::Threshold;

/// One stream to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub workload: String,
    /// 0-based index within the workload; stable for the stream's life.
    pub index: u32,
    /// Unique stream key (RTMP stream name / manifest id).
    pub key: String,
}

pub type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one stream until `stop` is cancelled, then winds down (bounded by the runner itself).
pub trait StreamRunner: Send + Sync + 'static {
    fn run(&self, spec: StreamSpec, stop: CancellationToken) -> StreamFuture;
}

/// The number of streams a workload has live right now; the observer tags capacity samples with it.
#[derive(Debug, Default)]
pub struct LiveLoad(AtomicU32);

impl LiveLoad {
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a workload ended.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadResult {
    pub completed: bool,
    /// Capacity executor: the last stream count at which `until` held (0 when even the first failed).
    pub capacity: Option<u32>,
    pub message: Option<String>,
}

/// How long a stopped stream may take to finish pulling its last segments.
const STOP_GRACE: Duration = Duration::from_secs(30);

struct LiveStream {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts, stops and counts one workload's streams.
struct Streams {
    workload: String,
    key_prefix: String,
    runner: Arc<dyn StreamRunner>,
    registry: Arc<Registry>,
    load: Arc<LiveLoad>,
    live: Vec<LiveStream>,
    stopping: Vec<LiveStream>,
    next_index: u32,
}

impl Streams {
    fn gauge_tags(&self) -> Tags {
        tags([("workload", self.workload.as_str())])
    }

    fn set_count(&mut self, target: u32) {
        while (self.live.len() as u32) < target {
            let spec = StreamSpec {
                workload: self.workload.clone(),
                index: self.next_index,
                key: format!("{}-{}", self.key_prefix, self.next_index),
            };
            self.next_index += 1;
            let stop = CancellationToken::new();
            let task = tokio::spawn(self.runner.run(spec, stop.clone()));
            self.live.push(LiveStream { stop, task });
        }
        while (self.live.len() as u32) > target {
            let stream = self.live.pop().expect("more live streams than the target");
            stream.stop.cancel();
            self.stopping.push(stream);
        }
        let count = self.live.len() as u32;
        if self.load.0.swap(count, Ordering::Relaxed) != count {
            self.registry
                .add("streams", &self.gauge_tags(), f64::from(count));
        }
    }

    /// Stops every stream and waits for each to finish, up to the grace period.
    async fn stop_all(mut self) {
        self.set_count(0);
        let deadline = Instant::now() + STOP_GRACE;
        for stream in self.stopping {
            let abort = stream.task.abort_handle();
            if tokio::time::timeout_at(deadline, stream.task)
                .await
                .is_err()
            {
                warn!(workload = %self.workload, "a stream did not stop within {STOP_GRACE:?}; abandoning it");
                abort.abort();
            }
        }
    }
}

/// Runs `workload` to its end or until `cancel` fires.
pub async fn run_workload(
    workload: &Workload,
    run_id: &str,
    runner: Arc<dyn StreamRunner>,
    registry: Arc<Registry>,
    load: Arc<LiveLoad>,
    thresholds: &[Threshold],
    cancel: CancellationToken,
) -> WorkloadResult {
    if !workload.start_after.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(workload.start_after) => {}
            () = cancel.cancelled() => return cancelled(None),
        }
    }
    let mut streams = Streams {
        workload: workload.name.clone(),
        key_prefix: format!("{run_id}-{}", workload.name),
        runner,
        registry,
        load,
        live: Vec::new(),
        stopping: Vec::new(),
        next_index: 0,
    };
    let result = match &workload.executor {
        Executor::ConstantStreams {
            streams: n,
            duration,
        }
        | Executor::Soak {
            streams: n,
            duration,
        } => {
            streams.set_count(*n);
            hold(*duration, &cancel).await
        }
        Executor::RampingStreams {
            start_streams,
            stages,
        } => ramp(&mut streams, *start_streams, stages, &cancel).await,
        Executor::Capacity(search) => {
            let gates: Vec<&Threshold> = thresholds
                .iter()
                .filter(|t| t.selector_text == search.until)
                .collect();
            capacity(&mut streams, search, &gates, &cancel).await
        }
        Executor::DirectOrchestrator { .. } | Executor::Ai(_) => WorkloadResult {
            completed: false,
            capacity: None,
            message: Some(format!(
                "the {} executor does not schedule streams",
                workload.executor.name()
            )),
        },
    };
    streams.stop_all().await;
    result
}

fn cancelled(capacity: Option<u32>) -> WorkloadResult {
    WorkloadResult {
        completed: false,
        capacity,
        message: Some("interrupted".into()),
    }
}

fn completed(capacity: Option<u32>, message: Option<String>) -> WorkloadResult {
    WorkloadResult {
        completed: true,
        capacity,
        message,
    }
}

async fn hold(duration: Duration, cancel: &CancellationToken) -> WorkloadResult {
    tokio::select! {
        () = tokio::time::sleep(duration) => completed(None, None),
        () = cancel.cancelled() => cancelled(None),
    }
}

/// The stream count `elapsed` into a ramp: linear within each stage, from the previous target.
pub fn ramp_target(start: u32, stages: &[Stage], elapsed: Duration) -> u32 {
    let mut from = start;
    let mut stage_start = Duration::ZERO;
    for stage in stages {
        let stage_end = stage_start + stage.duration;
        if elapsed < stage_end {
            let fraction =
                (elapsed - stage_start).as_secs_f64() / stage.duration.as_secs_f64().max(1e-9);
            let value = f64::from(from) + (f64::from(stage.target) - f64::from(from)) * fraction;
            return value.round() as u32;
        }
        from = stage.target;
        stage_start = stage_end;
    }
    from
}

async fn ramp(
    streams: &mut Streams,
    start: u32,
    stages: &[Stage],
    cancel: &CancellationToken,
) -> WorkloadResult {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return cancelled(None),
        }
        let elapsed = began.elapsed();
        if elapsed >= total {
            return completed(None, None);
        }
        streams.set_count(ramp_target(start, stages, elapsed));
    }
}

async fn capacity(
    streams: &mut Streams,
    search: &CapacitySearch,
    gates: &[&Threshold],
    cancel: &CancellationToken,
) -> WorkloadResult {
    let max = search.max_streams;
    let mut held: u32 = 0;
    let mut count = search.start_streams;
    loop {
        streams.set_count(count);
        info!(workload = %streams.workload, streams = count, "capacity step");
        tokio::select! {
            () = tokio::time::sleep(search.step_duration) => {}
            () = cancel.cancelled() => return cancelled(Some(held)),
        }
        // Judge this step alone: samples are tagged with the stream count they were taken at.
        let failed = gates.iter().find_map(|gate| {
            let mut step_gate = (*gate).clone();
            step_gate
                .selector
                .tags
                .insert("sessions".into(), count.to_string());
            let verdict = step_gate.evaluate(&streams.registry);
            (!verdict.passed).then_some(verdict)
        });
        if let Some(verdict) = failed {
            let reason = verdict.reason.unwrap_or_default();
            return completed(
                Some(held),
                Some(format!(
                    "{} {} broke at {count} streams ({reason}); the last count that held is {held}",
                    verdict.metric, verdict.expression
                )),
            );
        }
        held = count;
        if count >= max {
            return completed(Some(held), Some(format!("held up to max_streams = {max}")));
        }
        count = (count + search.step).min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records when each stream starts and stops, and adds one `segment_success` sample per
    /// stream, failing once more than `healthy_up_to` streams are live.
    struct RecordingRunner {
        events: Mutex<Vec<(String, &'static str)>>,
        registry: Arc<Registry>,
        load: Arc<LiveLoad>,
        healthy_up_to: u32,
    }

    impl StreamRunner for Arc<RecordingRunner> {
        fn run(&self, spec: StreamSpec, stop: CancellationToken) -> StreamFuture {
            let me = self.clone();
            Box::pin(async move {
                me.events.lock().unwrap().push((spec.key.clone(), "start"));
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let live = me.load.get();
                            let tags = tags([("sessions", live.to_string().as_str())]);
                            me.registry.add_bool("segment_success", &tags, live <= me.healthy_up_to);
                        }
                        () = stop.cancelled() => break,
                    }
                }
                me.events.lock().unwrap().push((spec.key, "stop"));
            })
        }
    }

    fn setup(healthy_up_to: u32) -> (Arc<RecordingRunner>, Arc<Registry>, Arc<LiveLoad>) {
        let registry = Arc::new(Registry::new());
        let load = Arc::new(LiveLoad::default());
        let runner = Arc::new(RecordingRunner {
            events: Mutex::new(Vec::new()),
            registry: registry.clone(),
            load: load.clone(),
            healthy_up_to,
        });
        (runner, registry, load)
    }

    fn workload(executor: Executor) -> Workload {
        Workload {
            name: "w".into(),
            start_after: Duration::ZERO,
            executor,
            players: 0,
        }
    }

    #[test]
    fn ramp_target_interpolates_each_stage() {
        let stages = [
            Stage {
                duration: Duration::from_secs(10),
                target: 10,
            },
            Stage {
                duration: Duration::from_secs(10),
                target: 0,
            },
        ];
        assert_eq!(ramp_target(0, &stages, Duration::ZERO), 0);
        assert_eq!(ramp_target(0, &stages, Duration::from_secs(5)), 5);
        assert_eq!(ramp_target(0, &stages, Duration::from_secs(10)), 10);
        assert_eq!(ramp_target(0, &stages, Duration::from_secs(15)), 5);
        assert_eq!(ramp_target(0, &stages, Duration::from_secs(30)), 0);
        assert_eq!(ramp_target(4, &stages[..1], Duration::from_millis(5000)), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn constant_streams_start_together_and_all_stop() {
        let (runner, registry, load) = setup(u32::MAX);
        let result = run_workload(
            &workload(Executor::ConstantStreams {
                streams: 3,
                duration: Duration::from_secs(5),
            }),
            "run",
            Arc::new(runner.clone()),
            registry.clone(),
            load.clone(),
            &[],
            CancellationToken::new(),
        )
        .await;
        assert!(result.completed);
        let events = runner.events.lock().unwrap().clone();
        let starts: Vec<&str> = events
            .iter()
            .filter(|e| e.1 == "start")
            .map(|e| e.0.as_str())
            .collect();
        assert_eq!(starts, ["run-w-0", "run-w-1", "run-w-2"]);
        assert_eq!(events.iter().filter(|e| e.1 == "stop").count(), 3);
        assert_eq!(load.get(), 0);
        let gauge = registry.merged("streams", &Tags::new()).unwrap();
        assert_eq!(
            gauge.aggregate(crate::metrics::Aggregation::Max, Duration::ZERO),
            Some(3.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_streams_early() {
        let (runner, registry, load) = setup(u32::MAX);
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            canceller.cancel();
        });
        let began = Instant::now();
        let result = run_workload(
            &workload(Executor::Soak {
                streams: 2,
                duration: Duration::from_secs(3600),
            }),
            "run",
            Arc::new(runner.clone()),
            registry,
            load,
            &[],
            cancel,
        )
        .await;
        assert!(!result.completed);
        assert!(began.elapsed() < Duration::from_secs(3));
        assert_eq!(
            runner
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.1 == "stop")
                .count(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_reports_the_last_count_that_held() {
        let (runner, registry, load) = setup(3);
        let gate =
            Threshold::parse("segment_success", "rate >= 0.99", false, Duration::ZERO).unwrap();
        let result = run_workload(
            &workload(Executor::Capacity(CapacitySearch {
                start_streams: 1,
                step: 1,
                step_duration: Duration::from_secs(2),
                max_streams: 10,
                until: "segment_success".into(),
            })),
            "run",
            Arc::new(runner.clone()),
            registry,
            load,
            &[gate],
            CancellationToken::new(),
        )
        .await;
        assert!(result.completed);
        assert_eq!(result.capacity, Some(3), "{:?}", result.message);
        assert!(result.message.unwrap().contains("broke at 4 streams"));
    }

    #[tokio::test(start_paused = true)]
    async fn ramping_follows_the_stages() {
        let (runner, registry, load) = setup(u32::MAX);
        let result = run_workload(
            &workload(Executor::RampingStreams {
                start_streams: 0,
                stages: vec![
                    Stage {
                        duration: Duration::from_secs(4),
                        target: 4,
                    },
                    Stage {
                        duration: Duration::from_secs(4),
                        target: 1,
                    },
                ],
            }),
            "run",
            Arc::new(runner.clone()),
            registry.clone(),
            load,
            &[],
            CancellationToken::new(),
        )
        .await;
        assert!(result.completed);
        let events = runner.events.lock().unwrap().clone();
        assert_eq!(events.iter().filter(|e| e.1 == "start").count(), 4);
        let gauge = registry.merged("streams", &Tags::new()).unwrap();
        assert_eq!(
            gauge.aggregate(crate::metrics::Aggregation::Max, Duration::ZERO),
            Some(4.0)
        );
    }
}
