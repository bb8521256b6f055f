//! Per-segment checks: each one a named pass/fail verdict with a reason.
//!
//! Design: the checker is stateful per stream — continuity needs the previous segment of the
//! same rendition, drift needs the same sequence number in the other renditions — so segments
//! of one stream must be fed in download order (the stream probe does so). A check that cannot
//! be judged (no expected resolution, no previous segment, first rendition of a sequence
//! number) yields no verdict rather than a pass, so rates are never inflated. Names are stable
//! ([`CHECK_NAMES`]): the tester tags its `checks` metric with them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reference_transcoder::DecodeSummary;

use crate::clock::{UnixMs, now_unix_ms};
use crate::decode::{DecodeError, DecodedSegment};
use crate::hls::{PlaylistPoll, PullError, PulledSegment};
use crate::latency::segment_latency;
use crate::observe::{CheckObservation, SegmentLatency, SegmentMedia, SegmentObservation};
use crate::sendlog::SendLog;

/// Every check name this module emits.
pub const CHECK_NAMES: &[&str] = &[
    "playlist",
    "content_type",
    "download",
    "decode",
    "codec",
    "resolution",
    "duration",
    "continuity",
    "drift",
    "stamps",
];

/// Tolerances and expectations.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Expected video codec (FFmpeg decoder name).
    pub codec: String,
    /// Expected size per rendition name (e.g. from the ladder); the master playlist's
    /// `RESOLUTION` is used for renditions not listed here.
    pub resolutions: HashMap<String, (u32, u32)>,
    /// Allowed |decoded duration − EXTINF| beyond one frame.
    pub duration_tolerance_secs: f64,
    /// Allowed gap or overlap between consecutive segments' timestamps.
    pub continuity_tolerance_secs: f64,
    /// Allowed difference of first timestamps between renditions of one sequence number.
    pub drift_tolerance_secs: f64,
    /// A stamp sent longer ago than this does not belong to this stream's live edge.
    pub max_latency: Duration,
    /// Fraction of decoded frames that must carry a readable stamp.
    pub min_stamped_fraction: f64,
    /// Frame period of the published source (for stamp-number continuity across renditions
    /// whose frame rate differs).
    pub source_frame_secs: Option<f64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            codec: "h264".into(),
            resolutions: HashMap::new(),
            duration_tolerance_secs: 0.05,
            continuity_tolerance_secs: 0.05,
            drift_tolerance_secs: 0.05,
            max_latency: Duration::from_secs(60),
            min_stamped_fraction: 0.9,
            source_frame_secs: None,
        }
    }
}

/// A checked segment: the record and its verdicts.
#[derive(Debug, Clone)]
pub struct CheckedSegment {
    pub observation: SegmentObservation,
    pub checks: Vec<CheckObservation>,
}

impl CheckedSegment {
    /// The verdict of `name`, if it was judged.
    pub fn verdict(&self, name: &str) -> Option<&CheckObservation> {
        self.checks.iter().find(|c| c.check == name)
    }
}

#[derive(Debug, Clone, Copy)]
struct PrevSegment {
    seq: u64,
    last_pts: Option<f64>,
    frame_secs: Option<f64>,
    last_stamp: Option<u32>,
}

#[derive(Debug, Clone)]
struct SeqFacts {
    rendition: String,
    first_pts: Option<f64>,
    first_stamp: Option<u32>,
}

#[derive(Default)]
struct CheckerState {
    previous: HashMap<String, PrevSegment>,
    by_seq: BTreeMap<u64, SeqFacts>,
}

/// Checks the segments of one stream.
pub struct SegmentChecker {
    stream_key: String,
    log: Option<Arc<SendLog>>,
    expected_stream_id: Option<u32>,
    options: CheckOptions,
    master_resolutions: Mutex<HashMap<String, (u32, u32)>>,
    state: Mutex<CheckerState>,
}

