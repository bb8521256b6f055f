//! The broadcaster with real orchestrators from `node-orchestrator`: the ladder end to end,
//! failover when an orchestrator dies, and ticket payments redeemed on an anvil chain.

use std::time::Duration;

use alloy::primitives::U256;
use node_orchestrator::config::{ChainConfig, OrchestratorConfig};
use protocol::chain::{BrokerEvent, Contracts, EventReader, LocalChain};
use testkit::chain::{BROADCASTER, ORCHESTRATOR, TestChain, long_rounds};

use crate::support::*;

fn orchestrator_config() -> OrchestratorConfig {
    let mut config = OrchestratorConfig::offchain();
    config.transcode.x264_preset = "ultrafast".into();
    config.transcode.encoder_threads = 1;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_20s_through_an_orchestrator_and_every_rendition_reads_back() {
    let o = node_orchestrator::start(orchestrator_config())
        .await
        .unwrap();
    let b = start(config(
        "P240p30fps16x9,P360p30fps16x9",
        vec![o.service_uri().to_string()],
    ))
    .await;
    let publisher = ffmpeg_publish(&b.rtmp_url("ladder"), 20, "640x360");
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "ffmpeg publish failed: {stderr}");
    wait_finished(&b, "ladder", Duration::from_secs(60)).await;

    let base = format!("http://{}", b.http_addr);
    let (_, master) = get_text(&format!("{base}/stream/ladder.m3u8")).await;
    assert!(
        master.contains("RESOLUTION=426x240\nladder/P240p30fps16x9.m3u8"),
        "{master}"
    );
    assert!(
        master.contains("RESOLUTION=640x360\nladder/P360p30fps16x9.m3u8"),
        "{master}"
    );
    let doc = status(&b).await;
    let segs = doc["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 10, "{doc}");
    for s in segs {
        assert_eq!(s["outcome"], "ok", "{s}");
        assert_eq!(s["orchestrator"], o.service_uri(), "{s}");
        let a = &s["attempts"][0];
        assert!(
            a["upload_ms"].is_u64() && a["transcode_ms"].is_u64() && a["download_ms"].is_u64(),
            "{s}"
        );
    }
    for (rendition, size) in [
        ("source", (640, 360)),
        ("P240p30fps16x9", (426, 240)),
        ("P360p30fps16x9", (640, 360)),
    ] {
        let url = format!("{base}/stream/ladder/{rendition}.m3u8");
        let (_, media) = get_text(&url).await;
        assert_eq!(media.matches(".ts\n").count(), 10, "{rendition}: {media}");
        let (ok, err) = ffmpeg_read(&url);
        assert!(
            ok && err.trim().is_empty(),
            "ffmpeg reading {rendition}: {err}"
        );
        let (w, h, dur) = ffprobe_video(&url);
        assert_eq!((w, h), size, "{rendition}");
        assert!((dur - 20.0).abs() < 0.6, "{rendition} lasts {dur} s");
    }
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("lpt_broadcaster_segments_total{outcome=\"ok\"} 10"),
        "{metrics}"
    );
    b.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_serving_orchestrator_moves_the_stream_to_the_other() {
    let o1 = node_orchestrator::start(orchestrator_config())
        .await
        .unwrap();
    let o2 = node_orchestrator::start(orchestrator_config())
        .await
        .unwrap();
    let uris = vec![o1.service_uri().to_string(), o2.service_uri().to_string()];
    let b = start(config("P144p30fps16x9", uris.clone())).await;
    let publisher = ffmpeg_publish(&b.rtmp_url("failover"), 16, "320x180");
    // Wait until two segments were delivered, then kill whichever orchestrator served them.
    let state = b.state().clone();
    wait_for("two delivered segments", Duration::from_secs(30), || {
        state
            .records()
            .records()
            .iter()
            .filter(|r| r.outcome == "ok")
            .count()
            >= 2
    })
    .await;
    let serving = state.records().records()[0].orchestrator.clone().unwrap();
    let (victim, survivor) = if serving == uris[0] {
        (o1, o2)
    } else {
        (o2, o1)
    };
    victim.shutdown().await;
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "{stderr}");
    wait_finished(&b, "failover", Duration::from_secs(60)).await;

    let records = state.records().records();
    assert_eq!(records.len(), 8, "16 s at 2 s: {records:#?}");
    let failed: Vec<_> = records.iter().filter(|r| r.outcome != "ok").collect();
    assert!(failed.len() <= 1, "more than one segment lost: {failed:#?}");
    let moved: Vec<_> = records.iter().filter(|r| r.attempts.len() > 1).collect();
    assert!(!moved.is_empty(), "no segment moved: {records:#?}");
    for r in &moved {
        assert_eq!(r.attempts[0].orchestrator, serving, "{r:#?}");
        assert!(r.attempts[0].error.is_some(), "{r:#?}");
        assert_eq!(
            r.orchestrator.as_deref(),
            Some(survivor.service_uri()),
            "{r:#?}"
        );
    }
    // The choice is sticky: everything before the move went to the orchestrator that died.
    for r in records
        .iter()
        .take_while(|r| r.attempts.len() == 1 && r.outcome == "ok")
    {
        assert_eq!(r.orchestrator.as_deref(), Some(serving.as_str()), "{r:#?}");
    }
    let after = records.iter().skip_while(|r| r.attempts.len() == 1).skip(1);
    for r in after {
        assert_eq!(
            r.orchestrator.as_deref(),
            Some(survivor.service_uri()),
            "{r:#?}"
        );
    }
    let base = format!("http://{}", b.http_addr);
    let (_, media) = get_text(&format!("{base}/stream/failover/P144p30fps16x9.m3u8")).await;
    assert!(media.matches(".ts\n").count() >= 7, "{media}");
    let (ok, err) = ffmpeg_read(&format!("{base}/stream/failover/P144p30fps16x9.m3u8"));
    assert!(ok, "{err}");
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("lpt_broadcaster_failovers_total 1"),
        "{metrics}"
    );
    b.shutdown().await;
    survivor.shutdown().await;
}

