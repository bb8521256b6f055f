//! What the probes report: plain, serialisable observation records and the observer trait the
//! tester implements to turn them into metrics and journal rows.
//!
//! Design: every record is self-describing (stream key, rendition, sequence number, Unix-ms
//! timestamps, sizes, verdicts with reasons) so a journal line stands on its own, and the
//! observer is called synchronously from probe tasks: implementations must be cheap and never
//! block (push to a channel or bump a histogram).

use reference_transcoder::DecodeSummary;
use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;

/// Receives everything a probe observes. Called from many tasks at once.
pub trait ProbeObserver: Send + Sync {
    /// One rendition segment: downloaded (or failed / missed), decoded, timed.
    fn segment(&self, s: &SegmentObservation);
    /// One named check verdict.
    fn check(&self, c: &CheckObservation);
    /// A rendition stopped producing segments (once when detected, once when it ended).
    fn stall(&self, s: &StallObservation);
    /// Publisher progress: connected, periodic progress, connection lost and made again,
    /// finished or failed.
    fn publish_progress(&self, p: &PublishObservation);
    /// One sampled segment scored by the quality probe (or why it could not be). Called from a
    /// blocking-pool thread. Default: ignored.
    fn quality(&self, _q: &QualityObservation) {}
    /// One HLS conformance rule found broken in a playlist or segment the puller read.
    /// Default: ignored.
    fn violation(&self, _v: &ViolationObservation) {}
    /// One thing a browser player (`crate::players`) saw. Default: ignored.
    fn player(&self, _p: &PlayerObservation) {}
    /// One low-latency part (`#EXT-X-PART`) as it arrived, with its latency. Called only for
    /// low-latency playlists. Default: ignored.
    fn part(&self, _p: &PartObservation) {}
}

/// What a browser player saw, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerObservation {
    pub stream_key: String,
    /// The player's number within its stream, from 0.
    pub player: u32,
    pub at_unix_ms: UnixMs,
    /// The rendition playing, `<height>p` of the player's level, once it chose one.
    pub rendition: Option<String>,
    pub event: PlayerEvent,
}

/// The things a browser player reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlayerEvent {
    /// The first frame was shown, `ttff_ms` after the player loaded the stream.
    FirstFrame { ttff_ms: f64 },
    /// A stamped frame was shown `latency_ms` after the publisher sent it.
    Latency { latency_ms: f64, frame: u32 },
    /// Playback waited `stall_ms` for data after it had started.
    Stall { stall_ms: f64 },
    /// The player switched to `rendition` from `from`.
    LevelSwitch { from: Option<String> },
    /// The player stopped: at the stream's end, or on the fatal `error`; its frame totals when
    /// it could still be read.
    Ended {
        decoded_frames: Option<u64>,
        dropped_frames: Option<u64>,
        error: Option<String>,
    },
}

/// An HLS conformance rule (`crate::conformance::RULES`) found broken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViolationObservation {
    pub stream_key: String,
    /// The rendition whose playlist or segment broke it; `None` for the master playlist.
    pub rendition: Option<String>,
    /// The rule's stable ID.
    pub rule: String,
    /// `must` or `should`.
    pub severity: String,
    /// The playlist or segment at fault.
    pub url: String,
    /// The playlist line at fault (1-based), when the fault is in a playlist's text.
    pub line: Option<u32>,
    /// What was seen.
    pub detail: String,
    pub at_unix_ms: UnixMs,
}

impl ViolationObservation {
    /// `violation`, found at `at_unix_ms` in `rendition` (none: the master playlist) of
    /// `stream_key`.
    pub fn of(
        stream_key: &str,
        rendition: Option<String>,
        violation: crate::conformance::Violation,
        at_unix_ms: UnixMs,
    ) -> ViolationObservation {
        ViolationObservation {
            stream_key: stream_key.to_string(),
            rendition,
            rule: violation.rule.to_string(),
            severity: violation.severity().as_str().to_string(),
            url: violation.url,
            line: violation.line,
            detail: violation.detail,
            at_unix_ms,
        }
    }
}

/// An observer that drops everything (for load where only the summary matters).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullObserver;

