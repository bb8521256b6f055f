//! Hostile payers against the orchestrator: unfunded senders, oversized ticket batches, replays at
//! the expiry edge (the last is a unit test of the recipient, where the block can be driven).
//!
//! Each test runs a real anvil chain with the TicketBroker, a paying sender whose deposit and
//! reserve it sets itself, and checks both the refusal on the wire and that nothing was credited.

use alloy::primitives::{I256, U256};
use alloy::signers::local::PrivateKeySigner;
use protocol::chain::TicketBrokerClient;
use protocol::client::{ClientError, OrchestratorClient};
use protocol::sig::NodeKey;
use protocol::ticket::{SenderLimits, TicketParams, TicketSender, payment_message};
use testkit::chain::ETH;

use crate::common::*;

/// The EV of the test orchestrator's tickets (`Chain::config`).
const EV: u64 = 500_000_000_000;
/// Its face value.
const FACE_VALUE: u64 = 1_000_000_000_000;

fn broker(chain: &Chain, payer: &PrivateKeySigner) -> TicketBrokerClient {
    chain
        .contracts
        .ticket_broker(chain.chain.provider(payer.clone()))
}

fn balances(status: &serde_json::Value) -> Vec<I256> {
    status["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["balance_wei"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// go-livepeer quotes no params to a sender whose reserve does not back a ticket: a deposit
/// alone is not enough, nor a reserve allocation below the ticket EV; once it is above, the face
/// value is the allocation itself (below the configured 1e12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfunded_sender_gets_no_ticket_params_until_its_reserve_backs_a_ticket() {
    let chain = Chain::start().await;
    let mut config = chain.config();
    config.payments.sender_refresh_ms = 0;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let payer = chain.chain.signer(6);
    let key = NodeKey::Account(payer.clone());
    let client = OrchestratorClient::connect(orchestrator.service_uri()).unwrap();
    let refused = |result: Result<protocol::net::OrchestratorInfo, ClientError>, what: &str| {
        let err = result.expect_err(what).to_string();
        assert!(err.contains("insufficient sender reserve"), "{what}: {err}");
    };

    refused(client.get_orchestrator(&key, None).await, "no funds");
    let broker = broker(&chain, &payer);
    broker.fund_deposit(U256::from(ETH)).await.unwrap();
    refused(client.get_orchestrator(&key, None).await, "a deposit only");
    broker.fund_reserve(U256::from(EV - 1)).await.unwrap();
    refused(
        client.get_orchestrator(&key, None).await,
        "a reserve below the EV",
    );

    let reserve = U256::from(EV - 1) + U256::from(300_000_000_000u64);
    broker
        .fund_reserve(U256::from(300_000_000_000u64))
        .await
        .unwrap();
    let info = client.get_orchestrator(&key, None).await.unwrap();
    let params = TicketParams::from_orchestrator_info(&info).unwrap();
    assert_eq!(params.face_value, reserve);
    assert!(params.face_value < U256::from(FACE_VALUE));
    // The funded broadcaster of the chain still gets the configured face value.
    let funded = NodeKey::Account(chain.broadcaster.clone());
    let info = client.get_orchestrator(&funded, None).await.unwrap();
    let params = TicketParams::from_orchestrator_info(&info).unwrap();
    assert_eq!(params.face_value, U256::from(FACE_VALUE));
    orchestrator.shutdown().await;
}

/// A sender with a reserve of two face values and no deposit pays two winning tickets: while
/// they wait for redemption its max float is zero, so its next payment is refused whole with
/// go-livepeer's error and nothing more is credited or transcoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_whose_unredeemed_winners_use_up_its_reserve_is_refused_more_work() {
    let chain = Chain::start().await;
    let mut config = chain.config();
    // Every ticket wins (EV = face value) and winners stay unredeemed.
    config.payments.ticket_ev = FACE_VALUE.to_string();
    config.faults.stop_redeeming = true;
    config.payments.expiration_blocks = 100;
    config.payments.sender_refresh_ms = 0;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let payer = chain.chain.signer(6);
    broker(&chain, &payer)
        .fund_reserve(U256::from(2 * FACE_VALUE))
        .await
        .unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), payer.clone()).await;
    session.ladder.truncate(1);
    let params = TicketParams::from_orchestrator_info(&session.info).unwrap();
    assert_eq!(params.face_value, U256::from(FACE_VALUE));
    // B's policy refuses EV == faceValue: sign by hand.
    let mut sender = TicketSender::new(payer.clone(), SenderLimits::default());
    let mut send = async |seq: usize, tickets: u64| {
        let payment = payment_message(
            &params,
            payer.address(),
            &sender.sign_tickets(&params, tickets).unwrap(),
        );
        let body = segments()[seq].clone();
        let seg = session.segment(seq as i64, &body);
        session.submit(&seg, Some(&payment), body).await
    };

    send(0, 2).await.unwrap().renditions().unwrap();
    let before = status(&session.client).await;
    assert_eq!(before["tickets"]["won"], 2);
    assert_eq!(before["pending_redemptions"], 2);

    let (status_code, reason) = refused(send(1, 1).await);
    assert_eq!(status_code, 400);
    assert_eq!(reason.trim(), "insufficient sender reserve");
    let after = status(&session.client).await;
    assert_eq!(after["tickets"]["accepted"], 2);
    assert_eq!(after["segments"]["transcoded"], 1);
    assert_eq!(balances(&after), balances(&before));
    orchestrator.shutdown().await;
}

/// A payment with more tickets than one params set can take is refused whole before anything is
/// credited (the nonce cap alone would credit the first 600 and refuse one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_ticket_batch_is_refused_whole() {
    let chain = Chain::start().await;
    let orchestrator = node_orchestrator::start(chain.config()).await.unwrap();
    let session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    let params = TicketParams::from_orchestrator_info(&session.info).unwrap();
    let mut sender = TicketSender::new(chain.broadcaster.clone(), SenderLimits::default());
    let tickets = sender.sign_tickets(&params, 601).unwrap();
    let payment = payment_message(&params, chain.broadcaster.address(), &tickets);
    let body = segments()[0].clone();
    let seg = session.segment(0, &body);
    let (status_code, reason) = refused(session.submit(&seg, Some(&payment), body).await);
    assert_eq!(status_code, 400);
    assert!(
        reason.contains("payment carries 601 tickets, more than the 600 a payment may carry"),
        "{reason}"
    );
    let s = status(&session.client).await;
    assert_eq!(s["tickets"]["received"], 0);
    assert_eq!(s["tickets"]["accepted"], 0);
    assert!(balances(&s).iter().all(|b| b.is_zero()), "{s:#}");
    orchestrator.shutdown().await;
}
