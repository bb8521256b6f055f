//! The broadcaster's own cost at 20 concurrent 2 Mbps RTMP streams: CPU-ms per stream-second
//! and resident memory per stream, with HLS playlists and segments pulled as a player would.
//!
//! The broadcaster runs in a child process (this binary re-executed with `LPT_BENCH_CHILD=1`) so
//! its CPU time and RSS are read from `/proc` free of the publishers', pullers' and
//! orchestrator's cost. Its ladder (240p + 360p) goes to an off-chain orchestrator in this
//! process in pass-through mode: each segment is uploaded over TLS and both renditions are
//! downloaded back and served, as in production, but transcoding (the orchestrator's cost, not
//! the broadcaster's) takes no time. `SOURCE_ONLY=1` runs without an orchestrator. The window's
//! segments go to files in a temporary `hls_dir` (page cache, not the node's memory);
//! `HLS_IN_MEMORY=1` keeps them in memory instead.
//! Goals: < 5 CPU-ms per stream-second, < 8 MiB per stream.
//!
//! Absolute CPU figures move with the machine, so the same load then runs against our
//! broadcaster source-only and against nginx with its RTMP module (`ci/setup` installs it)
//! packaging the same HLS, and the ratio of the two is printed (`NO_PEER=1` skips it).
//!
//! Goal against the peer: our CPU per stream-second at most nginx-rtmp's (ratio ≤ 1).
//!
//! `cargo bench -p node-broadcaster --profile ci --bench ingest` (env `STREAMS`, `SECS` override
//! 20 / 30). `cargo test` runs it as a check: 20 streams for 10 s, source only, against nginx-rtmp,
//! failing above twice the goal (see `testkit::bench`): short runs measured 1.0 to 1.44 here
//! (nginx's own cost moves most), against 0.68 for the full run, so only a doubling is told
//! from noise.

#[path = "../tests/integration/rtmp_client.rs"]
#[allow(dead_code)]
mod rtmp_client;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reference_transcoder::{MediaKind, SourceConfig};
use testkit::bench::{Better, Goal, Mode, env_or, judge};
use testkit::nginx::{Nginx, NginxOptions};

/// (kind, is sequence header, dts ms, FLV tag body).
type ReplayPacket = (MediaKind, bool, u32, Vec<u8>);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("LPT_BENCH_CHILD").is_some() {
        rt.block_on(child());
    } else {
        rt.block_on(parent());
    }
}

/// The ladder sent to the pass-through orchestrator.
const LADDER: &str = "P240p30fps16x9,P360p30fps16x9";

async fn child() {
    let orchestrator = std::env::var("LPT_BENCH_ORCHESTRATOR").ok();
    let config = node_broadcaster::BroadcasterConfig {
        rtmp_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ladder: if orchestrator.is_some() {
            LADDER.into()
        } else {
            String::new()
        },
        orchestrators: orchestrator.into_iter().collect(),
        hls_dir: std::env::var_os("LPT_BENCH_HLS_DIR").map(std::path::PathBuf::from),
        ..Default::default()
    };
    let b = node_broadcaster::start(config).await.unwrap();
    println!("READY {} {}", b.rtmp_addr, b.http_addr);
    // Run until the parent closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .unwrap();
    b.shutdown().await;
}

fn proc_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = unsafe_free_clock_ticks();
    ticks * 1000.0 / hz
}

