//! Throughput of our ladder transcoder against the `ffmpeg` tool doing the same job, side by
//! side in one run: a 1080p30 source, one decode, split, scale to 240p/360p/720p, libx264
//! `veryfast` at the preset bit rates, no output (ffmpeg: null muxer; ours: TS in memory).
//!
//! Goal: ours at least 0.9× ffmpeg's frames per CPU-second (we pay for per-segment sessions and
//! a TS muxer that ffmpeg's null muxer does not).
//!
//! Run: `cargo bench -p reference-transcoder --bench ladder_vs_ffmpeg` (the full run);
//! `cargo test` runs it as a check: a 4 s clip, one round, failing below the goal less a 20 %
//! noise margin (see `testkit::bench`).
//! Environment: `LPT_BENCH_SECS` (clip length, default 20), `LPT_BENCH_ROUNDS` (default 3),
//! `LPT_BENCH_SCALE`, `LPT_BENCH_ENCODER_THREADS` (see below), `LPT_BENCH_TUNE_ALLOCATOR=0`
//! (skips `tune_allocator_for_transcoding`).

use std::process::Command;
use std::time::Instant;

use testkit::bench::{Better, Goal, Mode, Who, cpu_time, env_or, judge, median};

use reference_transcoder::ladder::{
    BENCH_LADDER, LadderOptions, LadderTranscoder, ScaleAlgorithm, parse_ladder,
};
use reference_transcoder::source::{SourceConfig, generate};

/// Ours ÷ ffmpeg in frames per CPU-second.
const GOAL: f64 = 0.9;

fn main() {
    let mode = Mode::from_args();
    // As `lpt bench` does (BenchOptions::tune_allocator); LPT_BENCH_TUNE_ALLOCATOR=0 turns it off.
    if std::env::var("LPT_BENCH_TUNE_ALLOCATOR").as_deref() != Ok("0") {
        println!(
            "allocator tuned: {}",
            reference_transcoder::tune_allocator_for_transcoding()
        );
    }
    let secs = env_or("LPT_BENCH_SECS", mode.pick(20.0, 4.0));
    let rounds = env_or("LPT_BENCH_ROUNDS", mode.pick(3, 1));
    let ladder = parse_ladder(BENCH_LADDER).expect("bench ladder");
    println!("making a {secs} s 1920x1080 30 fps source (2 s GOP)...");
    let source = generate(&SourceConfig {
        width: 1920,
        height: 1080,
        duration_secs: secs,
        audio: false,
        ..Default::default()
    })
    .expect("source");
    let frames = source.frame_count() as f64;
    // LPT_BENCH_SEGMENT_SECS (default 2) shows what per-segment drains and restarts cost.
    let segments = source
        .ts_segments(env_or("LPT_BENCH_SEGMENT_SECS", 2.0))
        .expect("segments");
    let whole = source.ts_segments(secs * 2.0).expect("whole clip");
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("clip.ts");
    std::fs::write(&clip, &whole[0].data).expect("write clip");

    let mut filter = format!("[0:v]split={}", ladder.len());
    for i in 0..ladder.len() {
        filter += &format!("[s{i}]");
    }
    for (i, p) in ladder.iter().enumerate() {
        filter += &format!(";[s{i}]scale={}:{}[o{i}]", p.width, p.height);
    }
    let mut ffmpeg_args: Vec<String> = ["-hide_banner", "-nostats", "-loglevel", "error", "-i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    ffmpeg_args.push(clip.display().to_string());
    ffmpeg_args.extend(["-filter_complex".to_string(), filter]);
    for i in 0..ladder.len() {
        ffmpeg_args.extend(["-map".to_string(), format!("[o{i}]")]);
    }
    // Every rendition segment starts with an IDR frame in ours; ask ffmpeg for the same.
    ffmpeg_args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-an",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for (i, p) in ladder.iter().enumerate() {
        ffmpeg_args.extend([format!("-b:v:{i}"), p.bitrate.to_string()]);
    }
    ffmpeg_args.extend(["-f", "null", "-"].iter().map(|s| s.to_string()));

    // Our knobs, to profile: LPT_BENCH_SCALE (fast_bilinear|bilinear|bicubic|lanczos, default
    // bicubic = ffmpeg's `scale` default) and LPT_BENCH_ENCODER_THREADS (0 = the library's automatic choice).
    let scale = match std::env::var("LPT_BENCH_SCALE").as_deref() {
        Ok("fast_bilinear") => ScaleAlgorithm::FastBilinear,
        Ok("bilinear") => ScaleAlgorithm::Bilinear,
        Ok("lanczos") => ScaleAlgorithm::Lanczos,
        _ => ScaleAlgorithm::Bicubic,
    };
    let options = LadderOptions {
        copy_audio: false,
        scale,
        encoder_threads: env_or("LPT_BENCH_ENCODER_THREADS", 0),
        ..Default::default()
    };
    println!(
        "ours: scale {:?}, encoder threads {}",
        options.scale, options.encoder_threads
    );
    let (mut ffmpeg_fps, mut ours_fps, mut ffmpeg_cpu, mut ours_cpu) =
        (vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let (t, c) = (Instant::now(), cpu_time(Who::Children).as_secs_f64());
        let status = Command::new("ffmpeg")
            .args(&ffmpeg_args)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg failed");
        let f = frames / t.elapsed().as_secs_f64();
        let fc = frames / (cpu_time(Who::Children).as_secs_f64() - c);
        ffmpeg_fps.push(f);
        ffmpeg_cpu.push(fc);

        let mut transcoder =
            LadderTranscoder::new(ladder.clone(), options.clone()).expect("session");
        let (t, c) = (Instant::now(), cpu_time(Who::Myself).as_secs_f64());
        let mut out_frames = 0;
        for s in &segments {
            let out = transcoder.transcode(&s.data).expect("transcode");
            out_frames += out.source_frames;
        }
        let o = out_frames as f64 / t.elapsed().as_secs_f64();
        let oc = out_frames as f64 / (cpu_time(Who::Myself).as_secs_f64() - c);
        assert_eq!(out_frames as f64, frames);
        ours_fps.push(o);
        ours_cpu.push(oc);
        println!(
            "round {round}: ffmpeg {f:.1} fps ({fc:.1} frames/CPU-s), ours {o:.1} fps ({oc:.1} frames/CPU-s), ratio {:.3} wall, {:.3} CPU",
            o / f,
            oc / fc
        );
    }
    let (fc, oc) = (median(ffmpeg_cpu), median(ours_cpu));
    let (f, o) = (median(ffmpeg_fps), median(ours_fps));
    println!(
        "ladder {BENCH_LADDER} from 1080p30, {} frames, {} segments: ffmpeg {f:.1} fps, ours {o:.1} fps, ours/ffmpeg = {:.3} by wall clock (median of {rounds})",
        frames,
        segments.len(),
        o / f
    );
    judge(
        mode,
        &[Goal {
            what: "ladder transcoding, frames per CPU-second".into(),
            ours: oc,
            peer: fc,
            peer_name: "ffmpeg".into(),
            better: Better::Higher,
            goal: GOAL,
            margin: 0.2,
        }],
    );
}
