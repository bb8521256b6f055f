//! Publishers and orchestrators that misbehave: each is recorded and handled, and the
//! broadcaster keeps serving.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::rtmp_client::Publisher;
use crate::support::*;

async fn health(b: &node_broadcaster::RunningBroadcaster) {
    let (code, body) = get_text(&format!("http://{}/healthz", b.http_addr)).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_publisher_is_disconnected_and_counted() {
    let b = start(config("", vec![])).await;
    let mut socket = tokio::net::TcpStream::connect(b.rtmp_addr).await.unwrap();
    let garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    let _ = socket.write_all(&garbage).await;
    let mut buf = [0u8; 4096];
    // The server must close the connection (read returns 0 or an error), not hang.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "garbage connection was not closed");
    let state = b.state().clone();
    wait_for("rtmp_handshake counted", Duration::from_secs(5), || {
        state.records().ingest_errors().get("rtmp_handshake") == Some(&1)
    })
    .await;
    health(&b).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_dying_mid_packet_ends_the_stream_cleanly() {
    let b = start(config("", vec![])).await;
    let src = source(320, 180, 3.0);
    let mut p = Publisher::connect(b.rtmp_addr, "live", "cut")
        .await
        .unwrap();
    queue(&mut p, &src, 0, true);
    p.cut_mid_packet().await;
    wait_finished(&b, "cut", Duration::from_secs(10)).await;
    let base = format!("http://{}", b.http_addr);
    let (_, media) = get_text(&format!("{base}/stream/cut/source.m3u8")).await;
    assert!(media.contains("source/0.ts"), "{media}");
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");
    let (ok, err) = ffmpeg_read(&format!("{base}/stream/cut/source.m3u8"));
    assert!(ok, "{err}");
    health(&b).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_without_key_frames_yields_no_segments_and_a_record() {
    let b = start(config("", vec![])).await;
    let src = source(320, 180, 2.0);
    let mut p = Publisher::connect(b.rtmp_addr, "live", "nokeys")
        .await
        .unwrap();
    queue(&mut p, &src, 0, false);
    p.finish().await;
    wait_finished(&b, "nokeys", Duration::from_secs(10)).await;
    let status = status(&b).await;
    let stream = &status["streams"][0];
    assert_eq!(stream["manifest_id"], "nokeys");
    assert_eq!(stream["segments"], 0);
    assert_eq!(
        stream["ingest"]["frames_before_keyframe"],
        src.video.len() as u64
    );
    assert_eq!(status["ingest_errors"]["no_keyframe"], 1);
    let (_, media) = get_text(&format!("http://{}/stream/nokeys/source.m3u8", b.http_addr)).await;
    assert!(!media.contains(".ts"), "{media}");
    health(&b).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_change_mid_stream_starts_a_discontinuity() {
    let b = start(config("", vec![])).await;
    let (small, large) = (source(320, 180, 2.0), source(480, 270, 2.0));
    let mut p = Publisher::connect(b.rtmp_addr, "live", "resize")
        .await
        .unwrap();
    queue(&mut p, &small, 0, true);
    queue(&mut p, &large, 2000, true);
    p.finish().await;
    wait_finished(&b, "resize", Duration::from_secs(10)).await;
    let base = format!("http://{}", b.http_addr);
    let (_, media) = get_text(&format!("{base}/stream/resize/source.m3u8")).await;
    assert_eq!(
        media.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{media}"
    );
    let after = media.split("#EXT-X-DISCONTINUITY\n").nth(1).unwrap();
    let first_large = after.lines().find(|l| l.ends_with(".ts")).unwrap();
    let last_small = media
        .split("#EXT-X-DISCONTINUITY\n")
        .next()
        .unwrap()
        .lines()
        .rfind(|l| l.ends_with(".ts"))
        .unwrap();
    assert_eq!(
        ffprobe_video(&format!("{base}/stream/resize/{last_small}")).0,
        320
    );
    assert_eq!(
        ffprobe_video(&format!("{base}/stream/resize/{first_large}")).0,
        480
    );
    let (_, master) = get_text(&format!("{base}/stream/resize.m3u8")).await;
    assert!(master.contains("RESOLUTION=480x270"), "{master}");
    let status = status(&b).await;
    assert_eq!(status["streams"][0]["ingest"]["resolution_changes"], 1);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrators_answering_garbage_or_nothing_fail_segments_but_not_the_stream() {
    // One peer answers every connection with garbage bytes, the other accepts and never speaks.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uris = vec![
        format!("https://{}", garbage.local_addr().unwrap()),
        format!("https://{}", silent.local_addr().unwrap()),
    ];
    let garbage_task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = garbage.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\n\r\n\x00\xff garbage \x16\x03")
                    .await;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let b = start(config("P144p30fps16x9", uris.clone())).await;
    let src = source(320, 180, 4.0);
    let mut p = Publisher::connect(b.rtmp_addr, "live", "badorch")
        .await
        .unwrap();
    queue(&mut p, &src, 0, true);
    p.finish().await;
    wait_finished(&b, "badorch", Duration::from_secs(60)).await;
    let status = status(&b).await;
    let segs = status["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 2, "4 s at a 2 s target: {status}");
    for s in segs {
        assert_eq!(s["outcome"], "failed", "{s}");
        assert_eq!(s["error"], "no orchestrator available", "{s}");
    }
    let orchs = status["orchestrators"].as_array().unwrap();
    assert_eq!(orchs.len(), 2);
    assert!(
        orchs[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("GetOrchestrator"),
        "{status}"
    );
    assert!(
        orchs[1]["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{status}"
    );
    // The source rendition is complete and the transcoded one lists both segments as gaps.
    let base = format!("http://{}", b.http_addr);
    let (_, media) = get_text(&format!("{base}/stream/badorch/source.m3u8")).await;
    assert_eq!(media.matches(".ts").count(), 2, "{media}");
    let (code, rendition) = get_text(&format!("{base}/stream/badorch/P144p30fps16x9.m3u8")).await;
    assert_eq!(code, 200);
    assert_eq!(rendition.matches(".ts").count(), 2, "{rendition}");
    assert_eq!(
        rendition.matches("#EXT-X-GAP\n#EXTINF:").count(),
        2,
        "{rendition}"
    );
    assert!(rendition.ends_with("#EXT-X-ENDLIST\n"), "{rendition}");
    health(&b).await;
    b.shutdown().await;
    garbage_task.abort();
    silent_task.abort();
}
