//! Decoding helpers for probes and quality scoring: decode a TS/FLV/MP4 segment (bytes or path)
//! frame by frame, with each frame's timestamp and stamp, and summarise what was found.
//!
//! Design: frames come from [`VideoDecoder`] with frame threads, and are handed to a callback one
//! at a time (converted to YUV420P at their own size only when they are not already), so memory
//! stays bounded by one frame plus the decoder's references whatever the segment's length; the
//! summary (`MediaInfo`) comes back at the end.

use std::path::{Path, PathBuf};

use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Rational, frame};
use serde::{Deserialize, Serialize};

use crate::decode::{
    DecodeOptions, DecoderError, DecoderThreads, Demuxer, ReadError, ReadErrors, VideoDecoder,
};
use crate::memio::{OpenError, open_container};
use crate::stamp::{FrameStamp, read_stamp};

/// What decoding a segment found, as every reader of a segment reports it: the probe's own
/// summary ([`MediaInfo`]) and the stream probe's journal form of a rendition segment both hold
/// it, so the two never disagree on a field's name or meaning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeSummary {
    /// Video codec name (`h264`, ...).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames actually decoded.
    pub frames: u64,
    /// Last PTS − first PTS + one frame period.
    pub duration_secs: f64,
    pub first_pts_secs: Option<f64>,
    pub last_pts_secs: Option<f64>,
    /// The stream's declared average frame rate, if any.
    pub fps: Option<f64>,
    pub audio_codec: Option<String>,
    pub decode_errors: u32,
    /// Frames whose stamp read back.
    pub stamped_frames: u64,
}

/// What a decoded segment contained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaInfo {
    /// FFmpeg's demuxer name (`mpegts`, `flv`, `mov,mp4,m4a,3gp,3g2,mj2`, ...).
    pub container: String,
    #[serde(flatten)]
    pub decoded: DecodeSummary,
    pub key_frames: u64,
}

/// One decoded frame, lent to the callback.
pub struct DecodedFrame<'a> {
    /// Decode-output order, from 0.
    pub index: u64,
    /// PTS in the stream's time base, and in seconds.
    pub pts: Option<i64>,
    pub pts_secs: Option<f64>,
    pub is_key: bool,
    /// The frame stamp, if readable.
    pub stamp: Option<FrameStamp>,
    /// The picture in YUV420P at its decoded size.
    pub picture: &'a frame::Video,
}

/// Why a segment could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the input is empty (0 bytes)")]
    Empty,
    #[error(
        "the MPEG-TS input is truncated: {len} bytes is not a whole number of 188-byte packets"
    )]
    Truncated { len: usize },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("not a readable media container: {0}")]
    Demux(ffmpeg_next::Error),
    #[error("no video stream")]
    NoVideoStream,
    #[error("no decoder for video codec {codec}")]
    UnsupportedCodec { codec: String },
    #[error("decoder failed while {stage}: {source}")]
    Decoder {
        stage: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("no frame could be decoded")]
    NoFrames,
}

impl From<DecoderError> for DecodeError {
    fn from(e: DecoderError) -> Self {
        match e {
            DecoderError::NoVideoStream => DecodeError::NoVideoStream,
            DecoderError::UnsupportedCodec { codec } => DecodeError::UnsupportedCodec { codec },
            DecoderError::Parameters { source, .. } => DecodeError::Decoder {
                stage: "reading stream parameters",
                source,
            },
            DecoderError::Open { source, .. } => DecodeError::Decoder {
                stage: "opening",
                source,
            },
        }
    }
}

impl From<ReadError> for DecodeError {
    fn from(ReadError(source): ReadError) -> Self {
        DecodeError::Decoder {
            stage: "reading",
            source,
        }
    }
}

impl From<OpenError> for DecodeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Empty => DecodeError::Empty,
            OpenError::Truncated { len } => DecodeError::Truncated { len },
            OpenError::Demux(e) => DecodeError::Demux(e),
        }
    }
}

/// Decodes segment bytes, calling `on_frame` for every frame.
pub fn decode_bytes<F: FnMut(&DecodedFrame)>(
    data: Vec<u8>,
    on_frame: F,
) -> Result<MediaInfo, DecodeError> {
    let input = open_container(data)?;
    decode_input(Demuxer::Memory(input), on_frame)
}

/// Decodes a file, calling `on_frame` for every frame.
pub fn decode_file<F: FnMut(&DecodedFrame)>(
    path: &Path,
    on_frame: F,
) -> Result<MediaInfo, DecodeError> {
    crate::init_ffmpeg();
    let input = ffmpeg_next::format::input(path).map_err(|source| DecodeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    decode_input(Demuxer::File(input), on_frame)
}

/// Decodes segment bytes and returns only the summary.
pub fn probe_bytes(data: Vec<u8>) -> Result<MediaInfo, DecodeError> {
    decode_bytes(data, |_| {})
}

/// Decodes a file and returns only the summary.
pub fn probe_file(path: &Path) -> Result<MediaInfo, DecodeError> {
    decode_file(path, |_| {})
}

/// A video stream's frames as its container lists them, read without decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerFrames {
    /// Coded width and height the stream declares.
    pub width: u32,
    pub height: u32,
    /// Video packets, one per frame in MPEG-TS as every muxer we meet writes it.
    pub frames: u64,
}

