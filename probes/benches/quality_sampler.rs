//! Quality probe capacity: wall time and CPU time to score one sampled 2 s segment, against the
//! source only (a pass-through rendition, as nginx serves) and beside a reference transcode of
//! the same preset (the embedded stack's renditions), so a run can choose its sample rate from
//! the measured cost (see `QualitySampler::sustainable_fraction`).
//!
//! The source is the stamped clip the probes publish (noise on, so the encoder and VMAF do real
//! work), cut into 2 s segments; every segment is scored in turn on this thread with the
//! sampler's default options (1 libvmaf thread, one reference encoder thread) unless
//! overridden. Environment: `LPT_BENCH_SIZE` (`640x360`, default), `LPT_BENCH_SEGMENTS`
//! (default 5), `LPT_BENCH_VMAF_THREADS` (default 1).

use std::time::Instant;

use probes::{QualitySample, QualitySampler, QualitySamplerConfig, Sampling};
use reference_transcoder::{SourceConfig, generate};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let size = env("LPT_BENCH_SIZE", "640x360");
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .expect("LPT_BENCH_SIZE is WIDTHxHEIGHT");
    let segments: usize = env("LPT_BENCH_SEGMENTS", "5").parse().expect("a count");
    let threads: u32 = env("LPT_BENCH_VMAF_THREADS", "1").parse().expect("a count");
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
        println!(
            "{rendition:>16}: {:.0} ms wall, {:.0} ms CPU per segment ({} frames paired)",
            wall.elapsed().as_secs_f64() * 1000.0 / n,
            (cpu_secs() - cpu) * 1000.0 / n,
            frames
        );
    }
}
