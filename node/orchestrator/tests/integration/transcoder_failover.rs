//! A remote transcoder killed mid-segment: the orchestrator notices at once (the kernel closes a
//! killed process's connections, so its work stream ends), sends the segment to the other
//! transcoder, and never gives the dead one work again; every segment is answered.
//!
//! The transcoders run as processes of their own, killed with SIGKILL: this test binary run again
//! as [`remote_transcoder_process`], which serves the orchestrator with `run_transcoder`, the same
//! call `lpt node transcoder` makes.

use std::time::{Duration, Instant};

use node_orchestrator::TranscoderConfig;
use node_orchestrator::config::TranscodeMode;

use crate::common::*;
use testkit::test_process::{TestProcess, exit_with_parent};

const SECRET: &str = "failover-secret";
const WAIT: Duration = Duration::from_secs(30);
/// Names the orchestrator the child process serves; unset, the child test does nothing.
const CHILD_ORCHESTRATOR: &str = "LPT_TEST_TRANSCODER_OF";
/// The child's libx264 preset.
const CHILD_PRESET: &str = "LPT_TEST_TRANSCODER_PRESET";
/// Where `lpt node transcoder` reads its secret from by default.
const SECRET_ENV: &str = "LPT_TRANSCODER_SECRET";

/// Segments each transcoder takes at once: one transcoder alone still has room for the test's two
/// broadcaster sessions, as an orchestrator sized to lose one must.
const CAPACITY: usize = 2;

/// A remote transcoder process of [`CAPACITY`]; killed (SIGKILL) on drop.
struct TranscoderProcess(TestProcess);

impl TranscoderProcess {
    fn spawn(orchestrator: &str, preset: &str) -> Self {
        Self(TestProcess::spawn(
            "transcoder_failover::remote_transcoder_process",
            [
                (CHILD_ORCHESTRATOR, orchestrator),
                (CHILD_PRESET, preset),
                (SECRET_ENV, SECRET),
            ],
        ))
    }

    /// SIGKILL, and the exit reaped.
    fn kill(&mut self) {
        self.0.kill();
    }
}

