//! Hostile soak: one broadcaster and one orchestrator under 1,000 garbage and
//! slowloris connections and hostile publisher and orchestrator inputs, while 10 honest streams
//! run through them. What must hold: every honest segment transcoded and served, the resident
//! memory of each node under a stated bound, no panic in any node's log, and both nodes still
//! answering `/status` at the end.
//!
//! Run: `cargo bench --profile ci -p tester --bench hostile_soak -- [--check] [--seconds N]`
//! (N: soak length, default 60; `--check` exits 1 when a figure misses its bound). `cargo test`
//! runs it as that check with a 20 s soak (`testkit::bench::Mode`; `--check` alone also soaks
//! 20 s unless `--seconds` says otherwise): 59–61 s for both phases on a shared 2-core machine.
//! The bounds below are the full run's: none of them scales with the soak's length. The memory
//! the hostile load costs the broadcaster is mostly the endless segment, which the phase keeps
//! the load up for until the node has cut it off (below), so a short soak reaches the same peak
//! as a long one (measured in five 20 s soaks: 154–159 MiB, against 69–70 MiB in their
//! baselines; the orchestrator 66–67 MiB, once 99.5, against 64–65).
//!
//! Two phases run one after the other, each on fresh nodes: a baseline (the 10 honest streams
//! alone, the peer to compare against) and the hostile soak (the same streams plus the load).
//! Each phase starts the embedded stack of `lpt run` for its chain (anvil, the contracts, the
//! broadcaster's deposit and reserve, a block a second; payments on), then the measured
//! orchestrator and broadcaster from the configs the stack wrote, changed where `run_phase` says
//! why (params lasting 300 blocks, 20 sessions, pass-through renditions, our orchestrator list);
//! the stack's own orchestrator and broadcaster stay idle and are not measured. Every node is a
//! separate `lpt node …` process, so its RSS is read from `/proc/<pid>/status` (VmRSS) every
//! second; its stderr goes to `<dir>/<node>.log`, where "panicked" lines are counted, and the
//! broadcaster's final `/status` is kept as `<dir>/status.json`.
//!
//! Honest load: 10 `ffmpeg -re` publishers (testsrc 160x90, 10 fps, 1 s GOP, AAC) over RTMP and
//! 10 HLS readers pulling every rendition of each stream twice a second (ladder: P144p30fps16x9;
//! the orchestrators make renditions in pass-through mode, see [`transcode_mode`]). A stream's
//! success is the share of its published segments (source sequence numbers seen in the source
//! playlist or in the broadcaster's `/status` records) whose P144p rendition the reader fetched.
//!
//! Hostile load (hostile phase only), started before the honest publishers and kept up until the
//! readers are done and every endless-segment publisher (below) has been cut off, or has sent
//! 1.25 × the broadcaster's `max_segment_bytes` without being cut off (deadline 60 s):
//! - 1,000 connections spread over the broadcaster's RTMP and HTTP ports and the orchestrator's
//!   TLS port, each from its own loopback source address (127.1.x.y, so per-IP caps do not make
//!   it easy): half garbage (1 KiB of random bytes, then 64 more every second), half slowloris
//!   (a valid RTMP C0 / HTTP request line / TLS record header, then one byte every 2–4 s). A
//!   connection the node closes is reopened after a second, as an attacker would.
//! - A publisher that sends one key frame and then 640x360 frames all stamped 0 at 2 MB/s (an
//!   endless segment), reconnecting when dropped (`LPT_BENCH_ENDLESS=N` runs N of them).
//! - Every 2 s an HTTP push to a live honest RTMP stream with `Content-Duration` = i64::MAX and
//!   seq = u64::MAX-1, and an RTMP publish of a live honest stream's ID (taking it over; when
//!   accepted, 3 s of other pictures are sent into it); after the soak, one publish of each
//!   ended honest ID. Hostile publishers connect from 127.2.0.1, the honest ones from 127.0.0.1.
//! - A second, hostile orchestrator in the broadcaster's list next to the honest one: a real
//!   `lpt node orchestrator` quoting ticket params with EV = 1 wei (face value 10^12 wei), so an
//!   unguarded broadcaster signs about a billion tickets per segment. Hostile orchestrators that
//!   send rendition URLs pointing elsewhere or huge bodies are not covered (the tester crate has
//!   no gRPC server to build one with).
//!
//! RSS bounds (checked in both phases): broadcaster 208 MiB, orchestrator 132 MiB (448 with
//! `LPT_BENCH_TRANSCODE=local`); see [`BROADCASTER_RSS_BOUND_MIB`] and
//! [`orchestrator_rss_bound_mib`] for how they were chosen. The hostile orchestrator is measured
//! for information only. The check also fails on a panic line in a node's log, a node that does
//! not answer `/status` at the end, any honest stream below 100 %, and an endless segment that
//! was not cut off past 1.25 × `max_segment_bytes` (or not decided within the deadline: then the
//! cap went untested).
//!
//! Set `LPT_BENCH_OFFLINE=1` to run without a chain (no payments, no hostile orchestrator).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tester::scenario::EmbeddedTarget;
use tester::stack::{Child, EmbeddedStack, StackOptions};
use testkit::bench::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Honest streams (each one publisher and one reader).
const HONEST_STREAMS: usize = 10;
/// Hostile connections kept open.
const HOSTILE_CONNECTIONS: usize = 1000;
/// The ladder: one low rendition.
const LADDER: &str = "P144p30fps16x9";
/// Wei per pixel the honest orchestrator asks (the scenario default).
const PRICE_PER_UNIT: u64 = 1000;
/// Endless-segment publishers: 1 unless `LPT_BENCH_ENDLESS=N`. Each may hold one open segment
/// up to the broadcaster's `max_segment_bytes` before it is cut off, so N of them show whether
/// the node's memory is bounded in total or only per stream.
fn endless_publishers() -> usize {
    std::env::var("LPT_BENCH_ENDLESS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Byte rate of each endless-segment publisher.
const ENDLESS_BYTES_PER_SEC: f64 = 2_000_000.0;
/// An endless-segment publish that sends this many times the broadcaster's `max_segment_bytes`
/// without being cut off shows the cap does not hold; the slack is for bytes the node had not
/// read yet (socket buffers) when it cut the publisher off.
const ENDLESS_CUT_SLACK: f64 = 1.25;
/// How long the hostile phase waits, after the honest readers are done, for every endless
/// publisher to be cut off (or to show it is not): at [`ENDLESS_BYTES_PER_SEC`] the default
/// 64 MiB cap takes ~34 s from the start of the load, about what a 20 s soak lasts in all.
const ENDLESS_CUT_DEADLINE: Duration = Duration::from_secs(60);

/// The broadcaster's `max_segment_bytes`: its default, which the embedded stack keeps.
fn max_segment_bytes() -> f64 {
    node_broadcaster::BroadcasterConfig::default().max_segment_bytes as f64
}
/// How the orchestrators make renditions: `pass_through` (copies of the source, no FFmpeg) unless
/// `LPT_BENCH_TRANSCODE=local`. The soak is about the nodes' robustness and memory; on a shared
/// 2-core machine, real x264 work for 10 streams next to their 10 encoders falls behind real
/// time (the orchestrator answers 429, "8 segments in flight") with or without hostile load,
/// which would hide what the hostile load does.
fn transcode_mode() -> &'static str {
    match std::env::var("LPT_BENCH_TRANSCODE").as_deref() {
        Ok("local") => "local",
        _ => "pass_through",
    }
}

/// Blocks the honest orchestrator's ticket params last (the embedded stack's: 30; see
/// `run_phase`).
const EXPIRATION_BLOCKS: u64 = 300;
/// How long the readers may take after the publishers end to see every segment and ENDLIST.
const DRAIN_DEADLINE: Duration = Duration::from_secs(40);

/// Peak RSS allowed to the broadcaster, MiB: twice its unloaded peak plus one open segment at
/// the broadcaster's default `max_segment_bytes` (64 MiB), which the endless-segment publisher
/// is allowed to fill before it is cut off. Unloaded peak measured on this machine (2 cores,
/// 60 s, 10 streams, baseline phase): 69–71 MiB; so 2 × 72 + 64.
const BROADCASTER_RSS_BOUND_MIB: f64 = 208.0;
/// Peak RSS allowed to the orchestrator, MiB: twice its unloaded peak (same runs: 64–66 MiB in
/// pass-through mode; 205–222 MiB with `LPT_BENCH_TRANSCODE=local`, bound 448).
fn orchestrator_rss_bound_mib() -> f64 {
    if transcode_mode() == "local" {
        448.0
    } else {
        132.0
    }
}

struct Args {
    mode: Mode,
    seconds: u64,
}

fn parse_args() -> Args {
    let mode = Mode::from_args();
    // `--bench` and `--check` are the mode's (`Mode::from_args`); anything else is not ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = match args.iter().position(|a| a == "--seconds") {
        Some(at) => args
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .filter(|s| *s >= 10)
            .expect("--seconds takes a whole number of seconds, at least 10"),
        None => mode.pick(60, 20),
    };
    Args { mode, seconds }
}

