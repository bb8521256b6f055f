//! The shipped chaos scenarios (`scenarios/chaos/*.toml`), run end to end on the embedded stack:
//! each event is carried out, moves the figure it is about, and the operator's thresholds pass
//! because the nodes recover as go-livepeer's do.

use serde_json::Value;
use testkit::lpt_run::{LptRun, run_scenario};

fn run(scenario: &str) -> LptRun {
    run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), scenario)
}

/// The run's chaos records, each asserted carried out, in time order.
fn events(run: &LptRun, labels: &[&str]) -> Vec<Value> {
    let mut events = run.records("chaos");
    events.sort_by_key(|e| e["t_ms"].as_i64());
    let found: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(found, labels, "{}", run.output);
    for event in &events {
        assert_eq!(event["ok"], true, "{event:#}\n{}", run.output);
    }
    events
}

/// Tickets in an orchestrator's journal: it was paid for work.
fn tickets_received(run: &LptRun, orchestrator: u32) -> usize {
    let path = run
        .dir
        .join(format!("stack/orchestrator-{orchestrator}.tickets.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

/// The recovery records of streams (those with a `stream`).
fn stream_recoveries(run: &LptRun) -> Vec<Value> {
    run.records("recovery")
        .into_iter()
        .filter(|r| r.get("stream").is_some())
        .collect()
}

fn passed(run: &LptRun) {
    assert_eq!(run.code, 0, "{}", run.output);
    let thresholds = run.summary["thresholds"].as_array().unwrap();
    assert!(
        thresholds.iter().all(|t| t["passed"] == true),
        "{}",
        run.output
    );
}

#[test]
fn killed_orchestrators_cost_each_stream_under_one_segment_and_no_video() {
    let run = run("scenarios/chaos/kill-orchestrator.toml");
    let [restart, kill] = <[Value; 2]>::try_from(events(
        &run,
        &["restart:orchestrator-0@20s", "kill:orchestrator-1@36s"],
    ))
    .unwrap();
    assert!(kill.get("end_ms").is_none(), "a kill lasts: {kill:#}");
    let down = restart["end_ms"].as_i64().unwrap() - restart["t_ms"].as_i64().unwrap();
    assert!((8000..20_000).contains(&down), "{restart:#}");
    // Whichever orchestrator had the streams first, orchestrator-1 had them when it was killed
    // (after 20 s they were on it, or moved to it), and the restarted orchestrator-0 took them.
    assert!(tickets_received(&run, 1) > 0, "{}", run.output);
    assert!(tickets_received(&run, 0) > 0, "{}", run.output);
    let streams = stream_recoveries(&run);
    assert_eq!(streams.len(), 4, "two events × two streams: {streams:#?}");
    for stream in &streams {
        let failover = stream["failover_time_ms"].as_f64().unwrap();
        assert!((0.0..3000.0).contains(&failover), "{stream:#}");
        assert_eq!(stream["segments_lost"], 0, "{stream:#}");
        assert_eq!(stream["recovered"], true, "{stream:#}");
    }
    passed(&run);
}
