//! The orchestrator's own per-segment overhead: everything except transcoding.
//!
//! An on-chain orchestrator (real anvil, priced, tickets validated, segment signatures checked,
//! result signed) runs in pass-through mode, so each rendition is the source itself and no FFmpeg
//! work is done. A broadcaster client on loopback sends a 2 s 720p segment with one ticket, over
//! TLS, and waits for the `TranscodeResult`; payments and segment headers are signed before the
//! clock starts, so the time is the orchestrator's plus loopback TLS and the client's own work.
//! Prints p50/p90/p99/max over the measured segments after a warm-up, and the process CPU time
//! per segment (client and server together: both share this machine's cores). The client has a
//! current-thread runtime on a thread of its own; the orchestrator a runtime sized as
//! `lpt node orchestrator` sizes it (`io_threads`: half the cores by default; `IO_THREADS=N`
//! overrides).
//!
//! To say where the time goes it also measures, on the same machine and client:
//! - the transport floor: the same TLS server loop and HTTP client posting the same body to a
//!   route that only reads it (TLS, HTTP framing, copies; no Livepeer work);
//! - a no-op request (`GET /healthz`) on the orchestrator: the per-request floor;
//! - keccak256 over the segment (the node hashes every upload once, while it arrives), with
//!   alloy's `keccak256` (assembly too, via the `asm-keccak` feature) and `keccak-asm` called directly;
//! - the machine's own noise: the same hash on both cores at once, with no I/O or hand-offs, whose
//!   tail no code of ours can remove;
//! - the result-signature hashing a real transcode would add: pass-through renditions are the
//!   source buffer, whose hash the node already verified, so it reuses it, but a real
//!   240p/360p/720p ladder's renditions are new bytes; they are made once with the reference
//!   transcoder and hashed as the node hashes them.
//!
//! The goals are ratios against the transport floor of the same body, measured in the same run
//! on the same machine and client: the process CPU per segment (client and server) at most
//! 5.5 × the floor's per request, and the p50 round trip at most 6.5 × the floor's. Hashing the
//! 1 MB segment alone costs about 2 × the floor, so ~3.5 × is what the node's design allows.
//! Measured on a shared 2-core machine: CPU 3.7 and 5.0 ×, p50 5.7 and 5.2 × in two full runs
//! (3.3 ms of CPU per segment against a floor of 0.66-0.89 ms, which moves the ratio); CPU
//! 3.6-5.0 ×, p50 3.6-6.4 × in checks. `cargo test` runs it as a check (a real anvil chain,
//! 200 segments of the full body against as many floor requests, nothing else; about 4 s)
//! failing above the goals plus a 50 % noise margin (see `testkit::bench`).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/lpt-target-orchestrator nice -n 10 cargo bench -p node-orchestrator --bench overhead`

use std::future::Future;
use std::time::{Duration, Instant};

use alloy::primitives::{U256, keccak256};
use axum::routing::{get, post};
use bytes::Bytes;
use node_orchestrator::config::{ChainConfig, OrchestratorConfig, TranscodeMode};
use node_orchestrator::profiles::wire_ladder;
use node_orchestrator::transcode::Rendition;
use protocol::chain::DeployConfig;
use protocol::client::{OrchestratorClient, SegmentRequest, segment_data};
use protocol::sig::NodeKey;
use protocol::ticket::{SenderLimits, TicketParams, TicketSender};
use reference_transcoder::{LadderOptions, LadderTranscoder, Profile, SourceConfig};
use testkit::bench::{Better, Goal, Mode, Who, cpu_time, judge};
use testkit::chain::{ETH, ORCHESTRATOR, TestChain};
use tokio::sync::watch;

/// Ours ÷ the transport floor's process CPU per request of the same body.
const CPU_GOAL: f64 = 5.5;
/// Ours ÷ the transport floor's p50 round trip of the same body.
const P50_GOAL: f64 = 6.5;

/// How many requests a measurement makes: unmeasured first, then measured.
#[derive(Debug, Clone, Copy)]
struct Runs {
    warmup: usize,
    measured: usize,
}

impl Runs {
    fn of(mode: Mode) -> Self {
        Runs {
            warmup: mode.pick(20, 10),
            measured: mode.pick(2000, CHECK_MEASURED),
        }
    }

    fn total(self) -> usize {
        self.warmup + self.measured
    }
}

const CHECK_MEASURED: usize = 200;
const LADDER: &str = "P240p30fps16x9,P360p30fps16x9,P720p30fps16x9";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_line(what: &str, sorted: &[Duration]) {
    println!("{what}, {} runs:", sorted.len());
    println!(
        "  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 90.0)),
        ms(percentile(sorted, 99.0)),
        ms(*sorted.last().expect("measured something")),
    );
}