/// The hostile load needs more than 1,000 descriptors on top of the nodes' own.
fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    let args = parse_args();
    raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(args));
    // Children die with us (PDEATHSIG) and the hostile tasks with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let root = std::env::temp_dir().join(format!("lpt-hostile-soak-{}", std::process::id()));
    let media = match Media::prepare(&root).await {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("cannot prepare the hostile media: {e:#}");
            return 2;
        }
    };
    let mut phases = Vec::new();
    for (name, hostile) in [("baseline", false), ("hostile", true)] {
        eprintln!("== {name}: {} s", args.seconds);
        match run_phase(name, hostile, &args, &root.join(name), &media).await {
            Ok(result) => phases.push(result),
            Err(e) => {
                eprintln!("the {name} phase could not run: {e:#}");
                return 2;
            }
        }
    }
    println!();
    println!(
        "hostile soak, {HONEST_STREAMS} honest streams × {} s, ladder {LADDER}; logs under {}",
        args.seconds,
        root.display()
    );
    let mut failures = Vec::new();
    for phase in &phases {
        phase.print();
        failures.extend(phase.failures());
    }
    if let [baseline, hostile] = &phases[..] {
        println!();
        for node in &baseline.nodes {
            if let Some(h) = hostile.nodes.iter().find(|n| n.name == node.name) {
                println!(
                    "  {} peak RSS hostile / baseline: {:.1} / {:.1} MiB = {:.2}×",
                    node.name,
                    h.peak_mib,
                    node.peak_mib,
                    h.peak_mib / node.peak_mib.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
    if failures.is_empty() {
        println!("\nall bounds met");
    } else {
        println!("\nbounds missed:");
        for f in &failures {
            println!("  - {f}");
        }
    }
    if args.mode == Mode::Check && !failures.is_empty() {
        1
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Media made once with ffmpeg: a 640x360 FLV for the hostile publishers and a TS segment to push.

struct Media {
    /// AVC sequence header tag body.
    seq_header: Vec<u8>,
    /// Video tags after it, (dts ms, body), the first a key frame.
    frames: Vec<(u32, Vec<u8>)>,
    /// An MPEG-TS segment.
    push_ts: Vec<u8>,
}

async fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .await
        .context("cannot run ffmpeg")?;
    if !out.status.success() {
        bail!(
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `secs` seconds of the lavfi `video` source encoded by x264 (ultrafast, yuv420p, a key frame
/// every `gop` frames), then `output` (the output's options and its path).
async fn x264_clip(video: &str, secs: &str, gop: &str, output: &[&str]) -> anyhow::Result<()> {
    let input = ["-f", "lavfi", "-i", video, "-t", secs];
    let codec = ["-c:v", "libx264", "-preset", "ultrafast"];
    let frames = ["-g", gop, "-pix_fmt", "yuv420p"];
    ffmpeg(&[&input[..], &codec, &frames, output].concat()).await
}

impl Media {
    async fn prepare(dir: &Path) -> anyhow::Result<Media> {
        std::fs::create_dir_all(dir)?;
        let flv = dir.join("hostile.flv");
        let ts = dir.join("push.ts");
        // One key frame then large P frames: the endless segment never sees another key frame.
        let flv_out = ["-b:v", "4M", "-an", "-f", "flv", flv.to_str().unwrap()];
        x264_clip("testsrc2=size=640x360:rate=10", "4", "1000", &flv_out).await?;
        let ts_out = ["-f", "mpegts", ts.to_str().unwrap()];
        x264_clip("testsrc=size=160x90:rate=10", "1", "10", &ts_out).await?;
        let data = std::fs::read(&flv)?;
        let (seq_header, frames) = parse_flv(&data).context("hostile.flv")?;
        Ok(Media {
            seq_header,
            frames,
            push_ts: std::fs::read(&ts)?,
        })
    }
}

type FlvVideo = (Vec<u8>, Vec<(u32, Vec<u8>)>);

/// The AVC sequence header and the video tags of an FLV file.
fn parse_flv(data: &[u8]) -> anyhow::Result<FlvVideo> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        bail!("not FLV");
    }
    let mut at = u32::from_be_bytes(data[5..9].try_into()?) as usize + 4;
    let mut seq_header = None;
    let mut frames = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at];
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = data
            .get(at + 11..at + 11 + size)
            .ok_or_else(|| anyhow!("truncated tag"))?;
        if kind == 9 && body.len() > 2 {
            if body[1] == 0 {
                seq_header = Some(body.to_vec());
            } else {
                frames.push((ts, body.to_vec()));
            }
        }
        at += 11 + size + 4;
    }
    let seq_header = seq_header.ok_or_else(|| anyhow!("no AVC sequence header"))?;
    if frames.len() < 2 || frames[0].1[0] >> 4 != 1 {
        bail!("expected a key frame then more frames");
    }
    Ok((seq_header, frames))
}

// ---------------------------------------------------------------------------------------------
// One phase.

struct NodeFigures {
    name: &'static str,
    peak_mib: f64,
    final_mib: f64,
    samples: usize,
    panics: usize,
    /// HTTP status `/status` answered with at the end (None: no answer).
    status: Option<u16>,
    bound_mib: Option<f64>,
}

struct StreamFigures {
    id: String,
    published: usize,
    served: usize,
    publisher_exit: String,
}

#[derive(Default)]
struct ConnCounters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    closed_by_node: AtomicU64,
    open: AtomicI64,
    max_open: AtomicI64,
    /// Sum of `open` sampled once a second during the soak, and the number of samples.
    open_sum: AtomicI64,
    open_ticks: AtomicI64,
    /// `open` when the honest readers were done, before the load stopped.
    open_at_end: AtomicI64,
}

#[derive(Default)]
struct HostileStats {
    /// Per target: broadcaster RTMP, broadcaster HTTP, orchestrator TLS.
    conns: [ConnCounters; 3],
    endless_accepted: AtomicU64,
    endless_refused: AtomicU64,
    endless_dropped: AtomicU64,
    /// Endless-segment publishes that sent [`ENDLESS_CUT_SLACK`] × `max_segment_bytes` without
    /// being cut off (the publisher then hangs up itself).
    endless_uncut: AtomicU64,
    /// Set when the wait for every endless publisher's outcome ran out.
    endless_undecided: AtomicBool,
    /// How long the load was kept up after the readers for that outcome, ms.
    endless_wait_ms: AtomicU64,
    endless_bytes: AtomicU64,
    pushes: Mutex<BTreeMap<String, u64>>,
    takeover_attempts: AtomicU64,
    takeover_accepted: AtomicU64,
    ended_takeover_attempts: AtomicU64,
    ended_takeover_accepted: AtomicU64,
}

const TARGETS: [&str; 3] = ["broadcaster RTMP", "broadcaster HTTP", "orchestrator TLS"];

struct PhaseResult {
    name: &'static str,
    payments: bool,
    nodes: Vec<NodeFigures>,
    streams: Vec<StreamFigures>,
    hostile: Option<Arc<HostileStats>>,
    /// Attempts at the hostile orchestrator by result, from `/status` records.
    hostile_orch_attempts: BTreeMap<String, u64>,
    /// Honest segments that did not come out `ok`, by the broadcaster's final error.
    honest_failures: BTreeMap<String, u64>,
    ingest_errors: BTreeMap<String, u64>,
    dir: PathBuf,
}

/// `lpt node KIND --config CONFIG` as the child `name` with `env` set, its log in `dir`, ready
/// within a minute.
async fn spawn_node(
    name: &str,
    lpt: &Path,
    kind: &str,
    config: &Path,
    env: &[(&str, String)],
    dir: &Path,
) -> anyhow::Result<Child> {
    let args = [
        OsStr::new("node"),
        kind.as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    Child::spawn(name, lpt, args, env, dir, Duration::from_secs(60)).await
}

/// The string value of `key = "…"` in a config the stack wrote.
fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_owned())
    })
}

