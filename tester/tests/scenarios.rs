//! The shipped scenarios, run end to end on the embedded stack as CI runs them: the default smoke
//! test passes with every kind of metric populated, and each fault scenario fails (exit 99) on the
//! threshold written to catch its fault.
//!
//! These runs are real time and CPU-bound (transcoding, scoring) on a small machine, so they take
//! turns: one scenario at a time, whatever the test harness's thread count.

use serde_json::Value;
use testkit::lpt_run::run_scenario;

/// Runs `lpt run SCENARIO` into a fresh directory; returns the exit code, stdout (followed by
/// the nodes' warnings) and summary.
fn run(scenario: &str) -> (i32, String, Value) {
    let run = run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), scenario);
    (run.code, run.output, run.summary)
}

#[test]
fn smoke_passes_with_segments_latency_checks_quality_and_payments_measured() {
    let smoke = run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), "scenarios/smoke.toml");
    let (code, stdout, summary) = (smoke.code, smoke.output.clone(), smoke.summary.clone());
    assert_eq!(code, 0, "{stdout}");
    let metrics = &summary["metrics"];
    for metric in [
        "segment_success",
        "latency",
        "checks",
        "vmaf",
        "vmaf_reference",
        "payment_ev_error",
        "tickets_redeemed",
    ] {
        assert!(
            metrics.get(metric).is_some(),
            "{metric} has no data in the smoke run:\n{stdout}"
        );
    }
    let thresholds = summary["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 9);
    assert!(thresholds.iter().all(|t| t["passed"] == true), "{stdout}");
    // Our broadcaster's master playlist, like go-livepeer's, declares no CODECS: the
    // conformance checker finds it in every stream, and holds the rules the scenario gates.
    let codecs_missing = smoke
        .records("violation")
        .iter()
        .filter(|v| v["rule"] == "HLS-STREAM-INF-CODECS-MISSING")
        .count();
    assert!(codecs_missing >= 2, "one per stream at least:\n{stdout}");
    assert!(
        stdout.contains("✓ hls_violations{rule=HLS-TARGETDURATION-EXCEEDED} count == 0"),
        "{stdout}"
    );
}

#[test]
fn players_watch_every_stream_and_the_run_gates_on_what_viewers_see() {
    let run = run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), "scenarios/players.toml");
    assert_eq!(run.code, 0, "{}", run.output);
    let thresholds = run.summary["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 5);
    assert!(
        thresholds.iter().all(|t| t["passed"] == true),
        "{}",
        run.output
    );
    let records = run.records("player");
    let mut ended: Vec<(String, u64)> = records
        .iter()
        .filter(|r| r["kind"] == "ended")
        .map(|r| {
            (
                r["stream"].as_str().unwrap().to_owned(),
                r["player"].as_u64().unwrap(),
            )
        })
        .collect();
    ended.sort();
    // Two streams, two players each, all played to the end: our broadcaster answers web players
    // of any origin, as go-livepeer's lpms does.
    assert_eq!(ended.len(), 4, "{records:#?}");
    ended.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(ended.len(), 2, "{records:#?}");
    for kind in ["first_frame", "ended"] {
        assert_eq!(
            records.iter().filter(|r| r["kind"] == kind).count(),
            4,
            "{kind}"
        );
    }
    // A latency sample a second from each player's first frame.
    let latencies = records.iter().filter(|r| r["kind"] == "latency").count();
    assert!(latencies >= 4 * 20, "{latencies} latency samples");
    let viewers = &run.summary["breakdowns"]["players"]["by_workload"][0];
    assert_eq!(viewers["players"], 4, "{viewers}");
    assert_eq!(viewers["ok"], 4, "{viewers}");
    let report = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    assert!(report.contains("Viewer QoE"));
}

/// Asserts the fault scenario exits 99 with exactly `selector`'s threshold failing, named in the
/// output.
fn fails_on(scenario: &str, selector: &str) {
    let (code, stdout, summary) = run(scenario);
    assert_eq!(code, 99, "{scenario} should fail its threshold:\n{stdout}");
    let failed: Vec<&Value> = summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert_eq!(failed[0]["metric"], selector, "{stdout}");
    assert!(stdout.contains(&format!("✗ {selector}")), "{stdout}");
}

#[test]
fn fault_drop_fails_segment_success() {
    fails_on("scenarios/faults/drop.toml", "segment_success");
}

#[test]
fn fault_delay_fails_latency() {
    fails_on("scenarios/faults/delay.toml", "latency");
}

#[test]
fn fault_corrupt_fails_the_decode_check() {
    fails_on("scenarios/faults/corrupt.toml", "checks{check=decode}");
}

