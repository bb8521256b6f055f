//! A rendition segment that no orchestrator produced is published as an `#EXT-X-GAP` entry in
//! its place, not skipped: the rendition's media sequence stays the stream's, and the gap's URI
//! serves nothing.

use std::time::Duration;

use node_orchestrator::config::OrchestratorConfig;
use node_orchestrator::faults::FaultConfig;

use crate::support::*;

const RENDITION: &str = "P144p30fps16x9";

/// One media playlist entry: (URI, `#EXTINF` text, listed after `#EXT-X-GAP`).
fn entries(playlist: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let (mut extinf, mut gap) = (String::new(), false);
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = d.to_string();
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), std::mem::take(&mut extinf), gap));
            gap = false;
        }
    }
    out
}

/// The only orchestrator drops every fourth segment it is sent (`drop_fraction = 0.25`: the
/// fourth of six), so segment 3 fails on every orchestrator there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_no_orchestrator_produced_is_a_gap_in_its_rendition() {
    let mut oc = OrchestratorConfig::offchain();
    oc.transcode.x264_preset = "ultrafast".into();
    oc.transcode.encoder_threads = 1;
    oc.faults = FaultConfig {
        drop_fraction: 0.25,
        ..FaultConfig::default()
    };
    let o = node_orchestrator::start(oc).await.unwrap();
    let mut bc = config(RENDITION, vec![o.service_uri().to_string()]);
    // The failed orchestrator takes the next segment at once: one gap, not a cooldown's worth.
    bc.failure_cooldown_secs = 0;
    let b = start(bc).await;
    let publisher = ffmpeg_publish(&b.rtmp_url("gappy"), 12, "320x180");
    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "ffmpeg publish failed: {stderr}");
    wait_finished(&b, "gappy", Duration::from_secs(60)).await;

    let outcomes: Vec<(u64, String)> = b
        .state()
        .records()
        .records()
        .into_iter()
        .map(|r| (r.seq, r.outcome))
        .collect();
    let expected: Vec<(u64, String)> = (0..6)
        .map(|seq| (seq, if seq == 3 { "failed" } else { "ok" }.to_string()))
        .collect();
    assert_eq!(outcomes, expected);

    let base = format!("http://{}/stream", b.http_addr);
    let (_, source) = get_text(&format!("{base}/gappy/source.m3u8")).await;
    let (_, media) = get_text(&format!("{base}/gappy/{RENDITION}.m3u8")).await;
    assert!(media.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"), "{media}");
    assert!(media.contains("\n#EXT-X-MEDIA-SEQUENCE:0\n"), "{media}");
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");
    let listed = entries(&media);
    let uris: Vec<String> = listed.iter().map(|(uri, ..)| uri.clone()).collect();
    let contiguous: Vec<String> = (0..6).map(|seq| format!("{RENDITION}/{seq}.ts")).collect();
    assert_eq!(uris, contiguous, "{media}");
    let gaps: Vec<usize> = (0..6).filter(|&i| listed[i].2).collect();
    assert_eq!(gaps, [3], "{media}");
    // Every entry, the gap too, lasts what its source segment lasts.
    let source_extinf: Vec<String> = entries(&source).into_iter().map(|(_, d, _)| d).collect();
    let media_extinf: Vec<String> = listed.iter().map(|(_, d, _)| d.clone()).collect();
    assert_eq!(media_extinf, source_extinf, "{source}\n{media}");
    assert!(!source.contains("GAP"), "{source}");

    for seq in 0..6u64 {
        let resp = reqwest::get(format!("{base}/gappy/{RENDITION}/{seq}.ts"))
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        if seq == 3 {
            assert_eq!(status, 404, "the gap served {} bytes", body.len());
        } else {
            assert_eq!(status, 200, "segment {seq}");
            assert_eq!(body[0], 0x47, "segment {seq} is not MPEG-TS");
        }
    }
    b.shutdown().await;
    o.shutdown().await;
}
