//! Runs an AI plan against a target: requests at a rate (open model) or at fixed concurrency
//! levels (a sweep), each one checked and reported as an [`AiObservation`].
//!
//! All requests of a plan are futures of the calling task (no spawned tasks), so the observer
//! is a plain `FnMut` called in completion order and a plan's memory is bounded by its in-flight
//! cap times the per-request limits. Image and video checks run on blocking threads so a large
//! decode does not stall the timing of the other requests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::api::Pipeline;
use super::client::{
    AiError, AiFailure, AiLimits, AiOutcome, AiRequest, AiTarget, http_client, reason, route_url,
    send_request,
};
use super::validate::{AiExpect, Expectation, Validated, image_size, params_summary, validate};

/// The seed of a plan whose params give none.
pub const DEFAULT_SEED: u64 = 42;
/// Seeds of successive requests are this far apart, so no two requests of a plan share a seed
/// (and so a cached answer) unless determinism is being checked.
pub const SEED_STRIDE: u64 = 1000;

/// How requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum AiLoad {
    /// Open model: `per_second` requests sent on schedule whether or not earlier ones finished.
    Rate { per_second: f64, duration: Duration },
    /// Closed model: for each level N, N workers send requests back to back for `per_level`.
    Sweep {
        levels: Vec<u32>,
        per_level: Duration,
    },
}

/// What to send, how, and what to expect.
#[derive(Debug, Clone)]
pub struct AiPlan {
    pub pipeline: Pipeline,
    /// Sent as `model_id` (`model` for the LLM route).
    pub model: String,
    /// The request's fields, minus the uploaded file; a `seed` here is the base seed.
    pub params: Value,
    /// The uploaded file of multipart routes: PNG (or JPEG) for the image inputs, the audio
    /// file for audio-to-text.
    pub input_image: Option<Bytes>,
    pub load: AiLoad,
    /// Idle time after which a request counts as cold again.
    pub cold_after_idle: Duration,
    /// Send each seed twice and require equal pixels.
    pub check_determinism: bool,
    pub limits: AiLimits,
}

impl AiPlan {
    /// A plan with default limits, expectations, a 30 s cold threshold and no determinism check.
    pub fn new(pipeline: Pipeline, model: impl Into<String>, params: Value, load: AiLoad) -> Self {
        AiPlan {
            pipeline,
            model: model.into(),
            params,
            input_image: None,
            load,
            cold_after_idle: Duration::from_secs(30),
            check_determinism: false,
            limits: AiLimits::default(),
        }
    }
}

/// One request's record.
#[derive(Debug, Clone, PartialEq)]
pub struct AiObservation {
    pub started: SystemTime,
    pub pipeline: Pipeline,
    pub model: String,
    pub orchestrator: Option<String>,
    /// Index within the plan, from 0.
    pub request: u64,
    /// The sweep level, or the requests in flight (this one included) when it was sent.
    pub concurrency: u32,
    pub status: Option<u16>,
    pub ok: bool,
    /// One of [`reason::ALL`] when not ok.
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
    /// False for the plan's first request and the first after `cold_after_idle` of idleness.
    pub warm: bool,
    pub upload: Option<Duration>,
    pub inference: Option<Duration>,
    pub download: Option<Duration>,
    pub latency: Duration,
    pub outputs: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub output_bytes: u64,
    /// The requested seed.
    pub seed: Option<u64>,
    pub params_summary: String,
    pub response_summary: Option<String>,
}

/// What is fixed for every request of a plan.
struct Prepared<'a> {
    target: &'a AiTarget,
    plan: &'a AiPlan,
    expect: AiExpect,
    http: reqwest::Client,
    fields: Map<String, Value>,
    file: Option<Bytes>,
    input_size: Option<(u32, u32)>,
    base_seed: u64,
}

