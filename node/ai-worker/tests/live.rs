//! The live route end to end: a real worker and a real Trickle server on 127.0.0.1:0, a
//! stamped MPEG-TS source published in real time, and the worker's output decoded back.

use std::collections::HashMap;
use std::time::Duration;

use ffmpeg_next::frame;
use node_ai_worker::{AiWorkerConfig, LiveConfig, RunningAiWorker, start};
use reference_transcoder::decode::{
    DecodeOptions, DecoderThreads, Demuxer, ReadErrors, VideoDecoder,
};
use reference_transcoder::memio::open_container;
use reference_transcoder::stamp::band_rows;
use reference_transcoder::{SourceConfig, generate, read_stamp};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until, timeout};
use trickle::{Publisher, ServerLimits, Subscriber, TrickleServer};

const STREAM_ID: u32 = 7;
const LIVE_MODEL: &str = "lpt/hue-shift";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn worker(config: AiWorkerConfig) -> (RunningAiWorker, String) {
    let w = start(config).await.expect("worker starts");
    let base = format!("http://{}", w.addr);
    (w, base)
}

async fn start_job(base: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}/live-video-to-video"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// One decoded frame: its stamp, and its chroma planes above the stamp band.
struct Decoded {
    stamp: Option<(u32, u32)>,
    pts_secs: f64,
    chroma: Vec<u8>,
}

