//! The live video-to-video probe: one live AI job started on a worker (or a gateway) and
//! measured as a viewer would live it: how soon the first transformed frame comes back, whether
//! the output keeps the promised frame rate, how far each frame lags its input, and whether a
//! player fed by the output would stall.
//!
//! ai-runner's `POST /live-video-to-video` names two Trickle channels: the worker subscribes to
//! `subscribe_url` (MPEG-TS segments of the input) and publishes its output segments to
//! `publish_url`. Talking straight to a worker, the probe plays the gateway's part: it hosts
//! both channels on its own [`TrickleServer`], publishes the stamped source into the input
//! channel and reads the output channel back.
//!
//! Measurement design:
//! - The input is paced in real time: each source segment's bytes are written in one chunk per
//!   frame, spread over the segment's media duration, so the worker receives a live stream and
//!   not a file. Frame `n` counts as sent at its segment's start plus its offset in the segment.
//! - Every source frame carries a luma stamp (stream id + frame number) that survives a
//!   chroma-only transform, so each output frame names the input frame it came from: its
//!   latency is its arrival minus that frame's send time, whatever the worker dropped,
//!   duplicated or resampled.
//! - An output frame arrives when its segment has finished arriving: a segment is only
//!   playable whole, so that is the moment a viewer could see it.
//! - Reading and decoding are separate steps joined by a small queue, and decoding runs on a
//!   blocking thread, so a slow decode neither delays the arrival times nor the input's pacing.
//!
//! The worker is not trusted: output segments are read with a size limit, at most as many
//! frames are remembered as the source has, at most a few times as many segments are read as
//! were sent, and every wait (the request, the first output, each next output, the end of the
//! output, the run as a whole) has a deadline. Failures carry stable reason codes from
//! [`reason`].

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reference_transcoder::source::{EncodedSource, TsSegment};
use serde_json::{Map, Value};
use tokio::sync::watch;
use trickle::{Publisher, ServerLimits, Subscriber, TrickleError, TrickleServer};
use url::Url;

use super::api::{LiveVideoToVideoParams, Pipeline};
use super::client::{AiFailure, AiLimits, AiRequest, AiResponse, AiTarget, http_client, reason};
use crate::decode::{DecodeError, DecodedSegment, decode_segment};