/// CPU time of this whole process (every thread: client and server).
fn process_cpu() -> Duration {
    cpu_time(Who::Myself)
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (nanoseconds on a CPU).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let nanos = stat
        .split_whitespace()
        .next()
        .expect("run time")
        .parse::<u64>()
        .unwrap();
    Duration::from_nanos(nanos)
}

/// Runs `runs` calls of `one(i)` and returns the sorted measured times and the process CPU per
/// measured call.
async fn timed<F, Fut>(runs: Runs, mut one: F) -> (Vec<Duration>, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..runs.warmup {
        one(i).await;
    }
    let cpu_before = process_cpu();
    let mut times = Vec::with_capacity(runs.measured);
    for i in runs.warmup..runs.total() {
        let started = Instant::now();
        one(i).await;
        times.push(started.elapsed());
    }
    let cpu = (process_cpu() - cpu_before) / runs.measured as u32;
    times.sort();
    (times, cpu)
}

/// Sorted round trips of the measured segments, split at the 200, and the process CPU per segment.
struct Measured {
    times: Vec<Duration>,
    cpu: Duration,
    /// From the request to the 200: upload, hashing, header checks.
    upload: Vec<Duration>,
    /// From the 200 to the end of the result: pass-through, signing, storing, replying.
    result: Vec<Duration>,
}

/// Segments paid under one set of ticket params (O accepts at most 600 nonces per recipientRand).
const PER_PARAMS: usize = 500;

/// Sends `runs` segments of `body` (signed before timing) to the orchestrator.
async fn measure_segments(
    runs: Runs,
    client: &OrchestratorClient,
    key: &NodeKey,
    sender: &mut TicketSender,
    ladder: &[Profile],
    body: &Bytes,
) -> Measured {
    static SEQ: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let mut prepared = Vec::with_capacity(runs.total());
    while prepared.len() < runs.total() {
        let info = client.get_orchestrator(key, None).await.unwrap();
        let params = TicketParams::from_orchestrator_info(&info).unwrap();
        let batch = PER_PARAMS.min(runs.total() - prepared.len());
        prepared.extend((0..batch).map(|_| {
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seg =
                segment_data(key, &info, b"bench", seq, body, 2000, &wire_ladder(ladder)).unwrap();
            let tickets = sender.sign_tickets(&params, 1).unwrap();
            let payment = protocol::ticket::payment_message(&params, sender.address(), &tickets);
            (seg, payment)
        }));
    }
    // (until the 200, from the 200 to the end of the result) of each measured segment.
    let split = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let (times, cpu) = timed(runs, |i| {
        let (seg, payment) = &prepared[i];
        let split = &split;
        async move {
            let reply = client
                .submit_segment(SegmentRequest::new(seg, Some(payment), body.clone(), 2000))
                .await
                .unwrap();
            assert_eq!(reply.renditions().unwrap().len(), ladder.len());
            assert_eq!(reply.signature().len(), 65);
            if i >= runs.warmup {
                let mut split = split.borrow_mut();
                split.0.push(reply.upload_time);
                split.1.push(reply.transcode_time);
            }
        }
    })
    .await;
    let (mut upload, mut result) = split.into_inner();
    upload.sort();
    result.sort();
    Measured {
        times,
        cpu,
        upload,
        result,
    }
}

/// A TLS server on the orchestrator's own accept loop whose only route reads the body and
/// answers its length: what TLS and HTTP alone cost for a body of this size.
async fn floor_server() -> (String, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = axum::Router::new()
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    let (stop, _) =
        node_orchestrator::server::spawn_on_loopback(listener, axum::Router::new(), http);
    (format!("https://{addr}"), stop)
}

async fn measure_floor(runs: Runs, uri: &str, body: &Bytes) -> (Vec<Duration>, Duration) {
    let http = protocol::client::http_client();
    let url = format!("{uri}/echo");
    timed(runs, |_| {
        let request = http.post(&url).body(body.clone());
        async move {
            let reply = request.send().await.unwrap().text().await.unwrap();
            assert_eq!(reply, body.len().to_string());
        }
    })
    .await
}

/// The renditions a real transcode of `segment` into `ladder` produces.
fn real_renditions(segment: &Bytes, ladder: &[Profile]) -> Vec<Rendition> {
    let mut transcoder = LadderTranscoder::new(ladder.to_vec(), LadderOptions::default()).unwrap();
    transcoder
        .transcode(segment)
        .unwrap()
        .renditions
        .into_iter()
        .map(Rendition::from)
        .collect()
}

