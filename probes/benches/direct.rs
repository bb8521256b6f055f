//! Direct-test scaling: one process tests N orchestrators (default 20) at once, each at real
//! time, and reports how far its sends fell behind the real-time schedule and the CPU it used.
//!
//! The orchestrators are pass-through (`TranscodeMode::PassThrough`: renditions are copies of
//! the source, no FFmpeg) and run in this process on their own 2-thread runtime, so their cost
//! does not count as the tester's: the tester runs on a current-thread runtime whose thread and
//! blocking-pool threads (rendition decoding) are measured with `getrusage(RUSAGE_THREAD)`.
//!
//! The peer, right after on the same orchestrators and segments, at the same real-time pace: a
//! plain broadcaster per orchestrator (discovery, a signed segment header, the upload, the
//! renditions downloaded in parallel) with none of the tester's checks or decoding, measured the
//! same way. Goal: the tester's CPU per segment at most 40 × the plain broadcaster's (what the
//! checks and the decoding of every rendition cost on top of the exchange itself). Measured on
//! a shared 2-core machine: 34.4 × in two full runs (20 × 20 s: 19.2-19.8 ms against
//! 0.56-0.58 ms per segment); 22.2-26.7 × in checks, where each plain broadcaster's TLS
//! handshake and discovery weigh on only 4 segments. `cargo test` runs it as a check (4
//! orchestrators × 8 s, about 13 s for both runs) failing above the goal plus a 25 % noise
//! margin (see `testkit::bench`): it fails when the tester's cost per segment grows past about
//! 2 × today's.
//! Environment: `LPT_BENCH_ORCHESTRATORS` (default 20, 4 in a check), `LPT_BENCH_SECS` (media
//! seconds per test, default 20, 8 in a check).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use node_orchestrator::{OrchestratorConfig, TranscodeMode};
use probes::direct::{
    DirectSource, DirectTestConfig, NullDirectObserver, run_direct_tests, wire_ladder,
};
use protocol::client::{OrchestratorClient, SegmentRequest, segment_data};
use protocol::net::VideoProfile;
use protocol::sig::NodeKey;
use reference_transcoder::SourceConfig;
use testkit::bench::{Better, Goal, Mode, env_or, judge};

/// The tester's CPU per segment ÷ the plain broadcaster's.
const GOAL: f64 = 40.0;

