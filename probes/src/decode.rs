//! Decoding a downloaded segment into what the checks need: codec, size, per-frame timestamps
//! and frame stamps.
//!
//! Design: segments are demuxed from memory (no temporary files) and decoded by
//! `reference-transcoder`'s one [`VideoDecoder`], single-threaded — many segments are decoded at
//! once on a probe machine, so per-segment decoder threads would only add start-up cost. A
//! demuxer error ends the segment with what was read. Only the facts are kept (a few bytes per
//! frame); pictures are dropped as soon as their stamp is read.
//!
//! A segment of an audio-only rendition (an `#EXT-X-MEDIA` audio playlist) has no picture to
//! decode: its audio packets are demuxed and timed instead, one [`FrameFacts`] per packet, so
//! its duration is checked like a video segment's.

use reference_transcoder::decode::{
    DecodeOptions, DecoderError, DecoderThreads, Demuxer, ReadErrors, VideoDecoder,
};
use reference_transcoder::memio::MemoryInput;
use reference_transcoder::{FrameStamp, read_stamp};

/// Why a segment could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the segment is empty (0 bytes)")]
    Empty,
    #[error(
        "the MPEG-TS segment is truncated: {len} bytes is not a whole number of 188-byte packets"
    )]
    Truncated { len: usize },
    #[error("not a readable media container: {0}")]
    Demux(String),
    #[error("no video or audio stream in the segment")]
    NoVideoStream,
    #[error("no decoder for video codec {0}")]
    UnsupportedCodec(String),
    #[error("cannot open the {codec} decoder: {reason}")]
    Decoder { codec: String, reason: String },
    #[error("no frame could be decoded ({errors} decode errors)")]
    NoFrames { errors: u32 },
}

/// One decoded frame's facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFacts {
    pub pts_secs: Option<f64>,
    pub is_key: bool,
    pub stamp: Option<FrameStamp>,
}

/// A decoded segment's facts; frames in output (presentation) order.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSegment {
    pub container: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
    pub audio_codec: Option<String>,
    pub frames: Vec<FrameFacts>,
    pub decode_errors: u32,
    /// No video stream: `codec` is the audio codec and `frames` are its packets.
    pub audio_only: bool,
}

impl DecodedSegment {
    /// One frame period, from the declared rate or the timestamps.
    pub fn frame_secs(&self) -> Option<f64> {
        if let Some(f) = self.fps.filter(|f| *f > 0.0 && f.is_finite()) {
            return Some(1.0 / f);
        }
        let pts: Vec<f64> = self.frames.iter().filter_map(|f| f.pts_secs).collect();
        if pts.len() >= 2 {
            let span = pts.iter().cloned().fold(f64::MIN, f64::max)
                - pts.iter().cloned().fold(f64::MAX, f64::min);
            Some(span / (pts.len() - 1) as f64)
        } else {
            None
        }
    }

    pub fn first_pts_secs(&self) -> Option<f64> {
        self.frames
            .iter()
            .filter_map(|f| f.pts_secs)
            .reduce(f64::min)
    }

    pub fn last_pts_secs(&self) -> Option<f64> {
        self.frames
            .iter()
            .filter_map(|f| f.pts_secs)
            .reduce(f64::max)
    }

    /// Last PTS − first PTS + one frame.
    pub fn duration_secs(&self) -> f64 {
        let frame = self.frame_secs().unwrap_or(0.0);
        match (self.first_pts_secs(), self.last_pts_secs()) {
            (Some(a), Some(b)) => b - a + frame,
            _ => self.frames.len() as f64 * frame,
        }
    }

    /// Stamps in presentation order.
    pub fn stamps(&self) -> impl Iterator<Item = FrameStamp> + '_ {
        self.frames.iter().filter_map(|f| f.stamp)
    }
}

