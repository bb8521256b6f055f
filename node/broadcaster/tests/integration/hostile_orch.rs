//! A hostile orchestrator against the broadcaster: ticket params that cost unbounded work, rendition URLs that point elsewhere.
//!
//! Each fake orchestrator is a real TLS server on a loopback port (node-orchestrator's server and
//! self-signed certificate) answering `GetOrchestrator` as it is told and serving the routes the
//! test gives it; segments go through the broadcaster's own transcode path
//! ([`node_broadcaster::Broadcaster::transcode`]), and the records say what happened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use node_broadcaster::segmenter::SourceSegment;
use node_broadcaster::{BroadcasterConfig, RunningBroadcaster, SourceSegmentRecord};
use prost::Message;
use protocol::chain::DeployConfig;
use protocol::net::{
    PriceInfo, TicketExpirationParams, TicketParams, TranscodeData, TranscodeResult,
    TranscodedSegmentData, transcode_result,
};
use testkit::chain::{BROADCASTER, TestChain};
use testkit::orchestrator::FakeDiscovery;
use tokio::sync::watch;

use crate::support::*;

const LADDER: &str = "P144p30fps16x9";

/// A fake orchestrator serving until dropped.
struct FakeOrchestrator {
    uri: String,
    _stop: watch::Sender<bool>,
}

/// Starts a fake orchestrator on a free loopback port: `discovery` (its `uri` filled in) for
/// gRPC, and `routes(uri)` for everything else.
async fn fake_orchestrator(
    discovery: FakeDiscovery,
    routes: impl FnOnce(&str) -> Router,
) -> FakeOrchestrator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let uri = format!("https://{addr}");
    let discovery = FakeDiscovery {
        uri: uri.clone(),
        ..discovery
    };
    let grpc = tonic::service::Routes::new(discovery.service()).into_axum_router();
    let http = routes(&uri);
    let tls = node_orchestrator::tls::self_signed_server_config(vec!["127.0.0.1".into()]).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let (_crash, crash_rx) = watch::channel(false);
        node_orchestrator::server::serve(
            listener,
            Arc::new(tls),
            node_orchestrator::server::dispatcher(grpc, http),
            node_orchestrator::server::ServeLimits::default(),
            Arc::new(node_orchestrator::metrics::Metrics::default()),
            stop_rx,
            crash_rx,
        )
        .await
    });
    FakeOrchestrator { uri, _stop: stop }
}

/// A `TranscodeResult` with one rendition at `url`.
fn result_at(url: &str) -> Vec<u8> {
    TranscodeResult {
        seq: 0,
        result: Some(transcode_result::Result::Data(TranscodeData {
            segments: vec![TranscodedSegmentData {
                url: url.into(),
                pixels: 256 * 144 * 60,
                ..Default::default()
            }],
            sig: Vec::new(),
        })),
        info: None,
    }
    .encode_to_vec()
}

/// The reason of a segment that failed on its first attempt's rendition download.
fn download_failure(record: &SourceSegmentRecord) -> String {
    assert_eq!(record.outcome, "failed", "{record:#?}");
    let attempt = &record.attempts[0];
    assert_eq!(
        attempt.error_kind.as_deref(),
        Some("download"),
        "{record:#?}"
    );
    attempt.error.clone().unwrap_or_default()
}

/// An honest, free orchestrator: it answers every segment with the uploaded bytes as the
/// rendition, on its own host.
fn echo_routes(uri: &str) -> Router {
    let uploaded = Arc::new(std::sync::Mutex::new(Bytes::new()));
    let keep = uploaded.clone();
    let result = result_at(&format!("{uri}/echo/0.ts"));
    Router::new()
        .route(
            "/segment",
            post(move |body: Bytes| async move {
                *keep.lock().unwrap() = body;
                result
            }),
        )
        .route(
            "/echo/0.ts",
            get(move || async move { uploaded.lock().unwrap().clone() }),
        )
}

