//! Steady memory of one long transcoding session: 640x360 segments through a 144p + 240p ladder,
//! resident memory after segment 50 against after segment N (default 1,000). Goal: growth
//! ≤ 10 %.
//!
//! There is no outside peer: the session is held to its own early figure, after 50 segments
//! have filled the decoder's and encoders' pools (codec state, x264's threads and lookahead,
//! the allocator's arenas), measured in the same process a moment before. What the session
//! keeps past that point is what a leak looks like.
//!
//! Run: `cargo bench -p reference-transcoder --bench session_memory` (the full run: 2 s
//! segments). `cargo test` runs it as a check: 0.5 s segments (15 frames, so segments come 4×
//! faster and a per-segment leak shows 4× sooner), 50 to warm up and 100 more, failing when the
//! growth passes the goal plus a 5 % margin (see `testkit::bench`). A source frame (640x360
//! YUV 4:2:0) is 0.33 MiB, so a session leaking one frame per segment grows ≈ 33 MiB over the
//! check's 100, ~30 % of its ~110 MiB: well past the bound. `LPT_MEMORY_LEAK=1` leaks one such
//! buffer per segment on purpose, to see the check fail.
//! Environment: `LPT_MEMORY_SEGMENTS` (default 1000; check 150), `LPT_MEMORY_SEGMENT_SECS`
//! (default 2; check 0.5).

use std::time::Instant;

use reference_transcoder::ladder::{LadderOptions, LadderTranscoder, parse_ladder};
use reference_transcoder::source::{SourceConfig, generate};
use testkit::bench::{Better, Goal, Mode, env_or, judge};
use testkit::procfs::rss_mib;

/// Resident memory after segment N ÷ after segment [`WARM_UP`].
const GOAL: f64 = 1.10;
/// Segments before the early figure.
const WARM_UP: usize = 50;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

fn rss() -> f64 {
    rss_mib(std::process::id()).expect("/proc/self/status has VmRSS")
}

fn main() {
    let mode = Mode::from_args();
    let total: usize = env_or("LPT_MEMORY_SEGMENTS", mode.pick(1000, 150));
    assert!(total > WARM_UP, "LPT_MEMORY_SEGMENTS must exceed {WARM_UP}");
    let segment_secs: f64 = env_or("LPT_MEMORY_SEGMENT_SECS", mode.pick(2.0, 0.5));
    let leak = std::env::var("LPT_MEMORY_LEAK").as_deref() == Ok("1");
    let source = generate(&SourceConfig {
        width: WIDTH,
        height: HEIGHT,
        duration_secs: 10.0,
        gop_secs: segment_secs,
        ..Default::default()
    })
    .expect("source");
    let segments = source.ts_segments(segment_secs).expect("segments");
    let frames_per_segment = (segment_secs * 30.0).round() as u64;
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9,P240p30fps16x9").expect("ladder"),
        LadderOptions::default(),
    )
    .expect("session");
    let mut leaked: Vec<Vec<u8>> = Vec::new();
    let t = Instant::now();
    let mut at_warm_up = 0.0;
    for i in 1..=total {
        let out = transcoder
            .transcode(&segments[i % segments.len()].data)
            .expect("transcode");
        assert_eq!(out.renditions[0].frames, frames_per_segment);
        if leak {
            // Written to, so every page is resident, as a decoded frame's would be.
            leaked.push(vec![1; (WIDTH * HEIGHT * 3 / 2) as usize]);
        }
        if i == WARM_UP {
            at_warm_up = rss();
        }
        if i % mode.pick(100, 25) == 0 {
            println!(
                "segment {i}: RSS {:.1} MiB ({:.1} s)",
                rss(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let end = rss();
    println!(
        "{total} segments of {segment_secs} s in {:.1} s; RSS after segment {WARM_UP}: {at_warm_up:.1} MiB, after segment {total}: {end:.1} MiB, growth {:+.1} %",
        t.elapsed().as_secs_f64(),
        (end / at_warm_up - 1.0) * 100.0
    );
    judge(
        mode,
        &[Goal {
            what: format!("resident memory after segment {total}, MiB"),
            ours: end,
            peer: at_warm_up,
            peer_name: format!("after segment {WARM_UP}"),
            better: Better::Lower,
            goal: GOAL,
            margin: 0.05,
        }],
    );
}
