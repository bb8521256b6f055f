//! Steady memory of one long transcoding session: resident memory after segment 50 against
//! after segment N (default 1,000). Goal: growth ≤ 10 %.
//!
//! Run: `cargo bench -p reference-transcoder --bench session_memory`
//! Environment: `LPT_MEMORY_SEGMENTS` (default 1000).

use std::time::Instant;

use reference_transcoder::ladder::{LadderOptions, LadderTranscoder, parse_ladder};
use reference_transcoder::source::{SourceConfig, generate};

/// Resident set size in bytes, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("rss pages");
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn main() {
    let total: usize = std::env::var("LPT_MEMORY_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let source = generate(&SourceConfig {
        width: 640,
        height: 360,
        duration_secs: 10.0,
        ..Default::default()
    })
    .expect("source");
    let segments = source.ts_segments(2.0).expect("segments");
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9,P240p30fps16x9").expect("ladder"),
        LadderOptions::default(),
    )
    .expect("session");
    let t = Instant::now();
    let mut at_50 = 0;
    for i in 1..=total {
        let out = transcoder
            .transcode(&segments[i % segments.len()].data)
            .expect("transcode");
        assert_eq!(out.renditions[0].frames, 60);
        if i == 50 {
            at_50 = rss_bytes();
        }
        if i % 100 == 0 {
            println!(
                "segment {i}: RSS {:.1} MiB ({:.0} s)",
                rss_bytes() as f64 / 1048576.0,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let end = rss_bytes();
    println!(
        "RSS after segment 50: {:.1} MiB, after segment {total}: {:.1} MiB, growth {:+.1} % (goal <= +10 %)",
        at_50 as f64 / 1048576.0,
        end as f64 / 1048576.0,
        (end as f64 / at_50 as f64 - 1.0) * 100.0
    );
}
