//! Property tests: arbitrary bytes through the broadcaster's RTMP, FLV, TS and SPS parsers never panic (the fuzz corpora's inputs run here too).
//!
//! The harnesses are the fuzz targets' own (`fuzz/src/*.rs`, included below), so these tests and
//! `cargo fuzz run rtmp_chunks|flv_tags|sps` make the same calls: every committed corpus and
//! regression input of those targets, then generated inputs (random bytes, mutated corpus files
//! and inputs built from the formats' grammar).

#[path = "../../../../fuzz/src/common.rs"]
mod common;

#[path = "../../../../fuzz/src/proptest_support.rs"]
mod proptest_support;

#[path = "../../../../fuzz/src/broadcaster.rs"]
mod broadcaster;

#[path = "../../../../fuzz/src/flv_tags.rs"]
mod flv_tags;

#[path = "../../../../fuzz/src/rtmp_chunks.rs"]
mod rtmp_chunks;

#[path = "../../../../fuzz/src/sps.rs"]
mod sps;

use proptest::prelude::*;

use common::{committed_inputs, no_panics, replay_committed};
use proptest_support::{config, mutated};

/// Numbers where arithmetic goes wrong, or any.
fn edgy_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(0x00ff_ffff),
        Just(0x7fff_ffff),
        Just(u32::MAX - 1),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

// ---- SPS ----

/// An SPS built from fields: NAL header, profile, constraint flags, level, then a stream of
/// Exp-Golomb and single-bit syntax elements (emulation prevention applied).
fn sps_bytes() -> impl Strategy<Value = Vec<u8>> {
    let profile = prop_oneof![
        Just(66u8),
        Just(77),
        Just(100),
        Just(110),
        Just(122),
        Just(244),
        Just(44),
        any::<u8>()
    ];
    let element = prop_oneof![
        3 => (0u32..64).prop_map(Element::Ue),
        1 => edgy_u32().prop_map(|v| Element::Ue(v.min(u32::MAX - 1))),
        2 => any::<bool>().prop_map(Element::Bit),
    ];
    (
        profile,
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(element, 0..40),
    )
        .prop_map(|(profile, flags, level, elements)| {
            let mut bits = BitWriter::default();
            for e in elements {
                match e {
                    Element::Ue(v) => bits.ue(v),
                    Element::Bit(b) => bits.bit(b),
                }
            }
            let mut rbsp = vec![profile, flags, level];
            rbsp.extend(bits.finish());
            let mut out = vec![0x67];
            let mut zeros = 0;
            for b in rbsp {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        })
}

#[derive(Debug, Clone)]
enum Element {
    Ue(u32),
    Bit(bool),
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used.is_multiple_of(8) {
            self.out.push(0);
        }
        if b {
            *self.out.last_mut().expect("pushed") |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }

    fn ue(&mut self, v: u32) {
        let coded = u64::from(v) + 1;
        let len = 64 - coded.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit(coded >> i & 1 == 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        // rbsp_stop_one_bit and alignment.
        self.bit(true);
        self.out
    }
}

#[test]
fn sps_corpus_and_regressions() {
    replay_committed("sps", sps::run);
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn sps_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        sps::run(&data);
    }

    #[test]
    fn sps_mutated_corpus(data in mutated("sps")) {
        sps::run(&data);
    }

    #[test]
    fn sps_from_syntax_elements(data in sps_bytes()) {
        sps::run(&data);
    }
}

// ---- FLV tags through the segmenter ----

/// A tag body from the shapes a publisher sends (or garbage).
fn tag_body(kind: u8) -> BoxedStrategy<Vec<u8>> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
    if kind == 8 {
        prop_oneof![
            // AAC sequence header / raw frame.
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| vec![0xaf, 0, a, b]),
            bytes(64).prop_map(|f| [&[0xaf, 1][..], &f].concat()),
            bytes(16),
        ]
        .boxed()
    } else {
        prop_oneof![
            // AVC sequence header around a generated SPS.
            (sps_bytes(), any::<u8>(), 0u8..3).prop_map(|(sps, len_bits, sets)| {
                let mut b = vec![
                    0x17,
                    0,
                    0,
                    0,
                    0,
                    1,
                    sps.get(1).copied().unwrap_or(0),
                    0,
                    0x1f,
                ];
                b.push(0xfc | (len_bits & 3));
                b.push(0xe0 | sets);
                for _ in 0..sets {
                    b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
                    b.extend_from_slice(&sps);
                }
                b.extend_from_slice(&[1, 0, 2, 0x68, 0xee]);
                b
            }),
            // A coded frame: key or not, any composition time, length-prefixed NAL units.
            (any::<bool>(), any::<[u8; 3]>(), bytes(48)).prop_map(|(key, cts, nal)| {
                let mut b = vec![if key { 0x17 } else { 0x27 }, 1, cts[0], cts[1], cts[2]];
                b.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                b.extend_from_slice(&nal);
                b
            }),
            bytes(16),
        ]
        .boxed()
    }
}

fn flv_file() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop_oneof![Just(8u8), Just(9u8), Just(9u8), Just(18u8)].prop_flat_map(|kind| {
        (
            Just(kind),
            prop_oneof![0u32..100_000, edgy_u32()],
            tag_body(kind),
        )
    });
    proptest::collection::vec(tag, 0..40).prop_map(|tags| {
        flv_tags::encode(
            &tags
                .into_iter()
                .map(|(kind, timestamp, body)| flv_tags::Tag {
                    kind,
                    timestamp,
                    body: body.into(),
                })
                .collect::<Vec<_>>(),
        )
    })
}

#[test]
fn flv_corpus_and_regressions() {
    replay_committed("flv_tags", flv_tags::run);
}

#[test]
fn flv_encoding_round_trips() {
    for (_, data) in committed_inputs("flv_tags") {
        let tags = flv_tags::tags(&data);
        assert_eq!(flv_tags::tags(&flv_tags::encode(&tags)), tags);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn flv_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        flv_tags::run(&data);
    }

    #[test]
    fn flv_mutated_corpus(data in mutated("flv_tags")) {
        flv_tags::run(&data);
    }

    #[test]
    fn flv_generated_tags(data in flv_file()) {
        flv_tags::run(&data);
    }
}

// ---- RTMP chunk streams into a running broadcaster ----

#[test]
fn rtmp_corpus_and_regressions() {
    replay_committed("rtmp_chunks", |data| no_panics(|| rtmp_chunks::run(data)));
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn rtmp_random_chunk_streams(
        after_handshake in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let input = [&[u8::from(after_handshake)][..], &data].concat();
        no_panics(|| rtmp_chunks::run(&input));
    }

    #[test]
    fn rtmp_mutated_corpus(data in mutated("rtmp_chunks")) {
        no_panics(|| rtmp_chunks::run(&data));
    }
}
