//! The AI live video-to-video section: `ai_live` records (one per live job of the AI probe)
//! aggregated by workload × pipeline × model × who answered, in `report.html` and `summary.md`,
//! a failing row marked, and only when the run had live jobs.

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::frames::RecordFrames;
use serde_json::Value;

use crate::common::{T0, finished_smoke_run};

/// The failed job's error.
const LOW_FPS: &str = "output at 12.0 fps, below the 24 fps target";

/// Job `job` of workload `live`, started `job` minutes into the run, good, with a first frame
/// after `ttff_ms`, `fps` sustained and a p95 frame latency of `p95_ms`: tests change the fields
/// they need.
fn job(job: i64, ttff_ms: f64, fps: f64, p95_ms: f64) -> AiLiveRecord {
    AiLiveRecord {
        t_ms: T0 + job * 60_000,
        workload: "live".into(),
        pipeline: "live-video-to-video".into(),
        model: "lpt/hue-shift".into(),
        orchestrator: Some("local-ai-worker".into()),
        region: Some("LOCAL".into()),
        ok: true,
        reason: None,
        error: None,
        time_to_first_frame_ms: Some(ttff_ms),
        output_fps: Some(fps),
        target_fps: 24.0,
        frames_sent: 720,
        frames_received: (fps * 30.0) as u64,
        unreadable_stamps: 0,
        latency_p50_ms: Some(p95_ms / 2.0),
        latency_p95_ms: Some(p95_ms),
        latency_max_ms: Some(p95_ms * 1.5),
        stalls: 0,
        stall_time_ms: 0.0,
        segments_in: 15,
        segments_out: 15,
    }
}

/// Two good jobs (the second a little under 24 fps, with one stall) and one that fell to 12 fps.
fn records() -> Vec<Record> {
    vec![
        job(0, 800.0, 24.0, 250.0).into(),
        AiLiveRecord {
            stalls: 1,
            stall_time_ms: 400.0,
            unreadable_stamps: 2,
            ..job(1, 1200.0, 23.5, 300.0)
        }
        .into(),
        AiLiveRecord {
            ok: false,
            reason: Some("low_fps".into()),
            error: Some(LOW_FPS.into()),
            stalls: 3,
            stall_time_ms: 2100.0,
            unreadable_stamps: 1,
            ..job(2, 1500.0, 12.0, 900.0)
        }
        .into(),
    ]
}

// Worked by hand over the three jobs:
// - jobs 3, good 2: success rate 2/3 (66.67 %);
// - TTFF over 800, 1200, 1500 ms: min 800, median 1200, max 1500 (1.200 s and 1.500 s);
// - lowest fps 12 (the failed job's), against the 24 fps target;
// - worst p95 frame latency 900 ms (0.900 s), from 250, 300 and 900;
// - stalls 0 + 1 + 3 = 4, stall time 0 + 400 + 2100 = 2500 ms (2.500 s);
// - unreadable stamps 0 + 2 + 1 = 3;
// - failures: low_fps × 1, first error the failed job's.

#[test]
fn live_jobs_are_aggregated_by_model() {
    let a = aggregate(
        &RecordFrames::from_records(&records()).unwrap(),
        AggregateOptions::default(),
    )
    .unwrap();
    assert!(a.ai.by_model.is_empty());
    assert!(!a.ai.is_empty());
    let [live] = a.ai.live.as_slice() else {
        panic!("one live row: {:#?}", a.ai.live);
    };
    assert_eq!(
        (
            live.workload.as_str(),
            live.pipeline.as_str(),
            live.model.as_str(),
            live.orchestrator.as_str()
        ),
        (
            "live",
            "live-video-to-video",
            "lpt/hue-shift",
            "local-ai-worker"
        )
    );
    assert_eq!((live.jobs, live.ok), (3, 2));
    assert_eq!(live.success_rate, Some(2.0 / 3.0));
    let ttff = &live.time_to_first_frame_ms;
    assert_eq!(
        (ttff.count, ttff.min, ttff.p50, ttff.max),
        (3, Some(800.0), Some(1200.0), Some(1500.0))
    );
    assert_eq!(live.output_fps_min, Some(12.0));
    assert_eq!(live.target_fps, Some(24.0));
    assert_eq!(live.latency_p95_ms_max, Some(900.0));
    assert_eq!((live.stalls, live.stall_time_ms), (4, 2500.0));
    assert_eq!(live.unreadable_stamps, 3);
    assert_eq!(
        live.failures
            .iter()
            .map(|f| (f.reason.as_str(), f.count))
            .collect::<Vec<_>>(),
        [("low_fps", 1)]
    );
    assert_eq!(live.first_error.as_deref(), Some(LOW_FPS));

    assert!(
        aggregate(&RecordFrames::empty().unwrap(), AggregateOptions::default())
            .unwrap()
            .ai
            .live
            .is_empty()
    );
}

#[test]
fn live_jobs_are_reported_only_when_the_run_had_some() {
    let (quiet, _) = finished_smoke_run([]);
    let (dir, _) = finished_smoke_run(records());

    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(SUMMARY_FILE)).unwrap()).unwrap();
    testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
    let live = &summary["breakdowns"]["ai"]["live"][0];
    assert_eq!(live["jobs"], 3, "{live}");
    assert_eq!(live["ok"], 2, "{live}");
    assert_eq!(live["output_fps_min"], 12.0, "{live}");
    assert_eq!(live["latency_p95_ms_max"], 900.0, "{live}");
    assert_eq!(live["stall_time_ms"], 2500.0, "{live}");
    assert_eq!(
        live["failures"],
        serde_json::json!([{ "reason": "low_fps", "count": 1 }])
    );
    let quiet_summary: Value =
        serde_json::from_slice(&std::fs::read(quiet.path().join(SUMMARY_FILE)).unwrap()).unwrap();
    assert_eq!(quiet_summary["breakdowns"]["ai"].get("live"), None);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let section = html
        .split_once("<h2 id=\"ai-live\">AI live video-to-video</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .expect("an AI live section");
    assert!(
        section.contains(
            "<tr class=\"bad\"><td class=\"l\">live</td><td class=\"l\">live-video-to-video</td>\
             <td class=\"l\">lpt/hue-shift</td><td class=\"l\">local-ai-worker</td><td>3</td>\
             <td><span class=\"no\">66.67 %</span></td><td>1.200</td><td>1.500</td>\
             <td>12</td><td>24</td><td>0.900</td><td>4</td>\
             <td>2.500</td><td>3</td>"
        ),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "<span class=\"no\">low_fps × 1 (first: {LOW_FPS})</span>"
        )),
        "{section}"
    );
    // A run with live jobs only has no AI requests to show.
    assert!(!html.contains("AI requests"));
    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    assert!(!quiet_html.contains("AI live video-to-video"));

    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(markdown.contains("## AI live video-to-video"), "{markdown}");
    assert!(!markdown.contains("## AI requests"), "{markdown}");
    assert!(
        markdown.contains(&format!(
            "| live | live-video-to-video | lpt/hue-shift | local-ai-worker | 3 | **66.67 %** | \
             1.200 | 1.500 | 12 | 24 | 0.900 | 4 | 2.500 | 3 | **low_fps × 1 (first: {LOW_FPS})** |"
        )),
        "{markdown}"
    );
    let quiet_markdown = std::fs::read_to_string(quiet.path().join("summary.md")).unwrap();
    assert!(!quiet_markdown.contains("AI live video-to-video"));
}
