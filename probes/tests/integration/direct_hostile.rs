//! The direct test against hostile orchestrators written here: discovery answers properly, then
//! `POST /segment` returns garbage protobuf, a huge body, a body that never ends, no answer at
//! all, or a result whose rendition URLs are wrong. Each ends with its reason, within a bounded
//! time, reading at most the reply cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use probes::direct::DirectTestConfig;
use prost::Message;
use protocol::net::{
    PriceInfo, TicketExpirationParams, TicketParams, TranscodeData, TranscodeResult,
    TranscodedSegmentData, transcode_result,
};
use testkit::orchestrator::FakeDiscovery;
use tokio::sync::watch;

use super::direct::{ladder_240p, run_unobserved};

/// Starts a TLS server on a free port with honest discovery and `segment` as `POST /segment`.
async fn hostile(segment: Router) -> (String, watch::Sender<bool>) {
    priced(segment, None, None).await
}

/// [`hostile`] advertising `price` and `ticket_params`.
async fn priced(
    segment: Router,
    price: Option<PriceInfo>,
    ticket_params: Option<TicketParams>,
) -> (String, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let uri = format!("https://{addr}");
    let discovery = FakeDiscovery {
        uri: uri.clone(),
        price,
        ticket_params,
        ..FakeDiscovery::default()
    };
    let grpc = tonic::service::Routes::new(discovery.service()).into_axum_router();
    let (stop, _) = node_orchestrator::server::spawn_on_loopback(listener, grpc, segment);
    (uri, stop)
}

// Every handler reads the upload first, as an orchestrator does before answering; one that
// answers before reading makes the client's upload fail instead (`upload_failed`).

/// Runs a one-segment test and returns its single failure code and message, and how long the
/// test took.
async fn one_segment(uri: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let summary = run_unobserved(DirectTestConfig {
        duration: Some(Duration::from_secs(2)),
        ..DirectTestConfig::new(uri, ladder_240p())
    })
    .await;
    assert_eq!(summary.segments_planned, 1);
    assert_eq!(summary.segments_sent, 1, "{:?}", summary.errors);
    assert_eq!(summary.success_rate, 0.0);
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    let e = &summary.errors[0];
    (e.error_code.clone(), e.message.clone(), started.elapsed())
}

