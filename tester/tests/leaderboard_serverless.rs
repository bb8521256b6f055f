//! `lpt publish` (`tester::publish`) against the real community leaderboard: the handlers of
//! leaderboard-serverless v1.0.0 (served by `interop/leaderboard`, a Go module whose go.sum pins
//! it) on its own PostgreSQL store, in a PostgreSQL 15 cluster this test creates in a temporary
//! directory on a free loopback port.
//!
//! Two rendered runs (four orchestrators named by EIP-55 addresses, three regions, a 2-rendition
//! ladder; one orchestrator whose round trip was never measured, one that never answered) are
//! published; every record must be accepted, `raw_stats` must hold exactly what we posted (under
//! the lowercase address), and the scores `aggregated_stats` computes must equal the ones
//! `reports::leaderboard::aggregate` computes locally for the same records. A region v1.0.0
//! refuses is refused by `publish` before anything is posted, and the server refuses it too.
//!
//! AI records (`ai_records`, the `models.Stats` AI form of leaderboard-serverless after v1.0.0)
//! are then published the same way and must be accepted; v1.0.0 has no AI support, so `raw_stats`
//! holds their common fields (region, orchestrator, success rate, round trip, errors, timestamp)
//! and drops the AI ones. The AI-capable versions are not served by the Go module proxy (403 "This
//! module version is not available") and carry no licence to vendor them, so the AI score is
//! checked against `score/stats_scorer.go` by `reports/tests/integration/ai_leaderboard.rs` instead.
//!
//! Needs Go and Debian's PostgreSQL 15 (`run ci/setup`); a missing one fails the test, never skips
//! it. As root (CI), PostgreSQL runs as the `postgres` system user: it refuses to run as root.
//! Every child process is stopped by a guard, also when the test panics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use observation::record::*;
use reports::leaderboard::{Leaderboard, LeaderboardRecord, aggregate};
use reports::*;
use serde_json::Value;
use tester::publish::{AcceptedRegions, Delivery, PublishError, PublishOptions, publish};
use testkit::ports::free_port;

const SECRET_ENV: &str = "LPT_TEST_LEADERBOARD_SERVERLESS_SECRET";
const SECRET: &str = "leaderboard-serverless-test-secret";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SETUP_HINT: &str = "run ci/setup (it installs Debian's postgresql and downloads \
                          interop/leaderboard's Go modules)";
const R240: &str = "P240p30fps16x9";
const R360: &str = "P360p30fps16x9";

/// Anvil's accounts 1–4, in their EIP-55 spelling.
const HEALTHY: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const FLAKY: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const UNTIMED: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const DOWN: &str = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";
/// Anvil's account 5: the node the AI probe tested.
const AI_NODE: &str = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";

const PG_READY: Duration = Duration::from_secs(60);
const GO_BUILD: Duration = Duration::from_secs(900);
const SERVER_READY: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Child processes.

/// A child process stopped with `signal` (then killed) when dropped, even on panic.
struct Guard {
    name: &'static str,
    child: Child,
    signal: &'static str,
    log: Arc<Mutex<String>>,
}

impl Guard {
    /// Sends the stop signal and waits (bounded) for the exit; kills it when the deadline passes.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // By pid, with the signal the program shuts down cleanly on.
        let _ = Command::new("kill")
            .args(["-s", self.signal, &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.stop().is_none() {
            eprintln!("{} did not stop on SIG{}: killed", self.name, self.signal);
        }
    }
}

/// Copies `from` line by line into `log`, sending each line on `lines` while anyone listens.
fn drain(from: impl Read + Send + 'static, log: Arc<Mutex<String>>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits until a line satisfies `ready`, the stream ends, or the deadline passes.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    deadline: Duration,
    ready: impl Fn(&str) -> bool,
) -> Result<String, &'static str> {
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if ready(&line) => return Ok(line),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return Err("timed out"),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("exited"),
        }
    }
}

