//! The HTTP side: ai-runner's routes, bearer auth, bounded bodies, admission (capacity plus a
//! bounded queue), the fault hooks, and the statistics the tester reads.
//!
//! Order of checks, cheapest first, so a hostile client costs little: auth, then the declared
//! length, then an admission slot (503 when full), and only then is the body read, under both
//! `max_body_bytes` and a time limit. Admission before reading bounds the memory held by bodies
//! to (capacity + max_queue) × max_body_bytes.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::config::{AiWorkerConfig, MediaMode};
use crate::error::ApiError;
use crate::imaging;
use crate::live;
use crate::media::MediaStore;
use crate::multipart;
use crate::render;

/// A client gets this long to deliver its whole body; slow-loris uploads end with 408.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// ai-runner's limit on images per request is the GPU's memory; ours is this.
const MAX_IMAGES: i64 = 8;

/// What a worker has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Pipeline requests received (health and media fetches are not counted).
    pub requests: u64,
    /// Requests by pipeline route name, e.g. `"text-to-image"`.
    pub by_pipeline: BTreeMap<String, u64>,
    /// Pipeline requests answered with a 4xx or 5xx status, injected faults included.
    pub errors: u64,
    /// Requests answered 500 by the `error_every` fault.
    pub injected_faults: u64,
    /// Requests that reached processing (held the capacity), whatever their outcome.
    pub processed: u64,
    /// Requests admitted and not yet answered: processing, queued, or uploading.
    pub in_flight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pipeline {
    TextToImage,
    ImageToImage,
    Upscale,
    LiveVideoToVideo,
    Unimplemented(&'static str),
}

impl Pipeline {
    fn name(self) -> &'static str {
        match self {
            Pipeline::TextToImage => "text-to-image",
            Pipeline::ImageToImage => "image-to-image",
            Pipeline::Upscale => "upscale",
            Pipeline::LiveVideoToVideo => "live-video-to-video",
            Pipeline::Unimplemented(name) => name,
        }
    }
}

const UNIMPLEMENTED: [&str; 6] = [
    "image-to-video",
    "audio-to-text",
    "segment-anything-2",
    "llm",
    "image-to-text",
    "text-to-speech",
];

pub(crate) struct Shared {
    config: AiWorkerConfig,
    base_url: String,
    admitted: Arc<Semaphore>,
    /// Shared with live jobs, which hold a unit for their whole life.
    processing: Arc<Semaphore>,
    /// Tells running live jobs the worker is stopping.
    live_stop: watch::Sender<bool>,
    stats: Mutex<WorkerStats>,
    last_request: Mutex<Option<Instant>>,
    processed: AtomicU64,
    in_flight: AtomicU32,
    media: Mutex<MediaStore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the statistics down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: AiWorkerConfig, addr: SocketAddr) -> Self {
        let capacity = config.capacity.max(1) as usize;
        let admitted = capacity + config.max_queue as usize;
        Shared {
            base_url: format!("http://{addr}"),
            admitted: Arc::new(Semaphore::new(admitted)),
            processing: Arc::new(Semaphore::new(capacity)),
            live_stop: watch::Sender::new(false),
            stats: Mutex::default(),
            last_request: Mutex::default(),
            processed: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            media: Mutex::default(),
            config,
        }
    }

    /// Ends every running live job (each closes its output channel).
    pub(crate) fn stop_live(&self) {
        self.live_stop.send_replace(true);
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let mut stats = lock(&self.stats).clone();
        stats.in_flight = self.in_flight.load(Ordering::SeqCst);
        stats
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/media/{file}", get(media))
        .route("/text-to-image", post(text_to_image))
        .route("/image-to-image", post(image_to_image))
        .route("/upscale", post(upscale))
        .route("/live-video-to-video", post(live_video_to_video));
    for name in UNIMPLEMENTED {
        router = router.route(
            &format!("/{name}"),
            post(
                move |State(s): State<Arc<Shared>>, req: Request| async move {
                    s.handle(Pipeline::Unimplemented(name), req).await
                },
            ),
        );
    }
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(shared)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "OK"}))
}

async fn text_to_image(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.handle(Pipeline::TextToImage, req).await
}

async fn image_to_image(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.handle(Pipeline::ImageToImage, req).await
}

async fn upscale(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.handle(Pipeline::Upscale, req).await
}

async fn live_video_to_video(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.handle(Pipeline::LiveVideoToVideo, req).await
}

async fn media(State(s): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let found = match (s.config.media, file.strip_suffix(".png")) {
        (MediaMode::Url, Some(id)) => lock(&s.media).get(id),
        _ => None,
    };
    match found {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no media {file:?}")).into_response(),
    }
}

