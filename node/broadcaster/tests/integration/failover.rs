//! Orchestrators killed (SIGKILL) under a live stream: the broadcaster moves to another
//! orchestrator within a segment duration and loses no segment.
//!
//! Each orchestrator is a process of its own, so a kill is the kernel closing its connections
//! (reset or refused, never a polite answer): this test binary run again as
//! [`orchestrator_process`], which starts `node_orchestrator` from the config it is handed. The
//! first kill lands while a segment is inside the orchestrator (a delay fault holds its answer);
//! the second just after a segment was delivered, so the next one meets a dead peer. Each is
//! measured from the kill to the next segment the broadcaster serves in its HLS output.

use std::process::Stdio;
use std::time::{Duration, Instant};

use node_broadcaster::RunningBroadcaster;
use node_broadcaster::records::SourceSegmentRecord;
use node_orchestrator::config::OrchestratorConfig;

use crate::support::*;
use testkit::test_process::{TestProcess, exit_with_parent};

const STREAM: &str = "killed";
const RENDITION: &str = "P144p30fps16x9";
const SEGMENT: Duration = Duration::from_secs(2);
const ADMIN: &str = "failover-admin";
/// The orchestrator config (JSON) the child process runs; unset, the child test does nothing.
const CHILD_CONFIG: &str = "LPT_TEST_ORCHESTRATOR_CONFIG";
const WAIT: Duration = Duration::from_secs(30);

/// An orchestrator process; killed (SIGKILL) on drop.
struct OrchestratorProcess {
    process: TestProcess,
    uri: String,
}

impl OrchestratorProcess {
    async fn spawn() -> Self {
        let port = testkit::ports::free_port();
        let mut config = OrchestratorConfig::offchain();
        config.listen = ([127, 0, 0, 1], port).into();
        config.transcode.x264_preset = "ultrafast".into();
        config.transcode.encoder_threads = 1;
        config.admin_token = Some(ADMIN.into());
        let process = TestProcess::spawn(
            "failover::orchestrator_process",
            [(CHILD_CONFIG, serde_json::to_string(&config).unwrap())],
        );
        let addr = format!("127.0.0.1:{port}");
        tokio::task::spawn_blocking(move || testkit::ports::wait_for_port(&addr, WAIT))
            .await
            .unwrap();
        Self {
            process,
            uri: format!("https://127.0.0.1:{port}"),
        }
    }

    /// SIGKILL, and the exit reaped.
    fn kill(&mut self) {
        self.process.kill();
    }
}

#[test]
#[ignore = "the orchestrator process that failover's test starts"]
fn orchestrator_process() {
    let Ok(config) = std::env::var(CHILD_CONFIG) else {
        return;
    };
    exit_with_parent();
    let config: OrchestratorConfig = serde_json::from_str(&config).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let _running = node_orchestrator::start(config).await.unwrap();
        std::future::pending::<()>().await
    });
}

/// An orchestrator's admin and status endpoints, over its self-signed TLS.
fn admin_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

