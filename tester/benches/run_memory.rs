//! Does `lpt run` hold its memory flat? Ten streams for ten minutes through nginx-rtmp (a real
//! third-party RTMP-in/HLS-out peer, so no transcoding competes for the CPU), with the resident
//! memory of the `lpt` process sampled every 5 s. Metrics are HDR histograms and records are
//! streamed to the journal, so after the first minute (connections, buffers, the encoded source)
//! the resident set should stop growing; the bench prints the first-minute figure, the peak after
//! it, the last one and the growth rate after the first minute.
//!
//! Run: `cargo bench -p tester --profile ci --bench run_memory`
//! (`LPT_BENCH_MINUTES` and `LPT_BENCH_STREAMS` change the defaults of 10 and 10).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::bench::env_or;
use testkit::nginx::{Nginx, NginxOptions};
use testkit::procfs::rss_mib;

fn main() {
    let minutes: u64 = env_or("LPT_BENCH_MINUTES", 10);
    let streams: u64 = env_or("LPT_BENCH_STREAMS", 10);
    let nginx = Nginx::start_with(&NginxOptions {
        playlist_window: Duration::from_secs(12),
    });
    let scenario = nginx.dir.path().join("memory.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "memory"
{target}
[source]
width = 640
height = 360
clip = "10s"
[ladder]
profiles = ["P360p30fps16x9"]
[workloads.flat]
executor = "constant-streams"
streams = {streams}
duration = "{minutes}m"
[thresholds]
"segment_success" = ["rate >= 0.9"]
"#,
            target = testkit::scenario::nginx_target(&nginx),
        ),
    )
    .unwrap();
    let out = nginx.dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--quiet"])
        .env("LPT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("lpt runs");
    let pid = child.id();
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(rss) = rss_mib(pid) {
            samples.push((started.elapsed().as_secs_f64(), rss));
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    let workload_end = (minutes * 60) as f64;
    let after_first_minute: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= 60.0 && *t <= workload_end)
        .collect();
    let Some(&(_, at_one_minute)) = after_first_minute.first() else {
        eprintln!("the run ended before its first minute ({status}); nothing to compare");
        std::process::exit(1);
    };
    let peak = after_first_minute.iter().map(|s| s.1).fold(0.0, f64::max);
    let &(last_t, last) = after_first_minute.last().unwrap();
    // Least-squares slope of RSS over time after the first minute, in MiB per minute.
    let n = after_first_minute.len() as f64;
    let (mean_t, mean_r) = after_first_minute
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, r)| (a + t / n, b + r / n));
    let (cov, var) = after_first_minute
        .iter()
        .fold((0.0, 0.0), |(c, v), (t, r)| {
            (c + (t - mean_t) * (r - mean_r), v + (t - mean_t).powi(2))
        });
    let slope_per_minute = if var > 0.0 { cov / var * 60.0 } else { 0.0 };
    let summary: serde_json::Value = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    println!("lpt run, {streams} streams × {minutes} min through nginx-rtmp ({status})");
    println!(
        "  segments ok: {}",
        summary["metrics"]["segment_success"]["values"]["passes"]
    );
    println!("  RSS at 1 min        {at_one_minute:8.1} MiB");
    println!("  RSS peak after 1 min {peak:7.1} MiB");
    println!("  RSS at {:.0} s       {last:8.1} MiB", last_t);
    println!(
        "  growth after 1 min  {:+8.1} MiB ({:+.2} MiB/min by least squares, {:+.1} % over the run)",
        last - at_one_minute,
        slope_per_minute,
        (last - at_one_minute) / at_one_minute * 100.0
    );
}
