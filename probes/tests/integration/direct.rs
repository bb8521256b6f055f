//! The direct-to-orchestrator test against real orchestrators started in-process (the node
//! stack is a dev-dependency only: the probe itself sees nothing but URIs and the chain): an
//! on-chain orchestrator paid with real tickets on anvil, one priced above the cap, one with the
//! degrade-quality fault, and URIs nobody answers at the DNS, TCP or TLS level.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use node_orchestrator::config::ChainConfig;
use node_orchestrator::{OrchestratorConfig, RunningOrchestrator};
use probes::QualityObservation;
use probes::direct::{
    DirectObserver, DirectSegmentObservation, DirectSender, DirectSource, DirectTestConfig,
    NullDirectObserver, run_direct_test, run_direct_tests, wire_ladder,
};
use probes::quality::{QualitySampler, QualitySamplerConfig, Sampling};
use protocol::chain::{Contracts, LocalChain};
use protocol::net::VideoProfile;
use protocol::ticket::SenderLimits;
use reference_transcoder::{EncodedSource, SourceConfig};
use testkit::chain::{BROADCASTER, TestChain, long_rounds};

pub const STREAM_ID: u32 = 0x5eed;

/// The stamped source: 426×240, 30 fps, 2 s GOPs, 4 s (made once per test binary).
pub fn encoded() -> &'static EncodedSource {
    static SOURCE: OnceLock<EncodedSource> = OnceLock::new();
    SOURCE.get_or_init(|| {
        reference_transcoder::generate(&SourceConfig {
            width: 426,
            height: 240,
            duration_secs: 4.0,
            gop_secs: 2.0,
            stream_id: STREAM_ID,
            audio: false,
            ..SourceConfig::default()
        })
        .expect("synthetic source")
    })
}

/// The source cut into two 2 s segments.
pub fn source() -> Arc<DirectSource> {
    Arc::new(DirectSource::from_encoded(encoded(), 2.0).unwrap())
}

pub fn ladder_240p() -> Vec<VideoProfile> {
    wire_ladder(&reference_transcoder::ladder::parse_ladder("P240p30fps16x9").unwrap())
}

/// Runs `config` on the shared [`source`], with no observer and no quality sampling: for tests
/// that judge only the summary.
pub async fn run_unobserved(config: DirectTestConfig) -> probes::DirectTestSummary {
    run_direct_test(config, source(), Arc::new(NullDirectObserver), None)
        .await
        .unwrap()
}

/// An off-chain orchestrator on a free loopback port, one encoder thread.
pub fn offchain() -> OrchestratorConfig {
    let mut config = OrchestratorConfig::offchain();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.transcode.encoder_threads = 1;
    config
}

/// Keeps every record the probe reports, as it reports it.
#[derive(Default)]
struct Recorder {
    segments: Mutex<Vec<(Instant, DirectSegmentObservation)>>,
    quality: Mutex<Vec<QualityObservation>>,
}

impl DirectObserver for Recorder {
    fn segment(&self, s: &DirectSegmentObservation) {
        self.segments
            .lock()
            .unwrap()
            .push((Instant::now(), s.clone()));
    }
    fn quality(&self, q: &QualityObservation) {
        self.quality.lock().unwrap().push(q.clone());
    }
}

struct Chain {
    chain: LocalChain,
    contracts: Contracts,
    broadcaster: PrivateKeySigner,
}

impl Chain {
    async fn start() -> Self {
        let TestChain { chain, contracts } = TestChain::funded(long_rounds()).await;
        let broadcaster = chain.signer(BROADCASTER);
        Self {
            chain,
            contracts,
            broadcaster,
        }
    }

