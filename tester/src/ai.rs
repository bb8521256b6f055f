//! The `ai` executor: one pipeline and model of a gateway or AI worker asked at a rate or at
//! each level of a concurrency sweep by `probes::ai`, each answer a journal record.
//!
//! This module resolves who is asked (a gateway's URL, or the local AI worker the run started),
//! builds the probe's plan from the scenario, makes the input picture for pipelines that take one,
//! and turns each observation into an `ai` record: the catalogue's `ai_*` metrics come from its
//! columns, tagged with the pipeline, model, who answered, why a request failed, cold or warm,
//! and in a sweep the level (`sessions`).
//!
//! A `live-video-to-video` workload is one live job instead: it generates a stamped source as
//! long as the workload (off the runtime), streams it with `probes::ai::live` and turns the
//! observation into one `ai_live` record (the `ai_live_*` metrics).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use observation::record::{AiLiveRecord, AiRecord};
use probes::ai::{
    AiLimits, AiLoad, AiObservation, AiPlan, AiTarget, LiveObservation, LivePlan, Pipeline,
    run_live, run_plan,
};
use probes::clock::system_time_to_unix_ms;
use reference_transcoder::source::SourceConfig;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::executors::WorkloadResult;
use crate::metrics::Tags;
use crate::scenario::{AiLoadSpec, AiWorkload, Executor, Workload};
use crate::streams::MetricsObserver;

/// Who answers when a workload names no gateway.
pub const LOCAL_WORKER_LABEL: &str = "local-ai-worker";

/// The live source's frame rate.
const LIVE_SOURCE_FPS: u32 = 30;
/// The stream id stamped into every frame of the live source.
const LIVE_STREAM_ID: u32 = 0x4C50_4C56;

/// The input picture's size (and the live source's) when a workload that needs one does not say.
const DEFAULT_INPUT: (u32, u32) = (256, 144);

/// What an `ai` workload needs from the run.
pub struct AiContext {
    /// The base URL of the local AI worker, when the run started one.
    pub local_worker: Option<String>,
    pub observer: Arc<MetricsObserver>,
}

/// Runs one `ai` workload to its end (or until `cancel`).
pub async fn run_ai_workload(
    workload: &Workload,
    context: AiContext,
    cancel: CancellationToken,
) -> WorkloadResult {
    let Executor::Ai(ai) = &workload.executor else {
        return failed(format!(
            "workload `{}` is not an ai workload",
            workload.name
        ));
    };
    if !workload.start_after.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(workload.start_after) => {}
            () = cancel.cancelled() => return failed("interrupted".into()),
        }
    }
    let target = match target_of(ai, context.local_worker.as_deref()) {
        Ok(target) => target,
        Err(message) => return failed(message),
    };
    if let AiLoadSpec::Live {
        duration,
        target_fps,
    } = ai.load
    {
        return run_live_workload(workload, ai, target, context, duration, target_fps, cancel)
            .await;
    }
    let plan = match plan_of(ai) {
        Ok(plan) => plan,
        Err(message) => return failed(message),
    };
    info!(
        workload = %workload.name,
        pipeline = ai.pipeline.name(),
        model = %ai.model,
        url = %target.base_url,
        "AI requests starting"
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = stop_tx.send(true);
        })
    };
    let sweep = matches!(ai.load, AiLoadSpec::Sweep { .. });
    let observer = context.observer.clone();
    let name = workload.name.clone();
    let region = ai.region.clone();
    let mut observe = move |o: AiObservation| {
        let mut extra = Tags::new();
        if sweep {
            extra.insert("sessions".into(), o.concurrency.to_string());
        }
        let record = record_of(&name, &region, o);
        observer.registry.add_record(&record, &extra);
        observer.record(record);
    };
    let outcome = run_plan(&target, &plan, stop, &mut observe).await;
    stopper.abort();
    match outcome {
        Ok(()) if cancel.is_cancelled() => failed("interrupted".into()),
        Ok(()) => WorkloadResult {
            completed: true,
            capacity: None,
            message: None,
        },
        Err(error) => failed(format!("{error}")),
    }
}

