//! Streams through a target: the probes driven by the executors, observations turned into metrics.
//!
//! [`ProbeRunner`] is the [`StreamRunner`] the executors use for stream workloads: each stream is a
//! `probes::StreamProbe` publishing the shared stamped source to the target's RTMP URL and pulling
//! its HLS back. [`MetricsObserver`] is where probe observations become journal records; each
//! record feeds the live registry through the metric table's mapping (`Registry::add_record`),
//! tagged with its workload, stream and rendition columns (and, in a capacity search, the stream
//! count at the time, so each step can be judged alone). Only the samples no record column holds
//! (stream-tester's segment latency, VMAF deficit, stalls, publisher lag and reconnects) are added
//! by name here.

use std::sync::Arc;
use std::time::Duration;

use observation::record::{
    CheckRecord, PartRecord, PlayerRecord, QualitySample, Record, RecordKind, SegmentRecord,
    ViolationRecord,
};
use probes::players::StreamPlayers;
use probes::quality::QualitySampler;
use probes::{
    CheckObservation, CheckOptions, PartObservation, PlayerEvent, PlayerObservation, ProbeObserver,
    PublishObservation, PublishPhase, QualityObservation, ReplaySource, SegmentObservation,
    StallObservation, StreamProbe, StreamProbeConfig, ViolationObservation,
};
use reports::JournalWriter;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::executors::{LiveLoad, StreamFuture, StreamRunner, StreamSpec};
use crate::metrics::{Registry, Tags};
use crate::scenario::Profile;

/// Output pixels delivered in transcoded renditions (not `source`): what orchestrators bill for.
#[derive(Debug, Default)]
pub struct DeliveredPixels(std::sync::atomic::AtomicU64);

impl DeliveredPixels {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Turns probe observations into metrics and journal records.
pub struct MetricsObserver {
    pub registry: Arc<Registry>,
    pub journal: Option<JournalWriter>,
    pub pixels: Arc<DeliveredPixels>,
    pub workload: String,
    /// When set (capacity search), samples also carry `sessions=<live streams>`.
    pub load: Option<Arc<LiveLoad>>,
}

impl MetricsObserver {
    fn tags(&self, stream: &str, rendition: Option<&str>) -> Tags {
        let mut tags = Tags::new();
        tags.insert("workload".into(), self.workload.clone());
        tags.insert("stream".into(), stream.to_owned());
        if let Some(rendition) = rendition {
            tags.insert("rendition".into(), rendition.to_owned());
        }
        tags.extend(self.load_tags());
        tags
    }

    /// The tags a record's columns do not carry: `sessions` in a capacity search.
    fn load_tags(&self) -> Tags {
        let mut tags = Tags::new();
        if let Some(load) = &self.load {
            tags.insert("sessions".into(), load.get().to_string());
        }
        tags
    }

    /// Feeds a record's metric samples to the registry and appends it to the journal.
    pub(crate) fn observe<R: RecordKind + Into<Record>>(&self, record: R) {
        self.registry.add_record(&record, &self.load_tags());
        self.record(record);
    }
}

impl MetricsObserver {
    /// Every HLS conformance rule counts 0 violations in this workload until one is found, so
    /// `hls_violations{rule=…}` thresholds judge a rule that never broke (selectors on the
    /// workload, rule and severity).
    fn count_no_violations_yet(&self) {
        for rule in probes::conformance::RULES {
            let mut tags = self.load_tags();
            tags.insert("workload".into(), self.workload.clone());
            tags.insert("rule".into(), rule.id.into());
            tags.insert("severity".into(), rule.severity.as_str().into());
            self.registry.add("hls_violations", &tags, 0.0);
        }
    }

    /// A quality score, tagged (direct tests) with the orchestrator and region that produced it.
    pub(crate) fn quality_of(&self, q: &QualityObservation, at: Option<(&str, &str)>) {
        let mut tags = self.tags(&q.stream_key, Some(&q.rendition));
        if let Some((orchestrator, region)) = at {
            tags.insert("orchestrator".into(), orchestrator.to_owned());
            tags.insert("region".into(), region.to_owned());
        }
        if let Some(difference) = q.difference {
            self.registry.add("vmaf_deficit", &tags, -difference);
        }
        let mut check = tags.clone();
        check.insert("check".into(), "quality".into());
        self.registry.add_bool("checks", &check, q.error.is_none());
        for (origin, vmaf) in [("network", q.vmaf), ("reference", q.vmaf_reference)] {
            if vmaf.is_none() && origin == "reference" {
                continue;
            }
            self.observe(QualitySample {
                t_ms: q.scored_at_unix_ms,
                workload: self.workload.clone(),
                stream: q.stream_key.clone(),
                rendition: q.rendition.clone(),
                seq: q.seq,
                origin: origin.into(),
                orchestrator: at.map(|(o, _)| o.to_owned()),
                region: at.map(|(_, r)| r.to_owned()),
                vmaf,
                psnr: if origin == "network" { q.psnr_y } else { None },
                frames: Some(q.frames_paired as u32),
            });
        }
    }