    /// An on-chain orchestrator (account `account`) charging `price_per_unit` wei per pixel.
    fn orchestrator(&self, account: usize, price_per_unit: u64) -> OrchestratorConfig {
        let mut config = offchain();
        config.offchain = false;
        config.payments.price_per_unit = price_per_unit;
        config.payments.pixels_per_unit = 1;
        config.payments.face_value = Some("1000000000000".into());
        config.payments.ticket_ev = "500000000000".into();
        config.payments.expiration_blocks = 50;
        config.chain = Some(ChainConfig {
            rpc_url: self.chain.url().to_string(),
            private_key: alloy::hex::encode_prefixed(self.chain.signer(account).to_bytes()).into(),
            ticket_broker: self.contracts.ticket_broker.to_string(),
            rounds_manager: self.contracts.rounds_manager.to_string(),
            poll_ms: 100,
        });
        config
    }

    fn sender(&self) -> DirectSender {
        DirectSender {
            signer: self.broadcaster.clone(),
            rpc_url: self.chain.url().to_string(),
            ticket_broker: self.contracts.ticket_broker,
            limits: SenderLimits::default(),
        }
    }
}

async fn start(config: OrchestratorConfig) -> RunningOrchestrator {
    node_orchestrator::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onchain_healthy_succeeds_and_overpriced_fails_with_both_prices() {
    let chain = Chain::start().await;
    let healthy = start(chain.orchestrator(2, 1)).await;
    let overpriced = start(chain.orchestrator(3, 5)).await;
    let source = source();
    let test = |o: &RunningOrchestrator, key: &str| DirectTestConfig {
        price_cap_wei_per_pixel: Some(2.0),
        sender: Some(chain.sender()),
        stream_key: key.into(),
        ..DirectTestConfig::new(o.service_uri(), ladder_240p())
    };
    let recorder = Arc::new(Recorder::default());
    let started = Instant::now();
    let results = run_direct_tests(
        vec![test(&healthy, "healthy"), test(&overpriced, "overpriced")],
        source.clone(),
        recorder.clone(),
        None,
        2,
    )
    .await;
    let finished = Instant::now();
    let good = results[0].as_ref().unwrap();
    let bad = results[1].as_ref().unwrap();

    // Healthy: every segment back, paid, checked, timed.
    assert_eq!(good.segments_planned, 2);
    assert_eq!(good.segments_ok, 2, "{:?}", good.errors);
    assert_eq!(good.success_rate, 1.0);
    assert!(good.errors.is_empty());
    assert_eq!(
        good.orchestrator_address.as_deref(),
        Some(chain.chain.accounts()[2].to_string().as_str())
    );
    assert_eq!(good.price_wei_per_pixel, Some(1.0));
    assert!(good.tickets_sent >= 2, "tickets {}", good.tickets_sent);
    assert!(good.round_trip_score > 0.0 && good.score > 0.0);
    for s in &good.segments {
        assert!(s.ok && s.reason.is_none(), "{s:?}");
        let (up, tr, dl, rt) = (
            s.upload_ms.unwrap(),
            s.transcode_ms.unwrap(),
            s.download_ms.unwrap(),
            s.round_trip_ms.unwrap(),
        );
        assert!(up > 0.0 && tr > 0.0 && dl > 0.0, "{s:?}");
        assert!(rt >= up + tr + dl - 1.0, "round trip {rt} < parts in {s:?}");
        assert_eq!(s.renditions.len(), 1);
        let r = &s.renditions[0];
        assert_eq!((r.width, r.height), (Some(426), Some(240)));
        assert!(r.frames.unwrap() >= 59, "{r:?}");
        assert!(r.pixels_reported >= 426 * 240 * 59, "{r:?}");
        for check in ["resolution", "stamps", "codec", "decode"] {
            let v = r.checks.iter().find(|c| c.check == check).unwrap();
            assert!(v.passed, "{v:?}");
        }
    }
    // Real time: the second segment left about 2 s after the first.
    let sent: Vec<i64> = good
        .segments
        .iter()
        .map(|s| s.sent_unix_ms.unwrap())
        .collect();
    assert!((1900..=2600).contains(&(sent[1] - sent[0])), "{sent:?}");
    assert!(good.max_send_lag_ms < 500.0, "lag {}", good.max_send_lag_ms);

    // Over the cap: every planned segment failed with the reason, both prices in the message.
    assert_eq!(bad.segments_planned, 2);
    assert_eq!(bad.segments_sent, 0);
    assert_eq!(bad.success_rate, 0.0);
    assert_eq!(bad.count("price_above_cap"), 2);
    assert_eq!(bad.errors.len(), 1);
    let message = &bad.errors[0].message;
    assert!(
        message.contains("price 5 wei/pixel") && message.contains("cap 2 wei/pixel"),
        "{message}"
    );
    assert!(bad.segments.iter().all(|s| !s.ok && s.reason.is_some()));

    // The observer saw every record, and the healthy ones before the run ended.
    let (seen, first_ok) = {
        let seen = recorder.segments.lock().unwrap();
        (seen.len(), seen.iter().find(|(_, s)| s.ok).unwrap().0)
    };
    assert_eq!(seen, 4);
    assert!(first_ok < finished && first_ok > started);
    healthy.shutdown().await;
    overpriced.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_quality_scores_below_the_reference_transcoder() {
    let mut config = offchain();
    config.faults.degrade_quality = true;
    let orchestrator = start(config).await;
    let sampler = Arc::new(
        QualitySampler::new(
            encoded(),
            QualitySamplerConfig {
                sampling: Sampling::EveryNth(1),
                subsample: 2,
                ..QualitySamplerConfig::default()
            },
        )
        .unwrap(),
    );
    let recorder = Arc::new(Recorder::default());
    let summary = run_direct_test(
        DirectTestConfig {
            duration: Some(Duration::from_secs(2)),
            stream_key: "degraded".into(),
            ..DirectTestConfig::new(orchestrator.service_uri(), ladder_240p())
        },
        source(),
        recorder.clone(),
        Some(sampler),
    )
    .await
    .unwrap();
    // Renditions come back and pass the structural checks: only quality tells.
    assert_eq!(summary.segments_planned, 1);
    assert_eq!(summary.segments_ok, 1, "{:?}", summary.errors);
    assert_eq!(summary.quality.len(), 1);
    let q = &summary.quality[0];
    assert!(q.error.is_none(), "{q:?}");
    let (vmaf, reference) = (q.vmaf.unwrap(), q.vmaf_reference.unwrap());
    println!("degraded VMAF {vmaf:.1}, reference transcoder {reference:.1}");
    assert!(
        q.difference.unwrap() < -15.0,
        "degraded VMAF {vmaf:.1} vs reference {reference:.1}"
    );
    assert_eq!(recorder.quality.lock().unwrap().len(), 1);
    orchestrator.shutdown().await;
}

/// A test that cannot start reports every planned segment failed with the reason.
async fn unreachable(uri: &str) -> probes::DirectTestSummary {
    let started = Instant::now();
    let summary = run_unobserved(DirectTestConfig {
        duration: Some(Duration::from_secs(6)),
        ..DirectTestConfig::new(uri, ladder_240p())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(summary.segments_planned, 3);
    assert_eq!(summary.count("unreachable"), 3, "{:?}", summary.errors);
    assert_eq!(summary.segments_sent, 0);
    summary
}

#[tokio::test]
async fn unreachable_says_which_layer_failed() {
    // TCP: a port nobody listens on.
    let closed = format!("127.0.0.1:{}", testkit::ports::free_port());
    let tcp = unreachable(&format!("https://{closed}")).await;
    assert!(
        tcp.errors[0].message.starts_with("unreachable (tcp)"),
        "{:?}",
        tcp.errors
    );

    // TLS: a listener that accepts and answers plain text.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let tls = unreachable(&format!("https://{addr}")).await;
    assert!(
        tls.errors[0].message.starts_with("unreachable (tls)"),
        "{:?}",
        tls.errors
    );

    // DNS: a reserved name that never resolves.
    let dns = unreachable("https://orchestrator.invalid:8935").await;
    assert!(
        dns.errors[0].message.starts_with("unreachable (dns)"),
        "{:?}",
        dns.errors
    );
}
