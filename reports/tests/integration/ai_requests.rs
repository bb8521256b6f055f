//! The AI requests section: `ai` records (one per request of the AI probe) aggregated by
//! workload × pipeline × model × who answered and by concurrency, in `summary.json`,
//! `report.html` and `summary.md`, a failing row marked, and only when the run had AI requests.

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::frames::RecordFrames;
use serde_json::Value;

use crate::common::{T0, finished_smoke_run};

/// Request `request` of workload `t2i`, sent `request` seconds into the run and answered well
/// in `latency_ms`: tests change the fields they need.
fn request(request: u64, latency_ms: f64) -> AiRecord {
    AiRecord {
        t_ms: T0 + request as i64 * 1000,
        workload: "t2i".into(),
        pipeline: "text-to-image".into(),
        model: "lpt/seeded-renderer".into(),
        orchestrator: Some("local-ai-worker".into()),
        region: Some("LOCAL".into()),
        request,
        concurrency: 1,
        ok: true,
        reason: None,
        error: None,
        status: Some(200),
        start: if request == 0 { "cold" } else { "warm" }.into(),
        latency_ms,
        upload_ms: Some(1.0),
        inference_ms: Some(latency_ms - 11.0),
        download_ms: Some(10.0),
        outputs: 2,
        width: Some(256),
        height: Some(128),
        output_bytes: 20_000,
        seed: Some(7 + request * 1000),
        params: r#"{"prompt":"a lighthouse","width":256,"height":128}"#.into(),
        response: Some(r#"{"images":2,"width":256,"height":128}"#.into()),
    }
}

/// Five text-to-image requests (the first cold, the last a 500), and three upscale requests at
/// concurrency 2 of which one came back the wrong size.
fn records() -> Vec<Record> {
    let mut records: Vec<Record> = vec![
        request(0, 900.0).into(),
        request(1, 100.0).into(),
        request(2, 200.0).into(),
        request(3, 300.0).into(),
        AiRecord {
            ok: false,
            reason: Some("http_status".into()),
            error: Some("500: injected fault".into()),
            status: Some(500),
            outputs: 0,
            width: None,
            height: None,
            output_bytes: 0,
            seed: None,
            response: None,
            ..request(4, 50.0)
        }
        .into(),
    ];
    for (i, ok) in [true, false, true].into_iter().enumerate() {
        records.push(
            AiRecord {
                workload: "upscale".into(),
                pipeline: "upscale".into(),
                model: "lpt/lanczos-x4".into(),
                concurrency: 2,
                ok,
                reason: (!ok).then(|| "wrong_size".into()),
                error: (!ok).then(|| "image 0 is 256x144, expected 512x288".into()),
                start: "warm".into(),
                ..request(i as u64, 400.0)
            }
            .into(),
        );
    }
    records
}

#[test]
fn requests_are_aggregated_by_model_and_by_concurrency() {
    let a = aggregate(
        &RecordFrames::from_records(&records()).unwrap(),
        AggregateOptions::default(),
    )
    .unwrap();
    let by_model = &a.ai.by_model;
    assert_eq!(
        by_model
            .iter()
            .map(|r| (r.workload.as_str(), r.pipeline.as_str()))
            .collect::<Vec<_>>(),
        [("t2i", "text-to-image"), ("upscale", "upscale")]
    );
    let t2i = &by_model[0];
    assert_eq!((t2i.requests, t2i.ok), (5, 4));
    assert_eq!(t2i.success_rate, Some(0.8));
    assert_eq!(t2i.orchestrator, "local-ai-worker");
    // Good answers only: 900, 100, 200, 300 ms.
    assert_eq!(t2i.latency_ms.count, 4);
    assert_eq!(
        (t2i.latency_ms.min, t2i.latency_ms.max),
        (Some(100.0), Some(900.0))
    );
    assert_eq!(t2i.latency_ms.p50, Some(250.0));
    // Sent from T0 to T0 + 4 s, the last answered 50 ms later: 4 good ÷ 4.05 s.
    assert_eq!(t2i.throughput, Some(4.0 / 4.05));
    assert_eq!((t2i.cold_starts, t2i.cold_latency_ms_max), (1, Some(900.0)));
    assert_eq!(t2i.failures.len(), 1);
    assert_eq!(
        (t2i.failures[0].reason.as_str(), t2i.failures[0].count),
        ("http_status", 1)
    );
    assert_eq!(t2i.first_error.as_deref(), Some("500: injected fault"));
    let upscale = &by_model[1];
    assert_eq!((upscale.requests, upscale.ok), (3, 2));
    assert_eq!(upscale.failures[0].reason, "wrong_size");

    let levels: Vec<(&str, u32, u64, u64)> =
        a.ai.by_concurrency
            .iter()
            .map(|l| (l.workload.as_str(), l.concurrency, l.requests, l.ok))
            .collect();
    assert_eq!(levels, [("t2i", 1, 5, 4), ("upscale", 2, 3, 2)]);
    // Every request at a level, failures included.
    assert_eq!(a.ai.by_concurrency[0].latency_ms.count, 5);

    assert!(
        aggregate(&RecordFrames::empty().unwrap(), AggregateOptions::default())
            .unwrap()
            .ai
            .is_empty()
    );
}

#[test]
fn ai_requests_are_reported_in_every_artifact_only_when_the_run_had_some() {
    let (quiet, _) = finished_smoke_run([]);
    let (dir, _) = finished_smoke_run(records());

    let read = |path: &std::path::Path| -> Value {
        let summary: Value =
            serde_json::from_slice(&std::fs::read(path.join(SUMMARY_FILE)).unwrap()).unwrap();
        testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
        summary
    };
    let summary = read(dir.path());
    let t2i = &summary["breakdowns"]["ai"]["by_model"][0];
    assert_eq!(t2i["requests"], 5);
    assert_eq!(t2i["success_rate"], 0.8);
    assert_eq!(
        t2i["failures"],
        serde_json::json!([{ "reason": "http_status", "count": 1 }])
    );
    let empty = read(quiet.path());
    assert_eq!(
        empty["breakdowns"]["ai"],
        serde_json::json!({ "by_model": [], "by_concurrency": [] })
    );

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let section = html
        .split_once("<h2 id=\"ai-requests\">AI requests</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .expect("an AI requests section");
    assert!(
        section.contains("<td class=\"l\">text-to-image</td>"),
        "{section}"
    );
    assert!(
        section.contains("<span class=\"no\">http_status × 1 (first: 500: injected fault)</span>"),
        "{section}"
    );
    assert!(section.contains("<h3>By concurrency</h3>"), "{section}");
    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    assert!(!quiet_html.contains("AI requests"));

    // The warm text-to-image record: 3 of 4 good (0.1, 0.2, 0.3 s). Public score over its warm
    // and cold records (success 0.875, round trip 0.55 s against the cold record's 0.9 s median):
    // 0.65 · 0.875 + 0.35 · e^(ln 0.8 · 0.55 / 0.9) = 0.874. Ours: 4 of 5 good times
    // e^(ln 0.8 · 0.3 / 0.9) for the warm p95 of 0.3 s = 0.743.
    let board = html
        .split_once("<h2 id=\"ai-leaderboard\">AI leaderboard records</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .expect("an AI leaderboard section");
    assert!(
        board.contains(
            "<td class=\"l\">text-to-image</td><td class=\"l\">lpt/seeded-renderer</td>\
             <td class=\"l\">local-ai-worker</td><td class=\"l\">LOCAL</td><td class=\"l\">warm</td>\
             <td>75.00 %</td><td>0.200</td><td>0.874</td><td>0.300</td><td>0.743</td>"
        ),
        "{board}"
    );
    assert!(!quiet_html.contains("AI leaderboard records"));

    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(markdown.contains("## AI requests"), "{markdown}");
    assert!(
        markdown.contains(
            "| upscale | upscale | lpt/lanczos-x4 | local-ai-worker | 3 | **66.67 %** | 0.833 |"
        ),
        "{markdown}"
    );
}
