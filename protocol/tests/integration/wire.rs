//! Wire messages: prost round trips, hand-derived fixture bytes, header decoding of bad input.

use proptest::prelude::*;
use prost::Message;
use protocol::headers::{self, HeaderError};
use protocol::net;
use protocol::ticket::ReceivedPayment;

fn sample_profile() -> net::VideoProfile {
    net::VideoProfile {
        name: "P240p30fps16x9".into(),
        width: 426,
        height: 240,
        bitrate: 600_000,
        fps: 30,
        ..Default::default()
    }
}

fn sample_seg() -> net::SegData {
    net::SegData {
        manifest_id: b"abc".to_vec(),
        seq: 5,
        hash: vec![0x11; 32],
        sig: vec![0xaa, 0xbb],
        duration: 2000,
        full_profiles3: vec![sample_profile()],
        ..Default::default()
    }
}

fn sample_expiration() -> net::TicketExpirationParams {
    net::TicketExpirationParams {
        creation_round: 9,
        creation_round_block_hash: vec![0x33; 32],
    }
}

fn sample_payment() -> net::Payment {
    net::Payment {
        ticket_params: Some(net::TicketParams {
            recipient: vec![0x01; 20],
            face_value: vec![0x03, 0xe8],
            win_prob: vec![0x7f],
            recipient_rand_hash: vec![0x22; 32],
            seed: vec![0x05],
            expiration_block: vec![0x01, 0x00],
            expiration_params: Some(sample_expiration()),
        }),
        sender: vec![0x44; 20],
        expiration_params: Some(sample_expiration()),
        ticket_sender_params: vec![
            net::TicketSenderParams {
                sender_nonce: 1,
                sig: vec![0xde, 0xad],
            },
            net::TicketSenderParams {
                sender_nonce: 300,
                sig: vec![0xbe],
            },
        ],
        expected_price: Some(net::PriceInfo {
            price_per_unit: 1200,
            pixels_per_unit: 1,
            ..Default::default()
        }),
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// SegData bytes derived by hand: tag = (field << 3) | wire type (0 varint, 2 length-delimited).
#[test]
fn seg_data_encodes_to_hand_derived_bytes() {
    let profile = cat(&[
        &[0x82, 0x01, 14], // name: field 16, wt 2 -> tag 130 = varint 82 01; length 14
        b"P240p30fps16x9", //
        &[0x88, 0x01, 0xaa, 0x03], // width: field 17 -> tag 136; 426 = varint aa 03
        &[0x90, 0x01, 0xf0, 0x01], // height: field 18 -> tag 144; 240 = varint f0 01
        &[0x98, 0x01, 0xc0, 0xcf, 0x24], // bitrate: field 19 -> tag 152; 600000 = varint c0 cf 24
        &[0xa0, 0x01, 0x1e], // fps: field 20 -> tag 160; 30
    ]);
    assert_eq!(profile.len(), 33);
    let expected = cat(&[
        &[0x0a, 0x03],
        b"abc",        // manifestId: field 1, wt 2 -> 0a; length 3
        &[0x10, 0x05], // seq: field 2, wt 0 -> 10; 5
        &[0x1a, 0x20], // hash: field 3, wt 2 -> 1a; length 32
        &[0x11; 32],
        &[0x2a, 0x02, 0xaa, 0xbb], // sig: field 5, wt 2 -> 2a; length 2
        &[0x30, 0xd0, 0x0f],       // duration: field 6, wt 0 -> 30; 2000 = varint d0 0f
        &[0x9a, 0x02, 0x21], // fullProfiles3: field 35, wt 2 -> tag 282 = varint 9a 02; length 33
        &profile,
    ]);
    let seg = sample_seg();
    assert_eq!(seg.encode_to_vec(), expected);
    assert_eq!(net::SegData::decode(expected.as_slice()).unwrap(), seg);
}

/// Payment bytes derived by hand from the field numbers of PROTOCOL.md §2.
#[test]
fn payment_encodes_to_hand_derived_bytes() {
    let expiration = cat(&[
        &[0x08, 0x09], // creation_round: field 1, wt 0; 9
        &[0x12, 0x20], // creation_round_block_hash: field 2, wt 2; length 32
        &[0x33; 32],
    ]);
    assert_eq!(expiration.len(), 36);
    let ticket_params = cat(&[
        &[0x0a, 0x14],
        &[0x01; 20],               // recipient: field 1; length 20
        &[0x12, 0x02, 0x03, 0xe8], // face_value: field 2; bytes 03 e8 (1000)
        &[0x1a, 0x01, 0x7f],       // win_prob: field 3; bytes 7f
        &[0x22, 0x20],
        &[0x22; 32],               // recipient_rand_hash: field 4; length 32
        &[0x2a, 0x01, 0x05],       // seed: field 5; bytes 05
        &[0x32, 0x02, 0x01, 0x00], // expiration_block: field 6; bytes 01 00 (256)
        &[0x3a, 0x24],             // expiration_params: field 7; length 36
        &expiration,
    ]);
    assert_eq!(ticket_params.len(), 108);
    let expected = cat(&[
        &[0x0a, 0x6c], // ticket_params: field 1, wt 2; length 108
        &ticket_params,
        &[0x12, 0x14], // sender: field 2; length 20
        &[0x44; 20],
        &[0x1a, 0x24], // expiration_params: field 3; length 36
        &expiration,
        &[0x22, 0x06, 0x08, 0x01, 0x12, 0x02, 0xde, 0xad], // ticket_sender_params: field 4 {nonce 1, sig de ad}
        &[0x22, 0x06, 0x08, 0xac, 0x02, 0x12, 0x01, 0xbe], // {nonce 300 = varint ac 02, sig be}
        &[0x2a, 0x05, 0x08, 0xb0, 0x09, 0x10, 0x01], // expected_price: field 5 {pricePerUnit 1200 = b0 09, pixelsPerUnit 1}
    ]);
    let payment = sample_payment();
    assert_eq!(payment.encode_to_vec(), expected);
    assert_eq!(net::Payment::decode(expected.as_slice()).unwrap(), payment);
}

#[test]
fn messages_round_trip_through_prost_and_headers() {
    let seg = sample_seg();
    assert_eq!(
        headers::decode_segment(&headers::encode_segment(&seg)).unwrap(),
        seg
    );
    let payment = sample_payment();
    assert_eq!(
        headers::decode_payment(&headers::encode_payment(&payment)).unwrap(),
        payment
    );

    let info = net::OrchestratorInfo {
        transcoder: "https://127.0.0.1:8935".into(),
        ticket_params: sample_payment().ticket_params,
        price_info: Some(net::PriceInfo {
            price_per_unit: 7,
            pixels_per_unit: 3,
            capability: 1,
            constraint: "x".into(),
        }),
        address: vec![9; 20],
        auth_token: Some(net::AuthToken {
            token: vec![1, 2],
            session_id: "s".into(),
            expiration: 1_700_000_000,
        }),
        nodes: vec!["a".into()],
        ..Default::default()
    };
    assert_eq!(
        net::OrchestratorInfo::decode(info.encode_to_vec().as_slice()).unwrap(),
        info
    );

    let result = net::TranscodeResult {
        seq: 3,
        result: Some(net::transcode_result::Result::Data(net::TranscodeData {
            segments: vec![net::TranscodedSegmentData {
                url: "u".into(),
                pixels: 99,
                ..Default::default()
            }],
            sig: vec![7; 65],
        })),
        info: Some(info),
    };
    let decoded = net::TranscodeResult::decode(result.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, result);
    let error = net::TranscodeResult {
        seq: 4,
        result: Some(net::transcode_result::Result::Error("boom".into())),
        info: None,
    };
    assert_eq!(
        net::TranscodeResult::decode(error.encode_to_vec().as_slice()).unwrap(),
        error
    );
}

#[test]
fn garbage_headers_are_typed_errors_naming_the_header() {
    let err = headers::decode_payment("not base64 !!").unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Base64 {
                header: "Livepeer-Payment",
                ..
            }
        ),
        "{err}"
    );
    // Valid base64 of a truncated message: the length prefix promises more bytes than remain.
    let full = sample_payment().encode_to_vec();
    let truncated = base64_of(&full[..full.len() / 2]);
    let err = headers::decode_payment(&truncated).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Protobuf {
                header: "Livepeer-Payment",
                ..
            }
        ),
        "{err}"
    );
    let err = headers::decode_segment(&base64_of(&[0xff, 0xff, 0xff])).unwrap_err();
    assert_eq!(err.header(), "Livepeer-Segment");
    assert!(
        err.to_string()
            .starts_with("header Livepeer-Segment: invalid protobuf"),
        "{err}"
    );
}

