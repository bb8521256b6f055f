//! The orchestrator's own per-segment overhead: everything except transcoding.
//!
//! An on-chain orchestrator (real anvil, priced, tickets validated, segment signatures checked,
//! result signed) runs in pass-through mode, so each rendition is a copy of the source and no
//! FFmpeg work is done. A broadcaster client on loopback sends a 2 s 720p segment with one ticket,
//! over TLS, and waits for the `TranscodeResult`; payments and segment headers are signed before
//! the clock starts, so the time is the orchestrator's (plus loopback TLS). Prints p50/p90/p99/max
//! over the measured segments after a warm-up.
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/lpt-target-orchestrator cargo bench -p node-orchestrator --bench overhead`

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use bytes::Bytes;
use node_orchestrator::client::{OrchestratorClient, SegmentRequest, segment_data};
use node_orchestrator::config::{ChainConfig, OrchestratorConfig, TranscodeMode};
use protocol::chain::{Contracts, DeployConfig, LocalChain};
use protocol::sig::NodeKey;
use protocol::ticket::{SenderLimits, TicketParams, TicketSender};
use reference_transcoder::SourceConfig;

const WARMUP: usize = 20;
const MEASURED: usize = 300;
const ETH: u64 = 1_000_000_000_000_000_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends `WARMUP + MEASURED` segments of `body` (signed before timing) and returns the sorted
/// measured round trips.
async fn measure(
    client: &OrchestratorClient,
    key: &NodeKey,
    info: &protocol::net::OrchestratorInfo,
    params: &TicketParams,
    sender: &mut TicketSender,
    ladder: &[reference_transcoder::Profile],
    body: &Bytes,
) -> Vec<Duration> {
    static SEQ: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let prepared: Vec<_> = (0..WARMUP + MEASURED)
        .map(|_| {
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seg = segment_data(key, info, b"bench", seq, body, 2000, ladder).unwrap();
            let tickets = sender.sign_tickets(params, 1).unwrap();
            let payment = protocol::ticket::payment_message(params, sender.address(), &tickets);
            (seg, payment)
        })
        .collect();
    let mut times = Vec::with_capacity(MEASURED);
    for (i, (seg, payment)) in prepared.iter().enumerate() {
        let started = Instant::now();
        let reply = client
            .submit_segment(SegmentRequest::new(seg, Some(payment), body.clone(), 2000))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(reply.renditions().unwrap().len(), 3);
        if i >= WARMUP {
            times.push(elapsed);
        }
    }
    times.sort();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let source = reference_transcoder::generate(&SourceConfig {
        width: 1280,
        height: 720,
        duration_secs: 2.0,
        gop_secs: 2.0,
        ..SourceConfig::default()
    })
    .expect("720p source");
    let segment = Bytes::from(source.ts_segments(2.0).unwrap().remove(0).data);

    let chain = LocalChain::start().expect("anvil (npm ci in ci/chain)");
    let contracts = Contracts::deploy(
        &chain.provider(chain.signer(0)),
        DeployConfig {
            round_length: 100_000,
            ..DeployConfig::default()
        },
    )
    .await
    .unwrap();
    let broadcaster = chain.signer(1);
    contracts
        .ticket_broker(chain.provider(broadcaster.clone()))
        .fund_deposit_and_reserve(U256::from(ETH), U256::from(ETH))
        .await
        .unwrap();
    let mut config = OrchestratorConfig::offchain();
    config.offchain = false;
    config.transcode.mode = TranscodeMode::PassThrough;
    config.payments.price_per_unit = 1;
    config.payments.face_value = Some("100000000000000".into());
    config.payments.ticket_ev = "10000000000000".into();
    config.payments.expiration_blocks = 1_000_000;
    config.chain = Some(ChainConfig {
        rpc_url: chain.url().to_string(),
        private_key: alloy::hex::encode_prefixed(chain.signer(2).to_bytes()),
        ticket_broker: contracts.ticket_broker.to_string(),
        rounds_manager: contracts.rounds_manager.to_string(),
        poll_ms: 1000,
    });
    let orchestrator = node_orchestrator::start(config).await.unwrap();

    let client = OrchestratorClient::connect(orchestrator.service_uri()).unwrap();
    let key = NodeKey::Account(broadcaster.clone());
    let mut sender = TicketSender::new(
        broadcaster,
        SenderLimits {
            max_ticket_ev: U256::MAX,
            max_total_ev: U256::MAX,
        },
    );
    let ladder =
        reference_transcoder::ladder::parse_ladder("P240p30fps16x9,P360p30fps16x9,P720p30fps16x9")
            .unwrap();
    // The full segment, then a 16 KB prefix (pass-through does not parse it) to separate the
    // per-request cost from the per-byte cost (TLS, hashing, copies).
    let small = segment.slice(..16 * 1024);
    for body in [segment.clone(), small] {
        // Fresh params per run: O accepts at most 600 nonces per recipientRand.
        let info = client.get_orchestrator(&key, None).await.unwrap();
        let params = TicketParams::from_orchestrator_info(&info).unwrap();
        let times = measure(&client, &key, &info, &params, &mut sender, &ladder, &body).await;
        println!(
            "orchestrator overhead per segment ({} bytes, 3 renditions, 1 ticket, TLS loopback, pass-through), {MEASURED} segments:",
            body.len()
        );
        println!(
            "  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            percentile(&times, 50.0).as_secs_f64() * 1e3,
            percentile(&times, 90.0).as_secs_f64() * 1e3,
            percentile(&times, 99.0).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3,
        );
    }
    orchestrator.shutdown().await;
}