/// Decrements the in-flight count however the request ends, including a dropped connection.
struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One generated image before it is given a URL.
struct Output {
    png: Vec<u8>,
    seed: u64,
}

#[derive(Serialize)]
struct Media {
    url: String,
    seed: u64,
    nsfw: bool,
}

/// A parsed request, ready for the blocking pool.
enum Job {
    TextToImage {
        prompt: String,
        width: u32,
        height: u32,
        seed: u64,
        count: u32,
    },
    ImageToImage {
        image: Vec<u8>,
        prompt: String,
        seed: u64,
        strength: f64,
        count: u32,
    },
    Upscale {
        image: Vec<u8>,
        seed: u64,
    },
}

impl Shared {
    async fn handle(self: Arc<Self>, pipeline: Pipeline, req: Request) -> Response {
        {
            let mut stats = lock(&self.stats);
            stats.requests += 1;
            *stats
                .by_pipeline
                .entry(pipeline.name().to_string())
                .or_default() += 1;
        }
        let result = self.clone().serve(pipeline, req).await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::warn!(pipeline = pipeline.name(), status = %e.status, msg = %e.msg, "AI worker request failed");
                } else {
                    tracing::debug!(pipeline = pipeline.name(), status = %e.status, msg = %e.msg, "AI worker request refused");
                }
                e.into_response()
            }
        };
        if response.status().is_client_error() || response.status().is_server_error() {
            lock(&self.stats).errors += 1;
        }
        response
    }

    async fn serve(
        self: Arc<Self>,
        pipeline: Pipeline,
        req: Request,
    ) -> Result<Response, ApiError> {
        self.authorize(req.headers())?;
        if let Pipeline::Unimplemented(name) = pipeline {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "{name} needs model weights this worker does not have; point the probe at a real gateway or orchestrator"
                ),
            ));
        }
        let max_body = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            return Err(body_too_large(max_body));
        }
        let Ok(_slot) = self.admitted.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: capacity and queue are full",
            ));
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&self.in_flight);
        let (parts, body) = req.into_parts();
        let body = tokio::time::timeout(BODY_TIMEOUT, read_body(body, max_body))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("request body not received within {BODY_TIMEOUT:?}"),
                )
            })??;
        if pipeline == Pipeline::LiveVideoToVideo {
            return self.start_live(&body);
        }
        let job = self.parse(pipeline, &parts.headers, &body)?;
        drop(body);
        let _permit = self
            .processing
            .acquire()
            .await
            .map_err(|_| ApiError::internal("worker is shutting down"))?;
        self.process(job).await
    }

    /// Checks a live request, takes a unit of capacity for the job's life (503 when none is
    /// free: a live job cannot wait in the queue) and starts it; answers at once, as ai-runner.
    fn start_live(&self, body: &[u8]) -> Result<Response, ApiError> {
        let params = live::parse(body, &self.config.models.live_video_to_video)?;
        let Ok(permit) = self.processing.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: every capacity slot is taken",
            ));
        };
        let n = self.processed.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.stats).processed = n;
        let request_id = live::request_id();
        tracing::info!(
            %request_id,
            subscribe_url = %params.subscribe_url,
            publish_url = %params.publish_url,
            gateway_request_id = ?params.gateway_request_id,
            stream_id = ?params.stream_id,
            manifest_id = ?params.manifest_id,
            has_params = params.params.is_some(),
            "live job starting"
        );
        let answer = live::response(&params, &request_id);
        live::spawn(
            live::LiveJob {
                request_id,
                subscribe_url: params.subscribe_url,
                publish_url: params.publish_url,
                config: self.config.live.clone(),
                max_pixels: self.config.max_pixels,
            },
            permit,
            self.live_stop.subscribe(),
        );
        Ok(Json(answer).into_response())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.config.bearer_token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if given == Some(token.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Invalid bearer token",
            ))
        }
    }

    /// The processing path, holding one unit of capacity: cold start, then the work on the
    /// blocking pool, then the remainder of the delay fault; the error fault replaces the work.
    async fn process(&self, job: Job) -> Result<Response, ApiError> {
        let faults = &self.config.faults;
        let cold = {
            let mut last = lock(&self.last_request);
            let cold = last.is_none_or(|t| t.elapsed().as_secs_f64() >= faults.idle_secs);
            *last = Some(Instant::now());
            cold
        };
        if cold && faults.cold_start_ms > 0 {
            tracing::debug!(ms = faults.cold_start_ms, "AI worker cold start");
            tokio::time::sleep(Duration::from_millis(faults.cold_start_ms)).await;
        }
        let started = Instant::now();
        let n = self.processed.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.stats).processed = n;
        let inject = faults.error_every > 0 && n.is_multiple_of(u64::from(faults.error_every));
        let result = if inject {
            Err(ApiError::internal("injected fault"))
        } else {
            let max_pixels = self.config.max_pixels;
            let wrong_size = faults.wrong_size;
            tokio::task::spawn_blocking(move || run(job, max_pixels, wrong_size))
                .await
                .unwrap_or_else(|e| Err(ApiError::internal(format!("processing crashed: {e}"))))
        };
        let delay = Duration::from_millis(faults.delay_ms);
        if let Some(rest) = delay.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        *lock(&self.last_request) = Some(Instant::now());
        if inject {
            lock(&self.stats).injected_faults += 1;
        }
        let outputs = result?;
        let images: Vec<Media> = outputs
            .into_iter()
            .map(|o| Media {
                url: self.media_url(o.png),
                seed: o.seed,
                nsfw: false,
            })
            .collect();
        Ok(Json(serde_json::json!({ "images": images })).into_response())
    }

    fn media_url(&self, png: Vec<u8>) -> String {
        match self.config.media {
            MediaMode::Data => format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&png)
            ),
            MediaMode::Url => {
                let id = lock(&self.media).insert(Bytes::from(png));
                format!("{}/media/{id}.png", self.base_url)
            }
        }
    }

    fn check_model(&self, pipeline: Pipeline, given: &str) -> Result<(), ApiError> {
        let models = &self.config.models;
        let served = match pipeline {
            Pipeline::TextToImage => &models.text_to_image,
            Pipeline::ImageToImage => &models.image_to_image,
            Pipeline::Upscale => &models.upscale,
            Pipeline::LiveVideoToVideo | Pipeline::Unimplemented(_) => return Ok(()),
        };
        // ai-runner treats an empty model_id as "whatever this pipeline serves".
        if given.is_empty() || given == served {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "pipeline {} is configured with model {served:?} but called with {given:?}",
                pipeline.name()
            )))
        }
    }

    fn parse(&self, pipeline: Pipeline, headers: &HeaderMap, body: &[u8]) -> Result<Job, ApiError> {
        match pipeline {
            Pipeline::TextToImage => self.parse_text_to_image(body),
            Pipeline::ImageToImage | Pipeline::Upscale => {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let boundary =
                    multipart::boundary(content_type).map_err(ApiError::unprocessable)?;
                let fields = multipart::parse(body, &boundary).map_err(ApiError::bad_request)?;
                let text = |name: &str| -> Result<Option<String>, ApiError> {
                    match fields.iter().find(|f| f.name == name) {
                        None => Ok(None),
                        Some(f) => String::from_utf8(f.data.to_vec()).map(Some).map_err(|_| {
                            ApiError::unprocessable(format!("field {name} is not UTF-8 text"))
                        }),
                    }
                };
                let prompt = text("prompt")?
                    .ok_or_else(|| ApiError::unprocessable("missing required field prompt"))?;
                let image = fields
                    .iter()
                    .find(|f| f.name == "image")
                    .ok_or_else(|| ApiError::unprocessable("missing required field image"))?
                    .data
                    .to_vec();
                self.check_model(pipeline, text("model_id")?.unwrap_or_default().trim())?;
                let seed = match text("seed")?.as_deref().map(str::trim) {
                    None | Some("") => random_seed(),
                    Some(s) => s.parse::<u64>().map_err(|_| {
                        ApiError::unprocessable(format!(
                            "field seed must be a non-negative integer, got {s:?}"
                        ))
                    })?,
                };
                if pipeline == Pipeline::Upscale {
                    return Ok(Job::Upscale { image, seed });
                }
                let strength = match text("strength")?.as_deref().map(str::trim) {
                    None | Some("") => 0.8,
                    Some(s) => s
                        .parse::<f64>()
                        .ok()
                        .filter(|v| (0.0..=1.0).contains(v))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "field strength must be a number from 0 to 1, got {s:?}"
                            ))
                        })?,
                };
                let count = match text("num_images_per_prompt")?.as_deref().map(str::trim) {
                    None | Some("") => 1,
                    Some(s) => s.parse::<i64>().map_err(|_| {
                        ApiError::unprocessable(format!(
                            "field num_images_per_prompt must be an integer, got {s:?}"
                        ))
                    })?,
                };
                Ok(Job::ImageToImage {
                    image,
                    prompt,
                    seed,
                    strength,
                    count: image_count(count)?,
                })
            }
            Pipeline::LiveVideoToVideo | Pipeline::Unimplemented(_) => {
                Err(ApiError::internal("unreachable pipeline"))
            }
        }
    }

    fn parse_text_to_image(&self, body: &[u8]) -> Result<Job, ApiError> {
        let params: TextToImageParams = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                ApiError::unprocessable(format!("invalid text-to-image request: {e}"))
            } else {
                ApiError::bad_request(format!("request body is not valid JSON: {e}"))
            }
        })?;
        self.check_model(Pipeline::TextToImage, params.model_id.trim())?;
        let mut dims = [0u32; 2];
        for (slot, (field, value)) in dims
            .iter_mut()
            .zip([("width", params.width), ("height", params.height)])
        {
            if value <= 0 || value % 8 != 0 || value > i64::from(u32::MAX) {
                return Err(ApiError::bad_request(format!(
                    "{field} must be a positive multiple of 8, got {value}"
                )));
            }
            *slot = value as u32;
        }
        let [width, height] = dims;
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.config.max_pixels {
            return Err(ApiError::bad_request(format!(
                "width x height {width}x{height} is {pixels} pixels, more than this worker's max_pixels {}",
                self.config.max_pixels
            )));
        }
        Ok(Job::TextToImage {
            prompt: params.prompt,
            width,
            height,
            seed: params.seed.unwrap_or_else(random_seed),
            count: image_count(params.num_images_per_prompt)?,
        })
    }
}

