//! Hostile clients against the orchestrator and transcoder: held capacity, upload floods, dropped transcodes, /status snooping.
//!
//! Each test sends what a hostile peer would and checks that the node refuses it with a reason
//! (or shrugs it off) while honest broadcasters keep being served: refused or abandoned requests
//! give their session slot back, a broadcaster that hangs up mid-transcode gives the remote
//! transcoder's load back, and so on. Limits are set small so each test takes seconds.

use std::time::Duration;

use node_orchestrator::config::TranscodeMode;
use node_orchestrator::profiles::wire_ladder;
use protocol::client::{grpc_channel, segment_data};
use protocol::headers;
use protocol::net::transcoder_client::TranscoderClient;
use protocol::net::{NotifySegment, Payment, RegisterRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

/// The `Livepeer-Segment` header of segment `seq` of a fresh off-chain session.
async fn fresh_segment_header(uri: &str, seq: usize) -> String {
    let session = Session::offchain(uri).await;
    segment_header(&session, seq)
}

fn segment_header(session: &Session, seq: usize) -> String {
    let body = &segments()[seq % segments().len()];
    headers::encode_segment(&session.segment(seq as i64, body))
}

/// Reads the response to an upload, within `deadline`.
async fn response_text(
    mut stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    deadline: Duration,
) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(deadline, stream.read_to_end(&mut buf))
        .await
        .expect("the node answers within the deadline");
    String::from_utf8_lossy(&buf).into_owned()
}

/// `/metrics` as text, on a fresh connection.
async fn metrics_text(uri: &str) -> String {
    protocol::client::http_client()
        .get(format!("{uri}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_sessions(client: &protocol::client::OrchestratorClient, n: u64) {
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

    // Ten fresh sessions (what one client can open in seconds) of a funded sender that pays
    // nothing, each refused: go's "Insufficient balance".
    let signer = chain.broadcaster.clone();
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
            &wire_ladder(&hostile.ladder),
        )
        .unwrap();
        // Names the sender (whose signature the segment carries) but holds no tickets.
        let payment = Payment {
            sender: signer.address().to_vec(),
            ..Payment::default()
        };
        let (status_code, reason) = refused(hostile.submit(&seg, Some(&payment), body).await);
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

/// Item 10: uploads past the node's byte budget are refused with 503 and a reason while the
/// budget is held, whatever the number of connections, and are counted; the budget comes back
/// when the holders go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_node_byte_budget_are_refused_with_503() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.max_segment_bytes = 2_000_000;
    config.limits.max_session_inflight_bytes = 2_000_000;
    config.limits.max_inflight_bytes = 3_500_000;
    config.limits.upload_timeout_ms = 1500;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let addr = orchestrator.local_addr();

    // Two uploads from two sessions hold 3 MB of the 3.5 MB between them; a third one, from a
    // third session, cannot be held.
    let mut holders = Vec::new();
    for seq in 0..2 {
        let header = fresh_segment_header(&uri, seq).await;
        holders.push(start_upload(addr, &header, 1_500_000).await);
    }
    let header = fresh_segment_header(&uri, 2).await;
    let third = start_upload(addr, &header, 1_500_000).await;
    let text = response_text(third, WAIT).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("limits.max_inflight_bytes"), "{text}");
    for holder in holders {
        let text = response_text(holder, WAIT).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    let metrics = metrics_text(&uri).await;
    assert!(
        metrics.contains("lpt_orchestrator_segment_failures_total{reason=\"overloaded\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lpt_orchestrator_inflight_bytes 0"),
        "{metrics}"
    );
    let mut honest = Session::offchain(&uri).await;
    let reply = honest.send(3).await.expect("the budget is free again");
    assert_eq!(reply.renditions().unwrap().len(), ladder().len());
    orchestrator.shutdown().await;
}

/// Item 10: one session cannot pile up uploads: past `max_session_segments` in flight, or past
/// its byte budget, it gets 429 with the key to raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_cannot_pile_up_segments_or_bytes() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.max_segment_bytes = 2_000_000;
    config.limits.max_session_inflight_bytes = 2_500_000;
    config.limits.max_session_segments = 2;
    config.limits.upload_timeout_ms = 1500;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let addr = orchestrator.local_addr();

    // Segments: two small uploads in flight, the third of the same session is refused.
    let session = Session::offchain(&uri).await;
    let first = start_upload(addr, &segment_header(&session, 0), 10_000).await;
    let second = start_upload(addr, &segment_header(&session, 1), 10_000).await;
    let third = start_upload(addr, &segment_header(&session, 2), 10_000).await;
    let text = response_text(third, WAIT).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("limits.max_session_segments"), "{text}");
    for upload in [first, second] {
        let text = response_text(upload, WAIT).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }

    // Bytes: 1.5 MB held, another 1.5 MB of the same session is past its 2.5 MB.
    let session = Session::offchain(&uri).await;
    let first = start_upload(addr, &segment_header(&session, 0), 1_500_000).await;
    let second = start_upload(addr, &segment_header(&session, 1), 1_500_000).await;
    let text = response_text(second, WAIT).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("limits.max_session_inflight_bytes"), "{text}");
    let text = response_text(first, WAIT).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    let metrics = metrics_text(&uri).await;
    assert!(
        metrics.contains("lpt_orchestrator_segment_failures_total{reason=\"session_limit\"} 2\n"),
        "{metrics}"
    );
    // The session is served again once its uploads are gone.
    let mut honest = Session::offchain(&uri).await;
    for seq in 0..3 {
        honest
            .send(seq)
            .await
            .expect("one segment at a time is fine");
    }
    orchestrator.shutdown().await;
}

