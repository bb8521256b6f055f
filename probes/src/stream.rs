//! One stream end to end: publish the stamped source to an RTMP URL, pull the playback URL,
//! check every segment and time it, and report everything through a [`ProbeObserver`].
//!
//! Design: the publisher and the puller run concurrently on the caller's runtime; the puller's
//! events go through a bounded channel ([`EVENT_QUEUE`] events, so at most that many segment
//! bodies wait; a full channel holds the puller back) to one consumer per stream, which decodes segments
//! on the blocking pool one at a time, in download order, so the stateful checks (continuity,
//! drift) see them in order and decoding never stalls polling. Pulling goes on for a drain
//! period after publishing ends so the last segments are fetched; if publishing fails, pulling
//! stops a drain period later. Sampled segments go on to the run's shared
//! [`crate::quality::QualitySampler`], which scores them beside the stream without holding up
//! the checks; the report waits for the scores in flight. Low-latency parts go through the same
//! consumer: each is decoded behind its lead (`crate::part_latency`) and timed from its first
//! picture's send to its last byte's arrival.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::checks::{CheckOptions, SegmentChecker};
use crate::completeness::RenditionLedger;
use crate::decode::decode_segment;
use crate::hls::{Delivery, HlsOptions, HlsPuller, PullError, PullEvent, PullSink, pull_stop};
use crate::observe::{ProbeObserver, PublishObservation, ViolationObservation};
use crate::part_latency::PartMeasure;
use crate::players::{StreamPlayers, StreamToPlay};
use crate::publisher::{PublishOptions, PublishSummary, RtmpPublisher, RtmpTarget, RtmpUrlError};
use crate::quality::{QualitySample, QualitySampler, Submission};
use crate::replay::ReplaySource;
use crate::sendlog::SendLog;
use crate::stream_conformance::{Found, SegmentMeta, StreamConformance};

/// Events (segment bodies among them) waiting for a stream's consumer at most: with the
/// puller's own limits this bounds a stream's memory to about
/// `(EVENT_QUEUE + max_renditions + 1) × max_segment_bytes` whatever the target sends.
pub const EVENT_QUEUE: usize = 8;

/// What one stream probe does.
#[derive(Debug, Clone)]
pub struct StreamProbeConfig {
    /// Name used in every observation (unique per stream in a run).
    pub stream_key: String,
    /// Where to publish, e.g. `rtmp://host:1935/live/<key>`.
    pub rtmp_url: String,
    /// Where to play, e.g. `http://host:8935/stream/<key>.m3u8` (master or media playlist).
    pub playback_url: String,
    /// Publishing options (`duration`, `start_frame`, timeouts).
    pub publish: PublishOptions,
    /// Keep pulling this long after publishing ends.
    pub drain: Duration,
    pub hls: HlsOptions,
    pub checks: CheckOptions,
    /// Decode segments (codec, resolution, duration, continuity, drift, stamps, latency).
    pub decode: bool,
    /// Score sampled segments (needs `decode` for the stamps and `hls.keep_bytes`); one
    /// sampler is shared by every stream of a run so its concurrency bound is global.
    pub quality: Option<Arc<QualitySampler>>,
    /// Judge every playlist and segment against the HLS conformance rules
    /// (`crate::conformance`); the media rules need `decode`.
    pub conformance: bool,
    /// Browser players watching the stream while it publishes (`crate::players`); one browser
    /// is shared by every stream of a run.
    pub players: Option<StreamPlayers>,
}

impl StreamProbeConfig {
    /// Defaults for a stream publishing to `rtmp_url` and playing `playback_url`.
    pub fn new(stream_key: &str, rtmp_url: &str, playback_url: &str, duration: Duration) -> Self {
        StreamProbeConfig {
            stream_key: stream_key.to_string(),
            rtmp_url: rtmp_url.to_string(),
            playback_url: playback_url.to_string(),
            publish: PublishOptions {
                duration,
                ..Default::default()
            },
            drain: Duration::from_secs(10),
            hls: HlsOptions::default(),
            checks: CheckOptions::default(),
            decode: true,
            quality: None,
            conformance: true,
            players: None,
        }
    }
}

