//! Property tests: arbitrary Livepeer-Segment / Livepeer-Payment headers never panic the decoders (the fuzz corpora's inputs run here too).
//!
//! The harnesses are the fuzz targets' own (`fuzz/src/{segment_header,payment_header}.rs`,
//! included below), so these tests and `cargo fuzz run segment_header|payment_header` make the
//! same calls: every committed corpus and regression input, then generated inputs (random header
//! text, mutated corpus files, and messages built field by field with edge-case values,
//! including payments signed for the harness's recipient so the ticket checks run to the end).
//! `make_header_seeds` (ignored) wrote the seeds the corpora were grown from.

#[path = "../../../fuzz/src/common.rs"]
mod common;

#[path = "../../../fuzz/src/proptest_support.rs"]
mod proptest_support;

#[path = "../../../fuzz/src/segment_header.rs"]
mod segment_header;

#[path = "../../../fuzz/src/payment_header.rs"]
mod payment_header;

use alloy::primitives::eip191_hash_message;
use alloy::signers::local::PrivateKeySigner;
use proptest::prelude::*;
use prost::Message;
use protocol::net::{self, Payment, SegData};
use protocol::sig::{self, NodeKey};
use protocol::ticket::{ChainView, PricePerPixel, SignedTicket, payment_message};
use protocol::{B256, U256};

use common::{mutate, replay_committed};
use proptest_support::{config, mutated};

/// A harness input carrying `message` as protobuf (flag byte 1: base64-encode it).
fn as_input(message: &impl Message) -> Vec<u8> {
    [&[1u8][..], &message.encode_to_vec()].concat()
}

/// Byte strings of the lengths fields are checked against (20, 32, 65) and around them.
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 19..=21),
        proptest::collection::vec(any::<u8>(), 31..=33),
        proptest::collection::vec(any::<u8>(), 64..=66),
        Just(vec![0xff; 32]),
        Just(vec![0xff; 40]),
        proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

fn edgy_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>()
    ]
}

fn edgy_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0i32),
        Just(-1),
        Just(i32::MIN),
        Just(i32::MAX),
        any::<i32>()
    ]
}

fn video_profile() -> impl Strategy<Value = net::VideoProfile> {
    (
        prop_oneof![Just(String::new()), "P[0-9]{3}p[0-9]{2}fps16x9", ".{0,12}"],
        (edgy_i32(), edgy_i32(), edgy_i32()),
        (any::<u32>(), any::<u32>(), edgy_i32()),
        (-1i32..6, -1i32..6, edgy_i32()),
    )
        .prop_map(
            |(
                name,
                (width, height, bitrate),
                (fps, fps_den, gop),
                (profile, encoder, color_depth),
            )| {
                net::VideoProfile {
                    name,
                    width,
                    height,
                    bitrate,
                    fps,
                    fps_den,
                    gop,
                    profile,
                    encoder,
                    color_depth,
                    ..Default::default()
                }
            },
        )
}

fn seg_data() -> impl Strategy<Value = SegData> {
    (
        (
            proptest::collection::vec(any::<u8>(), 0..24),
            edgy_i64(),
            field_bytes(),
        ),
        (field_bytes(), edgy_i32()),
        proptest::option::of(proptest::collection::vec(any::<u64>(), 0..4)),
        proptest::option::of((field_bytes(), ".{0,16}", edgy_i64())),
        proptest::collection::vec(video_profile(), 0..4),
        0u8..3,
    )
        .prop_map(
            |((manifest_id, seq, hash), (sig, duration), caps, token, profiles, list)| {
                let mut seg = SegData {
                    manifest_id,
                    seq,
                    hash,
                    sig,
                    duration,
                    capabilities: caps.map(|bitstring| net::Capabilities {
                        bitstring,
                        ..Default::default()
                    }),
                    auth_token: token.map(|(token, session_id, expiration)| net::AuthToken {
                        token,
                        session_id,
                        expiration,
                    }),
                    ..Default::default()
                };
                match list {
                    0 => seg.full_profiles3 = profiles,
                    1 => seg.full_profiles2 = profiles,
                    _ => seg.full_profiles = profiles,
                }
                seg
            },
        )
}

/// A segment signed by a broadcaster key, so the on-chain check succeeds.
fn signed(mut seg: SegData, key: &NodeKey) -> SegData {
    if let Ok(signature) = sig::sign_segment(key, &seg) {
        seg.sig = signature;
    }
    seg
}

fn broadcaster_key() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).expect("key")
}

/// A payment of `tickets` tickets from the test broadcaster under params the harness's
/// recipient issued at the harness's block for `price`.
fn payment_for(price: PricePerPixel, tickets: u32, first_nonce: u32, block: u64) -> Payment {
    let signer = broadcaster_key();
    let mut recipient = payment_header::recipient();
    let chain = ChainView {
        block,
        round: 3,
        round_block_hash: B256::repeat_byte(0x33),
        gas_price: U256::from(1_000_000_000u64),
    };
    let params = recipient
        .issue_params(signer.address(), price, &chain)
        .expect("params");
    let tickets: Vec<SignedTicket> = (0..tickets)
        .map(|i| {
            let ticket = params.ticket(signer.address(), first_nonce.wrapping_add(i));
            let digest = eip191_hash_message(ticket.hash());
            let sig = sig::sign_prehash(&signer, &digest).expect("sign").to_vec();
            SignedTicket { ticket, sig }
        })
        .collect();
    payment_message(&params, signer.address(), &tickets)
}

#[test]
fn segment_header_corpus_and_regressions() {
    replay_committed("segment_header", |data| {
        segment_header::run(data);
    });
}

#[test]
fn payment_header_corpus_and_regressions() {
    replay_committed("payment_header", |data| {
        payment_header::run(data);
    });
}