/// How a live run is driven and judged.
#[derive(Debug, Clone)]
pub struct LivePlan {
    /// Base URL of the worker or gateway; `/live-video-to-video` is appended to its path.
    pub worker: Url,
    pub model_id: String,
    /// Sent as the request's `params` (omitted when empty).
    pub params: Map<String, Value>,
    /// The frame rate the output should sustain; more than [`LOW_FPS_TOLERANCE`] below it
    /// fails the run with `low_fps`.
    pub target_fps: f64,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Target length of the input segments (cut at the source's key frames).
    pub segment_secs: f64,
    /// From the request's answer to the first output segment.
    pub start_timeout: Duration,
    /// Once output has started, the longest silence between output segments while the input is
    /// still being sent; past it the output is declared stalled (`output_stalled`). Also bounds
    /// each write into the input channel.
    pub stall_after: Duration,
    /// After the input channel was closed, how long the output may take to end.
    pub end_timeout: Duration,
    /// Deadline and body limit of the `POST /live-video-to-video` request.
    pub request: AiLimits,
    /// The largest output segment read (and input segment accepted by the probe's server).
    pub max_segment_bytes: usize,
    /// Where the probe's Trickle server listens; the worker must be able to reach it.
    pub trickle_listen: SocketAddr,
}

impl LivePlan {
    /// A plan with 1 s segments, 10 s to the first output, 5 s of tolerated silence, 10 s for
    /// the output to end, a 30 s / 1 MiB request and 8 MiB segments, served on 127.0.0.1.
    pub fn new(worker: Url, model_id: impl Into<String>, target_fps: f64) -> Self {
        LivePlan {
            worker,
            model_id: model_id.into(),
            params: Map::new(),
            target_fps,
            token: None,
            segment_secs: 1.0,
            start_timeout: Duration::from_secs(10),
            stall_after: Duration::from_secs(5),
            end_timeout: Duration::from_secs(10),
            request: AiLimits {
                deadline: Duration::from_secs(30),
                max_body: 1 << 20,
                max_media: 0,
                max_in_flight: 1,
            },
            max_segment_bytes: 8 << 20,
            trickle_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }
}

/// The output rate may be this fraction below the target before the run fails with `low_fps`.
pub const LOW_FPS_TOLERANCE: f64 = 0.05;

/// Output segments read per input segment sent, at most: a worker emitting endless segments is
/// cut off there instead of being read forever.
const MAX_OUTPUT_PER_INPUT: usize = 4;
/// Input chunks per segment, at most (one per frame below that).
const MAX_CHUNKS: u32 = 120;
/// Pause before asking again for an output channel the worker has not created yet.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// A segment claiming more media time than this is not believed (hostile timestamps).
const MAX_SEGMENT_MEDIA_SECS: f64 = 30.0;
/// How far a segment's PTS may start before the previous segment's end and still be believed
/// (a frame or two of overlap from a resampling filter).
const PTS_OVERLAP_SECS: f64 = 0.1;

/// What one live run gave. Figures are kept even when the run failed.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObservation {
    pub started: SystemTime,
    /// The run's channel prefix, sent as `gateway_request_id` and `stream_id`.
    pub request_id: String,
    pub model_id: String,
    pub ok: bool,
    /// One of [`reason::ALL`] when not ok.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The status of the start request.
    pub status: Option<u16>,
    /// How long the start request took.
    pub start_latency: Option<Duration>,
    /// First input byte sent → first decoded output frame arrived.
    pub time_to_first_frame: Option<Duration>,
    /// Output frames delivered per wall-clock second over the steady window: from the arrival
    /// of the first decodable output segment to that of the last, counting the frames of the
    /// segments after the first (the first one's frames arrived at the window's start).
    ///
    /// Wall clock and not PTS: a live viewer needs frames delivered at the rate they are shown,
    /// and timestamps only say what the worker claims. A worker that labels its frames 24 fps
    /// but delivers 15 per second cannot be watched live; one that delivers 24 per second
    /// with odd timestamps can. The first segment is left out because its arrival includes the
    /// start-up (model load, first input segment), which `time_to_first_frame` reports.
    pub output_fps: Option<f64>,
    pub target_fps: f64,
    /// Frames of the input segments sent completely.
    pub frames_sent: u64,
    /// Frames decoded from the output.
    pub frames_received: u64,
    /// Output frames whose stamp could not be read.
    pub unreadable_stamps: u64,
    /// Output frames whose stamp is readable but names no frame that was sent (another stream
    /// id, a frame number beyond the source, or a frame not sent yet).
    pub foreign_stamps: u64,
    /// The highest source frame number seen in the output: whether the input's tail came out.
    pub last_frame_seen: Option<u32>,
    /// Per output frame with a stamp naming a sent frame, in arrival order: its arrival minus
    /// that frame's send time. At most as many as the source has frames.
    pub frame_latency_ms: Vec<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Stalls of a modelled player (see [`PlayerModel`]).
    pub stalls: u32,
    pub stall_time: Duration,
    /// Input segments sent completely.
    pub segments_in: u32,
    /// Output segments read (decodable or not).
    pub segments_out: u32,
    pub undecodable_segments: u32,
    /// Output seqs skipped or repeated (each gap counted once).
    pub seq_gaps: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub output_codec: Option<String>,
    pub output_size: Option<(u32, u32)>,
    /// Whether the worker ended its output channel within `end_timeout` of the input's end.
    pub output_closed: bool,
    /// The whole run, request included.
    pub duration: Duration,
}

/// The player whose stalls [`LiveObservation::stalls`] counts.
///
/// It plays the output at its media rate and keeps one segment of holdback: playback of the
/// first output segment starts one segment duration after that segment arrived, as a player
/// sitting one segment behind the live edge. Each later segment is due when the playback clock
/// reaches its media start (its PTS relative to the first segment's; the previous segment's end
/// when its PTS are missing or not believable, e.g. restarted per segment). A segment that
/// arrives after it is due is one stall, lasting from due time to arrival; the clock then
/// resumes from there (rebuffering), so one late segment does not make every later one late.
/// All frames of a segment arrive together and are consecutive in media time, so only a
/// segment's first frame can be late.
#[derive(Debug, Clone, Default)]
pub struct PlayerModel {
    /// Wall time at which media time 0 (the first segment's start) plays, stalls excluded.
    origin: Option<Instant>,
    /// Maps output PTS to media time: media = pts - anchor.
    pts_anchor: Option<f64>,
    /// Where the previous segment's media ended.
    next_media: f64,
    pub stalls: u32,
    pub stall_time: Duration,
}

impl PlayerModel {
    /// A segment of `media_secs` whose first frame has PTS `first_pts`, arrived at `arrival`.
    pub fn on_segment(&mut self, arrival: Instant, first_pts: Option<f64>, media_secs: f64) {
        let media_secs = if media_secs.is_finite() {
            media_secs.clamp(0.0, MAX_SEGMENT_MEDIA_SECS)
        } else {
            0.0
        };
        let Some(origin) = self.origin else {
            self.origin = Some(arrival + Duration::from_secs_f64(media_secs));
            self.pts_anchor = first_pts.filter(|p| p.is_finite());
            self.next_media = media_secs;
            return;
        };
        let expected = self.next_media;
        // Believe the PTS when they continue where the previous segment ended (or skip ahead:
        // frames dropped); a jump back (timestamps restarted per segment) or far ahead is not
        // believed: the segment follows on, and the anchor moves so later PTS are read from it.
        let start = match (first_pts.filter(|p| p.is_finite()), self.pts_anchor) {
            (Some(pts), Some(anchor))
                if (expected - PTS_OVERLAP_SECS..=expected + MAX_SEGMENT_MEDIA_SECS)
                    .contains(&(pts - anchor)) =>
            {
                pts - anchor
            }
            (Some(pts), _) => {
                self.pts_anchor = Some(pts - expected);
                expected
            }
            (None, _) => expected,
        };
        self.next_media = start + media_secs;
        let due = origin + Duration::from_secs_f64(start.max(0.0)) + self.stall_time;
        if arrival > due {
            self.stalls += 1;
            self.stall_time += arrival - due;
        }
    }
}

/// Runs one live job described by `plan`, feeding it `source`, and reports what came back.
pub async fn run_live(plan: &LivePlan, source: &EncodedSource) -> LiveObservation {
    let started = SystemTime::now();
    let t_start = Instant::now();
    let request_id = run_id();
    let mut record = Record::default();

    let limits = ServerLimits {
        // The input and output channels, plus one a worker may open (control or events).
        max_channels: 3,
        // Twice the reader's limit, so an oversized output segment reaches the reader (which
        // names it `too_large`) before the server cuts it. The server holds at most
        // channels x kept segments x this: 192 MiB with the default 8 MiB limit.
        max_segment_bytes: plan.max_segment_bytes.saturating_mul(2),
        // The worker and the probe read each segment as it is written; a few kept segments
        // cover a late subscribe without holding the whole run in memory.
        kept_segments: 4,
        idle_timeout: plan.start_timeout.max(plan.stall_after) + Duration::from_secs(5),
    };
    match TrickleServer::start(plan.trickle_listen, limits).await {
        Err(e) => record.fail(
            reason::PROBE_FAILED,
            format!(
                "cannot start the Trickle server on {}: {e}",
                plan.trickle_listen
            ),
        ),
        Ok(server) => {
            let budget = run_budget(plan, source);
            let run = run(plan, source, &server, &request_id, &mut record);
            if tokio::time::timeout(budget, run).await.is_err() {
                record.fail(
                    reason::TIMEOUT,
                    format!("the live run did not end within {budget:?}"),
                );
            }
            // Bounded: stop waits a little for open requests and then cuts them.
            let _ = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
        }
    }
    let mut obs = record.observe(plan, source);
    obs.started = started;
    obs.request_id = request_id;
    obs.duration = t_start.elapsed();
    obs
}

/// The whole run's deadline: every phase's own bound, plus slack for the probe itself.
fn run_budget(plan: &LivePlan, source: &EncodedSource) -> Duration {
    let media = Duration::from_secs_f64(source.duration_secs().clamp(0.0, 24.0 * 3600.0));
    plan.request.deadline
        + plan.start_timeout
        + media
        + plan.stall_after
        + plan.end_timeout
        + Duration::from_secs(10)
}

/// A channel prefix unique per run (and per process), so runs sharing a server never collide.
fn run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "lpt-live-{:x}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Everything gathered during a run, kept outside the run's future so a timeout still reports
/// what was measured.
#[derive(Default)]
struct Record {
    failure: Option<AiFailure>,
    status: Option<u16>,
    start_latency: Option<Duration>,
    sent: SendLog,
    received: RecvLog,
    output_closed: bool,
}

impl Record {
    /// The first failure is the one reported: later ones are its consequences.
    fn fail(&mut self, code: &'static str, message: impl Into<String>) {
        if self.failure.is_none() {
            self.failure = Some(AiFailure::new(code, message));
        }
    }

