//! Property tests: arbitrary playlists through the puller's m3u8 handling never panic (the fuzz corpora's inputs run here too).
//!
//! The harnesses are the fuzz targets' own (`fuzz/src/{m3u8,ts_demux}.rs`, included below), so
//! these tests and `cargo fuzz run m3u8|ts_demux` make the same calls: every committed corpus
//! and regression input of those targets, then generated inputs (random bytes, mutated corpus
//! files, playlists built from HLS tags with edge-case numbers).

#[path = "../../../fuzz/src/common.rs"]
mod common;

#[path = "../../../fuzz/src/proptest_support.rs"]
mod proptest_support;

#[path = "../../../fuzz/src/m3u8.rs"]
mod m3u8;

#[path = "../../../fuzz/src/ts_demux.rs"]
mod ts_demux;

use proptest::prelude::*;

use common::{no_panics, replay_committed};
use proptest_support::{config, mutated};

// ---- playlists through the puller ----

/// Integers a hostile server would pick.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..20).prop_map(|n| n.to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("18446744073709551614".to_string()),
        Just("18446744073709551615".to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just("".to_string()),
    ]
}

fn seconds() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..10).prop_map(|n| format!("{n}.000")),
        Just("0".to_string()),
        Just("-2.5".to_string()),
        Just("1e308".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        any::<f32>().prop_map(|f| f.to_string()),
    ]
}

/// One playlist line.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        number().prop_map(|n| format!("#EXT-X-TARGETDURATION:{n}")),
        number().prop_map(|n| format!("#EXT-X-MEDIA-SEQUENCE:{n}")),
        number().prop_map(|n| format!("#EXT-X-DISCONTINUITY-SEQUENCE:{n}")),
        seconds().prop_map(|s| format!("#EXTINF:{s},")),
        (0u32..5).prop_map(|i| format!("seg{i}.ts")),
        Just("http://192.0.2.1/far.ts".to_string()),
        Just("#EXT-X-DISCONTINUITY".to_string()),
        Just("#EXT-X-ENDLIST".to_string()),
        Just("#EXT-X-VERSION:3".to_string()),
        (number(), number(), number())
            .prop_map(|(b, w, h)| format!("#EXT-X-STREAM-INF:BANDWIDTH={b},RESOLUTION={w}x{h}")),
        (0u32..3).prop_map(|i| format!("r{i}/index.m3u8")),
        Just("https://192.0.2.1/x.m3u8".to_string()),
        Just("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"".to_string()),
        "[ -~]{0,24}",
    ]
}

/// A main playlist and the one served for every other playlist URL.
fn playlists() -> impl Strategy<Value = Vec<u8>> {
    let doc = || {
        proptest::collection::vec(line(), 0..24)
            .prop_map(|l| format!("#EXTM3U\n{}\n", l.join("\n")))
    };
    (doc(), doc()).prop_map(|(main, other)| [main.as_bytes(), &[0], other.as_bytes()].concat())
}

#[test]
fn m3u8_corpus_and_regressions() {
    replay_committed("m3u8", |data| {
        no_panics(|| m3u8::run(data));
    });
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn m3u8_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        no_panics(|| m3u8::run(&data));
    }

    #[test]
    fn m3u8_mutated_corpus(data in mutated("m3u8")) {
        no_panics(|| m3u8::run(&data));
    }

    #[test]
    fn m3u8_generated_playlists(data in playlists()) {
        no_panics(|| m3u8::run(&data));
    }
}

// ---- downloaded segments through the decoder and the checks ----

#[test]
fn ts_corpus_and_regressions() {
    replay_committed("ts_demux", ts_demux::run);
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn ts_random_packets(packets in proptest::collection::vec(
        (any::<u16>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..184)), 0..12)
    ) {
        // Sync byte, PID and flags chosen by the test, payload random, padded to 188 bytes.
        let mut data = Vec::new();
        for (pid, flags, payload) in packets {
            let mut p = vec![0x47, (pid >> 8) as u8 & 0x5f, pid as u8, 0x10 | (flags & 0xcf)];
            p.extend_from_slice(&payload);
            p.resize(188, 0xff);
            data.extend_from_slice(&p);
        }
        ts_demux::run(&data);
    }

    #[test]
    fn ts_mutated_corpus(data in mutated("ts_demux")) {
        ts_demux::run(&data);
    }
}
