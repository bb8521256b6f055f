//! The encoded source and how it is served: Annex B video and raw AAC packets on the 90 kHz
//! timeline, turned into FLV tag bodies for RTMP replay and into MPEG-TS segments cut at key
//! frames.

use ffmpeg_next::Packet;
use ffmpeg_next::codec;
use serde::Serialize;

use crate::h264;
use crate::memio::{MemoryMuxer, StreamSpec};

use super::{AUDIO_RATE, SourceError, TICK_BASE, TICKS_PER_SECOND, ff};

/// One encoded packet on the 90 kHz source timeline.
#[derive(Debug, Clone)]
pub struct SourcePacket {
    pub pts: i64,
    pub dts: i64,
    pub duration: i64,
    pub is_key: bool,
    /// Video: Annex B access unit (SPS/PPS in-band on key frames). Audio: raw AAC frame.
    pub data: Vec<u8>,
}

/// What the source's video is, in every form it takes: picture size, frame rate, GOP and the
/// stream id stamped in each frame. The encoded source and its replay form (`probes`) both hold
/// this one type, so a publisher's metadata and a checker's expected stamps read the same fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    /// Frame rate as the fraction `fps_num / fps_den` frames per second.
    pub fps_num: u32,
    pub fps_den: u32,
    /// Frames from one key frame to the next.
    pub gop_frames: u32,
    /// The stream id written in every stamp.
    pub stream_id: u32,
}

/// The source, encoded once.
#[derive(Debug, Clone)]
pub struct EncodedSource {
    pub format: VideoFormat,
    /// In decode order; `pts` of frame n (stamp number n) is `first_pts + n * frame ticks`.
    pub video: Vec<SourcePacket>,
    pub audio: Vec<SourcePacket>,
    pub avc_decoder_config: Vec<u8>,
    pub audio_specific_config: Vec<u8>,
    pub audio_channels: u32,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Video,
    Audio,
}

/// A packet ready for an FLV tag or an RTMP message. `data` is the codec payload only;
/// [`FlvPacket::tag_body`] adds the FLV audio/video tag header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvPacket {
    pub kind: MediaKind,
    pub dts_ms: u32,
    /// Composition time offset (pts − dts) in milliseconds.
    pub composition_offset_ms: i32,
    pub is_key: bool,
    /// AVCDecoderConfigurationRecord or AudioSpecificConfig.
    pub is_sequence_header: bool,
    pub data: Vec<u8>,
}

impl FlvPacket {
    /// `pts` in milliseconds.
    pub fn pts_ms(&self) -> i64 {
        self.dts_ms as i64 + self.composition_offset_ms as i64
    }