#[derive(Deserialize)]
struct TextToImageParams {
    prompt: String,
    #[serde(default)]
    model_id: String,
    #[serde(default = "default_width")]
    width: i64,
    #[serde(default = "default_height")]
    height: i64,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default = "default_count")]
    num_images_per_prompt: i64,
}

fn default_width() -> i64 {
    1024
}

fn default_height() -> i64 {
    576
}

fn default_count() -> i64 {
    1
}

fn image_count(n: i64) -> Result<u32, ApiError> {
    if (1..=MAX_IMAGES).contains(&n) {
        Ok(n as u32)
    } else {
        Err(ApiError::bad_request(format!(
            "num_images_per_prompt must be 1 to {MAX_IMAGES}, got {n}"
        )))
    }
}

/// A seed in ai-runner's range (0..2^32) when the client gives none.
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(SystemTime::now()) & 0xFFFF_FFFF
}

fn body_too_large(max: u64) -> ApiError {
    ApiError::too_large(format!(
        "request body is larger than this worker's max_body_bytes {max}"
    ))
}

/// Reads a body without ever holding more than `max` bytes, whatever the length header said.
async fn read_body(mut body: Body, max: u64) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > max {
                return Err(body_too_large(max));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

fn half(v: u32) -> u32 {
    (v / 2).max(1)
}

/// The CPU work of one request; runs on the blocking pool.
fn run(job: Job, max_pixels: u64, wrong_size: bool) -> Result<Vec<Output>, ApiError> {
    let size = |w: u32, h: u32| {
        if wrong_size {
            (half(w), half(h))
        } else {
            (w, h)
        }
    };
    let png = |img: &imaging::Rgb| {
        render::encode_png(&img.data, img.width, img.height).map_err(ApiError::internal)
    };
    match job {
        Job::TextToImage {
            prompt,
            width,
            height,
            seed,
            count,
        } => (0..count)
            .map(|i| {
                let seed = seed.wrapping_add(u64::from(i));
                let (w, h) = size(width, height);
                let pixels = render::render(seed, w, h, &prompt);
                let png = render::encode_png(&pixels, w, h).map_err(ApiError::internal)?;
                Ok(Output { png, seed })
            })
            .collect(),
        Job::ImageToImage {
            image,
            prompt,
            seed,
            strength,
            count,
        } => {
            let input = imaging::decode(&image, max_pixels, "max_pixels")?;
            let out_size = size(input.width, input.height);
            (0..count)
                .map(|i| {
                    let seed = seed.wrapping_add(u64::from(i));
                    let out = imaging::filter_image(&input, &prompt, seed, strength, out_size)?;
                    Ok(Output {
                        png: png(&out)?,
                        seed,
                    })
                })
                .collect()
        }
        Job::Upscale { image, seed } => {
            // The output is 16 times the input's pixels; refuse from the header, before decoding.
            let input =
                imaging::decode(&image, max_pixels / 16, "max_pixels / 16 for a 4x upscale")?;
            let out = imaging::upscale(&input, size(input.width * 4, input.height * 4))?;
            Ok(vec![Output {
                png: png(&out)?,
                seed,
            }])
        }
    }
}
