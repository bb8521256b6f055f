//! Does `lpt run` hold its memory flat? Streams through nginx-rtmp (a real third-party
//! RTMP-in/HLS-out peer, so no transcoding competes for the CPU), with the resident memory of the
//! `lpt` process sampled as it runs. Metrics are HDR histograms and records are streamed to the
//! journal, so after a warm-up (connections, buffers, the encoded source) the resident set should
//! stop growing.
//!
//! There is no outside peer: the run is held to its own warm-up figure, the RSS at the end of the
//! warm-up, measured in the same process moments before. The figure judged is the growth after
//! the warm-up, in MiB per minute (least-squares slope over the samples from the end of the
//! warm-up to the end of the workload, so one allocator step does not decide it) divided by the
//! warm-up RSS: the share of the warm-up figure the run gains per minute. Goal: at most
//! [`GOAL`] (2 % per minute).
//!
//! Run: `cargo bench -p tester --profile ci --bench run_memory` (the full run: 10 streams ×
//! 10 min, a 1-minute warm-up, a sample every 5 s). `cargo test` runs it as a check: 3 streams ×
//! 60 s, a 20 s warm-up, a sample every second, failing when the growth passes the goal plus a
//! 150 % noise margin (5 % per minute; see `testkit::bench`), when `lpt run` fails, or when it
//! fetched no segment. It takes ~75 s. Measured on a shared 2-core machine (load 3–8), three
//! checks grew +0.95, +1.56 and +2.22 % per minute (1.0–2.3 MiB/min) of a 102–104 MiB warm-up
//! figure: the early pools still filling, at less than half the bound.
//!
//! What the bound lets through: a check segment (2 s of 640x360 at ~0.15 bit per pixel) is
//! 0.26 MiB as nginx serves it (the bench prints the mean it saw), and 3 streams fetch 1.5 of
//! them a second, so a run keeping one segment's bytes per segment grows ≈ 23.5 MiB per minute:
//! ~23 % per minute of the warm-up figure, 4.5× the check's bound. The bound (5 % per minute,
//! ≈ 5.2 MiB per minute) is crossed by a leak of about a fifth of a segment per segment
//! (~60 KiB) on top of the growth measured above.
//!
//! Environment: `LPT_BENCH_SECONDS` (default 600; check 60), `LPT_BENCH_STREAMS` (default 10;
//! check 3).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::bench::{Better, Goal, Mode, env_or, judge};
use testkit::nginx::{Nginx, NginxOptions};
use testkit::procfs::rss_mib;

/// Growth after the warm-up, MiB per minute ÷ the warm-up RSS in MiB.
const GOAL: f64 = 0.02;

/// Mean size in MiB of the `.ts` segments nginx holds in `hls`, and how many there are.
fn mean_segment_mib(hls: &Path) -> Option<(f64, usize)> {
    let sizes: Vec<u64> = std::fs::read_dir(hls)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect();
    let n = sizes.len();
    (n > 0).then(|| (sizes.iter().sum::<u64>() as f64 / n as f64 / 1_048_576.0, n))
}

/// Least-squares slope of `samples` (seconds, MiB), in MiB per minute.
fn slope_per_minute(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    let (mean_t, mean_r) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, r)| (a + t / n, b + r / n));
    let (cov, var) = samples.iter().fold((0.0, 0.0), |(c, v), (t, r)| {
        (c + (t - mean_t) * (r - mean_r), v + (t - mean_t).powi(2))
    });
    if var > 0.0 { cov / var * 60.0 } else { 0.0 }
}

fn main() {
    let mode = Mode::from_args();
    let seconds: u64 = env_or("LPT_BENCH_SECONDS", mode.pick(600, 60));
    let streams: u64 = env_or("LPT_BENCH_STREAMS", mode.pick(10, 3));
    let warm_up = mode.pick(60.0, 20.0);
    let every = mode.pick(Duration::from_secs(5), Duration::from_secs(1));
    assert!(
        seconds as f64 > warm_up + 10.0,
        "LPT_BENCH_SECONDS must exceed the {warm_up} s warm-up by 10 s"
    );
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
duration = "{seconds}s"
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
    let mut segment = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let t = started.elapsed().as_secs_f64();
        if let Some(rss) = rss_mib(pid) {
            samples.push((t, rss));
        }
        if segment.is_none() && t >= warm_up {
            segment = mean_segment_mib(&nginx.dir.path().join("hls"));
        }
        std::thread::sleep(every);
    };
    let wall = started.elapsed().as_secs_f64();
    // The workload starts after the source is encoded, so it is still running at `seconds`.
    let after_warm_up: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= warm_up && *t <= seconds as f64)
        .collect();
    let Some(&(_, at_warm_up)) = after_warm_up.first() else {
        eprintln!("the run ended before its {warm_up} s warm-up ({status}); nothing to compare");
        std::process::exit(1);
    };
    let peak = after_warm_up.iter().map(|s| s.1).fold(0.0, f64::max);
    let &(last_t, last) = after_warm_up.last().unwrap();
    let slope = slope_per_minute(&after_warm_up);
    let summary: serde_json::Value = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let segments_ok = &summary["metrics"]["segment_success"]["values"]["passes"];
    println!(
        "lpt run, {streams} streams × {seconds} s through nginx-rtmp ({status}, {wall:.0} s in all)"
    );
    println!("  segments ok: {segments_ok}");
    if let Some((mib, n)) = segment {
        let per_minute = mib * streams as f64 * 30.0;
        println!(
            "  segment size: {mib:.3} MiB (mean of {n} at nginx): one kept per segment is {per_minute:.1} MiB/min"
        );
    }
    let series: Vec<String> = samples
        .iter()
        .step_by(mode.pick(12, 5))
        .map(|(t, r)| format!("{t:.0}s:{r:.1}"))
        .collect();
    println!("  RSS samples (MiB): {}", series.join(" "));
    println!("  RSS at {warm_up:.0} s (warm-up) {at_warm_up:8.1} MiB");
    println!("  RSS peak after warm-up {peak:6.1} MiB");
    println!("  RSS at {last_t:.0} s           {last:8.1} MiB");
    println!(
        "  growth after warm-up   {:+6.1} MiB ({slope:+.2} MiB/min by least squares, {:+.2} % of the warm-up figure per minute)",
        last - at_warm_up,
        slope / at_warm_up * 100.0
    );
    if mode == Mode::Check && (!status.success() || segments_ok.as_f64().unwrap_or(0.0) == 0.0) {
        eprintln!("bench check failed: lpt run {status}, {segments_ok} segments ok");
        std::process::exit(1);
    }
    judge(
        mode,
        &[Goal {
            what: "RSS growth after the warm-up, MiB/min ÷ warm-up MiB".into(),
            ours: slope,
            peer: at_warm_up,
            peer_name: format!("RSS at {warm_up:.0} s"),
            better: Better::Lower,
            goal: GOAL,
            margin: 1.5,
        }],
    );
}
