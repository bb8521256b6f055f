//! lpt's wire bytes, signatures and tickets checked by go-livepeer's own Go packages.
//!
//! This test writes what our crates produce to a temporary directory, runs `go test` in
//! `interop/golivepeer` (go-livepeer's `net`, `pm` and `crypto` packages at the version pinned in
//! its go.mod) on it, then checks what go-livepeer produced with our own decoders and ticket
//! recipient. The Go half is described in `interop/golivepeer/interop_test.go`.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use prost::Message;
use protocol::capabilities::{Capability, CapabilitySet};
use protocol::net;
use protocol::sig::{self, NodeKey};
use protocol::ticket::{ChainView, RecipientConfig, TicketRecipient};
use protocol::ticket::{PricePerPixel, ReceivedPayment};
use protocol::ticket::{SenderLimits, TicketSender};
use serde_json::{Value, json};

fn signer(byte: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    alloy::hex::encode(bytes)
}

fn unhex(text: &Value) -> Vec<u8> {
    alloy::hex::decode(text.as_str().expect("hex string")).expect("valid hex")
}

fn profile(name: &str, width: i32, height: i32, bitrate: i32) -> net::VideoProfile {
    net::VideoProfile {
        name: name.into(),
        width,
        height,
        bitrate,
        fps: 30,
        fps_den: 1,
        profile: net::video_profile::Profile::H264ConstrainedHigh as i32,
        gop: 2000,
        ..Default::default()
    }
}

/// A message our crates send, flagged with whether the pinned go-livepeer knows all its fields.
fn vector(name: &str, message: &impl Message, known_to_go: bool) -> Value {
    json!({ "name": name, "hex": hex(message.encode_to_vec()), "known_to_go": known_to_go })
}

struct Ours {
    json: Value,
    winners: usize,
    recipient: TicketRecipient,
    recipient_block: u64,
    go_sender: Address,
    go_tickets: u64,
}

