//! `lpt run` of a scenario file as CI runs it, for tests that judge a whole run: its exit code,
//! what it printed (followed by the warnings its embedded nodes logged, to explain a failure), its
//! `summary.json` and its run directory.
//!
//! The runs are real time and CPU-bound (transcoding, scoring) on a small machine, so within one
//! test binary they take turns, whatever the harness's thread count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A finished `lpt run`.
pub struct LptRun {
    pub code: i32,
    /// stdout, then the nodes' warnings.
    pub output: String,
    pub summary: Value,
    /// The run directory (`--out`), removed when the value drops.
    pub dir: PathBuf,
    _keep: tempfile::TempDir,
}

/// Waits for the other `lpt run`s of this test binary to finish, and holds them off until the
/// guard drops: for a test that drives `lpt run` itself.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workspace root (scenario paths in tests are relative to it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_owned()
}

/// Runs `lpt run <repo>/SCENARIO --out <fresh dir>` with the binary at `lpt`.
pub fn run_scenario(lpt: &Path, scenario: &str) -> LptRun {
    let _turn = one_at_a_time();
    let keep = tempfile::tempdir().expect("a temporary directory");
    let dir = keep.path().join("run");
    let output = Command::new(lpt)
        .arg("run")
        .arg(repo_root().join(scenario))
        .arg("--out")
        .arg(&dir)
        .env_remove("LPT_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("lpt runs");
    let output_text = String::from_utf8_lossy(&output.stdout).into_owned()
        + "\nlpt warnings:\n"
        + &warnings_of(&String::from_utf8_lossy(&output.stderr))
        + "\nnode warnings:\n"
        + &node_warnings(&dir);
    let summary = std::fs::read_to_string(dir.join("summary.json"))
        .unwrap_or_else(|e| panic!("{scenario}: no summary.json ({e}); stdout:\n{output_text}"));
    LptRun {
        code: output.status.code().unwrap_or(-1),
        output: output_text,
        summary: serde_json::from_str(&summary).expect("summary.json is JSON"),
        dir,
        _keep: keep,
    }
}

/// The warnings and errors the embedded nodes logged (at most 15 lines per node).
pub fn node_warnings(run_dir: &Path) -> String {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(run_dir.join("stack"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            lines.extend(
                text.lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .take(15)
                    .map(|l| format!("{name}: {l}")),
            );
        }
    }
    lines.join("\n")
}

/// The warning and error lines of lpt's own log (at most 30).
fn warnings_of(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .take(30)
        .collect::<Vec<_>>()
        .join("\n")
}

impl LptRun {
    /// The journal's records of `kind` (`segment`, `chaos`, `recovery`, …), as JSON.
    pub fn records(&self, kind: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("records.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["type"] == kind)
            .collect()
    }

    /// Asserts the run exited 99 with exactly `selector`'s threshold failing, named in the
    /// output: how a fault scenario proves its probe caught the fault and nothing else broke.
    pub fn assert_fails_only(&self, selector: &str) {
        assert_eq!(self.code, 99, "should fail {selector}:\n{}", self.output);
        let failed: Vec<&Value> = self.summary["thresholds"]
            .as_array()
            .expect("summary.json lists its thresholds")
            .iter()
            .filter(|t| t["passed"] == false)
            .collect();
        assert_eq!(failed.len(), 1, "{}", self.output);
        assert_eq!(failed[0]["metric"], selector, "{}", self.output);
        assert!(
            self.output.contains(&format!("✗ {selector}")),
            "{}",
            self.output
        );
    }
}