    fn observe(self, plan: &LivePlan, source: &EncodedSource) -> LiveObservation {
        let frame_secs = source.format.fps_den as f64 / source.format.fps_num.max(1) as f64;
        let stream_id = source.format.stream_id;
        let sent = &self.sent;
        let recv = &self.received;

        let mut latencies = Vec::with_capacity(recv.stamped.len());
        let mut foreign = recv.foreign_stamps;
        for &(stamp, arrival) in &recv.stamped {
            if stamp.stream_id != stream_id {
                foreign += 1;
                continue;
            }
            match sent.send_time(stamp.frame_number, frame_secs) {
                Some(at) if at <= arrival => {
                    latencies.push((arrival - at).as_secs_f64() * 1000.0);
                }
                // A frame cannot come back before it was sent: its stamp was not made from it.
                _ => foreign += 1,
            }
        }
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);

        let output_fps = match (recv.first_arrival, recv.last_arrival) {
            (Some(first), Some(last)) if last > first => {
                Some(recv.frames_after_first as f64 / (last - first).as_secs_f64())
            }
            _ => None,
        };

        let mut failure = self.failure.clone();
        if failure.is_none() {
            failure = verdict(plan, recv, sent, output_fps);
        }
        let frames_received = recv.frames;
        LiveObservation {
            started: SystemTime::now(),
            request_id: String::new(),
            model_id: plan.model_id.clone(),
            ok: failure.is_none(),
            reason: failure.as_ref().map(|f| f.reason.to_owned()),
            message: failure.map(|f| f.message),
            status: self.status,
            start_latency: self.start_latency,
            time_to_first_frame: recv
                .first_frame_at
                .zip(sent.first_byte)
                .map(|(frame, byte)| frame.saturating_duration_since(byte)),
            output_fps,
            target_fps: plan.target_fps,
            frames_sent: sent.frames_done,
            frames_received,
            unreadable_stamps: recv.unreadable_stamps,
            foreign_stamps: foreign,
            last_frame_seen: recv.last_frame_seen,
            latency_p50_ms: percentile(&sorted, 0.50),
            latency_p95_ms: percentile(&sorted, 0.95),
            latency_max_ms: sorted.last().copied(),
            frame_latency_ms: latencies,
            stalls: recv.player.stalls,
            stall_time: recv.player.stall_time,
            segments_in: sent.segments_done,
            segments_out: recv.segments,
            undecodable_segments: recv.undecodable,
            seq_gaps: recv.seq_gaps,
            bytes_in: sent.bytes,
            bytes_out: recv.bytes,
            output_codec: recv.codec.clone(),
            output_size: recv.size,
            output_closed: self.output_closed,
            duration: Duration::ZERO,
        }
    }
}