#[test]
fn malformed_payment_fields_name_the_field() {
    let mut p = sample_payment();
    p.ticket_params.as_mut().unwrap().face_value = vec![1; 33];
    let err = ReceivedPayment::from_message(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field TicketParams.face_value: integer of 33 bytes overflows uint256"
    );
    let mut p = sample_payment();
    p.ticket_params.as_mut().unwrap().recipient_rand_hash = vec![0; 31];
    assert_eq!(
        ReceivedPayment::from_message(&p).unwrap_err().field,
        "TicketParams.recipient_rand_hash"
    );
    let mut p = sample_payment();
    p.expiration_params
        .as_mut()
        .unwrap()
        .creation_round_block_hash = vec![0; 5];
    assert_eq!(
        ReceivedPayment::from_message(&p).unwrap_err().field,
        "Payment.expiration_params"
    );
    let mut p = sample_payment();
    p.ticket_params.as_mut().unwrap().expiration_block = vec![1; 9];
    assert_eq!(
        ReceivedPayment::from_message(&p).unwrap_err().field,
        "TicketParams.expiration_block"
    );
    let mut p = sample_payment();
    p.expected_price.as_mut().unwrap().price_per_unit = -5;
    assert_eq!(
        ReceivedPayment::from_message(&p).unwrap_err().field,
        "PriceInfo"
    );
    // A valid payment parses with its two tickets.
    let ok = ReceivedPayment::from_message(&sample_payment()).unwrap();
    assert_eq!(
        ok.tickets
            .iter()
            .map(|t| t.ticket.sender_nonce)
            .collect::<Vec<_>>(),
        vec![1, 300]
    );
    assert_eq!(ok.params.expiration_block, 256);
}