#[test]
fn fault_degrade_fails_the_vmaf_deficit() {
    fails_on("scenarios/faults/degrade.toml", "vmaf_deficit");
}

#[test]
fn fault_wrong_resolution_fails_the_resolution_check() {
    fails_on(
        "scenarios/faults/wrong-resolution.toml",
        "checks{check=resolution}",
    );
}

#[test]
fn fault_overcharge_fails_the_payment_error() {
    fails_on("scenarios/faults/overcharge.toml", "payment_ev_error");
}

#[test]
fn fault_stop_redeeming_fails_tickets_redeemed() {
    fails_on("scenarios/faults/stop-redeeming.toml", "tickets_redeemed");
}

#[test]
fn fault_crash_fails_on_stalls_or_segment_success() {
    let (code, stdout, summary) = run("scenarios/faults/crash.toml");
    assert_eq!(code, 99, "{stdout}");
    let failed: Vec<String> = summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["passed"] == false)
        .map(|t| t["metric"].as_str().unwrap().to_owned())
        .collect();
    assert!(!failed.is_empty(), "{stdout}");
    assert!(
        failed
            .iter()
            .all(|m| m == "stalls" || m == "segment_success"),
        "{failed:?}"
    );
}

/// Issue 10's leaderboard case: three embedded orchestrators tested directly — one healthy, one
/// priced above the cap, one degrading its encodes — each scored, and each zero explained.
#[test]
fn direct_tests_score_the_healthy_explain_the_overpriced_and_measure_the_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("mixed.toml");
    std::fs::write(
        &scenario,
        r#"
name = "leaderboard-mixed"
[target]
kind = "embedded"
orchestrators = 3
transcoders_per_orchestrator = 0
prices = [1000, 50000, 1000]
[target.faults]
orchestrators = [2]
degrade_quality = true
[source]
kind = "synthetic"
width = 640
height = 360
fps = 30
gop = "2s"
clip = "10s"
[ladder]
profiles = ["P240p30fps16x9"]
[workloads.board]
executor = "direct-orchestrator"
orchestrators = "embedded"
duration = "10s"
region = "LOCAL"
price_cap = 2000
[quality]
enabled = true
sample = 1.0
[thresholds]
"orchestrator_success" = ["rate >= 0.5"]
"#,
    )
    .unwrap();
    let run = run_scenario(
        env!("CARGO_BIN_EXE_lpt").as_ref(),
        scenario.to_str().unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    let out = &run.dir;
    let board: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("leaderboard.json")).unwrap())
            .unwrap();
    testkit::schema::assert_valid(&board, reports::leaderboard::SCHEMA_PATH);
    let records = board["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{board:#}");
    // Anvil's accounts 1, 2 and 3 are orchestrators 0, 1 and 2.
    let record = |address: &str| {
        records
            .iter()
            .find(|r| {
                r["orchestrator"]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case(address)
            })
            .unwrap_or_else(|| panic!("no record for {address}: {board:#}"))
    };
    // The public leaderboard keys orchestrators by lowercase address.
    let healthy_address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let healthy = record(healthy_address);
    let overpriced = record("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");
    let degraded = "0x90f79bf6eb2c4f870365e785982e1f101e93b906";
    assert_eq!(healthy["orchestrator"], healthy_address, "{healthy:#}");

    assert_eq!(healthy["success_rate"], 1.0, "{healthy:#}");
    assert_eq!(healthy["segments_received"], 5, "{healthy:#}");
    let round_trip = healthy["round_trip_time"].as_f64().unwrap();
    assert!(round_trip > 0.0 && round_trip < 2.0, "{healthy:#}");
    let score = board["aggregated"][healthy_address]["LOCAL"]["round_trip_score"]
        .as_f64()
        .unwrap();
    assert!(score > 0.5, "{board:#}");

    assert_eq!(overpriced["success_rate"], 0.0, "{overpriced:#}");
    let errors = overpriced["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{overpriced:#}");
    assert_eq!(errors[0]["error_code"], "price_above_cap");
    assert_eq!(errors[0]["count"], 5);
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("50000") && message.contains("2000"),
        "{message}"
    );

    let quality = &board["extras"][degraded]["LOCAL"]["quality"];
    let deficit = quality["vmaf_deficit"]
        .as_f64()
        .unwrap_or_else(|| panic!("{board:#}"));
    assert!(
        deficit > 20.0,
        "the degraded orchestrator's VMAF deficit is {deficit}: {board:#}"
    );
    let healthy_deficit = board["extras"][healthy_address]["LOCAL"]["quality"]["vmaf_deficit"]
        .as_f64()
        .unwrap();
    assert!(healthy_deficit < 10.0, "{board:#}");
}