/// The checks of a run that ended without a failure of its own, in order of what a viewer
/// would notice first.
fn verdict(
    plan: &LivePlan,
    recv: &RecvLog,
    sent: &SendLog,
    output_fps: Option<f64>,
) -> Option<AiFailure> {
    if recv.undecodable > 0 {
        return Some(AiFailure::new(
            reason::MEDIA_DECODE,
            format!(
                "{} of {} output segments undecodable: {}",
                recv.undecodable,
                recv.segments,
                recv.decode_error.as_deref().unwrap_or("?")
            ),
        ));
    }
    if recv.frames == 0 {
        return Some(AiFailure::new(
            reason::NO_OUTPUT,
            format!(
                "the output ended with no frame ({} segments)",
                recv.segments
            ),
        ));
    }
    if recv.unreadable_stamps == recv.frames {
        return Some(AiFailure::new(
            reason::STAMPS_UNREADABLE,
            format!(
                "none of the {} output frames has a readable stamp",
                recv.frames
            ),
        ));
    }
    let floor = plan.target_fps * (1.0 - LOW_FPS_TOLERANCE);
    match output_fps {
        Some(fps) if fps < floor => Some(AiFailure::new(
            reason::LOW_FPS,
            format!(
                "output at {fps:.2} fps, below {floor:.2} ({} target)",
                plan.target_fps
            ),
        )),
        None if sent.segments_done >= 2 => Some(AiFailure::new(
            reason::LOW_FPS,
            format!(
                "{} decodable output segments for {} input segments: no output rate",
                recv.decoded_segments, sent.segments_done
            ),
        )),
        _ => None,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// What was sent into the input channel.
#[derive(Default)]
struct SendLog {
    first_byte: Option<Instant>,
    /// Per segment begun: its first frame number, frame count and when its first byte went.
    segments: Vec<(u32, u32, Instant)>,
    segments_done: u32,
    frames_done: u64,
    bytes: u64,
}

impl SendLog {
    /// When frame `n` was sent: its segment's start plus its offset in the segment.
    fn send_time(&self, n: u32, frame_secs: f64) -> Option<Instant> {
        let i = self.segments.partition_point(|&(first, _, _)| first <= n);
        let &(first, frames, start) = self.segments.get(i.checked_sub(1)?)?;
        (n - first < frames)
            .then(|| start + Duration::from_secs_f64((n - first) as f64 * frame_secs))
    }
}

/// What came out of the output channel; updated segment by segment so nothing grows with the
/// number of frames beyond `stamped`, which is capped at the source's frame count.
#[derive(Default)]
struct RecvLog {
    segments: u32,
    decoded_segments: u32,
    undecodable: u32,
    decode_error: Option<String>,
    seq_gaps: u32,
    next_seq: Option<u64>,
    bytes: u64,
    frames: u64,
    unreadable_stamps: u64,
    foreign_stamps: u64,
    last_frame_seen: Option<u32>,
    /// Readable stamps and their segment's arrival, for latencies once the run is over.
    stamped: Vec<(reference_transcoder::FrameStamp, Instant)>,
    first_frame_at: Option<Instant>,
    first_arrival: Option<Instant>,
    last_arrival: Option<Instant>,
    frames_after_first: u64,
    codec: Option<String>,
    size: Option<(u32, u32)>,
    player: PlayerModel,
}

impl RecvLog {
    fn on_seq(&mut self, seq: u64) {
        if self.next_seq.is_some_and(|expected| expected != seq) {
            self.seq_gaps += 1;
        }
        self.next_seq = Some(seq.saturating_add(1));
    }

    fn on_segment(
        &mut self,
        arrival: Instant,
        bytes: usize,
        decoded: Result<DecodedSegment, String>,
        frame_cap: usize,
        target_fps: f64,
    ) {
        self.segments += 1;
        self.bytes += bytes as u64;
        let segment = match decoded {
            Ok(s) if !s.audio_only => s,
            Ok(_) => {
                self.undecodable += 1;
                self.decode_error
                    .get_or_insert_with(|| "an output segment has no video stream".into());
                return;
            }
            Err(e) => {
                self.undecodable += 1;
                self.decode_error.get_or_insert(e);
                return;
            }
        };
        self.decoded_segments += 1;
        let n = segment.frames.len() as u64;
        self.frames += n;
        self.codec.get_or_insert_with(|| segment.codec.clone());
        self.size.get_or_insert((segment.width, segment.height));
        if self.first_arrival.is_none() {
            self.first_arrival = Some(arrival);
            self.first_frame_at = Some(arrival);
        } else {
            self.frames_after_first += n;
        }
        self.last_arrival = Some(arrival);
        for frame in &segment.frames {
            match frame.stamp {
                None => self.unreadable_stamps += 1,
                Some(stamp) if stamp.frame_number as usize >= frame_cap => {
                    self.foreign_stamps += 1;
                }
                Some(stamp) => {
                    self.last_frame_seen = self.last_frame_seen.max(Some(stamp.frame_number));
                    if self.stamped.len() < frame_cap {
                        self.stamped.push((stamp, arrival));
                    }
                }
            }
        }
        let fallback = 1.0 / target_fps;
        let frame_secs = segment
            .frame_secs()
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 1.0)
            .unwrap_or(fallback);
        let media = if segment.first_pts_secs().is_some() {
            segment.duration_secs()
        } else {
            n as f64 * frame_secs
        };
        self.player
            .on_segment(arrival, segment.first_pts_secs(), media);
    }
}

/// The run proper: check the plan, start the job, then publish the input and read the output
/// side by side until the output ends, fails, or the input failed.
async fn run(
    plan: &LivePlan,
    source: &EncodedSource,
    server: &TrickleServer,
    id: &str,
    record: &mut Record,
) {
    let segments = match check_plan(plan, source) {
        Ok(segments) => segments,
        Err(message) => return record.fail(reason::PROBE_FAILED, message),
    };
    let http = match http_client(&plan.request) {
        Ok(http) => http,
        Err(e) => return record.fail(reason::PROBE_FAILED, e.to_string()),
    };
    // Trickle bodies stream for a whole segment: no total timeout, every wait is bounded here.
    let trickle_http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return record.fail(reason::PROBE_FAILED, format!("trickle client: {e}")),
    };
    let in_url = server.channel_url(&format!("{id}-in"));
    let out_url = server.channel_url(&format!("{id}-out"));

    // Start the job: the batch client's bounded request, so its failures keep their codes.
    let params = LiveVideoToVideoParams {
        subscribe_url: in_url.clone(),
        publish_url: out_url.clone(),
        model_id: plan.model_id.clone(),
        params: (!plan.params.is_empty()).then(|| plan.params.clone()),
        gateway_request_id: Some(id.to_owned()),
        stream_id: Some(id.to_owned()),
        ..Default::default()
    };
    let fields = match serde_json::to_value(&params) {
        Ok(Value::Object(map)) => map,
        _ => return record.fail(reason::PROBE_FAILED, "cannot encode the request"),
    };
    let target = AiTarget {
        base_url: plan.worker.clone(),
        bearer: plan.token.clone(),
        orchestrator: None,
    };
    let request = AiRequest {
        pipeline: Pipeline::LiveVideoToVideo,
        fields,
        file: None,
    };
    let outcome = super::client::send_request(&http, &target, &request, &plan.request).await;
    record.status = outcome.status;
    record.start_latency = Some(outcome.timings.latency);
    match outcome.result {
        Err(f) => return record.fail(f.reason, f.message),
        Ok(answer) => debug_assert!(matches!(answer.response, AiResponse::Live(_))),
    }
    let answered = Instant::now();

    let frame_secs = source.format.fps_den as f64 / source.format.fps_num as f64;
    let (input_done_tx, input_done_rx) = watch::channel(false);
    let ctx = OutputCtx {
        plan,
        started: answered,
        max_segments: segments.len().saturating_mul(MAX_OUTPUT_PER_INPUT).max(8),
        frame_cap: source.frame_count(),
    };
    let mut publish = Box::pin(publish(
        plan,
        &segments,
        frame_secs,
        Publisher::new(&in_url, trickle_http.clone()),
        &input_done_tx,
        &mut record.sent,
    ));
    let mut subscribe = Box::pin(read_output(
        &ctx,
        Subscriber::new(&out_url, trickle_http, 0),
        input_done_rx,
        &mut record.received,
    ));
    let mut published = false;
    let (input_result, output_result) = loop {
        tokio::select! {
            r = &mut publish, if !published => {
                published = true;
                if r.is_err() {
                    break (r, None);
                }
                let _ = input_done_tx.send(true);
            }
            r = &mut subscribe => break (Ok(()), Some(r)),
        }
    };
    drop(publish);
    drop(subscribe);
    if let Err(f) = input_result {
        return record.fail(f.reason, f.message);
    }
    match output_result {
        Some(Ok(closed)) => record.output_closed = closed,
        Some(Err(f)) => record.fail(f.reason, f.message),
        None => {}
    }
}