fn prepare<'a>(
    target: &'a AiTarget,
    plan: &'a AiPlan,
    expect: &AiExpect,
) -> Result<Prepared<'a>, AiError> {
    let pipeline = plan.pipeline;
    if pipeline == Pipeline::LiveVideoToVideo {
        return Err(AiError::Unsupported(pipeline));
    }
    // A base URL that cannot take a route is the plan's fault, not the target's.
    route_url(&target.base_url, pipeline)?;
    let mut fields = match &plan.params {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(AiError::Plan(format!(
                "params must be an object, not {other}"
            )));
        }
    };
    let base_seed = match fields.get("seed") {
        None => DEFAULT_SEED,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| AiError::Plan(format!("seed {v} is not a non-negative integer")))?,
    };
    // The plan's model wins; an empty one leaves a model the params name.
    if !plan.model.is_empty() || !fields.contains_key(pipeline.model_field()) {
        fields.insert(
            pipeline.model_field().to_owned(),
            Value::from(plan.model.clone()),
        );
    }
    let (file, input_size) = match pipeline.file_field() {
        Some("audio") => {
            let audio = plan.input_image.clone().ok_or_else(|| {
                AiError::Plan(format!("{pipeline} needs its audio as input_image"))
            })?;
            (Some(audio), None)
        }
        Some(_) => {
            let image = plan
                .input_image
                .clone()
                .ok_or_else(|| AiError::Plan(format!("{pipeline} needs input_image")))?;
            let size = image_size(&image)
                .ok_or_else(|| AiError::Plan("input_image is not a PNG or JPEG".into()))?;
            (Some(image), Some(size))
        }
        None => (None, None),
    };
    match &plan.load {
        AiLoad::Rate { per_second, .. } if !(per_second.is_finite() && *per_second > 0.0) => {
            return Err(AiError::Plan(format!(
                "rate {per_second}/s is not positive"
            )));
        }
        AiLoad::Rate { per_second, .. } if *per_second > 1e6 => {
            return Err(AiError::Plan(format!(
                "rate {per_second}/s is beyond any target"
            )));
        }
        AiLoad::Rate { per_second, .. }
            if Duration::try_from_secs_f64(1.0 / per_second).is_err() =>
        {
            return Err(AiError::Plan(format!("rate {per_second}/s is too low")));
        }
        _ => {}
    }
    Ok(Prepared {
        target,
        plan,
        expect: *expect,
        http: http_client(&plan.limits)?,
        fields,
        file,
        input_size,
        base_seed,
    })
}

impl Prepared<'_> {
    /// The seed of request `index`: a repeat of the previous one when checking determinism.
    fn seed(&self, index: u64) -> Option<u64> {
        if !self.plan.pipeline.has_seed() {
            return None;
        }
        let slot = if self.plan.check_determinism {
            index / 2
        } else {
            index
        };
        Some(self.base_seed.wrapping_add(slot.wrapping_mul(SEED_STRIDE)))
    }

    fn fields(&self, seed: Option<u64>) -> Map<String, Value> {
        let mut fields = self.fields.clone();
        if let Some(seed) = seed {
            fields.insert("seed".into(), Value::from(seed));
        }
        fields
    }

    fn observation(&self, sent: &Sent, fields: &Map<String, Value>) -> AiObservation {
        AiObservation {
            started: sent.started,
            pipeline: self.plan.pipeline,
            model: self.plan.model.clone(),
            orchestrator: self.target.orchestrator.clone(),
            request: sent.index,
            concurrency: sent.concurrency,
            status: None,
            ok: false,
            reason: None,
            detail: None,
            warm: sent.warm,
            upload: None,
            inference: None,
            download: None,
            latency: Duration::ZERO,
            outputs: 0,
            width: None,
            height: None,
            output_bytes: 0,
            seed: sent.seed,
            params_summary: params_summary(self.plan.pipeline, fields, self.file.as_ref()),
            response_summary: None,
        }
    }

    /// Sends, checks and records one request; the fingerprint serves the determinism check.
    async fn run_one(&self, sent: Sent) -> (AiObservation, Option<u64>) {
        let fields = self.fields(sent.seed);
        let mut obs = self.observation(&sent, &fields);
        let expectation =
            Expectation::new(self.plan.pipeline, &fields, self.input_size, &self.expect);
        let request = AiRequest {
            pipeline: self.plan.pipeline,
            fields,
            file: self.file.clone(),
        };
        let AiOutcome {
            status,
            timings,
            result,
        } = send_request(&self.http, self.target, &request, &self.plan.limits).await;
        obs.status = status;
        obs.upload = timings.upload;
        obs.inference = timings.inference;
        obs.download = timings.download;
        obs.latency = timings.latency;
        let checked = match result {
            Ok(answer) => {
                obs.output_bytes = answer.body_bytes;
                tokio::task::spawn_blocking(move || validate(&expectation, &answer))
                    .await
                    .unwrap_or_else(|e| {
                        Err(AiFailure::new(
                            reason::MEDIA_DECODE,
                            format!("output check failed: {e}"),
                        ))
                    })
            }
            Err(failure) => Err(failure),
        };
        match checked {
            Ok(valid) => {
                let Validated {
                    outputs,
                    width,
                    height,
                    output_bytes,
                    summary,
                    fingerprint,
                    ..
                } = valid;
                obs.ok = true;
                obs.outputs = outputs;
                obs.width = width;
                obs.height = height;
                obs.output_bytes = output_bytes;
                obs.response_summary = Some(summary);
                (obs, fingerprint)
            }
            Err(failure) => {
                fail(&mut obs, &failure);
                (obs, None)
            }
        }
    }
}

