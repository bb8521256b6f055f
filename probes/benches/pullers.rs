//! Puller capacity: how many concurrent HLS pullers one core sustains against a static HLS
//! server (nginx serving files), every puller following a live sliding-window playlist and
//! downloading every segment once.
//!
//! A plain thread here publishes the "live" playlist: a new 2 s segment (hard link to one real
//! segment of the stamped clip) every 2 s, a 5-segment window. All pullers run on one
//! current-thread runtime (one core at most) with one shared HTTP client and the probes'
//! default options (each first poll downloads the whole window), starts spread over the first
//! second; this process's CPU time (`getrusage(RUSAGE_SELF)`) over the run gives the fraction
//! of a core used, hence pullers per core. Segment bodies are counted, not kept.
//!
//! The peer, on the same live playlist right after: `LPT_BENCH_FFMPEG` `ffmpeg -i URL -c copy
//! -f null -` readers (default 10), their CPU read with `getrusage(RUSAGE_CHILDREN)`. Goal: ours
//! cost at most 1/20 of an ffmpeg reader per stream-second (ffmpeg also demuxes what it reads).
//! `cargo test` runs it as a check (200 pullers and 2 readers for 8 s each) failing above the
//! goal plus a 50 % noise margin (see `testkit::bench`).
//! Environment: `LPT_BENCH_PULLERS` (default 2000), `LPT_BENCH_SECS` (default 30).

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use probes::{HlsOptions, HlsPuller, PullEvent, PullSink, http_client};
use testkit::bench::{Better, Goal, Mode, Who, cpu_time, env_or, judge};

fn cpu_secs() -> f64 {
    cpu_time(Who::Myself).as_secs_f64()
}

/// Ours ÷ an ffmpeg reader in CPU per stream-second.
const GOAL: f64 = 0.05;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    missed: AtomicU64,
    stalls: AtomicU64,
    playlist_failures: AtomicU64,
    bytes: AtomicU64,
}

struct CountSink(Arc<Counts>);

impl PullSink for CountSink {
    fn event(&self, e: PullEvent) {
        let c = &self.0;
        match e {
            PullEvent::Segment(s) => {
                c.bytes.fetch_add(s.size, Ordering::Relaxed);
                if s.body.is_ok() {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            PullEvent::Missed { .. } => {
                c.missed.fetch_add(1, Ordering::Relaxed);
            }
            PullEvent::Stall(s) if !s.ended => {
                c.stalls.fetch_add(1, Ordering::Relaxed);
            }
            PullEvent::Playlist(p) if p.outcome.is_err() => {
                c.playlist_failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn write_playlist(dir: &std::path::Path, highest: u64) {
    let first = highest.saturating_sub(4);
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for seq in first..=highest {
        text.push_str(&format!("#EXTINF:2.000,\nseg{seq}.ts\n"));
    }
    let tmp = dir.join("live.m3u8.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join("live.m3u8")).unwrap();
}

fn main() {
    let mode = Mode::from_args();
    let pullers: u64 = env_or("LPT_BENCH_PULLERS", mode.pick(2000, 200));
    let readers: u64 = env_or("LPT_BENCH_FFMPEG", mode.pick(10, 2));
    let secs: u64 = env_or("LPT_BENCH_SECS", mode.pick(30, 8));
    let (encoded, _) = support::encoded_source();
    let segment = encoded.ts_segments(2.0).unwrap().remove(0);
    let nginx = testkit::nginx::Nginx::start();
    let dir = nginx.static_dir();
    std::fs::write(dir.join("base.ts"), &segment.data).unwrap();
    println!(
        "static live HLS: 2 s segments of {} KB ({:.0} kbps), 5-segment window",
        segment.data.len() / 1024,
        segment.data.len() as f64 * 8.0 / 2000.0
    );
    for seq in 0..=4 {
        std::fs::hard_link(dir.join("base.ts"), dir.join(format!("seg{seq}.ts"))).unwrap();
    }
    write_playlist(&dir, 4);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut highest = 4;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs(2 * (highest - 3));
                std::thread::sleep(
                    due.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100)),
                );
                if Instant::now() >= due {
                    highest += 1;
                    std::fs::hard_link(dir.join("base.ts"), dir.join(format!("seg{highest}.ts")))
                        .unwrap();
                    write_playlist(&dir, highest);
                }
            }
            highest
        })
    };

    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = nginx.static_url("live.m3u8");
    let cpu0 = cpu_secs();
    let wall0 = Instant::now();
    rt.block_on(async {
        let client = http_client().unwrap();
        let options = HlsOptions {
            keep_bytes: false,
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for i in 0..pullers {
            let puller =
                HlsPuller::new(client.clone(), &url, &format!("p{i}"), options.clone()).unwrap();
            let sink: Arc<dyn PullSink> = Arc::new(CountSink(counts.clone()));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(i * 1_000_000 / pullers)).await;
                puller.run(deadline, sink).await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let ffmpeg_cpu = ffmpeg_readers(&url, readers, secs);
    stop.store(true, Ordering::Relaxed);
    let highest = writer.join().unwrap();
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let ok = c(&counts.ok);
    println!(
        "{pullers} pullers x {secs} s: {ok} segments ok ({:.1} per puller, playlist reached seq {highest}), {} failed, {} missed, {} stalls, {} playlist failures, {:.0} MB/s",
        ok as f64 / pullers as f64,
        c(&counts.failed),
        c(&counts.missed),
        c(&counts.stalls),
        c(&counts.playlist_failures),
        c(&counts.bytes) as f64 / wall / 1e6
    );
    assert_eq!(c(&counts.failed), 0, "every segment downloads");
    println!(
        "CPU: {cpu:.2} s over {wall:.1} s = {:.2} of a core -> {:.0} pullers per core (goal >= 2000)",
        cpu / wall,
        pullers as f64 / (cpu / wall)
    );
    println!("ffmpeg: {readers} readers x {secs} s: {ffmpeg_cpu:.2} CPU-s");
    judge(
        mode,
        &[Goal {
            what: "HLS pulling, CPU-ms per stream-second".into(),
            ours: cpu * 1000.0 / (pullers * secs) as f64,
            peer: ffmpeg_cpu * 1000.0 / (readers * secs) as f64,
            peer_name: "ffmpeg -c copy -f null".into(),
            better: Better::Lower,
            goal: GOAL,
            margin: 0.5,
        }],
    );
}

/// Runs `readers` ffmpeg processes reading the live playlist at `url` for `secs` seconds each,
/// side by side, and returns the CPU seconds they used.
fn ffmpeg_readers(url: &str, readers: u64, secs: u64) -> f64 {
    let cpu0 = cpu_time(Who::Children).as_secs_f64();
    let mut children: Vec<_> = (0..readers)
        .map(|_| {
            std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostats", "-v", "error", "-i", url])
                .args(["-t", &secs.to_string(), "-c", "copy", "-f", "null", "-"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("ffmpeg runs")
        })
        .collect();
    // A reader of a live playlist stops at `-t` of media, which arrives in real time.
    let deadline = Instant::now() + Duration::from_secs(secs + 20);
    for child in &mut children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "an ffmpeg reader failed: {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "an ffmpeg reader ran past {secs} s + 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cpu_time(Who::Children).as_secs_f64() - cpu0
}
