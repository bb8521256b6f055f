//! `tester::publish` against a real leaderboard-like HTTP server on a loopback port picked at run
//! time: the server recomputes the HMAC over the bytes it received and checks every §7 field and
//! its JSON type, like leaderboard-serverless does, so these tests fail if the signature, the
//! record format, the retry rule or the report wording is wrong.
//!
//! This is its own test binary because the secret comes from the environment: the variables are set
//! once here, where nothing outside Rust's own locked environment access runs concurrently.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use observation::record::*;
use reports::*;
use serde_json::Value;
use sha2::Sha256;
use tester::publish::{Delivery, PublishError, PublishOptions, publish};

const SECRET_ENV: &str = "LPT_TEST_PUBLISH_SECRET";
const WRONG_SECRET_ENV: &str = "LPT_TEST_PUBLISH_WRONG_SECRET";
const SECRET: &str = "leaderboard-shared-secret";
const WRONG_SECRET: &str = "not-the-leaderboard-secret";
const T0: i64 = 1_795_309_323_000;
const R240: &str = "P240p30fps16x9";
const ORCHESTRATORS: [&str; 3] = ["0x1111", "0x2222", "0x3333"];

fn set_secrets() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: this test binary reads the environment only through `std::env` (which locks),
        // and its HTTP clients connect to IP literals, so no C code reads it concurrently.
        unsafe {
            std::env::set_var(SECRET_ENV, SECRET);
            std::env::set_var(WRONG_SECRET_ENV, WRONG_SECRET);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The leaderboard server.

#[derive(Default)]
struct ServerState {
    /// Statuses answered to the first requests, before any check (e.g. 503, 503).
    script: VecDeque<u16>,
    /// Requests received, HMAC-valid or not.
    requests: usize,
    /// Records accepted, as received.
    stored: Vec<Value>,
    /// Bodies received, in order (to check that a retry resends the same bytes).
    bodies: Vec<Vec<u8>>,
}

#[derive(Clone)]
struct Leaderboard {
    secret: Arc<Vec<u8>>,
    regions: Arc<Vec<String>>,
    state: Arc<Mutex<ServerState>>,
}

impl Leaderboard {
    fn new(regions: &[&str], script: &[u16]) -> Self {
        Leaderboard {
            secret: Arc::new(SECRET.as_bytes().to_vec()),
            regions: Arc::new(regions.iter().map(|r| r.to_string()).collect()),
            state: Arc::new(Mutex::new(ServerState {
                script: script.iter().copied().collect(),
                ..ServerState::default()
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/api/post_stats", post(post_stats))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }
}

/// Whether a field's JSON value has the §7 type (and a sane range).
type FieldCheck = fn(&Value) -> bool;

/// What is wrong with a posted record, checked field by field against PROTOCOL.md §7.
fn section7_problem(record: &Value) -> Option<String> {
    let obj = record.as_object()?;
    let want: [(&str, FieldCheck); 12] = [
        ("region", |v| v.as_str().is_some_and(|s| !s.is_empty())),
        ("orchestrator", |v| {
            v.as_str().is_some_and(|s| !s.is_empty())
        }),
        ("success_rate", |v| {
            v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
        }),
        ("round_trip_time", |v| v.as_f64().is_some_and(|x| x >= 0.0)),
        ("seg_duration", |v| v.as_f64().is_some_and(|x| x > 0.0)),
        ("segments_sent", Value::is_u64),
        ("segments_received", Value::is_u64),
        ("upload_time", |v| v.as_f64().is_some_and(|x| x >= 0.0)),
        ("download_time", |v| v.as_f64().is_some_and(|x| x >= 0.0)),
        ("transcode_time", |v| v.as_f64().is_some_and(|x| x >= 0.0)),
        ("errors", |v| {
            v.as_array().is_some_and(|errors| {
                errors.iter().all(|e| {
                    e["error_code"].is_string() && e["message"].is_string() && e["count"].is_u64()
                })
            })
        }),
        ("timestamp", Value::is_i64),
    ];
    for (key, valid) in want {
        match obj.get(key) {
            None => return Some(format!("missing field {key}")),
            Some(v) if !valid(v) => return Some(format!("bad {key}: {v}")),
            Some(_) => {}
        }
    }
    obj.keys()
        .find(|k| !want.iter().any(|(w, _)| w == k))
        .map(|k| format!("unexpected field {k}"))
}

async fn post_stats(
    State(board): State<Leaderboard>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut state = board.state();
    state.requests += 1;
    state.bodies.push(body.to_vec());
    if let Some(code) = state.script.pop_front() {
        return (
            StatusCode::from_u16(code).unwrap(),
            "busy, try later".into(),
        );
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&board.secret).unwrap();
    mac.update(&body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != expected {
        return (StatusCode::FORBIDDEN, "invalid signature".into());
    }
    let record: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(problem) = section7_problem(&record) {
        return (StatusCode::BAD_REQUEST, problem);
    }
    if !board.regions.iter().any(|r| record["region"] == **r) {
        return (StatusCode::BAD_REQUEST, "invalid region\n".into());
    }
    state.stored.push(record);
    (StatusCode::OK, "ok".into())
}

// ---------------------------------------------------------------------------------------------
// A rendered run with three orchestrators in FRA.

fn segment(orch: &str, stream: &str, seq: u64, ok: bool) -> SegmentRecord {
    SegmentRecord {
        t_ms: T0 + seq as i64 * 2000,
        workload: "leaderboard".into(),
        stream: stream.into(),
        rendition: R240.into(),
        seq,
        orchestrator: Some(orch.into()),
        region: Some("FRA".into()),
        ok,
        error: (!ok).then(|| "upload_timeout".to_string()),
        message: (!ok).then(|| "no answer to the segment upload within 8 s".to_string()),
        duration_s: Some(2.0),
        latency_ms: None,
        upload_ms: ok.then_some(300.0),
        transcode_ms: ok.then_some(900.0),
        download_ms: ok.then_some(200.0),
        round_trip_ms: ok.then_some(1500.0),
        bytes: Some(100_000),
        bitrate_kbps: Some(400.0),
        width: Some(426),
        height: Some(240),
        frames: None,
    }
}

/// Writes the journal and renders it, so `leaderboard.json` is exactly what `lpt run` leaves.
///
/// Rendered on a plain thread: Polars refuses to block inside a current-thread Tokio runtime.
fn rendered_run(dir: &Path) -> Value {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || render_run(&dir)).join().unwrap()
}

fn render_run(dir: &Path) -> Value {
    let mut records: Vec<Record> = Vec::new();
    for (i, orch) in ORCHESTRATORS.iter().enumerate() {
        let stream = format!("s{i}");
        for seq in 1..=3 {
            // The third orchestrator loses its last segment.
            let ok = !(i == 2 && seq == 3);
            records.push(segment(orch, &stream, seq, ok).into());
        }
    }
    for (seq, origin, vmaf) in [(1, "network", 88.0), (1, "reference", 94.0)] {
        records.push(
            QualitySample {
                t_ms: T0,
                workload: "leaderboard".into(),
                stream: "s0".into(),
                rendition: R240.into(),
                seq,
                origin: origin.into(),
                orchestrator: None,
                region: None,
                vmaf: Some(vmaf),
                psnr: None,
                frames: Some(60),
            }
            .into(),
        );
    }
    records.push(
        TicketRecord {
            t_ms: T0,
            workload: None,
            stream: None,
            orchestrator: ORCHESTRATORS[0].into(),
            region: None,
            face_value_wei: 1e12,
            win_prob: 0.001,
            ev_wei: 1e9,
            won: false,
            pixels: Some(4_000_000),
            price_wei_per_pixel: Some(240.0),
            recipient_rand_hash: None,
            sender_nonce: None,
        }
        .into(),
    );
    let journal = JournalWriter::in_run_dir(dir).unwrap();
    for r in records {
        journal.append(r).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let options = ReportOptions {
        png: false,
        ..ReportOptions::default()
    };
    let out = finalize_run(dir, &options).unwrap();
    assert_eq!(out.leaderboard_records, 3);
    serde_json::from_slice(&std::fs::read(dir.join("leaderboard.json")).unwrap()).unwrap()
}

fn options(addr: SocketAddr, secret_env: &str) -> PublishOptions {
    PublishOptions {
        secret_env: secret_env.into(),
        timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(20),
        // FRA and the test server's own LOCAL pass the check made before posting.
        regions: tester::publish::AcceptedRegions::List(vec!["FRA".into(), "LOCAL".into()]),
        ..PublishOptions::new(format!("http://{addr}"))
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn right_secret_publishes_every_record_and_the_region_override_is_what_is_posted() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    let board = rendered_run(run.path());
    let server = Leaderboard::new(&["LOCAL"], &[]);
    let addr = server.start().await;

    // The run's own region is not one the server knows: refused at once (4xx is final).
    let refused = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap();
    assert_eq!(refused.accepted(), 0);
    assert!(!refused.all_accepted());
    for r in &refused.records {
        assert_eq!(
            (r.delivery, r.status, r.attempts),
            (Delivery::Rejected, Some(400), 1)
        );
        assert_eq!(r.message, "invalid region");
    }
    let text = refused.to_string();
    assert!(text.contains("0 of 3 records accepted"), "{text}");
    assert!(
        text.contains("0x1111 (FRA): rejected (400 Bad Request): invalid region"),
        "{text}"
    );
    assert_eq!(server.state().requests, 3);

    let opts = PublishOptions {
        region: Some("LOCAL".into()),
        ..options(addr, SECRET_ENV)
    };
    let report = publish(run.path(), &opts).await.unwrap();
    assert_eq!(report.accepted(), 3);
    assert!(report.all_accepted());
    assert_eq!(
        report.url,
        format!("http://{addr}/api/post_stats"),
        "the route is appended to the endpoint"
    );
    for r in &report.records {
        assert_eq!(
            (r.delivery, r.status, r.attempts),
            (Delivery::Accepted, Some(200), 1)
        );
        assert_eq!(r.region, "LOCAL");
    }

    // The server stored exactly our records, with the region replaced and nothing else changed.
    let stored = server.state().stored.clone();
    assert_eq!(stored.len(), 3);
    for (got, ours) in stored.iter().zip(board["records"].as_array().unwrap()) {
        let mut want = ours.clone();
        want["region"] = "LOCAL".into();
        assert_eq!(got, &want);
    }

    // The text: headline, the public score beside our extras, the failure reasons.
    let text = report.to_string();
    println!("{text}");
    assert!(text.contains("3 of 3 records accepted"), "{text}");
    assert!(
        text.contains("0x1111 (LOCAL): accepted (200 OK, 1 attempt)"),
        "{text}"
    );
    let score = board["aggregated"]["0x3333"]["FRA"]["score"]
        .as_f64()
        .unwrap();
    let rts = 1.0 - (-2.0f64 / 1.5).exp();
    assert!((score - (2.0 / 3.0) * rts).abs() < 1e-12);
    assert!(
        text.contains(&format!(
            "public score: {score:.3} = success 0.667 × round-trip score {rts:.3}"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "ours: VMAF 88.00 over 1 segment (reference transcoder 94.00, deficit 6.00 over 1 \
             paired); effective price 250 wei/pixel (quoted 240), 1 ticket (0 winning)"
        ),
        "{text}"
    );
    assert!(
        text.contains("failures: upload_timeout ×1 (no answer to the segment upload within 8 s)"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "the secret must never be shown");
}

#[tokio::test]
async fn wrong_secret_gets_a_clear_403_report_and_nothing_is_stored() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    let server = Leaderboard::new(&["FRA"], &[]);
    let addr = server.start().await;

    let report = publish(run.path(), &options(addr, WRONG_SECRET_ENV))
        .await
        .unwrap();
    assert_eq!(report.accepted(), 0);
    for r in &report.records {
        assert_eq!(
            (r.delivery, r.status, r.attempts),
            (Delivery::Rejected, Some(403), 1)
        );
    }
    let text = report.to_string();
    println!("{text}");
    assert!(text.contains("0 of 3 records accepted"), "{text}");
    assert!(
        text.contains(
            "0x2222 (FRA): rejected (403 Forbidden): the server did not accept the HMAC — check \
             $LPT_TEST_PUBLISH_WRONG_SECRET: invalid signature"
        ),
        "{text}"
    );
    let debug = format!("{report:?}");
    assert!(!text.contains(WRONG_SECRET) && !debug.contains(WRONG_SECRET));
    assert_eq!(server.state().requests, 3, "a 403 is not retried");
    assert!(server.state().stored.is_empty());
}

#[tokio::test]
async fn two_503_answers_then_200_is_accepted_on_the_third_attempt_with_the_same_bytes() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    let server = Leaderboard::new(&["FRA"], &[503, 503]);
    let addr = server.start().await;

    let report = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap();
    let attempts: Vec<u32> = report.records.iter().map(|r| r.attempts).collect();
    assert_eq!(attempts, [3, 1, 1]);
    assert!(report.all_accepted(), "{report}");
    assert!(
        report
            .to_string()
            .contains("0x1111 (FRA): accepted (200 OK, 3 attempts)"),
        "{report}"
    );
    let state = server.state();
    assert_eq!(state.requests, 5);
    assert_eq!(state.stored.len(), 3);
    assert!(
        state.bodies[0] == state.bodies[1] && state.bodies[1] == state.bodies[2],
        "a retry resends the same record"
    );
}

#[tokio::test]
async fn a_server_that_keeps_answering_503_is_reported_after_the_last_attempt() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    let server = Leaderboard::new(&["FRA"], &[503, 503, 503]);
    let addr = server.start().await;

    let report = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap();
    let first = &report.records[0];
    assert_eq!(
        (first.delivery, first.status, first.attempts),
        (Delivery::ServerError, Some(503), 3)
    );
    assert_eq!(report.accepted(), 2);
    let text = report.to_string();
    assert!(text.contains("2 of 3 records accepted"), "{text}");
    assert!(
        text.contains(
            "0x1111 (FRA): server error (503 Service Unavailable) on all 3 attempts: busy, try later"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_closed_port_is_a_clear_error_within_a_bounded_time() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", testkit::ports::free_port())
        .parse()
        .unwrap();

    let started = Instant::now();
    let err = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(
        matches!(err, PublishError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(
        text.contains(&format!(
            "leaderboard endpoint http://{addr}/api/post_stats is unreachable"
        )),
        "{text}"
    );
    assert!(text.contains("onnection refused"), "{text}");
    assert!(text.contains("nothing was published"), "{text}");
    // Refused connections fail at once: the time is the two backoffs (20 + 40 ms) plus overhead.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_every_attempt_and_gives_up() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    // Accepts connections and holds them without a byte of answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });

    let opts = PublishOptions {
        timeout: Duration::from_millis(300),
        attempts: 2,
        ..options(addr, SECRET_ENV)
    };
    let started = Instant::now();
    let err = publish(run.path(), &opts).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, PublishError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no answer within 0.3 s"), "{err}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one connection per attempt"
    );
    // Two 300 ms timeouts and a 20 ms backoff; bounded well below a hang.
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_server_lost_after_the_first_record_leaves_a_report_of_what_was_accepted() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    rendered_run(run.path());
    // A server that accepts one connection, stops listening, then answers that one request 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first_body = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        drop(listener);
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let body_at = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending its request");
            request.extend_from_slice(&buf[..n]);
            if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&request[..body_at]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        while request.len() < body_at + length {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed mid-body");
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        socket.shutdown().await.unwrap();
        request[body_at..].to_vec()
    });

    let started = Instant::now();
    let report = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{report}");
    let record: Value = serde_json::from_slice(&first_body.await.unwrap()).unwrap();
    assert_eq!(record["orchestrator"], ORCHESTRATORS[0]);
    let deliveries: Vec<_> = report
        .records
        .iter()
        .map(|r| (r.delivery, r.attempts))
        .collect();
    assert_eq!(
        deliveries,
        [
            (Delivery::Accepted, 1),
            (Delivery::Unreachable, 3),
            (Delivery::NotSent, 0)
        ]
    );
    let text = report.to_string();
    assert!(text.contains("1 of 3 records accepted"), "{text}");
    assert!(
        text.contains("0x2222 (FRA): unreachable after 3 attempts: error sending request"),
        "{text}"
    );
    assert!(
        text.contains("0x3333 (FRA): not sent: the server had become unreachable"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error_naming_what_is_wrong() {
    set_secrets();
    let run = tempfile::tempdir().unwrap();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();

    // No leaderboard.json.
    let err = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::NoLeaderboard { .. }), "{err}");
    assert!(err.to_string().contains("leaderboard.json"), "{err}");

    // A damaged one.
    std::fs::write(run.path().join("leaderboard.json"), b"{\"records\": [1]}").unwrap();
    let err = publish(run.path(), &options(addr, SECRET_ENV))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Parse { .. }), "{err}");

    // The secret's variable unset: named, and a usage error.
    rendered_run(run.path());
    let err = publish(run.path(), &options(addr, "LPT_TEST_PUBLISH_UNSET_SECRET"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable LPT_TEST_PUBLISH_UNSET_SECRET is not set: it must hold the \
         leaderboard's shared HMAC secret"
    );
    assert!(err.is_usage_error());

    // A region that is not a code, an endpoint that is not http(s), zero attempts.
    let bad_region = PublishOptions {
        region: Some("FRA; DROP".into()),
        ..options(addr, SECRET_ENV)
    };
    let err = publish(run.path(), &bad_region).await.unwrap_err();
    assert!(
        err.to_string().contains("invalid region \"FRA; DROP\""),
        "{err}"
    );
    let bad_endpoint = PublishOptions {
        endpoint: "ftp://127.0.0.1:9".into(),
        ..options(addr, SECRET_ENV)
    };
    let err = publish(run.path(), &bad_endpoint).await.unwrap_err();
    assert!(err.to_string().contains("\"ftp://127.0.0.1:9\""), "{err}");
    let no_attempts = PublishOptions {
        attempts: 0,
        ..options(addr, SECRET_ENV)
    };
    let err = publish(run.path(), &no_attempts).await.unwrap_err();
    assert!(err.to_string().contains("attempts"), "{err}");
}