/// One live video-to-video job: a stamped source generated for `duration`, streamed to the
/// worker in real time by `probes::ai::live`, its observation one `ai_live` record.
async fn run_live_workload(
    workload: &Workload,
    ai: &AiWorkload,
    target: AiTarget,
    context: AiContext,
    duration: Duration,
    target_fps: f64,
    cancel: CancellationToken,
) -> WorkloadResult {
    let (width, height) = ai.input.unwrap_or(DEFAULT_INPUT);
    let config = SourceConfig {
        width,
        height,
        fps_num: LIVE_SOURCE_FPS,
        fps_den: 1,
        duration_secs: duration.as_secs_f64(),
        gop_secs: 1.0,
        stream_id: LIVE_STREAM_ID,
        video_bitrate: Some(300_000),
        x264_preset: "ultrafast".into(),
        audio: false,
        noise: 0,
        ..SourceConfig::default()
    };
    info!(
        workload = %workload.name,
        "encoding the {width}×{height} live source ({:.0} s)",
        duration.as_secs_f64()
    );
    let source = tokio::select! {
        source = tokio::task::spawn_blocking(move || reference_transcoder::source::generate(&config)) => source,
        () = cancel.cancelled() => return failed("interrupted".into()),
    };
    let source = match source {
        Ok(Ok(source)) => source,
        Ok(Err(error)) => return failed(format!("cannot make the live source: {error}")),
        Err(error) => return failed(format!("the live source encoder panicked: {error}")),
    };
    let mut plan = LivePlan::new(target.base_url.clone(), ai.model.clone(), target_fps);
    if let serde_json::Value::Object(params) = &ai.params {
        plan.params = params.clone();
    }
    plan.token = target.bearer.clone();
    plan.request.deadline = ai.timeout;
    info!(
        workload = %workload.name,
        pipeline = ai.pipeline.name(),
        model = %ai.model,
        url = %target.base_url,
        target_fps,
        "live AI job starting"
    );
    let observation = tokio::select! {
        o = run_live(&plan, &source) => o,
        () = cancel.cancelled() => return failed("interrupted".into()),
    };
    info!(
        workload = %workload.name,
        ok = observation.ok,
        reason = observation.reason.as_deref().unwrap_or(""),
        output_fps = observation.output_fps.unwrap_or(0.0),
        frames_received = observation.frames_received,
        "live AI job ended"
    );
    let record = live_record_of(
        &workload.name,
        &ai.region,
        ai.pipeline,
        target.orchestrator,
        observation,
    );
    context.observer.registry.add_record(&record, &Tags::new());
    context.observer.record(record);
    WorkloadResult {
        completed: true,
        capacity: None,
        message: None,
    }
}

/// One live job's observation as its journal record.
fn live_record_of(
    workload: &str,
    region: &str,
    pipeline: Pipeline,
    orchestrator: Option<String>,
    o: LiveObservation,
) -> AiLiveRecord {
    AiLiveRecord {
        t_ms: system_time_to_unix_ms(o.started),
        workload: workload.to_owned(),
        pipeline: pipeline.name().to_owned(),
        model: o.model_id,
        orchestrator,
        region: Some(region.to_owned()),
        ok: o.ok,
        reason: o.reason,
        error: o.message,
        time_to_first_frame_ms: o.time_to_first_frame.map(millis),
        output_fps: o.output_fps,
        target_fps: o.target_fps,
        frames_sent: o.frames_sent,
        frames_received: o.frames_received,
        unreadable_stamps: o.unreadable_stamps,
        latency_p50_ms: o.latency_p50_ms,
        latency_p95_ms: o.latency_p95_ms,
        latency_max_ms: o.latency_max_ms,
        stalls: o.stalls,
        stall_time_ms: millis(o.stall_time),
        segments_in: o.segments_in,
        segments_out: o.segments_out,
    }
}

fn failed(message: String) -> WorkloadResult {
    WorkloadResult {
        completed: false,
        capacity: None,
        message: Some(message),
    }
}

/// The gateway the workload names, or the run's local worker, with its bearer token.
fn target_of(ai: &AiWorkload, local_worker: Option<&str>) -> Result<AiTarget, String> {
    let url = match (&ai.gateway, local_worker) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => return Err("no gateway named and no local AI worker running".into()),
    };
    let base_url = url::Url::parse(&url).map_err(|e| format!("gateway {url}: {e}"))?;
    let bearer = match &ai.token_env {
        Some(variable) => Some(std::env::var(variable).map_err(|_| {
            format!("the bearer token's environment variable {variable} is not set")
        })?),
        None => None,
    };
    let orchestrator = ai.orchestrator.clone().or_else(|| match &ai.gateway {
        Some(_) => base_url.host_str().map(str::to_owned),
        None => Some(LOCAL_WORKER_LABEL.to_owned()),
    });
    Ok(AiTarget {
        base_url,
        bearer,
        orchestrator,
    })
}

