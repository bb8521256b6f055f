//! The quality probe: scores sampled rendition segments during a run against the source, and
//! against a local reference transcode of the same profile.
//!
//! Design: every stream publishes the same stamped clip, so the source side of a comparison is
//! never downloaded: it is the run's [`EncodedSource`] cut into stand-alone TS segments once.
//! A rendition segment whose first decoded stamp is frame `F` belongs to the source segment whose
//! `first_frame == F` (GOPs are 2 s and segments are cut at key frames, so they line up); when
//! a rendition segment spans several source segments they are concatenated up to its last
//! stamp. Scoring is CPU-heavy and is the instrument, not the system under test, so it runs on
//! its own worker threads at a lower CPU priority (nice +10): on a small machine that also hosts
//! the stack, the transcoders keep real time and the scores simply arrive later. Samples wait in
//! a short bounded queue (the renditions of one sampled sequence number arrive together); a
//! sample that finds the queue full is dropped and counted, so a slow scorer cannot grow memory
//! or delay the rest of the probe. The source rendition (a copy of what was published) is never
//! scored. A rendition named after an lpms
//! preset is also scored beside the reference transcoder's rendition of that preset (one
//! reusable [`ReferenceLadder`] session per profile, pooled); any other rendition (nginx's
//! pass-through, a custom ladder) is scored against the source only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use quality::{
    MediaInput, NetworkRendition, QualityOptions, QualityReport, ReferenceLadder, VmafModelVersion,
    compare_inputs,
};
use reference_transcoder::{EncodedSource, LadderOptions, Profile, TsSegment};
use serde::{Deserialize, Serialize};

use crate::clock::now_unix_ms;
use crate::observe::{ProbeObserver, QualityObservation};

/// Source segments are cut at this target length (the source's 2 s GOP).
const SOURCE_SEGMENT_SECS: f64 = 2.0;
/// A rendition segment longer than this many source segments is scored on its first ones only.
const MAX_SOURCE_SEGMENTS_PER_SAMPLE: usize = 8;

/// Which segments are scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// This fraction of each rendition's sequence numbers (0..=1), spread evenly.
    Fraction(f64),
    /// Every n-th sequence number (`seq % n == 0`).
    EveryNth(u64),
}

impl Sampling {
    /// Whether segment `seq` is sampled. Deterministic, and the same for every rendition, so the
    /// renditions of one sequence number are scored together.
    pub fn samples(&self, seq: u64) -> bool {
        match *self {
            Sampling::Fraction(f) if f >= 1.0 => true,
            Sampling::Fraction(f) if f <= 0.0 => false,
            // Sampled when the running count `floor(seq × f)` steps up at this seq.
            Sampling::Fraction(f) => ((seq + 1) as f64 * f).floor() > (seq as f64 * f).floor(),
            Sampling::EveryNth(n) => n > 0 && seq.is_multiple_of(n),
        }
    }
}

/// The largest sample fraction a scorer keeps up with: each scoring job costs `cost_secs` of
/// wall time, `slots` run at once, and `renditions` renditions in all (streams × ladder) each
/// produce a segment every `segment_secs`. Measure `cost_secs` with the `quality_sampler`
/// benchmark (or from [`QualityObservation::scoring_ms`]) on the machine that runs the probe.
pub fn sustainable_fraction(
    cost_secs: f64,
    slots: usize,
    renditions: usize,
    segment_secs: f64,
) -> f64 {
    if cost_secs <= 0.0 || renditions == 0 {
        return 1.0;
    }
    (slots as f64 * segment_secs / (renditions as f64 * cost_secs)).clamp(0.0, 1.0)
}

/// What the quality probe scores and how.
#[derive(Debug, Clone)]
pub struct QualitySamplerConfig {
    pub sampling: Sampling,
    pub model: VmafModelVersion,
    /// libvmaf threads per scoring job.
    pub threads: u32,
    /// Score every n-th frame pair (1 = all).
    pub subsample: u32,
    /// Also transcode the source with the reference transcoder and score that rendition.
    pub score_reference: bool,
    /// Scoring jobs at once (worker threads).
    pub max_in_flight: usize,
    /// Samples waiting for a worker; samples beyond it are dropped and counted.
    pub max_queued: usize,
    /// Reference transcoder options (libx264 preset, threads).
    pub ladder: LadderOptions,
    /// The profile of a rendition whose name is not an lpms preset name (e.g. a target that
    /// names its playlists `360p.m3u8`). Renditions named neither here nor after a preset are
    /// scored against the source only.
    pub rendition_profiles: HashMap<String, Profile>,
}

