//! The replay form of the stamped source: FLV tag bodies built once and shared by every
//! publisher of a run.
//!
//! Design (after srs-bench): media is encoded once; each publisher walks the same packet list
//! with shifted timestamps. Tag bodies are `Bytes`, so handing one to the RTMP session is a
//! reference-count bump, not a copy. Every video packet carries its frame number (the number
//! drawn in its stamp, i.e. its presentation index), which is what the send log keys on.
//! A stream may start at any GOP boundary of the clip (its *start frame*), so streams sharing
//! one source still send any given frame at different times.

use bytes::Bytes;
use reference_transcoder::{EncodedSource, MediaKind, VideoFormat};

/// Why an encoded source cannot be replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("the source has no video packets")]
    NoVideo,
    #[error("the source's frame rate {num}/{den} is invalid")]
    BadFrameRate { num: u32, den: u32 },
    #[error("the source's first video packet is not a key frame")]
    NoLeadingKeyFrame,
    #[error(
        "the source's video packets do not number frames 0..{clip_frames} once each (frame {frame} at packet {index})"
    )]
    BadFrameNumbering {
        clip_frames: u32,
        frame: i64,
        index: usize,
    },
}

/// One packet ready for the RTMP session.
#[derive(Debug, Clone)]
pub struct ReplayPacket {
    pub kind: MediaKind,
    /// Decode timestamp within the clip, milliseconds.
    pub dts_ms: u32,
    pub is_key: bool,
    /// The FLV tag body (tag header + payload).
    pub body: Bytes,
    /// Video only: the frame number drawn in this packet's stamp.
    pub frame: Option<u32>,
}

/// The clip, ready to be replayed by any number of publishers.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    /// The encoded source's format (with a GOP of at least one frame).
    pub format: VideoFormat,
    /// Video frames in one pass of the clip.
    pub clip_frames: u32,
    /// Length of one pass of the clip in milliseconds (video frames × frame period).
    pub loop_ms: f64,
    /// Media bytes (tag bodies) in one pass: bit rate = 8 × this ÷ loop length.
    pub bytes_per_loop: u64,
    pub video_header: Bytes,
    pub audio_header: Option<Bytes>,
    /// Decode order, sequence headers excluded; audio past the end of the video is dropped so
    /// that consecutive passes never overlap.
    pub packets: Vec<ReplayPacket>,
}

impl ReplaySource {
    /// Builds the replay form of `source` (the only copy of the media this run will hold).
    pub fn new(source: &EncodedSource) -> Result<ReplaySource, ReplayError> {
        let format = VideoFormat {
            gop_frames: source.format.gop_frames.max(1),
            ..source.format
        };
        if format.fps_num == 0 || format.fps_den == 0 {
            return Err(ReplayError::BadFrameRate {
                num: format.fps_num,
                den: format.fps_den,
            });
        }
        let first = source.video.first().ok_or(ReplayError::NoVideo)?;
        if !first.is_key {
            return Err(ReplayError::NoLeadingKeyFrame);
        }
        let clip_frames = source.video.len() as u32;
        let frame_ticks = source.frame_ticks().max(1);
        let min_pts = source.video.iter().map(|p| p.pts).min().unwrap_or(0);
        let loop_ms = clip_frames as f64 * 1000.0 * format.fps_den as f64 / format.fps_num as f64;

        let flv = source.flv_packets();
        let mut packets = Vec::with_capacity(flv.len());
        let mut video_header = Bytes::new();
        let mut audio_header = None;
        let mut seen = vec![false; clip_frames as usize];
        let mut video_index = 0usize;
        for p in &flv {
            let body = Bytes::from(p.tag_body());
            if p.is_sequence_header {
                match p.kind {
                    MediaKind::Video => video_header = body,
                    MediaKind::Audio => audio_header = Some(body),
                }
                continue;
            }
            let frame = match p.kind {
                MediaKind::Video => {
                    // flv_packets keeps the source's video order, so packet k is video[k].
                    let pts = source.video[video_index].pts;
                    let frame = ((pts - min_pts) as f64 / frame_ticks as f64).round() as i64;
                    if frame < 0 || frame >= clip_frames as i64 || seen[frame as usize] {
                        return Err(ReplayError::BadFrameNumbering {
                            clip_frames,
                            frame,
                            index: video_index,
                        });
                    }
                    seen[frame as usize] = true;
                    video_index += 1;
                    Some(frame as u32)
                }
                MediaKind::Audio => {
                    if p.dts_ms as f64 >= loop_ms {
                        continue;
                    }
                    None
                }
            };
            packets.push(ReplayPacket {
                kind: p.kind,
                dts_ms: p.dts_ms,
                is_key: p.is_key,
                body,
                frame,
            });
        }
        let bytes_per_loop = packets.iter().map(|p| p.body.len() as u64).sum();
        Ok(ReplaySource {
            format,
            clip_frames,
            loop_ms,
            bytes_per_loop,
            video_header,
            audio_header,
            packets,
        })
    }

    /// Frame period in milliseconds.
    pub fn frame_ms(&self) -> f64 {
        1000.0 * self.format.fps_den as f64 / self.format.fps_num as f64
    }

    /// Media bit rate of the clip in bits per second.
    pub fn bitrate_bps(&self) -> f64 {
        self.bytes_per_loop as f64 * 8000.0 / self.loop_ms
    }

    /// The start frame of the `index`-th stream of a run: `index × 7` GOPs into the clip,
    /// wrapping, so neighbouring streams send each frame at clearly different times.
    pub fn start_frame_for_stream(&self, index: u32) -> u32 {
        ((index as u64 * 7 * self.format.gop_frames as u64) % self.clip_frames as u64) as u32
    }

    /// The packet index where a stream starting at `start_frame` begins (the key frame at or
    /// before it), and that key frame's number.
    pub fn start_point(&self, start_frame: u32) -> (usize, u32) {
        let wanted = start_frame % self.clip_frames.max(1);
        let mut best = (0usize, 0u32);
        for (i, p) in self.packets.iter().enumerate() {
            if let (true, Some(f)) = (p.is_key, p.frame)
                && f <= wanted
                && f >= best.1
            {
                best = (i, f);
            }
        }
        best
    }
}
