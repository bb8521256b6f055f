//! Third-party peers on either side of nginx-rtmp: the `ffmpeg` tool publishing what our puller
//! reads, and the `ffprobe` tool reading what our publisher sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    CheckOptions, HlsOptions, HlsPuller, PublishOptions, PublishPhase, PullEvent, RtmpPublisher,
    RtmpTarget, SegmentChecker, decode_segment, http_client,
};
use testkit::nginx::Nginx;
use tokio::process::Command;
use tokio::time::Instant;

use crate::support::{encoded_source, runtime};

#[test]
fn ffmpeg_publishes_into_nginx_and_our_puller_reads_every_segment_back() {
    let (encoded, source) = encoded_source();
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("clip.ts");
    let flv = dir.path().join("clip.flv");
    let mut bytes = Vec::new();
    for s in encoded.ts_segments(2.0).unwrap() {
        bytes.extend_from_slice(&s.data);
    }
    std::fs::write(&ts, bytes).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&ts)
        .args(["-c", "copy"])
        .arg(&flv)
        .status()
        .unwrap();
    assert!(status.success());

    let key = "ffmpeg-pub";
    let rt = runtime();
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    rt.block_on(async {
        let mut ffmpeg = Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(&flv)
            .args(["-c", "copy", "-f", "flv"])
            .arg(nginx.rtmp_url(key))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let puller = HlsPuller::new(
            http_client().unwrap(),
            &nginx.hls_url(key),
            key,
            HlsOptions::default(),
        )
        .unwrap();
        let sink = events.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        tokio::select! {
            summary = puller.run(deadline, Arc::new(move |e| sink.lock().unwrap().push(e))) => {
                panic!("the puller stopped before ffmpeg finished: {summary:?}");
            }
            _ = async {
                let status = ffmpeg.wait().await.unwrap();
                assert!(status.success(), "ffmpeg publisher failed: {status}");
                // Let the puller fetch the segment nginx closes at unpublish.
                tokio::time::sleep(Duration::from_secs(4)).await;
            } => {}
        }
    });

    let checker = SegmentChecker::new(key, None, CheckOptions::default())
        .expect_stream_id(source.format.stream_id);
    let events = events.lock().unwrap();
    let mut seqs = Vec::new();
    let mut first_frames = Vec::new();
    for e in events.iter() {
        if let PullEvent::Segment(s) = e {
            seqs.push(s.seq);
            let decoded = decode_segment(s.body.as_ref().expect("segment body"));
            let checked = checker.check(s, Some(&decoded));
            let failed: Vec<_> = checked.checks.iter().filter(|c| !c.passed).collect();
            assert!(failed.is_empty(), "seq {}: {failed:#?}", s.seq);
            assert!(checked.verdict("continuity").is_some() || seqs.len() == 1);
            first_frames.push(
                checked
                    .observation
                    .media
                    .unwrap()
                    .first_stamp_frame
                    .unwrap(),
            );
        }
    }
    assert!(seqs.len() >= 5, "segments {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "segments {seqs:?}"
    );
    // ffmpeg sends the clip from frame 0 with 2 s GOPs: segments start every 60 frames.
    assert_eq!(first_frames[0], 0, "{first_frames:?}");
    assert!(
        first_frames
            .windows(2)
            .all(|w| w[1] > w[0] && (w[1] - w[0]) % 60 == 0),
        "{first_frames:?}"
    );
}

#[test]
fn ffprobe_reads_back_what_our_publisher_sends_through_nginx() {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let key = "ffprobe-read";
    let url = nginx.rtmp_url(key);
    let publisher = RtmpPublisher::new(
        RtmpTarget::parse(&url).unwrap(),
        source.clone(),
        PublishOptions {
            duration: Duration::from_secs(8),
            ..Default::default()
        },
    );
    let rt = runtime();
    let json = rt.block_on(async {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let mut started_tx = Some(started_tx);
        let publish = async {
            publisher
                .run(&mut |o| {
                    if o.phase == PublishPhase::Started
                        && let Some(tx) = started_tx.take()
                    {
                        let _ = tx.send(());
                    }
                })
                .await
        };
        let probe = async {
            started_rx.await.expect("publisher started");
            let out = tokio::time::timeout(
                Duration::from_secs(20),
                Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-show_entries",
                        "stream=codec_type,codec_name,width,height",
                        "-of",
                        "json",
                    ])
                    .arg(&url)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("ffprobe finished within 20 s")
            .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let (published, json) = tokio::join!(publish, probe);
        published.expect("publish");
        json
    });
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio stream");
    assert_eq!(audio["codec_name"], "aac");
}