/// The source's segments, or why the plan cannot run.
fn check_plan(plan: &LivePlan, source: &EncodedSource) -> Result<Vec<TsSegment>, String> {
    if !(plan.target_fps.is_finite() && plan.target_fps > 0.0) {
        return Err(format!("target_fps {} is not a rate", plan.target_fps));
    }
    if !(plan.segment_secs.is_finite() && plan.segment_secs > 0.0) {
        return Err(format!(
            "segment_secs {} is not a duration",
            plan.segment_secs
        ));
    }
    if source.format.fps_num == 0 || source.format.fps_den == 0 || source.video.is_empty() {
        return Err("the source has no frames or no frame rate".into());
    }
    let segments = source
        .ts_segments(plan.segment_secs)
        .map_err(|e| format!("cannot cut the source into segments: {e}"))?;
    if let Some(big) = segments
        .iter()
        .find(|s| s.data.len() > plan.max_segment_bytes)
    {
        return Err(format!(
            "source segment {} has {} bytes, over max_segment_bytes {}",
            big.seq,
            big.data.len(),
            plan.max_segment_bytes
        ));
    }
    if segments.is_empty() {
        return Err("the source gave no segment".into());
    }
    Ok(segments)
}

/// A Trickle call bounded by `wait`; a timeout is reported like the client's own.
async fn bounded<T>(
    wait: Duration,
    what: &str,
    call: impl Future<Output = Result<T, TrickleError>>,
) -> Result<T, AiFailure> {
    match tokio::time::timeout(wait, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(AiFailure::new(
            reason::PROBE_FAILED,
            format!("{what} on the input channel: {e}"),
        )),
        Err(_) => Err(AiFailure::new(
            reason::PROBE_FAILED,
            format!("{what} on the input channel took over {wait:?}"),
        )),
    }
}

