//! The Trickle server, publisher and subscriber against each other over real sockets: relay
//! while publishing, seq -1 / -2, retention, the end of a channel, and the server's limits.

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use trickle::{Publisher, ServerLimits, Subscriber, TrickleError, TrickleServer};

const DEADLINE: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(5);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Segment `seq`'s `part`-th chunk: recognisable content so a mix-up shows.
fn chunk(seq: u64, part: usize) -> Bytes {
    Bytes::from(vec![
        (seq as u8).wrapping_mul(31).wrapping_add(part as u8);
        1000 + part
    ])
}

fn whole(seq: u64, parts: usize) -> Vec<u8> {
    (0..parts)
        .flat_map(|part| chunk(seq, part).to_vec())
        .collect()
}

async fn publish(publisher: &mut Publisher, seq: u64, parts: usize) {
    let mut writer = publisher.next_segment().await.unwrap();
    assert_eq!(writer.seq(), seq);
    for part in 0..parts {
        writer.write(chunk(seq, part)).await.unwrap();
    }
    writer.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_reads_chunks_while_they_are_published() {
    timeout(DEADLINE, async {
        let server = TrickleServer::start(local(), ServerLimits::default())
            .await
            .unwrap();
        let url = server.channel_url("live");
        // The subscriber tells the publisher each time it has a segment's first chunk; the
        // publisher only then writes the rest, so the relay must happen mid-publish.
        let (got_first, mut first_seen) = mpsc::channel::<u64>(1);
        let reader = tokio::spawn({
            let url = url.clone();
            async move {
                let mut subscriber = Subscriber::new(&url, client(), 0);
                let mut segments = Vec::new();
                for expected in 0..3u64 {
                    let mut segment = subscriber.next_segment(WAIT).await.unwrap().unwrap();
                    assert_eq!(segment.seq(), expected);
                    let mut data = segment.chunk().await.unwrap().unwrap().to_vec();
                    got_first.send(expected).await.unwrap();
                    while let Some(more) = segment.chunk().await.unwrap() {
                        data.extend_from_slice(&more);
                    }
                    segments.push(data);
                }
                segments
            }
        });
        let mut publisher = Publisher::new(&url, client());
        for seq in 0..3u64 {
            let mut writer = publisher.next_segment().await.unwrap();
            writer.write(chunk(seq, 0)).await.unwrap();
            assert_eq!(first_seen.recv().await, Some(seq));
            for part in 1..4 {
                writer.write(chunk(seq, part)).await.unwrap();
            }
            writer.finish().await.unwrap();
        }
        let segments = reader.await.unwrap();
        for (seq, data) in segments.iter().enumerate() {
            assert_eq!(data, &whole(seq as u64, 4), "segment {seq}");
        }
        publisher.close().await.unwrap();
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_seqs_follow_the_write_head() {
    timeout(DEADLINE, async {
        let server = TrickleServer::start(local(), ServerLimits::default())
            .await
            .unwrap();
        let url = server.channel_url("head");
        let mut publisher = Publisher::new(&url, client());
        publish(&mut publisher, 0, 2).await;
        publish(&mut publisher, 1, 2).await;

        // -2: the segment written last, at once.
        let mut current = Subscriber::new(&url, client(), -2);
        let segment = current.next_segment(WAIT).await.unwrap().unwrap();
        assert_eq!(segment.seq(), 1);
        assert_eq!(segment.read_all(1 << 20).await.unwrap(), whole(1, 2));

        // -1: the next one, whichever the head is when the GET lands; then it goes on in order.
        let next = tokio::spawn({
            let url = url.clone();
            async move {
                let mut subscriber = Subscriber::new(&url, client(), -1);
                let first = subscriber.next_segment(WAIT).await.unwrap().unwrap();
                let seq = first.seq();
                let data = first.read_all(1 << 20).await.unwrap();
                let second = subscriber.next_segment(WAIT).await.unwrap().unwrap();
                (
                    seq,
                    data,
                    second.seq(),
                    second.read_all(1 << 20).await.unwrap(),
                )
            }
        });
        let mut published = 2u64;
        while !next.is_finished() {
            publish(&mut publisher, published, 2).await;
            published += 1;
            // Unbounded on purpose: the server keeps five segments, and DEADLINE bounds time.
            tokio::task::yield_now().await;
        }
        let (seq, data, second_seq, second) = next.await.unwrap();
        assert!(seq >= 2, "seq -1 served the old segment {seq}");
        assert_eq!(data, whole(seq, 2));
        assert_eq!(second_seq, seq + 1);
        assert_eq!(second, whole(seq + 1, 2));
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_subscriber_gets_retained_segments_and_470_for_older() {
    timeout(DEADLINE, async {
        let server = TrickleServer::start(local(), ServerLimits::default())
            .await
            .unwrap();
        let url = server.channel_url("kept");
        let mut publisher = Publisher::new(&url, client());
        for seq in 0..8 {
            publish(&mut publisher, seq, 3).await;
        }
        // Five kept: 3..=7.
        let mut late = Subscriber::new(&url, client(), 3);
        for seq in 3..8u64 {
            let segment = late.next_segment(WAIT).await.unwrap().unwrap();
            assert_eq!(segment.seq(), seq);
            assert_eq!(segment.read_all(1 << 20).await.unwrap(), whole(seq, 3));
        }
        let old = client().get(format!("{url}/1")).send().await.unwrap();
        assert_eq!(old.status().as_u16(), 470);
        assert_eq!(old.headers()["Lp-Trickle-Latest"], "8");
        let unknown = client()
            .get(server.channel_url("nobody") + "/0")
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status().as_u16(), 404);
        // A subscriber that fell behind skips to the live edge, as ai-runner's does.
        let mut behind = Subscriber::new(&url, client(), 0);
        let waiting = tokio::spawn(async move {
            let segment = behind.next_segment(WAIT).await.unwrap().unwrap();
            segment.seq()
        });
        let mut seq = 8;
        while !waiting.is_finished() {
            publish(&mut publisher, seq, 1).await;
            seq += 1;
            tokio::task::yield_now().await;
        }
        assert!(waiting.await.unwrap() >= 8);
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ends_the_channel_for_waiting_and_late_subscribers() {
    timeout(DEADLINE, async {
        let server = TrickleServer::start(local(), ServerLimits::default())
            .await
            .unwrap();
        let url = server.channel_url("ending");
        let mut publisher = Publisher::new(&url, client());
        publish(&mut publisher, 0, 2).await;
        let mut subscriber = Subscriber::new(&url, client(), 0);
        let first = subscriber.next_segment(WAIT).await.unwrap().unwrap();
        assert_eq!(first.read_all(1 << 20).await.unwrap(), whole(0, 2));
        // Waits on seq 1 (or arrives after the DELETE): either way it sees the end.
        let waiting = tokio::spawn(async move {
            let next = subscriber.next_segment(WAIT).await;
            (next.map(|segment| segment.map(|s| s.seq())), subscriber)
        });
        publisher.close().await.unwrap();
        let (next, mut subscriber) = waiting.await.unwrap();
        assert_eq!(next.unwrap(), None);
        assert!(subscriber.next_segment(WAIT).await.unwrap().is_none());
        let mut late = Subscriber::new(&url, client(), -1);
        assert!(late.next_segment(WAIT).await.unwrap().is_none());
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_segment_is_refused_and_others_still_served() {
    timeout(DEADLINE, async {
        let limits = ServerLimits {
            max_segment_bytes: 64 * 1024,
            ..ServerLimits::default()
        };
        let server = TrickleServer::start(local(), limits).await.unwrap();
        let url = server.channel_url("big");
        let mut publisher = Publisher::new(&url, client());
        let mut writer = publisher.next_segment().await.unwrap();
        let mut refused = None;
        for _ in 0..64 {
            if let Err(err) = writer.write(Bytes::from(vec![7u8; 16 * 1024])).await {
                refused = Some(err);
                break;
            }
        }
        let refused = match refused {
            Some(err) => err,
            None => writer.finish().await.unwrap_err(),
        };
        assert!(
            matches!(refused, TrickleError::TooLarge { limit: 65536 }),
            "{refused:?}"
        );
        // The next segment of the same channel, and another channel, still work.
        publish(&mut publisher, 1, 3).await;
        let mut subscriber = Subscriber::new(&url, client(), 1);
        let segment = subscriber.next_segment(WAIT).await.unwrap().unwrap();
        assert_eq!(segment.read_all(1 << 20).await.unwrap(), whole(1, 3));
        let other = server.channel_url("small");
        let mut small = Publisher::new(&other, client());
        publish(&mut small, 0, 2).await;
        let mut reader = Subscriber::new(&other, client(), 0);
        let segment = reader.next_segment(WAIT).await.unwrap().unwrap();
        assert_eq!(segment.read_all(1 << 20).await.unwrap(), whole(0, 2));
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_publish_and_subscribe_are_cut() {
    timeout(DEADLINE, async {
        let idle = Duration::from_millis(300);
        let limits = ServerLimits {
            idle_timeout: idle,
            ..ServerLimits::default()
        };
        let server = TrickleServer::start(local(), limits).await.unwrap();
        let url = server.channel_url("stalled");
        let mut publisher = Publisher::new(&url, client());
        publish(&mut publisher, 0, 1).await;
        // A subscriber preconnected to the next seq, which nobody publishes, is answered 408.
        let asked = Instant::now();
        let waited = client().get(format!("{url}/1")).send().await.unwrap();
        assert_eq!(waited.status().as_u16(), 408);
        assert!(asked.elapsed() >= idle);
        // Our subscriber asks again until its own wait runs out.
        let mut subscriber = Subscriber::new(&url, client(), 1);
        let waited = subscriber.next_segment(Duration::from_millis(700)).await;
        assert!(
            matches!(waited, Err(TrickleError::Timeout)),
            "{:?}",
            waited.map(|s| s.map(|s| s.seq()))
        );
        // A publisher that opens segment 1 and never writes is cut.
        let opened = Instant::now();
        let mut writer = publisher.next_segment().await.unwrap();
        assert_eq!(writer.seq(), 1);
        let answer = writer.server_answer().await;
        assert!(
            matches!(answer, Err(TrickleError::Http(408, _))),
            "{answer:?}"
        );
        assert!(opened.elapsed() >= idle);
        server.stop().await;
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_count_is_capped() {
    timeout(DEADLINE, async {
        let limits = ServerLimits {
            max_channels: 2,
            ..ServerLimits::default()
        };
        let server = TrickleServer::start(local(), limits).await.unwrap();
        for name in ["a", "b"] {
            let mut publisher = Publisher::new(&server.channel_url(name), client());
            publish(&mut publisher, 0, 1).await;
        }
        let mut third = Publisher::new(&server.channel_url("c"), client());
        let writer = third.next_segment().await.unwrap();
        let refused = writer.finish().await;
        assert!(
            matches!(refused, Err(TrickleError::Http(503, _))),
            "{refused:?}"
        );
        server.stop().await;
    })
    .await
    .expect("test deadline");
}
