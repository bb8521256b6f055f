//! The AI probe against hostile and broken answers from a local server: each is a failure with
//! its own reason, within a bounded time and bounded memory; and a well-behaved server gives
//! successes with every timing filled and cold/warm starts told apart.

use std::convert::Infallible;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use probes::ai::{AiLimits, AiLoad, AiObservation, AiPlan, AiTarget, Pipeline, reason, run_plan};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Server {
    /// Bytes the huge answer handed to the connection.
    huge_sent: Arc<AtomicU64>,
    /// Set when the server let go of the huge answer (the client went away, or it was all sent).
    huge_done: Arc<AtomicBool>,
    /// Answers given, for the non-deterministic server.
    counter: Arc<AtomicU64>,
}

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Sets its flag when dropped: the server's body stream ends when the connection does.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn png(width: u32, height: u32, shade: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width.max(1), height.max(1), image::Rgb(shade));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageOutputFormat::Png)
        .expect("encodes");
    out.into_inner()
}

fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn streaming(stream: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream.map(Ok::<_, Infallible>)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The request's size, count and seed: JSON fields, or for the multipart upscale route the
/// uploaded PNG's size times four.
fn asked(
    pipeline: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u32, u32, u64, u64), StatusCode> {
    if pipeline == "upscale" {
        // The probe announces its body's length: no chunked uploads.
        if !headers.contains_key(header::CONTENT_LENGTH) {
            return Err(StatusCode::LENGTH_REQUIRED);
        }
        let start = body
            .windows(8)
            .position(|w| w == b"\x89PNG\r\n\x1a\n")
            .ok_or(StatusCode::BAD_REQUEST)?;
        let img = image::load_from_memory(&body[start..]).map_err(|_| StatusCode::BAD_REQUEST)?;
        let text = String::from_utf8_lossy(body);
        let seed = text
            .split("name=\"seed\"\r\n\r\n")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        return Ok((img.width() * 4, img.height() * 4, 1, seed));
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
    let get = |k: &str, d: u64| request[k].as_u64().unwrap_or(d);
    Ok((
        get("width", 1024) as u32,
        get("height", 576) as u32,
        get("num_images_per_prompt", 1),
        get("seed", 0),
    ))
}

async fn generate(
    State(server): State<Server>,
    Path((mode, pipeline)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match mode.as_str() {
        "notjson" => return (StatusCode::OK, "<html>busy</html>").into_response(),
        "error500" => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"detail": {"msg": "CUDA out of memory"}}),
            );
        }
        "media404" => {
            return json_response(
                StatusCode::OK,
                json!({"images": [{"url": "/missing.png", "seed": 42, "nsfw": false}]}),
            );
        }
        "huge" => {
            let sent = server.huge_sent.clone();
            let done = SetOnDrop(server.huge_done.clone());
            // 500 MB, never all wanted.
            return streaming(futures_util::stream::iter(0..8000).map(move |_| {
                let _held_until_the_stream_drops = &done;
                sent.fetch_add(ZEROS.len() as u64, Ordering::Relaxed);
                Bytes::from_static(&ZEROS)
            }));
        }
        "trickle" => {
            return streaming(futures_util::stream::unfold(true, |first| async move {
                if first {
                    return Some((Bytes::from_static(b"{\"images\": ["), false));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Bytes::from_static(b" "), false))
            }));
        }
        "slow" => tokio::time::sleep(Duration::from_millis(600)).await,
        _ => {}
    }
    let (mut width, height, mut count, seed) = match asked(&pipeline, &headers, &body) {
        Ok(asked) => asked,
        Err(status) => return status.into_response(),
    };
    let answer = server.counter.fetch_add(1, Ordering::Relaxed);
    match mode.as_str() {
        "wrongsize" => width /= 2,
        "wrongcount" => count += 1,
        _ => {}
    }
    let images: Vec<Value> = (0..count)
        .map(|i| {
            let echoed = if mode == "noseed" { 1 } else { seed + i };
            let shade = if mode == "random" {
                [(answer % 251) as u8, 1, 2]
            } else {
                [(seed % 251) as u8, (i % 251) as u8, 7]
            };
            json!({"url": data_url(&png(width, height, shade)), "seed": echoed, "nsfw": false})
        })
        .collect();
    json_response(StatusCode::OK, json!({ "images": images }))
}