impl ProbeObserver for NullObserver {
    fn segment(&self, _: &SegmentObservation) {}
    fn check(&self, _: &CheckObservation) {}
    fn stall(&self, _: &StallObservation) {}
    fn publish_progress(&self, _: &PublishObservation) {}
}

/// One segment of one rendition as a viewer got it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentObservation {
    pub stream_key: String,
    pub rendition: String,
    /// Media sequence number.
    pub seq: u64,
    /// Absolute segment URL (`None` for a segment that left the playlist before it was seen).
    pub url: Option<String>,
    /// True when the segment was downloaded and decodes to at least one frame.
    pub success: bool,
    /// Why `success` is false.
    pub failure: Option<String>,
    /// `EXTINF` duration in seconds.
    pub extinf_secs: Option<f64>,
    /// Whether `EXT-X-DISCONTINUITY` preceded this segment.
    pub discontinuity: bool,
    pub first_seen_unix_ms: Option<UnixMs>,
    pub download_started_unix_ms: Option<UnixMs>,
    pub download_finished_unix_ms: Option<UnixMs>,
    /// Download time (first byte requested to last byte received).
    pub download_ms: Option<f64>,
    pub bytes: u64,
    pub http_status: Option<u16>,
    pub content_type: Option<String>,
    /// Decoded facts (`None` when not decoded).
    pub media: Option<SegmentMedia>,
    pub latency: SegmentLatency,
}

/// What decoding a segment found, and the stamps it carried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentMedia {
    /// Flattened: a serialised segment keeps its media facts in one flat object.
    #[serde(flatten)]
    pub decoded: DecodeSummary,
    /// Stamp of the first frame in presentation order that had one.
    pub first_stamp_frame: Option<u32>,
    pub last_stamp_frame: Option<u32>,
    /// The stream id read from the stamps (the first one found).
    pub stamp_stream_id: Option<u32>,
}

/// Latency figures of one segment (`None` when they could not be computed, e.g. no stamp).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentLatency {
    /// Glass to glass: first seen in the playlist − send time of its first stamped frame.
    pub glass_to_glass_ms: Option<f64>,
    /// stream-tester's definition: download finished − send time of the last frame of the
    /// source segment (the latest-sent frame among those the segment carries).
    pub segment_latency_ms: Option<f64>,
    /// The send time the glass-to-glass figure is measured from.
    pub first_frame_sent_unix_ms: Option<UnixMs>,
    pub last_frame_sent_unix_ms: Option<UnixMs>,
}

/// One low-latency part of one rendition as a low-latency player got it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartObservation {
    pub stream_key: String,
    pub rendition: String,
    /// The media sequence number of its parent segment.
    pub msn: u64,
    /// Its position among its parent's parts, from 0.
    pub index: u64,
    pub url: String,
    /// Its `DURATION`.
    pub duration_secs: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// Requested from the playlist's preload hint before it was listed.
    pub hinted: bool,
    /// Downloaded whole and, when decoded, its pictures read.
    pub success: bool,
    /// Why `success` is false.
    pub failure: Option<String>,
    pub first_seen_unix_ms: UnixMs,
    pub download_started_unix_ms: UnixMs,
    pub download_finished_unix_ms: UnixMs,
    pub bytes: u64,
    pub http_status: Option<u16>,
    /// Frames of the part decoded (`None` when it was not decoded: decoding off, or the earlier
    /// parts it depends on missing).
    pub frames: Option<u64>,
    /// Stamp of its first frame (presentation order) that had one.
    pub first_stamp_frame: Option<u32>,
    /// When that frame was sent.
    pub first_frame_sent_unix_ms: Option<UnixMs>,
    /// Part latency: its last byte's arrival − the send time of its first stamped frame.
    pub part_latency_ms: Option<f64>,
}

/// A named pass/fail verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckObservation {
    pub stream_key: String,
    pub rendition: String,
    /// The segment it concerns (`None` for playlist-level checks).
    pub seq: Option<u64>,
    /// Check name: see [`crate::checks::CHECK_NAMES`].
    pub check: String,
    pub passed: bool,
    /// Why it failed, or what was measured when it passed.
    pub reason: String,
    pub at_unix_ms: UnixMs,
}

