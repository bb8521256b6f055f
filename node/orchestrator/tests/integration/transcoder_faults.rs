//! The remote transcoder's fault switches and its name. What a transcoder puts on the wire
//! (registration metadata, reported pixels, rendition bytes) is captured by a go-style
//! orchestrator served by the test, as `go_wire` does, so each misbehaviour is seen exactly as
//! sent, whatever an orchestrator makes of it; a late answer and a connection dropped
//! mid-segment are met by a real orchestrator in remote mode with real segments, which retries
//! the lost segment and sees the transcoder register again. A bad name or switch fails at start.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use bytes::Bytes;
use node_orchestrator::config::TranscodeMode;
use node_orchestrator::profiles::wire_ladder;
use node_orchestrator::transcoder::TRANSCODER_NAME_METADATA;
use node_orchestrator::transcoder_faults::TranscoderFaults;
use node_orchestrator::{RunningOrchestrator, TranscoderConfig, start_transcoder};
use protocol::client::{SegmentRequest, segment_data};
use protocol::net::transcoder_server::{Transcoder, TranscoderServer};
use protocol::net::{NotifySegment, RegisterRequest, SegData};
use reference_transcoder::Profile;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::common::*;

const SECRET: &str = "faulty-secret";
const WAIT: Duration = Duration::from_secs(30);

/// An orchestrator handing every segment to remote transcoders, and a broadcaster session with
/// it asking for one rendition (256×144).
async fn remote_orchestrator() -> (RunningOrchestrator, Session) {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some(SECRET.into());
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::offchain(orchestrator.service_uri()).await;
    session.ladder.truncate(1);
    (orchestrator, session)
}

/// A transcoder config for `session`'s orchestrator with `faults`.
fn transcoder(session: &Session, name: &str, faults: TranscoderFaults) -> TranscoderConfig {
    TranscoderConfig {
        x264_preset: "ultrafast".into(),
        name: Some(name.into()),
        faults,
        ..TranscoderConfig::new(session.client.uri(), SECRET)
    }
}

/// Waits until `count` transcoders are attached.
async fn attached(session: &Session, count: usize) -> serde_json::Value {
    wait_status(
        &session.client,
        WAIT,
        &format!("{count} transcoders"),
        |s| s["transcoders"].as_array().unwrap().len() == count,
    )
    .await
}

/// Sends segment `seq`; returns its one rendition's bytes and reported pixels.
async fn rendition(session: &mut Session, seq: usize) -> (Bytes, u64) {
    let reply = session.send(seq).await.unwrap();
    let renditions = reply.renditions().unwrap();
    assert_eq!(renditions.len(), 1);
    let data = session.client.download(&renditions[0].url).await.unwrap();
    (data, renditions[0].pixels as u64)
}

fn transcoder_status(status: &serde_json::Value, id: u64) -> Option<&serde_json::Value> {
    status["transcoders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
}

/// What the go-style orchestrator below saw.
#[derive(Debug)]
enum Seen {
    /// A registration's gRPC metadata.
    Register(tonic::metadata::MetadataMap),
    /// A `/transcodeResults` post.
    Results(Answer),
}

/// One posted answer, parsed.
#[derive(Debug)]
struct Answer {
    task_id: i64,
    /// The top-level `Pixels` (decoded source pixels).
    decoded_pixels: u64,
    /// Each part's `Pixels` and bytes, in profile order.
    parts: Vec<(u64, Bytes)>,
}

impl Answer {
    fn parse(headers: &HeaderMap, body: Bytes) -> Self {
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        let boundary = node_orchestrator::multipart::boundary(&header("content-type"))
            .unwrap_or_else(|e| panic!("not renditions ({e}): {body:?}"));
        let parts = node_orchestrator::multipart::decode(&boundary, &body)
            .unwrap()
            .into_iter()
            .map(|part| {
                let pixels = part
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("pixels"))
                    .expect("a part's Pixels")
                    .1
                    .parse()
                    .unwrap();
                (pixels, part.body)
            })
            .collect();
        Self {
            task_id: header("taskid").parse().unwrap(),
            decoded_pixels: header("pixels").parse().unwrap(),
            parts,
        }
    }

    fn bytes(&self) -> Vec<&Bytes> {
        self.parts.iter().map(|(_, data)| data).collect()
    }
}

/// The `net.Transcoder` side of a go-style orchestrator: hands every task to whoever registers.
struct Dispatcher {
    tasks: Vec<NotifySegment>,
    seen: mpsc::UnboundedSender<Seen>,
}