/// Counts the video frames of segment bytes by demuxing only: what an orchestrator bills by, at
/// a small fraction of a decode's cost. The dimensions are the stream's declared ones; whether
/// the pictures really are that size and count is a decode's to prove ([`decode_bytes`]).
pub fn count_frames(data: Vec<u8>) -> Result<ContainerFrames, DecodeError> {
    let mut memory = open_container(data)?;
    let input = memory.input();
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .ok_or(DecodeError::NoVideoStream)?;
    let index = stream.index();
    // SAFETY: the parameters pointer is owned by the stream, valid while `input` is.
    let (width, height) = unsafe {
        let parameters = stream.parameters().as_ptr();
        ((*parameters).width, (*parameters).height)
    };
    let mut frames = 0u64;
    loop {
        // A fresh packet per read: av_read_frame does not unref its target.
        let mut packet = ffmpeg_next::Packet::empty();
        match packet.read(input) {
            Ok(()) => frames += u64::from(packet.stream() == index),
            // A demuxer error ends the input with what was read, as decoding does here.
            Err(_) => break,
        }
    }
    Ok(ContainerFrames {
        width: u32::try_from(width).unwrap_or(0),
        height: u32::try_from(height).unwrap_or(0),
        frames,
    })
}

/// How this module decodes: one input at a time, so frame threads; a demuxer error ends the
/// input with what was read.
const OPTIONS: DecodeOptions = DecodeOptions {
    threads: DecoderThreads::Frame,
    read_errors: ReadErrors::EndInput,
};

fn decode_input<F: FnMut(&DecodedFrame)>(
    demuxer: Demuxer,
    mut on_frame: F,
) -> Result<MediaInfo, DecodeError> {
    let decoder = VideoDecoder::open(demuxer, OPTIONS)?;
    let fps = decoder.fps;
    let mut state = FrameLoop {
        tb: decoder.time_base,
        info: MediaInfo {
            container: decoder.container.clone(),
            decoded: DecodeSummary {
                codec: decoder.codec.clone(),
                fps: fps.map(f64::from),
                audio_codec: decoder.audio_codec.clone(),
                ..DecodeSummary::default()
            },
            key_frames: 0,
        },
        decoder,
        decoded: frame::Video::empty(),
        converted: None,
        scaler: None,
    };
    state.run(&mut on_frame)?;
    let mut info = state.info;
    let summary = &mut info.decoded;
    summary.decode_errors = state.decoder.decode_errors as u32;
    if summary.frames == 0 {
        return Err(DecodeError::NoFrames);
    }
    let frame_secs = fps.map(|r| f64::from(r.invert())).unwrap_or(0.0);
    summary.duration_secs = match (summary.first_pts_secs, summary.last_pts_secs) {
        (Some(a), Some(b)) => b - a + frame_secs,
        _ => summary.frames as f64 * frame_secs,
    };
    Ok(info)
}

struct FrameLoop {
    decoder: VideoDecoder,
    tb: Rational,
    info: MediaInfo,
    decoded: frame::Video,
    converted: Option<frame::Video>,
    scaler: Option<scaling::Context>,
}

impl FrameLoop {
    fn run<F: FnMut(&DecodedFrame)>(&mut self, on_frame: &mut F) -> Result<(), DecodeError> {
        while self.decoder.next_frame(&mut self.decoded)? {
            let f = &self.decoded;
            let pts = f.timestamp().or(f.pts());
            let pts_secs = pts.map(|p| p as f64 * f64::from(self.tb));
            let summary = &mut self.info.decoded;
            if let Some(s) = pts_secs {
                summary.first_pts_secs = Some(summary.first_pts_secs.map_or(s, |a| a.min(s)));
                summary.last_pts_secs = Some(summary.last_pts_secs.map_or(s, |a| a.max(s)));
            }
            let stamp = read_stamp(f);
            let is_key = f.is_key();
            summary.frames += 1;
            summary.stamped_frames += stamp.is_some() as u64;
            summary.width = f.width();
            summary.height = f.height();
            self.info.key_frames += is_key as u64;
            let picture = if f.format() == Pixel::YUV420P {
                &self.decoded
            } else {
                let stale = self.scaler.as_ref().is_none_or(|s| {
                    let i = s.input();
                    i.width != f.width() || i.height != f.height() || i.format != f.format()
                });
                if stale {
                    self.scaler = Some(
                        scaling::Context::get(
                            f.format(),
                            f.width(),
                            f.height(),
                            Pixel::YUV420P,
                            f.width(),
                            f.height(),
                            scaling::Flags::BICUBIC,
                        )
                        .map_err(|source| DecodeError::Decoder {
                            stage: "creating a converter",
                            source,
                        })?,
                    );
                    self.converted = Some(frame::Video::new(Pixel::YUV420P, f.width(), f.height()));
                }
                let out = self.converted.as_mut().expect("allocated with the scaler");
                self.scaler
                    .as_mut()
                    .expect("set above")
                    .run(&self.decoded, out)
                    .map_err(|source| DecodeError::Decoder {
                        stage: "converting to yuv420p",
                        source,
                    })?;
                out.set_pts(pts);
                &*out
            };
            on_frame(&DecodedFrame {
                index: self.info.decoded.frames - 1,
                pts,
                pts_secs,
                is_key,
                stamp,
                picture,
            });
        }
        Ok(())
    }
}