fn decode(ts: &[u8]) -> Vec<Decoded> {
    let memory = open_container(ts.to_vec()).expect("a TS segment");
    let mut decoder = VideoDecoder::open(
        Demuxer::Memory(memory),
        DecodeOptions {
            threads: DecoderThreads::Single,
            read_errors: ReadErrors::EndInput,
        },
    )
    .expect("a video stream");
    let time_base = f64::from(decoder.time_base);
    let mut out = Vec::new();
    let mut frame = frame::Video::empty();
    while decoder.next_frame(&mut frame).unwrap() {
        let (band_top, _) = band_rows(frame.height());
        let rows = band_top as usize / 2;
        let width = frame.width() as usize / 2;
        let mut chroma = Vec::with_capacity(rows * width * 2);
        for plane in [1, 2] {
            let stride = frame.stride(plane);
            let data = frame.data(plane);
            for row in 0..rows {
                chroma.extend_from_slice(&data[row * stride..row * stride + width]);
            }
        }
        out.push(Decoded {
            stamp: read_stamp(&frame).map(|s| (s.stream_id, s.frame_number)),
            pts_secs: frame.timestamp().or(frame.pts()).unwrap_or(0) as f64 * time_base,
            chroma,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_job_relays_hue_shifted_stamped_video_at_the_configured_rate() {
    let source = generate(&SourceConfig {
        width: 256,
        height: 144,
        fps_num: 30,
        fps_den: 1,
        duration_secs: 8.0,
        gop_secs: 1.0,
        stream_id: STREAM_ID,
        audio: false,
        noise: 0,
        x264_preset: "ultrafast".into(),
        ..SourceConfig::default()
    })
    .expect("source");
    let segments = source.ts_segments(1.0).expect("TS segments");
    assert_eq!(segments.len(), 8);
    let input_secs: f64 = segments.iter().map(|s| s.duration_secs).sum();
    let mut input_chroma: HashMap<u32, Vec<u8>> = HashMap::new();
    for segment in &segments {
        for f in decode(&segment.data) {
            let (_, number) = f.stamp.expect("source frames are stamped");
            input_chroma.insert(number, f.chroma);
        }
    }

    let trickle = TrickleServer::start("127.0.0.1:0".parse().unwrap(), ServerLimits::default())
        .await
        .unwrap();
    let config = AiWorkerConfig {
        live: LiveConfig::default(),
        ..AiWorkerConfig::default()
    };
    assert_eq!(config.live.output_fps, 24);
    let (w, base) = worker(config).await;
    let (in_url, out_url) = (trickle.channel_url("in"), trickle.channel_url("out"));
    let resp = start_job(
        &base,
        json!({"subscribe_url": in_url, "publish_url": out_url, "model_id": LIVE_MODEL, "stream_id": "s1"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["subscribe_url"], in_url.as_str());
    assert_eq!(answer["publish_url"], out_url.as_str());
    assert!(!answer["request_id"].as_str().unwrap().is_empty());

    let reader = tokio::spawn({
        let out_url = out_url.clone();
        async move {
            let mut subscriber = Subscriber::new(&out_url, client(), 0);
            let mut got = Vec::new();
            while let Some(segment) = subscriber
                .next_segment(Duration::from_secs(30))
                .await
                .expect("output segment")
            {
                let seq = segment.seq();
                got.push((seq, segment.read_all(32 << 20).await.expect("output body")));
            }
            (got, Instant::now())
        }
    });

    // Publish in real time: each segment in four pieces spread over its duration.
    let publish = async {
        let mut publisher = Publisher::new(&in_url, client());
        let started = Instant::now();
        let mut at = 0.0;
        for segment in &segments {
            let mut writer = publisher.next_segment().await.unwrap();
            let piece = segment.data.len().div_ceil(4);
            for (i, chunk) in segment.data.chunks(piece).enumerate() {
                sleep_until(
                    started + Duration::from_secs_f64(at + i as f64 * segment.duration_secs / 4.0),
                )
                .await;
                writer
                    .write(bytes::Bytes::copy_from_slice(chunk))
                    .await
                    .unwrap();
            }
            writer.finish().await.unwrap();
            at += segment.duration_secs;
        }
        sleep_until(started + Duration::from_secs_f64(at)).await;
        publisher.close().await.unwrap();
        Instant::now()
    };
    let input_closed = timeout(Duration::from_secs(30), publish)
        .await
        .expect("publishing in time");
    let (outputs, output_ended) = timeout(Duration::from_secs(40), reader)
        .await
        .expect("output ends in time")
        .unwrap();
    assert!(output_ended >= input_closed, "output ended before input");

    // One output segment per input segment, in order.
    let seqs: Vec<u64> = outputs.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..segments.len() as u64).collect::<Vec<_>>());

    let frames: Vec<Decoded> = outputs.iter().flat_map(|(_, ts)| decode(ts)).collect();
    let stamped: Vec<(u32, u32)> = frames.iter().filter_map(|f| f.stamp).collect();
    assert!(
        stamped.len() * 100 >= frames.len() * 98,
        "{} of {} output frames carry a readable stamp",
        stamped.len(),
        frames.len()
    );
    assert!(stamped.iter().all(|(id, _)| *id == STREAM_ID));
    assert!(
        stamped.windows(2).all(|w| w[1].1 > w[0].1),
        "frame numbers must increase: {stamped:?}"
    );
    let expected = 24.0 * input_secs;
    let count = frames.len() as f64;
    let first = frames.first().unwrap().pts_secs;
    let last = frames.last().unwrap().pts_secs;
    let measured_fps = (count - 1.0) / (last - first);
    eprintln!(
        "live output: {} frames for {input_secs:.3} s of input (expected {expected:.0}), {measured_fps:.3} fps by timestamps, {} segments",
        frames.len(),
        outputs.len()
    );
    assert!(
        (count - expected).abs() <= expected * 0.05,
        "{count} output frames, expected about {expected}"
    );
    assert!((measured_fps - 24.0).abs() < 0.1, "{measured_fps} fps");

    // Chroma changed against the same source frame, while the stamps (luma) read back.
    let mut diffs = Vec::new();
    for f in &frames {
        let Some((_, number)) = f.stamp else { continue };
        let source = &input_chroma[&number];
        let sum: u64 = source
            .iter()
            .zip(&f.chroma)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        diffs.push(sum as f64 / source.len() as f64);
    }
    let mean_diff = diffs.iter().sum::<f64>() / diffs.len() as f64;
    eprintln!("mean chroma difference from the source: {mean_diff:.2}");
    assert!(mean_diff > 8.0, "hue barely changed: {mean_diff}");

    let stats = w.stats();
    assert_eq!(stats.by_pipeline["live-video-to-video"], 1);
    w.shutdown().await;
    trickle.stop().await;
}

#[tokio::test]
async fn live_requests_are_checked() {
    let (w, base) = worker(AiWorkerConfig::default()).await;
    let good = "http://127.0.0.1:9/in";
    for (body, status, needle) in [
        (
            json!({"subscribe_url": good, "publish_url": good, "model_id": "other"}),
            400,
            "model",
        ),
        (
            json!({"subscribe_url": "ftp://x/in", "publish_url": good, "model_id": LIVE_MODEL}),
            400,
            "subscribe_url",
        ),
        (
            json!({"subscribe_url": good, "publish_url": "not a url", "model_id": LIVE_MODEL}),
            400,
            "publish_url",
        ),
        (
            json!({"subscribe_url": good, "model_id": LIVE_MODEL}),
            422,
            "publish_url",
        ),
    ] {
        let resp = start_job(&base, body).await;
        assert_eq!(resp.status(), status);
        let err: Value = resp.json().await.unwrap();
        let msg = err["detail"]["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_jobs_hold_capacity_and_extra_ones_get_503() {
    let trickle = TrickleServer::start("127.0.0.1:0".parse().unwrap(), ServerLimits::default())
        .await
        .unwrap();
    let config = AiWorkerConfig {
        capacity: 2,
        ..AiWorkerConfig::default()
    };
    let (w, base) = worker(config).await;
    for i in 0..2 {
        // Inputs that never appear: the jobs wait for them (up to the idle timeout).
        let resp = start_job(
            &base,
            json!({"subscribe_url": trickle.channel_url(&format!("in{i}")), "publish_url": trickle.channel_url(&format!("out{i}")), "model_id": LIVE_MODEL}),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let resp = start_job(
        &base,
        json!({"subscribe_url": trickle.channel_url("in3"), "publish_url": trickle.channel_url("out3"), "model_id": LIVE_MODEL}),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.unwrap();
    assert!(err["detail"]["msg"].as_str().unwrap().contains("busy"));
    w.shutdown().await;
    trickle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_job_with_undecodable_input_closes_its_output() {
    let trickle = TrickleServer::start("127.0.0.1:0".parse().unwrap(), ServerLimits::default())
        .await
        .unwrap();
    let (w, base) = worker(AiWorkerConfig::default()).await;
    let (in_url, out_url) = (trickle.channel_url("junk"), trickle.channel_url("junk-out"));
    // The output channel exists before the job so its end is visible as an end, not a 404.
    let mut out = Publisher::new(&out_url, client());
    let placeholder = out.next_segment().await.unwrap();
    placeholder.finish().await.unwrap();
    let resp = start_job(
        &base,
        json!({"subscribe_url": in_url, "publish_url": out_url, "model_id": LIVE_MODEL}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut input = Publisher::new(&in_url, client());
    let mut writer = input.next_segment().await.unwrap();
    writer
        .write(bytes::Bytes::from(vec![0x47u8; 188 * 20]))
        .await
        .unwrap();
    writer.finish().await.unwrap();
    let mut subscriber = Subscriber::new(&out_url, client(), 1);
    let end = timeout(
        Duration::from_secs(20),
        subscriber.next_segment(Duration::from_secs(15)),
    )
    .await
    .expect("the job ends in time")
    .unwrap();
    assert!(end.is_none(), "the output channel ends");
    w.shutdown().await;
    trickle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_job_whose_input_stalls_ends_and_closes_its_output() {
    let source = generate(&SourceConfig {
        width: 256,
        height: 144,
        duration_secs: 1.0,
        gop_secs: 1.0,
        stream_id: STREAM_ID,
        audio: false,
        noise: 0,
        x264_preset: "ultrafast".into(),
        ..SourceConfig::default()
    })
    .expect("source");
    let segment = source.ts_segments(1.0).expect("TS segments").remove(0);
    let trickle = TrickleServer::start("127.0.0.1:0".parse().unwrap(), ServerLimits::default())
        .await
        .unwrap();
    let config = AiWorkerConfig {
        live: LiveConfig {
            idle_timeout_secs: 1.0,
            ..LiveConfig::default()
        },
        ..AiWorkerConfig::default()
    };
    let (w, base) = worker(config).await;
    let (in_url, out_url) = (
        trickle.channel_url("stall"),
        trickle.channel_url("stall-out"),
    );
    let resp = start_job(
        &base,
        json!({"subscribe_url": in_url, "publish_url": out_url, "model_id": LIVE_MODEL}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // One segment, then nothing: neither more segments nor the channel's end.
    let mut input = Publisher::new(&in_url, client());
    let mut writer = input.next_segment().await.unwrap();
    writer.write(segment.data.clone().into()).await.unwrap();
    writer.finish().await.unwrap();
    let started = Instant::now();
    let mut subscriber = Subscriber::new(&out_url, client(), 0);
    let first = subscriber
        .next_segment(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("the one output segment");
    let frames = decode(&first.read_all(32 << 20).await.unwrap());
    assert!(!frames.is_empty());
    let end = timeout(
        Duration::from_secs(10),
        subscriber.next_segment(Duration::from_secs(10)),
    )
    .await
    .expect("the job ends in time")
    .unwrap();
    assert!(end.is_none(), "the output channel ends");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Its capacity is free again.
    let again = start_job(
        &base,
        json!({"subscribe_url": in_url, "publish_url": trickle.channel_url("other"), "model_id": LIVE_MODEL}),
    )
    .await;
    assert_eq!(again.status(), 200);
    w.shutdown().await;
    trickle.stop().await;
}
