//! Quality probe capacity: wall time and CPU time to score one sampled 2 s segment, against the
//! source only (a pass-through rendition, as nginx serves) and beside a reference transcode of
//! the same preset (the embedded stack's renditions), so a run can choose its sample rate from
//! the measured cost (see `QualitySampler::sustainable_fraction`).
//!
//! The source is the stamped clip the probes publish (noise on, so the encoder and VMAF do real
//! work), cut into 2 s segments; every segment is scored in turn on this thread with the
//! sampler's default options (1 libvmaf thread, one reference encoder thread) unless
//! overridden. Environment: `LPT_BENCH_SIZE` (`640x360`, default), `LPT_BENCH_SEGMENTS`
//! (default 5; 2 in a check), `LPT_BENCH_VMAF_THREADS` (default 1).
//!
//! The peer: Netflix's `vmaf` tool, with as many threads, scoring the same pass-through pairs
//! from y4m files decoded beforehand (its decoding is not counted; ours is). Goal: ours at least
//! 0.85× the tool's frames per CPU-second (measured 0.95-0.96). `cargo test` runs it as a check
//! failing below the goal less a 25 % noise margin (see `testkit::bench`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use probes::{QualitySample, QualitySampler, QualitySamplerConfig, Sampling};
use reference_transcoder::{SourceConfig, generate};
use testkit::bench::{Better, Goal, Mode, Who, cpu_time, env_or, judge};

/// Ours ÷ the tool in frames per CPU-second, scoring pass-through segments.
const GOAL: f64 = 0.85;

fn cpu_secs() -> f64 {
    cpu_time(Who::Myself).as_secs_f64()
}

/// CPU seconds the vmaf tool takes to score `distorted` against `reference` (y4m files).
fn tool_cpu_secs(reference: &Path, distorted: &Path, threads: u32, out: &Path) -> f64 {
    let before = cpu_time(Who::Children).as_secs_f64();
    let status = Command::new(testkit::vmaf::tool(&quality::vmaf::version()))
        .arg("-r")
        .arg(reference)
        .arg("-d")
        .arg(distorted)
        .args(["--threads", &threads.to_string(), "--json", "-q", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the vmaf tool runs");
    assert!(status.success(), "the vmaf tool failed: {status}");
    cpu_time(Who::Children).as_secs_f64() - before
}

fn main() {
    let mode = Mode::from_args();
    let size: String = env_or("LPT_BENCH_SIZE", "640x360".to_owned());
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .expect("LPT_BENCH_SIZE is WIDTHxHEIGHT");
    let segments: usize = env_or("LPT_BENCH_SEGMENTS", mode.pick(5, 2));
    let threads: u32 = env_or("LPT_BENCH_VMAF_THREADS", 1);
    let source = generate(&SourceConfig {
        width: w,
        height: h,
        duration_secs: 2.0 * segments as f64,
        audio: false,
        ..Default::default()
    })
    .expect("generate the stamped source");
    let cut = source.ts_segments(2.0).expect("segments");
    let sampler = QualitySampler::new(
        &source,
        QualitySamplerConfig {
            sampling: Sampling::Fraction(1.0),
            threads,
            ..Default::default()
        },
    )
    .expect("sampler");
    // The source segment itself stands in for the network's rendition: named after the
    // stream (not a preset) it is scored against the source only; named after the preset of
    // the same size it is also scored beside the reference transcode.
    let preset = if (w, h) == (640, 360) {
        "P360p30fps16x9"
    } else {
        "P720p30fps16x9"
    };
    println!("{size}, {segments} segments of 2 s, {threads} libvmaf thread(s)");
    let mut passthrough_frames_per_cpu_second = f64::NAN;
    for rendition in ["passthrough", preset] {
        let (wall, cpu) = (Instant::now(), cpu_secs());
        let mut frames = 0;
        for s in &cut {
            let q = sampler.score(&QualitySample {
                stream_key: "bench".into(),
                rendition: rendition.into(),
                seq: u64::from(s.seq),
                first_stamp_frame: Some(s.first_frame),
                last_stamp_frame: Some(s.first_frame + s.frames - 1),
                data: s.data.clone().into(),
            });
            assert_eq!(q.error, None, "{q:?}");
            frames += q.frames_paired;
        }
        let n = cut.len() as f64;
        let cpu = cpu_secs() - cpu;
        println!(
            "{rendition:>16}: {:.0} ms wall, {:.0} ms CPU per segment ({} frames paired)",
            wall.elapsed().as_secs_f64() * 1000.0 / n,
            cpu * 1000.0 / n,
            frames
        );
        if rendition == "passthrough" {
            passthrough_frames_per_cpu_second = frames as f64 / cpu;
        }
    }

    // The tool on the same pass-through pairs: each segment against itself, from y4m.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut tool_cpu, mut tool_frames) = (0.0, 0u64);
    for s in &cut {
        let ts = dir.path().join(format!("{}.ts", s.seq));
        let y4m = dir.path().join(format!("{}.y4m", s.seq));
        std::fs::write(&ts, &s.data).expect("write the segment");
        testkit::ffmpeg::run(&[
            "-i",
            ts.to_str().unwrap(),
            "-pix_fmt",
            "yuv420p",
            y4m.to_str().unwrap(),
        ]);
        tool_cpu += tool_cpu_secs(&y4m, &y4m, threads, &dir.path().join("tool.json"));
        tool_frames += u64::from(s.frames);
    }
    println!(
        "{:>16}: {:.0} ms CPU per segment ({tool_frames} frames)",
        "vmaf tool",
        tool_cpu * 1000.0 / cut.len() as f64
    );
    judge(
        mode,
        &[Goal {
            what: "sampled pass-through scoring, frames per CPU-second".into(),
            ours: passthrough_frames_per_cpu_second,
            peer: tool_frames as f64 / tool_cpu,
            peer_name: "Netflix's vmaf tool (y4m)".into(),
            better: Better::Higher,
            goal: GOAL,
            margin: 0.25,
        }],
    );
}
