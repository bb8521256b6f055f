//! The live video-to-video probe against local workers over real sockets: a relay worker that
//! echoes (or garbles, or cuts short) its input channel into its output channel, hostile
//! workers that answer badly or never publish, each giving its reason within a bounded time.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use node_ai_worker::AiWorkerConfig;
use probes::ai::{LiveObservation, LivePlan, reason, run_live};
use reference_transcoder::source::{EncodedSource, SourceConfig};
use serde_json::{Value, json};
use trickle::{Publisher, Subscriber};

/// A short stamped source (256x144, 30 fps, 1 s GOPs), encoded once per test binary.
fn source() -> &'static EncodedSource {
    static SOURCE: OnceLock<EncodedSource> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    SOURCE.get_or_init(|| {
        reference_transcoder::source::generate(&SourceConfig {
            width: 256,
            height: 144,
            fps_num: 30,
            fps_den: 1,
            duration_secs: 4.0,
            gop_secs: 1.0,
            stream_id: 0x11FE_0001,
            video_bitrate: Some(300_000),
            x264_preset: "ultrafast".into(),
            audio: false,
            noise: 0,
            ..Default::default()
        })
        .expect("generate the stamped source")
    })
}

/// What the local worker does with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers 200 with a body that is not JSON.
    NotJson,
    /// Accepts the job and never publishes.
    Silent,
    /// Republishes each input segment unchanged.
    Echo,
    /// Publishes garbage bytes for each input segment.
    Garbage,
    /// Republishes the first input segment, then ends its output.
    EndEarly,
    /// Publishes one 2 MiB segment.
    Huge,
    /// Republishes the first input segment, then keeps reading its input and publishes
    /// nothing more, never ending its output.
    Stall,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "not-json" => Mode::NotJson,
            "silent" => Mode::Silent,
            "echo" => Mode::Echo,
            "garbage" => Mode::Garbage,
            "end-early" => Mode::EndEarly,
            "huge" => Mode::Huge,
            "stall" => Mode::Stall,
            _ => return None,
        })
    }
}

