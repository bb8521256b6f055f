//! What Linux's `/proc` says about another process: benches read the memory of the nodes and
//! tools they started as separate processes, which `getrusage` of their own process cannot see.

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
