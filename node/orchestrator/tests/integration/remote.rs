//! Remote transcoders: two attached transcoders share the work; killing one with a segment in
//! flight fails that one segment promptly (not after the task timeout) and the rest carry on.

use std::time::{Duration, Instant};

use node_orchestrator::config::TranscodeMode;
use node_orchestrator::{TranscoderConfig, start_transcoder};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transcoders_share_work_and_a_killed_one_loses_only_its_segment() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some("shared-secret".into());
    config.limits.remote_task_timeout_ms = 120_000;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let mut probe = Session::offchain(&uri).await;
    probe.ladder.truncate(1);

    // A wrong secret is refused and never attached.
    let intruder = start_transcoder(TranscoderConfig::new(&uri, "wrong"));
    let err = intruder.wait().await.unwrap_err();
    assert!(
        format!("{err:#}").contains("invalid transcoder secret"),
        "{err:#}"
    );

    // veryslow makes a 720p rendition take seconds, so a segment is surely in flight at the kill.
    let transcoder = TranscoderConfig {
        x264_preset: "veryslow".into(),
        ..TranscoderConfig::new(&uri, "shared-secret")
    };
    let first = start_transcoder(transcoder.clone());
    wait_status(
        &probe.client,
        Duration::from_secs(20),
        "first transcoder",
        |s| s["transcoders"].as_array().unwrap().len() == 1,
    )
    .await;
    let second = start_transcoder(transcoder);
    wait_status(
        &probe.client,
        Duration::from_secs(20),
        "second transcoder",
        |s| s["transcoders"].as_array().unwrap().len() == 2,
    )
    .await;

    for seq in 0..6 {
        let reply = probe.send(seq).await.unwrap();
        let rendition = &reply.renditions().unwrap()[0];
        let data = probe.client.download(&rendition.url).await.unwrap();
        let (w, h, frames) = ffprobe(&data).await;
        assert_eq!((w, h), (256, 144));
        assert_eq!(rendition.pixels as u64, u64::from(w * h) * frames);
    }
    let s = status(&probe.client).await;
    let done: Vec<u64> = s["transcoders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["completed"].as_u64().unwrap())
        .collect();
    assert_eq!(done, [3, 3], "work alternates between equal transcoders");

    // Two segments at once: one on each transcoder. Kill the first while both are in flight.
    let heavy = reference_transcoder::ladder::parse_ladder("P720p30fps16x9").unwrap();
    let mut a = Session::offchain(&uri).await;
    a.ladder = heavy.clone();
    a.total_timeout = Some(Duration::from_secs(90));
    let mut b = Session::offchain(&uri).await;
    b.ladder = heavy;
    b.total_timeout = Some(Duration::from_secs(90));
    let in_a = tokio::spawn(async move { (a.send(10).await, Instant::now()) });
    let in_b = tokio::spawn(async move { (b.send(11).await, Instant::now()) });
    wait_status(&probe.client, Duration::from_secs(20), "both busy", |s| {
        s["transcoders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["load"] == 1)
    })
    .await;
    let killed_at = Instant::now();
    first.kill();
    let answers = [in_a.await.unwrap(), in_b.await.unwrap()];
    let failed: Vec<(String, Instant)> = answers
        .iter()
        .filter_map(|(outcome, at)| match outcome {
            Ok(reply) => reply.renditions().err().map(|e| (e.to_string(), *at)),
            Err(e) => Some((e.to_string(), *at)),
        })
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly the in-flight segment of the killed transcoder fails: {failed:?}"
    );
    assert!(
        failed[0].0.contains("remote transcoder 1 disconnected"),
        "{}",
        failed[0].0
    );
    // The loss is reported as soon as the stream drops, far inside the 120 s task timeout.
    let reported_after = failed[0].1.duration_since(killed_at);
    assert!(
        reported_after < Duration::from_secs(5),
        "{reported_after:?}"
    );

    let s = wait_status(&probe.client, Duration::from_secs(20), "detach", |s| {
        s["transcoders"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(s["transcoders"][0]["id"], 2);
    for seq in 20..23 {
        probe.send(seq).await.unwrap().renditions().unwrap();
    }
    let s = status(&probe.client).await;
    assert_eq!(s["transcoders"][0]["completed"], 7);
    assert!(second.completed() >= 6);
    second.kill();
    orchestrator.shutdown().await;
}
