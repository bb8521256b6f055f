//! The AI scenarios (`scenarios/ai-*.toml`, `scenarios/ai-faults/`), run end to end: `lpt run`
//! starts the local AI worker (`lpt node ai-worker`), the AI probe asks it over HTTP and
//! validates every answer; each pipeline the worker implements passes, the sweep's levels are
//! told apart, a live video-to-video job sustains its frame rate, and each fault switch fails
//! exactly the threshold written to catch it, with the reason in the records.

use std::collections::BTreeMap;

use serde_json::Value;
use testkit::lpt_run::{LptRun, run_scenario};

fn run(scenario: &str) -> LptRun {
    run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), scenario)
}

/// The run's `ai` records grouped by a text field.
fn by(run: &LptRun, field: &str) -> BTreeMap<String, Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in run.records("ai") {
        let key = match &record[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        groups.entry(key).or_default().push(record);
    }
    groups
}

#[test]
fn each_pipeline_the_local_worker_implements_passes_with_its_outputs_validated() {
    let run = run("scenarios/ai-smoke.toml");
    assert_eq!(run.code, 0, "{}", run.output);
    let pipelines = by(&run, "pipeline");
    assert_eq!(
        pipelines.keys().map(String::as_str).collect::<Vec<_>>(),
        ["image-to-image", "text-to-image", "upscale"]
    );
    let expected = [
        ("text-to-image", "lpt/seeded-renderer", 2, 256, 128),
        ("image-to-image", "lpt/ffmpeg-filter", 1, 256, 144),
        ("upscale", "lpt/lanczos-x4", 1, 512, 288),
    ];
    for (pipeline, model, outputs, width, height) in expected {
        let records = &pipelines[pipeline];
        assert!(records.len() >= 8, "{pipeline}: {} requests", records.len());
        for r in records {
            assert_eq!(r["ok"], true, "{r:#}");
            assert_eq!(r["status"], 200, "{r:#}");
            assert_eq!(r["model"], model, "{r:#}");
            assert_eq!(r["orchestrator"], "local-ai-worker", "{r:#}");
            assert_eq!(r["outputs"], outputs, "{r:#}");
            assert_eq!(
                (r["width"].clone(), r["height"].clone()),
                (width.into(), height.into())
            );
            assert!(r["output_bytes"].as_u64().unwrap() > 100, "{r:#}");
            assert!(r["latency_ms"].as_f64().unwrap() > 0.0, "{r:#}");
            assert!(r["inference_ms"].as_f64().is_some(), "{r:#}");
        }
        assert_eq!(records[0]["start"], "cold", "the first request of a plan");
        assert!(records[1..].iter().all(|r| r["start"] == "warm"));
    }
    // Seeds are echoed; text-to-image was asked for seed 7 and its first request got it.
    let first_t2i = pipelines["text-to-image"]
        .iter()
        .find(|r| r["request"] == 0)
        .unwrap();
    assert_eq!(first_t2i["seed"], 7, "{first_t2i:#}");
    assert!(
        first_t2i["params"]
            .as_str()
            .unwrap()
            .contains("a lighthouse on a cliff at dusk")
    );
}

#[test]
fn a_concurrency_sweep_tags_each_level_and_queueing_shows_past_the_worker_s_capacity() {
    let run = run("scenarios/ai-sweep.toml");
    assert_eq!(run.code, 0, "{}", run.output);
    let levels = by(&run, "concurrency");
    assert_eq!(
        levels.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2", "4"]
    );
    let median = |level: &str| {
        let mut latencies: Vec<f64> = levels[level]
            .iter()
            .map(|r| r["latency_ms"].as_f64().unwrap())
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies[latencies.len() / 2]
    };
    let (one, four) = (median("1"), median("4"));
    eprintln!("median latency: 1 client {one:.0} ms, 4 clients {four:.0} ms");
    // Four clients on a worker of capacity 2: each request waits for about one other.
    assert!(four > one * 1.4, "1: {one} ms, 4: {four} ms");
    assert!(levels["4"].len() > levels["1"].len());
}