/// Runs a command to its end within `deadline`; panics with its output when it fails.
fn run_to_end(what: &str, cmd: &mut Command, deadline: Duration) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}: {SETUP_HINT}"));
    let log = Arc::new(Mutex::new(String::new()));
    let out = drain(child.stdout.take().unwrap(), log.clone());
    let err = drain(child.stderr.take().unwrap(), log.clone());
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: no end within {deadline:?}:\n{}",
                log.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close with the process: let the readers finish copying.
    for rx in [out, err] {
        while rx.recv_timeout(Duration::from_secs(5)).is_ok() {}
    }
    assert!(
        status.success(),
        "{what}: {status}:\n{}",
        log.lock().unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// The uid and gid to run PostgreSQL as: the `postgres` system user when we are root.
fn postgres_identity() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("effective uid in /proc/self/status");
    if euid != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!("no postgres user: PostgreSQL refuses to run as root; {SETUP_HINT}")
        });
    let fields: Vec<&str> = entry.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn as_postgres(cmd: &mut Command, identity: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = identity {
        cmd.uid(uid).gid(gid);
    }
    cmd.env("LC_ALL", "C").env_remove("PGDATA")
}

struct Postgres {
    _server: Guard,
    port: u16,
    // Removed after the server stopped (fields drop in order).
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn start() -> Postgres {
        let initdb = Path::new(PG_BIN).join("initdb");
        assert!(
            initdb.exists(),
            "{} is missing: PostgreSQL 15 is not installed; {SETUP_HINT}",
            initdb.display()
        );
        let identity = postgres_identity();
        let dir = tempfile::Builder::new()
            .prefix("lpt-pg-")
            .tempdir()
            .unwrap();
        if let Some((uid, gid)) = identity {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        run_to_end(
            "initdb",
            as_postgres(&mut Command::new(&initdb), identity)
                .current_dir(dir.path())
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            PG_READY,
        );
        // A free port can be taken between our probe and PostgreSQL's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = as_postgres(
                &mut Command::new(Path::new(PG_BIN).join("postgres")),
                identity,
            )
            .current_dir(dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("postgres: {e}; {SETUP_HINT}"));
            let log = Arc::new(Mutex::new(String::new()));
            let lines = drain(child.stderr.take().unwrap(), log.clone());
            let mut server = Guard {
                name: "postgres",
                child,
                signal: "INT", // fast shutdown
                log,
            };
            match wait_for_line(&lines, PG_READY, |l| {
                l.contains("database system is ready to accept connections")
            }) {
                Ok(_) => {
                    return Postgres {
                        _server: server,
                        port,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    server.stop();
                    last_log = format!("{why}:\n{}", server.log());
                }
            }
        }
        panic!("PostgreSQL did not start: {last_log}")
    }

