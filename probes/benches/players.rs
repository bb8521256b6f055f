//! Browser players per core: what one hls.js player in headless Chromium costs, playing a live
//! 720p30 stream in real time, against ffmpeg decoding the same stream in the same run.
//!
//! An ffmpeg publisher sends 720p30 test video (x264, 2 s GOP) to nginx-rtmp, whose HLS both
//! sides read. `LPT_BENCH_TABS` players (default 8) play it through `probes::players` for
//! `LPT_BENCH_SECS` (default 30) after a 10 s warm-up; the CPU time of every Chromium process
//! (user + system, `/proc/<pid>/stat`) over the measured window, divided by tabs and seconds, is
//! a tab's cost, and its inverse is tabs per core. Each tab's decoded frames show it kept real
//! time. The peer then decodes the same live stream: `ffmpeg -i URL -f null -` for the same
//! seconds, its CPU read with `getrusage(RUSAGE_CHILDREN)`. Printed: CPU-ms per tab-second and
//! per ffmpeg stream-second, their ratio, and tabs per core.
//!
//! Decoding stays on: Chromium offers no supported switch that plays HLS through MSE without
//! decoding the video, so the "decoding off" figure the issue asks for is not measured.
//! `cargo bench` only (no `cargo test` check): a run takes a minute and a browser per tab-set.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use probes::players::{PlayerOptions, Players, StreamToPlay};
use probes::{PlayerEvent, PlayerObservation, ProbeObserver, http_client};
use testkit::bench::{Who, cpu_time, env_or};
use testkit::nginx::Nginx;

const FPS: u64 = 30;
const WARM_UP: Duration = Duration::from_secs(10);

/// Keeps each player's end, for its decoded-frame count.
#[derive(Default)]
struct Ends(Mutex<Vec<PlayerObservation>>);

impl ProbeObserver for Ends {
    fn segment(&self, _: &probes::SegmentObservation) {}
    fn check(&self, _: &probes::CheckObservation) {}
    fn stall(&self, _: &probes::StallObservation) {}
    fn publish_progress(&self, _: &probes::PublishObservation) {}
    fn player(&self, p: &PlayerObservation) {
        if matches!(
            p.event,
            PlayerEvent::Ended { .. } | PlayerEvent::Stall { .. }
        ) {
            self.0.lock().unwrap().push(p.clone());
        }
    }
}

/// User + system CPU seconds of `pids` so far (those still alive).
fn cpu_secs(pids: &BTreeSet<u32>) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command's closing parenthesis: utime and stime are 14 and 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks
}

fn main() {
    let tabs: u32 = env_or("LPT_BENCH_TABS", 8);
    let secs: u64 = env_or("LPT_BENCH_SECS", 30);
    let nginx = Nginx::start();
    let key = "players-bench";
    let total = WARM_UP.as_secs() + 2 * secs + 20;
    let mut publisher = testkit::publisher::command(
        "testsrc2=size=1280x720:rate=30",
        total,
        (2 * FPS) as u32,
        &nginx.rtmp_url(key),
    )
    .stdin(Stdio::null())
    .spawn()
    .expect("ffmpeg publishes");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nginx.playlist_exists() {
        assert!(
            Instant::now() < deadline,
            "no playlist: {}",
            nginx.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = nginx.hls_url(key);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ends = Arc::new(Ends::default());
    let (tab_ms, decoded_per_sec) = runtime.block_on(async {
        let players = Players::launch(PlayerOptions::default(), &[])
            .await
            .expect("the players start (run ci/setup)");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stream = StreamToPlay {
            stream_key: key.into(),
            playback_url: url.clone(),
            log: None,
            client: http_client().unwrap(),
        };
        let observer: Arc<dyn ProbeObserver> = ends.clone();
        let measure = async {
            tokio::time::sleep(WARM_UP).await;
            let processes = players.processes();
            let before = cpu_secs(&processes);
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let used = cpu_secs(&processes) - before;
            let elapsed = started.elapsed().as_secs_f64();
            stop.send_replace(true);
            used * 1000.0 / elapsed / f64::from(tabs)
        };
        let (tab_ms, ()) = tokio::join!(measure, players.play(stream, tabs, observer, stopped));
        let ends = ends.0.lock().unwrap();
        let decoded: Vec<f64> = ends
            .iter()
            .filter_map(|o| match &o.event {
                PlayerEvent::Ended {
                    decoded_frames: Some(d),
                    error: None,
                    ..
                } => Some(*d as f64 / (WARM_UP.as_secs() + secs) as f64),
                _ => None,
            })
            .collect();
        (tab_ms, decoded)
    });
    assert_eq!(
        decoded_per_sec.len(),
        tabs as usize,
        "every player plays to the end: {:#?}",
        ends.0.lock().unwrap()
    );
    let stalls = ends
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|o| matches!(o.event, PlayerEvent::Stall { .. }))
        .count();

    let children_before = cpu_time(Who::Children);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", &url])
        .args(["-t", &secs.to_string(), "-f", "null", "-"])
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg decodes");
    assert!(status.success(), "ffmpeg decoding {url}: {status}");
    let ffmpeg_ms =
        (cpu_time(Who::Children) - children_before).as_secs_f64() * 1000.0 / secs as f64;
    let _ = publisher.kill();
    let _ = publisher.wait();

    println!(
        "{tabs} hls.js players in headless Chromium, 720p30 live HLS via nginx-rtmp, {secs} s measured"
    );
    println!(
        "  frames decoded per second and tab: {:.1} to {:.1} (the stream has {FPS}); {stalls} stalls",
        decoded_per_sec
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        decoded_per_sec.iter().copied().fold(0.0, f64::max),
    );
    println!("  a player:        {tab_ms:.1} CPU-ms per tab-second");
    println!("  ffmpeg decoding: {ffmpeg_ms:.1} CPU-ms per stream-second (same stream, same run)");
    println!("  ratio player / ffmpeg: {:.2}", tab_ms / ffmpeg_ms);
    println!("  players per core: {:.1}", 1000.0 / tab_ms);
}
