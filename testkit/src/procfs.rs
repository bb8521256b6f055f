//! What Linux's `/proc` says about another process: benches read the memory of the nodes and
//! tools they started as separate processes, which `getrusage` of their own process cannot see,
//! and tests check that no process outlives the one that started it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Resident set of process `pid` in MiB (`VmRSS` of `/proc/<pid>/status`), or `None` once the
/// process is gone.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Every descendant of `pid`, read from /proc (children of each of its threads, recursively).
pub fn descendants(pid: u32) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if found.insert(child) {
                    frontier.push(child);
                }
            }
        }
    }
    found
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits up to 10 s until none of `started` is running; panics naming those that still are.
pub fn assert_all_exit(started: &BTreeSet<u32>, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = started.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still running 10 s after {after}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
