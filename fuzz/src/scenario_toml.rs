//! `scenario_toml`: a scenario file through `tester::scenario::parse` (TOML, then the strict
//! reader and every cross-check), and for what it accepts, what `lpt validate` and `lpt run`
//! derive before any network work: the description, each workload's stream count and length,
//! and the run's timeline (`start_after` plus the executor's longest duration, added to
//! `Instant::now()`), which the loader must have bounded.
//!
//! Input: the file's text (invalid UTF-8 replaced).

use std::path::Path;
use std::time::Instant;

use tester::scenario;

/// Feeds one input; panics are the findings.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = scenario::parse(Path::new("fuzz.toml"), &text);
    let scenario = match parsed {
        Ok(s) => s,
        Err(diagnostics) => {
            // Diagnostics render with line and column for any input.
            let _ = diagnostics.to_string();
            return;
        }
    };
    let _ = scenario::describe(&scenario);
    let now = Instant::now();
    for workload in &scenario.workloads {
        let _ = workload.executor.name();
        let _ = workload.executor.max_streams();
        let longest = workload.executor.max_duration();
        let end = workload
            .start_after
            .checked_add(longest)
            .and_then(|d| now.checked_add(d));
        assert!(
            end.is_some(),
            "workload `{}` was accepted with start_after {:?} and a longest run of {:?}, \
             past what Instant can hold",
            workload.name,
            workload.start_after,
            longest
        );
    }
}
