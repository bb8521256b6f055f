//! The `lpt` binary as users and CI scripts see it: exit codes, messages, summary.json.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn lpt() -> Command {
    let mut command = Command::cargo_bin("lpt").expect("the lpt binary is built");
    command.env_remove("NO_COLOR").env_remove("LPT_LOG");
    command
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Asserts that `text` contains every one of `expected`, naming the first one missing.
fn assert_contains_all(text: &str, expected: &[impl AsRef<str>]) {
    for expected in expected {
        let expected = expected.as_ref();
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

/// The standard output of a finished `lpt`, asserting that it exited 0 (both its outputs shown
/// when not).
fn exited_zero(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read_summary(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn version_exits_zero() {
    lpt()
        .arg("version")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with(format!(
            "lpt {}",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn every_shipped_scenario_validates_with_a_description() {
    let scenarios: Vec<PathBuf> = [
        "scenarios",
        "scenarios/faults",
        "scenarios/pools",
        "scenarios/ai-faults",
    ]
    .iter()
    .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).unwrap())
    .map(|e| e.unwrap().path())
    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    .collect();
    assert!(scenarios.len() >= 15, "{scenarios:?}");
    let output = lpt().arg("validate").args(&scenarios).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("✓ Scenario"))
            .count(),
        scenarios.len()
    );
    assert!(stdout.contains("Workload `smoke` (constant-streams): 2 streams for 30s."));
    assert!(stdout.contains("Fault injected: Every orchestrator bills 3× the pixels it produced."));
    assert!(stdout.contains("Fault injected: transcoder-0-1 reports 3× its pixels."));
    assert!(stdout.contains(
        "Workload `errors` (ai): upscale `lpt/lanczos-x4` requests to the run's local AI worker (capacity 1; its faults: every 3rd request answers 500), 1 requests/s for 6s, outputs validated."
    ));
    assert!(stdout.contains(
        "Each orchestrator checks every answer of its transcoders against the source (a transcoder is dropped after 3 refused), and pays them by the pixels it counts, less 10% commission and 1000 wei per payout."
    ));
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn three_mistakes_are_all_reported_with_lines_and_exit_104() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(
        dir.path(),
        "three.toml",
        r#"name = "three mistakes"

[target]
kind = "embedded"
orchestrator = 2

[ladder]
profiles = ["P240p30fps16x9", "P360p30fps19x9"]

[workloads.main]
executor = "constant-streams"
streams = 2
duration = "30s"

[thresholds]
"latency" = ["p(95) < 4 parsecs"]
"#,
    );
    let output = lpt().arg("validate").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 errors in the scenario"), "{stderr}");
    let file = path.display().to_string();
    assert_contains_all(
        &stderr,
        &[
            format!(
                "{file}:5:1: `target.orchestrator`: unknown key `orchestrator` (hint: did you mean `orchestrators`?)"
            ),
            format!(
                "{file}:8:31: `ladder.profiles`: unknown preset `P360p30fps19x9` (hint: did you mean `P360p30fps16x9`?)"
            ),
            format!(
                "{file}:16:14: `thresholds.latency[0]`: `p(95) < 4 parsecs`: unknown time unit `parsecs`"
            ),
        ],
    );
}

#[test]
fn type_errors_and_cross_references_are_caught_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(
        dir.path(),
        "refs.toml",
        r#"[target]
kind = "external"
rtmp_url = "rtmp://127.0.0.1:1935/live"
playback_url = "http://127.0.0.1:8935/stream/{stream}.m3u8"

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.ramp]
executor = "ramping-streams"
stages = [{ duration = 30, target = 4 }]

[workloads.cap]
executor = "capacity"
until = "latency"

[thresholds]
"latency{rendition=P360p30fps16x9}" = ["p(95) < 4s"]
"vmaf" = ["rate > 0.5"]
"#,
    );
    let output = lpt().arg("validate").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains_all(
        &stderr,
        &[
            "`target.rtmp_url`: `rtmp://127.0.0.1:1935/live` has no `{stream}` placeholder",
            "`workloads.ramp.stages[0].duration`: expected a duration string such as \"30s\", found an integer (hint: write it with a unit, e.g. \"30s\")",
            "`workloads.cap.until`: `latency` names no threshold of this scenario (hint: did you mean `latency{rendition=P360p30fps16x9}`?)",
            "rendition `P360p30fps16x9` is not in the ladder",
            "`rate` does not apply to `vmaf`, a trend metric",
        ],
    );
}

#[test]
fn a_direct_targets_payment_names_each_mistake_and_never_holds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |payment: &str| {
        format!(
            r#"[target]
kind = "direct"
{payment}
[ladder]
profiles = ["P240p30fps16x9"]

[workloads.direct]
executor = "direct-orchestrator"
orchestrators = ["https://127.0.0.1:8935"]
duration = "4s"
"#
        )
    };
    let bad = write_scenario(
        dir.path(),
        "bad.toml",
        &scenario(
            "[target.payment]\nchain_rpc = \"localhost:8545\"\nticket_broker = \"0x1234\"\nprivate_key = \"0xabc\"\n",
        ),
    );
    let output = lpt().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains_all(
        &stderr,
        &[
            "`target.payment.private_key`: unknown key",
            "`target.payment.chain_rpc`: `localhost:8545` must start with http:// or https://",
            "`target.payment.ticket_broker`: `0x1234` is not a 0x-prefixed 20-byte address",
            "`target.payment.key_env`: the sender's key is read from `key_env",
        ],
    );
    let both = write_scenario(
        dir.path(),
        "both.toml",
        &scenario(
            "[target.payment]\nchain_rpc = \"http://127.0.0.1:8545\"\nticket_broker = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nkey_env = \"K\"\nkey_file = \"k.hex\"\n",
        ),
    );
    lpt()
        .arg("validate")
        .arg(&both)
        .assert()
        .code(104)
        .stderr(predicate::str::contains(
            "`target.payment.key_file`: give `key_env` or `key_file`, not both",
        ));
    let good = write_scenario(
        dir.path(),
        "good.toml",
        &scenario(
            "[target.payment]\nchain_rpc = \"http://127.0.0.1:8545\"\nticket_broker = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nkey_env = \"LPT_SENDER_KEY\"\n",
        ),
    );
    lpt()
        .arg("validate")
        .arg(&good)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "paying with tickets from its own deposit at TicketBroker 0x5FbDB2315678afecb367f032d93F642f64180aa3 on http://127.0.0.1:8545 (key from $LPT_SENDER_KEY)",
        ));
}