#[test]
fn a_payment_for_the_harness_recipient_is_credited() {
    let payment = payment_for(
        PricePerPixel::default(),
        3,
        0,
        payment_header::CURRENT_BLOCK,
    );
    let mut book = payment_header::recipient();
    let receipt = book
        .receive_payment(&payment, payment_header::CURRENT_BLOCK)
        .expect("payment");
    assert_eq!((receipt.accepted, receipt.rejected.len()), (3, 0));
    assert!(payment_header::run(&as_input(&payment)).is_some());
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn segment_header_random_text(text in "[A-Za-z0-9+/= \t]{0,120}") {
        segment_header::run(&[&[0u8][..], text.as_bytes()].concat());
    }

    #[test]
    fn segment_header_random_protobuf(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        segment_header::run(&[&[1u8][..], &data].concat());
    }

    #[test]
    fn segment_header_mutated_corpus(data in mutated("segment_header")) {
        segment_header::run(&data);
    }

    #[test]
    fn segment_header_generated_messages(seg in seg_data(), sign in any::<bool>()) {
        let seg = if sign { signed(seg, &NodeKey::Account(broadcaster_key())) } else { seg };
        prop_assert!(segment_header::run(&as_input(&seg)).is_some());
    }

    #[test]
    fn payment_header_random_protobuf(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        payment_header::run(&[&[1u8][..], &data].concat());
    }

    #[test]
    fn payment_header_mutated_corpus(data in mutated("payment_header")) {
        payment_header::run(&data);
    }
}

proptest! {
    // Each case signs and recovers a few tickets.
    #![proptest_config(config(48))]

    #[test]
    fn payment_header_generated_payments(
        price in (prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()],
                  prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()]),
        tickets in 0u32..4,
        first_nonce in prop_oneof![Just(0u32), Just(u32::MAX - 1), any::<u32>()],
        block in prop_oneof![Just(0u64), Just(payment_header::CURRENT_BLOCK), Just(u64::MAX - 100)],
        tamper in proptest::collection::vec(any::<(u32, u8, u8)>(), 0..3),
    ) {
        let price = PricePerPixel { price_per_unit: price.0, pixels_per_unit: price.1.max(1) };
        let payment = payment_for(price, tickets, first_nonce, block);
        let input = mutate(&as_input(&payment), &tamper);
        payment_header::run(&input);
    }
}

/// Writes the seed inputs of `segment_header` and `payment_header` into `fuzz/seeds/` (the
/// corpora were grown from them; see fuzz/README.md).
#[test]
#[ignore = "writes fuzz seeds; run by hand"]
fn make_header_seeds() {
    let dir = common::fuzz_dir().join("seeds");
    let write = |target: &str, name: &str, data: Vec<u8>| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("seed dir");
        std::fs::write(d.join(name), data).expect("seed");
    };
    let key = NodeKey::Account(broadcaster_key());
    let profile = |name: &str, w, h| net::VideoProfile {
        name: name.into(),
        width: w,
        height: h,
        bitrate: 600_000,
        fps: 30,
        fps_den: 1,
        ..Default::default()
    };
    let base = SegData {
        manifest_id: b"fuzzstream".to_vec(),
        seq: 7,
        hash: vec![0x5a; 32],
        duration: 2000,
        capabilities: Some(net::Capabilities {
            bitstring: vec![0x0000_0000_0000_8a3f],
            ..Default::default()
        }),
        auth_token: Some(net::AuthToken {
            token: vec![1; 32],
            session_id: "0123456789abcdef01234567".into(),
            expiration: 1_900_000_000,
        }),
        full_profiles3: vec![
            profile("P240p30fps16x9", 426, 240),
            profile("P360p30fps16x9", 640, 360),
        ],
        ..Default::default()
    };
    write(
        "segment_header",
        "signed",
        as_input(&signed(base.clone(), &key)),
    );
    write("segment_header", "offchain", as_input(&base));
    let mut legacy = base.clone();
    legacy.full_profiles = std::mem::take(&mut legacy.full_profiles3);
    legacy.full_profiles[0].name = String::new();
    write(
        "segment_header",
        "legacy_profiles",
        as_input(&signed(legacy, &key)),
    );
    let text = protocol::headers::encode_segment(&signed(base, &key));
    write(
        "segment_header",
        "header_text",
        [&[0u8][..], text.as_bytes()].concat(),
    );
    write("segment_header", "empty", vec![1]);

    let block = payment_header::CURRENT_BLOCK;
    write(
        "payment_header",
        "three_tickets",
        as_input(&payment_for(PricePerPixel::default(), 3, 0, block)),
    );
    write(
        "payment_header",
        "one_ticket",
        as_input(&payment_for(PricePerPixel::default(), 1, 5, block)),
    );
    let priced = PricePerPixel {
        price_per_unit: 1200,
        pixels_per_unit: 7,
    };
    write(
        "payment_header",
        "priced",
        as_input(&payment_for(priced, 2, u32::MAX - 1, block)),
    );
    let expired = payment_for(PricePerPixel::default(), 2, 0, block.saturating_sub(200));
    write("payment_header", "expired", as_input(&expired));
    let mut replayed = payment_for(PricePerPixel::default(), 2, 0, block);
    let first = replayed.ticket_sender_params[0].clone();
    replayed.ticket_sender_params.push(first);
    write("payment_header", "nonce_reused", as_input(&replayed));
    let text =
        protocol::headers::encode_payment(&payment_for(PricePerPixel::default(), 1, 0, block));
    write(
        "payment_header",
        "header_text",
        [&[0u8][..], text.as_bytes()].concat(),
    );
    write("payment_header", "empty", vec![1]);
}
