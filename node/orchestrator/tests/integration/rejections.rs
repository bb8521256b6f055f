//! Every refusal answers with the documented status and reason (PROTOCOL.md §1): bad payment
//! header 402, bad segment signature / hash mismatch / expired auth token 403, insufficient
//! balance 400, over capacity 403 `OrchestratorCapped`, no transcoder 403 `OrchestratorBusy`.

use node_orchestrator::config::TranscodeMode;
use node_orchestrator::profiles::wire_ladder;
use protocol::client::segment_data;
use protocol::headers;
use protocol::sig::NodeKey;
use protocol::ticket::{TicketParams, payment_message};
use testkit::chain::ETH;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_node_refuses_each_bad_request_with_its_status_and_reason() {
    let chain = Chain::start().await;
    let orchestrator = node_orchestrator::start(chain.config()).await.unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    let body = segments()[0].clone();
    let wire = wire_ladder(&ladder());
    let seg = segment_data(&session.key, &session.info, b"m", 0, &body, 1000, &wire).unwrap();
    let params = TicketParams::from_orchestrator_info(&session.info).unwrap();
    let sender = session.sender.as_mut().unwrap();
    let good_payment = sender
        .payment(
            &params,
            alloy::primitives::U256::from(1000),
            params.expiration_block - 5,
            alloy::primitives::U256::from(ETH),
        )
        .unwrap();

    // Bad payment header: 402.
    let (status, reason) = post_segment(
        &session.client,
        Some(&headers::encode_segment(&seg)),
        Some("%%% not base64"),
        body.clone(),
    )
    .await;
    assert_eq!(status, 402);
    assert!(
        reason.contains("Livepeer-Payment") && reason.contains("base64"),
        "{reason}"
    );

    // Segment signed by another key: 403.
    let stranger = NodeKey::Account(chain.chain.signer(5));
    let forged = segment_data(&stranger, &session.info, b"m", 0, &body, 1000, &wire).unwrap();
    let (status, reason) = refused(
        session
            .submit(&forged, Some(&good_payment), body.clone())
            .await,
    );
    assert_eq!(status, 403);
    assert!(reason.contains("invalid segment signature"), "{reason}");

    // Body differs from the signed hash: 403.
    let (status, reason) = refused(
        session
            .submit(&seg, Some(&good_payment), segments()[1].clone())
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(reason, "segment hash mismatch");

    // A fresh session paying with no tickets has no credit: 400.
    let mut broke = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    let broke_seg = segment_data(&broke.key, &broke.info, b"m", 0, &body, 1000, &wire).unwrap();
    let broke_params = TicketParams::from_orchestrator_info(&broke.info).unwrap();
    let empty = payment_message(&broke_params, chain.broadcaster.address(), &[]);
    broke.sender = None;
    let (status, reason) = refused(broke.submit(&broke_seg, Some(&empty), body.clone()).await);
    assert_eq!((status, reason.as_str()), (400, "Insufficient balance"));

    // The ticket was accepted once (with the hash-mismatched upload); replaying it is refused.
    let (status, reason) = refused(
        session
            .submit(&seg, Some(&good_payment), body.clone())
            .await,
    );
    assert_eq!(status, 400);
    assert!(reason.contains("nonce 1 already used"), "{reason}");

    let s = crate::common::status(&session.client).await;
    let failures = &s["segments"]["failures"];
    assert_eq!(failures["bad_payment_header"], 1);
    assert_eq!(failures["bad_signature"], 1);
    assert_eq!(failures["hash_mismatch"], 1);
    assert_eq!(failures["insufficient_balance"], 1);
    assert_eq!(failures["payment_rejected"], 1);
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_auth_token_is_refused() {
    let mut config = offchain_config();
    config.limits.auth_token_secs = 0;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::offchain(orchestrator.service_uri()).await;
    let (status, reason) = refused(session.send(0).await);
    assert_eq!(status, 403);
    assert!(reason.starts_with("expired auth token"), "{reason}");
    // A token from another node is invalid rather than expired.
    let other = node_orchestrator::start(offchain_config()).await.unwrap();
    let mut foreign = Session::offchain(other.service_uri()).await;
    foreign.client = session.client.clone();
    let (status, reason) = refused(foreign.send(0).await);
    assert_eq!((status, reason.as_str()), (403, "invalid auth token"));
    orchestrator.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_the_limit_get_orchestrator_capped() {
    let mut config = offchain_config();
    config.limits.max_sessions = 1;
    config.transcode.mode = TranscodeMode::PassThrough;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut first = Session::offchain(orchestrator.service_uri()).await;
    first.send(0).await.unwrap().renditions().unwrap();
    let mut second = Session::offchain(orchestrator.service_uri()).await;
    let (status, reason) = refused(second.send(0).await);
    assert_eq!((status, reason.as_str()), (403, "OrchestratorCapped"));
    // The first session keeps working; ending it frees the slot.
    first.send(1).await.unwrap().renditions().unwrap();
    first
        .client
        .end_session(first.info.auth_token.clone().unwrap())
        .await
        .unwrap();
    second.send(0).await.unwrap().renditions().unwrap();
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_without_transcoders_is_orchestrator_busy() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some("s".into());
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::offchain(orchestrator.service_uri()).await;
    let (status, reason) = refused(session.send(0).await);
    assert_eq!((status, reason.as_str()), (403, "OrchestratorBusy"));
    orchestrator.shutdown().await;
}