    /// The body of the FLV tag (what an RTMP audio/video message carries).
    pub fn tag_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 5);
        match self.kind {
            MediaKind::Video => {
                out.push(if self.is_key || self.is_sequence_header {
                    0x17
                } else {
                    0x27
                });
                out.push(if self.is_sequence_header { 0 } else { 1 });
                let cts = self.composition_offset_ms.to_be_bytes();
                out.extend_from_slice(&cts[1..]);
            }
            MediaKind::Audio => {
                // AAC, 44 kHz flag (always for AAC), 16-bit, stereo flag (always for AAC).
                out.push(0xAF);
                out.push(if self.is_sequence_header { 0 } else { 1 });
            }
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// One MPEG-TS segment of the source.
#[derive(Debug, Clone)]
pub struct TsSegment {
    pub seq: u32,
    pub data: Vec<u8>,
    pub duration_secs: f64,
    pub frames: u32,
    /// Stamp number of the segment's first frame in presentation order.
    pub first_frame: u32,
    /// First and last video PTS in 90 kHz ticks, as written in the segment.
    pub first_pts: i64,
    pub last_pts: i64,
}

impl EncodedSource {
    pub fn frame_ticks(&self) -> i64 {
        TICKS_PER_SECOND * self.format.fps_den as i64 / self.format.fps_num as i64
    }

    pub fn frame_count(&self) -> usize {
        self.video.len()
    }

    pub fn duration_secs(&self) -> f64 {
        self.video.len() as f64 * self.format.fps_den as f64 / self.format.fps_num as f64
    }

    /// Sequence headers first, then every packet in decode order, video and audio interleaved
    /// by DTS: replay them with `dts_ms` pacing (shifted per loop) to publish over RTMP.
    pub fn flv_packets(&self) -> Vec<FlvPacket> {
        let to_ms = |t: i64| (t as f64 / 90.0).round() as i64;
        let mut out = vec![FlvPacket {
            kind: MediaKind::Video,
            dts_ms: 0,
            composition_offset_ms: 0,
            is_key: true,
            is_sequence_header: true,
            data: self.avc_decoder_config.clone(),
        }];
        if !self.audio.is_empty() {
            out.push(FlvPacket {
                kind: MediaKind::Audio,
                dts_ms: 0,
                composition_offset_ms: 0,
                is_key: true,
                is_sequence_header: true,
                data: self.audio_specific_config.clone(),
            });
        }
        let (mut v, mut a) = (self.video.iter().peekable(), self.audio.iter().peekable());
        loop {
            let take_video = match (v.peek(), a.peek()) {
                (Some(vp), Some(ap)) => vp.dts <= ap.dts,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (kind, p) = if take_video {
                (MediaKind::Video, v.next().expect("peeked"))
            } else {
                (MediaKind::Audio, a.next().expect("peeked"))
            };
            let dts_ms = to_ms(p.dts);
            out.push(FlvPacket {
                kind,
                dts_ms: dts_ms.max(0) as u32,
                composition_offset_ms: (to_ms(p.pts) - dts_ms) as i32,
                is_key: p.is_key,
                is_sequence_header: false,
                data: match kind {
                    MediaKind::Video => h264::annexb_to_avcc(&p.data),
                    MediaKind::Audio => p.data.clone(),
                },
            });
        }
        out
    }

    /// MPEG-TS segments, each starting at a key frame, cut at the first key frame at least
    /// `target_secs` after the segment's start (so a 2 s GOP with a 2 s target gives one GOP per
    /// segment). Each segment is a standalone TS (PAT/PMT first) keeping source timestamps.
    pub fn ts_segments(&self, target_secs: f64) -> Result<Vec<TsSegment>, SourceError> {
        let frame = self.frame_ticks();
        let target = (target_secs * TICKS_PER_SECOND as f64) as i64 - frame / 2;
        // Decode-order indexes where segments start.
        let mut starts = Vec::new();
        let mut start_pts = i64::MIN;
        for (i, p) in self.video.iter().enumerate() {
            if p.is_key && (starts.is_empty() || p.pts - start_pts >= target) {
                starts.push(i);
                start_pts = p.pts;
            }
        }
        let mut segments = Vec::with_capacity(starts.len());
        let first_pts_all = self.video.iter().map(|p| p.pts).min().unwrap_or(0);
        for (seq, w) in starts.iter().enumerate() {
            let end = starts.get(seq + 1).copied().unwrap_or(self.video.len());
            let video = &self.video[*w..end];
            let first_pts = video.iter().map(|p| p.pts).min().unwrap_or(0);
            let last_pts = video.iter().map(|p| p.pts).max().unwrap_or(0);
            let next_start = last_pts + frame;
            let audio: Vec<&SourcePacket> = self
                .audio
                .iter()
                .filter(|p| {
                    (p.pts >= first_pts || seq == 0)
                        && (p.pts < next_start || seq + 1 == starts.len())
                })
                .collect();
            let data = self
                .mux_ts(video, &audio)
                .map_err(ff("muxing a TS segment"))?;
            segments.push(TsSegment {
                seq: seq as u32,
                data,
                duration_secs: video.len() as f64 * frame as f64 / TICKS_PER_SECOND as f64,
                frames: video.len() as u32,
                first_frame: ((first_pts - first_pts_all) / frame) as u32,
                first_pts,
                last_pts,
            });
        }
        Ok(segments)
    }

    fn mux_ts(
        &self,
        video: &[SourcePacket],
        audio: &[&SourcePacket],
    ) -> Result<Vec<u8>, ffmpeg_next::Error> {
        let mut mux = MemoryMuxer::new("mpegts")?;
        let v = mux.add_stream(&StreamSpec::H264 {
            width: self.format.width,
            height: self.format.height,
            time_base: TICK_BASE,
        })?;
        let a = if audio.is_empty() {
            None
        } else {
            Some(mux.add_stream(&StreamSpec::Aac {
                sample_rate: AUDIO_RATE,
                channels: self.audio_channels,
                extradata: self.audio_specific_config.clone(),
                time_base: TICK_BASE,
            })?)
        };
        mux.write_header()?;
        let (mut vi, mut ai) = (video.iter().peekable(), audio.iter().peekable());
        loop {
            let (p, index) = match (vi.peek(), ai.peek()) {
                (Some(vp), Some(ap)) if vp.dts <= ap.dts => (vi.next().expect("peeked"), v),
                (Some(_), None) => (vi.next().expect("peeked"), v),
                (_, Some(_)) => (*ai.next().expect("peeked"), a.expect("audio stream exists")),
                (None, None) => break,
            };
            let mut packet = Packet::copy(&p.data);
            packet.set_pts(Some(p.pts));
            packet.set_dts(Some(p.dts));
            packet.set_duration(p.duration);
            if p.is_key {
                packet.set_flags(codec::packet::Flags::KEY);
            }
            mux.write(&mut packet, index, TICK_BASE)?;
        }
        mux.finish()
    }
}