fn unsafe_free_clock_ticks() -> f64 {
    // getconf is the portable way to read CLK_TCK without libc bindings.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A process under load: where publishers and players go, and whose CPU and memory are read.
struct Target {
    pid: u32,
    rtmp: std::net::SocketAddr,
    /// Media playlist URL of stream `{i}` (`{i}` replaced); segments are relative to it.
    playlist: String,
}

/// The cost one target paid for the load.
#[derive(Clone, Copy)]
struct Cost {
    cpu_ms_per_stream_second: f64,
    mib_per_stream: f64,
    rss_base_mib: f64,
    rss_loaded_mib: f64,
    measured_secs: f64,
}

/// Publishes `streams` real-time RTMP streams of `packets` to `target` for `run_for`, each with a
/// player polling its media playlist every second and fetching each new segment once, and reads
/// the target's CPU time over the run after a warm-up and its RSS before and at the end.
async fn load(
    target: &Target,
    packets: &Arc<Vec<ReplayPacket>>,
    loop_ms: u32,
    streams: usize,
    run_for: Duration,
) -> Cost {
    let rss_base = rss_kib(target.pid);
    let mut tasks = Vec::new();
    for i in 0..streams {
        let packets = packets.clone();
        let rtmp = target.rtmp;
        tasks.push(tokio::spawn(async move {
            let mut p = rtmp_client::Publisher::connect(rtmp, "live", &format!("bench{i}"))
                .await
                .unwrap();
            let start = Instant::now();
            let mut pass = 0u32;
            'outer: loop {
                for (kind, header, dts, body) in packets.iter() {
                    if *header && pass > 0 {
                        continue;
                    }
                    let ts = dts + pass * loop_ms;
                    let due = start + Duration::from_millis(u64::from(ts));
                    if due > Instant::now() {
                        p.flush().await.unwrap();
                        tokio::time::sleep_until(due.into()).await;
                    }
                    if start.elapsed() >= run_for {
                        break 'outer;
                    }
                    match kind {
                        MediaKind::Video => p.video(body.clone(), ts),
                        MediaKind::Audio => p.audio(body.clone(), ts),
                    }
                }
                pass += 1;
            }
            p.finish().await;
        }));
        let url = target.playlist.replace("{i}", &i.to_string());
        tasks.push(tokio::spawn(async move {
            // A player: poll the media playlist every second, fetch each new segment once.
            let client = reqwest::Client::new();
            let base = &url[..url.rfind('/').unwrap() + 1];
            let start = Instant::now();
            let mut seen = std::collections::HashSet::new();
            while start.elapsed() < run_for {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Ok(resp) = client.get(&url).send().await else {
                    continue;
                };
                let Ok(text) = resp.text().await else {
                    continue;
                };
                for seg in text.lines().filter(|l| l.ends_with(".ts")) {
                    if seen.insert(seg.to_string()) {
                        let _ = client
                            .get(format!("{base}{seg}"))
                            .send()
                            .await
                            .map(|r| r.bytes());
                    }
                }
            }
        }));
    }
    // Measure after a warm-up, so connection setup and the first segments' allocation settle.
    let warmup = Duration::from_secs(6.min(run_for.as_secs() / 3));
    tokio::time::sleep(warmup).await;
    let (cpu0, t0) = (proc_cpu_ms(target.pid), Instant::now());
    tokio::time::sleep(run_for - warmup - Duration::from_secs(1)).await;
    let (cpu1, elapsed) = (proc_cpu_ms(target.pid), t0.elapsed().as_secs_f64());
    let rss_loaded = rss_kib(target.pid);
    for t in tasks {
        let _ = t.await;
    }
    Cost {
        cpu_ms_per_stream_second: (cpu1 - cpu0) / (streams as f64 * elapsed),
        mib_per_stream: (rss_loaded - rss_base) / 1024.0 / streams as f64,
        rss_base_mib: rss_base / 1024.0,
        rss_loaded_mib: rss_loaded / 1024.0,
        measured_secs: elapsed,
    }
}