fn count_panics(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().filter(|l| l.contains("panicked")).count())
        .unwrap_or(0)
}

fn host_port(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{url} has no scheme"))?;
    let host = rest.split('/').next().unwrap_or_default();
    host.parse().with_context(|| format!("address of {url}"))
}

async fn run_phase(
    name: &'static str,
    hostile: bool,
    args: &Args,
    dir: &Path,
    media: &Arc<Media>,
) -> anyhow::Result<PhaseResult> {
    std::fs::create_dir_all(dir)?;
    let lpt = PathBuf::from(env!("CARGO_BIN_EXE_lpt"));
    let offline = std::env::var_os("LPT_BENCH_OFFLINE").is_some();
    let options = StackOptions {
        nodes: EmbeddedTarget {
            orchestrators: 1,
            // Its orchestrator transcodes itself (local mode), so the measured node is the whole
            // of what an operator runs with `-orchestrator -transcoder`.
            transcoders_per_orchestrator: 0,
            offline,
            price_per_unit: PRICE_PER_UNIT,
            pixels_per_unit: 1,
            prices: Vec::new(),
            faults: None,
            pool: None,
            transcoder_faults: Default::default(),
        },
        ladder: reference_transcoder::ladder::parse_ladder(LADDER)?,
        deposit_wei: 10u128.pow(18),
        reserve_wei: 10u128.pow(18),
        transcoder_capacity: 1,
        dir: dir.join("stack"),
        lpt: lpt.clone(),
        ready_deadline: Duration::from_secs(60),
        keep_chain_state: false,
        own_filesystems: Vec::new(),
        impaired_paths: Vec::new(),
    };
    let stack = EmbeddedStack::start(&options)
        .await
        .context("the embedded stack did not start (LPT_BENCH_OFFLINE=1 runs without a chain)")?;

    // The measured orchestrator: the stack's orchestrator config (chain, key, price, tickets)
    // with params lasting EXPIRATION_BLOCKS and the bench's transcode mode. The stack pays one
    // winning ticket per second of output per stream and every redemption mines a block: with
    // 10 streams about 4 blocks a second, so its 30-block params lapse within seconds and the
    // broadcaster's segments fail on expired params after ~35 s with no hostile load at all
    // (measured: 18 of 30 segments per stream). The stack's own orchestrator and broadcaster
    // stay idle.
    let stack_orch_config = std::fs::read_to_string(options.dir.join("orchestrator-0.toml"))?;
    let journal = dir.join("orchestrator.tickets.jsonl");
    let orch_config: Vec<String> = stack_orch_config
        .lines()
        .map(|line| {
            if toml_string(line, "expiration_blocks").is_some() {
                return format!("expiration_blocks = {EXPIRATION_BLOCKS}");
            }
            if toml_string(line, "mode").is_some() {
                return format!("mode = \"{}\"", transcode_mode());
            }
            if toml_string(line, "ticket_journal").is_some() {
                return format!("ticket_journal = \"{}\"", journal.display());
            }
            // Capacity for the honest streams with headroom, as an operator would size it: the
            // default (10) equals the 10 streams, and a session the broadcaster abandons after
            // one refusal holds its slot for `session_idle_secs` (60 s), so the retry's new
            // session is capped.
            if line.starts_with("max_sessions =") {
                return format!("max_sessions = {}", 2 * HONEST_STREAMS);
            }
            // The stack pins its orchestrator's bound port in the file (a restart comes back
            // there) and that orchestrator is still running.
            if toml_string(line, "listen").is_some() {
                return "listen = \"127.0.0.1:0\"".to_owned();
            }
            line.to_owned()
        })
        .collect();
    let orch_config = orch_config.join("\n") + "\n";
    let path = dir.join("orchestrator.toml");
    std::fs::write(&path, orch_config)?;
    let orchestrator = spawn_node("orchestrator", &lpt, "orchestrator", &path, &[], dir).await?;
    let honest_uri = orchestrator.ready_str("service_uri")?.to_owned();
    let orchestrator_pid = orchestrator
        .pid()
        .ok_or_else(|| anyhow!("orchestrator has no pid"))?;

    // The hostile orchestrator: a real node whose only sin is its ticket params' EV of 1 wei.
    let mut hostile_orch: Option<Child> = None;
    if hostile && !offline {
        let honest_config = std::fs::read_to_string(options.dir.join("orchestrator-0.toml"))?;
        let get = |key: &str| {
            toml_string(&honest_config, key)
                .ok_or_else(|| anyhow!("orchestrator-0.toml has no {key}"))
        };
        let key = alloy::signers::local::PrivateKeySigner::random();
        let config = format!(
            "listen = \"127.0.0.1:0\"\noffchain = false\n\n[chain]\nrpc_url = \"{}\"\nprivate_key = \"0x{}\"\nticket_broker = \"{}\"\nrounds_manager = \"{}\"\npoll_ms = 250\n\n[payments]\nprice_per_unit = {PRICE_PER_UNIT}\npixels_per_unit = 1\nface_value = \"1000000000000\"\nticket_ev = \"1\"\nexpiration_blocks = 30\n\n[transcode]\nmode = \"{}\"\n",
            get("rpc_url")?,
            alloy::hex::encode(key.to_bytes()),
            get("ticket_broker")?,
            get("rounds_manager")?,
            transcode_mode(),
        );
        let path = dir.join("hostile-orchestrator.toml");
        std::fs::write(&path, config)?;
        let name = "hostile-orchestrator";
        hostile_orch = Some(spawn_node(name, &lpt, "orchestrator", &path, &[], dir).await?);
    }
    let hostile_uri = hostile_orch
        .as_ref()
        .map(|c| c.ready_str("service_uri").map(str::to_owned))
        .transpose()?;

    // The measured broadcaster: the stack's broadcaster config with our orchestrator list.
    let stack_config = std::fs::read_to_string(options.dir.join("broadcaster.toml"))?;
    let mut list = vec![format!("\"{honest_uri}\"")];
    if let Some(uri) = &hostile_uri {
        list.push(format!("\"{uri}\""));
    }
    let config: String = stack_config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("orchestrators") {
                format!("orchestrators = [{}]", list.join(", "))
            } else if let Some(key) = ["rtmp_addr", "http_addr"]
                .into_iter()
                .find(|key| toml_string(l, key).is_some())
            {
                // The stack's broadcaster still holds the ports pinned in its file.
                format!("{key} = \"127.0.0.1:0\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = config.replace(
        &options.dir.join("hls").display().to_string(),
        &dir.join("hls").display().to_string(),
    );
    let path = dir.join("broadcaster.toml");
    std::fs::write(&path, config + "\n")?;
    let mut env = Vec::new();
    if let (Some(var), Some(signer)) =
        (toml_string(&stack_config, "key_env"), stack.sender_signer())
    {
        env.push((var, format!("0x{}", alloy::hex::encode(signer.to_bytes()))));
    }
    let env_refs: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let broadcaster = spawn_node("broadcaster", &lpt, "broadcaster", &path, &env_refs, dir).await?;
    let rtmp = host_port(broadcaster.ready_str("rtmp_url")?)?;
    let http = host_port(broadcaster.ready_str("status_url")?)?;
    let orch_addr = host_port(&honest_uri)?;
    let broadcaster_pid = broadcaster
        .pid()
        .ok_or_else(|| anyhow!("broadcaster has no pid"))?;

    // RSS every second until the phase ends.
    let mut watched: Vec<(&'static str, u32)> = vec![
        ("broadcaster", broadcaster_pid),
        ("orchestrator", orchestrator_pid),
    ];
    if let Some(pid) = hostile_orch.as_ref().and_then(Child::pid) {
        watched.push(("hostile orchestrator", pid));
    }
    let samples: Arc<Mutex<BTreeMap<&'static str, Vec<f64>>>> = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = {
        let samples = samples.clone();
        let watched = watched.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let mut samples = samples.lock().unwrap();
                for (name, pid) in &watched {
                    if let Some(rss) = testkit::procfs::rss_mib(*pid) {
                        samples.entry(*name).or_default().push(rss);
                    }
                }
            }
        })
    };

    let client = protocol::client::http_client();
    let stats = Arc::new(HostileStats::default());
    let mut hostile_tasks = Vec::new();
    if hostile {
        for i in 0..HOSTILE_CONNECTIONS {
            let (target, addr) = match i % 3 {
                0 => (0, rtmp),
                1 => (1, http),
                _ => (2, orch_addr),
            };
            let garbage = (i / 3) % 2 == 0;
            hostile_tasks.push(tokio::spawn(hostile_connection(
                i,
                target,
                addr,
                garbage,
                stats.clone(),
                stop_rx.clone(),
            )));
        }
        // How many stay open on average: a node that closes them keeps this low.
        hostile_tasks.push(tokio::spawn({
            let stats = stats.clone();
            let mut stop = stop_rx.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return,
                    }
                    for c in &stats.conns {
                        c.open_sum
                            .fetch_add(c.open.load(Ordering::Relaxed), Ordering::Relaxed);
                        c.open_ticks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
        for publisher in 0..endless_publishers() {
            hostile_tasks.push(tokio::spawn(endless_publisher(
                publisher,
                rtmp,
                media.clone(),
                stats.clone(),
                stop_rx.clone(),
            )));
        }
        // The load is in place before the honest publishers come: wait (with a deadline) until
        // the connections are open, or as open as the nodes let them be.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let open: i64 = stats
                .conns
                .iter()
                .map(|c| c.open.load(Ordering::Relaxed))
                .sum();
            if open >= HOSTILE_CONNECTIONS as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Honest publishers and readers.
    let mut publishers = Vec::new();
    let mut readers = Vec::new();
    let reader_states: Vec<Arc<Mutex<ReaderState>>> = (0..HONEST_STREAMS)
        .map(|_| Arc::new(Mutex::new(ReaderState::default())))
        .collect();
    let publishing_done = Arc::new(AtomicBool::new(false));
    for (i, state) in reader_states.iter().enumerate() {
        let id = format!("honest-{i}");
        let log = std::fs::File::create(dir.join(format!("ffmpeg-{id}.log")))?;
        let child = tokio::process::Command::from(testkit::publisher::command(
            "testsrc=size=160x90:rate=10",
            args.seconds,
            10,
            &format!("rtmp://{rtmp}/live/{id}"),
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start ffmpeg")?;
        publishers.push(child);
        readers.push(tokio::spawn(reader(
            client.clone(),
            http,
            id,
            state.clone(),
            publishing_done.clone(),
        )));
    }

    if hostile {
        // Pushes and takeovers aim at live honest streams: wait until each reader has seen its
        // stream (deadline: the streams may never come up under the load, which is a finding).
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && !reader_states.iter().all(|s| s.lock().unwrap().master_seen)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        hostile_tasks.push(tokio::spawn(pusher(
            client.clone(),
            http,
            media.clone(),
            stats.clone(),
            stop_rx.clone(),
        )));
        hostile_tasks.push(tokio::spawn(taker(
            rtmp,
            media.clone(),
            stats.clone(),
            stop_rx.clone(),
        )));
    }

    // The soak: until the publishers (`-t seconds`) end, with a deadline for a stuck one.
    let mut exits = Vec::new();
    let publish_deadline = Instant::now() + Duration::from_secs(args.seconds + 30);
    for mut child in publishers {
        let left = publish_deadline.saturating_duration_since(Instant::now());
        exits.push(match tokio::time::timeout(left, child.wait()).await {
            Ok(Ok(status)) if status.success() => "ok".to_owned(),
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => {
                let _ = child.kill().await;
                "killed after the deadline".to_owned()
            }
        });
    }
    publishing_done.store(true, Ordering::Relaxed);
    let drain_deadline = Instant::now() + DRAIN_DEADLINE;
    for r in readers {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r).await {
            Ok(_) => {}
            Err(_) => {
                // The reader's state so far is kept; it is simply not waited for any more.
            }
        }
    }

    if hostile {
        // The cap on an open segment is only tested once an endless publish has had time to
        // reach it: on a short soak, keep the load up (with a deadline) until each endless
        // publisher has been cut off or has sent past the cap.
        let waited = Instant::now();
        let deadline = waited + ENDLESS_CUT_DEADLINE;
        let decided = || {
            stats.endless_dropped.load(Ordering::Relaxed)
                + stats.endless_uncut.load(Ordering::Relaxed)
                + stats.endless_refused.load(Ordering::Relaxed)
                >= endless_publishers() as u64
        };
        while !decided() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stats.endless_undecided.store(!decided(), Ordering::Relaxed);
        stats
            .endless_wait_ms
            .store(waited.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    for c in &stats.conns {
        c.open_at_end
            .store(c.open.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    // Does each node still answer?
    let status_doc = async {
        let response = client
            .get(format!("http://{http}/status"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        let code = response.status().as_u16();
        let body = response.bytes().await.ok()?;
        Some((
            code,
            serde_json::from_slice::<serde_json::Value>(&body).ok(),
        ))
    }
    .await;
    let orch_status = client
        .get(format!("{honest_uri}/status"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());

    if hostile {
        // The honest streams have ended: try to take each ID over while it is recently ended.
        for i in 0..HONEST_STREAMS {
            stats
                .ended_takeover_attempts
                .fetch_add(1, Ordering::Relaxed);
            if rtmp_publish(rtmp, &format!("honest-{i}"), Duration::from_secs(5))
                .await
                .is_ok()
            {
                stats
                    .ended_takeover_accepted
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    let _ = stop_tx.send(true);
    for t in hostile_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = sampler.await;

    // Figures. The `/status` document is kept for whoever reads the figures.
    if let Some((_, Some(doc))) = &status_doc {
        let _ = std::fs::write(dir.join("status.json"), doc.to_string());
    }
    let records: Vec<serde_json::Value> = status_doc
        .as_ref()
        .and_then(|(_, doc)| doc.as_ref())
        .and_then(|d| d["segments"].as_array().cloned())
        .unwrap_or_default();
    let ingest_errors: BTreeMap<String, u64> = status_doc
        .as_ref()
        .and_then(|(_, doc)| doc.as_ref())
        .and_then(|d| d["ingest_errors"].as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let mut honest_failures = BTreeMap::new();
    for rec in &records {
        if rec["manifest_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("honest-"))
            && rec["outcome"].as_str() != Some("ok")
        {
            let error = rec["error"].as_str().unwrap_or("-");
            // The orchestrator's address differs per run; the reason is what matters.
            let reason = error.split_once(": ").map_or(error, |(_, r)| r);
            *honest_failures
                .entry(reason.chars().take(80).collect::<String>())
                .or_insert(0) += 1;
        }
    }
    let mut hostile_orch_attempts = BTreeMap::new();
    if let Some(uri) = &hostile_uri {
        for rec in &records {
            for a in rec["attempts"].as_array().into_iter().flatten() {
                if a["orchestrator"].as_str() == Some(uri) {
                    let result = a["error_kind"].as_str().unwrap_or("ok").to_owned();
                    *hostile_orch_attempts.entry(result).or_insert(0) += 1;
                }
            }
        }
    }
    let rendition = LADDER.split(',').next().unwrap();
    let mut streams = Vec::new();
    for (i, state) in reader_states.iter().enumerate() {
        let id = format!("honest-{i}");
        let state = state.lock().unwrap();
        // Published: what the honest publisher's segments became, however they were seen.
        // Sequence numbers past 10^9 are the hostile push's, not the publisher's.
        let mut published: BTreeSet<u64> = state
            .listed
            .get("source")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for rec in &records {
            if rec["manifest_id"].as_str() == Some(&id)
                && let Some(seq) = rec["seq"].as_u64()
            {
                published.insert(seq);
            }
        }
        published.retain(|s| *s < 1_000_000_000);
        let served = state.fetched.get(rendition);
        let served_count = published
            .iter()
            .filter(|s| served.is_some_and(|f| f.contains(s)))
            .count();
        streams.push(StreamFigures {
            id,
            published: published.len(),
            served: served_count,
            publisher_exit: exits.get(i).cloned().unwrap_or_default(),
        });
    }

    broadcaster.stop().await;
    orchestrator.stop().await;
    if let Some(h) = hostile_orch {
        h.stop().await;
    }
    stack.stop().await;

    let samples = samples.lock().unwrap();
    let mut nodes = Vec::new();
    for (name, _) in &watched {
        let s = samples.get(name).cloned().unwrap_or_default();
        let (log, status, bound) = match *name {
            "broadcaster" => (
                dir.join("broadcaster.log"),
                status_doc.as_ref().map(|(c, _)| *c),
                Some(BROADCASTER_RSS_BOUND_MIB),
            ),
            "orchestrator" => (
                dir.join("orchestrator.log"),
                orch_status,
                Some(orchestrator_rss_bound_mib()),
            ),
            _ => (dir.join("hostile-orchestrator.log"), None, None),
        };
        nodes.push(NodeFigures {
            name,
            peak_mib: s.iter().copied().fold(0.0, f64::max),
            final_mib: s.last().copied().unwrap_or(0.0),
            samples: s.len(),
            panics: count_panics(&log),
            status,
            bound_mib: bound,
        });
    }
    Ok(PhaseResult {
        name,
        payments: !offline,
        nodes,
        streams,
        hostile: hostile.then_some(stats),
        hostile_orch_attempts,
        honest_failures,
        ingest_errors,
        dir: dir.to_owned(),
    })
}

impl PhaseResult {
    fn print(&self) {
        let published: usize = self.streams.iter().map(|s| s.published).sum();
        let served: usize = self.streams.iter().map(|s| s.served).sum();
        let min = self
            .streams
            .iter()
            .map(|s| ratio(s.served, s.published))
            .fold(f64::INFINITY, f64::min);
        println!(
            "\n[{}] payments {}, dir {}",
            self.name,
            if self.payments {
                "on (anvil)"
            } else {
                "off (LPT_BENCH_OFFLINE)"
            },
            self.dir.display()
        );
        println!(
            "  honest segment success: {served}/{published} = {:.1} %, worst stream {:.1} %",
            ratio(served, published) * 100.0,
            min * 100.0
        );
        for s in &self.streams {
            if s.served < s.published || s.published == 0 || s.publisher_exit != "ok" {
                println!(
                    "    {}: {}/{} served, publisher {}",
                    s.id, s.served, s.published, s.publisher_exit
                );
            }
        }
        println!(
            "  {:<22} {:>9} {:>9} {:>9} {:>7} {:>8}",
            "node", "peak MiB", "final MiB", "bound", "panics", "/status"
        );
        for n in &self.nodes {
            println!(
                "  {:<22} {:>9.1} {:>9.1} {:>9} {:>7} {:>8}",
                n.name,
                n.peak_mib,
                n.final_mib,
                n.bound_mib.map_or("info".to_owned(), |b| format!("{b:.0}")),
                n.panics,
                match (n.bound_mib, n.status) {
                    (None, _) => "-".to_owned(),
                    (_, Some(code)) => code.to_string(),
                    (_, None) => "none".to_owned(),
                }
            );
        }
        if let Some(h) = &self.hostile {
            for (i, c) in h.conns.iter().enumerate() {
                println!(
                    "  hostile conns → {:<17} connects {:>6}, failed {:>6}, closed by node {:>6}, open mean {:>4} max {:>4} at end {:>4}",
                    TARGETS[i],
                    c.connects.load(Ordering::Relaxed),
                    c.connect_failures.load(Ordering::Relaxed),
                    c.closed_by_node.load(Ordering::Relaxed),
                    c.open_sum.load(Ordering::Relaxed)
                        / c.open_ticks.load(Ordering::Relaxed).max(1),
                    c.max_open.load(Ordering::Relaxed),
                    c.open_at_end.load(Ordering::Relaxed),
                );
            }
            println!(
                "  endless segment: {} publishes accepted, {} refused, {} dropped by the node, {} not cut off past {:.1} MB, {:.1} MB sent; load kept up {:.1} s after the readers for it",
                h.endless_accepted.load(Ordering::Relaxed),
                h.endless_refused.load(Ordering::Relaxed),
                h.endless_dropped.load(Ordering::Relaxed),
                h.endless_uncut.load(Ordering::Relaxed),
                ENDLESS_CUT_SLACK * max_segment_bytes() / 1e6,
                h.endless_bytes.load(Ordering::Relaxed) as f64 / 1e6,
                h.endless_wait_ms.load(Ordering::Relaxed) as f64 / 1e3
            );
            println!(
                "  poison pushes (seq u64::MAX-1, Content-Duration i64::MAX) by answer: {:?}",
                h.pushes.lock().unwrap()
            );
            println!(
                "  takeovers of live honest IDs: {}/{} accepted; of ended ones: {}/{} accepted",
                h.takeover_accepted.load(Ordering::Relaxed),
                h.takeover_attempts.load(Ordering::Relaxed),
                h.ended_takeover_accepted.load(Ordering::Relaxed),
                h.ended_takeover_attempts.load(Ordering::Relaxed),
            );
            println!(
                "  segments tried at the EV=1 wei orchestrator, by result: {:?}",
                self.hostile_orch_attempts
            );
        }
        println!("  broadcaster ingest errors: {:?}", self.ingest_errors);
        if !self.honest_failures.is_empty() {
            println!(
                "  honest segments failed, by the broadcaster's reason: {:?}",
                self.honest_failures
            );
        }
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = &self.hostile {
            let uncut = h.endless_uncut.load(Ordering::Relaxed);
            if uncut > 0 {
                out.push(format!(
                    "{}: {uncut} endless-segment publishes sent {:.1} MB without being cut off (max_segment_bytes {:.1} MB)",
                    self.name,
                    ENDLESS_CUT_SLACK * max_segment_bytes() / 1e6,
                    max_segment_bytes() / 1e6
                ));
            }
            if h.endless_undecided.load(Ordering::Relaxed) {
                out.push(format!(
                    "{}: an endless-segment publisher was neither cut off nor past the cap within {} s after the readers: the cap went untested",
                    self.name,
                    ENDLESS_CUT_DEADLINE.as_secs()
                ));
            }
        }
        for s in &self.streams {
            if s.published == 0 || s.served < s.published {
                out.push(format!(
                    "{}: {} honest success {}/{}",
                    self.name, s.id, s.served, s.published
                ));
            }
        }
        for n in &self.nodes {
            if n.panics > 0 {
                out.push(format!(
                    "{}: {} logged {} panics",
                    self.name, n.name, n.panics
                ));
            }
            if let Some(bound) = n.bound_mib {
                if n.peak_mib > bound {
                    out.push(format!(
                        "{}: {} peak RSS {:.1} MiB > {bound} MiB",
                        self.name, n.name, n.peak_mib
                    ));
                }
                if n.samples == 0 {
                    out.push(format!("{}: {} was never sampled", self.name, n.name));
                }
                if n.status.is_none() {
                    out.push(format!(
                        "{}: {} did not answer /status at the end",
                        self.name, n.name
                    ));
                }
            }
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

// ---------------------------------------------------------------------------------------------
// The honest HLS reader.

#[derive(Default)]
struct ReaderState {
    master_seen: bool,
    /// Sequence numbers listed per rendition.
    listed: BTreeMap<String, BTreeSet<u64>>,
    /// Sequence numbers fetched whole per rendition.
    fetched: BTreeMap<String, BTreeSet<u64>>,
}

/// GETs `url`; the status and body.
async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, Vec<u8>)> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let code = response.status().as_u16();
    Some((code, response.bytes().await.ok()?.to_vec()))
}

/// Pulls the master playlist, every media playlist and every new segment, twice a second, until
/// the publisher has ended and every rendition has ENDLIST with all its segments fetched.
async fn reader(
    client: reqwest::Client,
    http: SocketAddr,
    id: String,
    state: Arc<Mutex<ReaderState>>,
    publishing_done: Arc<AtomicBool>,
) {
    let base = format!("http://{http}/stream/");
    loop {
        let done_before = publishing_done.load(Ordering::Relaxed);
        let mut complete = false;
        if let Some((200, body)) = get(&client, &format!("{base}{id}.m3u8")).await {
            state.lock().unwrap().master_seen = true;
            let variants: Vec<String> = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            complete = !variants.is_empty();
            for variant in variants {
                // "<id>/<rendition>.m3u8", relative to /stream/.
                let Some(rendition) = variant
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.strip_suffix(".m3u8"))
                    .map(str::to_owned)
                else {
                    continue;
                };
                let Some((200, body)) = get(&client, &format!("{base}{variant}")).await else {
                    complete = false;
                    continue;
                };
                let text = String::from_utf8_lossy(&body).into_owned();
                complete &= text.contains("#EXT-X-ENDLIST");
                for uri in text
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    // "<rendition>/<seq>.ts", relative to the media playlist.
                    let Some(seq) = uri
                        .rsplit('/')
                        .next()
                        .and_then(|f| f.strip_suffix(".ts"))
                        .and_then(|s| s.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    {
                        let mut s = state.lock().unwrap();
                        s.listed.entry(rendition.clone()).or_default().insert(seq);
                        if s.fetched.get(&rendition).is_some_and(|f| f.contains(&seq)) {
                            continue;
                        }
                    }
                    match get(&client, &format!("{base}{id}/{uri}")).await {
                        Some((200, body)) if !body.is_empty() => {
                            state
                                .lock()
                                .unwrap()
                                .fetched
                                .entry(rendition.clone())
                                .or_default()
                                .insert(seq);
                        }
                        _ => complete = false,
                    }
                }
            }
        }
        if done_before && complete {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile load.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What a slowloris connection to `target` trickles: a valid start, then an endless middle.
fn slowloris_byte(target: usize, at: usize, rng: &mut XorShift) -> u8 {
    const HTTP: &[u8] = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    // A TLS handshake record of 512 bytes announced, a ClientHello begun.
    const TLS: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    match target {
        // RTMP C0 then C1 (1,536 bytes: never finished at this pace).
        0 if at == 0 => 3,
        0 => rng.next() as u8,
        1 if at < HTTP.len() => HTTP[at],
        // Header lines "X-aaaa: b\r\n" forever: the head never ends.
        1 => b"X-aaaa: b\r\n"[(at - HTTP.len()) % 11],
        _ if at < TLS.len() => TLS[at],
        _ => rng.next() as u8,
    }
}

async fn hostile_connection(
    i: usize,
    target: usize,
    addr: SocketAddr,
    garbage: bool,
    stats: Arc<HostileStats>,
    mut stop: watch::Receiver<bool>,
) {
    let counters = &stats.conns[target];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1000_0001));
    // Each connection from its own loopback address, as from a botnet.
    let source = IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250) as u8 + 1));
    while !*stop.borrow() {
        let connected = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(addr).await
        };
        let stream = match tokio::time::timeout(Duration::from_secs(5), connected).await {
            Ok(Ok(s)) => s,
            _ => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        counters.connects.fetch_add(1, Ordering::Relaxed);
        let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_open.fetch_max(open, Ordering::Relaxed);
        let (mut rd, mut wr) = stream.into_split();
        let mut at = 0usize;
        let first = if garbage {
            rng.bytes(1024)
        } else {
            at = 1;
            vec![slowloris_byte(target, 0, &mut rng)]
        };
        let mut closed = wr.write_all(&first).await.is_err();
        let mut buf = vec![0u8; 4096];
        while !closed {
            let pause = if garbage {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(2000 + rng.next() % 2000)
            };
            tokio::select! {
                r = rd.read(&mut buf) => {
                    // Whatever the node answers is read and dropped; an end is a close.
                    if matches!(r, Ok(0) | Err(_)) {
                        closed = true;
                    }
                }
                _ = tokio::time::sleep(pause) => {
                    let more = if garbage {
                        rng.bytes(64)
                    } else {
                        at += 1;
                        vec![slowloris_byte(target, at - 1, &mut rng)]
                    };
                    closed = wr.write_all(&more).await.is_err();
                }
                _ = stop.changed() => {
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        counters.closed_by_node.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_sub(1, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

// A minimal RTMP publisher: the original (digest-free) handshake, connect, createStream,
// publish, then raw FLV video tags in type-0 chunks. Exact control over timestamps is the point,
// which ffmpeg does not give.

fn amf_str(o: &mut Vec<u8>, s: &str) {
    o.push(2);
    o.extend_from_slice(&(s.len() as u16).to_be_bytes());
    o.extend_from_slice(s.as_bytes());
}

fn amf_num(o: &mut Vec<u8>, n: f64) {
    o.push(0);
    o.extend_from_slice(&n.to_be_bytes());
}

fn amf_obj(o: &mut Vec<u8>, props: &[(&str, &str)]) {
    o.push(3);
    for (k, v) in props {
        o.extend_from_slice(&(k.len() as u16).to_be_bytes());
        o.extend_from_slice(k.as_bytes());
        amf_str(o, v);
    }
    o.extend_from_slice(&[0, 0, 9]);
}

/// Chunk size we announce before anything else.
const CHUNK: usize = 65536;

fn rtmp_message(csid: u8, type_id: u8, stream_id: u32, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.push(csid & 0x3f);
    out.extend_from_slice(&ts.min(0xFF_FFFF).to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    for (n, part) in payload.chunks(CHUNK).enumerate() {
        if n > 0 {
            out.push(0xC0 | (csid & 0x3f));
        }
        out.extend_from_slice(part);
    }
    out
}

struct RtmpConn {
    wr: tokio::net::tcp::OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
}

impl RtmpConn {
    async fn video(&mut self, ts: u32, body: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(&rtmp_message(6, 9, 1, ts, body)).await
    }
}

impl Drop for RtmpConn {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Connects to `addr` and publishes `key`; Err when the node refuses or does not answer.
/// The hostile publishers' source address: another client than the honest ffmpeg publishers
/// (127.0.0.1), so a node that lets a publisher's own address resume its stream still has to
/// refuse these.
const HOSTILE_PUBLISHER_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

async fn rtmp_publish(addr: SocketAddr, key: &str, deadline: Duration) -> Result<RtmpConn, String> {
    let attempt = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(HOSTILE_PUBLISHER_IP), 0))
            .map_err(|e| e.to_string())?;
        let mut s = socket.connect(addr).await.map_err(|e| e.to_string())?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ nanos);
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; 8]);
        c0c1.extend(rng.bytes(1528));
        s.write_all(&c0c1).await.map_err(|e| e.to_string())?;
        let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
        s.read_exact(&mut s0s1s2)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        s.write_all(&s0s1s2[1..1537])
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(&rtmp_message(2, 1, 0, 0, &(CHUNK as u32).to_be_bytes()))
            .await
            .map_err(|e| e.to_string())?;
        let tc_url = format!("rtmp://{addr}/live");
        let mut connect = Vec::new();
        amf_str(&mut connect, "connect");
        amf_num(&mut connect, 1.0);
        amf_obj(
            &mut connect,
            &[
                ("app", "live"),
                ("type", "nonprivate"),
                ("flashVer", "FMLE/3.0"),
                ("tcUrl", &tc_url),
            ],
        );
        let mut create = Vec::new();
        amf_str(&mut create, "createStream");
        amf_num(&mut create, 2.0);
        create.push(5);
        let mut publish = Vec::new();
        amf_str(&mut publish, "publish");
        amf_num(&mut publish, 3.0);
        publish.push(5);
        amf_str(&mut publish, key);
        amf_str(&mut publish, "live");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        for (step, message, csid, stream_id) in [
            (1usize, connect, 3u8, 0u32),
            (2, create, 3, 0),
            (3, publish, 8, 1),
        ] {
            s.write_all(&rtmp_message(csid, 20, stream_id, 0, &message))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                if step < 3 && count(&got, b"_result") >= step {
                    break;
                }
                if step == 3 && count(&got, b"Publish.Start") > 0 {
                    let (mut rd, wr) = s.into_split();
                    // Keep reading so the node never blocks writing to us.
                    let drain = tokio::spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
                    });
                    return Ok(RtmpConn { wr, drain });
                }
                if count(&got, b"_error") > 0 || count(&got, b"BadName") > 0 {
                    return Err("refused".to_owned());
                }
                let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err(format!("closed at step {step}"));
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        Err("unreachable".to_owned())
    };
    tokio::time::timeout(deadline, attempt)
        .await
        .unwrap_or_else(|_| Err("no answer".to_owned()))
}

/// One key frame, then frames all stamped 0 at [`ENDLESS_BYTES_PER_SEC`]; reconnects when
/// dropped.
async fn endless_publisher(
    publisher: usize,
    addr: SocketAddr,
    media: Arc<Media>,
    stats: Arc<HostileStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut n = 0u32;
    while !*stop.borrow() {
        n += 1;
        match rtmp_publish(
            addr,
            &format!("hostile-endless-{publisher}-{n}"),
            Duration::from_secs(5),
        )
        .await
        {
            Ok(mut conn) => {
                stats.endless_accepted.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let mut sent = 0f64;
                let mut ok = conn.video(0, &media.seq_header).await.is_ok()
                    && conn.video(0, &media.frames[0].1).await.is_ok();
                let mut frames = media.frames[1..].iter().cycle();
                while ok && !*stop.borrow() {
                    if sent > ENDLESS_CUT_SLACK * max_segment_bytes() {
                        stats.endless_uncut.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    if sent > ENDLESS_BYTES_PER_SEC * started.elapsed().as_secs_f64() {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                            _ = stop.changed() => return,
                        }
                    }
                    let (_, body) = frames.next().expect("cycle");
                    ok = conn.video(0, body).await.is_ok();
                    sent += body.len() as f64;
                    stats
                        .endless_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                }
                if !ok {
                    stats.endless_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                stats.endless_refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Every 2 s: one poisoned push into a live honest RTMP stream.
async fn pusher(
    client: reqwest::Client,
    http: SocketAddr,
    media: Arc<Media>,
    stats: Arc<HostileStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut k = 0;
    while !*stop.borrow() {
        let url = format!(
            "http://{http}/live/honest-{}/{}.ts",
            k % HONEST_STREAMS,
            u64::MAX - 1
        );
        k += 1;
        let answer = client
            .post(url)
            .header("Content-Duration", i64::MAX.to_string())
            .body(media.push_ts.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_or_else(
                |e| {
                    if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "error".to_owned()
                    }
                },
                |r| r.status().as_u16().to_string(),
            );
        *stats.pushes.lock().unwrap().entry(answer).or_insert(0) += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Every 2 s: publish a live honest stream's ID; when the node accepts, send 3 s of other
/// pictures into it, as a hijacker would.
async fn taker(
    addr: SocketAddr,
    media: Arc<Media>,
    stats: Arc<HostileStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut k = 0;
    while !*stop.borrow() {
        let id = format!("honest-{}", k % HONEST_STREAMS);
        k += 1;
        stats.takeover_attempts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conn) = rtmp_publish(addr, &id, Duration::from_secs(5)).await {
            stats.takeover_accepted.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let _ = conn.video(0, &media.seq_header).await;
            for (ts, body) in &media.frames {
                if started.elapsed() > Duration::from_secs(3) || *stop.borrow() {
                    break;
                }
                if conn.video(*ts, body).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}