/// A plain HTTP server on another loopback port that counts every request it gets.
async fn bystander() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Bytes::from(vec![0x47u8; 188 * 10]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

/// A 2 s source segment of `bytes` bytes (its content is not parsed on this path).
fn segment(bytes: usize) -> SourceSegment {
    let mut data = vec![0u8; bytes];
    for packet in data.chunks_mut(188) {
        packet[0] = 0x47;
    }
    SourceSegment {
        seq: 0,
        data: Bytes::from(data),
        start_ms: 0,
        duration_ms: 2000,
        video_frames: 60,
        size: Some((320, 180)),
        discontinuity: false,
        forced_cut: false,
    }
}

/// Transcodes one segment of stream `id` and returns its record and how long it took.
async fn transcode_one(
    b: &RunningBroadcaster,
    id: &str,
    seg: &SourceSegment,
) -> (SourceSegmentRecord, Duration) {
    let started = Instant::now();
    b.state().transcode(id, seg).await;
    let took = started.elapsed();
    let record = b
        .state()
        .records()
        .records()
        .into_iter()
        .find(|r| r.manifest_id == id && r.seq == seg.seq)
        .expect("the segment is recorded");
    (record, took)
}

/// Ticket params worth 1 wei each: faceValue 1 gwei (well inside the deposit) winning with
/// probability 10⁻⁹. They pass go-livepeer's sender rules (EV < faceValue, EV ≤ maxTicketEV,
/// total EV ≤ maxTotalEV).
fn one_wei_params(expiration_block: u64) -> TicketParams {
    let face_value = U256::from(1_000_000_000u64);
    let win_prob = protocol::ticket::win_prob_for_ev(U256::from(1), face_value).unwrap();
    TicketParams {
        recipient: vec![0x11; 20],
        face_value: protocol::fields::minimal_be(face_value),
        win_prob: protocol::fields::minimal_be(win_prob),
        recipient_rand_hash: vec![0x22; 32],
        seed: vec![3],
        expiration_block: expiration_block.to_be_bytes().to_vec(),
        expiration_params: Some(TicketExpirationParams {
            creation_round: 1,
            creation_round_block_hash: vec![0x33; 32],
        }),
    }
}

/// An orchestrator quoting 1-wei tickets at 1 wei per 10 pixels: one 2 s 144p segment costs
/// ~265,000 tickets. The broadcaster refuses before signing one, within a bound, records the
/// refusal as that orchestrator's failure with the rule's name, and moves the segment to the
/// next orchestrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wei_tickets_are_refused_before_signing_and_the_segment_moves_on() {
    let TestChain { chain, contracts } = TestChain::funded(DeployConfig::default()).await;
    let broadcaster = chain.signer(BROADCASTER);

    let posts = Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    let hostile = fake_orchestrator(
        FakeDiscovery {
            price: Some(PriceInfo {
                price_per_unit: 1,
                pixels_per_unit: 10,
                ..Default::default()
            }),
            ticket_params: Some(one_wei_params(1_000_000)),
            ..Default::default()
        },
        move |_| {
            Router::new().route(
                "/segment",
                post(move |_: Bytes| async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no")
                }),
            )
        },
    )
    .await;
    // The honest one answers discovery later, so the hostile one (lower latency) is tried first.
    let honest = fake_orchestrator(
        FakeDiscovery {
            delay: Duration::from_millis(300),
            ..Default::default()
        },
        echo_routes,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("broadcaster.key");
    std::fs::write(&key_file, alloy::hex::encode(broadcaster.to_bytes())).unwrap();
    let mut bc = config(LADDER, vec![hostile.uri.clone(), honest.uri.clone()]);
    bc.payment.eth_url = Some(chain.url().to_string());
    bc.payment.ticket_broker = Some(contracts.ticket_broker.to_string());
    bc.payment.key_file = Some(key_file);
    let b = start(bc).await;

    let (record, took) = transcode_one(&b, "cheap", &segment(188 * 100)).await;
    assert!(took < Duration::from_secs(3), "took {took:?}: {record:#?}");
    assert_eq!(record.outcome, "ok", "{record:#?}");
    assert_eq!(record.attempts.len(), 2, "{record:#?}");
    let refused = &record.attempts[0];
    assert_eq!(refused.orchestrator, hostile.uri, "{record:#?}");
    assert_eq!(refused.error_kind.as_deref(), Some("ticket_params"));
    let reason = refused.error.clone().unwrap_or_default();
    assert!(
        reason.contains("rule tickets <= maxTickets")
            && reason.contains("tickets of EV 1 wei, more than 100"),
        "{reason}"
    );
    assert_eq!(refused.tickets, 0, "{record:#?}");
    assert_eq!(record.attempts[1].orchestrator, honest.uri, "{record:#?}");
    assert_eq!(record.orchestrator.as_deref(), Some(honest.uri.as_str()));
    // Nothing reached the hostile orchestrator, and it sits out its cooldown as a failure.
    assert_eq!(posts.load(Ordering::SeqCst), 0);
    let doc = status(&b).await;
    let entry = doc["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uri"] == hostile.uri.as_str())
        .unwrap();
    assert_eq!(entry["state"], "cooldown", "{doc}");
    assert_eq!(entry["segments_failed"], 1, "{doc}");
    b.shutdown().await;
}

