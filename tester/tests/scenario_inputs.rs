//! Property tests: arbitrary scenario files through the scenario loader never panic, and what it
//! accepts has a timeline that fits (the fuzz corpus's inputs run here too).
//!
//! The harness is the `scenario_toml` fuzz target's own (`fuzz/src/scenario_toml.rs`, included
//! below), so this test and `cargo fuzz run --features scenario scenario_toml` make the same
//! calls: every committed corpus and regression input, the shipped scenarios, then generated
//! inputs (random text, mutated corpus files, and scenarios assembled from valid sections with
//! edge-case durations and counts).

#[path = "../../fuzz/src/common.rs"]
mod common;

#[path = "../../fuzz/src/proptest_support.rs"]
mod proptest_support;

#[path = "../../fuzz/src/scenario_toml.rs"]
mod scenario_toml;

use proptest::prelude::*;

use common::replay_committed;
use proptest_support::{config, mutated};

/// Durations as a scenario writes them, reasonable and not.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..120).prop_map(|n| format!("{n}s")),
        (1u32..90).prop_map(|n| format!("{n}m")),
        Just("0s".to_string()),
        Just("500ms".to_string()),
        Just("1h 30m".to_string()),
        Just("999999h".to_string()),
        Just("18446744073709551615s".to_string()),
        Just("-5s".to_string()),
        "[0-9]{1,6}(ms|s|m|h|d)",
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..20).prop_map(|n| n.to_string()),
        Just("4294967295".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        Just("1.5".to_string()),
    ]
}

/// One workload table.
fn workload() -> impl Strategy<Value = String> {
    prop_oneof![
        (count(), duration()).prop_map(|(s, d)| format!(
            "executor = \"constant-streams\"\nstreams = {s}\nduration = \"{d}\""
        )),
        (count(), duration())
            .prop_map(|(s, d)| format!("executor = \"soak\"\nstreams = {s}\nduration = \"{d}\"")),
        (
            count(),
            proptest::collection::vec((duration(), count()), 0..4)
        )
            .prop_map(|(s, stages)| {
                let stages: Vec<String> = stages
                    .into_iter()
                    .map(|(d, t)| format!("{{ duration = \"{d}\", target = {t} }}"))
                    .collect();
                format!(
                    "executor = \"ramping-streams\"\nstart_streams = {s}\nstages = [{}]",
                    stages.join(", ")
                )
            }),
        (count(), count(), duration(), count()).prop_map(|(start, step, d, max)| format!(
            "executor = \"capacity\"\nstart_streams = {start}\nstep = {step}\n\
             step_duration = \"{d}\"\nmax_streams = {max}\nuntil = \"segment_success\""
        )),
    ]
}

/// A scenario assembled from sections; most parse, the numbers decide the rest.
fn scenario() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("kind = \"embedded\"".to_string()),
            count().prop_map(|n| format!("kind = \"embedded\"\norchestrators = {n}")),
        ],
        prop_oneof![
            Just("profiles = [\"P240p30fps16x9\"]"),
            Just("profiles = [\"P240p30fps16x9\", \"P360p30fps16x9\"]"),
        ],
        (duration(), duration()),
        proptest::collection::vec((duration(), workload()), 1..3),
        any::<bool>(),
    )
        .prop_map(|(target, ladder, (gop, clip), workloads, threshold)| {
            let mut text = format!(
                "name = \"generated\"\n\n[target]\n{target}\n\n[ladder]\n{ladder}\n\n\
                 [source]\nkind = \"synthetic\"\ngop = \"{gop}\"\nclip = \"{clip}\"\n"
            );
            if threshold {
                text.push_str("\n[thresholds]\n\"segment_success\" = [\"rate >= 0.99\"]\n");
            }
            for (i, (start, w)) in workloads.into_iter().enumerate() {
                text.push_str(&format!(
                    "\n[workloads.w{i}]\nstart_after = \"{start}\"\n{w}\n"
                ));
            }
            text
        })
}

#[test]
fn scenario_corpus_and_regressions() {
    replay_committed("scenario_toml", scenario_toml::run);
}

#[test]
fn shipped_scenarios() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    for dir in [
        root.clone(),
        root.join("faults"),
        root.join("chaos"),
        root.join("pools"),
    ] {
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                scenario_toml::run(&std::fs::read(&path).expect("read"));
                seen += 1;
            }
        }
    }
    assert!(seen > 15, "only {seen} scenarios under {}", root.display());
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn scenario_random_text(text in "[ -~\n]{0,200}") {
        scenario_toml::run(text.as_bytes());
    }

    #[test]
    fn scenario_mutated_corpus(data in mutated("scenario_toml")) {
        scenario_toml::run(&data);
    }

    #[test]
    fn scenario_generated_files(text in scenario()) {
        scenario_toml::run(text.as_bytes());
    }
}

/// The file on which `toml_edit` 0.23's `Document::parse` panicked ("all items have spans").
#[test]
fn toml_that_panicked_the_parser_is_a_diagnostic_naming_file_and_line() {
    let diagnostics =
        tester::scenario::parse(std::path::Path::new("odd.toml"), "==\n[.").expect_err("not TOML");
    let text = diagnostics.to_string();
    assert!(text.contains("odd.toml:1:"), "{text}");
}
