//! `lpt run` against an external stack: nginx with its RTMP module packaging HLS, a real
//! third-party peer, started here on loopback ports of its own. Exercises the exit codes a real
//! run produces: 99 (a threshold failed), 105 (interrupted), 108 (aborted by a threshold).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::nginx::{FfmpegHls, Nginx, NginxOptions};
use testkit::ports::wait_until;

/// nginx keeping 12 s of HLS in each playlist.
fn nginx() -> Nginx {
    Nginx::start_with(&NginxOptions {
        playlist_window: Duration::from_secs(12),
    })
}

fn scenario(nginx: &Nginx, duration: &str, thresholds: &str) -> PathBuf {
    let workload = format!(
        r#"executor = "constant-streams"
streams = 1
duration = "{duration}""#
    );
    scenario_with(nginx, &workload, thresholds)
}

/// A scenario against `nginx` whose one workload, `one`, is `workload`.
fn scenario_with(nginx: &Nginx, workload: &str, thresholds: &str) -> PathBuf {
    let path = nginx.dir.path().join("scenario.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "nginx"
{target}
[source]
width = 640
height = 360
clip = "6s"

[ladder]
profiles = ["P360p30fps16x9"]

[workloads.one]
{workload}

[thresholds]
{thresholds}
"#,
            target = testkit::scenario::nginx_target(nginx),
        ),
    )
    .unwrap();
    path
}

/// Runs `lpt run SCENARIO --out RUN_DIR` to the end, asserts it exited with `code`, and returns
/// its standard output.
fn run_expecting(scenario: &Path, run_dir: &Path, code: i32) -> String {
    let output = lpt()
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(run_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A ten-minute `lpt run` against `nginx`, started quietly in the background: the child and
/// its run directory.
fn start_long_run(nginx: &Nginx) -> (Child, PathBuf) {
    let scenario = scenario(nginx, "10m", r#""segment_success" = ["rate >= 0.9"]"#);
    let run_dir = nginx.dir.path().join("run");
    let child = lpt()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, run_dir)
}

fn lpt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lpt"));
    command.env_remove("NO_COLOR").env("LPT_LOG", "warn");
    command
}

fn summary(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap()
}

/// The records of type `kind` in a run's journal.
fn journal_records(run_dir: &Path, kind: &str) -> Vec<Value> {
    let journal = std::fs::read_to_string(run_dir.join("records.jsonl")).unwrap();
    journal
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["type"] == kind)
        .collect()
}

fn verdict<'a>(summary: &'a Value, metric: &str) -> &'a Value {
    summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == metric)
        .unwrap_or_else(|| panic!("no threshold on {metric}: {summary}"))
}

