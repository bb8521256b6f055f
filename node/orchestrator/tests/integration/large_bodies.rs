//! Segments large enough to take the node's concurrent path (from 256 KB the header checks run on
//! a blocking thread while the body is hashed on another as it arrives) keep the contract small
//! ones have: the result signature verifies over the downloaded renditions, hash and signature
//! failures are refused with their reasons (which the client receives, although the refusal is
//! decided while it is still uploading), a header refusal beats a trickled body, and a trickled
//! upload ends in a 408 that gives back the capacity slot its session took.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use base64::Engine;
use bytes::Bytes;
use node_orchestrator::config::TranscodeMode;
use node_orchestrator::profiles::wire_ladder;
use protocol::client::segment_data;
use protocol::headers;
use protocol::net::{Payment, SegData};
use protocol::sig::{self, NodeKey, SigPolicy};
use protocol::ticket::TicketParams;
use testkit::chain::ETH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const LARGE: usize = 1_500_000;

/// `LARGE` bytes that differ from `large_body(seed')` for any other seed.
fn large_body(seed: u8) -> Bytes {
    (0..LARGE)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// The segment header for `body` signed by `key`, and a payment covering a second of the ladder.
fn paid(session: &mut Session, key: &NodeKey, seq: i64, body: &Bytes) -> (SegData, Payment) {
    let seg = session.segment_by(key, seq, body).unwrap();
    let params = TicketParams::from_orchestrator_info(&session.info).unwrap();
    let pixels: u64 = session
        .ladder
        .iter()
        .map(|p| u64::from(p.width * p.height) * 30)
        .sum();
    let payment = session
        .sender
        .as_mut()
        .unwrap()
        .payment(
            &params,
            params.price.fee(pixels),
            params.expiration_block - 5,
            U256::from(ETH),
        )
        .unwrap();
    (seg, payment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_segments_keep_the_contract_and_a_verifiable_result_signature() {
    let chain = Chain::start().await;
    let mut config = chain.config();
    config.transcode.mode = TranscodeMode::PassThrough;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    let key = session.key.clone();

    // Accepted: every rendition downloads as the source (pass-through) and O's signature over
    // them verifies, although the node reused the upload's hash instead of hashing them again.
    let body = large_body(0);
    let (seg, payment) = paid(&mut session, &key, 0, &body);
    let reply = session
        .submit(&seg, Some(&payment), body.clone())
        .await
        .unwrap();
    let renditions = reply.renditions().unwrap();
    assert_eq!(renditions.len(), session.ladder.len());
    let mut downloaded = Vec::new();
    for rendition in renditions {
        let data = session.client.download(&rendition.url).await.unwrap();
        assert_eq!(data, body);
        downloaded.push(data);
    }
    sig::verify_transcode_result(
        SigPolicy::OnChain,
        chain.orchestrator.address(),
        downloaded.iter().map(|d| d.as_ref()),
        reply.signature(),
    )
    .expect("result signature over the downloaded renditions");
    session.info = reply.info().unwrap().clone();

    // One byte off from what the header's hash promises: refused after the upload.
    let (seg, payment) = paid(&mut session, &key, 1, &body);
    let mut changed = body.to_vec();
    changed[LARGE / 2] ^= 1;
    let (code, reason) = refused(
        session
            .submit(&seg, Some(&payment), Bytes::from(changed))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "segment hash mismatch"));

    // Signed by a key that is not the payment's sender: refused by the header checks that ran
    // while the body was arriving.
    let stranger = NodeKey::Account(chain.chain.signer(5));
    let (seg, payment) = paid(&mut session, &stranger, 2, &body);
    let (code, reason) = refused(session.submit(&seg, Some(&payment), body.clone()).await);
    assert_eq!(code, 403);
    assert!(reason.contains("invalid segment signature"), "{reason}");

    let s = status(&session.client).await;
    assert_eq!(s["segments"]["transcoded"], 1);
    assert_eq!(s["segments"]["failures"]["hash_mismatch"], 1);
    assert_eq!(s["segments"]["failures"]["bad_signature"], 1);
    orchestrator.shutdown().await;
}

/// Sends a request head declaring a body of `declared` bytes with `segment_header`, then only
/// 100 bytes of it, and returns the response text and how long it took to come.
async fn trickle(
    addr: std::net::SocketAddr,
    segment_header: &str,
    declared: usize,
) -> (String, Duration) {
    let mut stream = tls_connect(addr).await;
    let head = format!(
        "POST /segment HTTP/1.1\r\nHost: localhost\r\n{}: {segment_header}\r\nContent-Length: {declared}\r\n\r\n",
        headers::SEGMENT_HEADER,
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x47; 100]).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf))
        .await
        .expect("the node answers a trickled upload");
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_uploads_are_answered_and_release_their_session_slot() {
    let upload_timeout = Duration::from_millis(1500);
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.upload_timeout_ms = upload_timeout.as_millis() as u64;
    config.limits.max_sessions = 1;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let addr = orchestrator.local_addr();

    // Garbage header, body trickled: the checks' refusal, not a 408, once the upload deadline
    // has let the node drain what the client sends (so the client can read the reason).
    let garbage =
        base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    let (text, _) = trickle(addr, &garbage, LARGE).await;
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("protobuf"), "{text}");

    // A valid header from a fresh session, body trickled: 408 once the deadline passes, and the
    // slot is free again, on both paths (small declared bodies are checked before reading).
    for declared in [50_000, LARGE] {
        let session = Session::offchain(orchestrator.service_uri()).await;
        let seg = segment_data(
            &session.key,
            &session.info,
            b"m",
            0,
            &large_body(1)[..declared],
            1000,
            &wire_ladder(&ladder()),
        )
        .unwrap();
        let (text, took) = trickle(addr, &headers::encode_segment(&seg), declared).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{declared}: {text}");
        assert!(text.contains("body not received within"), "{text}");
        assert!(took >= upload_timeout, "408 after only {took:?}");
        assert_eq!(status(&session.client).await["sessions"], 0, "{declared}");
    }

    // Those sessions never transcoded anything, so the single slot serves another session.
    let mut second = Session::offchain(orchestrator.service_uri()).await;
    assert_eq!(
        status(&second.client).await["segments"]["failures"]["bad_body"],
        2
    );
    let reply = second
        .send(0)
        .await
        .expect("the released slot serves a new session");
    assert_eq!(reply.renditions().unwrap().len(), ladder().len());
    assert_eq!(status(&second.client).await["sessions"], 1);

    // A session that has transcoded keeps its slot when a later upload of it fails.
    let seg = segment_data(
        &second.key,
        &second.info,
        b"m",
        1,
        &large_body(2),
        1000,
        &wire_ladder(&ladder()),
    )
    .unwrap();
    let (text, _) = trickle(addr, &headers::encode_segment(&seg), LARGE).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(status(&second.client).await["sessions"], 1);
    let (status_code, reason) = refused(
        Session::offchain(orchestrator.service_uri())
            .await
            .send(2)
            .await,
    );
    assert_eq!((status_code, reason.as_str()), (403, "OrchestratorCapped"));
    orchestrator.shutdown().await;
}