fn our_vectors() -> Ours {
    let b = NodeKey::Account(signer(0xb1));
    let b_address = b.address().unwrap();
    let o = NodeKey::Account(signer(0x0a));
    let o_address = o.address().unwrap();

    // O's side: a recipient with a known secret issues params, as our orchestrator does.
    let secret = [0x5e; 32];
    // A face value of twice the EV makes every ticket a coin flip, so both sides must agree on
    // winners and losers alike.
    let recipient_config = RecipientConfig {
        face_value: Some(U256::from(2 * 8_000_000_000u64)),
        ..RecipientConfig::default()
    };
    let mut recipient = TicketRecipient::with_secret(o_address, recipient_config, secret);
    let chain = ChainView {
        block: 1_000,
        round: 7,
        round_block_hash: B256::repeat_byte(0x7b),
        gas_price: U256::from(1_000_000_000u64),
    };
    let price = PricePerPixel {
        price_per_unit: 1_200,
        pixels_per_unit: 7,
    };
    let params = recipient.issue_params(b_address, price, &chain).unwrap();

    // B's side: the ticket sender our broadcaster and direct probe pay with.
    let mut sender = TicketSender::new(signer(0xb1), SenderLimits::default());
    let deposit = U256::from(10u128.pow(21));
    let payments: Vec<net::Payment> = [3u64, 40, 1]
        .iter()
        .map(|tickets| {
            let fee = params.ev() * U256::from(*tickets);
            sender.payment(&params, fee, chain.block, deposit).unwrap()
        })
        .collect();
    // Which tickets win, by our rule, for the Go recipient to agree with.
    let mut our_view = TicketRecipient::with_secret(o_address, recipient_config, secret);
    let mut winners = 0;
    let payment_vectors: Vec<Value> = payments
        .iter()
        .map(|payment| {
            let received = ReceivedPayment::from_message(payment).unwrap();
            let winning: Vec<bool> = received
                .tickets
                .iter()
                .map(|t| {
                    our_view
                        .receive_ticket(&t.ticket, &t.sig, received.params.seed, chain.block)
                        .unwrap()
                        .winning
                })
                .collect();
            winners += winning.iter().filter(|w| **w).count();
            json!({ "hex": hex(payment.encode_to_vec()), "winning": winning })
        })
        .collect();

    let capabilities: CapabilitySet = [Capability::H264, Capability::Mpegts, Capability::AuthToken]
        .into_iter()
        .collect();
    let caps_message = net::Capabilities {
        version: "0.1.0".into(),
        capacities: [(0, 4), (1, 4), (12, 2)].into_iter().collect(),
        mandatories: vec![1 << 12],
        ..capabilities.to_message()
    };
    let auth = net::AuthToken {
        token: vec![7; 32],
        session_id: "session-1".into(),
        expiration: 1_800_000_000,
    };
    let info = net::OrchestratorInfo {
        transcoder: "https://127.0.0.1:8935".into(),
        ticket_params: Some(params.to_message()),
        price_info: Some(price.to_message()),
        address: o_address.to_vec(),
        capabilities: Some(caps_message.clone()),
        auth_token: Some(auth.clone()),
        storage: vec![net::OsInfo::default()],
        ..Default::default()
    };
    let ladder = vec![
        profile("P240p30fps16x9", 426, 240, 600_000),
        profile("P360p30fps16x9", 640, 360, 1_200_000),
    ];
    let body = b"a segment's bytes".to_vec();
    let seg =
        protocol::client::segment_data(&b, &info, b"manifest", 42, &body, 2000, &ladder).unwrap();
    let seg_full = net::SegData {
        calc_perceptual_hash: true,
        storage: vec![net::OsInfo::default()],
        segment_parameters: Some(net::SegParameters {
            from: 100,
            to: 1900,
        }),
        force_session_reinit: true,
        ..seg.clone()
    };
    let renditions: [&[u8]; 2] = [b"rendition 240p", b"rendition 360p"];
    let result_sig = sig::sign_transcode_result(&o, renditions).unwrap();
    let transcode_data = net::TranscodeData {
        segments: vec![
            net::TranscodedSegmentData {
                url: "https://127.0.0.1:8935/stream/s/P240p30fps16x9/42.ts".into(),
                pixels: 426 * 240 * 60,
                perceptual_hash_url: String::new(),
            },
            net::TranscodedSegmentData {
                url: "https://127.0.0.1:8935/stream/s/P360p30fps16x9/42.ts".into(),
                pixels: 640 * 360 * 60,
                perceptual_hash_url: "https://127.0.0.1:8935/phash/42".into(),
            },
        ],
        sig: result_sig.clone(),
    };
    let request = net::OrchestratorRequest {
        address: b_address.to_vec(),
        sig: sig::sign_orchestrator_request(&b).unwrap(),
        capabilities: Some(protocol::client::required_capabilities().to_message()),
        ignore_capacity_check: false,
    };
    let request_known = net::OrchestratorRequest {
        capabilities: None,
        ..request.clone()
    };
    let ping_value = vec![0x9a; 32];
    let ping_sig = o.sign(keccak256(&ping_value).as_slice()).unwrap();
    let flatten = sig::segment_flatten(
        b"manifest",
        42,
        &keccak256(&body),
        sig::profiles_hex(ladder.iter().map(|p| p.name.as_str())).as_bytes(),
    );

    let messages = vec![
        vector(
            "PingPong",
            &net::PingPong {
                value: ping_value.clone(),
            },
            true,
        ),
        vector(
            "EndTranscodingSessionRequest",
            &net::EndTranscodingSessionRequest {
                auth_token: Some(auth.clone()),
            },
            true,
        ),
        vector("OrchestratorRequest", &request, false),
        vector("OrchestratorRequest", &request_known, true),
        vector("OrchestratorInfo", &info, true),
        vector("PriceInfo", &price.to_message(), true),
        vector("Capabilities", &caps_message, true),
        vector("AuthToken", &auth, true),
        vector("SegData", &seg, true),
        vector("SegData", &seg_full, true),
        vector("VideoProfile", &ladder[1], true),
        vector(
            "TranscodeResult",
            &net::TranscodeResult {
                seq: 42,
                result: Some(net::transcode_result::Result::Data(transcode_data.clone())),
                info: Some(info.clone()),
            },
            true,
        ),
        vector(
            "TranscodeResult",
            &net::TranscodeResult {
                seq: 43,
                result: Some(net::transcode_result::Result::Error(
                    "OrchestratorBusy".into(),
                )),
                info: None,
            },
            true,
        ),
        vector("TranscodeData", &transcode_data, true),
        vector(
            "RegisterRequest",
            &net::RegisterRequest {
                secret: "transcoder secret".into(),
                capacity: 3,
                capabilities: Some(caps_message.clone()),
            },
            true,
        ),
        vector(
            "NotifySegment",
            &net::NotifySegment {
                url: "https://127.0.0.1:8935/task/4f0c.ts".into(),
                seg_data: Some(seg.clone()),
                task_id: 9,
                orch_id: "orchestrator".into(),
                profiles: Vec::new(),
            },
            true,
        ),
        vector("TicketParams", &params.to_message(), true),
        vector(
            "TicketExpirationParams",
            &params.expiration.to_message(),
            true,
        ),
        vector(
            "TicketSenderParams",
            &payments[0].ticket_sender_params[0],
            true,
        ),
        vector("Payment", &payments[0], true),
    ];

    // recipientRand commits to the sender, so go-livepeer's sender pays under B's key (with nonces
    // of its own, which `recipient` has not seen: `our_view` above checked B's tickets).
    let go_sender = b_address;
    let go_tickets = 25;
    let json = json!({
        "messages": messages,
        "orchestrator_request": {
            "signer": b_address.to_string(),
            "message": hex(b_address.to_checksum(None)),
            "sig": hex(&request.sig),
        },
        "segment": {
            "signer": b_address.to_string(),
            "message": hex(&flatten),
            "parts": [hex(seg.encode_to_vec())],
            "sig": hex(&seg.sig),
        },
        "transcode_result": {
            "signer": o_address.to_string(),
            "message": hex(renditions.iter().flat_map(|r| keccak256(r).0).collect::<Vec<u8>>()),
            "parts": renditions.iter().map(hex).collect::<Vec<_>>(),
            "sig": hex(&result_sig),
        },
        "ping": {
            "signer": o_address.to_string(),
            "message": hex(&ping_value),
            "sig": hex(&ping_sig),
        },
        "tickets": {
            "recipient": o_address.to_string(),
            "secret": hex(secret),
            "last_seen_l1_block": chain.block,
            "payments": payment_vectors,
            "go_sender_key": hex(B256::repeat_byte(0xb1)),
            "go_tickets": go_tickets,
        },
    });
    Ours {
        json,
        winners,
        recipient,
        recipient_block: chain.block,
        go_sender,
        go_tickets,
    }
}