/// An off-chain broadcaster with `orchestrators`, its config adjusted by `tune`.
async fn offchain(
    orchestrators: Vec<String>,
    tune: impl FnOnce(&mut BroadcasterConfig),
) -> RunningBroadcaster {
    let mut bc = config(LADDER, orchestrators);
    tune(&mut bc);
    start(bc).await
}

/// A fake orchestrator whose every result points at `url(own uri)`, plus `routes` of its own.
async fn pointing_at(
    url: impl FnOnce(&str) -> String,
    routes: impl FnOnce(Router) -> Router,
) -> FakeOrchestrator {
    fake_orchestrator(FakeDiscovery::default(), move |uri| {
        let result = result_at(&url(uri));
        routes(Router::new().route("/segment", post(move |_: Bytes| async move { result })))
    })
    .await
}

/// A rendition URL on another loopback port is not the orchestrator's: nothing is fetched from
/// it and the attempt fails, unless the operator lists that host:port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rendition_on_another_port_is_not_fetched_unless_allowed() {
    let (elsewhere, hits) = bystander().await;
    let o = pointing_at(|_| format!("http://{elsewhere}/r.ts"), |r| r).await;
    let b = offchain(vec![o.uri.clone()], |_| {}).await;
    let (record, _) = transcode_one(&b, "elsewhere", &segment(188 * 100)).await;
    let reason = download_failure(&record);
    assert!(
        reason.contains(&format!(
            "not fetched: 127.0.0.1:{} is not the orchestrator's host",
            elsewhere.port()
        )),
        "{reason}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    b.shutdown().await;

    let allowed: node_broadcaster::config::AllowedHost =
        format!("127.0.0.1:{}", elsewhere.port()).parse().unwrap();
    let b = offchain(vec![o.uri.clone()], |c| {
        c.rendition_fetch.allowed_hosts = vec![allowed];
    })
    .await;
    let (record, _) = transcode_one(&b, "allowed", &segment(188 * 100)).await;
    assert_eq!(record.outcome, "ok", "{record:#?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    b.shutdown().await;
}

/// O's own URL redirecting to another loopback port is not followed; a redirect that stays on
/// O's host is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_off_the_orchestrators_host_is_not_followed() {
    let (elsewhere, hits) = bystander().await;
    let posts = Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    let o = fake_orchestrator(FakeDiscovery::default(), move |uri| {
        // The first segment's rendition redirects away, the second's elsewhere on O's host.
        let away = result_at(&format!("{uri}/away.ts"));
        let home = result_at(&format!("{uri}/home.ts"));
        let target = format!("http://{elsewhere}/r.ts");
        Router::new()
            .route(
                "/segment",
                post(move |_: Bytes| async move {
                    match counted.fetch_add(1, Ordering::SeqCst) {
                        0 => away,
                        _ => home,
                    }
                }),
            )
            .route(
                "/away.ts",
                get(move || async move { axum::response::Redirect::temporary(&target) }),
            )
            .route(
                "/home.ts",
                get(|| async { axum::response::Redirect::temporary("/0.ts") }),
            )
            .route(
                "/0.ts",
                get(|| async { Bytes::from(vec![0x47u8; 188 * 10]) }),
            )
    })
    .await;
    let b = offchain(vec![o.uri.clone()], |c| c.failure_cooldown_secs = 0).await;
    let (record, _) = transcode_one(&b, "redirected", &segment(188 * 100)).await;
    assert_eq!(record.outcome, "failed", "{record:#?}");
    let reason = record.attempts[0].error.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "redirect not followed: 127.0.0.1:{} is not the orchestrator's host",
            elsewhere.port()
        )),
        "{reason}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let mut second = segment(188 * 100);
    second.seq = 1;
    let (record, _) = transcode_one(&b, "redirected", &second).await;
    assert_eq!(record.outcome, "ok", "{record:#?}");
    assert_eq!(posts.load(Ordering::SeqCst), 2);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    b.shutdown().await;
}