#[test]
fn a_run_through_nginx_measures_everything_and_fails_only_the_impossible_threshold() {
    let nginx = nginx();
    let scenario = scenario(
        &nginx,
        "12s",
        r#""segment_success" = ["rate >= 0.9"]
"checks{check=stamps}" = ["rate >= 0.9"]
"latency" = ["p(95) < 20s", "max < 1ms"]
"#,
    );
    let run_dir = nginx.dir.path().join("run");
    let stdout = run_expecting(&scenario, &run_dir, 99);

    let summary = summary(&run_dir);
    assert_eq!(summary["outcome"]["status"], "thresholds_failed");
    assert_eq!(summary["outcome"]["message"], "1 of 4 thresholds failed");
    let segments = summary["metrics"]["segment_success"]["values"]["count"]
        .as_f64()
        .unwrap();
    assert!(
        segments >= 4.0,
        "a 12 s stream in 2 s segments: {segments} segments"
    );
    let latency = &summary["metrics"]["latency"]["values"];
    let p50 = latency["p(50)"].as_f64().unwrap();
    // A frame waits for the rest of its 2 s segment to be cut (1 s at the median), then up to a
    // playlist poll: a median under half a segment means stamps are misread, one over three
    // segments that the puller lags the live edge.
    assert!(
        (500.0..=6_000.0).contains(&p50),
        "glass-to-glass p50 {p50} ms, expected 0.5 to 6 s behind 2 s segments"
    );
    assert_eq!(verdict(&summary, "segment_success")["passed"], true);
    assert_eq!(verdict(&summary, "checks{check=stamps}")["passed"], true);
    let thresholds = summary["thresholds"].as_array().unwrap();
    let impossible = thresholds
        .iter()
        .find(|t| t["expression"] == "max < 1ms")
        .unwrap();
    assert_eq!(impossible["passed"], false);
    assert!(impossible["observed"].as_f64().unwrap() > 1.0);
    assert!(stdout.contains("✗ latency max < 1ms"), "{stdout}");
    let publish_checks = summary["metrics"]["checks"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tags"]["check"] == "publish")
        .count();
    assert_eq!(publish_checks, 1, "one publisher, one publish check series");

    // Every segment observation is in the journal, and the reports were rendered from it.
    let segment_records = journal_records(&run_dir, "segment").len();
    assert_eq!(segment_records as f64, segments);
    for artifact in ["report.html", "junit.xml", "summary.md", "records.parquet"] {
        assert!(run_dir.join(artifact).is_file(), "{artifact} missing");
    }
}

#[test]
fn a_run_killed_with_sigkill_leaves_a_readable_journal() {
    let nginx = nginx();
    let (mut child, run_dir) = start_long_run(&nginx);
    let journal = run_dir.join("records.jsonl");
    wait_until(
        "segment records in the journal",
        Duration::from_secs(90),
        || {
            std::fs::read_to_string(&journal).is_ok_and(|j| {
                j.lines()
                    .filter(|l| l.contains(r#""type":"segment""#))
                    .count()
                    >= 2
            })
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    let complete: Vec<&str> = text.lines().collect();
    assert!(complete.len() >= 2);
    for line in &complete[..complete.len() - 1] {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(record["type"].is_string() && record["v"] == 1);
    }
    // `lpt report` renders what the killed run left, without its summary.json.
    let output = lpt().arg("report").arg(&run_dir).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(run_dir.join("report.html").is_file());
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_its_results() {
    let nginx = nginx();
    let (mut child, run_dir) = start_long_run(&nginx);
    wait_until("publishing to nginx", Duration::from_secs(60), || {
        nginx.playlist_exists()
    });
    let interrupted_at = Instant::now();
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(105));
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(40),
        "stopped within the drain period"
    );
    let summary = summary(&run_dir);
    assert_eq!(summary["outcome"]["status"], "interrupted");
    assert_eq!(summary["workloads"][0]["status"], "interrupted");
}

#[test]
fn an_abort_on_fail_threshold_ends_the_run_early_with_108() {
    let nginx = nginx();
    let scenario = scenario(
        &nginx,
        "10m",
        r#""latency" = [{ threshold = "max < 1ms", abort_on_fail = true }]"#,
    );
    let run_dir = nginx.dir.path().join("run");
    let started = Instant::now();
    run_expecting(&scenario, &run_dir, 108);
    assert!(started.elapsed() < Duration::from_secs(120));
    let summary = summary(&run_dir);
    assert_eq!(summary["outcome"]["status"], "aborted_by_threshold");
    assert!(
        summary["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("latency max < 1ms")
    );
}

#[test]
fn a_capacity_search_through_nginx_steps_up_real_streams_and_reports_the_count_that_held() {
    let nginx = nginx();
    // Each step lasts long enough for its newest stream's first segment to be pulled and judged.
    let scenario = scenario_with(
        &nginx,
        r#"executor = "capacity"
start_streams = 1
step = 1
step_duration = "7s"
max_streams = 3
until = "segment_success""#,
        r#""segment_success" = ["rate >= 0.9"]"#,
    );
    let run_dir = nginx.dir.path().join("run");
    run_expecting(&scenario, &run_dir, 0);
    let summary = summary(&run_dir);
    let workload = &summary["workloads"][0];
    assert_eq!(workload["executor"], "capacity", "{workload}");
    assert_eq!(
        workload["message"], "held up to max_streams = 3",
        "{workload}"
    );
    // Every step was judged on samples of its own stream count ("0" tags the segments still
    // pulled from the playlist window after the search stopped every stream).
    let mut steps: Vec<String> = summary["metrics"]["segment_success"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|series| series["tags"]["sessions"].as_str().map(str::to_owned))
        .filter(|sessions| sessions != "0")
        .collect();
    steps.sort();
    steps.dedup();
    assert_eq!(steps, ["1", "2", "3"]);
}

#[test]
fn a_ramping_run_through_nginx_starts_and_stops_real_streams_stage_by_stage() {
    let nginx = nginx();
    // Up from one stream to three, then down to one: every stream publishes long enough for its
    // segments to be pulled and checked.
    let scenario = scenario_with(
        &nginx,
        r#"executor = "ramping-streams"
start_streams = 1
stages = [{ duration = "8s", target = 3 }, { duration = "8s", target = 1 }]"#,
        r#""segment_success" = ["rate >= 0.9"]"#,
    );
    let run_dir = nginx.dir.path().join("run");
    run_expecting(&scenario, &run_dir, 0);
    let summary = summary(&run_dir);
    let workload = &summary["workloads"][0];
    assert_eq!(workload["executor"], "ramping-streams", "{workload}");
    assert_eq!(workload["status"], "completed", "{workload}");
    let streams = &summary["metrics"]["streams"]["values"];
    assert_eq!(streams["max"], 3.0, "{streams}");
    assert_eq!(streams["value"], 0.0, "{streams}");
    // Segments of three streams were pulled and checked; the first stream lived through both
    // stages, the third only around the peak.
    let mut segments: std::collections::BTreeMap<String, u32> = Default::default();
    for record in journal_records(&run_dir, "segment") {
        let stream = record["stream"].as_str().unwrap();
        let suffix = stream.rsplit('-').next().unwrap().to_owned();
        *segments.entry(suffix).or_default() += 1;
    }
    assert_eq!(
        segments.keys().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{segments:?}"
    );
    assert!(segments["2"] < segments["0"], "{segments:?}");
}

#[test]
fn sample_auto_scores_the_fraction_one_scoring_slot_keeps_up_with() {
    let nginx = nginx();
    let scenario = scenario_with(
        &nginx,
        r#"executor = "constant-streams"
streams = 2
duration = "14s""#,
        r#""segment_success" = ["rate >= 0.9"]

[quality]
sample = "auto"
reference = false"#,
    );
    let run_dir = nginx.dir.path().join("run");
    run_expecting(&scenario, &run_dir, 0);
    let summary = summary(&run_dir);
    // Two streams of one rendition each, plus the reference each would be scored against:
    // four 2 s segments every 2 s for one slot that takes 1.7 s a segment.
    let fraction = 2.0 / (4.0 * 1.7);
    assert_eq!(
        summary["metrics"]["quality_sample_fraction"]["values"]["value"],
        fraction
    );
    let sampled = |seq: u64| probes::quality::Sampling::Fraction(fraction).samples(seq);
    let scored: Vec<(String, u64)> = journal_records(&run_dir, "quality")
        .iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap().to_owned(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let pulled = journal_records(&run_dir, "segment").len();
    assert!(pulled >= 10, "{pulled} segments pulled");
    // Every scored segment is one the fraction picks (seq 0 never is), and each stream had some.
    assert!(scored.iter().all(|(_, seq)| sampled(*seq)), "{scored:?}");
    for stream in ["-one-0", "-one-1"] {
        assert!(
            scored.iter().any(|(key, _)| key.ends_with(stream)),
            "no segment of {stream} scored: {scored:?}"
        );
    }
}

/// The HLS conformance rules a run through `target` (a scenario's `[target]`) found broken:
/// rule → count, and the run's summary.
fn conformance_findings(
    nginx: &Nginx,
    target: &str,
    name: &str,
) -> (BTreeMap<String, usize>, Value) {
    let path = nginx.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
{target}
[source]
width = 640
height = 360
clip = "6s"

[ladder]
profiles = ["P360p30fps16x9"]

[workloads.one]
executor = "constant-streams"
streams = 1
duration = "16s"

[thresholds]
"segment_success" = ["rate >= 0.9"]
"hls_violations{{rule=HLS-TARGETDURATION-EXCEEDED}}" = ["count == 0"]
"#
        ),
    )
    .unwrap();
    let run_dir = nginx.dir.path().join(format!("run-{name}"));
    run_expecting(&path, &run_dir, 0);
    let mut found = BTreeMap::new();
    for v in journal_records(&run_dir, "violation") {
        *found
            .entry(v["rule"].as_str().unwrap().to_string())
            .or_default() += 1;
        eprintln!("{name}: {} {} {}", v["rule"], v["url"], v["detail"]);
    }
    (found, summary(&run_dir))
}

#[test]
fn nginx_rtmps_hls_and_ffmpegs_fmp4_behind_it_are_judged_against_the_hls_rules() {
    let nginx = nginx();
    let (nginx_rtmp, summary) = conformance_findings(
        &nginx,
        &testkit::scenario::nginx_target(&nginx),
        "nginx-rtmp",
    );
    eprintln!("nginx-rtmp: {nginx_rtmp:?}");
    assert_eq!(summary["outcome"]["status"], "passed");
    // nginx-rtmp's known ones: it writes no EXT-X-PROGRAM-DATE-TIME, and it marks its first
    // segment EXT-X-DISCONTINUITY but never writes EXT-X-DISCONTINUITY-SEQUENCE, so the number
    // of every segment changes when that one leaves the window.
    for known in [
        "HLS-PROGRAM-DATE-TIME-MISSING",
        "HLS-DISCONTINUITY-NUMBER-CHANGED",
    ] {
        assert!(
            nginx_rtmp.contains_key(known),
            "{known} not found: {nginx_rtmp:?}"
        );
    }
    for held in [
        "HLS-TARGETDURATION-EXCEEDED",
        "HLS-SEGMENT-NOT-KEYFRAME",
        "HLS-MAP-MISSING",
    ] {
        assert!(!nginx_rtmp.contains_key(held), "{held}: {nginx_rtmp:?}");
    }
    let form = FfmpegHls::Fmp4;
    let fmp4_target = format!(
        "[target]\nkind = \"external\"\nrtmp_url = \"rtmp://127.0.0.1:{}/{}/{{stream}}\"\nplayback_url = \"http://127.0.0.1:{}/{}/{{stream}}.m3u8\"\n",
        nginx.rtmp_port,
        form.application(),
        nginx.http_port,
        form.application()
    );
    let (fmp4, summary) = conformance_findings(&nginx, &fmp4_target, "ffmpeg-fmp4");
    eprintln!("ffmpeg fmp4: {fmp4:?}");
    assert_eq!(summary["outcome"]["status"], "passed");
    // ffmpeg keeps its discontinuity numbers and maps right; it writes no program date time
    // unless asked to.
    assert!(
        fmp4.contains_key("HLS-PROGRAM-DATE-TIME-MISSING"),
        "{fmp4:?}"
    );
    for held in [
        "HLS-DISCONTINUITY-NUMBER-CHANGED",
        "HLS-MAP-MISSING",
        "HLS-SEGMENT-NOT-KEYFRAME",
        "HLS-VERSION-INCOMPATIBLE",
        "HLS-SEGMENT-DURATION-MISMATCH",
    ] {
        assert!(!fmp4.contains_key(held), "{held}: {fmp4:?}");
    }
}