/// Publishes the source's segments in real time: each segment's bytes in one chunk per frame,
/// the chunks spread over its media duration, segments back to back on a schedule anchored at
/// the first byte (a late write does not push every later segment back). Then closes the
/// channel, which tells the worker the stream is over.
///
/// Failures here are the probe's own (its server took no data in time), hence `probe_failed`:
/// the worker reads the channel but cannot slow the writes, which go to the probe's server.
async fn publish(
    plan: &LivePlan,
    segments: &[TsSegment],
    frame_secs: f64,
    mut publisher: Publisher,
    input_done: &watch::Sender<bool>,
    log: &mut SendLog,
) -> Result<(), AiFailure> {
    let wait = plan.stall_after;
    let mut next_start: Option<Instant> = None;
    for segment in segments {
        if let Some(at) = next_start {
            tokio::time::sleep_until(at.into()).await;
        }
        let mut writer = bounded(wait, "opening a segment", publisher.next_segment()).await?;
        let start = Instant::now();
        log.first_byte.get_or_insert(start);
        log.segments
            .push((segment.first_frame, segment.frames, start));
        let media = Duration::from_secs_f64(
            (segment.frames as f64 * frame_secs).clamp(0.0, MAX_SEGMENT_MEDIA_SECS),
        );
        let data = Bytes::copy_from_slice(&segment.data);
        let chunks = segment.frames.clamp(1, MAX_CHUNKS) as usize;
        for j in 0..chunks {
            tokio::time::sleep_until((start + media.mul_f64(j as f64 / chunks as f64)).into())
                .await;
            let chunk = data.slice(j * data.len() / chunks..(j + 1) * data.len() / chunks);
            if chunk.is_empty() {
                continue;
            }
            let len = chunk.len() as u64;
            bounded(wait, "writing", writer.write(chunk)).await?;
            log.bytes += len;
        }
        // A live encoder closes a segment when the next one starts, not when its last byte is
        // out: the segment's end is its start plus its media duration.
        let end = start + media;
        tokio::time::sleep_until(end.into()).await;
        bounded(wait, "finishing a segment", writer.finish()).await?;
        log.segments_done += 1;
        log.frames_done += u64::from(segment.frames);
        next_start = Some(end);
    }
    // The input is over from here: a worker may end its output as soon as it sees the channel
    // end, before this close returns.
    let _ = input_done.send(true);
    bounded(wait, "closing", publisher.close()).await
}