/// The probe's plan: the scenario's load and parameters, and the input picture if the pipeline
/// takes one.
fn plan_of(ai: &AiWorkload) -> Result<AiPlan, String> {
    let load = match &ai.load {
        AiLoadSpec::Rate {
            per_second,
            duration,
        } => AiLoad::Rate {
            per_second: *per_second,
            duration: *duration,
        },
        AiLoadSpec::Sweep {
            levels,
            step_duration,
        } => AiLoad::Sweep {
            levels: levels.clone(),
            per_level: *step_duration,
        },
        AiLoadSpec::Live { .. } => {
            return Err("a live workload is run by `run_live_workload`".into());
        }
    };
    let input_image = if takes_image(ai.pipeline) {
        let (width, height) = ai.input.unwrap_or(DEFAULT_INPUT);
        Some(test_card(width, height)?)
    } else {
        None
    };
    Ok(AiPlan {
        pipeline: ai.pipeline,
        model: ai.model.clone(),
        params: ai.params.clone(),
        input_image,
        load,
        cold_after_idle: ai.cold_after_idle,
        check_determinism: ai.check_determinism,
        limits: AiLimits {
            deadline: ai.timeout,
            ..AiLimits::default()
        },
    })
}

fn takes_image(pipeline: Pipeline) -> bool {
    matches!(
        pipeline,
        Pipeline::ImageToImage
            | Pipeline::Upscale
            | Pipeline::ImageToVideo
            | Pipeline::ImageToText
            | Pipeline::SegmentAnything2
    )
}

/// A PNG test card: colour bars over a luma ramp with a grid, so scaling, filtering and
/// mislabelled sizes all show.
pub fn test_card(width: u32, height: u32) -> Result<Bytes, String> {
    const BARS: [[u8; 3]; 7] = [
        [192, 192, 192],
        [192, 192, 0],
        [0, 192, 192],
        [0, 192, 0],
        [192, 0, 192],
        [192, 0, 0],
        [0, 0, 192],
    ];
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        if x % 32 == 0 || y % 32 == 0 {
            return image::Rgb([255, 255, 255]);
        }
        if y < height * 2 / 3 {
            let bar = (x as usize * BARS.len() / width as usize).min(BARS.len() - 1);
            image::Rgb(BARS[bar])
        } else {
            let luma = (x * 255 / width.max(1)) as u8;
            image::Rgb([luma, luma, luma])
        }
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageOutputFormat::Png,
        )
        .map_err(|e| format!("cannot encode the input picture: {e}"))?;
    Ok(Bytes::from(png))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One observation as its journal record.
fn record_of(workload: &str, region: &str, o: AiObservation) -> AiRecord {
    AiRecord {
        t_ms: system_time_to_unix_ms(o.started),
        workload: workload.to_owned(),
        pipeline: o.pipeline.name().to_owned(),
        model: o.model,
        orchestrator: o.orchestrator,
        region: Some(region.to_owned()),
        request: o.request,
        concurrency: o.concurrency,
        ok: o.ok,
        reason: o.reason.map(str::to_owned),
        error: o.detail,
        status: o.status.map(u32::from),
        start: if o.warm { "warm" } else { "cold" }.to_owned(),
        latency_ms: millis(o.latency),
        upload_ms: o.upload.map(millis),
        inference_ms: o.inference.map(millis),
        download_ms: o.download.map(millis),
        outputs: o.outputs,
        width: o.width,
        height: o.height,
        output_bytes: o.output_bytes,
        seed: o.seed,
        params: o.params_summary,
        response: o.response_summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_card_is_a_png_of_the_asked_size() {
        let png = test_card(64, 48).unwrap();
        let picture = image::load_from_memory(&png).unwrap();
        assert_eq!((picture.width(), picture.height()), (64, 48));
        assert_eq!(
            picture.to_rgb8().get_pixel(1, 1).0,
            [192, 192, 192],
            "the first bar is grey"
        );
    }
}