/// Our broadcaster, in a child process (see the module docs), with its HTTP address; it runs
/// until [`stop_broadcaster`] closes its stdin.
fn start_broadcaster(
    orchestrator: Option<&str>,
    hls_dir: Option<&std::path::Path>,
) -> (std::process::Child, Target, String) {
    let mut child = Command::new(std::env::current_exe().unwrap());
    if let Some(o) = orchestrator {
        child.env("LPT_BENCH_ORCHESTRATOR", o);
    }
    if let Some(dir) = hls_dir {
        child.env("LPT_BENCH_HLS_DIR", dir);
    }
    let mut child = child
        .env("LPT_BENCH_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut parts = line.split_whitespace().skip(1);
    let rtmp: std::net::SocketAddr = parts.next().unwrap().parse().unwrap();
    let http = parts.next().unwrap().to_string();
    let target = Target {
        pid: child.id(),
        rtmp,
        playlist: format!("http://{http}/stream/bench{{i}}/source.m3u8"),
    };
    (child, target, http)
}

fn stop_broadcaster(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

fn print_cost(what: &str, cost: &Cost, goals: bool) {
    println!("{what}: measured {:.1} s", cost.measured_secs);
    let indent = " ".repeat(what.len() - what.trim_start().len() + 2);
    println!(
        "{indent}CPU: {:.2} CPU-ms per stream-second{}",
        cost.cpu_ms_per_stream_second,
        if goals { " (goal < 5)" } else { "" }
    );
    println!(
        "{indent}RSS: base {:.1} MiB, loaded {:.1} MiB → {:.2} MiB per stream{}",
        cost.rss_base_mib,
        cost.rss_loaded_mib,
        cost.mib_per_stream,
        if goals { " (goal < 8)" } else { "" }
    );
}

/// Our broadcaster's CPU per stream-second ÷ nginx-rtmp's, source only.
const GOAL: f64 = 1.0;

async fn parent() {
    let mode = Mode::from_args();
    let streams: usize = env_or("STREAMS", 20);
    let secs: u64 = env_or("SECS", mode.pick(30, 10));
    eprintln!("encoding a 10 s 1280x720 2 Mbps source once…");
    let source = reference_transcoder::generate(&SourceConfig {
        width: 1280,
        height: 720,
        duration_secs: 10.0,
        gop_secs: 2.0,
        video_bitrate: Some(2_300_000),
        x264_preset: "ultrafast".into(),
        ..Default::default()
    })
    .unwrap();
    let packets: Arc<Vec<ReplayPacket>> = Arc::new(
        source
            .flv_packets()
            .into_iter()
            .map(|p| (p.kind, p.is_sequence_header, p.dts_ms, p.tag_body()))
            .collect(),
    );
    let bytes: usize = packets.iter().map(|p| p.3.len()).sum();
    let loop_ms = (source.duration_secs() * 1000.0).round() as u32;
    println!(
        "{streams} streams of {:.2} Mbps for {secs} s each run",
        bytes as f64 * 8.0 / source.duration_secs() / 1e6
    );
    let run_for = Duration::from_secs(secs);

    let orchestrator = if mode == Mode::Check || std::env::var_os("SOURCE_ONLY").is_some() {
        None
    } else {
        let mut config = node_orchestrator::config::OrchestratorConfig::offchain();
        config.transcode.mode = node_orchestrator::config::TranscodeMode::PassThrough;
        config.limits.max_sessions = streams * 2;
        Some(node_orchestrator::start(config).await.unwrap())
    };
    let hls_dir = tempfile::tempdir().unwrap();
    let in_memory = std::env::var_os("HLS_IN_MEMORY").is_some();
    let (child, target, http) = start_broadcaster(
        orchestrator.as_ref().map(|o| o.service_uri()),
        (!in_memory).then_some(hls_dir.path()),
    );
    let ours = load(&target, &packets, loop_ms, streams, run_for).await;
    // What the broadcaster did with each segment it kept a record of.
    let status = reqwest::get(format!("http://{http}/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for segment in status["segments"].as_array().into_iter().flatten() {
        *outcomes
            .entry(segment["outcome"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    stop_broadcaster(child);
    match &orchestrator {
        Some(o) => println!(
            "ladder {LADDER} through a pass-through orchestrator at {}; segment outcomes in /status: {outcomes:?}",
            o.service_uri()
        ),
        None => println!("source only (no orchestrator)"),
    }
    print_cost(
        &format!(
            "our broadcaster, HLS segments {}",
            if in_memory { "in memory" } else { "in files" }
        ),
        &ours,
        true,
    );

    if mode == Mode::Full && std::env::var_os("NO_PEER").is_some() {
        return;
    }
    // The same load without the orchestrator side, against nginx with its RTMP module doing the
    // same job (RTMP in, 2 s MPEG-TS segments in files, HLS over HTTP): a reference that moves
    // with the machine as ours does.
    let source_only = if orchestrator.is_none() && !in_memory {
        // The headline run was this one already (`SOURCE_ONLY=1`).
        ours
    } else {
        let source_dir = tempfile::tempdir().unwrap();
        let (child, target, _) = start_broadcaster(None, Some(source_dir.path()));
        let cost = load(&target, &packets, loop_ms, streams, run_for).await;
        stop_broadcaster(child);
        cost
    };
    let nginx = Nginx::start_with(&NginxOptions {
        playlist_window: Duration::from_secs(12),
    });
    let peer = Target {
        pid: nginx.pid(),
        rtmp: format!("127.0.0.1:{}", nginx.rtmp_port).parse().unwrap(),
        playlist: format!("http://127.0.0.1:{}/hls/bench{{i}}.m3u8", nginx.http_port),
    };
    let nginx_cost = load(&peer, &packets, loop_ms, streams, run_for).await;
    drop(nginx);
    println!("peer comparison, source only (RTMP in, segments in files, HLS out), same load:");
    print_cost("  our broadcaster", &source_only, false);
    print_cost("  nginx-rtmp (one process)", &nginx_cost, false);
    judge(
        mode,
        &[Goal {
            what: "RTMP ingest and HLS packaging, CPU-ms per stream-second".into(),
            ours: source_only.cpu_ms_per_stream_second,
            peer: nginx_cost.cpu_ms_per_stream_second,
            peer_name: "nginx-rtmp".into(),
            better: Better::Lower,
            goal: GOAL,
            margin: 1.0,
        }],
    );
}
