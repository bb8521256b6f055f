//! Publisher cost: CPU per stream-second of our RTMP publishers against one `ffmpeg -re -c copy
//! -f flv` process per stream, both publishing the same ~1 Mbps stamped clip into the same
//! nginx-rtmp (relay-only application, so nginx's own work stays small).
//!
//! Ours run on one current-thread runtime in this process and are measured with
//! `getrusage(RUSAGE_SELF)`; the ffmpeg processes are children, measured with
//! `getrusage(RUSAGE_CHILDREN)` after they are reaped (nginx, also a child, is reaped only at
//! the very end). Environment: `LPT_BENCH_OURS` (default 200 streams), `LPT_BENCH_FFMPEG`
//! (default 10), `LPT_BENCH_SECS` (default 20), `LPT_BENCH_SEND_AHEAD_MS` (publisher batching
//! window, default 250 like `PublishOptions`).
//!
//! Goal: ours cost at most 1/50 of ffmpeg's CPU per stream-second. `cargo test` runs it as a
//! check (40 of ours, 2 ffmpeg, 5 s) failing above the goal plus a 50 % noise margin (see
//! `testkit::bench`).

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use probes::{PublishOptions, RtmpPublisher, RtmpTarget};
use testkit::bench::{Better, Goal, Mode, env_or, judge};

/// Ours ÷ ffmpeg in CPU per stream-second.
const GOAL: f64 = 1.0 / 50.0;

/// (user + system, system) CPU seconds.
fn cpu(who: i32) -> (f64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(u.ru_utime) + t(u.ru_stime), t(u.ru_stime))
}

fn cpu_secs(who: i32) -> f64 {
    cpu(who).0
}

fn main() {
    let mode = Mode::from_args();
    let ours: u32 = env_or("LPT_BENCH_OURS", mode.pick(200, 40));
    let theirs: u32 = env_or("LPT_BENCH_FFMPEG", mode.pick(10, 2));
    let secs: u64 = env_or("LPT_BENCH_SECS", mode.pick(20, 5));
    let (encoded, source) = support::encoded_source();
    println!(
        "source: {}x{} {} fps, {:.0} kbps, clip {:.1} s",
        source.format.width,
        source.format.height,
        source.format.fps_num,
        source.bitrate_bps() / 1000.0,
        source.loop_ms / 1000.0
    );
    let nginx = testkit::nginx::Nginx::start();

    // Ours.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cpu0 = cpu_secs(libc::RUSAGE_SELF);
    let sys0 = cpu(libc::RUSAGE_SELF).1;
    let wall0 = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..ours {
            let target = RtmpTarget::parse(&nginx.bench_rtmp_url(&format!("ours{i}"))).unwrap();
            let publisher = RtmpPublisher::new(
                target,
                source.clone(),
                PublishOptions {
                    duration: Duration::from_secs(secs),
                    start_frame: source.start_frame_for_stream(i),
                    progress_interval: Duration::from_secs(3600),
                    send_ahead: Duration::from_millis(env_or("LPT_BENCH_SEND_AHEAD_MS", 250)),
                    ..Default::default()
                },
            );
            tasks.push(tokio::spawn(
                async move { publisher.run(&mut |_| {}).await },
            ));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let ours_wall = wall0.elapsed().as_secs_f64();
    let ours_cpu = cpu_secs(libc::RUSAGE_SELF) - cpu0;
    let ours_sys = cpu(libc::RUSAGE_SELF).1 - sys0;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let frames: u64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|s| s.frames_sent)
        .sum();
    let bytes: u64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|s| s.bytes_sent)
        .sum();
    let max_lag = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|s| s.max_lag_ms)
        .fold(0.0, f64::max);
    assert_eq!(failed, 0, "{:?}", results.iter().find(|r| r.is_err()));
    let ours_per = ours_cpu * 1000.0 / (ours as f64 * secs as f64);
    println!(
        "ours:   {ours} streams x {secs} s in {ours_wall:.1} s wall, {:.0} Mbps total, {frames} frames, max lag {max_lag:.0} ms",
        bytes as f64 * 8.0 / secs as f64 / 1e6
    );
    println!(
        "ours:   {ours_cpu:.2} CPU-s ({ours_sys:.2} s in the kernel) = {ours_per:.3} CPU-ms per stream-second"
    );

    // ffmpeg, one process per stream.
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("clip.ts");
    let flv = dir.path().join("clip.flv");
    let mut data = Vec::new();
    for s in encoded.ts_segments(2.0).unwrap() {
        data.extend_from_slice(&s.data);
    }
    std::fs::write(&ts, data).unwrap();
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&ts)
        .args(["-c", "copy"])
        .arg(&flv)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg could not remux the clip");
    let (c0, csys0) = cpu(libc::RUSAGE_CHILDREN);
    let wall0 = Instant::now();
    let mut children: Vec<_> = (0..theirs)
        .map(|i| {
            std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
                .arg(&flv)
                .args(["-t", &secs.to_string(), "-c", "copy", "-f", "flv"])
                .arg(nginx.bench_rtmp_url(&format!("ffmpeg{i}")))
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success(), "an ffmpeg publisher failed");
    }
    let their_wall = wall0.elapsed().as_secs_f64();
    let (c1, csys1) = cpu(libc::RUSAGE_CHILDREN);
    let their_cpu = c1 - c0;
    let their_sys = csys1 - csys0;
    let their_per = their_cpu * 1000.0 / (theirs as f64 * secs as f64);
    println!("ffmpeg: {theirs} processes x {secs} s in {their_wall:.1} s wall");
    println!(
        "ffmpeg: {their_cpu:.2} CPU-s ({their_sys:.2} s in the kernel) = {their_per:.3} CPU-ms per stream-second"
    );
    println!(
        "one core sustains ~{:.0} of our publishers at this bit rate",
        1000.0 / ours_per
    );
    drop(nginx);
    judge(
        mode,
        &[Goal {
            what: "RTMP publishing, CPU-ms per stream-second".into(),
            ours: ours_per,
            peer: their_per,
            peer_name: "ffmpeg -re -c copy".into(),
            better: Better::Lower,
            goal: GOAL,
            margin: 0.5,
        }],
    );
}
