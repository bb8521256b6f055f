//! Decoding a downloaded segment into what the checks need: codec, size, per-frame timestamps
//! and frame stamps.
//!
//! Design: segments are demuxed from memory with `reference-transcoder`'s `MemoryInput` (no
//! temporary files) and decoded single-threaded — many segments are decoded at once on a
//! probe machine, so per-segment decoder threads would only add start-up cost. Only the facts
//! are kept (a few bytes per frame); pictures are dropped as soon as their stamp is read.
//! (reference-transcoder's own `probe` helper was not committed when this was written.)

use ffmpeg_next::{Packet, codec, media};
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
    #[error("no video stream in the segment")]
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

/// Decodes segment bytes (MPEG-TS, or anything FFmpeg recognises).
pub fn decode_segment(data: &[u8]) -> Result<DecodedSegment, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    let is_ts = data[0] == 0x47 && data.get(188).is_none_or(|&b| b == 0x47);
    if is_ts && !data.len().is_multiple_of(188) {
        return Err(DecodeError::Truncated { len: data.len() });
    }
    let mut memory = MemoryInput::open(data.to_vec(), is_ts.then_some("mpegts"))
        .map_err(|e| DecodeError::Demux(e.to_string()))?;
    let input = memory.input();
    let container = input.format().name().to_string();
    let (index, tb, fps, params) = {
        let s = input
            .streams()
            .best(media::Type::Video)
            .ok_or(DecodeError::NoVideoStream)?;
        let fps = [s.avg_frame_rate(), s.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from);
        (s.index(), s.time_base(), fps, s.parameters())
    };
    let audio_codec = input
        .streams()
        .best(media::Type::Audio)
        .map(|s| s.parameters().id().name().to_string());
    let id = params.id();
    let decoder_codec = ffmpeg_next::decoder::find(id)
        .ok_or_else(|| DecodeError::UnsupportedCodec(format!("{id:?}")))?;
    let codec_name = decoder_codec.name().to_string();
    let mut ctx =
        codec::context::Context::from_parameters(params).map_err(|e| DecodeError::Decoder {
            codec: codec_name.clone(),
            reason: e.to_string(),
        })?;
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::None,
        count: 1,
        ..Default::default()
    });
    let mut decoder = ctx
        .decoder()
        .open_as(decoder_codec)
        .and_then(|o| o.video())
        .map_err(|e| DecodeError::Decoder {
            codec: codec_name.clone(),
            reason: e.to_string(),
        })?;
    let mut out = DecodedSegment {
        container,
        codec: codec_name,
        width: 0,
        height: 0,
        fps,
        audio_codec,
        frames: Vec::with_capacity(128),
        decode_errors: 0,
    };
    let tb = f64::from(tb);
    let mut frame = ffmpeg_next::frame::Video::empty();
    let mut drain = |decoder: &mut ffmpeg_next::decoder::Video, out: &mut DecodedSegment| {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => return,
                Err(ffmpeg_next::Error::Other {
                    errno: libc::EAGAIN,
                }) => return,
                Err(_) => {
                    out.decode_errors += 1;
                    return;
                }
            }
            out.width = frame.width();
            out.height = frame.height();
            out.frames.push(FrameFacts {
                pts_secs: frame.timestamp().or(frame.pts()).map(|p| p as f64 * tb),
                is_key: frame.is_key(),
                stamp: read_stamp(&frame),
            });
        }
    };
    loop {
        // av_read_frame does not unref its target: a fresh packet per read (dropped, hence
        // unreferenced, at the end of each turn) keeps a reused one from leaking every payload.
        let mut packet = Packet::empty();
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg_next::Error::Eof) => break,
            Err(_) => {
                out.decode_errors += 1;
                break;
            }
        }
        if packet.stream() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            out.decode_errors += 1;
        }
        drain(&mut decoder, &mut out);
    }
    let _ = decoder.send_eof();
    drain(&mut decoder, &mut out);
    if out.frames.is_empty() {
        return Err(DecodeError::NoFrames {
            errors: out.decode_errors,
        });
    }
    Ok(out)
}
