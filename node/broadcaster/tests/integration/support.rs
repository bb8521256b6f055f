//! Shared setup: start a broadcaster on free ports, run the `ffmpeg`/`ffprobe` tools, wait for
//! events with deadlines.

use std::process::{Command, Stdio};
use std::time::Duration;

use node_broadcaster::{BroadcasterConfig, RunningBroadcaster};
use reference_transcoder::{EncodedSource, MediaKind, SourceConfig};

use crate::rtmp_client::Publisher;

/// A short x264 test source with a 1 s GOP.
pub fn source(width: u32, height: u32, secs: f64) -> EncodedSource {
    reference_transcoder::generate(&SourceConfig {
        width,
        height,
        duration_secs: secs,
        gop_secs: 1.0,
        x264_preset: "ultrafast".into(),
        noise: 0,
        ..Default::default()
    })
    .unwrap()
}

/// Queues every packet of `src` with timestamps shifted by `shift_ms`; `keep_keys == false`
/// re-labels key frames as inter frames.
pub fn queue(p: &mut Publisher, src: &EncodedSource, shift_ms: u32, keep_keys: bool) {
    for pkt in src.flv_packets() {
        let mut body = pkt.tag_body();
        let ms = pkt.dts_ms + shift_ms;
        match pkt.kind {
            MediaKind::Video => {
                if !keep_keys && !pkt.is_sequence_header {
                    body[0] = 0x27;
                }
                p.video(body, ms)
            }
            MediaKind::Audio => p.audio(body, ms),
        }
    }
}

/// Waits until `b` counts `kind` in `/status` `ingest_errors` at least `n` times.
pub async fn wait_ingest_error(b: &RunningBroadcaster, kind: &str, n: u64) {
    let state = b.state().clone();
    wait_for(
        &format!("{n} × {kind} in ingest_errors"),
        Duration::from_secs(10),
        || {
            state
                .records()
                .ingest_errors()
                .get(kind)
                .copied()
                .unwrap_or(0)
                >= n
        },
    )
    .await;
}

/// A config listening on free loopback ports.
pub fn config(ladder: &str, orchestrators: Vec<String>) -> BroadcasterConfig {
    BroadcasterConfig {
        rtmp_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ladder: ladder.to_string(),
        orchestrators,
        hls_window: 20,
        ..BroadcasterConfig::default()
    }
}

pub async fn start(config: BroadcasterConfig) -> RunningBroadcaster {
    node_broadcaster::start(config)
        .await
        .expect("broadcaster starts")
}

/// Waits until `check` holds, polling every 50 ms, failing with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the stream's publisher is gone and every segment is processed.
pub async fn wait_finished(b: &RunningBroadcaster, id: &str, limit: Duration) {
    let state = b.state().clone();
    wait_for(&format!("stream {id} to finish"), limit, || {
        state.stream(id).is_some_and(|s| s.finished())
    })
    .await;
}

/// `ffmpeg` publishing `secs` of 640x360 test video with a 2 s GOP and AAC to `url`.
pub fn ffmpeg_publish(url: &str, secs: u32, size: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine", "-t"])
        .arg(secs.to_string())
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-f",
            "flv",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs")
}

/// Waits for a child with a deadline, returning its stderr.
pub async fn wait_child(
    mut child: std::process::Child,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status, err);
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ffmpeg -i URL -f null -`: decodes a whole playlist; returns (exit ok, stderr).
pub fn ffmpeg_read(url: &str) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", url, "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ffprobe` of a URL: (width, height, duration seconds) of its video stream.
pub fn ffprobe_video(url: &str) -> (u32, u32, f64) {
    let v = testkit::ffmpeg::probe_json(
        url,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:format=duration",
        ],
    );
    let s = &v["streams"][0];
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        s["width"].as_u64().unwrap() as u32,
        s["height"].as_u64().unwrap() as u32,
        duration,
    )
}

/// GET a URL's body as text.
pub async fn get_text(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// `/status` as JSON.
pub async fn status(b: &RunningBroadcaster) -> serde_json::Value {
    let (code, body) = get_text(&format!("http://{}/status", b.http_addr)).await;
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap()
}