impl Default for QualitySamplerConfig {
    fn default() -> Self {
        QualitySamplerConfig {
            sampling: Sampling::Fraction(0.25),
            model: VmafModelVersion::V061,
            threads: 1,
            subsample: 1,
            score_reference: true,
            max_in_flight: 1,
            max_queued: 8,
            ladder: LadderOptions {
                encoder_threads: 1,
                decoder_threads: 1,
                copy_audio: false,
                ..Default::default()
            },
            rendition_profiles: HashMap::new(),
        }
    }
}

/// Why a quality sampler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum QualityProbeError {
    #[error("quality sample fraction {0} is outside 0..=1")]
    Fraction(f64),
    #[error("quality sampling every_nth must be at least 1")]
    EveryNth,
    #[error("quality max_in_flight must be at least 1")]
    MaxInFlight,
    #[error("cannot start a scoring worker: {0}")]
    Worker(std::io::Error),
    #[error("cutting the source into segments: {0}")]
    Source(#[from] reference_transcoder::SourceError),
    #[error(transparent)]
    Options(#[from] quality::QualityError),
}

impl QualityObservation {
    /// An observation with no score yet.
    fn unscored(stream_key: String, rendition: String, seq: u64) -> Self {
        QualityObservation {
            stream_key,
            rendition,
            seq,
            source_first_frame: None,
            vmaf: None,
            vmaf_min: None,
            vmaf_p5: None,
            psnr_y: None,
            vmaf_reference: None,
            difference: None,
            frames_paired: 0,
            unmatched_source: 0,
            unmatched_rendition: 0,
            scoring_ms: 0.0,
            scored_at_unix_ms: 0,
            error: None,
        }
    }
}

/// The name HLS targets (our broadcaster, go-livepeer) give the pass-through source rendition.
pub const SOURCE_RENDITION: &str = "source";

/// Niceness of the scoring workers: above the transcoders, whose real time is being measured.
const SCORING_NICENESS: libc::c_int = 10;

type ScoringJob = Box<dyn FnOnce() + Send>;

/// A scoring worker: lowers its own CPU priority, then runs jobs until the sampler is dropped.
fn run_scoring_worker(queue: &Mutex<Receiver<ScoringJob>>) {
    // SAFETY: plain syscalls on the calling thread; Linux gives each thread its own nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, SCORING_NICENESS);
    }
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            // A job that panics loses its sample (reported as unscored), not the worker.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// What happened to one offered sample.
#[derive(Debug)]
pub enum Submission {
    /// Not selected by the sampling rule.
    NotSampled,
    /// The queue was full: dropped and counted.
    Dropped,
    /// Queued for a scoring worker; the observation goes to the observer when done.
    Scheduled(tokio::task::JoinHandle<QualityObservation>),
}

/// Counters of a sampler, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualitySamplerStats {
    /// Offered through [`QualitySampler::submit`] and selected by the sampling rule.
    pub sampled: u64,
    pub scored: u64,
    pub failed: u64,
    pub dropped: u64,
}

/// One rendition segment to score.
#[derive(Debug, Clone)]
pub struct QualitySample {
    pub stream_key: String,
    pub rendition: String,
    pub seq: u64,
    /// First and last decoded stamp frame (from the segment checks).
    pub first_stamp_frame: Option<u32>,
    pub last_stamp_frame: Option<u32>,
    pub data: Bytes,
}