/// Item 10: connections past `max_connections` are closed at once (not held until the
/// handshake deadline) and counted; the node serves again when they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.limits.max_connections = 3;
    config.limits.handshake_timeout_ms = 60_000;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let addr = orchestrator.local_addr();

    // Three silent connections (a slowloris that never starts TLS) take every place.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..2 {
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
            .await
            .expect("a connection past the cap is closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    drop(silent);
    // The places come back as the server sees the silent ones close.
    let client = protocol::client::http_client();
    let started = std::time::Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{uri}/healthz")).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(started.elapsed() < WAIT, "the node never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two refused above, and any attempt of the loop that came before the server saw a close.
    let metrics = metrics_text(&uri).await;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lpt_orchestrator_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(refused >= 2, "{metrics}");
    orchestrator.shutdown().await;
}

/// Item 13: without a token `/status` shows aggregates only (no session id, sender, ticket,
/// transcoder or fault switch), and a rendition is served only at the URL its result named: the
/// session id, which travels in every segment header, does not lead to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_renditions_give_nothing_away_without_credentials() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::PassThrough;
    config.status_token = Some("status-secret".into());
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let mut session = Session::offchain(&uri).await;
    let session_id = session.info.auth_token.clone().unwrap().session_id;
    let reply = session.send(0).await.unwrap();

    let anyone = protocol::client::http_client();
    let get_status = |token: Option<&'static str>| {
        let mut request = anyone.get(format!("{uri}/status"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    for token in [None, Some("status-secreT"), Some("admin")] {
        let public = get_status(token).await;
        let text = public.to_string();
        assert!(!text.contains(&session_id), "{token:?}: {text}");
        assert_eq!(public["detail"], false, "{text}");
        for private in ["balances", "redemptions", "transcoders", "faults"] {
            assert!(public.get(private).is_none(), "{private} shown: {text}");
        }
        assert_eq!(public["sessions"], 1, "{text}");
        assert_eq!(public["segments"]["transcoded"], 1, "{text}");
    }
    for token in ["status-secret", "admin-secret"] {
        let full = get_status(Some(token)).await;
        assert_eq!(full["detail"], true, "{full}");
        assert_eq!(full["faults"]["drop_fraction"], 0.0, "{full}");
        assert!(full["transcoders"].is_array(), "{full}");
    }

    // The named URL serves the rendition; the session id and a near miss of the key do not.
    let rendition = &reply.renditions().unwrap()[0];
    assert!(!rendition.url.contains(&session_id), "{}", rendition.url);
    let data = session.client.download(&rendition.url).await.unwrap();
    assert_eq!(
        data,
        segments()[0],
        "pass-through renditions are the source"
    );
    let profile = &session.ladder[0].name;
    for url in [
        format!("{uri}/stream/{session_id}/{profile}/0.ts"),
        format!("{uri}/stream/{session_id}/{profile}.m3u8"),
        {
            let mut near = rendition.url.clone();
            let at = near.find("/stream/").unwrap() + "/stream/".len();
            let flipped = if &near[at..=at] == "0" { "1" } else { "0" };
            near.replace_range(at..=at, flipped);
            near
        },
    ] {
        let response = anyone.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 404, "{url}");
    }
    orchestrator.shutdown().await;
}

/// Item 10: one connection may not open hundreds of concurrent upload streams: the server's
/// HTTP/2 SETTINGS announce `max_streams_per_connection` (read off the wire, as a hostile client
/// would before opening its streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_get_the_configured_stream_cap() {
    let mut config = offchain_config();
    config.limits.max_streams_per_connection = 4;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut tls = tls_connect_alpn(orchestrator.local_addr(), b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Client preface and an empty SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // The server's first frame is its SETTINGS: 6-byte entries of (id, value).
    let mut head = [0u8; 9];
    tokio::time::timeout(WAIT, tls.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[3], 0x4, "SETTINGS frame first: {head:?}");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.unwrap();
    let max_streams = payload
        .chunks_exact(6)
        .find(|entry| entry[..2] == [0, 3])
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
    assert_eq!(max_streams, Some(4), "{payload:?}");
    drop(tls);
    orchestrator.shutdown().await;
}
