//! RTMP ingest → segments → HLS, read back by the `ffmpeg` and `ffprobe` tools.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_and_ffmpeg_reads_the_source_rendition_back() {
    let b = start(config("", vec![])).await;
    let publisher = ffmpeg_publish(&b.rtmp_url("key"), 10, "640x360");
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "ffmpeg publish failed: {stderr}");
    wait_finished(&b, "key", Duration::from_secs(10)).await;

    let base = format!("http://{}", b.http_addr);
    let (code, master) = get_text(&format!("{base}/stream/key.m3u8")).await;
    assert_eq!(code, 200);
    assert!(
        master.contains("RESOLUTION=640x360\nkey/source.m3u8"),
        "{master}"
    );
    // Web players on any origin may read every answer, as go-livepeer's lpms vidplayer allows.
    for (path, status) in [
        ("stream/key.m3u8", 200),
        ("stream/key/source.m3u8", 200),
        ("stream/key/source/0.ts", 200),
        ("stream/nokey.m3u8", 404),
    ] {
        let resp = reqwest::get(format!("{base}/{path}")).await.expect("GET");
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(
            header("access-control-expose-headers"),
            Some("Content-Length"),
            "{path}"
        );
    }
    let (_, media) = get_text(&format!("{base}/stream/key/source.m3u8")).await;
    assert!(media.contains("#EXT-X-TARGETDURATION:2\n"), "{media}");
    assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{media}");
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");
    let durations: Vec<f64> = media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect();
    assert_eq!(
        durations.len(),
        5,
        "10 s at a 2 s GOP is 5 segments: {media}"
    );
    for d in &durations[..4] {
        assert!((d - 2.0).abs() < 0.05, "segment of {d} s: {media}");
    }
    let total: f64 = durations.iter().sum();
    assert!((total - 10.0).abs() < 0.2, "total {total}");

    let (ok, err) = ffmpeg_read(&format!("{base}/stream/key/source.m3u8"));
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg reading the playlist: {err}"
    );
    let (w, h, dur) = ffprobe_video(&format!("{base}/stream/key/source.m3u8"));
    assert_eq!((w, h), (640, 360));
    assert!((dur - 10.0).abs() < 0.5, "ffprobe duration {dur}");
    let (w, h, _) = ffprobe_video(&format!("{base}/stream/key.m3u8"));
    assert_eq!((w, h), (640, 360));

    let doc = status(&b).await;
    let segs = doc["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 5);
    assert!(segs.iter().all(|s| s["outcome"] == "source_only"));
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("lpt_broadcaster_segments_total{outcome=\"source_only\"} 5"),
        "{metrics}"
    );
    let (code, health) = get_text(&format!("{base}/healthz")).await;
    assert_eq!((code, health.as_str()), (200, "ok"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_id_as_app_and_a_restart_adds_a_discontinuity() {
    let b = start(config("", vec![])).await;
    let url = format!("rtmp://{}/restarted", b.rtmp_addr);
    for _ in 0..2 {
        let (exit, stderr) =
            wait_child(ffmpeg_publish(&url, 4, "320x240"), Duration::from_secs(30)).await;
        assert!(exit.success(), "{stderr}");
        wait_finished(&b, "restarted", Duration::from_secs(10)).await;
    }
    let base = format!("http://{}", b.http_addr);
    let (_, media) = get_text(&format!("{base}/stream/restarted/source.m3u8")).await;
    let segs: Vec<&str> = media.lines().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(
        segs,
        ["source/0.ts", "source/1.ts", "source/2.ts", "source/3.ts"],
        "{media}"
    );
    assert_eq!(
        media.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{media}"
    );
    assert!(
        media.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nsource/2.ts"),
        "{media}"
    );
    let (ok, err) = ffmpeg_read(&format!("{base}/stream/restarted/source.m3u8"));
    assert!(ok, "{err}");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_ingest_serves_the_pushed_segment() {
    let b = start(config("", vec![])).await;
    let source = reference_transcoder::generate(&reference_transcoder::SourceConfig {
        width: 320,
        height: 180,
        duration_secs: 4.0,
        x264_preset: "ultrafast".into(),
        ..Default::default()
    })
    .unwrap();
    let segments = source.ts_segments(2.0).unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{}", b.http_addr);
    for s in &segments {
        let resp = client
            .put(format!("{base}/live/pushed/{}.ts", s.seq))
            .header(
                "Content-Duration",
                format!("{}", (s.duration_secs * 1000.0) as u64),
            )
            .body(s.data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = client
        .post(format!("{base}/live/pushed/9.ts"))
        .body(vec![1u8; 400])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let (_, media) = get_text(&format!("{base}/stream/pushed/source.m3u8")).await;
    assert!(
        media.contains("#EXTINF:2.000,\nsource/0.ts\n#EXTINF:2.000,\nsource/1.ts\n"),
        "{media}"
    );
    let served = reqwest::get(format!("{base}/stream/pushed/source/1.ts"))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap(), segments[1].data);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_kept_in_files_are_served_and_leave_with_the_window() {
    let parent = tempfile::tempdir().unwrap();
    let mut cfg = config("", vec![]);
    cfg.hls_dir = Some(parent.path().to_owned());
    cfg.hls_window = 3;
    let b = start(cfg).await;
    let dir = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the broadcaster made its segment directory");
    let files = || -> usize {
        std::fs::read_dir(&dir)
            .map(|d| d.flatten().count())
            .unwrap_or(usize::MAX)
    };
    let publisher = ffmpeg_publish(&b.rtmp_url("disk"), 10, "640x360");
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "ffmpeg publish failed: {stderr}");
    wait_finished(&b, "disk", Duration::from_secs(10)).await;

    // 5 segments were cut; the window keeps the last 3, each in its own file.
    assert_eq!(files(), 3);
    let base = format!("http://{}/stream/disk", b.http_addr);
    let (_, media) = get_text(&format!("{base}/source.m3u8")).await;
    assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{media}");
    let (code, _) = get_text(&format!("{base}/source/0.ts")).await;
    assert_eq!(code, 404, "a segment that slid out is gone");
    let (ok, err) = ffmpeg_read(&format!("{base}/source.m3u8"));
    assert!(ok && err.trim().is_empty(), "ffmpeg reading: {err}");
    let (w, h, dur) = ffprobe_video(&format!("{base}/source.m3u8"));
    assert_eq!((w, h), (640, 360));
    assert!(
        (dur - 6.0).abs() < 0.5,
        "the window's 3 segments last {dur} s"
    );

    b.shutdown().await;
    assert!(
        !dir.exists(),
        "the segment directory outlived the broadcaster"
    );
}