/// Runs the named tests of the Go half on `dir` and returns their verbose log; every one must pass.
fn go_test(dir: &Path, tests: &[&str]) -> String {
    testkit::golivepeer::go_test(tests, [("LPT_INTEROP_DIR", dir)])
}

/// The wire type of go-livepeer's message `name` (its error result is a TranscodeResult too).
fn go_type(name: &str) -> &str {
    match name {
        "TranscodeResultError" => "TranscodeResult",
        other => other,
    }
}

/// Decodes `bytes` as the `net` message `name` and encodes it again with our types.
fn reencode(name: &str, bytes: &[u8]) -> Vec<u8> {
    fn with<M: Message + Default>(name: &str, bytes: &[u8]) -> Vec<u8> {
        M::decode(bytes)
            .unwrap_or_else(|e| panic!("{name}: our decoder refuses go-livepeer's bytes: {e}"))
            .encode_to_vec()
    }
    match name {
        "PingPong" => with::<net::PingPong>(name, bytes),
        "EndTranscodingSessionRequest" => with::<net::EndTranscodingSessionRequest>(name, bytes),
        "OrchestratorRequest" => with::<net::OrchestratorRequest>(name, bytes),
        "OrchestratorInfo" => with::<net::OrchestratorInfo>(name, bytes),
        "PriceInfo" => with::<net::PriceInfo>(name, bytes),
        "Capabilities" => with::<net::Capabilities>(name, bytes),
        "AuthToken" => with::<net::AuthToken>(name, bytes),
        "SegData" => with::<net::SegData>(name, bytes),
        "VideoProfile" => with::<net::VideoProfile>(name, bytes),
        "TranscodeResult" => with::<net::TranscodeResult>(name, bytes),
        "TranscodeData" => with::<net::TranscodeData>(name, bytes),
        "RegisterRequest" => with::<net::RegisterRequest>(name, bytes),
        "NotifySegment" => with::<net::NotifySegment>(name, bytes),
        "TicketParams" => with::<net::TicketParams>(name, bytes),
        "TicketSenderParams" => with::<net::TicketSenderParams>(name, bytes),
        "TicketExpirationParams" => with::<net::TicketExpirationParams>(name, bytes),
        "Payment" => with::<net::Payment>(name, bytes),
        other => panic!("no net message {other}"),
    }
}