/// Runs a client on a thread and current-thread runtime of its own, as a broadcaster (a node of
/// its own) would, so no client task shares the orchestrator's workers; the caller waits on the
/// main thread, which is not one of them. (With client and orchestrator tasks mixed on the same
/// two workers the tail was longer: p99 19.6-22 ms against 12.7-14.6 ms on one machine.)
fn on_client_thread<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work())
    })
    .join()
    .unwrap()
}

/// The orchestrator's runtime as `lpt node orchestrator` builds it (`io_threads`, default half
/// the cores), or `IO_THREADS` workers.
fn main() {
    let mode = Mode::from_args();
    let mut config = OrchestratorConfig::offchain();
    config.io_threads = std::env::var("IO_THREADS")
        .ok()
        .map(|v| v.parse().expect("IO_THREADS is a number"));
    println!(
        "orchestrator runtime: {} worker threads{}",
        config.io_threads(),
        if config.io_threads.is_some() {
            " (IO_THREADS)"
        } else {
            " (the node's default: half the cores)"
        }
    );
    let started = Instant::now();
    config
        .runtime()
        .unwrap()
        .block_on(bench(mode, config.io_threads));
    println!("bench took {:.1} s", started.elapsed().as_secs_f64());
}

async fn bench(mode: Mode, io_threads: Option<usize>) {
    let runs = Runs::of(mode);
    // As `lpt node orchestrator` does at start (tester/src/node_cmd.rs): big blocks stay in the
    // heap instead of being unmapped and faulted back in zeroed for the next segment.
    reference_transcoder::tune_allocator_for_transcoding();
    let source = reference_transcoder::generate(&SourceConfig {
        width: 1280,
        height: 720,
        duration_secs: 2.0,
        gop_secs: 2.0,
        ..SourceConfig::default()
    })
    .expect("720p source");
    let segment = Bytes::from(source.ts_segments(2.0).unwrap().remove(0).data);
    let ladder = reference_transcoder::ladder::parse_ladder(LADDER).unwrap();

    let test_chain = TestChain::deploy(DeployConfig {
        round_length: 100_000,
        ..DeployConfig::default()
    })
    .await;
    let broadcaster = test_chain.broadcaster();
    test_chain
        .fund(&broadcaster, U256::from(ETH), U256::from(ETH))
        .await;
    let TestChain { chain, contracts } = test_chain;
    let mut config = OrchestratorConfig::offchain();
    config.io_threads = io_threads;
    config.offchain = false;
    config.transcode.mode = TranscodeMode::PassThrough;
    config.payments.price_per_unit = 1;
    config.payments.face_value = Some("100000000000000".into());
    config.payments.ticket_ev = "10000000000000".into();
    config.payments.expiration_blocks = 1_000_000;
    config.chain = Some(ChainConfig {
        rpc_url: chain.url().to_string(),
        private_key: alloy::hex::encode_prefixed(chain.signer(ORCHESTRATOR).to_bytes()).into(),
        ticket_broker: contracts.ticket_broker.to_string(),
        rounds_manager: contracts.rounds_manager.to_string(),
        poll_ms: 1000,
    });
    let orchestrator = node_orchestrator::start(config).await.unwrap();

    let key = NodeKey::Account(broadcaster.clone());
    let mut sender = TicketSender::new(
        broadcaster,
        SenderLimits {
            max_ticket_ev: U256::MAX,
            max_total_ev: U256::MAX,
        },
    );
    // The full segment, then (in a full run) a 16 KB prefix (pass-through does not parse it) to
    // separate the per-request cost from the per-byte cost (TLS, hashing, copies).
    let small = segment.slice(..16 * 1024);
    let bodies = match mode {
        Mode::Full => vec![segment.clone(), small],
        Mode::Check => vec![segment.clone()],
    };
    let mut full_body = None;
    for body in bodies {
        let (uri, key, client_ladder, client_body) = (
            orchestrator.service_uri().to_string(),
            key.clone(),
            ladder.clone(),
            body.clone(),
        );
        let (m, back) = on_client_thread(move || async move {
            let client = OrchestratorClient::connect(&uri).unwrap();
            let m = measure_segments(
                runs,
                &client,
                &key,
                &mut sender,
                &client_ladder,
                &client_body,
            )
            .await;
            (m, sender)
        });
        sender = back;
        print_line(
            &format!(
                "orchestrator overhead per segment ({} bytes, {} renditions, 1 ticket, TLS loopback, pass-through)",
                body.len(),
                ladder.len()
            ),
            &m.times,
        );
        println!(
            "  until the 200 (upload, hash, checks): p50 {:.2} ms  p99 {:.2} ms",
            ms(percentile(&m.upload, 50.0)),
            ms(percentile(&m.upload, 99.0)),
        );
        println!(
            "  from the 200 to the result (pass-through, sign, store, reply): p50 {:.2} ms  p99 {:.2} ms",
            ms(percentile(&m.result, 50.0)),
            ms(percentile(&m.result, 99.0)),
        );
        println!(
            "  process CPU (client + server) {:.2} ms per segment",
            ms(m.cpu)
        );
        if body.len() == segment.len() {
            full_body = Some((percentile(&m.times, 50.0), m.cpu));
        }
    }
    let (ours_p50, ours_cpu) = full_body.expect("the full segment was measured");

    let (floor_uri, floor_stop) = floor_server().await;
    let floor_body = segment.clone();
    let (times, floor_cpu) =
        on_client_thread(move || async move { measure_floor(runs, &floor_uri, &floor_body).await });
    print_line(
        &format!(
            "transport floor: POST of the {} byte segment to a route that only reads it (same TLS server loop and client)",
            segment.len()
        ),
        &times,
    );
    println!(
        "  process CPU (client + server) {:.2} ms per request",
        ms(floor_cpu)
    );
    let _ = floor_stop.send(true);
    let floor_p50 = percentile(&times, 50.0);
    let goal = |what: &str, ours: Duration, peer: Duration, goal: f64| Goal {
        what: format!(
            "orchestrator per segment, {what} (pass-through, {} bytes)",
            segment.len()
        ),
        ours: ms(ours),
        peer: ms(peer),
        peer_name: "the TLS echo floor".into(),
        better: Better::Lower,
        goal,
        margin: 0.5,
    };
    let goals = [
        goal("process CPU-ms", ours_cpu, floor_cpu, CPU_GOAL),
        goal("p50 ms", ours_p50, floor_p50, P50_GOAL),
    ];
    if mode == Mode::Check {
        orchestrator.shutdown().await;
        judge(mode, &goals);
        return;
    }

    println!("where the time goes:");
    let healthz = format!("{}/healthz", orchestrator.service_uri());
    let (times, _) = on_client_thread(move || async move {
        let http = protocol::client::http_client();
        timed(runs, |_| {
            let request = http.get(&healthz);
            async move {
                assert_eq!(request.send().await.unwrap().text().await.unwrap(), "ok");
            }
        })
        .await
    });
    print_line(
        "no-op request (GET /healthz on the orchestrator, same client)",
        &times,
    );

    for (name, hash) in [
        (
            "alloy's keccak256 (assembly too, with the asm-keccak feature protocol enables)",
            (|data: &[u8]| keccak256(data)) as fn(&[u8]) -> alloy::primitives::B256,
        ),
        (
            "the node's assembly keccak256 (keccak256_bulk)",
            node_orchestrator::node::results::keccak256_bulk,
        ),
    ] {
        let cpu_before = thread_cpu();
        let mut hash_times: Vec<Duration> = (0..50)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(hash(&segment));
                started.elapsed()
            })
            .collect();
        let cpu = (thread_cpu() - cpu_before) / 50;
        hash_times.sort();
        print_line(
            &format!("{name} of the {} byte segment, one thread", segment.len()),
            &hash_times,
        );
        println!("  thread CPU {:.2} ms per hash", ms(cpu));
    }

    // The machine's own tail: both cores hashing flat out, no I/O, no locks, no hand-offs. On a
    // shared VM this shows stalls no code of ours can remove, which bound any p99 above.
    let per_core: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    (0..runs.measured / 2)
                        .map(|_| {
                            let started = Instant::now();
                            std::hint::black_box(node_orchestrator::node::results::keccak256_bulk(
                                &segment,
                            ));
                            started.elapsed()
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut both: Vec<Duration> = per_core.into_iter().flatten().collect();
    both.sort();
    let median = percentile(&both, 50.0);
    print_line(
        "machine noise: the node's keccak256 of the segment on both cores at once",
        &both,
    );
    println!(
        "  {} of {} hashes took more than twice the median",
        both.iter().filter(|d| **d > median * 2).count(),
        both.len()
    );

    let renditions = real_renditions(&segment, &ladder);
    let rendition_bytes: usize = renditions.iter().map(|r| r.data.len()).sum();
    let mut sig_times: Vec<Duration> = (0..50)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(node_orchestrator::node::results::transcode_result_message(
                &renditions,
                None,
            ));
            started.elapsed()
        })
        .collect();
    sig_times.sort();
    print_line(
        &format!(
            "result-signature hashing a real transcode adds ({} renditions, {rendition_bytes} bytes; pass-through reuses the source hash instead)",
            renditions.len()
        ),
        &sig_times,
    );
    orchestrator.shutdown().await;
    judge(mode, &goals);
}
