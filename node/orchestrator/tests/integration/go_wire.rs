//! go-livepeer's orchestrator↔transcoder HTTP dialect (server/ot_rpc.go) on real sockets, from
//! both ends: a transcoder registered by hand over gRPC fetches the source and posts results
//! byte for byte as a go transcoder does, against our orchestrator; and our transcoder works for
//! a go-style orchestrator served by the test, which captures its requests header by header and
//! part by part.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use node_orchestrator::config::TranscodeMode;
use node_orchestrator::{RunningOrchestrator, TranscoderConfig, start_transcoder};
use protocol::client::{grpc_channel, http_client};
use protocol::net::transcoder_client::TranscoderClient;
use protocol::net::transcoder_server::{Transcoder, TranscoderServer};
use protocol::net::{NotifySegment, RegisterRequest, SegData};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::common::*;

const SECRET: &str = "go-wire-secret";
const GO_AUTH: &str = "Livepeer-Transcoder-1.0";
const WAIT: Duration = Duration::from_secs(30);

async fn remote_orchestrator() -> RunningOrchestrator {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some(SECRET.into());
    node_orchestrator::start(config).await.unwrap()
}

/// Registers as a go transcoder does and waits until the orchestrator lists it; the test then
/// reads the work stream itself.
async fn register(session: &Session) -> tonic::Streaming<NotifySegment> {
    let stream = TranscoderClient::new(grpc_channel(session.client.uri()).unwrap())
        .register_transcoder(RegisterRequest {
            secret: SECRET.into(),
            capacity: 1,
            capabilities: None,
        })
        .await
        .unwrap()
        .into_inner();
    wait_status(&session.client, WAIT, "transcoder attached", |s| {
        s["transcoders"].as_array().unwrap().len() == 1
    })
    .await;
    stream
}

async fn next_task(stream: &mut tonic::Streaming<NotifySegment>) -> NotifySegment {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a task within the deadline")
        .unwrap()
        .expect("the work stream stays open")
}

/// Sends segment `seq` in the background; the reply comes once the test posts results.
fn send_in_background(
    uri: &str,
    seq: usize,
) -> tokio::task::JoinHandle<Result<protocol::client::SegmentReply, String>> {
    let uri = uri.to_string();
    tokio::spawn(async move {
        let mut session = Session::offchain(&uri).await;
        session.total_timeout = Some(Duration::from_secs(60));
        session.send(seq).await.map_err(|e| e.to_string())
    })
}

/// The transcode error a segment's reply carries.
async fn segment_error(
    reply: tokio::task::JoinHandle<Result<protocol::client::SegmentReply, String>>,
) -> String {
    let reply = tokio::time::timeout(WAIT, reply)
        .await
        .expect("reply within the deadline")
        .unwrap()
        .unwrap();
    reply.renditions().unwrap_err().to_string()
}

/// A multipart part as a test writes it: header lines in order, then the body.
type GoPart<'a> = (Vec<(&'static str, String)>, &'a [u8]);

/// A body exactly as Go's `mime/multipart` writer makes it: the first delimiter without a
/// leading CRLF, each part's headers sorted by name.
fn go_multipart(boundary: &str, parts: &[GoPart<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (headers, body)) in parts.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        out.extend_from_slice(format!("{lead}--{boundary}\r\n").as_bytes());
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
    let lead = if parts.is_empty() { "" } else { "\r\n" };
    out.extend_from_slice(format!("{lead}--{boundary}--\r\n").as_bytes());
    out
}

/// A go transcoder's rendition part.
fn rendition_part(data: &[u8], pixels: u64) -> GoPart<'_> {
    (
        vec![
            ("Content-Length", data.len().to_string()),
            ("Content-Type", "video/mp2t".into()),
            ("Pixels", pixels.to_string()),
        ],
        data,
    )
}

/// A go transcoder's perceptual-hash part (it follows the rendition it describes).
fn phash_part(data: &[u8]) -> GoPart<'_> {
    (
        vec![
            ("Content-Length", data.len().to_string()),
            ("Content-Type", "application/octet-stream".into()),
        ],
        data,
    )
}

