//! End-to-end tests: a real worker on 127.0.0.1:0, real HTTP through reqwest.

use std::time::{Duration, Instant};

use base64::Engine;
use node_ai_worker::{AiFaults, AiWorkerConfig, MediaMode, RunningAiWorker, start};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn worker(config: AiWorkerConfig) -> (RunningAiWorker, String) {
    let w = start(config).await.expect("worker starts");
    let base = format!("http://{}", w.addr);
    (w, base)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageOutputFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A `multipart/form-data` body; a field with a file name is sent as a PNG upload.
fn form(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lpt-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, data) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_form(
    base: &str,
    route: &str,
    fields: &[(&str, Option<&str>, &[u8])],
) -> reqwest::Response {
    let (content_type, body) = form(fields);
    client()
        .post(format!("{base}{route}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn t2i(base: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}/text-to-image"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The PNG bytes behind a `data:` URL.
fn data_png(url: &str) -> Vec<u8> {
    let b64 = url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn dims(png: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap();
    (img.width(), img.height())
}

async fn ok_images(resp: reqwest::Response) -> Vec<(Vec<u8>, u64)> {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["nsfw"], false);
            (
                data_png(m["url"].as_str().unwrap()),
                m["seed"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn error_msg(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    body["detail"]["msg"].as_str().unwrap().to_string()
}

async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn text_to_image_is_seeded_and_deterministic() {
    let (w, base) = worker(AiWorkerConfig::default()).await;
    let health: Value = client()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "OK"}));

    let req = json!({"prompt": "a red fox", "model_id": "lpt/seeded-renderer",
        "width": 256, "height": 128, "seed": 42, "num_images_per_prompt": 2});
    let first = ok_images(t2i(&base, req.clone()).await).await;
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].1, first[1].1), (42, 43));
    assert_eq!(dims(&first[0].0), (256, 128));
    assert_eq!(dims(&first[1].0), (256, 128));
    assert_ne!(first[0].0, first[1].0);
    let again = ok_images(t2i(&base, req).await).await;
    assert_eq!(again[0].0, first[0].0);
    assert_eq!(again[1].0, first[1].0);

    let other = ok_images(
        t2i(
            &base,
            json!({"prompt": "a red fox", "width": 256, "height": 128, "seed": 7}),
        )
        .await,
    )
    .await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].1, 7);
    let a = image::load_from_memory(&first[0].0).unwrap().to_rgb8();
    let b = image::load_from_memory(&other[0].0).unwrap().to_rgb8();
    assert_ne!(a.as_raw(), b.as_raw());

    // No seed: the worker picks one in ai-runner's range and echoes it.
    let picked =
        ok_images(t2i(&base, json!({"prompt": "x", "width": 64, "height": 64})).await).await;
    assert!(picked[0].1 < 1 << 32);
    assert_eq!(dims(&picked[0].0), (64, 64));

    let stats = w.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.by_pipeline["text-to-image"], 4);
    assert_eq!(stats.errors, 0);
    w.shutdown().await;
}

