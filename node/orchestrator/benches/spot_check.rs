//! What spot-checking a segment's renditions costs next to transcoding it.
//!
//! A 720p30 stamped source (the reference transcoder's, with audio) is cut into 2 s segments.
//! One ladder session (720p 4 Mb/s, 480p 1.5 Mb/s, 360p 1.2 Mb/s, 240p 600 kb/s, libx264
//! veryfast, the node's default options) transcodes a warm-up segment, then the measured segment
//! `ITERATIONS` times (default 3); then the segment's source is decoded once and its 4
//! renditions checked with [`CheckOptions::default`], as many times. Printed: wall time and
//! process CPU time per segment of both, and the ratios check ÷ transcode (the goal is at most
//! 0.30). The renditions are checked on parallel threads ([`check_renditions`], as the
//! orchestrator checks them); the transcoder runs one worker per rendition.
//!
//! It also prints the calibration of [`CheckOptions::min_psnr_db`] at 720p: the PSNR of every
//! honest rendition, of the same ladder encoded at 1/20 of its bit rates, and of the next
//! segment's renditions checked against this segment's source.
//!
//! Measured on a 2-core machine (ci profile, 5 iterations): transcode 1.09-1.13 s wall and
//! 2.08-2.17 s CPU per segment; check 0.35-0.37 s wall and 0.62-0.66 s CPU (source decode
//! 0.13-0.14 s); ratio check/transcode CPU 0.29, wall 0.31-0.34.
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/lpt-target nice -n 19 cargo bench --profile ci -p node-orchestrator --bench spot_check`

use std::time::{Duration, Instant};

use node_orchestrator::verify::{
    CheckFailure, CheckOptions, SourceFrames, check_rendition, check_renditions,
};
use reference_transcoder::ladder::{Gop, H264Profile};
use reference_transcoder::{LadderOptions, LadderOutput, LadderTranscoder, Profile, SourceConfig};
use testkit::bench::{Who, cpu_time};

fn ladder() -> Vec<Profile> {
    let custom = |name: &str, width, height, bitrate| Profile {
        name: name.into(),
        width,
        height,
        bitrate,
        fps_num: 30,
        fps_den: 1,
        h264_profile: H264Profile::None,
        gop: Gop::Default,
    };
    vec![
        Profile::preset("P720p30fps16x9").expect("preset"),
        custom("P480p30fps16x9", 854, 480, 1_500_000),
        Profile::preset("P360p30fps16x9").expect("preset"),
        Profile::preset("P240p30fps16x9").expect("preset"),
    ]
}

fn transcode(ladder: &[Profile], segment: &[u8]) -> LadderOutput {
    let mut t =
        LadderTranscoder::new(ladder.to_vec(), LadderOptions::default()).expect("transcoder");
    t.transcode(segment).expect("transcode")
}

fn describe(outcome: &Result<node_orchestrator::verify::CheckReport, CheckFailure>) -> String {
    match outcome {
        Ok(r) => format!(
            "pass {:.2} dB (min frame {:.2}), {} frames of {}",
            r.psnr_db, r.min_frame_psnr_db, r.frames, r.expected_frames
        ),
        Err(CheckFailure::LowSimilarity { psnr_db, .. }) => {
            format!("LowSimilarity {psnr_db:.2} dB")
        }
        Err(e) => format!("{e}"),
    }
}

fn per(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1000.0 / f64::from(n)
}

fn main() {
    let iterations: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let source = reference_transcoder::generate(&SourceConfig {
        duration_secs: 6.0,
        gop_secs: 2.0,
        ..SourceConfig::default()
    })
    .expect("source");
    let segments = source.ts_segments(2.0).expect("segments");
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let (warm_up, measured, next) = (&segments[0].data, &segments[1].data, &segments[2].data);
    let ladder = ladder();

    // Transcode: one session, as the node keeps one per stream.
    let mut session =
        LadderTranscoder::new(ladder.clone(), LadderOptions::default()).expect("transcoder");
    session.transcode(warm_up).expect("warm-up transcode");
    let (wall, cpu) = (Instant::now(), cpu_time(Who::Myself));
    let mut output = None;
    for _ in 0..iterations {
        output = Some(session.transcode(measured).expect("transcode"));
    }
    let (transcode_wall, transcode_cpu) = (wall.elapsed(), cpu_time(Who::Myself) - cpu);
    let output = output.expect("at least one iteration");
    drop(session);

    // Check: the source decoded once, its renditions checked.
    let mut options = CheckOptions::default();
    if let Some(every) = std::env::var("COMPARE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.compare_every = every;
    }
    let check_all = |source_ts: &[u8], output: &LadderOutput| {
        let source = SourceFrames::decode(source_ts).expect("source decodes");
        let renditions: Vec<(&[u8], &Profile)> = output
            .renditions
            .iter()
            .zip(&ladder)
            .map(|(r, p)| (&r.data[..], p))
            .collect();
        check_renditions(&source, &renditions, &options)
    };
    check_all(warm_up, &output);
    let (wall, cpu) = (Instant::now(), cpu_time(Who::Myself));
    let mut outcomes = Vec::new();
    for _ in 0..iterations {
        outcomes = check_all(measured, &output);
    }
    let (check_wall, check_cpu) = (wall.elapsed(), cpu_time(Who::Myself) - cpu);

    println!(
        "segment: 720p30, {} frames, {} bytes; ladder 720p/480p/360p/240p; {iterations} iterations; options {options:?}",
        output.source_frames,
        measured.len()
    );
    println!(
        "transcode: {:.1} ms wall, {:.1} ms CPU per segment",
        per(transcode_wall, iterations),
        per(transcode_cpu, iterations)
    );
    println!(
        "check:     {:.1} ms wall, {:.1} ms CPU per segment",
        per(check_wall, iterations),
        per(check_cpu, iterations)
    );
    println!(
        "ratio check/transcode: wall {:.3}, CPU {:.3} (goal <= 0.30)",
        check_wall.as_secs_f64() / transcode_wall.as_secs_f64(),
        check_cpu.as_secs_f64() / transcode_cpu.as_secs_f64()
    );

    // Calibration.
    for (p, outcome) in ladder.iter().zip(&outcomes) {
        let took = outcome.as_ref().map(|r| r.elapsed).unwrap_or_default();
        println!(
            "honest      {:16} {} ({:.1} ms)",
            p.name,
            describe(outcome),
            took.as_secs_f64() * 1000.0
        );
    }
    let starved: Vec<Profile> = ladder
        .iter()
        .map(|p| Profile {
            bitrate: p.bitrate / 20,
            ..p.clone()
        })
        .collect();
    let degraded = transcode(&starved, measured);
    let source = SourceFrames::decode(measured).expect("source decodes");
    println!(
        "source decode: {:.1} ms",
        source.elapsed.as_secs_f64() * 1000.0
    );
    for (r, p) in degraded.renditions.iter().zip(&ladder) {
        let outcome = check_rendition(&source, &r.data, p, &options);
        println!("1/20 rate   {:16} {}", p.name, describe(&outcome));
    }
    let foreign = transcode(&ladder, next);
    for (r, p) in foreign.renditions.iter().zip(&ladder) {
        let outcome = check_rendition(&source, &r.data, p, &options);
        println!("next segment {:15} {}", p.name, describe(&outcome));
    }
}