/// How segments are decoded: one thread each, a demuxer error ends the segment.
const OPTIONS: DecodeOptions = DecodeOptions {
    threads: DecoderThreads::Single,
    read_errors: ReadErrors::EndInput,
};

/// Packets of an audio-only segment read at most (a 2 s AAC segment has under 100).
const MAX_AUDIO_PACKETS: usize = 100_000;

/// An audio-only segment: its best audio stream's packets, timed.
fn audio_only(data: &[u8], format: Option<&str>) -> Result<DecodedSegment, DecodeError> {
    let mut memory =
        MemoryInput::open(data.to_vec(), format).map_err(|e| DecodeError::Demux(e.to_string()))?;
    let input = memory.input();
    let container = input.format().name().to_string();
    let (index, time_base, codec) = {
        let stream = input
            .streams()
            .best(ffmpeg_next::media::Type::Audio)
            .ok_or(DecodeError::NoVideoStream)?;
        let codec = stream.parameters().id().name().to_string();
        (stream.index(), f64::from(stream.time_base()), codec)
    };
    let frames: Vec<FrameFacts> = input
        .packets()
        .take(MAX_AUDIO_PACKETS)
        .filter(|(stream, _)| stream.index() == index)
        .map(|(_, packet)| FrameFacts {
            pts_secs: packet.pts().map(|p| p as f64 * time_base),
            is_key: packet.is_key(),
            stamp: None,
        })
        .collect();
    if frames.is_empty() {
        return Err(DecodeError::NoFrames { errors: 0 });
    }
    Ok(DecodedSegment {
        container,
        codec: codec.clone(),
        width: 0,
        height: 0,
        fps: None,
        audio_codec: Some(codec),
        frames,
        decode_errors: 0,
        audio_only: true,
    })
}

/// Decodes segment bytes (MPEG-TS, or anything FFmpeg recognises).
pub fn decode_segment(data: &[u8]) -> Result<DecodedSegment, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    let is_ts = data[0] == 0x47 && data.get(188).is_none_or(|&b| b == 0x47);
    if is_ts && !data.len().is_multiple_of(188) {
        return Err(DecodeError::Truncated { len: data.len() });
    }
    let format = is_ts.then_some("mpegts");
    let memory =
        MemoryInput::open(data.to_vec(), format).map_err(|e| DecodeError::Demux(e.to_string()))?;
    let mut decoder = match VideoDecoder::open(Demuxer::Memory(memory), OPTIONS) {
        Ok(decoder) => decoder,
        Err(DecoderError::NoVideoStream) => return audio_only(data, format),
        Err(DecoderError::UnsupportedCodec { codec }) => {
            return Err(DecodeError::UnsupportedCodec(codec));
        }
        Err(DecoderError::Parameters { codec, source } | DecoderError::Open { codec, source }) => {
            return Err(DecodeError::Decoder {
                codec,
                reason: source.to_string(),
            });
        }
    };
    let mut out = DecodedSegment {
        container: decoder.container.clone(),
        codec: decoder.codec.clone(),
        width: 0,
        height: 0,
        fps: decoder.fps.map(f64::from),
        audio_codec: decoder.audio_codec.clone(),
        frames: Vec::with_capacity(128),
        decode_errors: 0,
        audio_only: false,
    };
    let tb = f64::from(decoder.time_base);
    let mut frame = ffmpeg_next::frame::Video::empty();
    while decoder
        .next_frame(&mut frame)
        .map_err(|e| DecodeError::Demux(e.to_string()))?
    {
        out.width = frame.width();
        out.height = frame.height();
        out.frames.push(FrameFacts {
            pts_secs: frame.timestamp().or(frame.pts()).map(|p| p as f64 * tb),
            is_key: frame.is_key(),
            stamp: read_stamp(&frame),
        });
    }
    out.decode_errors = decoder.decode_errors as u32;
    if out.frames.is_empty() {
        return Err(DecodeError::NoFrames {
            errors: out.decode_errors,
        });
    }
    Ok(out)
}
