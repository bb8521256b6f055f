//! Direct-test scaling: one process tests N orchestrators (default 20) at once, each at real
//! time, and reports how far its sends fell behind the real-time schedule and the CPU it used.
//!
//! The orchestrators are pass-through (`TranscodeMode::PassThrough`: renditions are copies of
//! the source, no FFmpeg) and run in this process on their own 2-thread runtime, so their cost
//! does not count as the tester's: the tester runs on a current-thread runtime whose thread and
//! blocking-pool threads (rendition decoding) are measured with `getrusage(RUSAGE_THREAD)`.
//! Environment: `LPT_BENCH_ORCHESTRATORS` (default 20), `LPT_BENCH_SECS` (media seconds per
//! test, default 20).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use node_orchestrator::{OrchestratorConfig, TranscodeMode};
use probes::direct::{
    DirectSource, DirectTestConfig, NullDirectObserver, run_direct_tests, wire_ladder,
};
use reference_transcoder::SourceConfig;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rusage_secs(who: i32) -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU microseconds of tester threads that have stopped.
static STOPPED_THREADS_CPU_US: AtomicU64 = AtomicU64::new(0);

fn main() {
    let count = env("LPT_BENCH_ORCHESTRATORS", 20) as usize;
    let secs = env("LPT_BENCH_SECS", 20);
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

    let tester_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_stop(|| {
            let us = (rusage_secs(libc::RUSAGE_THREAD) * 1e6) as u64;
            STOPPED_THREADS_CPU_US.fetch_add(us, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let process0 = rusage_secs(libc::RUSAGE_SELF);
    let main0 = rusage_secs(libc::RUSAGE_THREAD);
    let wall = Instant::now();
    let results = tester_rt.block_on(run_direct_tests(
        configs,
        source,
        Arc::new(NullDirectObserver),
        None,
        count,
    ));
    let wall = wall.elapsed().as_secs_f64();
    let main_cpu = rusage_secs(libc::RUSAGE_THREAD) - main0;
    drop(tester_rt);
    let tester_cpu = main_cpu + STOPPED_THREADS_CPU_US.load(Ordering::Relaxed) as f64 / 1e6;
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
    nodes_rt.block_on(async {
        for o in orchestrators {
            o.shutdown().await;
        }
    });
}