/// Why a stream probe could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamProbeError {
    #[error(transparent)]
    RtmpUrl(#[from] RtmpUrlError),
    #[error(transparent)]
    PlaybackUrl(#[from] PullError),
}

/// Totals of one stream probe.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    pub stream_key: String,
    pub publish: Option<PublishSummary>,
    pub publish_error: Option<String>,
    /// Set when the playback URL never produced a playlist.
    pub pull_error: Option<String>,
    pub renditions: Vec<String>,
    pub segments_ok: u64,
    pub segments_failed: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub stalls: u64,
    /// Glass-to-glass latency of every segment that had one, milliseconds.
    pub glass_to_glass_ms: Vec<f64>,
    pub segment_latency_ms: Vec<f64>,
    /// Sampled segments scored, failed to score, and dropped because every slot was busy.
    pub quality_scored: u64,
    pub quality_failed: u64,
    pub quality_dropped: u64,
    /// HLS conformance rules found broken (each finding once; see `crate::conformance`).
    pub violations: u64,
    /// Low-latency parts downloaded (and decoded, when decoding) whole, and failed.
    pub parts_ok: u64,
    pub parts_failed: u64,
    /// Part latency of every part that had one, milliseconds.
    pub part_latency_ms: Vec<f64>,
    /// Blocking playlist reloads the server answered, and those given up for a plain reload.
    pub blocking_reloads: u64,
    pub blocking_reloads_given_up: u64,
}

/// One stream, end to end.
pub struct StreamProbe {
    config: StreamProbeConfig,
    source: Arc<ReplaySource>,
    client: reqwest::Client,
    target: RtmpTarget,
    puller: HlsPuller,
}

impl StreamProbe {
    /// Validates the URLs; `client` is the HTTP client shared by all pullers of the run.
    pub fn new(
        config: StreamProbeConfig,
        source: Arc<ReplaySource>,
        client: reqwest::Client,
    ) -> Result<StreamProbe, StreamProbeError> {
        let target = RtmpTarget::parse(&config.rtmp_url)?;
        let puller = HlsPuller::new(
            client.clone(),
            &config.playback_url,
            &config.stream_key,
            config.hls.clone(),
        )?;
        Ok(StreamProbe {
            config,
            source,
            client,
            target,
            puller,
        })
    }

    pub fn config(&self) -> &StreamProbeConfig {
        &self.config
    }

    pub fn http_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Publishes, pulls, checks and times the stream; returns when pulling has drained.
    pub async fn run(&self, observer: Arc<dyn ProbeObserver>) -> StreamReport {
        let publisher = RtmpPublisher::new(
            self.target.clone(),
            self.source.clone(),
            self.config.publish.clone(),
        );
        let log = publisher.send_log();
        let mut checks = self.config.checks.clone();
        checks
            .source_frame_secs
            .get_or_insert(self.source.frame_ms() / 1000.0);
        let checker = Arc::new(SegmentChecker::new(
            &self.config.stream_key,
            Some(log.clone()),
            checks,
        ));
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let sink: Arc<dyn PullSink> = Arc::new(ChannelSink(tx));
        let consumer = tokio::spawn(consume(
            rx,
            checker,
            log.clone(),
            observer.clone(),
            self.config.decode,
            self.config.stream_key.clone(),
            self.config.quality.clone(),
            self.config.drain,
            self.config.conformance.then(StreamConformance::default),
        ));

        let deadline = self
            .config
            .publish
            .setup_timeout
            .checked_add(self.config.publish.duration)
            .and_then(|d| d.checked_add(self.config.drain))
            .and_then(|d| Instant::now().checked_add(d))
            .ok_or_else(|| {
                format!(
                    "setup timeout {:?} + duration {:?} + drain {:?} is past what a clock can hold",
                    self.config.publish.setup_timeout,
                    self.config.publish.duration,
                    self.config.drain
                )
            });
        let deadline = match deadline {
            Ok(deadline) => deadline,
            Err(error) => {
                drop(sink);
                let mut report = consumer.await.unwrap_or_default();
                report.publish_error = Some(error);
                return report;
            }
        };
        let (stop_handle, stop) = pull_stop();
        let drain = self.config.drain;
        let (published, players_stop) = watch::channel(false);
        let publish = async {
            let obs = observer.clone();
            let mut progress = move |p: &PublishObservation| obs.publish_progress(p);
            let result = publisher.run(&mut progress).await;
            // Players stop with the publisher: past that, waiting for data is the stream's end,
            // not a stall.
            published.send_replace(true);
            tokio::time::sleep(drain).await;
            stop_handle.stop();
            result
        };
        let pull = self.puller.run_until(deadline, sink, stop);
        let players = async {
            if let Some(StreamPlayers { players, count }) = &self.config.players {
                let stream = StreamToPlay {
                    stream_key: self.config.stream_key.clone(),
                    playback_url: self.config.playback_url.clone(),
                    log: Some(log.clone()),
                    client: self.client.clone(),
                };
                players
                    .play(stream, *count, observer.clone(), players_stop)
                    .await;
            }
        };
        let (published, pulled, ()) = tokio::join!(publish, pull, players);
        let mut report = consumer.await.unwrap_or_default();
        match published {
            Ok(s) => report.publish = Some(s),
            Err(e) => report.publish_error = Some(e.to_string()),
        }
        report.pull_error = pulled.error.map(|e| e.to_string());
        report.blocking_reloads = pulled.blocking_reloads;
        report.blocking_reloads_given_up = pulled.blocking_reloads_given_up;
        report
    }
}