#[tokio::test]
async fn text_to_image_refuses_bad_requests() {
    let config = AiWorkerConfig {
        max_pixels: 512 * 512,
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let msg = error_msg(
        t2i(&base, json!({"prompt": "x", "width": 100, "height": 64})).await,
        400,
    )
    .await;
    assert!(msg.contains("width") && msg.contains("100"), "{msg}");
    let msg = error_msg(
        t2i(&base, json!({"prompt": "x", "width": 64, "height": 0})).await,
        400,
    )
    .await;
    assert!(msg.contains("height"), "{msg}");
    let msg = error_msg(
        t2i(&base, json!({"prompt": "x", "width": 1024, "height": 1024})).await,
        400,
    )
    .await;
    assert!(msg.contains("max_pixels"), "{msg}");
    let msg = error_msg(
        t2i(
            &base,
            json!({"prompt": "x", "num_images_per_prompt": 9, "width": 64, "height": 64}),
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("num_images_per_prompt"), "{msg}");
    let msg = error_msg(t2i(&base, json!({"width": 64})).await, 422).await;
    assert!(msg.contains("prompt"), "{msg}");
    let resp = client()
        .post(format!("{base}/text-to-image"))
        .header("content-type", "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    let msg = error_msg(resp, 400).await;
    assert!(msg.contains("JSON"), "{msg}");
    let msg = error_msg(
        t2i(
            &base,
            json!({"prompt": "x", "model_id": "stabilityai/sdxl-turbo"}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        msg.contains("lpt/seeded-renderer") && msg.contains("stabilityai/sdxl-turbo"),
        "{msg}"
    );
    assert_eq!(w.stats().errors, 7);
    w.shutdown().await;
}

#[tokio::test]
async fn image_to_image_and_upscale() {
    let (w, base) = worker(AiWorkerConfig::default()).await;
    let input = png(64, 48);
    let i2i = |seed: &'static str| {
        let (base, input) = (base.clone(), input.clone());
        async move {
            post_form(
                &base,
                "/image-to-image",
                &[
                    ("prompt", None, b"make it pop"),
                    ("model_id", None, b"lpt/ffmpeg-filter"),
                    ("seed", None, seed.as_bytes()),
                    ("strength", None, b"0.8"),
                    ("image", Some("in.png"), &input),
                ],
            )
            .await
        }
    };
    let a = ok_images(i2i("5").await).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, 5);
    assert_eq!(dims(&a[0].0), (64, 48));
    let again = ok_images(i2i("5").await).await;
    assert_eq!(again[0].0, a[0].0);
    let other = ok_images(i2i("6").await).await;
    assert_eq!(dims(&other[0].0), (64, 48));
    assert_ne!(other[0].0, a[0].0);
    assert_ne!(a[0].0, input);

    let up = ok_images(
        post_form(
            &base,
            "/upscale",
            &[
                ("prompt", None, b"sharper"),
                ("model_id", None, b"lpt/lanczos-x4"),
                ("seed", None, b"9"),
                ("image", Some("in.png"), &input),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].1, 9);
    assert_eq!(dims(&up[0].0), (256, 192));

    let msg = error_msg(
        post_form(
            &base,
            "/upscale",
            &[
                ("prompt", None, b"x"),
                ("model_id", None, b"lpt/lanczos-x4"),
                ("image", Some("in.png"), b"definitely not a picture"),
            ],
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("PNG or JPEG"), "{msg}");
    let msg = error_msg(
        post_form(
            &base,
            "/image-to-image",
            &[
                ("prompt", None, b"x"),
                ("image", Some("in.png"), &input[..input.len() / 2]),
            ],
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("decoded"), "{msg}");
    let msg = error_msg(
        post_form(
            &base,
            "/image-to-image",
            &[
                ("prompt", None, b"x"),
                ("model_id", None, b"timbrooks/instruct-pix2pix"),
                ("image", Some("in.png"), &input),
            ],
        )
        .await,
        400,
    )
    .await;
    assert!(
        msg.contains("lpt/ffmpeg-filter") && msg.contains("timbrooks/instruct-pix2pix"),
        "{msg}"
    );
    let msg = error_msg(
        post_form(&base, "/upscale", &[("prompt", None, b"x")]).await,
        422,
    )
    .await;
    assert!(msg.contains("image"), "{msg}");
    let stats = w.stats();
    assert_eq!(stats.by_pipeline["image-to-image"], 5);
    assert_eq!(stats.by_pipeline["upscale"], 3);
    assert_eq!(stats.errors, 4);
    w.shutdown().await;
}

#[tokio::test]
async fn decoded_image_over_max_pixels_is_refused() {
    let config = AiWorkerConfig {
        max_pixels: 100 * 100,
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let msg = error_msg(
        post_form(
            &base,
            "/image-to-image",
            &[
                ("prompt", None, b"x"),
                ("image", Some("big.png"), &png(101, 100)),
            ],
        )
        .await,
        413,
    )
    .await;
    assert!(msg.contains("101x100"), "{msg}");
    // 4x upscale of 26x25 would be 10400 pixels.
    let msg = error_msg(
        post_form(
            &base,
            "/upscale",
            &[
                ("prompt", None, b"x"),
                ("image", Some("u.png"), &png(26, 25)),
            ],
        )
        .await,
        413,
    )
    .await;
    assert!(msg.contains("upscale"), "{msg}");
    w.shutdown().await;
}

#[tokio::test]
async fn fault_delay() {
    let config = AiWorkerConfig {
        faults: AiFaults {
            delay_ms: 400,
            ..Default::default()
        },
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let started = Instant::now();
    let images =
        ok_images(t2i(&base, json!({"prompt": "x", "width": 64, "height": 64})).await).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(dims(&images[0].0), (64, 64));
    w.shutdown().await;
}

#[tokio::test]
async fn fault_wrong_size() {
    let config = AiWorkerConfig {
        faults: AiFaults {
            wrong_size: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let images =
        ok_images(t2i(&base, json!({"prompt": "x", "width": 256, "height": 128})).await).await;
    assert_eq!(dims(&images[0].0), (128, 64));
    let input = png(64, 48);
    let up = ok_images(
        post_form(
            &base,
            "/upscale",
            &[("prompt", None, b"x"), ("image", Some("i.png"), &input)],
        )
        .await,
    )
    .await;
    assert_eq!(dims(&up[0].0), (128, 96));
    let i2i = ok_images(
        post_form(
            &base,
            "/image-to-image",
            &[("prompt", None, b"x"), ("image", Some("i.png"), &input)],
        )
        .await,
    )
    .await;
    assert_eq!(dims(&i2i[0].0), (32, 24));
    w.shutdown().await;
}

#[tokio::test]
async fn fault_error_every() {
    let config = AiWorkerConfig {
        faults: AiFaults {
            error_every: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let req = json!({"prompt": "x", "width": 64, "height": 64, "seed": 1});
    assert_eq!(ok_images(t2i(&base, req.clone()).await).await.len(), 1);
    let resp = t2i(&base, req.clone()).await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"detail": {"msg": "injected fault"}}));
    assert_eq!(ok_images(t2i(&base, req.clone()).await).await.len(), 1);
    assert_eq!(t2i(&base, req).await.status(), 500);
    let stats = w.stats();
    assert_eq!(stats.injected_faults, 2);
    assert_eq!(stats.errors, 2);
    assert_eq!(stats.processed, 4);
    w.shutdown().await;
}

#[tokio::test]
async fn fault_cold_start() {
    let config = AiWorkerConfig {
        faults: AiFaults {
            cold_start_ms: 800,
            ..Default::default()
        },
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let req = json!({"prompt": "x", "width": 64, "height": 64});
    let started = Instant::now();
    ok_images(t2i(&base, req.clone()).await).await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    let started = Instant::now();
    ok_images(t2i(&base, req).await).await;
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "second request took {:?}",
        started.elapsed()
    );
    w.shutdown().await;
}

#[tokio::test]
async fn bearer_token_is_required() {
    let config = AiWorkerConfig {
        bearer_token: Some("s3cret".into()),
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let req = json!({"prompt": "x", "width": 64, "height": 64});
    let msg = error_msg(t2i(&base, req.clone()).await, 401).await;
    assert_eq!(msg, "Invalid bearer token");
    let resp = client()
        .post(format!("{base}/text-to-image"))
        .bearer_auth("wrong")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(format!("{base}/text-to-image"))
        .bearer_auth("s3cret")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(ok_images(resp).await.len(), 1);
    let health = client().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    w.shutdown().await;
}

#[tokio::test]
async fn pipelines_without_weights_answer_501() {
    let (w, base) = worker(AiWorkerConfig::default()).await;
    for name in [
        "image-to-video",
        "audio-to-text",
        "segment-anything-2",
        "llm",
        "image-to-text",
        "text-to-speech",
    ] {
        let resp = client()
            .post(format!("{base}/{name}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let msg = error_msg(resp, 501).await;
        assert_eq!(
            msg,
            format!(
                "{name} needs model weights this worker does not have; point the probe at a real gateway or orchestrator"
            )
        );
    }
    let stats = w.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.by_pipeline["llm"], 1);
    w.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let config = AiWorkerConfig {
        max_body_bytes: 4096,
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let big = json!({"prompt": "x".repeat(8000), "width": 64, "height": 64});
    let msg = error_msg(t2i(&base, big).await, 413).await;
    assert!(msg.contains("max_body_bytes 4096"), "{msg}");
    // Chunked, so no length header warns us: the limit holds while reading.
    let mut stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let mut request =
        b"POST /text-to-image HTTP/1.1\r\nHost: worker\r\nContent-Type: application/json\r\n\
Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..2 {
        request.extend_from_slice(b"bb8\r\n");
        request.extend_from_slice(&[b' '; 3000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains(
            r#"{"detail":{"msg":"request body is larger than this worker's max_body_bytes 4096"}}"#
        ),
        "{response}"
    );
    assert_eq!(
        ok_images(t2i(&base, json!({"prompt": "x", "width": 64, "height": 64})).await)
            .await
            .len(),
        1
    );
    w.shutdown().await;
}

#[tokio::test]
async fn media_url_mode_serves_images() {
    let config = AiWorkerConfig {
        media: MediaMode::Url,
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let resp = t2i(
        &base,
        json!({"prompt": "x", "width": 64, "height": 32, "seed": 3}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let url = body["images"][0]["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{base}/media/")) && url.ends_with(".png"),
        "{url}"
    );
    assert_eq!(body["images"][0]["seed"], 3);
    let got = client().get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    let png = got.bytes().await.unwrap();
    assert_eq!(dims(&png), (64, 32));
    let missing = client()
        .get(format!("{base}/media/0000000000000000.png"))
        .send()
        .await
        .unwrap();
    let msg = error_msg(missing, 404).await;
    assert!(msg.contains("0000000000000000"), "{msg}");
    w.shutdown().await;
}

#[tokio::test]
async fn full_queue_answers_503() {
    let config = AiWorkerConfig {
        capacity: 1,
        max_queue: 0,
        faults: AiFaults {
            delay_ms: 1500,
            ..Default::default()
        },
        ..Default::default()
    };
    let (w, base) = worker(config).await;
    let req = json!({"prompt": "x", "width": 64, "height": 64});
    let slow = tokio::spawn({
        let (base, req) = (base.clone(), req.clone());
        async move { t2i(&base, req).await.status() }
    });
    wait_until(
        "the slow request to be processing",
        Duration::from_secs(5),
        || {
            let s = w.stats();
            s.processed == 1 && s.in_flight == 1
        },
    )
    .await;
    let msg = error_msg(t2i(&base, req).await, 503).await;
    assert!(msg.starts_with("busy"), "{msg}");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), slow)
            .await
            .unwrap()
            .unwrap(),
        200
    );
    let stats = w.stats();
    assert_eq!((stats.requests, stats.errors, stats.in_flight), (2, 1, 0));
    w.shutdown().await;
}

#[test]
fn config_from_file() {
    let dir = std::env::temp_dir().join(format!("lpt-ai-worker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("worker.toml");
    std::fs::write(
        &path,
        "capacity = 2\nmedia = \"url\"\n[faults]\nerror_every = 3\ndelay_ms = 10\n",
    )
    .unwrap();
    let c = AiWorkerConfig::from_file(&path).unwrap();
    assert_eq!(c.capacity, 2);
    assert_eq!(c.media, MediaMode::Url);
    assert_eq!(
        node_ai_worker::describe_faults(&c.faults),
        vec![
            "every request answers no earlier than 10 ms after processing starts".to_string(),
            "every 3rd request answers 500".to_string()
        ]
    );
    std::fs::write(&path, "capacity = 0\n").unwrap();
    let e = AiWorkerConfig::from_file(&path).unwrap_err();
    assert!(format!("{e:#}").contains("capacity"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn stalled_headers_are_cut_off() {
    let (w, base) = worker(AiWorkerConfig::default()).await;
    let mut stalled = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    stalled
        .write_all(b"POST /text-to-image HTTP/1.1\r\nHost: worker\r\n")
        .await
        .unwrap();
    // Others are served while the stalled client holds its connection.
    let health = client().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut rest))
        .await
        .expect("the worker closes a connection whose headers never finish");
    // hyper answers 408 or just closes; either way the connection ends near the 10 s limit.
    assert!(read.is_err() || rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"));
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    w.shutdown().await;
}
