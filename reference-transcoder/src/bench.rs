//! The hardware benchmark behind `lpt bench`: live transcoding sessions paced at real time.
//!
//! Design: each session is a thread with its own [`LadderTranscoder`], fed the prepared
//! segments at the pace a live stream would deliver them (a segment is handed over no earlier
//! than its start time on the stream's clock; a session that falls behind works through its
//! backlog at once), and sessions start staggered across one segment duration so their
//! segments do not all arrive together. A segment "holds" when it transcodes within its own
//! duration; the real-time segment fraction is the gate, because averages hide tail misses.
//! Records flow back over a channel so the caller's callback runs on the caller's thread.
//! Capacity search ramps the session count until fewer than `realtime_target` of segments hold
//! and reports the last count that held.

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::input::{BenchInput, InputError, InputSegment, load_segments};
use crate::ladder::{
    EncoderPath, LadderOptions, LadderTranscoder, Profile, TranscodeError, choose_path,
};

/// How many sessions to run.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchMode {
    /// Exactly this many concurrent sessions.
    Sessions(u32),
    /// Ramp from `start` by `step` until segments stop holding real time (or `max` is reached).
    FindCapacity { start: u32, step: u32, max: u32 },
}

/// Benchmark settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    pub input: BenchInput,
    pub profiles: Vec<Profile>,
    pub ladder: LadderOptions,
    pub mode: BenchMode,
    /// Segments each session transcodes (looping over the input); `None` = the input once.
    pub segments_per_session: Option<u32>,
    /// Pace segments at real time (a live stream). Off = as fast as possible.
    pub real_time: bool,
    /// Fraction of segments that must finish within their duration for a load to hold.
    pub realtime_target: f64,
    /// Call [`crate::tune_allocator_for_transcoding`] first (process-wide; on by default since
    /// the benchmark owns its process). It removes ~3 % of CPU per frame spent faulting in
    /// encoder buffers that libx264 reallocates at every segment.
    pub tune_allocator: bool,
}

impl BenchOptions {
    pub fn new(input: BenchInput, profiles: Vec<Profile>, mode: BenchMode) -> Self {
        BenchOptions {
            input,
            profiles,
            ladder: LadderOptions::default(),
            mode,
            segments_per_session: None,
            real_time: true,
            realtime_target: 0.99,
            tune_allocator: true,
        }
    }
}

/// One rendition of one segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RenditionRecord {
    pub profile: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub pixels: u64,
    pub encode_secs: f64,
}

/// One segment of one session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchedSegment {
    /// Concurrent sessions in the run this segment belongs to.
    pub load: u32,
    pub session: u32,
    pub seq: u32,
    /// Seconds since the run started when transcoding began.
    pub started_secs: f64,
    pub source_duration_secs: f64,
    pub transcode_secs: f64,
    /// transcode ÷ source duration (< 1 is faster than real time).
    pub realtime_ratio: f64,
    pub realtime: bool,
    pub frames: u64,
    pub pixels: u64,
    pub renditions: Vec<RenditionRecord>,
    pub error: Option<String>,
}

/// The outcome of one load (one session count).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadSummary {
    pub sessions: u32,
    pub segments: u64,
    pub failed_segments: u64,
    pub realtime_segments: u64,
    /// Segments that finished within their own duration ÷ all segments (failures count as misses).
    pub realtime_segment_fraction: f64,
    /// Total transcode time ÷ total source duration (livepeer_bench's figure).
    pub realtime_duration_ratio: f64,
    pub ratio_p50: f64,
    pub ratio_p95: f64,
    pub ratio_p99: f64,
    pub output_pixels: u64,
    pub output_pixels_per_sec: f64,
    pub wall_secs: f64,
    /// Process CPU time ÷ (wall time × cores), 0..1.
    pub cpu_utilisation: f64,
    pub held: bool,
}