fn fail(obs: &mut AiObservation, failure: &AiFailure) {
    obs.ok = false;
    obs.reason = Some(failure.reason);
    obs.detail = Some(match &failure.body {
        Some(body) if !body.is_empty() && !failure.message.contains(body.as_str()) => {
            format!("{} (body: {body})", failure.message)
        }
        _ => failure.message.clone(),
    });
}

/// What is decided when a request is sent.
struct Sent {
    index: u64,
    concurrency: u32,
    warm: bool,
    seed: Option<u64>,
    started: SystemTime,
}

/// The plan's running state, touched only by [`run_plan`]'s own loop.
struct State {
    next_index: u64,
    in_flight: usize,
    /// When a request last started or ended: idleness is measured from it.
    last_activity: Option<Instant>,
    /// Determinism pairs (index / 2) whose first answer is in, with its fingerprint.
    pairs: HashMap<u64, Option<u64>>,
}

impl State {
    fn send(&mut self, prep: &Prepared<'_>, level: Option<u32>) -> Sent {
        let now = Instant::now();
        let warm = self.in_flight > 0
            || self
                .last_activity
                .is_some_and(|t| now.duration_since(t) < prep.plan.cold_after_idle);
        let index = self.next_index;
        self.next_index += 1;
        self.in_flight += 1;
        self.last_activity = Some(now);
        Sent {
            index,
            concurrency: level.unwrap_or_else(|| u32::try_from(self.in_flight).unwrap_or(u32::MAX)),
            warm,
            seed: prep.seed(index),
            started: SystemTime::now(),
        }
    }

    /// Records a finished request: the determinism check needs both answers of a pair.
    fn finish(
        &mut self,
        prep: &Prepared<'_>,
        (mut obs, fingerprint): (AiObservation, Option<u64>),
    ) -> AiObservation {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_activity = Some(Instant::now());
        if prep.plan.check_determinism && obs.seed.is_some() {
            let pair = obs.request / 2;
            match self.pairs.remove(&pair) {
                None => {
                    self.pairs.insert(pair, fingerprint);
                }
                Some(first) => {
                    if let (Some(a), Some(b)) = (first, fingerprint)
                        && a != b
                        && obs.ok
                    {
                        let failure = AiFailure::new(
                            reason::NOT_DETERMINISTIC,
                            format!(
                                "requests {} and {} with seed {} gave different pixels",
                                pair * 2,
                                pair * 2 + 1,
                                obs.seed.unwrap_or_default()
                            ),
                        );
                        fail(&mut obs, &failure);
                    }
                }
            }
        }
        obs
    }

    /// The record of a request the in-flight cap kept from being sent.
    fn overloaded(&mut self, prep: &Prepared<'_>) -> AiObservation {
        let index = self.next_index;
        self.next_index += 1;
        let seed = prep.seed(index);
        let sent = Sent {
            index,
            concurrency: u32::try_from(self.in_flight).unwrap_or(u32::MAX),
            warm: true,
            seed,
            started: SystemTime::now(),
        };
        let mut obs = prep.observation(&sent, &prep.fields(seed));
        fail(
            &mut obs,
            &AiFailure::new(
                reason::CLIENT_OVERLOADED,
                format!("{} requests already in flight", self.in_flight),
            ),
        );
        obs
    }
}

type Pending<'a> = Pin<Box<dyn Future<Output = (AiObservation, Option<u64>)> + Send + 'a>>;

/// Waits for `stop` to turn true; never returns if its sender is gone without doing so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs `plan` against `target`, calling `observe` once per request (in completion order).
/// Returns when the load is done or `stop` turns true, after the requests in flight finish
/// (each within its deadline). Checks outputs with the default expectations.
pub async fn run_plan(
    target: &AiTarget,
    plan: &AiPlan,
    stop: watch::Receiver<bool>,
    observe: &mut (dyn FnMut(AiObservation) + Send),
) -> Result<(), AiError> {
    run_plan_with(target, plan, &AiExpect::default(), stop, observe).await
}

