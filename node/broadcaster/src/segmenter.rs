//! Cuts a publisher's FLV frames into MPEG-TS segments at key frames.
//!
//! A segment closes at the first key frame at least `target` after it opened, so segments start
//! decodable and last about the target; a publisher that sends no key frames still gets a cut at
//! `max_duration` (flagged, like go-livepeer's 5-minute cap) so memory stays bounded. A new AVC
//! sequence header that changes the picture size (or any SPS) forces a cut at the next key frame
//! and flags the new segment as a discontinuity, which the HLS playlists turn into
//! `#EXT-X-DISCONTINUITY`. Frames before the first key frame are counted and dropped: nothing
//! could decode them.
//!
//! Media time is the publisher's word, so it cannot bound memory alone: a publisher whose
//! timestamps stand still after one key frame would keep a segment open forever. Every open
//! segment is therefore also held to a byte cap and a wall-clock cap ([`Segmenter::check_limits`]);
//! the caller disconnects a publisher that breaks one.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::flv::{AacConfig, AudioTag, AvcConfig, VideoTag};
use crate::sps;
use crate::ts::TsMuxer;

/// Segmenter settings.
#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// Aimed-at segment duration, ms.
    pub target_ms: i64,
    /// Hard cap on a segment's duration, ms (cut even without a key frame).
    pub max_ms: i64,
    /// Most bytes an open segment may hold.
    pub max_bytes: usize,
    /// Most wall-clock time a segment may stay open.
    pub max_wall: Duration,
}

/// An open segment broke a cap the publisher's timestamps cannot move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentLimit {
    /// The open segment holds more bytes than allowed.
    #[error("open segment reached {bytes} bytes (limit {limit}) without a cut")]
    Bytes {
        /// Bytes held.
        bytes: usize,
        /// The cap.
        limit: usize,
    },
    /// The open segment has been open longer than allowed.
    #[error("segment open for {open:?} of wall time (limit {limit:?}) without a cut")]
    WallTime {
        /// How long it has been open.
        open: Duration,
        /// The cap.
        limit: Duration,
    },
}

/// One finished source segment.
#[derive(Debug, Clone)]
pub struct SourceSegment {
    /// Sequence number within the stream (from 0).
    pub seq: u64,
    /// MPEG-TS bytes.
    pub data: Bytes,
    /// Presentation start (first DTS), ms.
    pub start_ms: i64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Video frames in the segment.
    pub video_frames: u32,
    /// Picture size, when the SPS could be read.
    pub size: Option<(u32, u32)>,
    /// The segment starts a new timeline or format (resolution change).
    pub discontinuity: bool,
    /// Cut at `max_ms` without a key frame: the next segment may not start decodable.
    pub forced_cut: bool,
}

/// What the segmenter observed that a status page should show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SegmenterStats {
    /// Video frames dropped while waiting for the first key frame (or the AVC config).
    pub frames_before_keyframe: u64,
    /// Audio frames dropped before video started.
    pub audio_frames_dropped: u64,
    /// Frames whose NAL lengths did not fit the data.
    pub malformed_frames: u64,
    /// Picture-size changes seen.
    pub resolution_changes: u64,
    /// Cuts forced by the duration cap.
    pub forced_cuts: u64,
}

struct OpenSegment {
    buf: Vec<u8>,
    opened: Instant,
    start_ms: i64,
    last_dts_ms: i64,
    video_frames: u32,
    discontinuity: bool,
}

/// The segmenter for one publishing session.
pub struct Segmenter {
    config: SegmenterConfig,
    muxer: TsMuxer,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    size: Option<(u32, u32)>,
    open: Option<OpenSegment>,
    next_seq: u64,
    pending_discontinuity: bool,
    forced_next: bool,
    frame_interval_ms: i64,
    stats: SegmenterStats,
}

impl Segmenter {
    /// A segmenter whose first segment gets `first_seq`; `discontinuity` flags it (a restart).
    pub fn new(config: SegmenterConfig, first_seq: u64, discontinuity: bool) -> Self {
        Self {
            config,
            muxer: TsMuxer::new(),
            avc: None,
            aac: None,
            size: None,
            open: None,
            next_seq: first_seq,
            pending_discontinuity: discontinuity,
            forced_next: false,
            frame_interval_ms: 33,
            stats: SegmenterStats::default(),
        }
    }

    /// What was observed so far.
    pub fn stats(&self) -> &SegmenterStats {
        &self.stats
    }

    /// The current picture size, if known.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }

    /// Feeds a video tag at `dts_ms`; returns a segment when this key frame closed one.
    pub fn push_video(&mut self, tag: VideoTag, dts_ms: i64) -> Option<SourceSegment> {
        match tag {
            VideoTag::Config(cfg) => {
                let new_size = cfg.sps.first().and_then(|s| sps::picture_size(s));
                if let Some(old) = &self.avc
                    && old.sps != cfg.sps
                {
                    if new_size != self.size {
                        self.stats.resolution_changes += 1;
                    }
                    // The next key frame opens a segment with the new format.
                    self.forced_next = true;
                    self.pending_discontinuity = true;
                }
                self.size = new_size.or(self.size);
                self.avc = Some(cfg);
                None
            }
            VideoTag::Other => None,
            VideoTag::Frame {
                keyframe,
                cts_ms,
                data,
            } => self.push_frame(keyframe, cts_ms, &data, dts_ms),
        }
    }

    fn push_frame(
        &mut self,
        keyframe: bool,
        cts_ms: i32,
        data: &[u8],
        dts_ms: i64,
    ) -> Option<SourceSegment> {
        if self.avc.is_none() {
            self.stats.frames_before_keyframe += 1;
            return None;
        }
        let mut finished = None;
        if let Some(open) = &self.open {
            let elapsed = dts_ms.saturating_sub(open.start_ms);
            let due = keyframe && (elapsed >= self.config.target_ms || self.forced_next);
            let capped = elapsed >= self.config.max_ms;
            if due || capped {
                if capped && !keyframe {
                    self.stats.forced_cuts += 1;
                }
                finished = self.close(Some(dts_ms), capped && !keyframe);
            }
        }
        if self.open.is_none() {
            if !keyframe && finished.is_none() {
                self.stats.frames_before_keyframe += 1;
                return None;
            }
            let mut buf = Vec::with_capacity(512 * 1024);
            self.muxer.write_tables(&mut buf, self.aac.is_some());
            self.open = Some(OpenSegment {
                buf,
                opened: Instant::now(),
                start_ms: dts_ms,
                last_dts_ms: dts_ms,
                video_frames: 0,
                discontinuity: std::mem::take(&mut self.pending_discontinuity),
            });
            self.forced_next = false;
        }
        let (Some(open), Some(avc)) = (self.open.as_mut(), self.avc.as_ref()) else {
            return finished;
        };
        if self
            .muxer
            .write_video(&mut open.buf, avc, data, dts_ms, cts_ms, keyframe)
        {
            if open.video_frames > 0 && dts_ms > open.last_dts_ms {
                let step = dts_ms.saturating_sub(open.last_dts_ms);
                self.frame_interval_ms = self
                    .frame_interval_ms
                    .saturating_mul(7)
                    .saturating_add(step)
                    / 8;
            }
            open.video_frames += 1;
            open.last_dts_ms = dts_ms;
        } else {
            self.stats.malformed_frames += 1;
        }
        finished
    }

    /// Feeds an audio tag at `pts_ms` (dropped until video opens a segment).
    pub fn push_audio(&mut self, tag: AudioTag, pts_ms: i64) {
        match tag {
            AudioTag::Config(cfg) => self.aac = Some(cfg),
            AudioTag::Frame(frame) => match (&mut self.open, &self.aac) {
                (Some(open), Some(aac)) => {
                    self.muxer.write_audio(&mut open.buf, aac, &frame, pts_ms)
                }
                _ => self.stats.audio_frames_dropped += 1,
            },
        }
    }

    /// Checks the open segment against the byte and wall-clock caps.
    pub fn check_limits(&self) -> Result<(), SegmentLimit> {
        let Some(open) = &self.open else {
            return Ok(());
        };
        if open.buf.len() > self.config.max_bytes {
            return Err(SegmentLimit::Bytes {
                bytes: open.buf.len(),
                limit: self.config.max_bytes,
            });
        }
        let age = open.opened.elapsed();
        if age > self.config.max_wall {
            return Err(SegmentLimit::WallTime {
                open: age,
                limit: self.config.max_wall,
            });
        }
        Ok(())
    }

    /// Drops the open segment (one that broke a cap is not worth transcoding or serving).
    pub fn discard(&mut self) {
        self.open = None;
    }

    /// Closes the open segment at the end of the stream.
    pub fn finish(&mut self) -> Option<SourceSegment> {
        self.close(None, false)
    }

    /// The sequence number the next segment will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn close(&mut self, end_ms: Option<i64>, forced: bool) -> Option<SourceSegment> {
        let open = self.open.take()?;
        let end = end_ms.unwrap_or(open.last_dts_ms.saturating_add(self.frame_interval_ms));
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        Some(SourceSegment {
            seq,
            data: Bytes::from(open.buf),
            start_ms: open.start_ms,
            duration_ms: end.saturating_sub(open.start_ms).max(1),
            video_frames: open.video_frames,
            size: self.size,
            discontinuity: open.discontinuity,
            forced_cut: forced,
        })
    }
}