fn rusage_secs(who: i32) -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Runs `work` on a current-thread runtime of its own on this thread; returns its output, the
/// CPU seconds of this thread and of the runtime's blocking-pool threads, and the wall seconds.
fn on_measured_runtime<T, Fut: Future<Output = T>>(work: impl FnOnce() -> Fut) -> (T, f64, f64) {
    // CPU microseconds of the runtime's threads that have stopped.
    let stopped_us = Arc::new(AtomicU64::new(0));
    let stopped = stopped_us.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_stop(move || {
            let us = (rusage_secs(libc::RUSAGE_THREAD) * 1e6) as u64;
            stopped.fetch_add(us, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let main0 = rusage_secs(libc::RUSAGE_THREAD);
    let wall = Instant::now();
    let out = rt.block_on(work());
    let wall = wall.elapsed().as_secs_f64();
    let main_cpu = rusage_secs(libc::RUSAGE_THREAD) - main0;
    // Dropping the runtime joins its blocking threads, which report their CPU as they stop.
    drop(rt);
    let cpu = main_cpu + stopped_us.load(Ordering::Relaxed) as f64 / 1e6;
    (out, cpu, wall)
}

/// A broadcaster with nothing but the exchange: discovery, then every segment of `media` at
/// real time, signed, uploaded, and its renditions downloaded in parallel and dropped unread.
/// Returns the segments sent.
async fn plain_broadcaster(
    uri: String,
    source: Arc<DirectSource>,
    ladder: Vec<VideoProfile>,
    media: Duration,
    stream_key: String,
) -> usize {
    let client = OrchestratorClient::connect(&uri).unwrap();
    let key = NodeKey::OffChain;
    let mut info = client.get_orchestrator(&key, None).await.unwrap();
    let start = tokio::time::Instant::now();
    let (mut at, mut seq) = (Duration::ZERO, 0);
    while at < media {
        let segment = &source.segments[seq % source.segments.len()];
        tokio::time::sleep_until(start + at).await;
        let duration_ms = segment.duration.as_millis() as u64;
        let seg = segment_data(
            &key,
            &info,
            stream_key.as_bytes(),
            seq as i64,
            &segment.data,
            duration_ms as i32,
            &ladder,
        )
        .unwrap();
        let reply = client
            .submit_segment(SegmentRequest::new(
                &seg,
                None,
                segment.data.clone(),
                duration_ms,
            ))
            .await
            .unwrap();
        if let Some(fresh) = reply.info() {
            info = fresh.clone();
        }
        let renditions = reply.renditions().unwrap();
        assert_eq!(renditions.len(), ladder.len());
        for data in
            futures_util::future::join_all(renditions.iter().map(|r| client.download(&r.url))).await
        {
            assert!(!data.unwrap().is_empty(), "a rendition has bytes");
        }
        at += segment.duration;
        seq += 1;
    }
    seq
}

fn main() {
    let mode = Mode::from_args();
    let count: usize = env_or("LPT_BENCH_ORCHESTRATORS", mode.pick(20, 4));
    let secs: u64 = env_or("LPT_BENCH_SECS", mode.pick(20, 8));
    let encoded = reference_transcoder::generate(&SourceConfig {
        width: 426,
        height: 240,
        duration_secs: 10.0,
        gop_secs: 2.0,
        stream_id: 0xbe,
        audio: false,
        ..SourceConfig::default()
    })
    .expect("synthetic source");
    let source = Arc::new(DirectSource::from_encoded(&encoded, 2.0).unwrap());
    let ladder =
        wire_ladder(&reference_transcoder::ladder::parse_ladder("P240p30fps16x9").unwrap());

    let nodes_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let orchestrators: Vec<_> = nodes_rt.block_on(async {
        let mut started = Vec::new();
        for _ in 0..count {
            let mut config = OrchestratorConfig::offchain();
            config.listen = "127.0.0.1:0".parse().unwrap();
            config.transcode.mode = TranscodeMode::PassThrough;
            started.push(node_orchestrator::start(config).await.unwrap());
        }
        started
    });
    let configs: Vec<DirectTestConfig> = orchestrators
        .iter()
        .enumerate()
        .map(|(i, o)| DirectTestConfig {
            duration: Some(Duration::from_secs(secs)),
            stream_key: format!("bench-{i}"),
            ..DirectTestConfig::new(o.service_uri(), ladder.clone())
        })
        .collect();

    let process0 = rusage_secs(libc::RUSAGE_SELF);
    let (results, tester_cpu, wall) = on_measured_runtime(|| {
        run_direct_tests(
            configs,
            source.clone(),
            Arc::new(NullDirectObserver),
            None,
            count,
        )
    });
    let process_cpu = rusage_secs(libc::RUSAGE_SELF) - process0;

    let mut lags = Vec::new();
    let (mut planned, mut ok) = (0, 0);
    let mut round_trips = Vec::new();
    for r in &results {
        let s = r.as_ref().expect("test runs");
        planned += s.segments_planned;
        ok += s.segments_ok;
        for seg in &s.segments {
            if seg.sent_unix_ms.is_some() {
                lags.push(seg.send_lag_ms);
            }
            if let Some(rt) = seg.round_trip_ms {
                round_trips.push(rt);
            }
        }
        for e in &s.errors {
            println!(
                "{}: {} x{} ({})",
                s.orchestrator_uri, e.error_code, e.count, e.message
            );
        }
    }
    lags.sort_by(f64::total_cmp);
    round_trips.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
        }
    };
    println!(
        "{count} orchestrators x {secs} s media, {planned} segments, {ok} ok, wall {wall:.1} s"
    );
    println!(
        "send lag behind real time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "round trip: p50 {:.1} ms, p99 {:.1} ms",
        pct(&round_trips, 0.5),
        pct(&round_trips, 0.99)
    );
    println!(
        "tester CPU {tester_cpu:.2} s ({:.1}% of one core over the run, {:.1} ms per segment); whole process incl. orchestrators {process_cpu:.2} s",
        tester_cpu / wall * 100.0,
        tester_cpu * 1000.0 / planned.max(1) as f64
    );
    assert_eq!(ok, planned, "every segment passes");

    let uris: Vec<String> = orchestrators
        .iter()
        .map(|o| o.service_uri().to_string())
        .collect();
    let (sent, plain_cpu, plain_wall) = on_measured_runtime(|| async {
        let tests = uris.into_iter().enumerate().map(|(i, uri)| {
            tokio::spawn(plain_broadcaster(
                uri,
                source.clone(),
                ladder.clone(),
                Duration::from_secs(secs),
                format!("plain-{i}"),
            ))
        });
        let mut sent = 0;
        for test in futures_util::future::join_all(tests).await {
            sent += test.unwrap();
        }
        sent
    });
    println!(
        "plain broadcasters (exchange only, no checks or decoding): {sent} segments, wall {plain_wall:.1} s, CPU {plain_cpu:.2} s ({:.1} ms per segment)",
        plain_cpu * 1000.0 / sent.max(1) as f64
    );
    nodes_rt.block_on(async {
        for o in orchestrators {
            o.shutdown().await;
        }
    });
    judge(
        mode,
        &[Goal {
            what: "direct testing, CPU-ms per segment".into(),
            ours: tester_cpu * 1000.0 / planned.max(1) as f64,
            peer: plain_cpu * 1000.0 / sent.max(1) as f64,
            peer_name: "a plain broadcaster".into(),
            better: Better::Lower,
            goal: GOAL,
            margin: 0.25,
        }],
    );
}