/// [`run_plan`] with explicit expectations: another upscale factor, the frames of each video,
/// the duration of the audio input.
pub async fn run_plan_with(
    target: &AiTarget,
    plan: &AiPlan,
    expect: &AiExpect,
    mut stop: watch::Receiver<bool>,
    observe: &mut (dyn FnMut(AiObservation) + Send),
) -> Result<(), AiError> {
    let prep = prepare(target, plan, expect)?;
    let prep = &prep;
    let mut state = State {
        next_index: 0,
        in_flight: 0,
        last_activity: None,
        pairs: HashMap::new(),
    };
    let mut pending: FuturesUnordered<Pending<'_>> = FuturesUnordered::new();
    let spawn = |sent: Sent| -> Pending<'_> { Box::pin(prep.run_one(sent)) };

    match &plan.load {
        AiLoad::Rate {
            per_second,
            duration,
        } => {
            let period = 1.0 / per_second;
            let start = tokio::time::Instant::now();
            // A duration past any real run's end stands for "until stopped".
            let end = start.checked_add(*duration);
            let mut ticks = 0u64;
            // Offsets are computed from the start, not accumulated, so the schedule never drifts.
            while let Some(next) = Duration::try_from_secs_f64(period * ticks as f64)
                .ok()
                .and_then(|offset| start.checked_add(offset))
                .filter(|next| end.is_none_or(|end| *next < end))
            {
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {
                        ticks += 1;
                        if state.in_flight >= plan.limits.max_in_flight {
                            observe(state.overloaded(prep));
                        } else {
                            pending.push(spawn(state.send(prep, None)));
                        }
                    }
                    Some(done) = pending.next(), if !pending.is_empty() => {
                        observe(state.finish(prep, done));
                    }
                    () = stopped(&mut stop) => break,
                }
            }
        }
        AiLoad::Sweep { levels, per_level } => {
            'levels: for &level in levels {
                if *stop.borrow() {
                    break;
                }
                let level_end = Instant::now().checked_add(*per_level);
                for _ in 0..level {
                    pending.push(spawn(state.send(prep, Some(level))));
                }
                while !pending.is_empty() {
                    tokio::select! {
                        Some(done) = pending.next() => {
                            observe(state.finish(prep, done));
                            if level_end.is_none_or(|end| Instant::now() < end) && !*stop.borrow() {
                                pending.push(spawn(state.send(prep, Some(level))));
                            }
                        }
                        () = stopped(&mut stop) => break 'levels,
                    }
                }
            }
        }
    }
    // Stopped or done: what is in flight finishes within its own deadline.
    while let Some(done) = pending.next().await {
        observe(state.finish(prep, done));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AiTarget {
        AiTarget {
            base_url: url::Url::parse("http://127.0.0.1:9/").expect("url"),
            bearer: None,
            orchestrator: None,
        }
    }

    fn sweep() -> AiLoad {
        AiLoad::Sweep {
            levels: vec![1],
            per_level: Duration::ZERO,
        }
    }

    #[test]
    fn seeds_stride_and_repeat_for_determinism() {
        let t = target();
        let mut plan = AiPlan::new(
            Pipeline::TextToImage,
            "m",
            serde_json::json!({"prompt": "x", "seed": 7}),
            sweep(),
        );
        let prep = prepare(&t, &plan, &AiExpect::default()).expect("plan");
        assert_eq!(
            (0..3).map(|i| prep.seed(i)).collect::<Vec<_>>(),
            vec![Some(7), Some(1007), Some(2007)]
        );
        assert_eq!(prep.fields.get("model_id"), Some(&Value::from("m")));
        plan.check_determinism = true;
        plan.params = serde_json::json!({"prompt": "x"});
        let prep = prepare(&t, &plan, &AiExpect::default()).expect("plan");
        assert_eq!(
            (0..4).map(|i| prep.seed(i)).collect::<Vec<_>>(),
            vec![Some(42), Some(42), Some(1042), Some(1042)]
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        let t = target();
        let plan = AiPlan::new(Pipeline::ImageToImage, "m", Value::Null, sweep());
        assert!(matches!(
            prepare(&t, &plan, &AiExpect::default()),
            Err(AiError::Plan(_))
        ));
        let plan = AiPlan::new(Pipeline::LiveVideoToVideo, "m", Value::Null, sweep());
        assert!(matches!(
            prepare(&t, &plan, &AiExpect::default()),
            Err(AiError::Unsupported(_))
        ));
        let plan = AiPlan::new(
            Pipeline::Llm,
            "m",
            Value::Null,
            AiLoad::Rate {
                per_second: 0.0,
                duration: Duration::from_secs(1),
            },
        );
        assert!(matches!(
            prepare(&t, &plan, &AiExpect::default()),
            Err(AiError::Plan(_))
        ));
        let plan = AiPlan::new(Pipeline::Llm, "m", Value::from(3), sweep());
        assert!(matches!(
            prepare(&t, &plan, &AiExpect::default()),
            Err(AiError::Plan(_))
        ));
    }

    #[test]
    fn llm_requests_name_the_model_model() {
        let t = target();
        let plan = AiPlan::new(Pipeline::Llm, "llama", Value::Null, sweep());
        let prep = prepare(&t, &plan, &AiExpect::default()).expect("plan");
        assert_eq!(prep.fields.get("model"), Some(&Value::from("llama")));
        assert_eq!(prep.seed(3), None);
    }
}