#[test]
fn go_livepeer_accepts_our_wire_and_we_accept_theirs() {
    let dir = tempfile_dir();
    let mut ours = our_vectors();
    std::fs::write(dir.join("ours.json"), ours.json.to_string()).unwrap();

    let log = go_test(
        &dir,
        &[
            "TestOurMessagesDecodeAndReencodeWithGoLivepeerNet",
            "TestOurSignaturesVerifyWithGoLivepeerCrypto",
            "TestTicketsCrossGoLivepeerPm",
            "TestGoLivepeerMessagesForLpt",
        ],
    );
    let winners = ours.winners;
    assert!((1..44).contains(&winners), "{winners} of 44 coin flips won");
    assert!(
        log.contains(&format!(
            "go-livepeer's recipient accepted 44 tickets from lpt's sender, {winners} winning"
        )),
        "{log}"
    );

    let theirs: Value =
        serde_json::from_slice(&std::fs::read(dir.join("theirs.json")).unwrap()).unwrap();

    // lpt → go → lpt: go-livepeer's re-encoding of each of our messages decodes, with our types,
    // back to our original bytes.
    let sent = ours.json["messages"].as_array().unwrap();
    let reencoded = theirs["reencoded"].as_array().unwrap();
    assert_eq!(reencoded.len(), sent.len());
    for (ours_m, go_m) in sent.iter().zip(reencoded) {
        let name = ours_m["name"].as_str().unwrap();
        assert_eq!(go_m["name"], ours_m["name"]);
        assert_eq!(
            hex(reencode(name, &unhex(&go_m["hex"]))),
            ours_m["hex"].as_str().unwrap(),
            "{name}: lpt → go-livepeer → lpt changed the bytes"
        );
    }

    // go → lpt → go: our re-encoding of go-livepeer's messages goes back for the Go half to
    // decode into its original bytes.
    let messages = theirs["messages"].as_array().unwrap();
    let back: Vec<Value> = messages
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap();
            json!({ "name": name, "hex": hex(reencode(go_type(name), &unhex(&m["hex"]))) })
        })
        .collect();
    std::fs::write(dir.join("back.json"), Value::from(back).to_string()).unwrap();
    go_test(&dir, &["TestGoMessagesComeBackWhole"]);
    assert_eq!(messages.len(), 10, "{theirs}");
    // A few fields read back, so the decoding above means what it says.
    for m in messages {
        let bytes = unhex(&m["hex"]);
        match m["name"].as_str().unwrap() {
            "OrchestratorInfo" => {
                let info = net::OrchestratorInfo::decode(bytes.as_slice()).unwrap();
                let caps = info.capabilities.unwrap();
                assert_eq!(
                    caps.capacities.into_iter().collect::<Vec<_>>(),
                    [(0, 4), (1, 4), (12, 2)]
                );
                assert_eq!(caps.version, "0.7.9");
            }
            "SegData" => {
                let seg = net::SegData::decode(bytes.as_slice()).unwrap();
                assert_eq!(seg.full_profiles3[0].name, "P360p30fps16x9");
                assert_eq!(
                    seg.segment_parameters,
                    Some(net::SegParameters {
                        from: 100,
                        to: 1900
                    })
                );
            }
            "TranscodeResultError" => {
                let result = net::TranscodeResult::decode(bytes.as_slice()).unwrap();
                assert_eq!(
                    result.result,
                    Some(net::transcode_result::Result::Error(
                        "OrchestratorBusy".into()
                    ))
                );
            }
            _ => {}
        }
    }

    // Tickets made by go-livepeer's pm sender against our params: our recipient (the code our
    // orchestrator credits payments with) accepts and credits every one.
    let payment = net::Payment::decode(unhex(&theirs["payment"]).as_slice()).unwrap();
    assert_eq!(payment.sender, ours.go_sender.to_vec());
    let before = ours.recipient.balance(&ours.go_sender);
    let receipt = ours
        .recipient
        .receive_payment(&payment, ours.recipient_block)
        .unwrap();
    assert!(receipt.rejected.is_empty(), "{:?}", receipt.rejected);
    assert_eq!(u64::from(receipt.accepted), ours.go_tickets);
    let params = ReceivedPayment::from_message(&payment).unwrap().params;
    assert_eq!(
        ours.recipient.balance(&ours.go_sender) - before,
        params.ev() * U256::from(ours.go_tickets)
    );
    // And refuses the same tickets again.
    let again = ours
        .recipient
        .receive_payment(&payment, ours.recipient_block)
        .unwrap();
    assert_eq!(
        (again.accepted, again.rejected.len() as u64),
        (0, ours.go_tickets)
    );
}

/// A fresh directory under the system temp dir, removed by nobody: a failed run keeps it for a
/// look.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lpt-go-interop-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
