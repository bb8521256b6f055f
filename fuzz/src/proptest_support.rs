//! Proptest settings and strategies shared by the crates' `wire_inputs` tests, which include this
//! file by `#[path]` beside `common.rs` (the fuzz crate itself has no proptest, so this file is
//! not in its module tree).

use proptest::prelude::*;

use super::common::{committed_inputs, mutate};

/// `cases` cases from a fixed seed, so the suite tests the same inputs on every run (the fuzzer
/// is what explores); `PROPTEST_RNG_SEED=<n>` picks other ones.
pub fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            defaults.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(18)
        },
        ..defaults
    }
}

/// A committed corpus or regression input of `target` with one to seven byte-level mutations.
pub fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let corpus: Vec<Vec<u8>> = committed_inputs(target)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    (
        0..corpus.len(),
        proptest::collection::vec(any::<(u32, u8, u8)>(), 1..8),
    )
        .prop_map(move |(i, ops)| mutate(&corpus[i], &ops))
}