#[tonic::async_trait]
impl Transcoder for Dispatcher {
    type RegisterTranscoderStream = ReceiverStream<Result<NotifySegment, tonic::Status>>;

    async fn register_transcoder(
        &self,
        request: tonic::Request<RegisterRequest>,
    ) -> Result<tonic::Response<Self::RegisterTranscoderStream>, tonic::Status> {
        let _ = self.seen.send(Seen::Register(request.metadata().clone()));
        let (tx, rx) = mpsc::channel(self.tasks.len() + 1);
        for task in &self.tasks {
            tx.send(Ok(task.clone())).await.unwrap();
        }
        // The sender lives on with the stream so the transcoder stays registered.
        tokio::spawn(async move { tx.closed().await });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

async fn results(
    State(seen): State<mpsc::UnboundedSender<Seen>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = seen.send(Seen::Results(Answer::parse(&headers, body)));
    StatusCode::OK
}

/// A go-style orchestrator on loopback giving each transcoder that registers one task per
/// entry of `sources` (task ids 1, 2, …; the source of each is that test segment), all with
/// `ladder`, and reporting what it sees.
struct GoStyle {
    uri: String,
    saw: mpsc::UnboundedReceiver<Seen>,
    /// Tasks each registration gets.
    tasks: usize,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<node_orchestrator::ServeEnd>,
}

impl GoStyle {
    async fn start(sources: &[usize], ladder: &[Profile]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("https://{}", listener.local_addr().unwrap());
        let (seen, saw) = mpsc::unbounded_channel();
        let tasks = sources
            .iter()
            .enumerate()
            .map(|(i, &seq)| NotifySegment {
                url: format!("{uri}/src/{seq}.ts"),
                seg_data: Some(SegData {
                    manifest_id: b"go-style-manifest".to_vec(),
                    seq: seq as i64,
                    duration: SEGMENT_MS as i32,
                    full_profiles3: wire_ladder(ladder),
                    ..Default::default()
                }),
                task_id: i as i64 + 1,
                orch_id: "0x0000000000000000000000000000000000000001".into(),
                ..Default::default()
            })
            .collect();
        let grpc = tonic::service::Routes::new(TranscoderServer::new(Dispatcher {
            tasks,
            seen: seen.clone(),
        }))
        .into_axum_router();
        let mut http = Router::new().route("/transcodeResults", post(results));
        for &seq in sources {
            http = http.route(
                &format!("/src/{seq}.ts"),
                get(move || async move { segments()[seq].clone() }),
            );
        }
        let (stop, server) =
            node_orchestrator::server::spawn_on_loopback(listener, grpc, http.with_state(seen));
        Self {
            uri,
            saw,
            tasks: sources.len(),
            stop,
            server,
        }
    }

    /// A transcoder config for this orchestrator.
    fn transcoder(&self, name: Option<&str>, faults: TranscoderFaults) -> TranscoderConfig {
        TranscoderConfig {
            x264_preset: "ultrafast".into(),
            name: name.map(str::to_string),
            faults,
            ..TranscoderConfig::new(&self.uri, SECRET)
        }
    }

    /// The next thing seen, within the deadline.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(60), self.saw.recv())
            .await
            .expect("the transcoder's requests within 60 s")
            .unwrap()
    }

    /// Runs a transcoder of `config` until it registered (returning its metadata) and answered
    /// every task (in task order), then kills it.
    async fn serve(
        &mut self,
        config: TranscoderConfig,
    ) -> (tonic::metadata::MetadataMap, Vec<Answer>) {
        let tasks = self.tasks;
        let transcoder = start_transcoder(config);
        let mut metadata = None;
        let mut answers = Vec::new();
        while metadata.is_none() || answers.len() < tasks {
            match self.next().await {
                Seen::Register(m) => metadata = Some(m),
                Seen::Results(answer) => answers.push(answer),
            }
        }
        transcoder.kill();
        answers.sort_by_key(|a| a.task_id);
        (metadata.unwrap(), answers)
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.server.await.unwrap();
    }
}

/// Pixels ffprobe counts in `data`: width × height × frames.
async fn probed_pixels(data: &[u8]) -> u64 {
    let (w, h, frames) = ffprobe(data).await;
    assert!(frames > 0);
    u64::from(w * h) * frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflate_pixels_reports_three_times_the_honest_part_pixels_and_the_name_is_sent() {
    let mut go = GoStyle::start(&[0], &ladder()).await;
    let inflate = TranscoderFaults {
        inflate_pixels: 3.0,
        ..TranscoderFaults::default()
    };
    let (named, inflated) = go.serve(go.transcoder(Some("inflater.1"), inflate)).await;
    assert_eq!(named.get(TRANSCODER_NAME_METADATA).unwrap(), "inflater.1");
    let (unnamed, honest) = go
        .serve(go.transcoder(None, TranscoderFaults::default()))
        .await;
    assert!(unnamed.get(TRANSCODER_NAME_METADATA).is_none());

    let (inflated, honest) = (&inflated[0], &honest[0]);
    assert_eq!(inflated.parts.len(), 2);
    assert_eq!(honest.parts.len(), 2);
    for ((inflated_pixels, data), (honest_pixels, honest_data)) in
        inflated.parts.iter().zip(&honest.parts)
    {
        assert_eq!(*honest_pixels, probed_pixels(honest_data).await);
        assert_eq!(*inflated_pixels, 3 * honest_pixels);
        assert_eq!(
            *inflated_pixels,
            3 * probed_pixels(data).await,
            "honest renditions"
        );
    }
    // Only the parts' counts are inflated: the decoded source pixels stay honest.
    assert_eq!(inflated.decoded_pixels, honest.decoded_pixels);
    assert_eq!(honest.decoded_pixels, probed_pixels(&segments()[0]).await);
    go.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_stream_answers_each_task_with_the_previous_tasks_renditions() {
    let mut go = GoStyle::start(&[0, 5, 10], &ladder()).await;
    let wrong = TranscoderFaults {
        wrong_stream: true,
        ..TranscoderFaults::default()
    };
    let (_, wrong) = go.serve(go.transcoder(None, wrong)).await;
    let (_, honest) = go
        .serve(go.transcoder(None, TranscoderFaults::default()))
        .await;
    assert_eq!(wrong.len(), 3);
    // The first task is answered honestly.
    for (pixels, data) in &wrong[0].parts {
        assert_eq!(*pixels, probed_pixels(data).await);
    }
    assert_ne!(
        honest[0].bytes(),
        honest[1].bytes(),
        "segments 0 and 5 differ"
    );
    // The second (segment 5) gets the first task's (segment 0's) bytes and pixel counts, the
    // third (segment 10) the second's, which was never sent.
    for later in 1..3 {
        let (answer, previous) = (&wrong[later], &wrong[later - 1]);
        assert_eq!(answer.task_id, later as i64 + 1);
        if later == 1 {
            assert_eq!(
                answer.parts, previous.parts,
                "task 2 answered with task 1's renditions"
            );
            assert_eq!(answer.decoded_pixels, previous.decoded_pixels);
        } else {
            assert_ne!(answer.bytes(), previous.bytes());
            assert_ne!(answer.bytes(), wrong[0].bytes());
            for (pixels, data) in &answer.parts {
                assert_eq!(*pixels, probed_pixels(data).await);
            }
        }
    }
    go.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrade_quality_encodes_a_fifth_of_the_honest_bytes_or_less() {
    // A big rendition, so the bitrate (not the key frame and MPEG-TS overhead) makes the size.
    let ladder = reference_transcoder::ladder::parse_ladder("P720p30fps16x9").unwrap();
    let mut go = GoStyle::start(&[0], &ladder).await;
    let (_, honest) = go
        .serve(go.transcoder(None, TranscoderFaults::default()))
        .await;
    let degrade = TranscoderFaults {
        degrade_quality: true,
        ..TranscoderFaults::default()
    };
    let (_, degraded) = go.serve(go.transcoder(None, degrade)).await;
    let ((honest_pixels, honest), (degraded_pixels, degraded)) =
        (&honest[0].parts[0], &degraded[0].parts[0]);
    assert_eq!(
        ffprobe(degraded).await,
        ffprobe(honest).await,
        "same size and frames"
    );
    assert_eq!(degraded_pixels, honest_pixels);
    let (honest_len, degraded_len) = (honest.len(), degraded.len());
    eprintln!("degrade_quality: {degraded_len} B vs honest {honest_len} B");
    assert!(
        degraded_len * 5 <= honest_len,
        "degraded {degraded_len} B vs honest {honest_len} B"
    );
    go.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_after_one_loses_the_second_task_which_is_retried_and_re_registers() {
    let (orchestrator, mut session) = remote_orchestrator().await;
    let faults = TranscoderFaults {
        disconnect_after: Some(1),
        ..TranscoderFaults::default()
    };
    // Served as `lpt node transcoder` serves it, so it registers again after disconnecting.
    let flaky = tokio::spawn(node_orchestrator::run_transcoder(transcoder(
        &session, "flaky", faults,
    )));
    attached(&session, 1).await;

    // Alone: it answers segment 0 and drops the connection with segment 1, which fails at once
    // (no other transcoder to retry on); it registers again (2) and, counting afresh, answers
    // segment 2 and drops segment 3.
    for (seq, id) in [(0, 1), (2, 2)] {
        let (data, pixels) = rendition(&mut session, seq).await;
        assert_eq!(pixels, probed_pixels(&data).await, "segment {seq}");
        let lost = session.send(seq + 1).await;
        let lost = lost
            .map_err(|e| e.to_string())
            .and_then(|r| r.renditions().map(|r| r.len()).map_err(|e| e.to_string()));
        assert!(lost.is_err(), "segment {} answered: {lost:?}", seq + 1);
        wait_status(&session.client, WAIT, "the flaky transcoder back", |s| {
            transcoder_status(s, id).is_none() && transcoder_status(s, id + 1).is_some()
        })
        .await;
    }

    // With an honest transcoder beside it, the segment it drops is retried there: every segment
    // is answered, and it is seen leaving (and coming back) once it had its second task. Two
    // broadcaster sessions send at once, so both transcoders get work whatever their measured
    // speeds. The honest one has room for two: the dropped segment is retried on it while the
    // pair's other segment may still be looking for a slot, which would otherwise find none
    // (OrchestratorBusy, as go answers).
    let honest = start_transcoder(TranscoderConfig {
        capacity: 2,
        ..transcoder(&session, "honest", TranscoderFaults::default())
    });
    attached(&session, 2).await;
    let mut other = Session::offchain(session.client.uri()).await;
    other.ladder = session.ladder.clone();
    other.manifest = b"manifest-offchain-other".to_vec();
    let started = Instant::now();
    for seq in 10.. {
        let (ours, theirs) = tokio::join!(
            rendition(&mut session, seq),
            rendition(&mut other, seq + 20)
        );
        for (data, pixels) in [ours, theirs] {
            assert_eq!(pixels, probed_pixels(&data).await, "segment {seq}");
        }
        let s = status(&session.client).await;
        if transcoder_status(&s, 3).is_none() {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "transcoder 3 never disconnected: {s:#}"
        );
    }
    wait_status(
        &session.client,
        WAIT,
        "the flaky transcoder back again",
        |s| transcoder_status(s, 5).is_some(),
    )
    .await;
    assert!(honest.completed() >= 1);
    flaky.abort();
    honest.kill();
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_ratio_half_answers_a_two_second_segment_after_four_seconds() {
    let (orchestrator, session) = remote_orchestrator().await;
    let faults = TranscoderFaults {
        realtime_ratio: Some(0.5),
        ..TranscoderFaults::default()
    };
    let slow = start_transcoder(transcoder(&session, "slow", faults));
    attached(&session, 1).await;
    const DURATION_MS: u64 = 2000;
    let body = segments()[0].clone();
    let seg = segment_data(
        &session.key,
        &session.info,
        &session.manifest,
        0,
        &body,
        DURATION_MS as i32,
        &wire_ladder(&session.ladder),
    )
    .unwrap();
    let sent = Instant::now();
    let reply = session
        .client
        .submit_segment(SegmentRequest::new(&seg, None, body, DURATION_MS))
        .await
        .unwrap();
    let took = sent.elapsed();
    assert_eq!(reply.renditions().unwrap().len(), 1);
    // Dispatched after the upload, so at least 4 s after it is at least 4 s after sending.
    assert!(took >= Duration::from_secs(4), "answered after {took:?}");
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
    slow.kill();
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_name_or_fault_switch_is_refused_at_start() {
    let uri = "https://127.0.0.1:9";
    let named = |name: &str| TranscoderConfig {
        name: Some(name.into()),
        ..TranscoderConfig::new(uri, SECRET)
    };
    for name in ["", "has space", "ünïcode", &"x".repeat(65)] {
        let err = start_transcoder(named(name)).wait().await.unwrap_err();
        assert!(
            format!("{err:#}").contains("transcoder name"),
            "{name:?}: {err:#}"
        );
    }
    assert!(named(&"x".repeat(64)).validate().is_ok());
    assert!(named("gpu-box_2.eu").validate().is_ok());
    let faulty = TranscoderConfig {
        faults: TranscoderFaults {
            realtime_ratio: Some(0.0),
            ..TranscoderFaults::default()
        },
        ..TranscoderConfig::new(uri, SECRET)
    };
    let err = node_orchestrator::run_transcoder(faulty).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("faults.realtime_ratio"),
        "{err:#}"
    );
}