/// A funded broadcaster paying one on-chain orchestrator on a fresh anvil chain: 1e6 wei per
/// pixel, tickets of face value 1e12 winning with probability 1/2 (EV 5e11), params valid for
/// `expiration_blocks`.
struct PaidPair {
    chain: LocalChain,
    contracts: Contracts,
    broadcaster: alloy::signers::local::PrivateKeySigner,
    orchestrator: alloy::signers::local::PrivateKeySigner,
    o: node_orchestrator::RunningOrchestrator,
    b: node_broadcaster::RunningBroadcaster,
    _dir: tempfile::TempDir,
}

impl PaidPair {
    async fn start(expiration_blocks: u64) -> Self {
        let TestChain { chain, contracts } = TestChain::funded(long_rounds()).await;
        let broadcaster = chain.signer(BROADCASTER);
        let orchestrator = chain.signer(ORCHESTRATOR);
        let mut oc = orchestrator_config();
        oc.offchain = false;
        oc.payments.price_per_unit = 1_000_000;
        oc.payments.pixels_per_unit = 1;
        oc.payments.face_value = Some("1000000000000".into());
        oc.payments.ticket_ev = "500000000000".into();
        oc.payments.expiration_blocks = expiration_blocks;
        oc.chain = Some(ChainConfig {
            rpc_url: chain.url().to_string(),
            private_key: alloy::hex::encode_prefixed(orchestrator.to_bytes()).into(),
            ticket_broker: contracts.ticket_broker.to_string(),
            rounds_manager: contracts.rounds_manager.to_string(),
            poll_ms: 100,
        });
        let o = node_orchestrator::start(oc).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("broadcaster.key");
        std::fs::write(&key_file, alloy::hex::encode(broadcaster.to_bytes())).unwrap();
        let mut bc = config("P144p30fps16x9", vec![o.service_uri().to_string()]);
        bc.payment.eth_url = Some(chain.url().to_string());
        bc.payment.ticket_broker = Some(contracts.ticket_broker.to_string());
        bc.payment.key_file = Some(key_file);
        let b = start(bc).await;
        assert_eq!(b.eth_address, Some(broadcaster.address()));
        Self {
            chain,
            contracts,
            broadcaster,
            orchestrator,
            o,
            b,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_pay_for_the_pixels_and_winners_are_redeemed_on_chain() {
    let PaidPair {
        chain,
        contracts,
        broadcaster,
        orchestrator,
        o,
        b,
        _dir,
    } = PaidPair::start(5).await;
    let publisher = ffmpeg_publish(&b.rtmp_url("paid"), 12, "320x180");
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "{stderr}");
    wait_finished(&b, "paid", Duration::from_secs(60)).await;

    let records = b.state().records().records();
    assert_eq!(records.len(), 6, "{records:#?}");
    assert!(records.iter().all(|r| r.outcome == "ok"), "{records:#?}");
    let tickets: u64 = records.iter().map(|r| r.attempts[0].tickets).sum();
    let pixels: u64 = records.iter().map(|r| r.attempts[0].pixels).sum();
    let ev = 500_000_000_000u128;
    // Tickets cover the billed pixels at the price, with at most the margin plus one ticket each.
    let fee = u128::from(pixels) * 1_000_000;
    assert!(
        u128::from(tickets) * ev >= fee,
        "{tickets} tickets do not cover {pixels} pixels"
    );
    assert!(
        u128::from(tickets) * ev <= fee * 15 / 10 + ev * records.len() as u128,
        "overpaid: {tickets} tickets for {pixels} pixels"
    );

    // Let every ticket's params expire; the orchestrator then redeems each winner.
    let reader = EventReader::new(chain.reader(), contracts.ticket_broker);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let redeemed = loop {
        chain.mine(10).await.unwrap();
        let latest = reader.latest_block().await.unwrap();
        let redeemed: Vec<_> = reader
            .read(0, latest)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                BrokerEvent::WinningTicketRedeemed {
                    sender,
                    recipient,
                    face_value,
                    ..
                } => Some((sender, recipient, face_value)),
                _ => None,
            })
            .collect();
        // Winners ~ Binomial(tickets, 1/2): wait for at least the lower 4-sigma bound.
        let sigma = (tickets as f64 / 4.0).sqrt();
        let low = (tickets as f64 / 2.0 - 4.0 * sigma).max(1.0) as usize;
        if redeemed.len() >= low || tokio::time::Instant::now() > deadline {
            let high = (tickets as f64 / 2.0 + 4.0 * sigma).ceil() as usize;
            assert!(
                redeemed.len() >= low && redeemed.len() <= high,
                "{} winners of {tickets} tickets",
                redeemed.len()
            );
            break redeemed;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for (sender, recipient, face_value) in &redeemed {
        assert_eq!(*sender, broadcaster.address());
        assert_eq!(*recipient, orchestrator.address());
        assert_eq!(*face_value, U256::from(1_000_000_000_000u64));
    }
    b.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_with_accept_multipart_returns_every_rendition() {
    let o = node_orchestrator::start(orchestrator_config())
        .await
        .unwrap();
    let b = start(config("P144p30fps16x9", vec![o.service_uri().to_string()])).await;
    let source = reference_transcoder::generate(&reference_transcoder::SourceConfig {
        width: 320,
        height: 180,
        duration_secs: 2.0,
        x264_preset: "ultrafast".into(),
        ..Default::default()
    })
    .unwrap();
    let segment = source.ts_segments(2.0).unwrap().remove(0);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/live/pushmp/0.ts", b.http_addr))
        .header("Content-Duration", "2000")
        .header("Accept", "multipart/mixed")
        .body(segment.data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .expect(&content_type)
        .to_string();
    let body = resp.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(
        text.matches(&format!("--{boundary}\r\n")).count(),
        1,
        "one part per rendition"
    );
    assert!(text.contains("Rendition-Name: P144p30fps16x9\r\n"));
    assert!(text.contains("Content-Type: video/mp2t\r\n"));
    // The part's body is the rendition: the same bytes HLS serves, 256x144.
    let (_, served) = {
        let r = reqwest::get(format!(
            "http://{}/stream/pushmp/P144p30fps16x9/0.ts",
            b.http_addr
        ))
        .await
        .unwrap();
        (r.status(), r.bytes().await.unwrap())
    };
    assert!(!served.is_empty());
    assert!(
        body.windows(served.len()).any(|w| w == served.as_ref()),
        "multipart part differs from the HLS segment"
    );
    let (w, h, _) = ffprobe_video(&format!(
        "http://{}/stream/pushmp/P144p30fps16x9/0.ts",
        b.http_addr
    ));
    assert_eq!((w, h), (256, 144));
    b.shutdown().await;
    o.shutdown().await;
}

/// Every stream a broadcaster routes to one orchestrator shares its session (one auth token) and
/// so one balance at O: streams whose segments are cut at the same moment must each pay their
/// own way, or one is sent without tickets on the strength of another's unprocessed payment and
/// refused "Insufficient balance"; and O's per-session limits must hold every stream at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_paid_streams_sharing_one_session_are_never_refused() {
    // Params that outlive the run: a refresh would start a new session, which is not under test.
    let pair = PaidPair::start(1000).await;
    let streams: Vec<String> = (0..10).map(|i| format!("paid-{i}")).collect();
    let publishers: Vec<_> = streams
        .iter()
        .map(|id| ffmpeg_publish(&pair.b.rtmp_url(id), 8, "160x90"))
        .collect();
    for publisher in publishers {
        let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
        assert!(exit.success(), "{stderr}");
    }
    for id in &streams {
        wait_finished(&pair.b, id, Duration::from_secs(60)).await;
    }
    let records = pair.b.state().records().records();
    assert_eq!(records.len(), 10 * 4, "{records:#?}");
    let refused: Vec<_> = records
        .iter()
        .flat_map(|r| r.attempts.iter().filter_map(|a| a.error.clone()))
        .collect();
    assert_eq!(refused, Vec::<String>::new());
    assert!(records.iter().all(|r| r.outcome == "ok"), "{records:#?}");
    pair.b.shutdown().await;
    pair.o.shutdown().await;
}
