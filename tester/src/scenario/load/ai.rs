//! `executor = "ai"` workloads and `[ai_worker]`: what the AI probe asks of a gateway or an AI
//! worker, and the switches of the local AI worker the run starts when a workload names no
//! gateway (the worker's own config keys, [`AiWorkerConfig`], `[ai_worker.live]` included).

use std::time::Duration;

use node_ai_worker::{AiFaults, AiWorkerConfig, LiveConfig, MediaMode};
use probes::ai::Pipeline;
use toml_edit::{Item, Value};

use super::super::model::*;
use super::super::reader::{Reader, Table, join};
use crate::hint::closest;

/// The most requests per second one workload may ask for.
const MAX_RATE: f64 = 10_000.0;
/// The highest concurrency level of a sweep.
const MAX_LEVEL: i64 = 4096;
/// The highest output frame rate a live workload may ask for.
const MAX_TARGET_FPS: f64 = 240.0;
/// The largest input image side.
const MAX_INPUT_SIDE: i64 = 4096;

/// One `ai` workload's keys.
pub(super) fn read_workload(reader: &mut Reader<'_>, w: &Table<'_>) -> Option<Executor> {
    let pipeline = read_pipeline(reader, w);
    let model = reader.string(w, "model");
    let model = reader.require(w, "model", "\"lpt/seeded-renderer\"", model);
    let gateway = reader.string(w, "gateway");
    if let Some(url) = &gateway
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        reader.error_at(
            w,
            "gateway",
            format!("`{url}` is not an http(s) URL"),
            Some("e.g. \"https://dream-gateway.livepeer.cloud\"".into()),
        );
    }
    let token_env = reader.string(w, "token_env");
    let orchestrator = reader.string(w, "orchestrator");
    let region = reader.string(w, "region").unwrap_or_else(|| "LOCAL".into());
    let live = pipeline == Some(Pipeline::LiveVideoToVideo);
    let load = if live {
        read_live_load(reader, w)
    } else {
        read_load(reader, w)
    };
    let params = match reader.item(w, "params") {
        Some(item) => to_json(reader, w, item),
        None => Some(serde_json::Value::Object(Default::default())),
    };
    let input = read_input(reader, w);
    if let (Some(pipeline), Some(serde_json::Value::Object(params))) = (&pipeline, &params)
        && params.contains_key("model_id")
    {
        reader.error_at(
            w,
            "params",
            format!(
                "`model_id` comes from the workload's `model` key, not `params` ({pipeline} request)"
            ),
            Some("move it to `model = …`".into()),
        );
    }
    let check_determinism = reader.boolean(w, "check_determinism").unwrap_or(false);
    let cold_after_idle = reader
        .duration(w, "cold_after_idle")
        .unwrap_or(Duration::from_secs(30));
    let timeout = reader
        .duration(w, "timeout")
        .unwrap_or(Duration::from_secs(120));
    Some(Executor::Ai(AiWorkload {
        pipeline: pipeline?,
        model: model?,
        gateway,
        token_env,
        orchestrator,
        region,
        load: load?,
        params: params?,
        input,
        check_determinism,
        cold_after_idle,
        timeout,
    }))
}

fn read_pipeline(reader: &mut Reader<'_>, w: &Table<'_>) -> Option<Pipeline> {
    let name = reader.string(w, "pipeline");
    let name = reader.require(w, "pipeline", "\"text-to-image\"", name)?;
    match name.parse::<Pipeline>() {
        Ok(pipeline) => Some(pipeline),
        Err(_) => {
            let names = Pipeline::ALL.iter().map(|p| p.name());
            let hint = closest(&name, names.clone())
                .map(|h| format!("did you mean `{h}`?"))
                .or_else(|| Some(format!("one of: {}", names.collect::<Vec<_>>().join(", "))));
            reader.error_at(w, "pipeline", format!("`{name}` is not a pipeline"), hint);
            None
        }
    }
}

