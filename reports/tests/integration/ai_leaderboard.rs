//! AI records of `leaderboard.json` (`reports::leaderboard::ai`), built from hand-made `ai`
//! records through `RecordFrames::from_records`: one record per (orchestrator, region, pipeline,
//! model, warm or cold) in leaderboard-serverless's `models.Stats` form, the public AI score as
//! its `score/stats_scorer.go` computes it, and ours; the file stays valid under its schema.

use observation::record::{AiRecord, Record};
use reports::frames::RecordFrames;
use reports::leaderboard::ai::{self, AiLeaderboardRecord, UNKNOWN_ORCHESTRATOR};
use reports::leaderboard::{Leaderboard, LeaderboardError, with_ai};
use serde_json::{Value, json};

const T2I: &str = "text-to-image";
const SDXL: &str = "ByteDance/SDXL-Lightning";
const LLM: &str = "llm";
const LLAMA: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct";
/// EIP-55 spelling; records carry it in lowercase.
const A: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const B: &str = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
const T0: i64 = 1_795_309_323_000;
const TIMESTAMP: i64 = 1_795_309_400;

struct Req {
    orch: Option<&'static str>,
    region: Option<&'static str>,
    pipeline: &'static str,
    model: &'static str,
    cold: bool,
    latency_ms: f64,
    /// `None`: ok; else (reason, error message).
    failed: Option<(Option<&'static str>, Option<&'static str>)>,
}

fn req(orch: Option<&'static str>, cold: bool, latency_ms: f64) -> Req {
    Req {
        orch,
        region: Some("FRA"),
        pipeline: T2I,
        model: SDXL,
        cold,
        latency_ms,
        failed: None,
    }
}

