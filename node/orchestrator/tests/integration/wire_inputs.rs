//! Property tests: arbitrary multipart results and headers through the orchestrator's parsers never panic (the fuzz corpora's inputs run here too).
//!
//! The harnesses are the fuzz targets' own (`fuzz/src/*.rs`, included below), so these tests and
//! `cargo fuzz run multipart_results|segment_header` make the same calls: every committed corpus
//! and regression input, then generated inputs (random bytes, mutated corpus files, and
//! `/transcodeResults` posts built from parts with hostile headers and bodies).

#[path = "../../../../fuzz/src/common.rs"]
mod common;

#[path = "../../../../fuzz/src/proptest_support.rs"]
mod proptest_support;

#[path = "../../../../fuzz/src/multipart_results.rs"]
mod multipart_results;

#[path = "../../../../fuzz/src/segment_header.rs"]
mod segment_header;

#[path = "../../../../fuzz/src/orchestrator_steps.rs"]
mod orchestrator_steps;

use proptest::prelude::*;

use common::replay_committed;
use proptest_support::{config, mutated};

/// The segment header target as the fuzz target runs it: protocol's steps, then the node's.
fn segment_header_input(data: &[u8]) {
    if let Some(seg) = segment_header::run(data) {
        orchestrator_steps::segment(&seg);
    }
}

// ---- /transcodeResults bodies ----

fn boundary() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("b".to_string()),
        "[0-9a-f]{32}",
        Just("\"quoted boundary\"".to_string()),
        "[ -~]{0,12}",
    ]
}

fn header_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Content-Type: video/mp2t".to_string()),
        Just("Content-Type: application/octet-stream".to_string()),
        prop_oneof![
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("18446744073709551616".to_string()),
            any::<u64>().prop_map(|n| n.to_string())
        ]
        .prop_map(|n| format!("Pixels: {n}")),
        any::<u32>().prop_map(|n| format!("Content-Length: {n}")),
        "[ -~]{0,20}",
    ]
}

/// A content type line and a body assembled from parts; the delimiters are sometimes wrong.
fn results_post() -> impl Strategy<Value = Vec<u8>> {
    let part = (
        proptest::collection::vec(header_line(), 0..4),
        proptest::collection::vec(any::<u8>(), 0..64),
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("")],
    );
    (
        boundary(),
        prop_oneof![
            Just("multipart/mixed"),
            Just("livepeer/transcoding-error"),
            Just("Multipart/Mixed")
        ],
        proptest::collection::vec(part, 0..4),
        prop_oneof![3 => Just("--\r\n"), 1 => Just(""), 1 => Just("\r\n")],
    )
        .prop_map(|(boundary, essence, parts, end)| {
            let mut out = format!("{essence}; boundary={boundary}\n").into_bytes();
            let b = boundary.trim_matches('"');
            for (headers, body, eol) in parts {
                out.extend_from_slice(format!("--{b}{eol}").as_bytes());
                for h in headers {
                    out.extend_from_slice(format!("{h}{eol}").as_bytes());
                }
                out.extend_from_slice(eol.as_bytes());
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{b}{end}").as_bytes());
            out
        })
}

#[test]
fn multipart_corpus_and_regressions() {
    replay_committed("multipart_results", multipart_results::run);
}

#[test]
fn segment_header_corpus_through_the_node_steps() {
    replay_committed("segment_header", segment_header_input);
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn multipart_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        multipart_results::run(&data);
    }

    #[test]
    fn multipart_mutated_corpus(data in mutated("multipart_results")) {
        multipart_results::run(&data);
    }

    #[test]
    fn multipart_generated_posts(data in results_post()) {
        multipart_results::run(&data);
    }

    #[test]
    fn segment_header_mutated_corpus_through_the_node_steps(data in mutated("segment_header")) {
        segment_header_input(&data);
    }
}