#[test]
#[ignore = "the remote transcoder process that transcoder_failover's test starts"]
fn remote_transcoder_process() {
    let Ok(orchestrator) = std::env::var(CHILD_ORCHESTRATOR) else {
        return;
    };
    exit_with_parent();
    let secret = std::env::var(SECRET_ENV).expect("the transcoder secret");
    let config = TranscoderConfig {
        x264_preset: std::env::var(CHILD_PRESET).expect("the preset"),
        capacity: CAPACITY,
        ..TranscoderConfig::new(&orchestrator, &secret)
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(node_orchestrator::run_transcoder(config))
        .unwrap();
}

/// One segment's request: when it was sent and answered, and whether it got its renditions.
#[derive(Debug)]
struct Answer {
    seq: usize,
    sent: Instant,
    answered: Instant,
    result: Result<usize, String>,
}

/// Sends `seqs` one after another as one broadcaster session, each within go-livepeer's 8 s
/// segment timeout (the client's default). The 720p rendition of the small source makes a segment
/// take a transcoder a few hundred milliseconds, long enough to be killed in the middle of one.
async fn send_all(uri: String, seqs: std::ops::Range<usize>) -> Vec<Answer> {
    let mut session = Session::offchain(&uri).await;
    session.ladder = reference_transcoder::ladder::parse_ladder("P720p30fps16x9").unwrap();
    let mut answers = Vec::new();
    for seq in seqs {
        let sent = Instant::now();
        let result = match session.send(seq).await {
            Ok(reply) => reply
                .renditions()
                .map(|r| r.len())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        answers.push(Answer {
            seq,
            sent,
            answered: Instant::now(),
            result,
        });
    }
    answers
}

fn transcoder(status: &serde_json::Value, id: u64) -> Option<&serde_json::Value> {
    status["transcoders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcoder_killed_mid_segment_loses_no_segment_and_gets_no_more_work() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some(SECRET.into());
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let probe = Session::offchain(&uri).await;

    // Attached one at a time, so the first is transcoder 1.
    let mut victim = TranscoderProcess::spawn(&uri, "ultrafast");
    wait_status(&probe.client, WAIT, "the first transcoder", |s| {
        s["transcoders"].as_array().unwrap().len() == 1
    })
    .await;
    let _survivor = TranscoderProcess::spawn(&uri, "ultrafast");
    wait_status(&probe.client, WAIT, "the second transcoder", |s| {
        s["transcoders"].as_array().unwrap().len() == 2
    })
    .await;

    // Two broadcaster sessions keep both transcoders busy.
    let senders = [
        tokio::spawn(send_all(uri.clone(), 0..6)),
        tokio::spawn(send_all(uri.clone(), 10..16)),
    ];
    // The victim is killed as soon as it is seen with its second segment: a segment takes it
    // longer than the 50 ms between looks, so the kill lands mid-transcode.
    let before = wait_status(&probe.client, WAIT, "a second task on transcoder 1", |s| {
        transcoder(s, 1).is_some_and(|t| t["assigned"].as_u64() >= Some(2) && t["load"] == 1)
    })
    .await;
    let victim_completed = transcoder(&before, 1).unwrap()["completed"]
        .as_u64()
        .unwrap();
    let killed_at = Instant::now();
    victim.kill();
    let detached = wait_status(&probe.client, WAIT, "transcoder 1 detached", |s| {
        transcoder(s, 1).is_none()
    })
    .await;
    let noticed_after = killed_at.elapsed();
    assert_eq!(detached["transcoders"].as_array().unwrap().len(), 1);

    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    for a in &answers {
        assert_eq!(a.result, Ok(1), "segment {} was not answered: {a:?}", a.seq);
    }
    // The segments in flight at the kill: one on each transcoder.
    let in_flight: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent < killed_at && a.answered > killed_at)
        .collect();
    assert_eq!(in_flight.len(), 2, "{answers:#?}");
    let slowest_uninterrupted = answers
        .iter()
        .filter(|a| a.answered < killed_at || a.sent > killed_at)
        .map(|a| a.answered - a.sent)
        .max()
        .unwrap();
    let answered_after_kill = in_flight
        .iter()
        .map(|a| a.answered - killed_at)
        .max()
        .unwrap();
    let round_trips: Vec<String> = answers
        .iter()
        .map(|a| format!("{}:{}ms", a.seq, (a.answered - a.sent).as_millis()))
        .collect();
    eprintln!(
        "transcoder killed: noticed after {noticed_after:?}; the segments in flight answered \
         {answered_after_kill:?} after the kill; slowest uninterrupted segment \
         {slowest_uninterrupted:?}; round trips {round_trips:?}"
    );

    let after = status(&probe.client).await;
    let survivor = transcoder(&after, 2).unwrap();
    let total = answers.len() as u64;
    // Everything the victim had not finished went to the survivor: its interrupted segment too.
    assert_eq!(
        survivor["assigned"].as_u64().unwrap() + victim_completed,
        total,
        "{after:#}"
    );
    assert_eq!(
        survivor["completed"].as_u64().unwrap(),
        survivor["assigned"].as_u64().unwrap()
    );
    assert!(noticed_after < Duration::from_secs(1), "{noticed_after:?}");
    // The interrupted segment waits at most for the survivor to finish the segment it had, then
    // for its own transcode there; it also came within the broadcaster's 8 s, or it would have
    // failed above.
    assert!(
        answered_after_kill < slowest_uninterrupted * 2 + Duration::from_secs(1),
        "{answered_after_kill:?} after the kill; slowest uninterrupted {slowest_uninterrupted:?}"
    );
    orchestrator.shutdown().await;
}