async fn serve(server: Server) -> SocketAddr {
    let app = Router::new()
        .route("/{mode}/{pipeline}", post(generate))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn limits() -> AiLimits {
    AiLimits {
        deadline: Duration::from_millis(1500),
        max_body: 1 << 20,
        max_media: 1 << 20,
        max_in_flight: 64,
    }
}

fn t2i_plan(load: AiLoad) -> AiPlan {
    let mut plan = AiPlan::new(
        Pipeline::TextToImage,
        "test/model",
        json!({"prompt": "a test card", "width": 64, "height": 32, "num_images_per_prompt": 2}),
        load,
    );
    plan.limits = limits();
    plan
}

fn one_request() -> AiLoad {
    AiLoad::Sweep {
        levels: vec![1],
        per_level: Duration::ZERO,
    }
}

async fn run(addr: SocketAddr, mode: &str, plan: &AiPlan) -> Vec<AiObservation> {
    let target = AiTarget {
        base_url: url::Url::parse(&format!("http://{addr}/{mode}/")).expect("url"),
        bearer: Some("secret".into()),
        orchestrator: Some("local".into()),
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut seen = Vec::new();
    let mut observe = |o: AiObservation| seen.push(o);
    run_plan(&target, plan, stop, &mut observe)
        .await
        .expect("plan runs");
    seen
}

/// One request against `mode` fails with `code`, quickly.
async fn expect_failure(addr: SocketAddr, mode: &str, code: &str) -> AiObservation {
    let started = Instant::now();
    let seen = run(addr, mode, &t2i_plan(one_request())).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{mode}: took {elapsed:?}");
    assert_eq!(seen.len(), 1, "{mode}: {seen:?}");
    let obs = seen.into_iter().next().expect("one observation");
    assert!(!obs.ok, "{mode}: {obs:?}");
    assert_eq!(obs.reason, Some(code), "{mode}: {obs:?}");
    assert!(obs.detail.is_some(), "{mode}");
    assert_eq!(obs.orchestrator.as_deref(), Some("local"));
    obs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_fail_with_their_reason() {
    let server = Server::default();
    let addr = serve(server.clone()).await;

    let obs = expect_failure(addr, "notjson", reason::NOT_JSON).await;
    assert_eq!(obs.status, Some(200));
    expect_failure(addr, "media404", reason::MEDIA_FETCH).await;
    let obs = expect_failure(addr, "error500", reason::HTTP_STATUS).await;
    assert_eq!(obs.status, Some(500));
    assert!(
        obs.detail
            .as_deref()
            .is_some_and(|d| d.contains("CUDA out of memory")),
        "{obs:?}"
    );
    expect_failure(addr, "wrongsize", reason::WRONG_SIZE).await;
    expect_failure(addr, "wrongcount", reason::WRONG_COUNT).await;
    expect_failure(addr, "noseed", reason::SEED_NOT_ECHOED).await;

    let obs = expect_failure(addr, "trickle", reason::TIMEOUT).await;
    assert!(obs.latency >= Duration::from_millis(1400), "{obs:?}");
    assert!(obs.inference.is_some(), "headers came: {obs:?}");

    expect_failure(addr, "huge", reason::TOO_LARGE).await;
    // The client stopped reading after ~1 MiB: once the server lets go of its answer, it has
    // handed over only what the socket buffers hold, far from its 500 MB.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.huge_done.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the server kept sending the huge answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = server.huge_sent.load(Ordering::Relaxed);
    assert!(sent < 64 << 20, "server sent {sent} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    expect_failure(addr, "good", reason::CONNECT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_must_be_deterministic_when_asked() {
    let addr = serve(Server::default()).await;
    let mut plan = t2i_plan(AiLoad::Sweep {
        levels: vec![2],
        per_level: Duration::ZERO,
    });
    plan.check_determinism = true;

    let seen = run(addr, "random", &plan).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].seed, seen[1].seed);
    let failed: Vec<_> = seen.iter().filter(|o| !o.ok).collect();
    assert_eq!(failed.len(), 1, "{seen:?}");
    assert_eq!(failed[0].reason, Some(reason::NOT_DETERMINISTIC));

    let seen = run(addr, "good", &plan).await;
    assert!(seen.iter().all(|o| o.ok), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_answers_succeed_with_timings_and_warmth() {
    let addr = serve(Server::default()).await;
    let plan = t2i_plan(AiLoad::Sweep {
        levels: vec![1, 2],
        per_level: Duration::from_millis(300),
    });
    let mut seen = run(addr, "good", &plan).await;
    assert!(seen.len() >= 4, "{}", seen.len());
    seen.sort_by_key(|o| o.request);
    for (i, o) in seen.iter().enumerate() {
        assert!(o.ok, "{o:?}");
        assert_eq!(o.request, i as u64);
        assert_eq!(o.warm, i > 0, "request {i}");
        assert_eq!(o.status, Some(200));
        assert!(
            o.upload.is_some() && o.inference.is_some() && o.download.is_some(),
            "{o:?}"
        );
        assert_eq!((o.outputs, o.width, o.height), (2, Some(64), Some(32)));
        assert_eq!(o.seed, Some(42 + 1000 * i as u64));
        assert!(o.output_bytes > 0);
        assert_eq!(o.model, "test/model");
        let params: Value = serde_json::from_str(&o.params_summary).expect("json");
        assert_eq!(params["model_id"], "test/model");
        let summary: Value =
            serde_json::from_str(o.response_summary.as_deref().expect("summary")).expect("json");
        assert_eq!(summary["images"], 2);
        assert_eq!(summary["width"], 64);
    }
    assert!(seen.iter().any(|o| o.concurrency == 2));

    // Multipart: upscale a PNG, the answer 4x its size.
    let mut plan = AiPlan::new(
        Pipeline::Upscale,
        "test/upscaler",
        json!({"prompt": "sharper"}),
        one_request(),
    );
    plan.input_image = Some(Bytes::from(png(20, 10, [1, 2, 3])));
    plan.limits = limits();
    let seen = run(addr, "good", &plan).await;
    assert_eq!(seen.len(), 1);
    assert!(seen[0].ok, "{:?}", seen[0]);
    assert_eq!((seen[0].width, seen[0].height), (Some(80), Some(40)));
    let params: Value = serde_json::from_str(&seen[0].params_summary).expect("json");
    assert!(
        params["image_bytes"].as_u64().is_some_and(|n| n > 0),
        "{params}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_plans_go_cold_after_idleness_and_cap_their_flight() {
    let addr = serve(Server::default()).await;
    // 4 requests 250 ms apart, each done in a few ms: idle 100 ms makes every one cold.
    let mut plan = t2i_plan(AiLoad::Rate {
        per_second: 4.0,
        duration: Duration::from_millis(900),
    });
    plan.cold_after_idle = Duration::from_millis(100);
    let seen = run(addr, "good", &plan).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|o| o.ok && !o.warm), "{seen:?}");

    // 20/s for 0.5 s against 600 ms answers with at most 2 in flight: the rest are refused
    // by the client, not sent.
    let mut plan = t2i_plan(AiLoad::Rate {
        per_second: 20.0,
        duration: Duration::from_millis(500),
    });
    plan.limits.max_in_flight = 2;
    let seen = run(addr, "slow", &plan).await;
    assert_eq!(seen.len(), 10, "{seen:?}");
    let overloaded = seen
        .iter()
        .filter(|o| o.reason == Some(reason::CLIENT_OVERLOADED))
        .count();
    assert_eq!(overloaded, 8, "{seen:?}");
    assert_eq!(seen.iter().filter(|o| o.ok).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_plan_early() {
    let addr = serve(Server::default()).await;
    let plan = t2i_plan(AiLoad::Rate {
        per_second: 10.0,
        duration: Duration::from_secs(60),
    });
    let target = AiTarget {
        base_url: url::Url::parse(&format!("http://{addr}/slow/")).expect("url"),
        bearer: None,
        orchestrator: None,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stop_tx.send(true);
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut observe = |o: AiObservation| seen.push(o);
    run_plan(&target, &plan, stop, &mut observe)
        .await
        .expect("plan runs");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The requests sent before the stop finished (600 ms each) rather than being dropped.
    assert!(!seen.is_empty() && seen.iter().all(|o| o.ok), "{seen:?}");
}