async fn start_job(Path(mode): Path<String>, body: Bytes) -> Response {
    let Some(mode) = Mode::parse(&mode) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if mode == Mode::NotJson {
        return (StatusCode::OK, "<html>a live job, surely</html>").into_response();
    }
    let Ok(params) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let input = params["subscribe_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let output = params["publish_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if mode != Mode::Silent {
        tokio::spawn(relay(mode, input.clone(), output.clone()));
    }
    axum::Json(json!({
        "subscribe_url": input,
        "publish_url": output,
        "request_id": params["gateway_request_id"],
    }))
    .into_response()
}

/// The worker's side of a job: one output segment per input segment, until the input ends.
async fn relay(mode: Mode, input: String, output: String) {
    let client = reqwest::Client::new();
    let mut subscriber = Subscriber::new(&input, client.clone(), 0);
    let mut publisher = Publisher::new(&output, client);
    let mut relayed = 0;
    while let Ok(Some(segment)) = subscriber.next_segment(Duration::from_secs(10)).await {
        let Ok(bytes) = segment.read_all(16 << 20).await else {
            break;
        };
        if mode == Mode::Stall && relayed == 1 {
            continue;
        }
        let body = match mode {
            Mode::Garbage => vec![Bytes::from(vec![0x5A; 4096])],
            Mode::Huge => vec![Bytes::from(vec![0x47; 64 << 10]); 32],
            _ => vec![bytes],
        };
        let Ok(mut writer) = publisher.next_segment().await else {
            break;
        };
        let mut failed = false;
        for chunk in body {
            failed = failed || writer.write(chunk).await.is_err();
        }
        if failed || writer.finish().await.is_err() {
            break;
        }
        relayed += 1;
        if mode == Mode::EndEarly && relayed == 1 {
            break;
        }
    }
    if mode != Mode::Stall {
        let _ = publisher.close().await;
    }
}

async fn serve() -> SocketAddr {
    let app = Router::new().route("/{mode}/live-video-to-video", post(start_job));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn plan(addr: SocketAddr, mode: &str, target_fps: f64) -> LivePlan {
    let url = format!("http://{addr}/{mode}").parse().expect("url");
    let mut plan = LivePlan::new(url, "noop", target_fps);
    plan.start_timeout = Duration::from_secs(3);
    plan.stall_after = Duration::from_secs(3);
    plan.end_timeout = Duration::from_secs(5);
    plan.request.deadline = Duration::from_secs(5);
    plan
}

fn print(label: &str, o: &LiveObservation) {
    eprintln!(
        "{label}: ok={} reason={:?} message={:?} ttff={:?} output_fps={:?} target={} sent={} \
         received={} unreadable={} foreign={} latency p50={:?} p95={:?} max={:?} ms stalls={} \
         ({:?}) segments in/out={}/{} closed={} run={:?}",
        o.ok,
        o.reason,
        o.message,
        o.time_to_first_frame,
        o.output_fps,
        o.target_fps,
        o.frames_sent,
        o.frames_received,
        o.unreadable_stamps,
        o.foreign_stamps,
        o.latency_p50_ms,
        o.latency_p95_ms,
        o.latency_max_ms,
        o.stalls,
        o.stall_time,
        o.segments_in,
        o.segments_out,
        o.output_closed,
        o.duration,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoing_worker_is_measured_live() {
    let source = source();
    let addr = serve().await;
    let o = run_live(&plan(addr, "echo", 30.0), source).await;
    print("echo", &o);
    assert!(o.ok, "{:?}: {:?}", o.reason, o.message);
    assert_eq!(o.segments_in, 4);
    assert_eq!(o.segments_out, 4);
    assert_eq!(o.frames_sent, source.frame_count() as u64);
    assert_eq!(o.frames_received, o.frames_sent);
    assert_eq!(o.unreadable_stamps, 0);
    assert_eq!(o.foreign_stamps, 0);
    assert_eq!(o.frame_latency_ms.len() as u64, o.frames_received);
    assert_eq!(o.last_frame_seen, Some(source.frame_count() as u32 - 1));
    assert!(o.output_closed);
    // A frame comes back when its 1 s segment is complete: under a segment and a bit.
    let p50 = o.latency_p50_ms.expect("latencies");
    assert!((100.0..1500.0).contains(&p50), "p50 {p50} ms");
    let fps = o.output_fps.expect("fps");
    assert!((fps - 30.0).abs() < 30.0 * 0.05, "output fps {fps}");
    let ttff = o.time_to_first_frame.expect("ttff");
    assert!(ttff < Duration::from_secs(3), "{ttff:?}");
    assert_eq!(o.stalls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_below_target_fails_with_its_figures() {
    let addr = serve().await;
    let o = run_live(&plan(addr, "echo", 60.0), source()).await;
    print("low fps", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::LOW_FPS));
    assert!(!o.ok);
    assert!(o.output_fps.is_some_and(|f| f < 57.0));
    assert!(o.frames_received > 0 && o.latency_p50_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_answer_is_not_json() {
    let addr = serve().await;
    let start = Instant::now();
    let o = run_live(&plan(addr, "not-json", 30.0), source()).await;
    print("not json", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::NOT_JSON));
    assert_eq!(o.status, Some(200));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_route_is_an_http_status() {
    let addr = serve().await;
    let o = run_live(&plan(addr, "nowhere", 30.0), source()).await;
    assert_eq!(o.reason.as_deref(), Some(reason::HTTP_STATUS));
    assert_eq!(o.status, Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_publishes_gives_no_output() {
    let addr = serve().await;
    let start = Instant::now();
    let mut plan = plan(addr, "silent", 30.0);
    plan.start_timeout = Duration::from_millis(1500);
    let o = run_live(&plan, source()).await;
    print("silent", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::NO_OUTPUT));
    assert_eq!(o.frames_received, 0);
    // The start timeout, not the source's length nor the run's budget.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_is_a_media_decode_failure() {
    let addr = serve().await;
    let start = Instant::now();
    let o = run_live(&plan(addr, "garbage", 30.0), source()).await;
    print("garbage", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::MEDIA_DECODE));
    assert!(o.undecodable_segments > 0);
    assert_eq!(o.frames_received, 0);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_ending_before_the_input_is_early() {
    let addr = serve().await;
    let o = run_live(&plan(addr, "end-early", 30.0), source()).await;
    print("end early", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::OUTPUT_ENDED_EARLY));
    assert_eq!(o.segments_out, 1);
    assert!(o.frames_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_output_segment_is_too_large() {
    let addr = serve().await;
    let start = Instant::now();
    let mut plan = plan(addr, "huge", 30.0);
    plan.max_segment_bytes = 1 << 20;
    let o = run_live(&plan, source()).await;
    print("huge", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::TOO_LARGE));
    assert!(o.bytes_out <= 1 << 20);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_going_silent_mid_stream_is_stalled() {
    let addr = serve().await;
    let start = Instant::now();
    let mut plan = plan(addr, "stall", 30.0);
    plan.stall_after = Duration::from_millis(1500);
    let o = run_live(&plan, source()).await;
    print("stall", &o);
    assert_eq!(o.reason.as_deref(), Some(reason::OUTPUT_STALLED));
    assert_eq!(o.segments_out, 1);
    assert!(o.frames_received > 0 && o.time_to_first_frame.is_some());
    // The first output (about 1 s) plus the stall limit, not the source's 4 s.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_worker_is_a_connect_failure() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let o = run_live(&plan(addr, "echo", 30.0), source()).await;
    assert_eq!(o.reason.as_deref(), Some(reason::CONNECT));
}

/// A ~10 s stamped source for the real worker, encoded once per test binary.
fn ten_seconds() -> &'static EncodedSource {
    static SOURCE: OnceLock<EncodedSource> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    SOURCE.get_or_init(|| {
        reference_transcoder::source::generate(&SourceConfig {
            width: 256,
            height: 144,
            fps_num: 30,
            fps_den: 1,
            duration_secs: 10.0,
            gop_secs: 1.0,
            stream_id: 0x11FE_0002,
            video_bitrate: Some(300_000),
            x264_preset: "ultrafast".into(),
            audio: false,
            noise: 0,
            ..Default::default()
        })
        .expect("generate the stamped source")
    })
}

/// The in-process AI worker's live route: hue-shifted, re-timed to 24 fps, measured live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ai_worker_keeps_its_rate_live() {
    let source = ten_seconds();
    let mut config = AiWorkerConfig::default();
    config.live.output_fps = 24;
    let model = config.models.live_video_to_video.clone();
    let worker = node_ai_worker::start(config).await.expect("worker starts");
    let url = format!("http://{}/", worker.addr).parse().expect("url");
    let mut plan = LivePlan::new(url, model, 24.0);
    plan.start_timeout = Duration::from_secs(10);
    plan.end_timeout = Duration::from_secs(10);
    let o = run_live(&plan, source).await;
    print("ai-worker", &o);
    worker.shutdown().await;
    assert!(o.ok, "{:?}: {:?}", o.reason, o.message);
    assert!(o.frames_received > 0);
    assert!(
        o.unreadable_stamps * 20 <= o.frames_received,
        "{} of {} stamps unreadable",
        o.unreadable_stamps,
        o.frames_received
    );
    let fps = o.output_fps.expect("an output rate");
    assert!((fps - 24.0).abs() <= 24.0 * 0.05, "output fps {fps}");
    let ttff = o.time_to_first_frame.expect("a first frame");
    assert!(
        ttff < Duration::from_secs(3),
        "time to first frame {ttff:?}"
    );
    let p50 = o.latency_p50_ms.expect("latencies");
    assert!(p50 < 3000.0, "latency p50 {p50} ms");
    assert_eq!(o.stalls, 0, "stalled {:?}", o.stall_time);
}