#[test]
fn a_duration_past_what_a_clock_can_add_is_a_scenario_error_naming_file_line_and_key() {
    // Each of these passed validation and then panicked on clock arithmetic once running.
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(
        dir.path(),
        "forever.toml",
        r#"[target]
kind = "embedded"
offline = true

[ladder]
profiles = ["P144p30fps16x9"]

[workloads.one]
executor = "constant-streams"
streams = 1
duration = "2600000000000000h"
start_after = "99999999999999999999h"
"#,
    );
    let file = path.display().to_string();
    let expected = [
        format!(
            "{file}:11:12: `workloads.one.duration`: `2600000000000000h` is longer than the 720h a duration may be"
        ),
        format!(
            "{file}:12:15: `workloads.one.start_after`: `99999999999999999999h` is longer than the 720h a duration may be"
        ),
    ];
    let run_dir = dir.path().join("run");
    for args in [
        vec!["validate"],
        vec!["run", "--out", run_dir.to_str().unwrap()],
    ] {
        let output = lpt().args(&args).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(104), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_contains_all(&stderr, &expected);
    }
    assert!(!run_dir.join("summary.json").exists(), "nothing ran");
}

#[test]
fn a_missing_scenario_file_is_a_configuration_error() {
    lpt()
        .args(["validate", "/nonexistent/scenario.toml"])
        .assert()
        .code(104)
        .stderr(predicate::str::contains(
            "cannot read scenario /nonexistent/scenario.toml",
        ));
    lpt()
        .args(["run", "/nonexistent/scenario.toml"])
        .assert()
        .code(104);
}

