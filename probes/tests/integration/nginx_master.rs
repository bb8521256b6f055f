//! A master playlist over two renditions (the Livepeer broadcaster's playback shape), served
//! by nginx over two streams our publishers feed from the same start frame.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    CheckOptions, HlsOptions, HlsPuller, PublishOptions, PullEvent, RtmpPublisher, RtmpTarget,
    SegmentChecker, decode_segment, http_client,
};
use testkit::nginx::Nginx;
use tokio::time::Instant;

use crate::support::{encoded_source, runtime};

#[test]
fn master_playlist_renditions_are_all_followed_with_resolution_and_drift_checked() {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    std::fs::write(
        nginx.static_dir().join("master.m3u8"),
        "#EXTM3U\n\
         #EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360\n../hls/ra.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360\n../hls/rb.m3u8\n",
    )
    .unwrap();
    let publisher = |key: &str| {
        RtmpPublisher::new(
            RtmpTarget::parse(&nginx.rtmp_url(key)).unwrap(),
            source.clone(),
            PublishOptions {
                duration: Duration::from_secs(8),
                ..Default::default()
            },
        )
    };
    let (a, b) = (publisher("ra"), publisher("rb"));
    let log = a.send_log();
    let events: Arc<Mutex<Vec<PullEvent>>> = Arc::default();
    let sink = events.clone();
    runtime().block_on(async {
        let puller = HlsPuller::new(
            http_client().unwrap(),
            &nginx.static_url("master.m3u8"),
            "master",
            HlsOptions::default(),
        )
        .unwrap();
        let pull = async {
            let deadline = Instant::now() + Duration::from_secs(20);
            tokio::select! {
                s = puller.run(deadline, Arc::new(move |e| sink.lock().unwrap().push(e))) => panic!("stopped early: {s:?}"),
                _ = tokio::time::sleep(Duration::from_secs(12)) => {}
            }
        };
        let (mut quiet_a, mut quiet_b) = (|_: &probes::PublishObservation| {}, |_: &probes::PublishObservation| {});
        let (ra, rb, ()) = tokio::join!(a.run(&mut quiet_a), b.run(&mut quiet_b), pull);
        ra.expect("publish ra");
        rb.expect("publish rb");
    });

    let checker = SegmentChecker::new("master", Some(log), CheckOptions::default());
    let mut names = Vec::new();
    let mut per_rendition = std::collections::BTreeMap::<String, Vec<u64>>::new();
    let mut drift = Vec::new();
    let mut resolution = Vec::new();
    for e in events.lock().unwrap().iter() {
        match e {
            PullEvent::Renditions(list) => {
                for r in list {
                    assert_eq!(r.resolution, Some((640, 360)));
                    checker.announce_resolution(&r.name, r.resolution.unwrap());
                    names.push((r.name.clone(), r.url.clone()));
                }
            }
            PullEvent::Segment(s) => {
                let decoded = decode_segment(s.body.as_ref().expect("body"));
                let checked = checker.check(s, Some(&decoded));
                let failed: Vec<_> = checked.checks.iter().filter(|c| !c.passed).collect();
                assert!(
                    failed.is_empty(),
                    "{} seq {}: {failed:#?}",
                    s.rendition,
                    s.seq
                );
                per_rendition
                    .entry(s.rendition.clone())
                    .or_default()
                    .push(s.seq);
                drift.extend(checked.verdict("drift").cloned());
                resolution.extend(checked.verdict("resolution").cloned());
            }
            _ => {}
        }
    }
    let base = format!("http://127.0.0.1:{}/hls/", nginx.http_port);
    assert_eq!(
        names,
        vec![
            ("ra".to_string(), format!("{base}ra.m3u8")),
            ("rb".to_string(), format!("{base}rb.m3u8"))
        ]
    );
    assert_eq!(per_rendition.len(), 2, "{per_rendition:?}");
    assert!(
        per_rendition.values().all(|seqs| seqs.len() >= 3),
        "{per_rendition:?}"
    );
    assert!(drift.len() >= 3, "drift judged only {} times", drift.len());
    assert!(
        drift.iter().all(|d| d.reason.contains("first frame")),
        "{drift:#?}"
    );
    assert_eq!(
        resolution.len(),
        per_rendition.values().map(Vec::len).sum::<usize>()
    );
}