/// What `lpt bench` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchSummary {
    pub encoder_path: EncoderPath,
    pub encoder_path_reason: String,
    pub profiles: Vec<String>,
    pub input_segments: usize,
    pub cpu_cores: usize,
    pub realtime_target: f64,
    /// One entry per load run (one for `Sessions`, the ramp for `FindCapacity`).
    pub loads: Vec<LoadSummary>,
    /// The highest session count whose load held (capacity search), or `None` for `Sessions`.
    pub capacity_sessions: Option<u32>,
}

impl BenchSummary {
    /// The last (for `Sessions`, only) load's summary.
    pub fn last_load(&self) -> Option<&LoadSummary> {
        self.loads.last()
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot start a transcoding session: {0}")]
    Session(TranscodeError),
    #[error("invalid benchmark settings: {0}")]
    Invalid(String),
}

/// Runs the benchmark, calling `on_record` for every segment as it finishes.
pub fn run_bench(
    options: &BenchOptions,
    mut on_record: impl FnMut(&BenchedSegment),
) -> Result<BenchSummary, BenchError> {
    if options.profiles.is_empty() {
        return Err(BenchError::Invalid("the ladder is empty".into()));
    }
    if !(options.realtime_target > 0.0 && options.realtime_target <= 1.0) {
        return Err(BenchError::Invalid(format!(
            "realtime target {} must be in (0, 1]",
            options.realtime_target
        )));
    }
    if options.tune_allocator {
        crate::tune_allocator_for_transcoding();
    }
    let segments = Arc::new(load_segments(&options.input)?);
    let (path, reason) = choose_path(options.ladder.hardware);
    let mut summary = BenchSummary {
        encoder_path: path,
        encoder_path_reason: reason,
        profiles: options.profiles.iter().map(|p| p.name.clone()).collect(),
        input_segments: segments.len(),
        cpu_cores: cores(),
        realtime_target: options.realtime_target,
        loads: Vec::new(),
        capacity_sessions: None,
    };
    match options.mode {
        BenchMode::Sessions(n) => {
            if n == 0 {
                return Err(BenchError::Invalid("sessions must be at least 1".into()));
            }
            summary
                .loads
                .push(run_load(options, &segments, n, &mut on_record)?);
        }
        BenchMode::FindCapacity { start, step, max } => {
            if start == 0 || step == 0 || max < start {
                return Err(BenchError::Invalid(format!(
                    "capacity ramp start={start} step={step} max={max}"
                )));
            }
            let mut held = 0;
            let mut n = start;
            while n <= max {
                let load = run_load(options, &segments, n, &mut on_record)?;
                let ok = load.held;
                summary.loads.push(load);
                if !ok {
                    break;
                }
                held = n;
                n += step;
            }
            summary.capacity_sessions = Some(held);
        }
    }
    Ok(summary)
}

fn run_load(
    options: &BenchOptions,
    segments: &Arc<Vec<InputSegment>>,
    sessions: u32,
    on_record: &mut impl FnMut(&BenchedSegment),
) -> Result<LoadSummary, BenchError> {
    let per_session = options
        .segments_per_session
        .unwrap_or(segments.len() as u32)
        .max(1);
    let mean_duration =
        segments.iter().map(|s| s.duration_secs).sum::<f64>() / segments.len() as f64;
    let stagger = Duration::from_secs_f64(mean_duration / sessions as f64);
    // Open every session first so start-up cost is not charged to the first segments.
    let mut transcoders = Vec::with_capacity(sessions as usize);
    for _ in 0..sessions {
        transcoders.push(
            LadderTranscoder::new(options.profiles.clone(), options.ladder.clone())
                .map_err(BenchError::Session)?,
        );
    }
    let (tx, rx) = channel::<BenchedSegment>();
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(sessions as usize);
    for (session, mut transcoder) in transcoders.into_iter().enumerate() {
        let (tx, segments, real_time) = (tx.clone(), Arc::clone(segments), options.real_time);
        let session_start = started + stagger * session as u32;
        handles.push(std::thread::spawn(move || {
            let mut stream_clock = Duration::ZERO;
            for seq in 0..per_session {
                let segment = &segments[seq as usize % segments.len()];
                if real_time {
                    let due = session_start + stream_clock;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                stream_clock += Duration::from_secs_f64(segment.duration_secs);
                let t0 = Instant::now();
                let result = transcoder.transcode(&segment.data);
                let transcode_secs = t0.elapsed().as_secs_f64();
                let record = segment_record(
                    sessions,
                    session as u32,
                    seq,
                    segment,
                    started,
                    t0,
                    transcode_secs,
                    result,
                );
                if tx.send(record).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut records = Vec::new();
    for record in rx {
        on_record(&record);
        records.push(record);
    }
    for h in handles {
        let _ = h.join();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu_before;
    Ok(summarise(
        sessions,
        &records,
        wall,
        cpu,
        options.realtime_target,
    ))
}

#[allow(clippy::too_many_arguments)]
fn segment_record(
    load: u32,
    session: u32,
    seq: u32,
    segment: &InputSegment,
    run_start: Instant,
    t0: Instant,
    transcode_secs: f64,
    result: Result<crate::ladder::LadderOutput, TranscodeError>,
) -> BenchedSegment {
    let duration = segment.duration_secs;
    let mut record = BenchedSegment {
        load,
        session,
        seq,
        started_secs: (t0 - run_start).as_secs_f64(),
        source_duration_secs: duration,
        transcode_secs,
        realtime_ratio: if duration > 0.0 {
            transcode_secs / duration
        } else {
            f64::INFINITY
        },
        realtime: false,
        frames: 0,
        pixels: 0,
        renditions: Vec::new(),
        error: None,
    };
    match result {
        Ok(out) => {
            record.realtime = transcode_secs <= duration;
            record.frames = out.renditions.iter().map(|r| r.frames).sum();
            record.pixels = out.total_pixels();
            record.renditions = out
                .renditions
                .iter()
                .map(|r| RenditionRecord {
                    profile: r.profile.clone(),
                    width: r.width,
                    height: r.height,
                    frames: r.frames,
                    pixels: r.pixels,
                    encode_secs: r.encode_time.as_secs_f64(),
                })
                .collect();
        }
        Err(e) => record.error = Some(e.to_string()),
    }
    record
}

fn summarise(
    sessions: u32,
    records: &[BenchedSegment],
    wall: f64,
    cpu: f64,
    target: f64,
) -> LoadSummary {
    let segments = records.len() as u64;
    let failed = records.iter().filter(|r| r.error.is_some()).count() as u64;
    let realtime = records.iter().filter(|r| r.realtime).count() as u64;
    let total_transcode: f64 = records.iter().map(|r| r.transcode_secs).sum();
    let total_duration: f64 = records.iter().map(|r| r.source_duration_secs).sum();
    let mut ratios: Vec<f64> = records.iter().map(|r| r.realtime_ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let pixels: u64 = records.iter().map(|r| r.pixels).sum();
    let fraction = if segments > 0 {
        realtime as f64 / segments as f64
    } else {
        0.0
    };
    LoadSummary {
        sessions,
        segments,
        failed_segments: failed,
        realtime_segments: realtime,
        realtime_segment_fraction: fraction,
        realtime_duration_ratio: if total_duration > 0.0 {
            total_transcode / total_duration
        } else {
            0.0
        },
        ratio_p50: percentile(&ratios, 50.0),
        ratio_p95: percentile(&ratios, 95.0),
        ratio_p99: percentile(&ratios, 99.0),
        output_pixels: pixels,
        output_pixels_per_sec: if wall > 0.0 {
            pixels as f64 / wall
        } else {
            0.0
        },
        wall_secs: wall,
        cpu_utilisation: if wall > 0.0 {
            (cpu / (wall * cores() as f64)).min(1.0)
        } else {
            0.0
        },
        held: segments > 0 && fraction >= target,
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// User + system CPU seconds of this process (all threads).
pub fn process_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF covers every thread.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0.0;
    }
    let u = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            (
                percentile(&v, 50.0),
                percentile(&v, 95.0),
                percentile(&v, 99.0)
            ),
            (50.0, 95.0, 99.0)
        );
        assert_eq!(percentile(&[0.3], 99.0), 0.3);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
