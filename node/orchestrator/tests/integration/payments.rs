//! The paid path end to end on a real anvil chain: discovery, 30 segments with tickets over TLS,
//! every rendition downloaded and counted by ffprobe against the billed pixels, the fee debited,
//! and winning tickets redeemed on chain once their params expired. Also the stop-redeeming fault.

use std::time::Duration;

use alloy::primitives::{B256, I256};
use protocol::sig::{self, SigPolicy};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_paid_segments_are_transcoded_billed_by_pixel_and_winners_redeemed() {
    let chain = Chain::start().await;
    let orchestrator = node_orchestrator::start(chain.config()).await.unwrap();
    let o_address = orchestrator.eth_address().unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    assert_eq!(session.info.transcoder, orchestrator.service_uri());
    assert_eq!(session.info.address, o_address.to_vec());
    assert!(session.info.ticket_params.is_some());
    assert_eq!(session.info.price_info.as_ref().unwrap().price_per_unit, 1);
    let token = session.info.auth_token.clone().unwrap();
    assert!(token.expiration > node_orchestrator::auth::unix_now() + 29 * 60);
    assert_eq!(
        session.info.capabilities.as_ref().unwrap().version,
        env!("CARGO_PKG_VERSION")
    );

    // Ping answers with O's signature over the value, which a go-livepeer broadcaster checks
    // against O's address (an echo of the value fails it).
    let channel = protocol::client::grpc_channel(orchestrator.service_uri()).unwrap();
    let mut grpc = protocol::net::orchestrator_client::OrchestratorClient::new(channel);
    let value = B256::repeat_byte(0x42).to_vec();
    let pong = grpc
        .ping(protocol::net::PingPong {
            value: value.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .value;
    assert_eq!(pong.len(), 65);
    sig::verify_ping(SigPolicy::OnChain, o_address, &value, &pong).unwrap();
    assert!(sig::verify_ping(SigPolicy::OnChain, o_address, b"other", &pong).is_err());

    let mut billed = 0u64;
    let mut probed = 0u64;
    for seq in 0..30 {
        let reply = session.send(seq).await.unwrap();
        let renditions = reply.renditions().unwrap().to_vec();
        assert_eq!(renditions.len(), 2, "segment {seq}");
        let mut downloaded = Vec::new();
        for (rendition, profile) in renditions.iter().zip(ladder()) {
            assert!(
                rendition
                    .url
                    .ends_with(&format!("/{}/{seq}.ts", profile.name)),
                "{}",
                rendition.url
            );
            let data = session.client.download(&rendition.url).await.unwrap();
            let (w, h, frames) = ffprobe(&data).await;
            assert_eq!((w, h), (profile.width, profile.height));
            assert!(
                frames >= 25,
                "segment {seq} {} has {frames} frames",
                profile.name
            );
            let pixels = u64::from(w) * u64::from(h) * frames;
            assert_eq!(
                rendition.pixels as u64, pixels,
                "segment {seq} {}",
                profile.name
            );
            billed += rendition.pixels as u64;
            probed += pixels;
            downloaded.push(data);
        }
        sig::verify_transcode_result(
            SigPolicy::OnChain,
            o_address,
            downloaded.iter().map(|d| d.as_ref()),
            reply.signature(),
        )
        .expect("O's signature covers the renditions");
    }
    assert_eq!(billed, probed);

    let s = status(&session.client).await;
    assert_eq!(s["segments"]["transcoded"], 30);
    assert_eq!(s["pixels_billed"], billed);
    assert_eq!(s["tickets"]["accepted"], s["tickets"]["received"]);
    let won = s["tickets"]["won"].as_u64().unwrap();
    let accepted = s["tickets"]["accepted"].as_u64().unwrap();
    assert!(accepted >= 30);
    assert!(won >= 1, "no winner among {accepted} tickets at p = 1/2");
    // Credit = accepted × EV − Σ fees (1 wei per pixel).
    let balance: I256 = s["balances"][0]["balance_wei"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = I256::try_from(accepted as i128 * 500_000_000_000i128 - billed as i128).unwrap();
    assert_eq!(balance, expected);

    // Let every ticket's params expire, then the queue redeems each winner.
    chain.chain.mine(10).await.unwrap();
    let s = wait_status(
        &session.client,
        Duration::from_secs(60),
        "redemptions",
        |s| s["redemptions"].as_array().unwrap().len() as u64 == won,
    )
    .await;
    let broker = chain.broker();
    for record in s["redemptions"].as_array().unwrap() {
        assert_eq!(record["status"], "redeemed", "{record}");
        assert_eq!(record["face_value"], "1000000000000");
        assert!(record["block"].as_u64().unwrap() > 0);
        let hash: B256 = record["ticket_hash"].as_str().unwrap().parse().unwrap();
        assert!(
            broker.is_ticket_used(hash).await.unwrap(),
            "ticket {hash} not used on chain"
        );
    }
    assert_eq!(s["tickets"]["redeemed"], won);
    assert_eq!(s["pending_redemptions"], 0);

    let metrics = session
        .client
        .http()
        .get(format!("{}/metrics", session.client.uri()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lpt_orchestrator_segments_transcoded_total 30\n"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("lpt_orchestrator_tickets_redeemed_total {won}\n")));
    session.client.end_session(token).await.unwrap();
    assert_eq!(status(&session.client).await["sessions"], 0);
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_redeeming_fault_keeps_winners_queued_until_switched_off() {
    let chain = Chain::start().await;
    let mut config = chain.config();
    config.faults.stop_redeeming = true;
    // Every ticket wins: EV equal to the face value.
    config.payments.ticket_ev = "1000000000000".into();
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);
    // B's policy refuses EV == faceValue, so sign by hand.
    let params = protocol::ticket::TicketParams::from_orchestrator_info(&session.info).unwrap();
    let sender = session.sender.as_mut().unwrap();
    let tickets = sender.sign_tickets(&params, 2).unwrap();
    let payment = protocol::ticket::payment_message(&params, sender.address(), &tickets);
    session.sender = None;
    let body = segments()[0].clone();
    let seg = session.segment(0, &body);
    session
        .submit(&seg, Some(&payment), body)
        .await
        .unwrap()
        .renditions()
        .unwrap();
    assert_eq!(status(&session.client).await["tickets"]["won"], 2);

    chain.chain.mine(10).await.unwrap();
    let block_now = chain.chain.block_number().await.unwrap();
    // The loop has seen the expired params several times and still redeemed nothing.
    let s = wait_status(
        &session.client,
        Duration::from_secs(30),
        "redemption passes",
        |s| {
            s["chain"]["block"].as_u64().unwrap() >= block_now
                && s["redemption_passes"].as_u64().unwrap() >= 5
        },
    )
    .await;
    let passes = s["redemption_passes"].as_u64().unwrap();
    let s = wait_status(
        &session.client,
        Duration::from_secs(30),
        "more passes",
        |s| s["redemption_passes"].as_u64().unwrap() >= passes + 3,
    )
    .await;
    assert_eq!(s["pending_redemptions"], 2);
    assert_eq!(s["redemptions"].as_array().unwrap().len(), 0);
    assert_eq!(
        chain.chain.block_number().await.unwrap(),
        block_now,
        "no tx was sent"
    );

    set_faults(&session.client, serde_json::json!({})).await;
    let s = wait_status(
        &session.client,
        Duration::from_secs(30),
        "redemptions",
        |s| s["redemptions"].as_array().unwrap().len() == 2,
    )
    .await;
    assert_eq!(s["pending_redemptions"], 0);
    assert!(chain.chain.block_number().await.unwrap() >= block_now + 2);
    orchestrator.shutdown().await;
}