fn records(reqs: Vec<Req>) -> Vec<Record> {
    reqs.into_iter()
        .enumerate()
        .map(|(n, r)| {
            let ok = r.failed.is_none();
            let (reason, error) = r.failed.unwrap_or((None, None));
            AiRecord {
                t_ms: T0 + n as i64 * 1000,
                workload: "ai".into(),
                pipeline: r.pipeline.into(),
                model: r.model.into(),
                orchestrator: r.orch.map(String::from),
                region: r.region.map(String::from),
                request: n as u64,
                concurrency: 1,
                ok,
                reason: reason.map(String::from),
                error: error.map(String::from),
                status: Some(if ok { 200 } else { 503 }),
                start: if r.cold { "cold" } else { "warm" }.into(),
                latency_ms: r.latency_ms,
                upload_ms: Some(10.0),
                inference_ms: Some(r.latency_ms - 20.0),
                download_ms: Some(10.0),
                outputs: u32::from(ok),
                width: ok.then_some(512),
                height: ok.then_some(512),
                output_bytes: if ok { 300_000 } else { 0 },
                seed: ok.then_some(n as u64),
                params: format!(r#"{{"model_id":"{}","prompt":"a bear","n":{n}}}"#, r.model),
                response: ok.then(|| format!(r#"{{"images":1,"n":{n}}}"#)),
            }
            .into()
        })
        .collect()
}

/// The run: A in FRA (a cold start, then 4 warm requests, one refused), B in FRA (2 warm), a
/// gateway-served probe without orchestrator or region (3 failures), and B on a second model.
fn run() -> Vec<Record> {
    let failed = |mut r: Req, reason, error| {
        r.failed = Some((reason, error));
        r
    };
    let unknown = |latency_ms| Req {
        region: None,
        ..req(None, false, latency_ms)
    };
    records(vec![
        req(Some(A), true, 4000.0),
        req(Some(A), false, 1000.0),
        req(Some(B), false, 800.0),
        failed(
            unknown(3000.0),
            Some("wrong_size"),
            Some("got 256x256, asked 512x512"),
        ),
        req(Some(A), false, 1500.0),
        failed(
            req(Some(A), false, 500.0),
            Some("http_status"),
            Some("503 Service Unavailable"),
        ),
        failed(unknown(1000.0), None, None),
        req(Some(B), false, 1200.0),
        req(Some(A), false, 2000.0),
        failed(unknown(2000.0), Some("wrong_size"), Some("got 128x128")),
        Req {
            pipeline: LLM,
            model: LLAMA,
            ..req(Some(B), false, 300.0)
        },
    ])
}

fn board(records: &[Record]) -> Leaderboard {
    let frames = RecordFrames::from_records(records).unwrap();
    with_ai(None, &frames.ai, TIMESTAMP, None)
        .unwrap()
        .expect("a leaderboard with AI records")
}

fn find<'a>(
    b: &'a Leaderboard,
    orch: &str,
    region: &str,
    model: &str,
    warm: bool,
) -> &'a AiLeaderboardRecord {
    b.ai_records
        .iter()
        .find(|r| {
            r.orchestrator == orch
                && r.region == region
                && r.model == model
                && r.model_is_warm == warm
        })
        .unwrap_or_else(|| {
            panic!(
                "no {orch} {region} {model} warm={warm}: {:#?}",
                b.ai_records
            )
        })
}

fn k(median: f64) -> f64 {
    -(0.8f64.ln()) / median
}

#[test]
fn one_record_per_node_model_and_state_with_success_round_trip_and_errors() {
    let b = board(&run());
    assert_eq!(b.ai_records.len(), 5, "{:#?}", b.ai_records);
    assert!(b.records.is_empty() && b.aggregated.is_empty());
    let a = A.to_ascii_lowercase();

    let cold = find(&b, &a, "FRA", SDXL, false);
    assert_eq!(
        cold,
        &AiLeaderboardRecord {
            region: "FRA".into(),
            orchestrator: a.clone(),
            success_rate: 1.0,
            round_trip_time: 4.0,
            errors: vec![],
            timestamp: TIMESTAMP,
            model: SDXL.into(),
            model_is_warm: false,
            pipeline: T2I.into(),
            input_parameters: format!(r#"{{"model_id":"{SDXL}","prompt":"a bear","n":0}}"#),
            response_payload: r#"{"images":1,"n":0}"#.into(),
        }
    );
    let warm = find(&b, &a, "FRA", SDXL, true);
    assert_eq!(warm.success_rate, 0.75, "3 of 4 warm requests");
    assert_eq!(
        warm.round_trip_time, 1.5,
        "mean of the successful 1, 1.5, 2 s"
    );
    assert_eq!(
        warm.errors,
        vec![LeaderboardError {
            error_code: "http_status".into(),
            message: "503 Service Unavailable".into(),
            count: 1
        }]
    );
    assert!(warm.input_parameters.ends_with(r#""n":1}"#), "{warm:?}");
    assert_eq!(warm.response_payload, r#"{"images":1,"n":1}"#);

    let b_warm = find(&b, B, "FRA", SDXL, true);
    assert_eq!((b_warm.success_rate, b_warm.round_trip_time), (1.0, 1.0));

    // No orchestrator, no region: placeholders; nothing succeeded, so the round trip is the mean
    // of all (as the public AI tester writes a failed request's), no response payload.
    let lost = find(&b, UNKNOWN_ORCHESTRATOR, "unknown", SDXL, true);
    assert_eq!((lost.success_rate, lost.round_trip_time), (0.0, 2.0));
    assert_eq!(
        lost.errors,
        vec![
            LeaderboardError {
                error_code: "unknown".into(),
                message: "unknown".into(),
                count: 1
            },
            LeaderboardError {
                error_code: "wrong_size".into(),
                message: "got 256x256, asked 512x512".into(),
                count: 2
            },
        ],
        "by reason, the first message, sorted"
    );
    assert_eq!(lost.response_payload, "");

    let llm = find(&b, B, "FRA", LLAMA, true);
    assert_eq!((llm.pipeline.as_str(), llm.round_trip_time), (LLM, 0.3));
}

#[test]
fn records_are_written_in_go_json_form_with_omitempty() {
    let b = board(&run());
    let a = A.to_ascii_lowercase();
    let keys = |r: &AiLeaderboardRecord| -> Vec<String> {
        match serde_json::to_value(r).unwrap() {
            Value::Object(o) => o.keys().cloned().collect(),
            v => panic!("{v}"),
        }
    };
    // serde_json sorts keys: compare as sets.
    let mut cold = keys(find(&b, &a, "FRA", SDXL, false));
    cold.sort();
    assert_eq!(
        cold,
        [
            "errors",
            "input_parameters",
            "model",
            "orchestrator",
            "pipeline",
            "region",
            "response_payload",
            "round_trip_time",
            "success_rate",
            "timestamp"
        ],
        "model_is_warm false is omitted, no transcoding field"
    );
    let lost = serde_json::to_value(find(&b, UNKNOWN_ORCHESTRATOR, "unknown", SDXL, true)).unwrap();
    assert_eq!(lost["model_is_warm"], json!(true));
    assert!(lost.get("response_payload").is_none(), "{lost}");
    // Field order is the Go struct's, as the body is signed byte for byte.
    let text = serde_json::to_string(find(&b, &a, "FRA", SDXL, true)).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    let order = [
        "region",
        "orchestrator",
        "success_rate",
        "round_trip_time",
        "errors",
        "timestamp",
        "model",
        "model_is_warm",
        "pipeline",
        "input_parameters",
        "response_payload",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    // Each record reads back as what it was.
    for r in &b.ai_records {
        let back: AiLeaderboardRecord =
            serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap();
        assert_eq!(&back, r);
    }
}

#[test]
fn public_scores_are_the_servers_per_pipeline_and_model_with_the_median_of_perfect_records() {
    let b = board(&run());
    let a = A.to_ascii_lowercase();
    // Records with success 1: A cold 4 s, B 1 s → PERCENTILE_CONT(0.5) = 2.5 s. The LLM's own.
    assert_eq!(b.ai_median_round_trip_time[T2I][SDXL], 2.5);
    assert_eq!(b.ai_median_round_trip_time[LLM][LLAMA], 0.3);
    let t2i = &b.ai_aggregated[T2I][SDXL];
    assert_eq!(t2i.len(), 3, "{t2i:#?}");

    // A: warm and cold averaged as the server does (it does not group by model state).
    let got = &t2i[&a]["FRA"];
    let rts = (-k(2.5) * 2.75).exp();
    assert_eq!(got.success_rate, 0.875);
    assert_eq!(got.round_trip_score, rts);
    assert_eq!(got.score, 0.65 * 0.875 + 0.35 * rts);

    let got = &t2i[B]["FRA"];
    let rts = (-k(2.5) * 1.0).exp();
    assert_eq!((got.success_rate, got.round_trip_score), (1.0, rts));
    assert_eq!(got.score, 0.65 + 0.35 * rts);

    let got = &t2i[UNKNOWN_ORCHESTRATOR]["unknown"];
    assert_eq!(got.round_trip_score, (-k(2.5) * 2.0).exp());
    assert_eq!(got.score, 0.0, "success 0 scores 0 whatever the round trip");

    // The median round trip scores 0.8.
    let llm = &b.ai_aggregated[LLM][LLAMA][B]["FRA"];
    assert!((llm.round_trip_score - 0.8).abs() < 1e-15, "{llm:?}");

    // The same through the public functions.
    assert_eq!(ai::score_of(0.875, 2.75, 2.5), t2i[&a]["FRA"]);
    assert_eq!(
        ai::median_round_trip_time(&b.ai_records),
        Some(1.0),
        "over every pipeline and model at once: 0.3, 1 and 4 s"
    );
}

#[test]
fn without_a_median_the_round_trip_scores_zero_as_an_infinite_k_gives() {
    let s = ai::score_of(1.0, 2.0, 0.0);
    assert_eq!((s.round_trip_score, s.score), (0.0, 0.65));
    let s = ai::score_of(1.0, 0.0, 0.0);
    assert_eq!(s.round_trip_score, 0.0, "NaN in Go; 0 here");
    // Only failures: no record with success 1, no median.
    let frames = RecordFrames::from_records(&records(vec![Req {
        failed: Some((Some("http_status"), Some("500"))),
        region: None,
        ..req(Some(B), false, 900.0)
    }]))
    .unwrap();
    let b = with_ai(None, &frames.ai, TIMESTAMP, Some("MDW"))
        .unwrap()
        .unwrap();
    assert!(b.ai_median_round_trip_time.is_empty());
    assert_eq!(b.ai_records[0].region, "MDW", "the default region");
    let s = &b.ai_aggregated[T2I][SDXL][B]["MDW"];
    assert_eq!((s.round_trip_score, s.score), (0.0, 0.0));
    testkit::schema::assert_valid(
        &serde_json::to_value(&b).unwrap(),
        reports::leaderboard::SCHEMA_PATH,
    );
}

#[test]
fn our_score_is_success_times_the_decay_of_the_warm_p95() {
    let b = board(&run());
    let a = A.to_ascii_lowercase();
    let ours = &b.ai_ours[T2I][SDXL][&a]["FRA"];
    assert_eq!((ours.requests, ours.cold_requests), (5, 1));
    assert_eq!(ours.success_rate, 0.8);
    assert_eq!(
        ours.p95_latency_s,
        Some(2.0),
        "nearest rank of 1, 1.5, 2 (cold 4 s left out)"
    );
    assert_eq!(ours.latency_score, (-k(2.5) * 2.0).exp());
    assert_eq!(ours.score, 0.8 * ours.latency_score);
    let ours = &b.ai_ours[T2I][SDXL][B]["FRA"];
    assert_eq!(ours.p95_latency_s, Some(1.2));
    let lost = &b.ai_ours[T2I][SDXL][UNKNOWN_ORCHESTRATOR]["unknown"];
    assert_eq!(
        (lost.p95_latency_s, lost.latency_score, lost.score),
        (None, 0.0, 0.0)
    );
    // A node whose only successes were cold starts is judged on them.
    let frames = RecordFrames::from_records(&records(vec![
        req(Some(B), true, 900.0),
        req(Some(A), false, 600.0),
    ]))
    .unwrap();
    let only_cold = with_ai(None, &frames.ai, TIMESTAMP, None).unwrap().unwrap();
    assert_eq!(
        only_cold.ai_ours[T2I][SDXL][B]["FRA"].p95_latency_s,
        Some(0.9)
    );
}

#[test]
fn the_file_is_valid_and_a_run_without_ai_requests_is_unchanged() {
    let b = board(&run());
    let value = serde_json::to_value(&b).unwrap();
    testkit::schema::assert_valid(&value, reports::leaderboard::SCHEMA_PATH);
    let back: Leaderboard = serde_json::from_value(value).unwrap();
    assert_eq!(back, b);

    let empty = RecordFrames::from_records(&[]).unwrap();
    assert_eq!(with_ai(None, &empty.ai, TIMESTAMP, None).unwrap(), None);
    let mut transcoding = Leaderboard::default();
    transcoding
        .aggregated
        .insert("x".into(), Default::default());
    let same = with_ai(Some(transcoding.clone()), &empty.ai, TIMESTAMP, None)
        .unwrap()
        .unwrap();
    assert_eq!(same, transcoding);
    let text = serde_json::to_value(&same).unwrap();
    let mut keys: Vec<&String> = text.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["aggregated", "extras", "records"],
        "no AI field is written when there is none"
    );
}
