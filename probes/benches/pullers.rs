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
//! Environment: `LPT_BENCH_PULLERS` (default 2000), `LPT_BENCH_SECS` (default 30).

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use probes::{HlsOptions, HlsPuller, PullEvent, PullSink, http_client};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

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
    let pullers = env("LPT_BENCH_PULLERS", 2000);
    let secs = env("LPT_BENCH_SECS", 30);
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
    println!(
        "CPU: {cpu:.2} s over {wall:.1} s = {:.2} of a core -> {:.0} pullers per core (goal >= 2000)",
        cpu / wall,
        pullers as f64 / (cpu / wall)
    );
}
