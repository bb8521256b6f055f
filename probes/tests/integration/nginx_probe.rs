//! The whole probe against nginx-rtmp: our publisher in, our puller out, every check passing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use probes::{StreamProbe, StreamProbeConfig, http_client};
use testkit::nginx::Nginx;

use crate::support::{Recorder, encoded_source, runtime};

#[test]
fn stream_probe_round_trips_through_nginx_with_every_check_passing() {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let key = "probe-e2e";
    let mut config = StreamProbeConfig::new(
        key,
        &nginx.rtmp_url(key),
        &nginx.hls_url(key),
        Duration::from_secs(10),
    );
    // Stream index 1 starts 7 GOPs into the clip: its first frame is not frame 0.
    config.publish.start_frame = source.start_frame_for_stream(1);
    config.drain = Duration::from_secs(5);
    config
        .checks
        .resolutions
        .insert(key.to_string(), (640, 360));
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let rt = runtime();
    let started = std::time::Instant::now();
    let report = rt.block_on(probe.run(recorder.clone()));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    assert_eq!(report.publish_error, None, "{}", nginx.error_log());
    assert_eq!(report.pull_error, None);
    assert_eq!(report.renditions, vec![key.to_string()]);
    let segments = recorder.segments.lock().unwrap().clone();
    let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seqs.len(),
        "a segment was downloaded twice: {seqs:?}"
    );
    assert!(
        segments.len() >= 4,
        "only {} segments: {seqs:?}",
        segments.len()
    );
    let (lo, hi) = (*unique.first().unwrap(), *unique.last().unwrap());
    assert_eq!(hi - lo + 1, seqs.len() as u64, "gap in {seqs:?}");
    assert!(segments.iter().all(|s| s.success), "{segments:#?}");
    assert_eq!(report.segments_failed, 0);

    let failed = recorder.failed_checks();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    for name in [
        "download",
        "content_type",
        "decode",
        "codec",
        "resolution",
        "duration",
        "stamps",
        "continuity",
        "playlist",
    ] {
        assert!(
            !recorder.checks_named(name).is_empty(),
            "check {name} never ran"
        );
    }

    let first = segments.iter().find(|s| s.seq == lo).unwrap();
    let media = first.media.as_ref().unwrap();
    assert_eq!(
        (
            media.decoded.width,
            media.decoded.height,
            media.decoded.codec.as_str()
        ),
        (640, 360, "h264")
    );
    assert_eq!(media.stamp_stream_id, Some(source.format.stream_id));
    assert_eq!(
        media.first_stamp_frame,
        Some(source.start_frame_for_stream(1))
    );
    for s in &segments {
        let g = s.latency.glass_to_glass_ms.expect("glass-to-glass latency");
        let l = s.latency.segment_latency_ms.expect("segment latency");
        assert!(
            g > 0.0 && g < 15_000.0,
            "glass to glass {g} ms for seq {}",
            s.seq
        );
        assert!(
            l > 0.0 && l < 15_000.0,
            "segment latency {l} ms for seq {}",
            s.seq
        );
    }
    let publishes = recorder.publishes.lock().unwrap();
    let last = publishes.last().unwrap();
    assert_eq!(last.phase, probes::PublishPhase::Finished);
    assert!(last.frames_sent >= 299, "{last:?}");
    assert_eq!(report.glass_to_glass_ms.len(), segments.len());
    eprintln!(
        "segments {:?} glass-to-glass {:?} segment latency {:?}",
        seqs, report.glass_to_glass_ms, report.segment_latency_ms
    );
}