/// Scores sampled segments of every stream of a run (share one behind an `Arc`).
pub struct QualitySampler {
    config: QualitySamplerConfig,
    options: QualityOptions,
    segments: Vec<TsSegment>,
    /// Feeds the scoring workers; dropping the sampler ends them.
    jobs: SyncSender<ScoringJob>,
    /// Idle reference sessions per profile name.
    ladders: Mutex<HashMap<String, Vec<ReferenceLadder>>>,
    sampled: AtomicU64,
    /// Queued or being scored.
    pending: AtomicU64,
    idle: tokio::sync::Notify,
    scored: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for QualitySampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QualitySampler")
            .field("config", &self.config)
            .field("source_segments", &self.segments.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl QualitySampler {
    /// Validates `config` and cuts `source` (the clip every stream publishes) into segments.
    pub fn new(
        source: &EncodedSource,
        config: QualitySamplerConfig,
    ) -> Result<QualitySampler, QualityProbeError> {
        match config.sampling {
            Sampling::Fraction(f) if !(0.0..=1.0).contains(&f) => {
                return Err(QualityProbeError::Fraction(f));
            }
            Sampling::EveryNth(0) => return Err(QualityProbeError::EveryNth),
            _ => {}
        }
        if config.max_in_flight == 0 {
            return Err(QualityProbeError::MaxInFlight);
        }
        let options = QualityOptions {
            model: config.model,
            threads: config.threads,
            subsample: config.subsample,
            psnr: true,
            ..Default::default()
        };
        options.validate()?;
        let (jobs, queue) = std::sync::mpsc::sync_channel(config.max_queued);
        let queue = Arc::new(Mutex::new(queue));
        for worker in 0..config.max_in_flight {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("lpt-quality-{worker}"))
                .spawn(move || run_scoring_worker(&queue))
                .map_err(QualityProbeError::Worker)?;
        }
        Ok(QualitySampler {
            segments: source.ts_segments(SOURCE_SEGMENT_SECS)?,
            jobs,
            options,
            config,
            ladders: Mutex::new(HashMap::new()),
            sampled: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            idle: tokio::sync::Notify::new(),
            scored: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &QualitySamplerConfig {
        &self.config
    }

    pub fn samples(&self, seq: u64) -> bool {
        self.config.sampling.samples(seq)
    }

    pub fn stats(&self) -> QualitySamplerStats {
        QualitySamplerStats {
            sampled: self.sampled.load(Ordering::Relaxed),
            scored: self.scored.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Offers a downloaded segment: if sampled (and not the source rendition) and the queue has
    /// room, queues it for a scoring worker, which reports the result to `observer`. Must be
    /// called inside a Tokio runtime.
    pub fn submit(
        self: &Arc<Self>,
        sample: QualitySample,
        observer: Arc<dyn ProbeObserver>,
    ) -> Submission {
        if !self.samples(sample.seq) || sample.rendition.eq_ignore_ascii_case(SOURCE_RENDITION) {
            return Submission::NotSampled;
        }
        self.sampled.fetch_add(1, Ordering::Relaxed);
        let (done, finished) = tokio::sync::oneshot::channel();
        let sampler = self.clone();
        let (stream_key, rendition, seq) = (
            sample.stream_key.clone(),
            sample.rendition.clone(),
            sample.seq,
        );
        let job: ScoringJob = Box::new(move || {
            let observation = sampler.score(&sample);
            observer.quality(&observation);
            let _ = done.send(observation);
            sampler.pending.fetch_sub(1, Ordering::SeqCst);
            sampler.idle.notify_waiters();
        });
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.jobs.try_send(job)
        {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Submission::Dropped;
        }
        Submission::Scheduled(tokio::spawn(async move {
            finished.await.unwrap_or_else(|_| {
                let mut lost = QualityObservation::unscored(stream_key, rendition, seq);
                lost.error = Some("the scoring worker stopped before scoring it".into());
                lost
            })
        }))
    }

    /// Samples queued or being scored.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until every queued sample is scored (their observations delivered) or `deadline`
    /// passes; returns whether it went idle. Streams end before their last samples are scored
    /// (scoring runs at low priority), so a run calls this before it summarises.
    pub async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let mut idle = std::pin::pin!(self.idle.notified());
            // Registered before the check, so a job finishing in between still wakes us.
            idle.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.pending() == 0;
            }
        }
    }

    /// Scores one segment now, on this thread (the blocking half of [`Self::submit`]).
    pub fn score(&self, sample: &QualitySample) -> QualityObservation {
        let started = Instant::now();
        let mut observation = QualityObservation::unscored(
            sample.stream_key.clone(),
            sample.rendition.clone(),
            sample.seq,
        );
        observation.source_first_frame = sample.first_stamp_frame;
        if let Err(e) = self.score_into(sample, &mut observation) {
            observation.error = Some(e);
        }
        if observation.error.is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.scored.fetch_add(1, Ordering::Relaxed);
        }
        observation.scoring_ms = started.elapsed().as_secs_f64() * 1000.0;
        observation.scored_at_unix_ms = now_unix_ms();
        observation
    }

    fn score_into(&self, sample: &QualitySample, o: &mut QualityObservation) -> Result<(), String> {
        let first = sample
            .first_stamp_frame
            .ok_or("the segment has no readable frame stamp to match a source segment")?;
        let source = self.source_for(first, sample.last_stamp_frame)?;
        let label = format!("{}/{}/{}", sample.stream_key, sample.rendition, sample.seq);
        let profile = match self.config.rendition_profiles.get(&sample.rendition) {
            Some(p) => Some(p.clone()),
            None => Profile::preset(&sample.rendition).ok(),
        };
        match profile {
            Some(profile) if self.config.score_reference => {
                let profile_name = profile.name.clone();
                let comparison = self.with_ladder(profile, |ladder| {
                    ladder
                        .score_segment(
                            &label,
                            &source,
                            vec![NetworkRendition {
                                profile: profile_name,
                                data: sample.data.to_vec(),
                            }],
                        )
                        .map_err(|e| e.to_string())
                })?;
                let c = comparison
                    .into_iter()
                    .next()
                    .ok_or("the reference ladder returned no comparison")?
                    .comparison;
                fill(o, &c.network);
                o.vmaf_reference = Some(c.vmaf_reference);
                o.difference = Some(c.difference);
            }
            _ => {
                let report = compare_inputs(
                    MediaInput::Memory {
                        label: format!("{label} (source)"),
                        data: source,
                    },
                    MediaInput::Memory {
                        label,
                        data: sample.data.to_vec(),
                    },
                    &self.options,
                    Some(Arc::new(quality::LptStamps)),
                )
                .map_err(|e| e.to_string())?;
                fill(o, &report);
            }
        }
        Ok(())
    }

    /// The source bytes covering clip frames `first..=last`: the segment starting at `first`,
    /// followed by the next ones while they start at or before `last`.
    fn source_for(&self, first: u32, last: Option<u32>) -> Result<Vec<u8>, String> {
        let start = self
            .segments
            .iter()
            .position(|s| s.first_frame == first)
            .ok_or_else(|| format!("no source segment starts at clip frame {first}"))?;
        let last = last.filter(|l| *l >= first).unwrap_or(first);
        let mut data = Vec::new();
        for s in self.segments[start..]
            .iter()
            .take_while(|s| s.first_frame <= last)
            .take(MAX_SOURCE_SEGMENTS_PER_SAMPLE)
        {
            data.extend_from_slice(&s.data);
        }
        Ok(data)
    }

    /// Runs `f` with an idle reference session for `profile`, making one if none is idle.
    fn with_ladder<T>(
        &self,
        profile: Profile,
        f: impl FnOnce(&mut ReferenceLadder) -> Result<T, String>,
    ) -> Result<T, String> {
        let name = profile.name.clone();
        let idle = self
            .ladders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&name)
            .and_then(Vec::pop);
        let mut ladder = match idle {
            Some(l) => l,
            None => ReferenceLadder::new(
                vec![profile],
                self.config.ladder.clone(),
                self.options.clone(),
            )
            .map_err(|e| e.to_string())?,
        };
        let result = f(&mut ladder);
        // A session that failed may hold a broken encoder: only successful ones go back.
        if result.is_ok() {
            self.ladders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name)
                .or_default()
                .push(ladder);
        }
        result
    }
}