/// POSTs `/transcodeResults` with exactly `headers` (plus what HTTP itself adds).
async fn post_results(uri: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
    let mut request = http_client()
        .post(format!("{uri}/transcodeResults"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The headers a go transcoder sends with results for `task`.
fn go_headers(task: i64, content_type: &str, pixels: Option<u64>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("Authorization", GO_AUTH.to_string()),
        ("Credentials", SECRET.to_string()),
        ("Content-Type", content_type.to_string()),
        ("TaskId", task.to_string()),
    ];
    if let Some(pixels) = pixels {
        headers.push(("Pixels", pixels.to_string()));
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_transcoder_fetches_the_source_and_posts_results_as_go_does() {
    let orchestrator = remote_orchestrator().await;
    let uri = orchestrator.service_uri().to_string();
    let probe = Session::offchain(&uri).await;
    let mut work = register(&probe).await;
    let reply = send_in_background(&uri, 0);
    let task = next_task(&mut work).await;
    let names: Vec<String> = ladder().iter().map(|p| p.name.clone()).collect();
    let sent: Vec<String> = task
        .seg_data
        .as_ref()
        .unwrap()
        .full_profiles3
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(sent, names);

    // The source URL holds 128 random bits and is fetched without any credentials.
    let name = task
        .url
        .strip_prefix(&format!("{uri}/task/"))
        .and_then(|rest| rest.strip_suffix(".ts"))
        .unwrap_or_else(|| panic!("source URL {:?}", task.url));
    assert_eq!(name.len(), 32, "{name}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{name}"
    );
    let plain = http_client();
    let source = plain.get(&task.url).send().await.unwrap();
    assert_eq!(source.status(), 200);
    assert_eq!(source.bytes().await.unwrap(), segments()[0]);
    for guess in [
        format!("{uri}/task/{}.ts", task.task_id),
        format!("{uri}/task/{}.ts", "0".repeat(32)),
        format!("{uri}/task/{name}"),
    ] {
        let response = plain
            .get(&guess)
            .header("Authorization", SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{guess}");
    }

    // The renditions as a go transcoder posts them, each followed by its perceptual hash: real
    // ones, since the orchestrator counts their frames and bills by the count.
    let (p144, p240) = (256 * 144 * 30u64, 426 * 240 * 30u64);
    let transcoded = node_orchestrator::transcode::LocalTranscoders::new("veryfast", 0)
        .transcode("go-wire", ladder(), segments()[0].clone())
        .await
        .expect("the test ladder transcodes");
    let pixels: Vec<u64> = transcoded.renditions.iter().map(|r| r.pixels).collect();
    assert_eq!(pixels, [p144, p240], "30 frames each");
    let (r144, r240) = (
        &transcoded.renditions[0].data[..],
        &transcoded.renditions[1].data[..],
    );
    let boundary = "0f3c9a8e5d1b7264";
    let body = go_multipart(
        boundary,
        &[
            rendition_part(r144, p144),
            phash_part(b"phash-144"),
            rendition_part(r240, p240),
            phash_part(b"phash-240"),
        ],
    );
    let content_type = format!("multipart/mixed; boundary={boundary}");
    let decoded = 256 * 144 * 30u64;

    // Refusals first, each leaving the task waiting. Today's `Authorization: <secret>` alone:
    let mut old_form = go_headers(task.task_id, &content_type, Some(decoded));
    old_form.retain(|(n, _)| *n != "Credentials");
    old_form[0].1 = SECRET.into();
    assert_eq!(
        post_results(&uri, &old_form, body.clone()).await,
        (401, "Unauthorized".into())
    );
    let mut wrong = go_headers(task.task_id, &content_type, Some(decoded));
    wrong[1].1 = "not-the-secret".into();
    assert_eq!(
        post_results(&uri, &wrong, body.clone()).await,
        (401, "Unauthorized".into())
    );
    let no_pixels = go_headers(task.task_id, &content_type, None);
    assert_eq!(
        post_results(&uri, &no_pixels, body.clone()).await,
        (400, "Invalid Pixels".into())
    );
    let mut bad_task = go_headers(task.task_id, &content_type, Some(decoded));
    bad_task[3].1 = "seven".into();
    assert_eq!(
        post_results(&uri, &bad_task, body.clone()).await,
        (400, "Invalid Task ID".into())
    );
    let (code, _) = post_results(
        &uri,
        &go_headers(task.task_id, "multipart", Some(decoded)),
        body.clone(),
    )
    .await;
    assert_eq!(code, 415);

    assert_eq!(
        post_results(
            &uri,
            &go_headers(task.task_id, &content_type, Some(decoded)),
            body.clone()
        )
        .await,
        (200, "OK".into())
    );
    let reply = tokio::time::timeout(WAIT, reply)
        .await
        .expect("reply within the deadline")
        .unwrap()
        .unwrap();
    let renditions = reply.renditions().unwrap();
    assert_eq!(renditions.len(), 2);
    for ((rendition, (name, data)), pixels) in renditions
        .iter()
        .zip(names.iter().zip([r144, r240]))
        .zip([p144, p240])
    {
        assert!(
            rendition.url.ends_with(&format!("/{name}/0.ts")),
            "{}",
            rendition.url
        );
        assert_eq!(rendition.pixels as u64, pixels);
        assert_eq!(probe.client.download(&rendition.url).await.unwrap(), data);
    }

    // The source is gone with the task, and the task cannot be completed twice.
    assert_eq!(plain.get(&task.url).send().await.unwrap().status(), 404);
    assert_eq!(
        post_results(
            &uri,
            &go_headers(task.task_id, &content_type, Some(decoded)),
            body
        )
        .await
        .0,
        404
    );
    let s = status(&probe.client).await;
    assert_eq!(s["transcoders"][0]["completed"], 1);
    assert_eq!(s["pixels_billed"], p144 + p240);
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_transcoder_errors_and_unmatched_results_fail_the_segment() {
    let orchestrator = remote_orchestrator().await;
    let uri = orchestrator.service_uri().to_string();
    let probe = Session::offchain(&uri).await;
    let mut work = register(&probe).await;

    // A transcoding error: 200 "OK", and the segment fails with the message. go's orchestrator
    // reads no top-level Pixels for it, so none is sent here.
    let reply = send_in_background(&uri, 1);
    let task = next_task(&mut work).await;
    let message = "lpms: no keyframe found in segment";
    assert_eq!(
        post_results(
            &uri,
            &go_headers(task.task_id, "livepeer/transcoding-error", None),
            message.as_bytes().to_vec()
        )
        .await,
        (200, "OK".into())
    );
    assert_eq!(
        segment_error(reply).await,
        format!("transcode failed: {message}")
    );

    // One rendition for a two-profile task.
    let reply = send_in_background(&uri, 2);
    let task = next_task(&mut work).await;
    let body = go_multipart("b1", &[rendition_part(b"only one", 1000)]);
    let reason = "remote transcoder 1 posted 1 renditions for 2 profiles";
    assert_eq!(
        post_results(
            &uri,
            &go_headers(task.task_id, "multipart/mixed; boundary=b1", Some(1)),
            body
        )
        .await,
        (400, reason.to_string())
    );
    assert_eq!(
        segment_error(reply).await,
        format!("transcode failed: {reason}")
    );

    // A perceptual hash with no rendition before it.
    let reply = send_in_background(&uri, 3);
    let task = next_task(&mut work).await;
    let body = go_multipart(
        "b2",
        &[
            phash_part(b"hash"),
            rendition_part(b"a", 1),
            rendition_part(b"b", 1),
        ],
    );
    let (code, reason) = post_results(
        &uri,
        &go_headers(task.task_id, "multipart/mixed; boundary=b2", Some(1)),
        body,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        reason,
        "remote transcoder results: part 0: perceptual hash without a rendition before it"
    );
    assert_eq!(
        segment_error(reply).await,
        format!("transcode failed: {reason}")
    );

    let s = status(&probe.client).await;
    assert_eq!(s["transcoders"][0]["failed"], 3);
    assert_eq!(s["transcoders"][0]["completed"], 0);
    orchestrator.shutdown().await;
}

/// What the go-style orchestrator below saw.
#[derive(Debug)]
enum Seen {
    Register(RegisterRequest),
    Source(HeaderMap),
    Results(HeaderMap, Bytes),
}

/// The `net.Transcoder` side of a go-style orchestrator: hands out `tasks` to whoever registers.
struct GoOrchestrator {
    tasks: Vec<NotifySegment>,
    seen: mpsc::UnboundedSender<Seen>,
}

#[tonic::async_trait]
impl Transcoder for GoOrchestrator {
    type RegisterTranscoderStream = ReceiverStream<Result<NotifySegment, tonic::Status>>;

    async fn register_transcoder(
        &self,
        request: tonic::Request<RegisterRequest>,
    ) -> Result<tonic::Response<Self::RegisterTranscoderStream>, tonic::Status> {
        let _ = self.seen.send(Seen::Register(request.into_inner()));
        let (tx, rx) = mpsc::channel(self.tasks.len() + 1);
        for task in &self.tasks {
            tx.send(Ok(task.clone())).await.unwrap();
        }
        // The sender lives on with the stream so the transcoder stays registered.
        tokio::spawn(async move { tx.closed().await });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

async fn go_source(State(seen): State<mpsc::UnboundedSender<Seen>>, headers: HeaderMap) -> Bytes {
    let _ = seen.send(Seen::Source(headers));
    segments()[0].clone()
}

async fn go_results(
    State(seen): State<mpsc::UnboundedSender<Seen>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let _ = seen.send(Seen::Results(headers, body));
    (StatusCode::OK, "OK")
}

/// Splits a body our transcoder wrote into (header lines, body) per part, by hand.
fn split_parts(boundary: &str, body: &[u8]) -> Vec<(Vec<String>, Vec<u8>)> {
    let text = body.to_vec();
    let opening = format!("--{boundary}\r\n");
    let closing = format!("\r\n--{boundary}--\r\n");
    assert!(text.starts_with(opening.as_bytes()), "opening delimiter");
    assert!(text.ends_with(closing.as_bytes()), "closing delimiter");
    let inner = &text[opening.len()..text.len() - closing.len()];
    let delimiter = format!("\r\n--{boundary}\r\n");
    let mut parts = Vec::new();
    let mut rest = inner;
    loop {
        let end = rest
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_bytes())
            .unwrap_or(rest.len());
        let part = &rest[..end];
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end with a blank line");
        let headers = String::from_utf8(part[..split].to_vec())
            .unwrap()
            .split("\r\n")
            .map(str::to_string)
            .collect();
        parts.push((headers, part[split + 4..].to_vec()));
        if end == rest.len() {
            return parts;
        }
        rest = &rest[end + delimiter.len()..];
    }
}

/// Header names other than what HTTP itself adds.
fn protocol_headers(headers: &HeaderMap) -> BTreeSet<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| {
            !matches!(
                k.as_str(),
                "host" | "content-length" | "accept" | "accept-encoding" | "user-agent"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_transcoder_speaks_go_wire_to_a_go_orchestrator() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("https://{}", listener.local_addr().unwrap());
    let (seen, mut saw) = mpsc::unbounded_channel();
    let wire_ladder: Vec<_> = ladder()
        .iter()
        .map(node_orchestrator::profiles::to_wire)
        .collect();
    let seg = SegData {
        manifest_id: b"go-manifest".to_vec(),
        seq: 7,
        full_profiles3: wire_ladder,
        ..Default::default()
    };
    let task = |task_id: i64, path: &str| NotifySegment {
        url: format!("{uri}{path}"),
        seg_data: Some(seg.clone()),
        task_id,
        orch_id: "0x0000000000000000000000000000000000000001".into(),
        ..Default::default()
    };
    let grpc = tonic::service::Routes::new(TranscoderServer::new(GoOrchestrator {
        tasks: vec![task(42, "/stream/src/7.ts"), task(43, "/stream/missing.ts")],
        seen: seen.clone(),
    }))
    .into_axum_router();
    let http = Router::new()
        .route("/stream/src/7.ts", get(go_source))
        .route("/transcodeResults", post(go_results))
        .with_state(seen);
    let (stop, server) = node_orchestrator::server::spawn_on_loopback(listener, grpc, http);
    let transcoder = start_transcoder(TranscoderConfig::new(&uri, SECRET));

    let mut source_headers = None;
    let mut results = Vec::new();
    while results.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(60), saw.recv())
            .await
            .expect("the transcoder's requests within 60 s")
            .unwrap();
        match event {
            Seen::Register(register) => assert_eq!(register.secret, SECRET),
            Seen::Source(headers) => source_headers = Some(headers),
            Seen::Results(headers, body) => results.push((headers, body)),
        }
    }
    // The source was a plain GET: no credentials of any kind.
    let source_headers = source_headers.expect("the source was fetched");
    assert_eq!(protocol_headers(&source_headers), BTreeSet::new());

    results.sort_by_key(|(h, _)| h["taskid"].to_str().unwrap().to_string());
    let expected_names: BTreeSet<String> = [
        "authorization",
        "credentials",
        "content-type",
        "taskid",
        "pixels",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();

    // Task 42: the renditions.
    let (headers, body) = &results[0];
    assert_eq!(protocol_headers(headers), expected_names);
    assert_eq!(headers["authorization"], GO_AUTH);
    assert_eq!(headers["credentials"], SECRET);
    assert_eq!(headers["taskid"], "42");
    let (sw, sh, sframes) = ffprobe(&segments()[0]).await;
    assert_eq!(
        headers["pixels"].to_str().unwrap(),
        (u64::from(sw * sh) * sframes).to_string()
    );
    let content_type = headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let parts = split_parts(boundary, body);
    assert_eq!(parts.len(), 2, "one part per profile");
    for ((lines, data), profile) in parts.iter().zip(ladder()) {
        let (w, h, frames) = ffprobe(data).await;
        assert_eq!((w, h), (profile.width, profile.height), "{}", profile.name);
        assert_eq!(
            lines,
            &vec![
                format!("Content-Length: {}", data.len()),
                "Content-Type: video/mp2t".to_string(),
                format!("Pixels: {}", u64::from(w * h) * frames),
            ],
            "{}",
            profile.name
        );
    }

    // Task 43: its source is missing, so the failure goes back as a transcoding error.
    let (headers, body) = &results[1];
    assert_eq!(protocol_headers(headers), expected_names);
    assert_eq!(headers["authorization"], GO_AUTH);
    assert_eq!(headers["credentials"], SECRET);
    assert_eq!(headers["taskid"], "43");
    assert_eq!(headers["pixels"], "0");
    assert_eq!(headers["content-type"], "livepeer/transcoding-error");
    assert_eq!(
        String::from_utf8_lossy(body),
        "fetching the segment: 404 Not Found"
    );

    transcoder.kill();
    stop.send(true).unwrap();
    server.await.unwrap();
}
