//! Our publisher into nginx-rtmp through a TCP proxy that cuts every connection (a reset) and
//! refuses new ones for a while, as a crashed ingest does: the publisher reconnects with the same
//! stream key and publishes on from where the wall clock is, every frame sent when its media time
//! falls due; a stream whose ingest never comes back fails at its end, not before.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use probes::{
    PublishError, PublishObservation, PublishOptions, PublishPhase, RtmpPublisher, RtmpTarget,
};
use testkit::nginx::Nginx;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::support::{encoded_source, runtime};

/// A proxy to `upstream` on a port of its own; each message on `cuts` resets every connection
/// and closes the port (connections refused) for the duration given, or for good with `None`.
async fn cutting_proxy(upstream: SocketAddr) -> (u16, mpsc::UnboundedSender<Option<Duration>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut cuts) = mpsc::unbounded_channel::<Option<Duration>>();
    tokio::spawn(async move {
        let mut listener = Some(listener);
        let mut told = true;
        loop {
            let open = listener.take().unwrap();
            let mut conns = JoinSet::new();
            let down = loop {
                tokio::select! {
                    accepted = open.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        conns.spawn(async move {
                            let Ok(server) = TcpStream::connect(upstream).await else { return };
                            // Dropped with linger 0 when cut: a reset, as a peer that died.
                            let _ = client.set_zero_linger();
                            let _ = server.set_zero_linger();
                            let (mut client, mut server) = (client, server);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        });
                    }
                    cut = cuts.recv(), if told => match cut {
                        Some(down) => break down,
                        // Nobody can cut any more: keep forwarding.
                        None => told = false,
                    },
                }
            };
            drop(open);
            conns.shutdown().await;
            let Some(down) = down else {
                std::future::pending::<()>().await;
                return;
            };
            tokio::time::sleep(down).await;
            listener = Some(
                TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("the proxy's port again"),
            );
        }
    });
    (port, tx)
}

/// Publishes `secs` of the shared source to `key` on nginx through a cutting proxy; the proxy
/// cuts once media reaches `cut_at_ms`, for `down` (`None`: for good).
fn publish_through_cut(
    nginx: &Nginx,
    key: &str,
    secs: u64,
    cut_at_ms: f64,
    down: Option<Duration>,
) -> (
    Result<probes::PublishSummary, PublishError>,
    Vec<PublishObservation>,
    Arc<probes::SendLog>,
) {
    let (_, source) = encoded_source();
    let rt = runtime();
    rt.block_on(async {
        let upstream: SocketAddr = format!("127.0.0.1:{}", nginx.rtmp_port).parse().unwrap();
        let (port, cuts) = cutting_proxy(upstream).await;
        let publisher = RtmpPublisher::new(
            RtmpTarget::parse(&format!("rtmp://127.0.0.1:{port}/live/{key}")).unwrap(),
            source.clone(),
            PublishOptions {
                duration: Duration::from_secs(secs),
                progress_interval: Duration::from_millis(200),
                ..Default::default()
            },
        );
        let log = publisher.send_log();
        let seen: Arc<Mutex<Vec<PublishObservation>>> = Arc::default();
        let kept = seen.clone();
        let mut cut = Some(cuts);
        let result = publisher
            .run(&mut |o| {
                kept.lock().unwrap().push(o.clone());
                if o.media_ms >= cut_at_ms
                    && let Some(cuts) = cut.take()
                {
                    cuts.send(down).unwrap();
                }
            })
            .await;
        let seen = seen.lock().unwrap().clone();
        (result, seen, log)
    })
}

