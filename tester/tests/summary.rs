//! summary.json with every metric type populated still matches its checked-in schema.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tester::exit_code::ExitCode;
use tester::metrics::{Registry, tags};
use tester::scenario;
use tester::summary::Summary;

#[test]
fn populated_summary_matches_the_schema_and_keeps_observed_values() {
    let scenario = scenario::parse(
        Path::new("populated.toml"),
        r#"[target]
kind = "embedded"
[ladder]
profiles = ["P240p30fps16x9"]
[workloads.main]
executor = "constant-streams"
streams = 1
duration = "1s"
[thresholds]
"latency{rendition=P240p30fps16x9}" = ["p(95) < 4s", { threshold = "max < 1s", abort_on_fail = true }]
"segment_success" = ["rate >= 0.9"]
"tickets_sent" = ["count > 0"]
"payment_ev_error" = ["value < 0.1"]
"vmaf_deficit" = ["mean < 5"]
"#,
    )
    .unwrap();
    let registry = Registry::new();
    let p240 = tags([("rendition", "P240p30fps16x9"), ("stream", "s1")]);
    for ms in [900, 1200, 3100] {
        registry.add_duration("latency", &p240, Duration::from_millis(ms));
    }
    registry.add_bool("segment_success", &p240, true);
    registry.add("tickets_sent", &Default::default(), 12.0);
    registry.add("payment_ev_error", &Default::default(), 0.03);
    registry.add("vmaf_deficit", &p240, -2.5);

    let verdicts: Vec<_> = scenario
        .thresholds
        .iter()
        .map(|t| t.evaluate(&registry))
        .collect();
    let summary = Summary::new(
        (&scenario).into(),
        SystemTime::now(),
        SystemTime::now(),
        ExitCode::ThresholdsFailed,
        "1 of 6 thresholds failed".into(),
        vec![],
        &registry,
        verdicts,
    );
    let json: Value = serde_json::to_value(&summary).unwrap();

    testkit::schema::assert_valid(&json, observation::summary::SCHEMA_PATH);

    assert_eq!(json["metrics"]["latency"]["unit"], "ms");
    assert_eq!(json["metrics"]["latency"]["values"]["max"], 3100.0);
    assert_eq!(
        json["metrics"]["latency"]["series"][0]["tags"]["rendition"],
        "P240p30fps16x9"
    );
    assert_eq!(json["metrics"]["segment_success"]["values"]["rate"], 1.0);
    assert_eq!(json["metrics"]["vmaf_deficit"]["values"]["min"], -2.5);
    let thresholds = json["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 6);
    let max_latency = &thresholds[1];
    assert_eq!(max_latency["expression"], "max < 1s");
    assert_eq!(max_latency["observed"], 3100.0);
    assert_eq!(max_latency["passed"], false);
    assert_eq!(max_latency["abort_on_fail"], true);
    assert_eq!(max_latency["reason"], "observed 3.1s is not < 1s");
    assert!(thresholds.iter().filter(|t| t["passed"] == true).count() == 5);
}