/// One offline embedded run, made once and shared by the tests that read its results.
struct OfflineRun {
    run_dir: PathBuf,
    output: std::process::Output,
}

/// A scenario `name` without thresholds: one stream for `duration` through an embedded, offline
/// stack with one orchestrator transcoding itself, at P144p.
fn offline_scenario(name: &str, duration: &str) -> String {
    format!(
        r#"name = "{name}"
[target]
kind = "embedded"
orchestrators = 1
transcoders_per_orchestrator = 0
offline = true
[source]
width = 640
height = 360
clip = "6s"
[ladder]
profiles = ["P144p30fps16x9"]
[workloads.one]
executor = "constant-streams"
streams = 1
duration = "{duration}"
"#
    )
}

fn offline_run() -> &'static OfflineRun {
    static RUN: std::sync::OnceLock<OfflineRun> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-offline-run");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let scenario = offline_scenario("embedded-offline", "8s")
            + r#"[thresholds]
"segment_success" = ["rate >= 0.9"]
"segment_success{rendition=P144p30fps16x9}" = ["count >= 3"]
"latency" = ["p(95) < 10s"]
"#;
        let path = write_scenario(&dir, "offline.toml", &scenario);
        let run_dir = dir.join("run");
        let output = lpt()
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&run_dir)
            .output()
            .unwrap();
        OfflineRun { run_dir, output }
    })
}

#[test]
fn an_offline_embedded_stack_run_passes_with_a_valid_summary() {
    let OfflineRun { run_dir, output } = offline_run();
    let stdout = exited_zero(output);
    assert!(
        stdout.contains("embedded-offline — passed (exit 0)"),
        "{stdout}"
    );

    let summary = read_summary(run_dir);
    testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
    // Written once, at the end of the run, with the report step's keys in it.
    assert_eq!(summary["report"]["summary_source"], "tester", "{summary}");
    assert!(
        summary["breakdowns"]["segments"]["overall"]["segments"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{summary}"
    );
    assert!(!run_dir.join(".summary.json.tmp").exists());
    for t in summary["thresholds"].as_array().unwrap() {
        assert_eq!(t["passed"], true, "{t}");
    }
    // The stack's nodes wrote their configs and logs into the run directory, and are gone.
    for file in [
        "stack/broadcaster.toml",
        "stack/orchestrator-0.toml",
        "stack/broadcaster.log",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
}

#[test]
fn an_unreachable_external_target_exits_107_naming_it() {
    let port = testkit::ports::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(
        dir.path(),
        "external.toml",
        &format!(
            r#"[target]
kind = "external"
rtmp_url = "rtmp://127.0.0.1:{port}/live/{{stream}}"
playback_url = "http://127.0.0.1:{port}/hls/{{stream}}.m3u8"

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.one]
executor = "constant-streams"
streams = 1
duration = "10s"
"#
        ),
    );
    let run_dir = dir.path().join("run");
    lpt()
        .arg("--quiet")
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&run_dir)
        .assert()
        .code(107)
        .stdout(predicate::str::contains("not_run (exit 107)"));
    let summary = read_summary(&run_dir);
    let message = summary["outcome"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("RTMP ingest at 127.0.0.1:{port}"))
            && message.contains("unreachable"),
        "{message}"
    );
    assert_eq!(summary["workloads"][0]["status"], "not_run");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::ports::free_port();
    let path = write_scenario(
        dir.path(),
        "unreachable.toml",
        &format!(
            "[target]\nkind = \"external\"\nrtmp_url = \"rtmp://127.0.0.1:{port}/live/{{stream}}\"\nplayback_url = \"http://127.0.0.1:{port}/{{stream}}.m3u8\"\n[ladder]\nprofiles = [\"P144p30fps16x9\"]\n[workloads.one]\nexecutor = \"constant-streams\"\nstreams = 1\nduration = \"5s\"\n"
        ),
    );
    let output = lpt()
        .args(["--log-format", "json", "run"])
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(107));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Every line is a JSON object, the unreachable target's warning among them.
    let mut messages = Vec::new();
    for line in stderr.lines().filter(|l| !l.is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
        let message = value["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"));
        messages.push((value["level"].to_string(), message.to_string()));
    }
    let unreachable = format!(
        "RTMP ingest at 127.0.0.1:{port} (rtmp://127.0.0.1:{port}/live/{{stream}}) is unreachable"
    );
    assert!(
        messages
            .iter()
            .any(|(level, m)| level == "\"WARN\"" && m.starts_with(&unreachable)),
        "{stderr}"
    );
}