#[test]
fn a_publisher_whose_ingest_drops_reconnects_with_its_key_and_publishes_on_in_real_time() {
    let nginx = Nginx::start();
    let key = "reconnects";
    let down = Duration::from_secs(2);
    let started = Instant::now();
    let (result, seen, log) = publish_through_cut(&nginx, key, 10, 3000.0, Some(down));
    let took = started.elapsed();
    let summary = result.unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    let phases: Vec<PublishPhase> = seen
        .iter()
        .map(|o| o.phase)
        .filter(|p| *p != PublishPhase::Progress)
        .collect();
    assert_eq!(
        phases,
        [
            PublishPhase::Started,
            PublishPhase::Disconnected,
            PublishPhase::Reconnected,
            PublishPhase::Finished
        ]
    );
    let lost = seen
        .iter()
        .find(|o| o.phase == PublishPhase::Disconnected)
        .unwrap();
    assert!(lost.error.is_some(), "{lost:?}");
    let back = seen
        .iter()
        .find(|o| o.phase == PublishPhase::Reconnected)
        .unwrap();
    let outage = back.outage_ms.unwrap();
    // Refused for 2 s; attempts 0.25, 0.75, 1.75 and 3.75 s after the loss (the pause doubles
    // up to 2 s): back at the fourth, within a pause of the port reopening.
    assert!(
        (down.as_millis() as f64..down.as_millis() as f64 + 2500.0).contains(&outage),
        "{outage} ms"
    );
    assert_eq!((back.reconnects, summary.reconnects), (1, 1));
    assert_eq!(summary.disconnected_ms, outage);
    // The stream ran its whole length, no longer: the outage was not made up for later.
    assert!(took < Duration::from_secs(13), "{took:?}");
    assert!(summary.media_ms > 9_000.0, "{summary:?}");

    // Every frame went out when its media time fell due, before the cut and after it; the ones
    // due while disconnected (and up to the next key frame) were never sent.
    let (_, source) = encoded_source();
    let frame_ms = source.frame_ms();
    let t0 = summary.started_unix_ms;
    let positions = (10_000.0 / frame_ms) as u64;
    let sent: Vec<(u64, i64)> = (0..positions)
        .filter_map(|p| log.sent_at(p).map(|at| (p, at)))
        .collect();
    for &(p, at) in &sent {
        let due = t0 as f64 + p as f64 * frame_ms;
        let early_or_late = at as f64 - due;
        assert!(
            (-400.0..300.0).contains(&early_or_late),
            "frame {p} sent {early_or_late:.0} ms from its time"
        );
    }
    let skipped = positions - sent.len() as u64;
    let gop_frames = u64::from(source.format.gop_frames);
    let outage_frames = (outage / frame_ms) as u64;
    // Frames queued up to `send_ahead` before their time may have gone out just before the cut.
    let ahead_frames = (250.0 / frame_ms) as u64 + 2;
    assert!(
        (outage_frames - ahead_frames..=outage_frames + gop_frames + ahead_frames)
            .contains(&skipped),
        "{skipped} frames never sent for an outage of {outage} ms"
    );
    assert_eq!(log.frames_sent(), summary.frames_sent);

    // nginx took both publishes as one stream under the key and marked where it resumed.
    let playlist = std::fs::read_to_string(nginx.hls_dir().join(format!("{key}.m3u8"))).unwrap();
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY"),
        "{playlist}\n{}",
        nginx.error_log()
    );
    let after = playlist.split("#EXT-X-DISCONTINUITY").nth(1).unwrap();
    assert!(after.contains(".ts"), "{playlist}");
}

#[test]
fn a_publisher_whose_ingest_never_comes_back_fails_at_its_end_naming_the_attempts() {
    let nginx = Nginx::start();
    let started = Instant::now();
    let (result, seen, _) = publish_through_cut(&nginx, "gone", 6, 2000.0, None);
    let took = started.elapsed();
    let lost_at = seen
        .iter()
        .find(|o| o.phase == PublishPhase::Disconnected)
        .map(|o| o.at_unix_ms)
        .unwrap();
    let end = seen[0].started_unix_ms.unwrap() + 6000;
    let Err(PublishError::Lost {
        media_ms, attempts, ..
    }) = result
    else {
        panic!("{result:?}");
    };
    assert!((2000.0..3000.0).contains(&media_ms), "{media_ms}");
    // Attempts until the stream's end, about 4 s after the loss: one after each pause of 0.25,
    // 0.5, 1 and then 2 s that ended before it (0.25, 0.75, 1.75, 3.75 s, … after the loss).
    let schedule = [250, 750, 1750, 3750, 5750];
    let before_end = |margin: i64| {
        schedule
            .iter()
            .filter(|&&t| lost_at + t + margin < end)
            .count() as u32
    };
    assert!(
        (before_end(100)..=before_end(-100)).contains(&attempts),
        "{attempts} attempts between {lost_at} and {end}"
    );
    assert!(attempts >= 3);
    assert!(
        (Duration::from_secs(6)..Duration::from_secs(8)).contains(&took),
        "{took:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(last.phase, PublishPhase::Failed);
    assert!(
        last.error
            .as_ref()
            .unwrap()
            .contains(&format!("{attempts} attempts")),
        "{last:?}"
    );
}