#[test]
fn a_slow_worker_fails_the_latency_threshold_with_valid_answers() {
    let run = run("scenarios/ai-faults/slow.toml");
    run.assert_fails_only("ai_latency");
    for r in run.records("ai") {
        assert_eq!(r["ok"], true, "{r:#}");
        assert!(r["latency_ms"].as_f64().unwrap() >= 1500.0, "{r:#}");
    }
}

#[test]
fn images_of_the_wrong_size_fail_with_the_reason_named() {
    let run = run("scenarios/ai-faults/wrong-size.toml");
    run.assert_fails_only("ai_success");
    let records = run.records("ai");
    assert!(records.len() >= 5, "{}", records.len());
    for r in &records {
        assert_eq!(r["ok"], false, "{r:#}");
        assert_eq!(r["status"], 200, "{r:#}");
        assert_eq!(r["reason"], "wrong_size", "{r:#}");
        assert_eq!(r["error"], "output 0 is 128x64, expected 256x128", "{r:#}");
    }
}

#[test]
fn injected_500s_fail_with_the_status_and_the_worker_s_message() {
    let run = run("scenarios/ai-faults/errors.toml");
    run.assert_fails_only("ai_success");
    let records = run.records("ai");
    let failed: Vec<&Value> = records.iter().filter(|r| r["ok"] == false).collect();
    assert_eq!(failed.len(), records.len() / 3, "{records:#?}");
    for r in failed {
        assert_eq!(r["reason"], "http_status", "{r:#}");
        assert_eq!(r["status"], 500, "{r:#}");
        assert!(
            r["error"].as_str().unwrap().contains("injected fault"),
            "{r:#}"
        );
    }
}

#[test]
fn cold_starts_fail_the_cold_latency_threshold() {
    let run = run("scenarios/ai-faults/cold-start.toml");
    run.assert_fails_only("ai_cold_latency");
    let records = run.records("ai");
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in &records {
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["start"], "cold", "{r:#}");
        assert!(r["latency_ms"].as_f64().unwrap() >= 2000.0, "{r:#}");
    }
}

#[test]
fn a_live_job_on_the_local_worker_sustains_its_frame_rate() {
    let run = run("scenarios/ai-live.toml");
    assert_eq!(run.code, 0, "{}", run.output);
    let records = run.records("ai_live");
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["pipeline"], "live-video-to-video", "{r:#}");
    assert_eq!(r["model"], "lpt/hue-shift", "{r:#}");
    assert_eq!(r["orchestrator"], "local-ai-worker", "{r:#}");
    let fps = r["output_fps"].as_f64().unwrap();
    assert!((fps - 24.0).abs() <= 24.0 * 0.05, "{r:#}");
    assert!(r["frames_received"].as_u64().unwrap() > 0, "{r:#}");
    assert!(
        r["time_to_first_frame_ms"].as_f64().unwrap() < 3000.0,
        "{r:#}"
    );
    assert_eq!(r["unreadable_stamps"], 0, "{r:#}");
    assert!(
        run.records("ai").is_empty(),
        "a live job writes no `ai` record"
    );
    testkit::schema::assert_valid(&run.summary, observation::summary::SCHEMA_PATH);
}

#[test]
fn a_live_job_below_its_target_rate_fails_the_fps_threshold_as_low_fps() {
    let run = run("scenarios/ai-faults/live-slow.toml");
    run.assert_fails_only("ai_live_fps");
    let records = run.records("ai_live");
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["reason"], "low_fps", "{r:#}");
    let fps = r["output_fps"].as_f64().unwrap();
    assert!((fps - 12.0).abs() <= 12.0 * 0.1, "{r:#}");
    assert!(r["frames_received"].as_u64().unwrap() > 0, "{r:#}");
}