fn fill(o: &mut QualityObservation, report: &QualityReport) {
    let pooled = &report.pooled;
    o.vmaf = Some(pooled.vmaf.mean);
    o.vmaf_min = Some(pooled.vmaf.min);
    o.vmaf_p5 = Some(pooled.vmaf.p5);
    o.psnr_y = pooled.psnr_y.as_ref().map(|p| p.mean);
    o.frames_paired = report.counts.paired;
    o.unmatched_source = report.counts.unmatched_reference;
    o.unmatched_rendition = report.counts.unmatched_distorted;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_sampling_is_even_and_exact() {
        let quarter = (0..100)
            .filter(|s| Sampling::Fraction(0.25).samples(*s))
            .count();
        assert_eq!(quarter, 25);
        assert!((0..10).all(|s| Sampling::Fraction(1.0).samples(s)));
        assert!((0..10).all(|s| !Sampling::Fraction(0.0).samples(s)));
        let picked: Vec<u64> = (0..8)
            .filter(|s| Sampling::Fraction(0.5).samples(*s))
            .collect();
        assert_eq!(picked, vec![1, 3, 5, 7]);
    }

    #[test]
    fn sustainable_fraction_follows_the_cost() {
        // 1 s per job, one slot, 2 s segments: two renditions fit, eight need a quarter.
        assert_eq!(sustainable_fraction(1.0, 1, 2, 2.0), 1.0);
        assert_eq!(sustainable_fraction(1.0, 1, 8, 2.0), 0.25);
        assert_eq!(sustainable_fraction(1.0, 2, 8, 2.0), 0.5);
        assert_eq!(sustainable_fraction(0.0, 1, 8, 2.0), 1.0);
    }

    #[test]
    fn every_nth_sampling() {
        let picked: Vec<u64> = (0..10)
            .filter(|s| Sampling::EveryNth(3).samples(*s))
            .collect();
        assert_eq!(picked, vec![0, 3, 6, 9]);
    }
}
