//! Our publisher into nginx-rtmp; HLS read back.

use std::time::Duration;

use probes::{PublishOptions, PublishPhase, RtmpPublisher, RtmpTarget};
use testkit::nginx::Nginx;

use crate::support::{encoded_source, runtime};

#[test]
fn publisher_feeds_nginx_which_cuts_hls() {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let key = "pub-basic";
    let target = RtmpTarget::parse(&nginx.rtmp_url(key)).unwrap();
    let publisher = RtmpPublisher::new(
        target,
        source.clone(),
        PublishOptions {
            duration: Duration::from_secs(5),
            ..Default::default()
        },
    );
    let log = publisher.send_log();
    let mut phases = Vec::new();
    let summary = runtime()
        .block_on(publisher.run(&mut |o| phases.push(o.phase)))
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    assert_eq!(phases.first(), Some(&PublishPhase::Started));
    assert_eq!(phases.last(), Some(&PublishPhase::Finished));
    assert!(summary.frames_sent >= 148, "{summary:?}");
    assert_eq!(log.frames_sent(), summary.frames_sent);
    assert!(summary.max_lag_ms < 500.0, "{summary:?}");
    let playlist = std::fs::read_to_string(nginx.hls_dir().join(format!("{key}.m3u8"))).unwrap();
    assert!(
        playlist.contains("#EXTINF"),
        "{playlist}\n{}",
        nginx.error_log()
    );
}