#[test]
fn bench_with_one_session_reports_a_real_time_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("bench");
    let output = lpt()
        .args([
            "bench",
            "--sessions",
            "1",
            "--duration",
            "4s",
            "--width",
            "320",
            "--height",
            "180",
            "--profiles",
            "P144p30fps16x9",
            "--no-pace",
            "--out",
        ])
        .arg(&run_dir)
        .output()
        .unwrap();
    let stdout = exited_zero(&output);
    assert!(stdout.contains("1 session: "), "{stdout}");
    assert!(stdout.contains("of segments in real time"), "{stdout}");

    let summary = read_summary(&run_dir);
    testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
    let load = &summary["bench"]["loads"][0];
    assert_eq!(load["sessions"], 1);
    assert_eq!(
        load["segments"], 2,
        "a 4 s source with 2 s GOPs is two segments"
    );
    // 144p from a 320x180 source transcodes far faster than real time on any machine, and the
    // fraction is the share of the two segments that did.
    assert_eq!(load["realtime_segment_fraction"].as_f64(), Some(1.0));
    assert_eq!(
        summary["metrics"]["realtime_segments"]["values"]["count"],
        2.0
    );
    assert!(
        summary["metrics"]["transcode_realtime_ratio"]["values"]["p(50)"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn bench_with_an_unknown_profile_is_a_configuration_error() {
    lpt()
        .args(["bench", "--profiles", "P240p30fps19x9"])
        .assert()
        .code(104)
        .stderr(predicate::str::contains(
            "unknown profile name `P240p30fps19x9`",
        ))
        .stderr(predicate::str::contains("P240p30fps16x9"));
}

#[test]
fn quality_scores_two_files_and_writes_per_frame_csv() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.mp4");
    let degraded = dir.path().join("degraded.mp4");
    let csv = dir.path().join("frames.csv");
    testkit::ffmpeg::run(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=30",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-crf",
        "12",
        reference.to_str().unwrap(),
    ]);
    testkit::ffmpeg::run(&[
        "-i",
        reference.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-b:v",
        "30k",
        degraded.to_str().unwrap(),
    ]);

    let same = lpt()
        .args(["quality", "--threads", "1"])
        .arg(&reference)
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let same = String::from_utf8_lossy(&same.stdout).to_string();
    assert!(same.contains("paired by presentation order"), "{same}");
    let vmaf_mean = |text: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("vmaf "))
            .unwrap_or_else(|| panic!("{text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(vmaf_mean(&same) >= 99.0, "{same}");

    let worse = lpt()
        .args(["quality", "--csv"])
        .arg(&csv)
        .arg(&reference)
        .arg(&degraded)
        .output()
        .unwrap();
    assert_eq!(worse.status.code(), Some(0));
    let worse = String::from_utf8_lossy(&worse.stdout).to_string();
    assert!(vmaf_mean(&worse) < 80.0, "{worse}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert!(
        rows.starts_with("index,reference_frame,distorted_frame,vmaf"),
        "{rows}"
    );
    assert_eq!(rows.lines().count(), 31, "a header and 30 frames");
}

#[test]
fn quality_with_an_unknown_model_is_a_configuration_error() {
    lpt()
        .args(["quality", "--model", "vmaf_9", "a.mp4", "b.mp4"])
        .assert()
        .code(104)
        .stderr(predicate::str::contains(
            "unknown VMAF model \"vmaf_9\"; built-in models are vmaf_v0.6.1 and vmaf_4k_v0.6.1",
        ));
}

/// An embedded, offline stack run that goes on for ten minutes unless stopped.
fn long_offline_run() -> String {
    offline_scenario("long-offline", "10m")
}

/// `lpt run` as a child with its stderr read line by line on a thread.
struct RunningLpt {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl RunningLpt {
    fn start(scenario: &Path, run_dir: &Path) -> RunningLpt {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lpt"))
            .arg("run")
            .arg(scenario)
            .arg("--out")
            .arg(run_dir)
            .env_remove("LPT_LOG")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, stderr) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        RunningLpt {
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    fn interrupt(&self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for_line(&mut self, text: &str, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no `{text}` within {within:?}; stderr:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit; `None` (after killing it) when it did not come within `within`.
    fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(1)) {
                    self.seen.push(line);
                }
                return Some(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningLpt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record of a journal, and what the reader found wrong with it.
fn read_journal(path: &Path) -> (u64, reports::JournalStats) {
    let mut reader = reports::JournalReader::open(path).unwrap();
    let mut records = 0;
    while reader.next_record().unwrap().is_some() {
        records += 1;
    }
    (records, reader.into_stats())
}

/// Whole lines in a journal file being written.
fn journal_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn a_second_interrupt_exits_105_at_once_keeping_the_records_written() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "long.toml", &long_offline_run());
    let run_dir = dir.path().join("run");
    let journal = run_dir.join("records.jsonl");
    let mut lpt = RunningLpt::start(&scenario, &run_dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while journal_lines(&journal) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no records within 180 s"
        );
        assert!(lpt.child.try_wait().unwrap().is_none(), "lpt ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = journal_lines(&journal);
    lpt.interrupt();
    lpt.wait_for_line("interrupted: stopping streams", Duration::from_secs(10));
    lpt.interrupt();
    let second = std::time::Instant::now();
    let code = lpt.wait(Duration::from_secs(30));
    let took = second.elapsed();
    assert_eq!(code, Some(105), "stderr:\n{}", lpt.seen.join("\n"));
    // The first interrupt's drain alone takes 10 s (the streams' drain period).
    assert!(
        took < Duration::from_secs(4),
        "exited {took:?} after the second interrupt"
    );
    assert!(
        lpt.seen
            .iter()
            .any(|l| l.contains("interrupted again: stopping at once")),
        "{}",
        lpt.seen.join("\n")
    );
    let (records, stats) = read_journal(&journal);
    assert!(
        records >= before as u64,
        "{records} records, {before} before"
    );
    assert!(!stats.has_problems(), "{stats:?}");
    let summary = read_summary(&run_dir);
    assert_eq!(summary["outcome"]["status"], "interrupted", "{summary}");
}

/// A tmpfs of `size` mounted for one test, unmounted when dropped.
struct TinyTmpfs(PathBuf);

impl TinyTmpfs {
    fn mount(at: &Path, size: &str) -> std::io::Result<TinyTmpfs> {
        std::fs::create_dir_all(at)?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("mount exited with {status}")));
        }
        Ok(TinyTmpfs(at.to_owned()))
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_under_the_journal_ends_the_run_with_107_and_a_journal_of_whole_records() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "mounting the tiny tmpfs this test fills needs root: run the tests as root, as ci/setup \
         and .ci/run do"
    );
    let dir = tempfile::tempdir().unwrap();
    // Only the journal is on the 16 KiB file system: it fills a few segments into the run,
    // mid-batch, while summary.json and the stack's files have room elsewhere.
    let full = TinyTmpfs::mount(&dir.path().join("full"), "16k").expect("mount a tmpfs as root");
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let journal = full.0.join("records.jsonl");
    std::os::unix::fs::symlink(&journal, run_dir.join("records.jsonl")).unwrap();
    let scenario = write_scenario(dir.path(), "long.toml", &long_offline_run());

    let mut lpt = RunningLpt::start(&scenario, &run_dir);
    let code = lpt.wait(Duration::from_secs(240));
    let stderr = lpt.seen.join("\n");
    assert_eq!(code, Some(107), "stderr:\n{stderr}");
    let summary = read_summary(&run_dir);
    assert_eq!(summary["outcome"]["status"], "not_run");
    let message = summary["outcome"]["message"].as_str().unwrap();
    assert!(
        message.contains("the records journal")
            && message.contains("No space left on device")
            && message.contains("the journal holds only whole records"),
        "{message}"
    );
    assert_eq!(
        stderr
            .matches("cannot append to the records journal")
            .count(),
        0,
        "one report of the failure, not a warning per record:\n{stderr}"
    );
    let (records, stats) = read_journal(&journal);
    assert!(records > 0, "{stats:?}");
    assert!(!stats.has_problems(), "{stats:?}");
}

/// A copy of the shared offline run under `dir/name`, to edit.
fn copy_of_offline_run(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&offline_run().run_dir)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}

/// `lpt compare BASE NEW`: exit code and standard output + error.
fn compare(base: &Path, new: &Path) -> (i32, String) {
    let output = lpt().arg("compare").arg(base).arg(new).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn edit_summary(run_dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut summary = read_summary(run_dir);
    edit(&mut summary);
    std::fs::write(
        run_dir.join("summary.json"),
        serde_json::to_vec(&summary).unwrap(),
    )
    .unwrap();
}

#[test]
fn lpt_compare_judges_like_runs_and_warns_on_or_refuses_mismatched_ones() {
    let base = &offline_run().run_dir;
    let work = tempfile::tempdir().unwrap();

    // The same run on both sides: every compared statistic is within noise.
    let (code, text) = compare(base, base);
    assert_eq!(code, 0, "{text}");
    assert_contains_all(
        &text,
        &[
            "latency_mean{rendition=P144p30fps16x9}",
            "segment_success_rate{rendition=P144p30fps16x9}",
            "0 regression(s), 0 improvement(s)",
        ],
    );
    assert!(!text.contains("warning:"), "{text}");

    // The scenario was edited between the runs: compared, with a warning.
    let edited = copy_of_offline_run(work.path(), "edited");
    edit_summary(&edited, |s| {
        let source = s["scenario"]["source"].as_str().unwrap().to_owned();
        s["scenario"]["source"] = Value::from(source.replace("8s", "9s"));
    });
    let (code, text) = compare(base, &edited);
    assert_eq!(code, 0, "{text}");
    assert_contains_all(
        &text,
        &[
            "warning: scenario \"embedded-offline\" was edited between the runs",
            "0 regression(s)",
        ],
    );

    // No summary.json on one side: compared from the journal, with a warning naming the side.
    let unsummarised = copy_of_offline_run(work.path(), "unsummarised");
    std::fs::remove_file(unsummarised.join("summary.json")).unwrap();
    let (code, text) = compare(base, &unsummarised);
    assert_eq!(code, 0, "{text}");
    assert_contains_all(
        &text,
        &["warning: the new run's scenario is unknown (summary.json missing)"],
    );

    // Another scenario: refused with 104, saying why.
    let other = copy_of_offline_run(work.path(), "other");
    edit_summary(&other, |s| s["scenario"]["name"] = Value::from("other"));
    let (code, text) = compare(base, &other);
    assert_eq!(code, 104, "{text}");
    assert_contains_all(
        &text,
        &[
            "cannot compare",
            "the runs are of different scenarios: base ran \"embedded-offline\"",
        ],
    );

    // A rendition's samples in one run only: its statistics are reported without a verdict on
    // change, and the rest is still judged.
    let fewer = copy_of_offline_run(work.path(), "fewer");
    let journal = std::fs::read_to_string(fewer.join("records.jsonl")).unwrap();
    let kept: String = journal
        .lines()
        .filter(|line| !line.contains("\"P144p30fps16x9\""))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        kept.len() < journal.len(),
        "the journal has P144p30fps16x9 records"
    );
    std::fs::write(fewer.join("records.jsonl"), kept).unwrap();
    let (code, text) = compare(base, &fewer);
    assert_eq!(code, 0, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("latency_mean{rendition=P144p30fps16x9}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("InsufficientData"), "{line}");
}