/// `live-video-to-video`: `duration` (how long the source streams) + `target_fps` (the output
/// rate to sustain); no `rate`, `concurrency` or `step_duration`.
fn read_live_load(reader: &mut Reader<'_>, w: &Table<'_>) -> Option<AiLoadSpec> {
    for key in ["rate", "concurrency", "step_duration"] {
        if reader.item(w, key).is_some() {
            reader.error_at(
                w,
                key,
                format!(
                    "a `live-video-to-video` workload streams for `duration`, it has no `{key}`"
                ),
                Some("remove it; set `duration` and `target_fps`".into()),
            );
        }
    }
    let duration = reader.duration(w, "duration");
    let target_fps = reader.number(w, "target_fps", 1.0, MAX_TARGET_FPS);
    let duration = reader.require(w, "duration", "\"20s\"", duration);
    let target_fps = reader.require(w, "target_fps", "24", target_fps);
    let duration = duration?;
    if duration.is_zero() {
        reader.error_at(w, "duration", "a live job streams for more than 0s", None);
        return None;
    }
    Some(AiLoadSpec::Live {
        duration,
        target_fps: target_fps?,
    })
}

/// `rate` + `duration`, or `concurrency = [1, 4, 16]` + `step_duration`.
fn read_load(reader: &mut Reader<'_>, w: &Table<'_>) -> Option<AiLoadSpec> {
    if reader.item(w, "target_fps").is_some() {
        reader.error_at(
            w,
            "target_fps",
            "`target_fps` is for `live-video-to-video` workloads only",
            Some("remove it, or set `pipeline = \"live-video-to-video\"`".into()),
        );
    }
    let rate = reader.number(w, "rate", 0.001, MAX_RATE);
    let duration = reader.duration(w, "duration");
    let levels = reader.array(w, "concurrency");
    let step_duration = reader.duration(w, "step_duration");
    match (rate, levels) {
        (Some(_), Some(_)) => {
            reader.error_at(
                w,
                "concurrency",
                "an `ai` workload paces by `rate` or sweeps `concurrency`, not both",
                None,
            );
            None
        }
        (Some(per_second), None) => {
            let duration = reader.require(w, "duration", "\"30s\"", duration)?;
            Some(AiLoadSpec::Rate {
                per_second,
                duration,
            })
        }
        (None, Some(values)) => {
            let mut levels = Vec::new();
            for value in values {
                match value.as_integer().filter(|n| (1..=MAX_LEVEL).contains(n)) {
                    Some(n) => levels.push(n as u32),
                    None => {
                        reader.error_at(
                            w,
                            "concurrency",
                            format!(
                                "each level is an integer in 1..={MAX_LEVEL}, found {}",
                                value.as_integer().map_or_else(
                                    || value.type_name().to_owned(),
                                    |n| n.to_string()
                                )
                            ),
                            None,
                        );
                        return None;
                    }
                }
            }
            if levels.is_empty() {
                reader.error_at(w, "concurrency", "a sweep needs at least one level", None);
                return None;
            }
            let step_duration = reader.require(w, "step_duration", "\"20s\"", step_duration)?;
            Some(AiLoadSpec::Sweep {
                levels,
                step_duration,
            })
        }
        (None, None) => {
            reader.require::<()>(w, "rate", "2.0", None);
            None
        }
    }
}

/// `input = { width = 256, height = 144 }`: the picture image pipelines are given.
fn read_input(reader: &mut Reader<'_>, w: &Table<'_>) -> Option<(u32, u32)> {
    let item = reader.item(w, "input")?;
    let table = reader.as_table(item, &join(w.path(), "input"))?;
    reader.strict(&table, |reader| {
        let width = reader.integer(&table, "width", 8, MAX_INPUT_SIDE);
        let height = reader.integer(&table, "height", 8, MAX_INPUT_SIDE);
        let width = reader.require(&table, "width", "256", width);
        let height = reader.require(&table, "height", "144", height);
        Some((width? as u32, height? as u32))
    })
}