/// A rendition that produced no new segment for `stall_factor × target duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallObservation {
    pub stream_key: String,
    pub rendition: String,
    /// False when the stall is first detected, true when it ends (new segment or deadline).
    pub ended: bool,
    /// When the last new segment had appeared (or polling started).
    pub last_new_segment_unix_ms: UnixMs,
    pub detected_unix_ms: UnixMs,
    pub ended_unix_ms: Option<UnixMs>,
    /// Time without a new segment, up to detection or to the end.
    pub stalled_ms: f64,
    pub target_duration_secs: f64,
    /// Highest sequence number seen before the stall.
    pub last_seq: Option<u64>,
}

/// Where a publisher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishPhase {
    /// Handshake, connect and publish accepted; media starts now.
    Started,
    Progress,
    /// The connection was lost mid-stream (`error` says how); the publisher reconnects.
    Disconnected,
    /// A new connection publishes the stream again (`outage_ms` after it was lost).
    Reconnected,
    Finished,
    Failed,
}

/// Publisher progress, lag behind the wall clock and reconnects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishObservation {
    pub stream_key: String,
    pub url: String,
    pub phase: PublishPhase,
    pub at_unix_ms: UnixMs,
    /// When media started (publish accepted).
    pub started_unix_ms: Option<UnixMs>,
    /// Media time sent so far (timestamp of the last packet written).
    pub media_ms: f64,
    pub frames_sent: u64,
    pub packets_sent: u64,
    /// Bytes written to the socket (RTMP chunks, headers included).
    pub bytes_sent: u64,
    /// Completed passes over the clip.
    pub loops: u64,
    /// How late the latest batch went out relative to its wall-clock due time.
    pub lag_ms: f64,
    pub max_lag_ms: f64,
    /// Times the connection was lost and made again so far.
    #[serde(default)]
    pub reconnects: u64,
    /// Time without a connection so far, over every reconnect.
    #[serde(default)]
    pub disconnected_ms: f64,
    /// `Reconnected` only: how long this outage lasted.
    #[serde(default)]
    pub outage_ms: Option<f64>,
    pub error: Option<String>,
}

/// One scored rendition segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityObservation {
    pub stream_key: String,
    pub rendition: String,
    pub seq: u64,
    /// Clip frame of the source segment the rendition segment was matched to.
    pub source_first_frame: Option<u32>,
    /// Pooled mean VMAF of the rendition against the source.
    pub vmaf: Option<f64>,
    pub vmaf_min: Option<f64>,
    pub vmaf_p5: Option<f64>,
    /// Mean luma PSNR, dB.
    pub psnr_y: Option<f64>,
    /// Pooled mean VMAF of the reference transcoder's rendition of the same profile.
    pub vmaf_reference: Option<f64>,
    /// `vmaf − vmaf_reference` (negative: worse than the reference).
    pub difference: Option<f64>,
    pub frames_paired: u64,
    /// Source frames the rendition did not show.
    pub unmatched_source: u64,
    /// Rendition frames with no source partner (no stamp, foreign stamp, beyond the source).
    pub unmatched_rendition: u64,
    /// Wall time of the scoring job.
    pub scoring_ms: f64,
    pub scored_at_unix_ms: UnixMs,
    /// Why the segment could not be scored.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_media_serialises_as_one_flat_object_and_reads_back() {
        let media = SegmentMedia {
            decoded: DecodeSummary {
                codec: "h264".into(),
                width: 640,
                height: 360,
                frames: 60,
                duration_secs: 2.0,
                first_pts_secs: Some(1.4),
                last_pts_secs: Some(3.366_666),
                fps: Some(30.0),
                audio_codec: Some("aac".into()),
                decode_errors: 1,
                stamped_frames: 59,
            },
            first_stamp_frame: Some(120),
            last_stamp_frame: Some(179),
            stamp_stream_id: Some(7),
        };
        let json = serde_json::to_string(&media).unwrap();
        assert_eq!(
            json,
            r#"{"codec":"h264","width":640,"height":360,"frames":60,"duration_secs":2.0,"first_pts_secs":1.4,"last_pts_secs":3.366666,"fps":30.0,"audio_codec":"aac","decode_errors":1,"stamped_frames":59,"first_stamp_frame":120,"last_stamp_frame":179,"stamp_stream_id":7}"#
        );
        assert_eq!(serde_json::from_str::<SegmentMedia>(&json).unwrap(), media);
    }
}