/// What the output reader needs besides its subscriber.
struct OutputCtx<'a> {
    plan: &'a LivePlan,
    /// When the start request was answered: the start timeout runs from there.
    started: Instant,
    max_segments: usize,
    /// The source's frame count: no more stamps are kept, and a higher frame number is foreign.
    frame_cap: usize,
}

/// Reads the output channel from seq 0 and decodes each segment, until the channel ends
/// (`Ok(true)`), the input is over and the output does not end in time (`Ok(false)`), or a
/// failure. A segment arrives when its last byte was read; it is then decoded on a blocking
/// thread while the next one is read, so decoding does not delay the next arrival (unless it
/// takes longer than a segment), and at most two segments are held at once.
async fn read_output(
    ctx: &OutputCtx<'_>,
    mut subscriber: Subscriber,
    mut input_done: watch::Receiver<bool>,
    log: &mut RecvLog,
) -> Result<bool, AiFailure> {
    let plan = ctx.plan;
    let mut pending: Option<tokio::task::JoinHandle<Result<DecodedSegment, DecodeError>>> = None;
    let mut pending_meta: Option<(Instant, usize)> = None;
    let mut last_activity = ctx.started;
    let mut end_deadline: Option<Instant> = None;
    let mut watching_input = true;
    let mut last_error: Option<String> = None;
    let outcome = loop {
        if log.segments as usize + usize::from(pending.is_some()) >= ctx.max_segments {
            break Ok(false);
        }
        let mut deadline = if log.next_seq.is_none() {
            ctx.started + plan.start_timeout
        } else {
            last_activity + plan.stall_after
        };
        if let Some(end) = end_deadline {
            deadline = deadline.min(end);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let limit = plan.max_segment_bytes;
        // The segment's response, then its body: an error in the body is that segment's
        // (the worker cut it), not the channel's.
        let fetch = async {
            match subscriber.next_segment(wait).await? {
                None => Ok(None),
                Some(reader) => {
                    let seq = reader.seq();
                    Ok(Some((seq, reader.read_all(limit).await)))
                }
            }
        };
        tokio::pin!(fetch);
        let fetched = loop {
            tokio::select! {
                r = &mut fetch => break Some(r),
                _ = tokio::time::sleep_until(deadline.into()) => break None,
                changed = input_done.changed(), if watching_input => {
                    if changed.is_err() || *input_done.borrow_and_update() {
                        watching_input = false;
                        let end = Instant::now() + plan.end_timeout;
                        end_deadline = Some(end);
                        deadline = deadline.min(end);
                    }
                }
            }
        };
        // The publisher may have finished while the fetch won the race above.
        let input_over = !watching_input || *input_done.borrow();
        let started_output = log.next_seq.is_some();
        // Not there yet: no answer, or the subscriber's own retries (channel or seq not
        // published yet) ran out.
        let not_yet = match &fetched {
            None | Some(Err(TrickleError::Timeout)) => true,
            Some(Err(TrickleError::Http(status, _))) => {
                matches!(*status, 404 | 408 | trickle::STATUS_NOT_RETAINED)
            }
            _ => false,
        };
        if not_yet {
            if let Some(Err(e)) = &fetched {
                last_error = Some(e.to_string());
            }
            if Instant::now() + RETRY_PAUSE < deadline {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            if !started_output {
                let mut message = format!(
                    "no output segment within {:?} of the start",
                    plan.start_timeout
                );
                if let Some(e) = &last_error {
                    message.push_str(&format!(" (last answer: {e})"));
                }
                break Err(AiFailure::new(reason::NO_OUTPUT, message));
            }
            if !input_over {
                break Err(AiFailure::new(
                    reason::OUTPUT_STALLED,
                    format!(
                        "no output segment for {:?} while the input was still live",
                        plan.stall_after
                    ),
                ));
            }
            break Ok(false);
        }
        match fetched {
            // Handled above.
            None => continue,
            Some(Ok(None)) => {
                if !input_over {
                    break Err(AiFailure::new(
                        reason::OUTPUT_ENDED_EARLY,
                        format!(
                            "the output channel ended after {} segments, before the input",
                            log.segments + u32::from(pending.is_some())
                        ),
                    ));
                }
                break Ok(true);
            }
            Some(Err(e)) => {
                break Err(AiFailure::new(
                    reason::TRANSPORT,
                    format!("reading the output channel: {e}"),
                ));
            }
            Some(Ok(Some((_, Err(TrickleError::TooLarge { .. }))))) => {
                break Err(AiFailure::new(
                    reason::TOO_LARGE,
                    format!("an output segment is over {} bytes", plan.max_segment_bytes),
                ));
            }
            Some(Ok(Some((seq, body)))) => {
                let arrival = Instant::now();
                last_activity = arrival;
                log.on_seq(seq);
                // Take the previous segment's result before starting this one's decode, so at
                // most one decode runs and at most two segments are held.
                if let (Some(handle), Some((at, len))) = (pending.take(), pending_meta.take()) {
                    apply(log, ctx, at, len, handle).await;
                }
                match body {
                    Ok(bytes) => {
                        let len = bytes.len();
                        pending = Some(tokio::task::spawn_blocking(move || decode_segment(&bytes)));
                        pending_meta = Some((arrival, len));
                    }
                    // Cut mid-segment: the segment is lost, the channel may go on.
                    Err(e) => log.on_segment(
                        arrival,
                        0,
                        Err(format!("output segment {seq} broke off: {e}")),
                        ctx.frame_cap,
                        plan.target_fps,
                    ),
                }
            }
        }
    };
    if let (Some(handle), Some((at, len))) = (pending.take(), pending_meta.take()) {
        apply(log, ctx, at, len, handle).await;
    }
    outcome
}

async fn apply(
    log: &mut RecvLog,
    ctx: &OutputCtx<'_>,
    arrival: Instant,
    len: usize,
    handle: tokio::task::JoinHandle<Result<DecodedSegment, DecodeError>>,
) {
    let result = match handle.await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the decoder failed: {e}")),
    };
    log.on_segment(arrival, len, result, ctx.frame_cap, ctx.plan.target_fps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn player_on_time_never_stalls() {
        let t0 = Instant::now();
        let mut p = PlayerModel::default();
        for k in 0..10u32 {
            // Each 1 s segment arrives a second after the previous one, with 300 ms of jitter.
            let jitter = if k % 2 == 1 { 300 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(k) * 1000 + jitter);
            p.on_segment(at, Some(10.0 + f64::from(k)), 1.0);
        }
        assert_eq!(p.stalls, 0);
    }

    #[test]
    fn player_stalls_once_per_late_segment_and_rebuffers() {
        let t0 = Instant::now();
        let mut p = PlayerModel::default();
        p.on_segment(t0, Some(0.0), 1.0); // plays from t0 + 1 s
        p.on_segment(t0 + Duration::from_millis(1000), Some(1.0), 1.0); // due at 2 s
        p.on_segment(t0 + Duration::from_millis(3500), Some(2.0), 1.0); // due 3 s: 0.5 s late
        p.on_segment(t0 + Duration::from_millis(4000), Some(3.0), 1.0); // due 4.5 s: on time
        assert_eq!(p.stalls, 1);
        assert_eq!(p.stall_time, Duration::from_millis(500));
    }

    #[test]
    fn player_follows_timestamps_restarted_per_segment() {
        let t0 = Instant::now();
        let mut p = PlayerModel::default();
        for k in 0..5u32 {
            p.on_segment(t0 + Duration::from_secs(u64::from(k)), Some(0.0), 1.0);
        }
        assert_eq!(p.stalls, 0);
        // Output at half rate: 0.5 s of media per wall-clock second stalls.
        let mut slow = PlayerModel::default();
        for k in 0..5u32 {
            slow.on_segment(t0 + Duration::from_secs(u64::from(k)), None, 0.5);
        }
        assert!(slow.stalls >= 2, "{}", slow.stalls);
    }

    #[test]
    fn verdicts_follow_what_a_viewer_notices_first() {
        let plan = LivePlan::new(Url::parse("http://w/").expect("url"), "m", 24.0);
        let sent = SendLog {
            segments_done: 3,
            ..Default::default()
        };
        let code =
            |recv: &RecvLog, fps: Option<f64>| verdict(&plan, recv, &sent, fps).map(|f| f.reason);
        let mut recv = RecvLog {
            segments: 3,
            decoded_segments: 3,
            frames: 72,
            ..Default::default()
        };
        assert_eq!(code(&recv, Some(24.0)), None);
        assert_eq!(code(&recv, Some(22.9)), None);
        assert_eq!(code(&recv, Some(22.7)), Some(reason::LOW_FPS));
        assert_eq!(code(&recv, None), Some(reason::LOW_FPS));
        recv.unreadable_stamps = 72;
        assert_eq!(code(&recv, Some(24.0)), Some(reason::STAMPS_UNREADABLE));
        recv.undecodable = 1;
        assert_eq!(code(&recv, Some(24.0)), Some(reason::MEDIA_DECODE));
        let empty = RecvLog::default();
        assert_eq!(code(&empty, None), Some(reason::NO_OUTPUT));
    }

    #[test]
    fn send_times_follow_segments() {
        let t0 = Instant::now();
        let log = SendLog {
            segments: vec![(0, 30, t0), (30, 30, t0 + Duration::from_secs(1))],
            ..Default::default()
        };
        let fs = 1.0 / 30.0;
        assert_eq!(log.send_time(0, fs), Some(t0));
        assert_eq!(
            log.send_time(45, fs),
            Some(t0 + Duration::from_secs(1) + Duration::from_secs_f64(15.0 * fs))
        );
        assert_eq!(log.send_time(60, fs), None);
    }
}