/// A TOML value as JSON: the request fields are the API's JSON fields.
fn to_json(reader: &mut Reader<'_>, w: &Table<'_>, item: &Item) -> Option<serde_json::Value> {
    fn value(v: &Value) -> Result<serde_json::Value, String> {
        Ok(match v {
            Value::String(s) => serde_json::Value::from(s.value().as_str()),
            Value::Integer(i) => serde_json::Value::from(*i.value()),
            Value::Float(f) => serde_json::Number::from_f64(*f.value())
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("{} is not a JSON number", f.value()))?,
            Value::Boolean(b) => serde_json::Value::from(*b.value()),
            Value::Datetime(d) => serde_json::Value::from(d.value().to_string()),
            Value::Array(a) => {
                serde_json::Value::Array(a.iter().map(value).collect::<Result<_, _>>()?)
            }
            Value::InlineTable(t) => serde_json::Value::Object(
                t.iter()
                    .map(|(k, v)| Ok((k.to_owned(), value(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
    let result = match item {
        Item::Value(v @ Value::InlineTable(_)) => value(v),
        Item::Table(t) => t
            .iter()
            .map(|(k, i)| match i.as_value() {
                Some(v) => Ok((k.to_owned(), value(v)?)),
                None => Err(format!("`{k}` must be a value, not a table")),
            })
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(serde_json::Value::Object),
        _ => Err("expected a table of the request's fields".into()),
    };
    match result {
        Ok(json) => Some(json),
        Err(message) => {
            reader.error_at(w, "params", message, None);
            None
        }
    }
}

/// `[ai_worker]`: the local worker's capacity, how it hands out images, and its fault switches.
pub(super) fn read_worker(reader: &mut Reader<'_>, t: &Table<'_>) -> AiWorkerConfig {
    reader.strict(t, |reader| {
        let default = AiWorkerConfig::default();
        let media = match reader.choice(t, "media", &["data", "url"]) {
            Some("url") => MediaMode::Url,
            Some(_) => MediaMode::Data,
            None => default.media,
        };
        let faults = AiFaults {
            delay_ms: reader
                .duration(t, "delay")
                .map_or(default.faults.delay_ms, |d| d.as_millis() as u64),
            wrong_size: reader
                .boolean(t, "wrong_size")
                .unwrap_or(default.faults.wrong_size),
            error_every: reader
                .integer(t, "error_every", 0, i64::from(u32::MAX))
                .map_or(default.faults.error_every, |n| n as u32),
            cold_start_ms: reader
                .duration(t, "cold_start")
                .map_or(default.faults.cold_start_ms, |d| d.as_millis() as u64),
            idle_secs: reader
                .duration(t, "idle")
                .map_or(default.faults.idle_secs, |d| d.as_secs_f64()),
        };
        let live = match reader.item(t, "live") {
            Some(item) => match reader.as_table(item, &join(t.path(), "live")) {
                Some(table) => reader.strict(&table, |reader| LiveConfig {
                    output_fps: reader
                        .integer(&table, "output_fps", 1, 120)
                        .map_or(default.live.output_fps, |n| n as u32),
                    hue_degrees: reader
                        .number(&table, "hue_degrees", -3600.0, 3600.0)
                        .unwrap_or(default.live.hue_degrees),
                    ..default.live.clone()
                }),
                None => default.live.clone(),
            },
            None => default.live.clone(),
        };
        AiWorkerConfig {
            capacity: reader
                .integer(t, "capacity", 1, 1024)
                .map_or(default.capacity, |n| n as u32),
            max_queue: reader
                .integer(t, "max_queue", 0, 100_000)
                .map_or(default.max_queue, |n| n as u32),
            media,
            faults,
            live,
            ..default
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::*;

    #[test]
    fn an_ai_scenario_needs_no_ladder_and_reads_its_load_params_and_worker() {
        let text = r#"[target]
kind = "direct"

[ai_worker]
capacity = 3
media = "url"
error_every = 4
cold_start = "1500ms"

[workloads.sweep]
executor = "ai"
pipeline = "upscale"
model = "lpt/lanczos-x4"
concurrency = [1, 4, 16]
step_duration = "20s"
input = { width = 320, height = 180 }

[workloads.sweep.params]
prompt = "sharper"
seed = 9
"#;
        let scenario = parse(Path::new("ai.toml"), text).unwrap();
        assert!(scenario.ladder.is_empty());
        assert_eq!(scenario.ai_worker.capacity, 3);
        assert_eq!(scenario.ai_worker.media, MediaMode::Url);
        assert_eq!(scenario.ai_worker.faults.error_every, 4);
        assert_eq!(scenario.ai_worker.faults.cold_start_ms, 1500);
        let Executor::Ai(ai) = &scenario.workloads[0].executor else {
            panic!("{:?}", scenario.workloads[0].executor);
        };
        assert_eq!(ai.pipeline, Pipeline::Upscale);
        assert_eq!(ai.gateway, None);
        assert_eq!(ai.input, Some((320, 180)));
        assert_eq!(
            ai.load,
            AiLoadSpec::Sweep {
                levels: vec![1, 4, 16],
                step_duration: Duration::from_secs(20),
            }
        );
        assert_eq!(ai.load.duration(), Duration::from_secs(60));
        assert_eq!(
            ai.params,
            serde_json::json!({ "prompt": "sharper", "seed": 9 })
        );
    }

    #[test]
    fn bad_ai_keys_are_refused_where_written() {
        let text = r#"[target]
kind = "direct"

[workloads.typo]
executor = "ai"
pipeline = "text-to-imag"
model = "m"
rate = 1.0
concurrency = [1]
gateway = "ftp://gateway"

[workloads.both]
executor = "ai"
pipeline = "llm"
model = "m"
concurrency = [1, 0]
step_duration = "5s"
params = { model_id = "x" }
"#;
        let Err(diagnostics) = parse(Path::new("ai.toml"), text) else {
            panic!("accepted:\n{text}");
        };
        let errors: Vec<String> = diagnostics.0.iter().map(ToString::to_string).collect();
        let expected = [
            "ai.toml:6:12: `workloads.typo.pipeline`: `text-to-imag` is not a pipeline",
            "ai.toml:9:15: `workloads.typo.concurrency`: an `ai` workload paces by `rate` or sweeps `concurrency`, not both",
            "ai.toml:10:11: `workloads.typo.gateway`: `ftp://gateway` is not an http(s) URL",
            "ai.toml:16:15: `workloads.both.concurrency`: each level is an integer in 1..=4096, found 0",
        ];
        for (error, want) in errors.iter().zip(expected) {
            assert!(
                error.starts_with(want),
                "{error}\nwanted: {want}\nall: {errors:#?}"
            );
        }
        assert!(
            errors[0].contains("did you mean `text-to-image`?"),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.contains(
                "`workloads.both.params`: `model_id` comes from the workload's `model` key"
            )),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_live_workload_reads_its_duration_target_fps_and_the_worker_s_live_table() {
        let text = r#"[target]
kind = "direct"

[ai_worker.live]
output_fps = 12
hue_degrees = 90.0

[workloads.live]
executor = "ai"
pipeline = "live-video-to-video"
model = "lpt/hue-shift"
duration = "20s"
target_fps = 24
"#;
        let scenario = parse(Path::new("live.toml"), text).unwrap();
        assert_eq!(scenario.ai_worker.live.output_fps, 12);
        assert_eq!(scenario.ai_worker.live.hue_degrees, 90.0);
        let Executor::Ai(ai) = &scenario.workloads[0].executor else {
            panic!("{:?}", scenario.workloads[0].executor);
        };
        assert_eq!(ai.pipeline, Pipeline::LiveVideoToVideo);
        assert_eq!(
            ai.load,
            AiLoadSpec::Live {
                duration: Duration::from_secs(20),
                target_fps: 24.0,
            }
        );
        assert_eq!(
            scenario.workloads[0].executor.max_duration(),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn live_and_batch_keys_are_refused_where_they_do_not_belong() {
        let text = r#"[target]
kind = "direct"

[ai_worker.live]
fps = 12

[workloads.live]
executor = "ai"
pipeline = "live-video-to-video"
model = "lpt/hue-shift"
rate = 1.0
duration = "20s"

[workloads.batch]
executor = "ai"
pipeline = "text-to-image"
model = "m"
rate = 1.0
duration = "5s"
target_fps = 24
"#;
        let Err(diagnostics) = parse(Path::new("live.toml"), text) else {
            panic!("accepted:\n{text}");
        };
        let errors: Vec<String> = diagnostics.0.iter().map(ToString::to_string).collect();
        let expected = [
            "live.toml:5:1: `ai_worker.live.fps`: unknown key `fps`",
            "live.toml:11:8: `workloads.live.rate`: a `live-video-to-video` workload streams for `duration`, it has no `rate`",
            "live.toml:7:1: `workloads.live.target_fps`: missing required key `target_fps`",
            "live.toml:20:14: `workloads.batch.target_fps`: `target_fps` is for `live-video-to-video` workloads only",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "wanted: {want}\nall: {errors:#?}"
            );
        }
    }
}
