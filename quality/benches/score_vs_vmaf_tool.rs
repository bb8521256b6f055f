//! Scoring throughput: `quality::compare_files` on two H.264 files (decoding included) against
//! Netflix's `vmaf` tool on the same pair as raw y4m, with equal thread counts, in one run; then
//! CPU cost per scored frame, which gives how many 720p30 renditions one core scores in real time
//! with and without subsampling.
//!
//! Goal: ours at least 0.9× the tool's frames per second by wall clock (ours decodes H.264, the
//! tool reads raw y4m).
//!
//! Run: `cargo bench -p quality --profile ci --bench score_vs_vmaf_tool` (the full run);
//! `cargo test` runs it as a check: 60 frames, two rounds, failing below the goal less a 30 %
//! noise margin (see `testkit::bench`).
//! Environment: `BENCH_FRAMES` (default 300), `BENCH_THREADS` (default 2), `BENCH_ROUNDS`
//! (default 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quality::{QualityOptions, compare_files};
use testkit::bench::{Better, Goal, Mode, Who, cpu_time, env_or, judge, peak_rss_mib};

/// Netflix's tool, built with the same libvmaf our scorer links.
fn vmaf_tool() -> PathBuf {
    testkit::vmaf::tool(&quality::vmaf::version())
}

/// Ours ÷ the tool in frames per second by wall clock.
const GOAL: f64 = 0.9;

struct Measured {
    wall: Duration,
    cpu: Duration,
    frames: usize,
}

impl Measured {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.wall.as_secs_f64()
    }
    fn frames_per_cpu_second(&self) -> f64 {
        self.frames as f64 / self.cpu.as_secs_f64()
    }
}

fn run_ours(reference: &Path, distorted: &Path, options: &QualityOptions) -> (Measured, f64) {
    let (cpu0, start) = (cpu_time(Who::Myself), Instant::now());
    let report = compare_files(reference, distorted, options).expect("scoring works");
    let measured = Measured {
        wall: start.elapsed(),
        cpu: cpu_time(Who::Myself) - cpu0,
        frames: report.counts.paired as usize,
    };
    (measured, report.pooled.vmaf.mean)
}

fn main() {
    let mode = Mode::from_args();
    let frames: u32 = env_or("BENCH_FRAMES", mode.pick(300, 60));
    let threads: u32 = env_or("BENCH_THREADS", 2);
    let rounds: u32 = env_or("BENCH_ROUNDS", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (ref_mp4, dist_mp4, ref_y4m, dist_y4m) = (
        path("ref.mp4"),
        path("dist.mp4"),
        path("ref.y4m"),
        path("dist.y4m"),
    );
    eprintln!("preparing {frames} frames of 1280x720 testsrc2 …");
    testkit::ffmpeg::run(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-frames:v",
        &frames.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "16",
        "-pix_fmt",
        "yuv420p",
        &s(&ref_mp4),
    ]);
    testkit::ffmpeg::run(&[
        "-i",
        &s(&ref_mp4),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        "1500k",
        &s(&dist_mp4),
    ]);
    testkit::ffmpeg::run(&["-i", &s(&ref_mp4), "-pix_fmt", "yuv420p", &s(&ref_y4m)]);
    testkit::ffmpeg::run(&["-i", &s(&dist_mp4), "-pix_fmt", "yuv420p", &s(&dist_y4m)]);

    // Interleaved rounds (tool, ours, tool, ours, …) so that load from other processes hits both
    // alike; the best round of each is compared.
    let vmaf_only = QualityOptions {
        threads,
        psnr: false,
        ..QualityOptions::default()
    };
    let (mut best_tool, mut best_ours): (Option<Measured>, Option<Measured>) = (None, None);
    let (mut tool_mean, mut ours_mean) = (0.0, 0.0);
    println!("720p, {frames} frames, {threads} libvmaf threads, VMAF only, {rounds} rounds");
    for round in 1..=rounds {
        let children0 = cpu_time(Who::Children);
        let start = Instant::now();
        let status = Command::new(vmaf_tool())
            .args([
                "-r",
                &s(&ref_y4m),
                "-d",
                &s(&dist_y4m),
                "--threads",
                &threads.to_string(),
            ])
            .args(["--json", "-q", "-o", &s(&path("tool.json"))])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let tool = Measured {
            wall: start.elapsed(),
            cpu: cpu_time(Who::Children) - children0,
            frames: frames as usize,
        };
        let tool_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path("tool.json")).unwrap()).unwrap();
        tool_mean = tool_json["pooled_metrics"]["vmaf"]["mean"]
            .as_f64()
            .unwrap();
        let (ours, mean) = run_ours(&ref_mp4, &dist_mp4, &vmaf_only);
        ours_mean = mean;
        println!(
            "round {round}: vmaf tool (y4m) {:6.1} fps ({:.2} s wall, {:.2} s CPU); \
             quality (H.264 decode) {:6.1} fps ({:.2} s wall, {:.2} s CPU)",
            tool.fps(),
            tool.wall.as_secs_f64(),
            tool.cpu.as_secs_f64(),
            ours.fps(),
            ours.wall.as_secs_f64(),
            ours.cpu.as_secs_f64()
        );
        if best_tool.as_ref().is_none_or(|b| tool.wall < b.wall) {
            best_tool = Some(tool);
        }
        if best_ours.as_ref().is_none_or(|b| ours.wall < b.wall) {
            best_ours = Some(ours);
        }
    }
    let (tool, ours) = (best_tool.unwrap(), best_ours.unwrap());
    println!("pooled mean VMAF: tool {tool_mean:.4}, ours {ours_mean:.4}");
    assert!(
        (tool_mean - ours_mean).abs() < 0.5,
        "the tool and ours disagree on the pooled VMAF: {tool_mean} vs {ours_mean}"
    );
    println!(
        "best rounds: tool {:.1} fps, ours {:.1} fps; by CPU time ours/tool {:.3}",
        tool.fps(),
        ours.fps(),
        ours.frames_per_cpu_second() / tool.frames_per_cpu_second()
    );
    let goal = Goal {
        what: "VMAF scoring, frames per second by wall clock".into(),
        ours: ours.fps(),
        peer: tool.fps(),
        peer_name: "Netflix's vmaf tool".into(),
        better: Better::Higher,
        goal: GOAL,
        margin: 0.3,
    };
    println!(
        "peak RSS of this process: {:.0} MiB (the {frames} decoded frames of both inputs would be {:.0} MiB)",
        peak_rss_mib(),
        2.0 * frames as f64 * 1280.0 * 720.0 * 1.5 / (1024.0 * 1024.0)
    );

    if mode == Mode::Check {
        judge(mode, &[goal]);
        return;
    }
    println!("CPU cost per core, 720p30 renditions scored in real time per core:");
    for (subsample, psnr) in [(1, false), (1, true), (5, true), (10, true)] {
        let options = QualityOptions {
            threads,
            subsample,
            psnr,
            ..QualityOptions::default()
        };
        let (m, _) = run_ours(&ref_mp4, &dist_mp4, &options);
        println!(
            "  subsample {subsample:2}{}: {:7.1} frames per CPU-second -> {:5.2} renditions per core",
            if psnr { " +psnr" } else { "      " },
            m.frames_per_cpu_second(),
            m.frames_per_cpu_second() / 30.0
        );
    }
    judge(mode, &[goal]);
}