/// The puller's side of the bounded channel to the consumer.
struct ChannelSink(mpsc::Sender<PullEvent>);

impl PullSink for ChannelSink {
    /// Synchronous callers cannot wait: they queue the event without bound on a task of its
    /// own. The puller never comes here; it delivers through [`PullSink::deliver`].
    fn event(&self, event: PullEvent) {
        let tx = self.0.clone();
        tokio::spawn(async move {
            let _ = tx.send(event).await;
        });
    }

    /// Waits for room in the channel: the consumer sets the pace of the puller.
    fn deliver(&self, event: PullEvent) -> Delivery<'_> {
        // The consumer outlives the puller; a send error means the probe is being torn down.
        Box::pin(async move {
            let _ = self.0.send(event).await;
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn consume(
    mut rx: mpsc::Receiver<PullEvent>,
    checker: Arc<SegmentChecker>,
    log: Arc<SendLog>,
    observer: Arc<dyn ProbeObserver>,
    decode: bool,
    stream_key: String,
    quality: Option<Arc<QualitySampler>>,
    grace: Duration,
    mut conformance: Option<StreamConformance>,
) -> StreamReport {
    let mut report = StreamReport {
        stream_key,
        ..Default::default()
    };
    let mut ledger = RenditionLedger::default();
    let mut parts = PartMeasure::default();
    let mut scoring = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            PullEvent::Renditions(list) => {
                for r in list {
                    if let Some(size) = r.resolution {
                        checker.announce_resolution(&r.name, size);
                    }
                    if !report.renditions.contains(&r.name) {
                        report.renditions.push(r.name);
                    }
                }
            }
            PullEvent::Playlist(poll) => {
                if let Some(conformance) = &mut conformance {
                    let found = conformance.playlist(&poll);
                    report_violations(&mut report, &*observer, found);
                }
                for c in checker.playlist(&poll) {
                    count_check(&mut report, c.passed);
                    observer.check(&c);
                }
            }
            PullEvent::Missed {
                rendition,
                seq,
                at_unix_ms,
            } => {
                let checked = checker.missed(&rendition, seq, at_unix_ms);
                report.segments_failed += 1;
                observer.segment(&checked.observation);
                for c in &checked.checks {
                    count_check(&mut report, c.passed);
                    observer.check(c);
                }
            }
            PullEvent::Segment(pulled) => {
                let body = pulled.body.as_ref().ok().cloned();
                let meta = SegmentMeta::of(&pulled);
                let checker2 = checker.clone();
                let checked = tokio::task::spawn_blocking(move || {
                    let decoded = match (&pulled.body, decode) {
                        (Ok(body), true) => Some(decode_segment(body)),
                        _ => None,
                    };
                    let checked = checker2.check(&pulled, decoded.as_ref());
                    (checked, decoded.and_then(Result::ok))
                })
                .await;
                let Ok((checked, decoded)) = checked else {
                    continue;
                };
                if let Some(conformance) = &mut conformance {
                    let found = conformance.segment(&meta, decoded.as_ref());
                    report_violations(&mut report, &*observer, found);
                }
                let o = &checked.observation;
                if o.success {
                    report.segments_ok += 1;
                } else {
                    report.segments_failed += 1;
                }
                if let Some(l) = o.latency.glass_to_glass_ms {
                    report.glass_to_glass_ms.push(l);
                }
                if let Some(l) = o.latency.segment_latency_ms {
                    report.segment_latency_ms.push(l);
                }
                ledger.record(o);
                observer.segment(o);
                for c in &checked.checks {
                    count_check(&mut report, c.passed);
                    observer.check(c);
                }
                if let (Some(sampler), Some(data), true) = (&quality, body, o.success) {
                    let media = o.media.as_ref();
                    let sample = QualitySample {
                        stream_key: o.stream_key.clone(),
                        rendition: o.rendition.clone(),
                        seq: o.seq,
                        first_stamp_frame: media.and_then(|m| m.first_stamp_frame),
                        last_stamp_frame: media.and_then(|m| m.last_stamp_frame),
                        data,
                    };
                    match sampler.submit(sample, observer.clone()) {
                        Submission::Scheduled(job) => {
                            collect_finished(&mut scoring, &mut report).await;
                            scoring.push(job);
                        }
                        Submission::Dropped => report.quality_dropped += 1,
                        Submission::NotSampled => {}
                    }
                }
            }
            PullEvent::Part(part) => {
                let lead = decode && parts.needs_lead(&part);
                let (part, decoded) = if decode {
                    let decoding = tokio::task::spawn_blocking(move || {
                        let decoded = PartMeasure::decode(&part, lead);
                        (part, decoded)
                    });
                    match decoding.await {
                        Ok(done) => done,
                        Err(_) => continue,
                    }
                } else {
                    (part, None)
                };
                let o = parts.observe(&report.stream_key, &part, decoded, Some(&log));
                if o.success {
                    report.parts_ok += 1;
                } else {
                    report.parts_failed += 1;
                }
                report.part_latency_ms.extend(o.part_latency_ms);
                observer.part(&o);
            }
            PullEvent::Stall(s) => {
                report.stalls += (!s.ended) as u64;
                observer.stall(&s);
            }
        }
    }
    if let Some(conformance) = &mut conformance {
        let found = conformance.finish();
        report_violations(&mut report, &*observer, found);
    }
    let end = crate::clock::now_unix_ms();
    for missing in ledger.missing(&report.renditions, end, grace) {
        let reason = format!(
            "never delivered: source segment {} (first frame {}) has no {} segment",
            missing.source_seq, missing.first_frame, missing.rendition
        );
        let mut checked = checker.missed(&missing.rendition, missing.source_seq, end);
        checked.observation.failure = Some(reason.clone());
        report.segments_failed += 1;
        observer.segment(&checked.observation);
        for c in &mut checked.checks {
            c.reason = reason.clone();
            count_check(&mut report, c.passed);
            observer.check(c);
        }
    }
    // Scores finish before the report, so a run's summary includes every sample it took.
    for job in scoring {
        count_score(&mut report, job.await);
    }
    report
}

type ScoringJob = tokio::task::JoinHandle<crate::observe::QualityObservation>;

/// Counts the scoring jobs that have finished and forgets them (a long run keeps only the few
/// in flight).
async fn collect_finished(scoring: &mut Vec<ScoringJob>, report: &mut StreamReport) {
    let mut i = 0;
    while i < scoring.len() {
        if scoring[i].is_finished() {
            let job = scoring.swap_remove(i);
            count_score(report, job.await);
        } else {
            i += 1;
        }
    }
}

fn count_score(
    report: &mut StreamReport,
    result: Result<crate::observe::QualityObservation, tokio::task::JoinError>,
) {
    match result {
        Ok(q) if q.error.is_none() => report.quality_scored += 1,
        _ => report.quality_failed += 1,
    }
}

/// Hands each conformance finding to the observer and counts it.
fn report_violations(report: &mut StreamReport, observer: &dyn ProbeObserver, found: Vec<Found>) {
    let at = crate::clock::now_unix_ms();
    for (rendition, violation) in found {
        report.violations += 1;
        observer.violation(&ViolationObservation::of(
            &report.stream_key,
            rendition,
            violation,
            at,
        ));
    }
}

fn count_check(report: &mut StreamReport, passed: bool) {
    if passed {
        report.checks_passed += 1;
    } else {
        report.checks_failed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::PullEvent;

    #[tokio::test]
    async fn a_consumer_that_is_behind_holds_the_puller_back() {
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let sink = ChannelSink(tx);
        let event = || PullEvent::Renditions(Vec::new());
        for _ in 0..EVENT_QUEUE {
            sink.deliver(event()).await;
        }
        let mut blocked = sink.deliver(event());
        assert!(
            futures_util::poll!(&mut blocked).is_pending(),
            "a full queue must make the puller wait"
        );
        rx.recv().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .expect("room made by the consumer lets the puller go on");
    }
}