const ACCEPTED_SEGMENT_TYPES: &[&str] = &[
    "video/mp2t",
    "video/mp4",
    "video/iso.segment",
    "audio/mp4",
    "audio/aac",
    "audio/mpeg",
];
const ACCEPTED_PLAYLIST_TYPES: &[&str] = &[
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
];

impl SegmentChecker {
    /// A checker for `stream_key`; with a send log the stamps are matched against it.
    pub fn new(stream_key: &str, log: Option<Arc<SendLog>>, options: CheckOptions) -> Self {
        SegmentChecker {
            stream_key: stream_key.to_string(),
            expected_stream_id: log.as_ref().map(|l| l.stream_id()),
            log,
            options,
            master_resolutions: Mutex::new(HashMap::new()),
            state: Mutex::new(CheckerState::default()),
        }
    }

    /// Expect stamps carrying this stream id (when there is no send log).
    pub fn expect_stream_id(mut self, id: u32) -> Self {
        self.expected_stream_id = Some(id);
        self
    }

    /// Records a resolution announced by the master playlist.
    pub fn announce_resolution(&self, rendition: &str, size: (u32, u32)) {
        self.master_resolutions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rendition.to_string(), size);
    }

    fn expected_resolution(&self, rendition: &str) -> Option<(u32, u32)> {
        self.options
            .resolutions
            .get(rendition)
            .copied()
            .or_else(|| {
                self.master_resolutions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(rendition)
                    .copied()
            })
    }

    fn verdict(
        &self,
        rendition: &str,
        seq: Option<u64>,
        check: &str,
        passed: bool,
        reason: String,
    ) -> CheckObservation {
        CheckObservation {
            stream_key: self.stream_key.clone(),
            rendition: rendition.to_string(),
            seq,
            check: check.to_string(),
            passed,
            reason,
            at_unix_ms: now_unix_ms(),
        }
    }

    /// Verdicts for one playlist poll: `playlist` (fetched and parsed) and `content_type`.
    pub fn playlist(&self, poll: &PlaylistPoll) -> Vec<CheckObservation> {
        let rendition = poll.rendition.as_deref().unwrap_or("master");
        let mut out = vec![match &poll.outcome {
            Ok(n) => self.verdict(
                rendition,
                None,
                "playlist",
                true,
                format!("{} lists {n} entries", poll.url),
            ),
            Err(e) => self.verdict(rendition, None, "playlist", false, e.to_string()),
        }];
        if poll.outcome.is_ok() {
            out.push(self.content_type(
                rendition,
                None,
                poll.content_type.as_deref(),
                ACCEPTED_PLAYLIST_TYPES,
            ));
        }
        out
    }

    fn content_type(
        &self,
        rendition: &str,
        seq: Option<u64>,
        value: Option<&str>,
        accepted: &[&str],
    ) -> CheckObservation {
        match value {
            Some(v) => {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let ok = accepted.contains(&essence.as_str());
                let reason = if ok {
                    v.to_string()
                } else {
                    format!("Content-Type {v:?}, expected one of {accepted:?}")
                };
                self.verdict(rendition, seq, "content_type", ok, reason)
            }
            None => self.verdict(
                rendition,
                seq,
                "content_type",
                false,
                format!("no Content-Type header, expected one of {accepted:?}"),
            ),
        }
    }

    /// A segment that left the playlist before it was seen: a failed segment.
    pub fn missed(&self, rendition: &str, seq: u64, at: UnixMs) -> CheckedSegment {
        let reason = "left the playlist window before the puller saw it".to_string();
        CheckedSegment {
            observation: SegmentObservation {
                stream_key: self.stream_key.clone(),
                rendition: rendition.to_string(),
                seq,
                url: None,
                success: false,
                failure: Some(reason.clone()),
                extinf_secs: None,
                discontinuity: false,
                first_seen_unix_ms: None,
                download_started_unix_ms: None,
                download_finished_unix_ms: None,
                download_ms: None,
                bytes: 0,
                http_status: None,
                content_type: None,
                media: None,
                latency: SegmentLatency::default(),
            },
            checks: vec![CheckObservation {
                at_unix_ms: at,
                ..self.verdict(rendition, Some(seq), "download", false, reason)
            }],
        }
    }

    /// Checks one pulled segment; `decoded` is its decode result when the body was received.
    pub fn check(
        &self,
        pulled: &PulledSegment,
        decoded: Option<&Result<DecodedSegment, DecodeError>>,
    ) -> CheckedSegment {
        let r = pulled.rendition.as_str();
        let seq = Some(pulled.seq);
        let mut checks = Vec::new();
        let mut observation = SegmentObservation {
            stream_key: self.stream_key.clone(),
            rendition: r.to_string(),
            seq: pulled.seq,
            url: Some(pulled.url.clone()),
            success: false,
            failure: None,
            extinf_secs: Some(pulled.extinf_secs),
            discontinuity: pulled.discontinuity,
            first_seen_unix_ms: Some(pulled.first_seen_unix_ms),
            download_started_unix_ms: Some(pulled.download_started_unix_ms),
            download_finished_unix_ms: Some(pulled.download_finished_unix_ms),
            download_ms: Some(
                (pulled.download_finished_unix_ms - pulled.download_started_unix_ms) as f64,
            ),
            bytes: pulled.size,
            http_status: pulled.http_status,
            content_type: pulled.content_type.clone(),
            media: None,
            latency: SegmentLatency::default(),
        };
        if let Err(e) = &pulled.body {
            observation.failure = Some(e.to_string());
            if matches!(e, PullError::Gap { .. }) {
                // Never requested: no download to time.
                observation.download_ms = None;
            }
            checks.push(self.verdict(r, seq, "download", false, e.to_string()));
            return CheckedSegment {
                observation,
                checks,
            };
        }
        checks.push(self.verdict(
            r,
            seq,
            "download",
            true,
            format!(
                "{} bytes in {} ms",
                pulled.size,
                pulled.download_finished_unix_ms - pulled.download_started_unix_ms
            ),
        ));
        if pulled.http_status.is_some() {
            checks.push(self.content_type(
                r,
                seq,
                pulled.content_type.as_deref(),
                ACCEPTED_SEGMENT_TYPES,
            ));
        }
        let decoded = match decoded {
            None => {
                observation.success = true;
                return CheckedSegment {
                    observation,
                    checks,
                };
            }
            Some(Err(e)) => {
                observation.failure = Some(format!("decode: {e}"));
                checks.push(self.verdict(r, seq, "decode", false, e.to_string()));
                return CheckedSegment {
                    observation,
                    checks,
                };
            }
            Some(Ok(d)) => d,
        };
        let decode_ok = decoded.decode_errors == 0;
        checks.push(self.verdict(
            r,
            seq,
            "decode",
            decode_ok,
            format!(
                "{} frames, {} decode errors",
                decoded.frames.len(),
                decoded.decode_errors
            ),
        ));
        observation.success = true;
        if !decode_ok {
            observation.failure = Some(format!("{} decode errors", decoded.decode_errors));
        }

        // An audio-only rendition has no picture: no video codec, size, stamps or latency to
        // check, only that its audio is there and lasts as long as the playlist says.
        if !decoded.audio_only {
            checks.push(self.verdict(
                r,
                seq,
                "codec",
                decoded.codec == self.options.codec,
                format!("{} (expected {})", decoded.codec, self.options.codec),
            ));
        }
        if !decoded.audio_only
            && let Some((w, h)) = self.expected_resolution(r)
        {
            checks.push(self.verdict(
                r,
                seq,
                "resolution",
                (decoded.width, decoded.height) == (w, h),
                format!("{}x{} (expected {w}x{h})", decoded.width, decoded.height),
            ));
        }
        let frame = decoded.frame_secs().unwrap_or(0.0);
        let duration = decoded.duration_secs();
        let off = (duration - pulled.extinf_secs).abs();
        checks.push(self.verdict(
            r,
            seq,
            "duration",
            off <= frame + self.options.duration_tolerance_secs,
            format!(
                "decoded {duration:.3} s vs EXTINF {:.3} s (off by {off:.3} s, allowed {:.3})",
                pulled.extinf_secs,
                frame + self.options.duration_tolerance_secs
            ),
        ));

        let stamps: Vec<u32> = decoded.stamps().map(|s| s.frame_number).collect();
        let stamp_id = decoded.stamps().next().map(|s| s.stream_id);
        observation.media = Some(SegmentMedia {
            decoded: DecodeSummary {
                codec: decoded.codec.clone(),
                width: decoded.width,
                height: decoded.height,
                frames: decoded.frames.len() as u64,
                duration_secs: duration,
                first_pts_secs: decoded.first_pts_secs(),
                last_pts_secs: decoded.last_pts_secs(),
                fps: decoded.fps,
                audio_codec: decoded.audio_codec.clone(),
                decode_errors: decoded.decode_errors,
                stamped_frames: stamps.len() as u64,
            },
            first_stamp_frame: stamps.first().copied(),
            last_stamp_frame: stamps.last().copied(),
            stamp_stream_id: stamp_id,
        });
        if decoded.audio_only {
            return CheckedSegment {
                observation,
                checks,
            };
        }
        checks.push(self.stamps(r, pulled, decoded, &stamps));
        if let Some(log) = &self.log {
            observation.latency = segment_latency(
                log,
                &stamps,
                pulled.first_seen_unix_ms,
                pulled.download_finished_unix_ms,
            );
        }

        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let first_pts = decoded.first_pts_secs();
        if let Some(prev) = state.previous.get(r).copied()
            && prev.seq.checked_add(1) == Some(pulled.seq)
            && !pulled.discontinuity
        {
            checks.push(self.continuity(
                r,
                pulled.seq,
                prev,
                first_pts,
                stamps.first().copied(),
                decoded,
            ));
        }
        state.previous.insert(
            r.to_string(),
            PrevSegment {
                seq: pulled.seq,
                last_pts: decoded.last_pts_secs(),
                frame_secs: decoded.frame_secs(),
                last_stamp: stamps.last().copied(),
            },
        );
        match state.by_seq.get(&pulled.seq) {
            Some(other) if other.rendition != r => {
                checks.push(self.drift(r, pulled.seq, other, first_pts, stamps.first().copied()));
            }
            Some(_) => {}
            None => {
                state.by_seq.insert(
                    pulled.seq,
                    SeqFacts {
                        rendition: r.to_string(),
                        first_pts,
                        first_stamp: stamps.first().copied(),
                    },
                );
                while state.by_seq.len() > 256 {
                    state.by_seq.pop_first();
                }
            }
        }
        CheckedSegment {
            observation,
            checks,
        }
    }

    fn stamps(
        &self,
        r: &str,
        pulled: &PulledSegment,
        decoded: &DecodedSegment,
        stamps: &[u32],
    ) -> CheckObservation {
        let seq = Some(pulled.seq);
        let total = decoded.frames.len();
        if stamps.is_empty() {
            return self.verdict(
                r,
                seq,
                "stamps",
                false,
                format!("no readable frame stamp in {total} frames"),
            );
        }
        let fraction = stamps.len() as f64 / total.max(1) as f64;
        if fraction < self.options.min_stamped_fraction {
            return self.verdict(
                r,
                seq,
                "stamps",
                false,
                format!(
                    "only {} of {total} frames carry a readable stamp",
                    stamps.len()
                ),
            );
        }
        if let Some(expected) = self.expected_stream_id
            && let Some(bad) = decoded.stamps().find(|s| s.stream_id != expected)
        {
            return self.verdict(
                r,
                seq,
                "stamps",
                false,
                format!(
                    "frame {} carries stream id {:#x}, expected {expected:#x}",
                    bad.frame_number, bad.stream_id
                ),
            );
        }
        if let Some(log) = &self.log {
            let max = self.options.max_latency.as_millis() as i64;
            for &f in stamps {
                match log.latest_send_of(f, pulled.first_seen_unix_ms) {
                    None => {
                        return self.verdict(
                            r,
                            seq,
                            "stamps",
                            false,
                            format!(
                                "frame {f} had not been sent by stream {} when the segment appeared",
                                self.stream_key
                            ),
                        );
                    }
                    Some(s) if pulled.first_seen_unix_ms - s.sent_at > max => {
                        return self.verdict(
                            r,
                            seq,
                            "stamps",
                            false,
                            format!(
                                "frame {f} was last sent by stream {} {} ms before the segment appeared (more than {max} ms)",
                                self.stream_key,
                                pulled.first_seen_unix_ms - s.sent_at
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        self.verdict(
            r,
            seq,
            "stamps",
            true,
            format!(
                "{} of {total} frames stamped, frames {}..={}",
                stamps.len(),
                stamps[0],
                stamps[stamps.len() - 1]
            ),
        )
    }

    fn continuity(
        &self,
        r: &str,
        seq: u64,
        prev: PrevSegment,
        first_pts: Option<f64>,
        first_stamp: Option<u32>,
        decoded: &DecodedSegment,
    ) -> CheckObservation {
        let tol = self.options.continuity_tolerance_secs;
        let mut problems = Vec::new();
        let mut measured = String::new();
        if let (Some(last), Some(first)) = (prev.last_pts, first_pts) {
            let frame = prev.frame_secs.or(decoded.frame_secs()).unwrap_or(0.0);
            let gap = first - (last + frame);
            measured = format!("timestamp gap {:+.1} ms", gap * 1000.0);
            if gap.abs() > tol {
                problems.push(format!(
                    "segment starts at {first:.3} s but the previous one ended at {:.3} s ({:+.1} ms, allowed ±{:.0} ms)",
                    last + frame,
                    gap * 1000.0,
                    tol * 1000.0
                ));
            }
        }
        if let (Some(log), Some(a), Some(b)) = (&self.log, prev.last_stamp, first_stamp) {
            // Stamps are read from pictures the target made: any u32 may come back.
            let n = u64::from(log.clip_frames().max(1));
            let step = (u64::from(b) % n + n - u64::from(a) % n) % n;
            let max_step = match (self.options.source_frame_secs, decoded.frame_secs()) {
                (Some(src), Some(own)) if src > 0.0 => ((own / src).round() as u64).max(1),
                _ => 1,
            };
            measured.push_str(&format!(", stamp {a} → {b}"));
            if step == 0 || step > max_step {
                problems.push(format!(
                    "frame stamps jump from {a} to {b} (expected the next {max_step} frame(s))"
                ));
            }
        }
        if problems.is_empty() {
            self.verdict(r, Some(seq), "continuity", true, measured)
        } else {
            self.verdict(r, Some(seq), "continuity", false, problems.join("; "))
        }
    }

    fn drift(
        &self,
        r: &str,
        seq: u64,
        other: &SeqFacts,
        first_pts: Option<f64>,
        first_stamp: Option<u32>,
    ) -> CheckObservation {
        let mut problems = Vec::new();
        let mut measured = format!("vs {}", other.rendition);
        if let (Some(a), Some(b)) = (other.first_pts, first_pts) {
            let d = b - a;
            measured.push_str(&format!(": start differs by {:+.1} ms", d * 1000.0));
            if d.abs() > self.options.drift_tolerance_secs {
                problems.push(format!(
                    "starts {:+.1} ms from {} (allowed ±{:.0} ms)",
                    d * 1000.0,
                    other.rendition,
                    self.options.drift_tolerance_secs * 1000.0
                ));
            }
        }
        if let (Some(a), Some(b)) = (other.first_stamp, first_stamp) {
            measured.push_str(&format!(", first frame {b} vs {a}"));
            if a != b {
                problems.push(format!(
                    "first frame is {b} but {} starts with frame {a}",
                    other.rendition
                ));
            }
        }
        if problems.is_empty() {
            self.verdict(r, Some(seq), "drift", true, measured)
        } else {
            self.verdict(r, Some(seq), "drift", false, problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FrameFacts;
    use bytes::Bytes;
    use reference_transcoder::FrameStamp;

    const FPS_MS: i64 = 33;

    /// A log of a stream that started at `start_frame` and sent one frame every 33 ms from `t0`.
    fn log(key: &str, start_frame: u32, t0: UnixMs, frames: u64) -> Arc<SendLog> {
        let log = Arc::new(SendLog::new(key, 7, 360, start_frame));
        for p in 0..frames {
            log.record(&[p], t0 + p as i64 * FPS_MS);
        }
        log
    }

    fn segment(
        first_frame: u32,
        frames: u32,
        first_seen: UnixMs,
    ) -> (PulledSegment, DecodedSegment) {
        let pulled = PulledSegment {
            rendition: "r".into(),
            seq: 3,
            url: "http://h/r/3.ts".into(),
            extinf_secs: frames as f64 / 30.0,
            discontinuity: false,
            target_duration_secs: 2.0,
            first_seen_unix_ms: first_seen,
            download_started_unix_ms: first_seen + 5,
            download_finished_unix_ms: first_seen + 20,
            http_status: Some(200),
            content_type: Some("video/MP2T".into()),
            size: 1000,
            body: Ok(Bytes::new()),
            init_size: 0,
            byte_range: None,
        };
        let decoded = DecodedSegment {
            container: "mpegts".into(),
            codec: "h264".into(),
            width: 640,
            height: 360,
            fps: Some(30.0),
            audio_codec: None,
            frames: (0..frames)
                .map(|i| FrameFacts {
                    pts_secs: Some(10.0 + i as f64 / 30.0),
                    is_key: i == 0,
                    stamp: Some(FrameStamp {
                        stream_id: 7,
                        frame_number: first_frame + i,
                    }),
                })
                .collect(),
            decode_errors: 0,
            audio_only: false,
        };
        (pulled, decoded)
    }

    #[test]
    fn stamps_of_another_stream_ahead_in_the_clip_are_caught_by_the_send_log() {
        let t0 = now_unix_ms() + 1000;
        // Stream B started 60 frames into the clip, stream A at frame 0, at the same moment.
        let (a, b) = (log("a", 0, t0, 300), log("b", 60, t0, 300));
        // B's first segment (frames 60..=119) appears 2.2 s after both started.
        let (pulled, decoded) = segment(60, 60, t0 + 2200);
        let own = SegmentChecker::new("b", Some(b), CheckOptions::default())
            .check(&pulled, Some(&Ok(decoded.clone())));
        let stamps = own.verdict("stamps").unwrap();
        assert!(stamps.passed, "{stamps:?}");
        assert_eq!(own.observation.latency.glass_to_glass_ms, Some(2200.0));
        assert_eq!(
            own.observation.latency.segment_latency_ms,
            Some((2220 - 59 * FPS_MS) as f64)
        );

        let wrong = SegmentChecker::new("a", Some(a), CheckOptions::default())
            .check(&pulled, Some(&Ok(decoded)));
        let stamps = wrong.verdict("stamps").unwrap();
        assert!(!stamps.passed);
        assert!(
            stamps.reason.contains("had not been sent by stream a"),
            "{}",
            stamps.reason
        );
    }

    #[test]
    fn numbers_at_the_end_of_their_types_are_judged_not_overflowed() {
        // A hostile target may number segments up to u64::MAX and stamp frames up to u32::MAX.
        let t0 = now_unix_ms() + 1000;
        let checker = SegmentChecker::new("k", Some(log("k", 0, t0, 300)), CheckOptions::default());
        let (mut first, decoded) = segment(0, 60, t0 + 2200);
        first.seq = u64::MAX - 1;
        checker.check(&first, Some(&Ok(decoded)));
        let (mut last, mut decoded) = segment(0, 60, t0 + 4200);
        last.seq = u64::MAX;
        for f in &mut decoded.frames {
            f.pts_secs = f.pts_secs.map(|p| p + 2.0);
            f.stamp = f.stamp.map(|s| FrameStamp {
                frame_number: u32::MAX - 59 + s.frame_number,
                ..s
            });
        }
        let checked = checker.check(&last, Some(&Ok(decoded)));
        let continuity = checked
            .verdict("continuity")
            .expect("judged across u64::MAX - 1");
        assert!(!continuity.passed);
        assert!(
            continuity
                .reason
                .contains(&format!("frame stamps jump from 59 to {}", u32::MAX - 59)),
            "{}",
            continuity.reason
        );
        // Seq u64::MAX has no successor: the next one is not judged against it.
        let (mut after, decoded) = segment(0, 60, t0 + 6200);
        after.seq = 0;
        assert!(
            checker
                .check(&after, Some(&Ok(decoded)))
                .verdict("continuity")
                .is_none()
        );
    }

    #[test]
    fn a_foreign_stream_id_or_a_stale_segment_fails_the_stamp_check() {
        let t0 = now_unix_ms() + 1000;
        let (pulled, mut decoded) = segment(0, 60, t0 + 2200);
        decoded.frames[5].stamp = Some(FrameStamp {
            stream_id: 9,
            frame_number: 5,
        });
        assert_stamp_check_fails(&pulled, decoded, t0, "stream id 0x9");

        let (mut pulled, decoded) = segment(0, 60, t0 + 2200);
        pulled.first_seen_unix_ms = t0 + 120_000;
        assert_stamp_check_fails(&pulled, decoded, t0, "more than 60000 ms");
    }

    /// Checks one segment of stream `k` sent from `t0` and asserts its stamp check failed with
    /// `reason`.
    fn assert_stamp_check_fails(
        pulled: &PulledSegment,
        decoded: DecodedSegment,
        t0: UnixMs,
        reason: &str,
    ) {
        let c = SegmentChecker::new("k", Some(log("k", 0, t0, 300)), CheckOptions::default())
            .check(pulled, Some(&Ok(decoded)));
        let stamps = c.verdict("stamps").unwrap();
        assert!(!stamps.passed, "{stamps:?}");
        assert!(stamps.reason.contains(reason), "{stamps:?}");
    }

    #[test]
    fn duration_resolution_and_codec_are_judged_against_expectations() {
        let t0 = now_unix_ms() + 1000;
        let (mut pulled, mut decoded) = segment(0, 60, t0 + 2200);
        pulled.extinf_secs = 2.5;
        decoded.codec = "hevc".into();
        let mut options = CheckOptions::default();
        options.resolutions.insert("r".into(), (426, 240));
        let c = SegmentChecker::new("k", Some(log("k", 0, t0, 300)), options)
            .check(&pulled, Some(&Ok(decoded)));
        for name in ["duration", "resolution", "codec"] {
            assert!(
                !c.verdict(name).unwrap().passed,
                "{name}: {:?}",
                c.verdict(name)
            );
        }
        assert!(
            c.verdict("resolution")
                .unwrap()
                .reason
                .contains("640x360 (expected 426x240)")
        );
        assert!(
            c.verdict("content_type").unwrap().passed,
            "video/MP2T is accepted whatever its case"
        );
    }
}