fn router(handler: axum::routing::MethodRouter) -> Router {
    Router::new().route("/segment", handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_protobuf_is_a_bad_response() {
    let (uri, _stop) = hostile(router(post(|_upload: Bytes| async {
        Bytes::from_static(b"\xff\xff\xff\xff this is not a TranscodeResult \x00\x01")
    })))
    .await;
    let (code, message, took) = one_segment(&uri).await;
    assert_eq!(code, "bad_response", "{message}");
    assert!(message.contains("TranscodeResult"), "{message}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_body_stops_at_the_cap() {
    // 256 MiB streamed without a length: the client must stop at its 1 MiB reply cap.
    let (uri, _stop) = hostile(router(post(|_upload: Bytes| async {
        let chunk = Bytes::from(vec![0x0a_u8; 1 << 20]);
        let stream = futures_util::stream::iter(
            (0..256).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        Body::from_stream(stream)
    })))
    .await;
    let (code, message, took) = one_segment(&uri).await;
    assert_eq!(code, "bad_response", "{message}");
    assert!(
        message.contains("larger than the 1048576-byte cap"),
        "{message}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_response_times_out() {
    // A 200 and one byte, then nothing, forever.
    let (uri, _stop) = hostile(router(post(|_upload: Bytes| async {
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"\x08"))
        });
        Body::from_stream(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
    })))
    .await;
    let (code, message, took) = one_segment(&uri).await;
    assert_eq!(code, "transcode_timeout", "{message}");
    // go-livepeer's total deadline for a 2 s segment: max(8 s, 4 × 2 s).
    assert!(message.contains("8000 ms"), "{message}");
    assert!(took < Duration::from_secs(12), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_is_an_upload_timeout() {
    let (uri, _stop) = hostile(router(post(|| async {
        std::future::pending::<()>().await;
        ""
    })))
    .await;
    let (code, message, took) = one_segment(&uri).await;
    assert_eq!(code, "upload_timeout", "{message}");
    assert!(message.contains("2000 ms"), "{message}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_rendition_urls_fail_the_download() {
    for url in [
        "ftp://127.0.0.1/P240p30fps16x9/0.ts",
        "not a url",
        "/relative/0.ts",
    ] {
        let result = TranscodeResult {
            seq: 0,
            result: Some(transcode_result::Result::Data(TranscodeData {
                segments: vec![TranscodedSegmentData {
                    url: url.into(),
                    pixels: 1,
                    ..Default::default()
                }],
                sig: Vec::new(),
            })),
            info: None,
        }
        .encode_to_vec();
        let (uri, _stop) = hostile(router(post(move |_upload: Bytes| async move { result }))).await;
        let (code, message, _) = one_segment(&uri).await;
        assert_eq!(code, "download_failed", "{url}: {message}");
        assert!(message.contains("bad rendition URL"), "{message}");
    }
    // A well-formed URL on the orchestrator that serves nothing: the 404 is the reason.
    let (uri, _stop) = hostile(Router::new()).await;
    let missing = format!("{uri}/stream/none/0.ts");
    let result = TranscodeResult {
        seq: 0,
        result: Some(transcode_result::Result::Data(TranscodeData {
            segments: vec![TranscodedSegmentData {
                url: missing,
                pixels: 1,
                ..Default::default()
            }],
            sig: Vec::new(),
        })),
        info: None,
    }
    .encode_to_vec();
    let (uri, _stop2) = hostile(router(post(move |_upload: Bytes| async move { result }))).await;
    let (code, message, _) = one_segment(&uri).await;
    assert_eq!(code, "download_failed", "{message}");
    assert!(message.contains("404"), "{message}");
}

/// A priced orchestrator whose ticket params are missing or break a broadcaster rule: the test
/// never sends, and every planned segment says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_ticket_params_say_which_rule() {
    use protocol::chain::DeployConfig;
    use testkit::chain::TestChain;
    let TestChain { chain, contracts } = TestChain::deploy(DeployConfig::default()).await;
    let sender = probes::direct::DirectSender {
        signer: chain.signer(1),
        rpc_url: chain.url().to_string(),
        ticket_broker: contracts.ticket_broker,
        limits: protocol::ticket::SenderLimits::default(),
    };
    let price = Some(PriceInfo {
        price_per_unit: 1,
        pixels_per_unit: 1,
        ..Default::default()
    });
    // EV = faceValue × winProb / (2²⁵⁶ − 1) = 1 = faceValue: breaks "EV < faceValue".
    let greedy = TicketParams {
        recipient: vec![0x11; 20],
        face_value: vec![1],
        win_prob: vec![0xff; 32],
        recipient_rand_hash: vec![0x22; 32],
        seed: vec![3],
        expiration_block: 1_000_000u64.to_be_bytes().to_vec(),
        expiration_params: Some(TicketExpirationParams {
            creation_round: 1,
            creation_round_block_hash: vec![0x33; 32],
        }),
    };
    for (params, code, words) in [
        (None, "no_ticket_params", "sent no ticket params"),
        (Some(greedy), "invalid_ticket_params", "rule EV < faceValue"),
    ] {
        let (uri, _stop) = priced(Router::new(), price.clone(), params).await;
        let summary = run_unobserved(DirectTestConfig {
            sender: Some(sender.clone()),
            ..DirectTestConfig::new(&uri, ladder_240p())
        })
        .await;
        assert_eq!(summary.segments_planned, 2);
        assert_eq!(summary.segments_sent, 0);
        assert_eq!(summary.count(code), 2, "{:?}", summary.errors);
        assert!(
            summary.errors[0].message.contains(words),
            "{:?}",
            summary.errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_rendition_stops_at_the_rendition_cap() {
    // The result points at a rendition of 96 MiB (no length announced); the client's cap is
    // 64 MiB, so the download fails there instead of buffering it all.
    let own_uri = Arc::new(std::sync::OnceLock::<String>::new());
    let uri_for_result = own_uri.clone();
    let routes = Router::new()
        .route(
            "/segment",
            post(move |_upload: Bytes| {
                let uri = uri_for_result.get().cloned().unwrap_or_default();
                async move {
                    TranscodeResult {
                        seq: 0,
                        result: Some(transcode_result::Result::Data(TranscodeData {
                            segments: vec![TranscodedSegmentData {
                                url: format!("{uri}/huge.ts"),
                                pixels: 1,
                                ..Default::default()
                            }],
                            sig: Vec::new(),
                        })),
                        info: None,
                    }
                    .encode_to_vec()
                }
            }),
        )
        .route(
            "/huge.ts",
            axum::routing::get(|| async {
                let chunk = Bytes::from(vec![0x47_u8; 1 << 20]);
                Body::from_stream(futures_util::stream::iter(
                    (0..96).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                ))
            }),
        );
    let (uri, _stop) = hostile(routes).await;
    own_uri.set(uri.clone()).unwrap();
    let (code, message, took) = one_segment(&uri).await;
    assert_eq!(code, "download_failed", "{message}");
    assert!(
        message.contains("larger than the 67108864-byte cap"),
        "{message}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}