async fn orchestrator_status(http: &reqwest::Client, uri: &str) -> serde_json::Value {
    http.get(format!("{uri}/status"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn records(b: &RunningBroadcaster) -> Vec<SourceSegmentRecord> {
    b.state().records().records()
}

/// The first sequence number not yet delivered (every earlier one was).
fn next_undelivered(b: &RunningBroadcaster) -> u64 {
    records(b).iter().map(|r| r.seq + 1).max().unwrap_or(0)
}

/// Whether the broadcaster serves segment `seq` of the rendition.
async fn served(http: &reqwest::Client, b: &RunningBroadcaster, seq: u64) -> bool {
    let url = format!(
        "http://{}/stream/{STREAM}/{RENDITION}/{seq}.ts",
        b.http_addr
    );
    http.get(url).send().await.unwrap().status() == 200
}

/// From now until the broadcaster serves segment `seq`, polled every 10 ms.
async fn until_served(http: &reqwest::Client, b: &RunningBroadcaster, seq: u64) -> Duration {
    let started = Instant::now();
    while !served(http, b, seq).await {
        assert!(
            started.elapsed() < WAIT,
            "segment {seq} not served within {WAIT:?}: {:#?}",
            records(b)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

fn record(b: &RunningBroadcaster, seq: u64) -> SourceSegmentRecord {
    records(b)
        .into_iter()
        .find(|r| r.seq == seq)
        .expect("a record of the segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_orchestrators_are_left_within_a_segment_and_no_segment_is_lost() {
    let mut orchestrators = Vec::new();
    for _ in 0..3 {
        orchestrators.push(OrchestratorProcess::spawn().await);
    }
    let uris: Vec<String> = orchestrators.iter().map(|o| o.uri.clone()).collect();
    let mut config = config(RENDITION, uris.clone());
    config.hls_window = 60;
    let b = start(config).await;
    let publisher =
        testkit::publisher::command("testsrc2=size=320x180:rate=30", 30, 60, &b.rtmp_url(STREAM))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs");
    let http = admin_client();
    let index_of = |uri: &str| uris.iter().position(|u| u == uri).unwrap();

    // Kill 1: a segment is inside the serving orchestrator, which holds its answer 1.5 s.
    wait_for("two delivered segments", WAIT, || {
        records(&b).iter().filter(|r| r.outcome == "ok").count() >= 2
    })
    .await;
    let first = records(&b)[0].orchestrator.clone().unwrap();
    let received = orchestrator_status(&http, &first).await["segments"]["received"]
        .as_u64()
        .unwrap();
    let put = http
        .put(format!("{first}/admin/faults"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "delay_ms": 1500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let s = orchestrator_status(&http, &first).await;
        if s["segments"]["received"].as_u64().unwrap() > received
            && s["inflight_bytes"].as_u64().unwrap() > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no delayed segment: {s:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupted = next_undelivered(&b);
    orchestrators[index_of(&first)].kill();
    let first_failover = until_served(&http, &b, interrupted).await;
    let moved = record(&b, interrupted);
    let second = moved.orchestrator.clone().unwrap();
    assert_ne!(second, first, "{moved:#?}");
    assert_eq!(moved.attempts.len(), 2, "retried once: {moved:#?}");
    assert_eq!(moved.attempts[0].orchestrator, first, "{moved:#?}");
    assert_eq!(
        moved.attempts[0].error_kind.as_deref(),
        Some("connection"),
        "{moved:#?}"
    );

    // Kill 2: just after a segment was delivered, before the next one is cut.
    wait_for("two segments from the second orchestrator", WAIT, || {
        records(&b)
            .iter()
            .filter(|r| r.seq > interrupted && r.orchestrator.as_deref() == Some(&second))
            .count()
            >= 2
    })
    .await;
    let state = b.state().clone();
    wait_for("a moment between segments", WAIT, || {
        state
            .stream_status()
            .iter()
            .any(|s| s.manifest_id == STREAM && s.pending == 0)
    })
    .await;
    let next = next_undelivered(&b);
    orchestrators[index_of(&second)].kill();
    let second_failover = until_served(&http, &b, next).await;
    let served_at = std::time::SystemTime::now();
    let moved_again = record(&b, next);
    let cut_to_served = served_at
        .duration_since(std::time::UNIX_EPOCH + Duration::from_millis(moved_again.cut_at_unix_ms))
        .unwrap_or_default();
    let third = moved_again.orchestrator.clone().unwrap();
    assert!(third != first && third != second, "{moved_again:#?}");
    assert_eq!(moved_again.attempts.len(), 2, "{moved_again:#?}");
    assert_eq!(moved_again.attempts[0].orchestrator, second);
    assert_eq!(
        moved_again.attempts[0].error_kind.as_deref(),
        Some("connection"),
        "a dead peer is refused at once: {moved_again:#?}"
    );

    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "{stderr}");
    wait_finished(&b, STREAM, WAIT).await;
    let all = records(&b);
    let cut = b.state().stream(STREAM).unwrap().next_seq();
    let mut lost = Vec::new();
    for seq in 0..cut {
        if !served(&http, &b, seq).await {
            lost.push(seq);
        }
    }
    eprintln!(
        "orchestrator killed mid-segment: segment {interrupted} served {first_failover:?} after \
         the kill; killed between segments: segment {next} served {second_failover:?} after the \
         kill ({cut_to_served:?} after it was cut); {cut} segments cut, lost {lost:?}"
    );
    assert_eq!(all.len() as u64, cut, "{all:#?}");
    assert!(lost.is_empty(), "lost {lost:?}: {all:#?}");
    assert!(all.iter().all(|r| r.outcome == "ok"), "{all:#?}");
    // A dead orchestrator's session is never tried again.
    for r in all.iter().filter(|r| r.seq > interrupted) {
        assert!(r.attempts.iter().all(|a| a.orchestrator != first), "{r:#?}");
    }
    for r in all.iter().filter(|r| r.seq > next) {
        assert_eq!(r.attempts.len(), 1, "{r:#?}");
        assert_eq!(r.attempts[0].orchestrator, third, "{r:#?}");
    }
    let bound = SEGMENT + Duration::from_secs(1);
    assert!(first_failover < bound, "{first_failover:?}");
    assert!(second_failover < bound, "{second_failover:?}");
    b.shutdown().await;
}