/// A rendition streamed without a length, 64 MiB of it, is read only up to the cap (here
/// 1 × the source + 64 KiB) and the attempt fails saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_rendition_is_cut_off_at_the_cap() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let o = pointing_at(
        |uri| format!("{uri}/huge.ts"),
        move |r| {
            r.route(
                "/huge.ts",
                get(move || async move {
                    let chunk = Bytes::from(vec![0x47u8; 1 << 20]);
                    Body::from_stream(futures::stream::iter((0..64).map(move |_| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(chunk.clone())
                    })))
                }),
            )
        },
    )
    .await;
    let b = offchain(vec![o.uri.clone()], |c| {
        c.rendition_fetch.max_size_factor = 1;
        c.rendition_fetch.max_extra_bytes = 64 << 10;
    })
    .await;
    let seg = segment(188 * 100);
    let cap = 188 * 100 + (64 << 10);
    let (record, took) = transcode_one(&b, "huge", &seg).await;
    let reason = download_failure(&record);
    assert!(
        reason.contains(&format!("larger than the {cap}-byte cap (stopped at ")),
        "{reason}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The server produced what flow control let through before B hung up, not the 64 MiB.
    let produced = pulled.load(Ordering::SeqCst);
    assert!(produced < 16, "{produced} MiB produced");
    b.shutdown().await;
}

/// A fake orchestrator refusing the payment of its first `refusals` segments with go-livepeer's
/// 400 (B's ticket params lapsed), then transcoding; and how many segments it was sent.
async fn refusing_payment(refusals: usize) -> (FakeOrchestrator, Arc<AtomicUsize>) {
    let posts = Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    let o = fake_orchestrator(FakeDiscovery::default(), move |uri| {
        let result = result_at(&format!("{uri}/0.ts"));
        Router::new()
            .route(
                "/segment",
                post(move |_: Bytes| async move {
                    if counted.fetch_add(1, Ordering::SeqCst) < refusals {
                        (
                            axum::http::StatusCode::BAD_REQUEST,
                            "ticket params expired".as_bytes().to_vec(),
                        )
                    } else {
                        (axum::http::StatusCode::OK, result)
                    }
                }),
            )
            .route(
                "/0.ts",
                get(|| async { Bytes::from(vec![0x47u8; 188 * 10]) }),
            )
    })
    .await;
    (o, posts)
}

/// A refused payment is B's stale view, not the orchestrator's failure: the segment goes to the
/// same orchestrator on a fresh session without using up an attempt, so with one attempt allowed
/// it is still delivered. An orchestrator refusing again has that counted as its failure, so the
/// retries stay bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_is_retried_on_a_fresh_session_without_using_an_attempt() {
    let (once, posts) = refusing_payment(1).await;
    let b = offchain(vec![once.uri.clone()], |c| c.max_attempts = 1).await;
    let (record, _) = transcode_one(&b, "refused-once", &segment(188 * 100)).await;
    assert_eq!(record.outcome, "ok", "{record:#?}");
    assert_eq!(record.attempts.len(), 2, "{record:#?}");
    let refusal = record.attempts[0].error.clone().unwrap_or_default();
    assert!(refusal.contains("ticket params expired"), "{record:#?}");
    assert_eq!(record.attempts[1].error, None, "{record:#?}");
    assert_eq!(posts.load(Ordering::SeqCst), 2);
    b.shutdown().await;

    let (always, posts) = refusing_payment(usize::MAX).await;
    let b = offchain(vec![always.uri.clone()], |c| c.max_attempts = 1).await;
    let (record, _) = transcode_one(&b, "refused-always", &segment(188 * 100)).await;
    assert_eq!(record.outcome, "failed", "{record:#?}");
    assert_eq!(record.attempts.len(), 2, "{record:#?}");
    assert_eq!(posts.load(Ordering::SeqCst), 2);
    b.shutdown().await;
}
