//! Hostile clients against the orchestrator and transcoder: held capacity, upload floods, dropped transcodes, /status snooping.
//!
//! Each test sends what a hostile peer would and checks that the node refuses it with a reason
//! (or shrugs it off) while honest broadcasters keep being served: refused or abandoned requests
//! give their session slot back, a broadcaster that hangs up mid-transcode gives the remote
//! transcoder's load back, and so on. Limits are set small so each test takes seconds.

use std::sync::Arc;
use std::time::Duration;

use node_orchestrator::client::{ClientError, SegmentRequest, grpc_channel, segment_data};
use node_orchestrator::config::TranscodeMode;
use protocol::headers;
use protocol::net::transcoder_client::TranscoderClient;
use protocol::net::{NotifySegment, Payment, RegisterRequest};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Rejected { status, reason }) => (status, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn tls_connect(
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let connector =
        TlsConnector::from(Arc::new(node_orchestrator::tls::insecure_client_config(&[
            b"http/1.1",
        ])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The `Livepeer-Segment` header of segment `seq` of a fresh off-chain session.
async fn fresh_segment_header(uri: &str, seq: usize) -> String {
    let session = Session::offchain(uri).await;
    segment_header(&session, seq)
}

fn segment_header(session: &Session, seq: usize) -> String {
    let body = &segments()[seq % segments().len()];
    let seg = segment_data(
        &session.key,
        &session.info,
        &session.manifest,
        seq as i64,
        body,
        SEGMENT_MS as i32,
        &session.ladder,
    )
    .unwrap();
    headers::encode_segment(&seg)
}

/// Opens an upload of `declared` bytes under `segment_header` and sends only its first 100
/// bytes; the connection is returned so the caller decides when it goes away.
async fn start_upload(
    addr: std::net::SocketAddr,
    segment_header: &str,
    declared: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut stream = tls_connect(addr).await;
    let head = format!(
        "POST /segment HTTP/1.1\r\nHost: localhost\r\n{}: {segment_header}\r\nContent-Length: {declared}\r\n\r\n",
        headers::SEGMENT_HEADER,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x47; 100]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

async fn wait_sessions(client: &node_orchestrator::client::OrchestratorClient, n: u64) {
    wait_status(client, WAIT, &format!("{n} open sessions"), |s| {
        s["sessions"] == n
    })
    .await;
}

/// Item 9, on a priced node: requests refused for want of payment or balance take no session
/// slot, so a handful of unpaid requests cannot lock out paying broadcasters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_requests_do_not_take_session_slots() {
    let chain = Chain::start().await;
    let mut config = chain.config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.max_sessions = 2;
    config.limits.session_idle_secs = 3600;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri();

    // Ten fresh sessions (what one client can open in seconds), each refused for want of
    // payment: go's "Insufficient balance".
    let signer = chain.chain.signer(5);
    for attempt in 0..10 {
        let hostile = Session::onchain(uri, signer.clone()).await;
        let body = segments()[0].clone();
        let seg = segment_data(
            &hostile.key,
            &hostile.info,
            format!("hostile-{attempt}").as_bytes(),
            0,
            &body,
            SEGMENT_MS as i32,
            &hostile.ladder,
        )
        .unwrap();
        // Names the sender (whose signature the segment carries) but holds no tickets.
        let payment = Payment {
            sender: signer.address().to_vec(),
            ..Payment::default()
        };
        let (status_code, reason) = refused(
            hostile
                .client
                .submit_segment(SegmentRequest::new(&seg, Some(&payment), body, SEGMENT_MS))
                .await,
        );
        assert_eq!(
            (status_code, reason.as_str()),
            (400, "Insufficient balance")
        );
    }

    // The paying broadcaster still gets transcoded.
    let mut honest = Session::onchain(uri, chain.broadcaster.clone()).await;
    for seq in 0..2 {
        let reply = honest
            .send(seq)
            .await
            .expect("an honest paying broadcaster");
        assert_eq!(reply.renditions().unwrap().len(), ladder().len());
    }
    assert_eq!(status(&honest.client).await["sessions"], 1);
    orchestrator.shutdown().await;
}

/// Item 9, off-chain: uploads that are abandoned mid-body (the client hangs up) or refused
/// give back the slot their fresh session took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_give_their_session_slot_back() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.max_sessions = 1;
    config.limits.session_idle_secs = 3600;
    config.limits.upload_timeout_ms = 60_000;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let addr = orchestrator.local_addr();
    let probe = Session::offchain(&uri).await;

    for _ in 0..3 {
        let header = fresh_segment_header(&uri, 0).await;
        let upload = start_upload(addr, &header, 1_000_000).await;
        wait_sessions(&probe.client, 1).await;
        drop(upload);
        wait_sessions(&probe.client, 0).await;
    }
    let mut honest = Session::offchain(&uri).await;
    let reply = honest.send(0).await.expect("the slot is free again");
    assert_eq!(reply.renditions().unwrap().len(), ladder().len());
    orchestrator.shutdown().await;
}

/// Registers a transcoder that takes work and never answers; returns its work stream.
async fn silent_transcoder(uri: &str, secret: &str) -> tonic::Streaming<NotifySegment> {
    TranscoderClient::new(grpc_channel(uri).unwrap())
        .register_transcoder(RegisterRequest {
            secret: secret.into(),
            capacity: 1,
            capabilities: None,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn next_task(stream: &mut tonic::Streaming<NotifySegment>) -> NotifySegment {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a task within the deadline")
        .unwrap()
        .expect("the work stream is open")
}

/// Item 11: a broadcaster that disconnects while its segment is with a remote transcoder gives
/// the transcoder's load back at once (not never), so the next segment is dispatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcaster_hanging_up_mid_transcode_frees_the_remote_transcoder() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some("hostile-secret".into());
    config.limits.remote_task_timeout_ms = 600_000;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let probe = Session::offchain(&uri).await;
    let mut work = silent_transcoder(&uri, "hostile-secret").await;
    wait_status(&probe.client, WAIT, "transcoder attached", |s| {
        s["transcoders"].as_array().unwrap().len() == 1
    })
    .await;

    for seq in 0..3 {
        let mut broadcaster = Session::offchain(&uri).await;
        let sending = tokio::spawn(async move { broadcaster.send(seq).await });
        let task = next_task(&mut work).await;
        assert!(!task.url.is_empty());
        wait_status(&probe.client, WAIT, "the task in flight", |s| {
            s["transcoders"][0]["load"] == 1
        })
        .await;
        // The broadcaster goes away mid-transcode.
        sending.abort();
        let s = wait_status(&probe.client, WAIT, "the load given back", |s| {
            s["transcoders"][0]["load"] == 0
        })
        .await;
        assert_eq!(s["transcoders"][0]["failed"], seq as u64 + 1);
        // Its source is no longer served.
        let source = probe.client.http().get(&task.url).send().await.unwrap();
        assert_eq!(source.status(), 404);
    }
    orchestrator.shutdown().await;
}