/// A newer go-livepeer may send fields we do not know (new numbers, nested or top level, of any
/// wire type): they are skipped, never an error, and every known field still reads.
#[test]
fn unknown_fields_from_a_newer_go_livepeer_are_ignored() {
    let known = sample_seg().encode_to_vec();
    let newer = cat(&[
        &known,
        // field 99, varint 150
        &[0x98, 0x06, 0x96, 0x01],
        // field 100, length-delimited "new"
        &[0xa2, 0x06, 0x03, b'n', b'e', b'w'],
        // field 101, fixed64 and field 102, fixed32
        &[0xa9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0xb5, 0x06, 1, 2, 3, 4],
    ]);
    assert_eq!(
        net::SegData::decode(newer.as_slice()).unwrap(),
        sample_seg()
    );
    let info = net::OrchestratorInfo {
        transcoder: "https://o:8935".into(),
        ..Default::default()
    };
    let mut newer_info = info.encode_to_vec();
    newer_info.extend_from_slice(&[0xa2, 0x06, 0x03, b'n', b'e', b'w']);
    let payment = net::PaymentResult {
        info: Some(info.clone()),
    };
    let mut wrapped = vec![0x82, 0x01, newer_info.len() as u8];
    wrapped.extend_from_slice(&newer_info);
    assert_eq!(
        net::PaymentResult::decode(wrapped.as_slice()).unwrap(),
        payment
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary header text never panics the decoders.
    #[test]
    fn header_text_never_panics(value in ".{0,200}") {
        let _ = headers::decode_segment(&value);
        if let Ok(payment) = headers::decode_payment(&value) {
            let _ = ReceivedPayment::from_message(&payment);
        }
    }

    /// Arbitrary bytes behind valid base64 never panic the decoders or the field checks.
    #[test]
    fn header_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let value = base64_of(&bytes);
        if let Ok(seg) = headers::decode_segment(&value) {
            let _ = protocol::sig::segment_message(&seg);
        }
        if let Ok(payment) = headers::decode_payment(&value) {
            let _ = ReceivedPayment::from_message(&payment);
        }
    }

    /// Mutating one byte of a valid payment never panics and either decodes or names the header.
    #[test]
    fn mutated_payment_never_panics(index in 0usize..226, byte in any::<u8>()) {
        let mut bytes = sample_payment().encode_to_vec();
        let i = index % bytes.len();
        bytes[i] = byte;
        match headers::decode_payment(&base64_of(&bytes)) {
            Ok(payment) => { let _ = ReceivedPayment::from_message(&payment); }
            Err(e) => prop_assert_eq!(e.header(), "Livepeer-Payment"),
        }
    }
}