    fn connection_string(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

// ---------------------------------------------------------------------------------------------
// leaderboard-serverless v1.0.0.

struct LeaderboardServer {
    process: Guard,
    url: String,
}

fn interop_module() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/leaderboard")
}

impl LeaderboardServer {
    fn start(postgres: &Postgres, bin_dir: &Path) -> LeaderboardServer {
        match Command::new("go").arg("version").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("`go version` failed: {out:?}; {SETUP_HINT}"),
            Err(e) => panic!("no `go` on PATH ({e}); {SETUP_HINT}"),
        }
        let bin = bin_dir.join("leaderboard-serverless-v1");
        run_to_end(
            "go build (interop/leaderboard)",
            Command::new("go")
                .current_dir(interop_module())
                .arg("build")
                .arg("-o")
                .arg(&bin)
                .arg("."),
            GO_BUILD,
        );
        let mut child = Command::new(&bin)
            .args(["-listen", "127.0.0.1:0"])
            .env("POSTGRES", postgres.connection_string())
            .env("SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let lines = drain(child.stdout.take().unwrap(), log.clone());
        let _stderr = drain(child.stderr.take().unwrap(), log.clone());
        let process = Guard {
            name: "leaderboard-serverless",
            child,
            signal: "TERM",
            log,
        };
        let ready = wait_for_line(&lines, SERVER_READY, |l| l.contains("\"ready\""))
            .unwrap_or_else(|why| panic!("the leaderboard {why}:\n{}", process.log()));
        let ready: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(ready["event"], "ready", "{ready}");
        assert_eq!(ready["leaderboard_serverless"], "v1.0.0", "{ready}");
        let addr = ready["addr"].as_str().unwrap();
        LeaderboardServer {
            url: format!("http://{addr}"),
            process,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

/// One orchestrator's part of a run: region, and per segment `Some(round trip ms)` for each
/// rendition received, `None` for one lost; `timed: false` journals no round trip at all.
struct Tested {
    orchestrator: &'static str,
    region: &'static str,
    renditions: Vec<[Option<f64>; 2]>,
    timed: bool,
}

fn tested(
    orchestrator: &'static str,
    region: &'static str,
    timed: bool,
    renditions: &[[Option<f64>; 2]],
) -> Tested {
    Tested {
        orchestrator,
        region,
        renditions: renditions.to_vec(),
        timed,
    }
}

/// Journals the segments and renders the run, so `leaderboard.json` is what `lpt run` leaves.
/// (On a plain thread: Polars refuses to block inside a Tokio runtime.)
fn rendered_run(dir: &Path, run: &'static str, tests: Vec<Tested>, t0_ms: i64) -> Leaderboard {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        std::fs::create_dir_all(&dir).unwrap();
        let journal = JournalWriter::in_run_dir(&dir).unwrap();
        for (n, t) in tests.iter().enumerate() {
            let stream = format!("{run}-{n}");
            for (seq, pair) in t.renditions.iter().enumerate() {
                for (rendition, rtt) in [R240, R360].into_iter().zip(pair) {
                    let ok = rtt.is_some();
                    let record = SegmentRecord {
                        t_ms: t0_ms + seq as i64 * 2000,
                        workload: "leaderboard".into(),
                        stream: stream.clone(),
                        rendition: rendition.into(),
                        seq: seq as u64,
                        orchestrator: Some(t.orchestrator.into()),
                        region: Some(t.region.into()),
                        ok,
                        error: (!ok).then(|| "download_timeout".to_string()),
                        message: (!ok).then(|| "rendition not downloaded within 8 s".to_string()),
                        duration_s: Some(2.0 + seq as f64 * 0.0333),
                        latency_ms: None,
                        upload_ms: ok.then_some(210.0 + seq as f64 * 7.0),
                        transcode_ms: ok.then_some(640.0 + seq as f64 * 11.0),
                        download_ms: rtt.map(|r| r * 0.2),
                        round_trip_ms: rtt.filter(|_| t.timed),
                        bytes: ok.then_some(120_000),
                        bitrate_kbps: ok.then_some(480.0),
                        width: ok.then_some(640),
                        height: ok.then_some(360),
                        frames: None,
                    };
                    journal.append(record).unwrap();
                }
            }
        }
        journal.sync().unwrap();
        drop(journal);
        let options = ReportOptions {
            png: false,
            ..ReportOptions::default()
        };
        finalize_run(&dir, &options).unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("leaderboard.json")).unwrap()).unwrap()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A rendition downloaded with a round trip of `ms` milliseconds.
fn ms(ms: f64) -> Option<f64> {
    Some(ms)
}

/// A rendition not downloaded.
fn lost() -> Option<f64> {
    None
}

fn first_run() -> Vec<Tested> {
    vec![
        tested(
            HEALTHY,
            "FRA",
            true,
            &[
                [ms(812.5), ms(901.25)],
                [ms(790.0), ms(1020.75)],
                [ms(845.125), ms(870.0)],
                [ms(1103.0), ms(990.5)],
            ],
        ),
        tested(
            HEALTHY,
            "MDW",
            true,
            &[[ms(1312.0), ms(1420.0)], [ms(1250.5), ms(1399.75)]],
        ),
        tested(
            FLAKY,
            "FRA",
            true,
            &[
                [ms(1701.0), ms(2210.5)],
                [ms(1650.25), lost()],
                [ms(1999.0), ms(2301.0)],
                [lost(), lost()],
            ],
        ),
        tested(
            UNTIMED,
            "SIN",
            false,
            &[[ms(700.0), ms(760.0)], [ms(710.0), ms(755.0)]],
        ),
        tested(DOWN, "MDW", true, &[[lost(), lost()], [lost(), lost()]]),
    ]
}

fn second_run() -> Vec<Tested> {
    vec![
        tested(
            HEALTHY,
            "FRA",
            true,
            &[[ms(1500.0), ms(1333.333)], [ms(1404.5), ms(1611.0)]],
        ),
        tested(
            FLAKY,
            "FRA",
            true,
            &[
                [lost(), ms(2500.0)],
                [ms(2050.0), ms(2600.75)],
                [ms(1890.0), ms(1875.5)],
            ],
        ),
        tested(UNTIMED, "SIN", false, &[[ms(699.0), ms(701.0)]]),
    ]
}

/// Writes a run's `leaderboard.json` holding only AI records (an AI probe run: a cold start and
/// three warm requests in FRA, one refused; two warm in MDW), as `reports` builds them.
fn ai_run(dir: &Path, t0_ms: i64) -> Leaderboard {
    let request = |n: u64, region: &str, cold: bool, latency_ms: f64, ok: bool| -> Record {
        AiRecord {
            t_ms: t0_ms + n as i64 * 1000,
            workload: "ai".into(),
            pipeline: "text-to-image".into(),
            model: "ByteDance/SDXL-Lightning".into(),
            orchestrator: Some(AI_NODE.into()),
            region: Some(region.into()),
            request: n,
            concurrency: 1,
            ok,
            reason: (!ok).then(|| "http_status".to_string()),
            error: (!ok).then(|| "503 Service Unavailable".to_string()),
            status: Some(if ok { 200 } else { 503 }),
            start: if cold { "cold" } else { "warm" }.into(),
            latency_ms,
            upload_ms: None,
            inference_ms: None,
            download_ms: None,
            outputs: u32::from(ok),
            width: ok.then_some(512),
            height: ok.then_some(512),
            output_bytes: if ok { 250_000 } else { 0 },
            seed: ok.then_some(n),
            params: r#"{"model_id":"ByteDance/SDXL-Lightning","prompt":"a bear","width":512}"#
                .into(),
            response: ok.then(|| r#"{"images":1,"width":512,"height":512}"#.to_string()),
        }
        .into()
    };
    let records = [
        request(0, "FRA", true, 4210.5, true),
        request(1, "FRA", false, 1020.25, true),
        request(2, "FRA", false, 1333.0, true),
        request(3, "FRA", false, 612.0, false),
        request(4, "MDW", false, 1480.0, true),
        request(5, "MDW", false, 1510.5, true),
    ];
    let frames = reports::frames::RecordFrames::from_records(&records).unwrap();
    let board = reports::leaderboard::with_ai(None, &frames.ai, t0_ms / 1000 + 10, None)
        .unwrap()
        .expect("AI records");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("leaderboard.json"),
        serde_json::to_vec_pretty(&board).unwrap(),
    )
    .unwrap();
    board
}

// ---------------------------------------------------------------------------------------------
// HTTP.

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

fn options(server: &LeaderboardServer) -> PublishOptions {
    PublishOptions {
        secret_env: SECRET_ENV.into(),
        timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(50),
        ..PublishOptions::new(&server.url)
    }
}

/// The value with every number as an `f64` (Go writes `1.0` as `1`).
fn numbers_as_f64(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
        }
        v => v,
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9
}

// ---------------------------------------------------------------------------------------------

#[test]
fn lpt_publish_to_leaderboard_serverless_v1_every_record_accepted_and_its_scores_equal_ours() {
    // SAFETY: set before this binary's only test starts any thread or child process.
    unsafe { std::env::set_var(SECRET_ENV, SECRET) };
    let started = Instant::now();

    // Timestamps within the server's default 24 h window.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let runs = tempfile::tempdir().unwrap();
    let (run1, run2) = (runs.path().join("run1"), runs.path().join("run2"));
    let board1 = rendered_run(&run1, "one", first_run(), now_ms - 600_000);
    let board2 = rendered_run(&run2, "two", second_run(), now_ms - 300_000);
    let run_ai = runs.path().join("ai");
    let board_ai = ai_run(&run_ai, now_ms - 200_000);
    assert_eq!(board_ai.ai_records.len(), 3, "FRA cold, FRA warm, MDW warm");

    // What lpt writes: lowercase addresses, renditions counted, a round trip of 0 scoring 0.
    let record = |board: &Leaderboard, orch: &str, region: &str| -> LeaderboardRecord {
        board
            .records
            .iter()
            .find(|r| r.orchestrator == orch.to_ascii_lowercase() && r.region == region)
            .unwrap_or_else(|| panic!("no {orch} {region} record: {:#?}", board.records))
            .clone()
    };
    let healthy = record(&board1, HEALTHY, "FRA");
    assert_eq!(
        (healthy.segments_sent, healthy.segments_received),
        (4, 8),
        "4 segments × 2 renditions"
    );
    let flaky = record(&board1, FLAKY, "FRA");
    assert_eq!((flaky.segments_sent, flaky.segments_received), (4, 5));
    assert_eq!(
        flaky.success_rate, 0.5,
        "2 of 4 segments had both renditions"
    );
    let untimed = record(&board1, UNTIMED, "SIN");
    assert_eq!((untimed.success_rate, untimed.round_trip_time), (1.0, 0.0));
    assert_eq!(board1.aggregated[&untimed.orchestrator]["SIN"].score, 0.0);
    assert_eq!(record(&board1, DOWN, "MDW").segments_received, 0);

    let postgres = Postgres::start();
    let bin_dir = tempfile::tempdir().unwrap();
    let mut server = LeaderboardServer::start(&postgres, bin_dir.path());
    eprintln!(
        "PostgreSQL on port {} and leaderboard-serverless v1.0.0 at {} up after {:.1} s",
        postgres.port,
        server.url,
        started.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    rt.block_on(async {
        // A region v1.0.0 does not know is refused before posting, naming it; with the accepted
        // regions asked of the server, v1.0.0's 404 on /api/regions falls back to its list.
        for regions in [
            AcceptedRegions::default(),
            AcceptedRegions::Server {
                fallback: tester::publish::V1_REGIONS.map(String::from).to_vec(),
            },
        ] {
            let opts = PublishOptions {
                region: Some("LAX".into()),
                regions,
                ..options(&server)
            };
            let err = publish(&run1, &opts).await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, PublishError::RegionNotAccepted { regions, .. } if regions == &["LAX"]),
                "{err:?}"
            );
            assert!(
                text.starts_with(
                    "region \"LAX\" is not one the leaderboard accepts (MDW, FRA, SIN; "
                ) && text.contains("nothing was published"),
                "{text}"
            );
            if matches!(opts.regions, AcceptedRegions::Server { .. }) {
                assert!(text.contains("answered 404 Not Found"), "{text}");
            } else {
                assert!(text.contains("v1.0.0's fixed list"), "{text}");
            }
            assert!(err.is_usage_error());
        }
        // …and the server itself refuses it: a correctly signed LAX record gets 400.
        let mut lax = serde_json::to_value(&board1.records[0]).unwrap();
        lax["region"] = "LAX".into();
        let body = serde_json::to_vec(&lax).unwrap();
        let refused = client
            .post(format!("{}/api/post_stats", server.url))
            .header("authorization", tester::publish::sign(SECRET.as_bytes(), &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        assert_eq!(refused.text().await.unwrap().trim(), "invalid region");

        // Both runs published: every record accepted.
        for (run, regions) in [
            (&run1, AcceptedRegions::default()),
            (
                &run2,
                AcceptedRegions::Server {
                    fallback: tester::publish::V1_REGIONS.map(String::from).to_vec(),
                },
            ),
        ] {
            let opts = PublishOptions {
                regions,
                ..options(&server)
            };
            let report = publish(run, &opts).await.unwrap();
            println!("{report}");
            assert!(report.all_accepted(), "{report}");
            for r in &report.records {
                assert_eq!(
                    (r.delivery, r.status, r.attempts, r.message.as_str()),
                    (Delivery::Accepted, Some(200), 1, "ok"),
                    "{report}"
                );
            }
        }

        // raw_stats holds exactly our records, under the lowercase address only (v1.0.0 keeps
        // an error's code and count, not its message).
        let ours: Vec<LeaderboardRecord> = board1
            .records
            .iter()
            .chain(&board2.records)
            .cloned()
            .collect();
        for orch in [HEALTHY, FLAKY, UNTIMED, DOWN] {
            let lower = orch.to_ascii_lowercase();
            let raw = get_json(
                &client,
                &format!("{}/api/raw_stats?orchestrator={lower}", server.url),
            )
            .await;
            for region in tester::publish::V1_REGIONS {
                let mut stored: Vec<Value> = raw[region]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(numbers_as_f64)
                    .collect();
                let mut posted: Vec<Value> = ours
                    .iter()
                    .filter(|r| r.orchestrator == lower && r.region == region)
                    .map(|r| {
                        let mut v = serde_json::to_value(r).unwrap();
                        for e in v["errors"].as_array_mut().unwrap() {
                            e.as_object_mut().unwrap().remove("message");
                        }
                        numbers_as_f64(v)
                    })
                    .collect();
                let by_time = |v: &Value| v["timestamp"].as_f64().unwrap() as i64;
                stored.sort_by_key(by_time);
                posted.sort_by_key(by_time);
                assert_eq!(stored, posted, "{orch} {region}: raw_stats vs posted");
            }
            let mixed = get_json(
                &client,
                &format!("{}/api/raw_stats?orchestrator={orch}", server.url),
            )
            .await;
            for region in tester::publish::V1_REGIONS {
                assert_eq!(
                    mixed[region].as_array().map_or(0, Vec::len),
                    0,
                    "v1.0.0 matches addresses as plain strings: {mixed}"
                );
            }
        }

        // aggregated_stats equals our local aggregation of the same records, per orchestrator
        // and region; then filtered by orchestrator and region.
        let want = aggregate(&ours);
        let got = get_json(&client, &format!("{}/api/aggregated_stats", server.url)).await;
        let got_keys: BTreeMap<&str, Vec<&str>> = got
            .as_object()
            .unwrap()
            .iter()
            .map(|(o, by)| (o.as_str(), by.as_object().unwrap().keys().map(String::as_str).collect()))
            .collect();
        let want_keys: BTreeMap<&str, Vec<&str>> = want
            .iter()
            .map(|(o, by)| (o.as_str(), by.keys().map(String::as_str).collect()))
            .collect();
        assert_eq!(got_keys, want_keys, "{got:#}");
        let mut worst = 0.0f64;
        for (orch, by_region) in &want {
            for (region, local) in by_region {
                let server_side = &got[orch][region];
                for (field, ours) in [
                    ("success_rate", local.success_rate),
                    ("round_trip_score", local.round_trip_score),
                    ("score", local.score),
                ] {
                    let theirs = server_side[field].as_f64().unwrap();
                    worst = worst.max((theirs - ours).abs());
                    assert!(
                        near(theirs, ours),
                        "{orch} {region} {field}: server {theirs}, lpt {ours}"
                    );
                }
            }
        }
        eprintln!("aggregated_stats vs lpt: largest difference {worst:e}");
        let untimed = UNTIMED.to_ascii_lowercase();
        assert_eq!(got[&untimed]["SIN"]["round_trip_score"], 0.0, "{got:#}");
        assert_eq!(got[&untimed]["SIN"]["success_rate"], 1.0, "{got:#}");
        let averaged = &want[&HEALTHY.to_ascii_lowercase()]["FRA"];
        let single = &board1.aggregated[&HEALTHY.to_ascii_lowercase()]["FRA"];
        assert!(
            (averaged.score - single.score).abs() > 1e-3,
            "the two runs must differ for the average to be tested"
        );

        let healthy = HEALTHY.to_ascii_lowercase();
        let one = get_json(
            &client,
            &format!(
                "{}/api/aggregated_stats?orchestrator={healthy}&region=FRA",
                server.url
            ),
        )
        .await;
        assert_eq!(one.as_object().unwrap().len(), 1, "{one:#}");
        assert_eq!(one[&healthy].as_object().unwrap().len(), 1, "{one:#}");
        assert!(near(
            one[&healthy]["FRA"]["score"].as_f64().unwrap(),
            want[&healthy]["FRA"].score
        ));

        // AI records: posted the same way, every one accepted, counted apart.
        let report = publish(&run_ai, &options(&server)).await.unwrap();
        println!("{report}");
        assert!(report.all_accepted(), "{report}");
        assert_eq!(report.ai_records(), 3);
        assert_eq!(
            report.headline(),
            "3 of 3 records accepted (0 transcoding, 3 AI)"
        );
        let text = report.to_string();
        assert!(
            text.contains("text-to-image ByteDance/SDXL-Lightning cold: accepted (200 OK"),
            "{text}"
        );
        let ai_node = AI_NODE.to_ascii_lowercase();
        let public = &board_ai.ai_aggregated["text-to-image"]["ByteDance/SDXL-Lightning"];
        for r in &report.records {
            assert_eq!(r.score, public[&ai_node][&r.region], "{report}");
        }
        // v1.0.0 stores the fields its Stats has (and zeros for the transcoding ones it lacks).
        let raw = get_json(
            &client,
            &format!("{}/api/raw_stats?orchestrator={ai_node}", server.url),
        )
        .await;
        for region in tester::publish::V1_REGIONS {
            let mut stored: Vec<Value> = raw[region]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(numbers_as_f64)
                .collect();
            let mut posted: Vec<Value> = board_ai
                .ai_records
                .iter()
                .filter(|r| r.region == region)
                .map(|r| {
                    assert_eq!(r.orchestrator, ai_node);
                    numbers_as_f64(serde_json::json!({
                        "region": r.region,
                        "orchestrator": r.orchestrator,
                        "segments_sent": 0,
                        "segments_received": 0,
                        "success_rate": r.success_rate,
                        "seg_duration": 0,
                        "upload_time": 0,
                        "download_time": 0,
                        "transcode_time": 0,
                        "round_trip_time": r.round_trip_time,
                        "errors": r.errors.iter().map(|e| serde_json::json!({
                            "error_code": e.error_code,
                            "count": e.count,
                        })).collect::<Vec<_>>(),
                        "timestamp": r.timestamp,
                    }))
                })
                .collect();
            let by_rtt = |v: &Value| (v["round_trip_time"].as_f64().unwrap() * 1e6) as i64;
            stored.sort_by_key(by_rtt);
            posted.sort_by_key(by_rtt);
            assert_eq!(stored, posted, "AI {region}: raw_stats vs posted");
        }
    });

    // The server stops on SIGTERM, cleanly.
    let status = server.process.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "leaderboard-serverless on SIGTERM: {status:?}\n{}",
        server.process.log()
    );
    drop(server);
    drop(postgres);
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
