//! Remote transcoders: a wrong secret is refused, two attached transcoders share the work, and
//! they fetch sources where `source_uri` says.
//! A transcoder killed mid-segment is `transcoder_failover`'s.

use std::time::Duration;

use node_orchestrator::config::TranscodeMode;
use node_orchestrator::{TranscoderConfig, start_transcoder};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transcoders_share_work_and_a_wrong_secret_is_refused() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some("shared-secret".into());
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

    let transcoder = TranscoderConfig::new(&uri, "shared-secret");
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

    first.kill();
    second.kill();
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoders_fetch_sources_from_the_source_uri_when_one_is_set() {
    // Where the transcoder is sent for the source: a listener that counts who comes and answers
    // nothing, so the segment fails and the count says where the transcoder went.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source_uri = format!("https://{}", elsewhere.local_addr().unwrap());
    let came = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let came = came.clone();
        async move {
            while let Ok((connection, _)) = elsewhere.accept().await {
                came.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(connection);
            }
        }
    });
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some("shared-secret".into());
    config.source_uri = Some(source_uri);
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let mut probe = Session::offchain(&uri).await;
    probe.ladder.truncate(1);
    let transcoder = start_transcoder(TranscoderConfig::new(&uri, "shared-secret"));
    wait_status(
        &probe.client,
        Duration::from_secs(20),
        "the transcoder",
        |s| s["transcoders"].as_array().unwrap().len() == 1,
    )
    .await;

    let failed = match probe.send(0).await {
        Ok(reply) => reply.renditions().is_err(),
        Err(_) => true,
    };
    assert!(failed, "no source, no renditions");
    assert!(came.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    transcoder.kill();
    orchestrator.shutdown().await;
}