    /// Appends a record to the journal only (the direct executor's per-rendition rows, whose
    /// metrics are per segment).
    pub(crate) fn record(&self, record: impl Into<Record>) {
        // A write failure is reported once, by the run, which stops on it; only a record that
        // could not be serialised is worth a warning of its own.
        if let Some(journal) = &self.journal
            && let Err(error) = journal.append(record)
            && journal.failure().is_none()
        {
            warn!("cannot append to the records journal: {error}");
        }
    }
}

impl ProbeObserver for MetricsObserver {
    fn segment(&self, s: &SegmentObservation) {
        let media = s.media.as_ref();
        self.observe(SegmentRecord {
            t_ms: s
                .download_finished_unix_ms
                .or(s.first_seen_unix_ms)
                .unwrap_or_else(probes::clock::now_unix_ms),
            workload: self.workload.clone(),
            stream: s.stream_key.clone(),
            rendition: s.rendition.clone(),
            seq: s.seq,
            orchestrator: None,
            region: None,
            ok: s.success,
            error: s.failure.clone(),
            message: None,
            duration_s: media.map(|m| m.decoded.duration_secs).or(s.extinf_secs),
            latency_ms: s.latency.glass_to_glass_ms,
            upload_ms: None,
            transcode_ms: None,
            download_ms: s.download_ms,
            round_trip_ms: None,
            bytes: Some(s.bytes),
            bitrate_kbps: media
                .filter(|m| m.decoded.duration_secs > 0.0)
                .map(|m| s.bytes as f64 * 8.0 / m.decoded.duration_secs / 1000.0),
            width: media.map(|m| m.decoded.width),
            height: media.map(|m| m.decoded.height),
            frames: media.and_then(|m| u32::try_from(m.decoded.frames).ok()),
        });
        if let (true, Some(m)) = (s.success && s.rendition != "source", media) {
            let pixels =
                u64::from(m.decoded.width) * u64::from(m.decoded.height) * m.decoded.frames;
            self.pixels
                .0
                .fetch_add(pixels, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(ms) = s.latency.segment_latency_ms {
            let tags = self.tags(&s.stream_key, Some(&s.rendition));
            self.registry.add("segment_latency", &tags, ms);
        }
    }

    fn check(&self, c: &CheckObservation) {
        self.observe(CheckRecord {
            t_ms: c.at_unix_ms,
            workload: self.workload.clone(),
            stream: c.stream_key.clone(),
            rendition: Some(c.rendition.clone()),
            seq: c.seq,
            check: c.check.clone(),
            ok: c.passed,
            message: Some(c.reason.clone()),
            observed: None,
            expected: None,
        });
    }

    fn quality(&self, q: &QualityObservation) {
        self.quality_of(q, None);
    }

    fn violation(&self, v: &ViolationObservation) {
        self.observe(ViolationRecord {
            t_ms: v.at_unix_ms,
            workload: self.workload.clone(),
            stream: v.stream_key.clone(),
            rendition: v.rendition.clone(),
            rule: v.rule.clone(),
            severity: v.severity.clone(),
            url: v.url.clone(),
            line: v.line,
            detail: v.detail.clone(),
            occurrences: 1,
        });
    }

    fn part(&self, p: &PartObservation) {
        self.observe(PartRecord {
            t_ms: p.download_finished_unix_ms,
            workload: self.workload.clone(),
            stream: p.stream_key.clone(),
            rendition: p.rendition.clone(),
            msn: p.msn,
            part: u32::try_from(p.index).unwrap_or(u32::MAX),
            ok: p.success,
            error: p.failure.clone(),
            hinted: p.hinted,
            duration_s: Some(p.duration_secs),
            download_ms: Some((p.download_finished_unix_ms - p.download_started_unix_ms) as f64),
            bytes: Some(p.bytes),
            part_latency_ms: p.part_latency_ms,
        });
    }

    fn player(&self, p: &PlayerObservation) {
        let mut record = PlayerRecord {
            t_ms: p.at_unix_ms,
            workload: self.workload.clone(),
            stream: p.stream_key.clone(),
            player: p.player,
            kind: String::new(),
            rendition: p.rendition.clone(),
            ttff_ms: None,
            latency_ms: None,
            stall_ms: None,
            stalls: None,
            level_switches: None,
            decoded_frames: None,
            dropped_frames: None,
            ok: None,
            error: None,
        };
        record.kind = match &p.event {
            PlayerEvent::FirstFrame { ttff_ms } => {
                record.ttff_ms = Some(*ttff_ms);
                // A player that never stalls counts 0, so a threshold judges it.
                self.registry
                    .add("player_stalls", &self.tags(&p.stream_key, None), 0.0);
                "first_frame"
            }
            PlayerEvent::Latency { latency_ms, .. } => {
                record.latency_ms = Some(*latency_ms);
                "latency"
            }
            PlayerEvent::Stall { stall_ms } => {
                record.stall_ms = Some(*stall_ms);
                record.stalls = Some(1);
                "stall"
            }
            PlayerEvent::LevelSwitch { .. } => {
                record.level_switches = Some(1);
                "level_switch"
            }
            PlayerEvent::Ended {
                decoded_frames,
                dropped_frames,
                error,
            } => {
                record.decoded_frames = *decoded_frames;
                record.dropped_frames = *dropped_frames;
                record.ok = Some(error.is_none());
                record.error = error.clone();
                if let Some(error) = error {
                    warn!(stream = %p.stream_key, player = p.player, "a browser player failed: {error}");
                    "failed"
                } else {
                    "ended"
                }
            }
        }
        .into();
        self.observe(record);
    }

    fn stall(&self, s: &StallObservation) {
        if !s.ended {
            self.registry
                .add("stalls", &self.tags(&s.stream_key, Some(&s.rendition)), 1.0);
        }
    }

    fn publish_progress(&self, p: &PublishObservation) {
        let mut tags = self.tags(&p.stream_key, None);
        match p.phase {
            PublishPhase::Progress => self.registry.add("publish_lag", &tags, p.lag_ms),
            PublishPhase::Disconnected => {
                let error = p.error.as_deref().unwrap_or("connection lost");
                warn!(stream = %p.stream_key, "publisher disconnected ({error}); reconnecting");
            }
            PublishPhase::Reconnected => {
                self.registry.add("publish_reconnects", &tags, 1.0);
                info!(
                    stream = %p.stream_key,
                    "publisher reconnected after {:.0} ms without a connection",
                    p.outage_ms.unwrap_or(0.0)
                );
            }
            PublishPhase::Started | PublishPhase::Failed => {
                if p.phase == PublishPhase::Started {
                    // A stream that never reconnects counts 0, so a threshold judges it.
                    self.registry.add("publish_reconnects", &tags, 0.0);
                    self.count_no_violations_yet();
                }
                tags.insert("check".into(), "publish".into());
                self.registry
                    .add_bool("checks", &tags, p.phase == PublishPhase::Started);
                if let Some(error) = &p.error {
                    warn!(stream = %p.stream_key, "publishing failed: {error}");
                }
            }
            PublishPhase::Finished => {}
        }
    }
}

/// Where streams go: URL templates with `{stream}` for the stream key.
#[derive(Debug, Clone)]
pub struct StreamTarget {
    pub rtmp_url: String,
    pub playback_url: String,
}

/// Runs each stream as a `StreamProbe` against a target.
pub struct ProbeRunner {
    pub target: StreamTarget,
    pub source: Arc<ReplaySource>,
    pub client: reqwest::Client,
    pub registry: Arc<Registry>,
    pub journal: Option<JournalWriter>,
    pub pixels: Arc<DeliveredPixels>,
    pub quality: Option<Arc<QualitySampler>>,
    pub ladder: Vec<Profile>,
    /// How long a stream publishes when nothing stops it earlier (the workload's length).
    pub duration: Duration,
    /// Set for capacity searches (see [`MetricsObserver::load`]).
    pub load: Option<Arc<LiveLoad>>,
    /// Browser players watching each stream (the workload's `players`).
    pub players: Option<StreamPlayers>,
}

/// How long a stopped stream keeps pulling for its last segments.
const DRAIN: Duration = Duration::from_secs(10);

impl StreamRunner for ProbeRunner {
    fn run(&self, spec: StreamSpec, stop: CancellationToken) -> StreamFuture {
        let rtmp_url = self.target.rtmp_url.replace("{stream}", &spec.key);
        let playback_url = self.target.playback_url.replace("{stream}", &spec.key);
        let mut config = StreamProbeConfig::new(&spec.key, &rtmp_url, &playback_url, self.duration);
        config.publish.start_frame = self.source.start_frame_for_stream(spec.index);
        config.drain = DRAIN;
        config.quality = self.quality.clone();
        config.players = self.players.clone();
        config.checks = CheckOptions {
            resolutions: self
                .ladder
                .iter()
                .map(|p| (p.name.clone(), (p.width, p.height)))
                .collect(),
            ..config.checks
        };
        let observer = Arc::new(MetricsObserver {
            registry: self.registry.clone(),
            journal: self.journal.clone(),
            pixels: self.pixels.clone(),
            workload: spec.workload.clone(),
            load: self.load.clone(),
        });
        let probe = StreamProbe::new(config, self.source.clone(), self.client.clone());
        Box::pin(async move {
            let probe = match probe {
                Ok(probe) => probe,
                Err(error) => {
                    warn!(stream = %spec.key, "cannot probe this stream: {error}");
                    let mut tags = observer.tags(&spec.key, None);
                    tags.insert("check".into(), "publish".into());
                    observer.registry.add_bool("checks", &tags, false);
                    return;
                }
            };
            // A stream stopped early (ramp-down, Ctrl-C) still drains its last segments.
            tokio::select! {
                _ = probe.run(observer) => {}
                () = async {
                    stop.cancelled().await;
                    tokio::time::sleep(DRAIN).await;
                } => {}
            }
        })
    }
}
