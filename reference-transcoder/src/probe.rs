//! Decoding helpers for probes and quality scoring: decode a TS/FLV/MP4 segment (bytes or path)
//! frame by frame, with each frame's timestamp and stamp, and summarise what was found.
//!
//! Design: frames are handed to a callback one at a time (converted to YUV420P at their own size
//! only when they are not already), so memory stays bounded by one frame plus the decoder's
//! references whatever the segment's length; the summary (`MediaInfo`) comes back at the end.

use std::path::{Path, PathBuf};

use ffmpeg_next::format::Pixel;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Packet, Rational, codec, frame, media};
use serde::Serialize;

use crate::memio::{OpenError, open_container};
use crate::stamp::{FrameStamp, read_stamp};

/// What a decoded segment contained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaInfo {
    /// FFmpeg's demuxer name (`mpegts`, `flv`, `mov,mp4,m4a,3gp,3g2,mj2`, ...).
    pub container: String,
    /// Video codec name (`h264`, ...).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames actually decoded.
    pub frames: u64,
    /// last PTS − first PTS + one frame period.
    pub duration_secs: f64,
    pub first_pts_secs: Option<f64>,
    pub last_pts_secs: Option<f64>,
    /// The stream's declared average frame rate, if any.
    pub fps: Option<f64>,
    pub audio_codec: Option<String>,
    pub key_frames: u64,
    /// Frames whose stamp read back.
    pub stamped_frames: u64,
    pub decode_errors: u32,
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
    let mut input = open_container(data)?;
    decode_input(input.input(), on_frame)
}

/// Decodes a file, calling `on_frame` for every frame.
pub fn decode_file<F: FnMut(&DecodedFrame)>(
    path: &Path,
    on_frame: F,
) -> Result<MediaInfo, DecodeError> {
    crate::init_ffmpeg();
    let mut input = ffmpeg_next::format::input(path).map_err(|source| DecodeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    decode_input(&mut input, on_frame)
}

/// Decodes segment bytes and returns only the summary.
pub fn probe_bytes(data: Vec<u8>) -> Result<MediaInfo, DecodeError> {
    decode_bytes(data, |_| {})
}

/// Decodes a file and returns only the summary.
pub fn probe_file(path: &Path) -> Result<MediaInfo, DecodeError> {
    decode_file(path, |_| {})
}

fn decode_input<F: FnMut(&DecodedFrame)>(
    input: &mut Input,
    mut on_frame: F,
) -> Result<MediaInfo, DecodeError> {
    let container = input.format().name().to_string();
    let (index, tb, fps, params) = {
        let s = input
            .streams()
            .best(media::Type::Video)
            .ok_or(DecodeError::NoVideoStream)?;
        let fps = [s.avg_frame_rate(), s.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0);
        (s.index(), s.time_base(), fps, s.parameters())
    };
    let audio_codec = input
        .streams()
        .best(media::Type::Audio)
        .map(|s| s.parameters().id().name().to_string());
    let codec_id = params.id();
    let decoder_codec =
        ffmpeg_next::decoder::find(codec_id).ok_or_else(|| DecodeError::UnsupportedCodec {
            codec: format!("{codec_id:?}"),
        })?;
    let mut ctx = codec::context::Context::from_parameters(params).map_err(|source| {
        DecodeError::Decoder {
            stage: "reading stream parameters",
            source,
        }
    })?;
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let mut decoder = ctx
        .decoder()
        .open_as(decoder_codec)
        .and_then(|o| o.video())
        .map_err(|source| DecodeError::Decoder {
            stage: "opening",
            source,
        })?;

    let mut state = FrameLoop {
        tb,
        info: MediaInfo {
            container,
            codec: decoder_codec.name().to_string(),
            width: 0,
            height: 0,
            frames: 0,
            duration_secs: 0.0,
            first_pts_secs: None,
            last_pts_secs: None,
            fps: fps.map(f64::from),
            audio_codec,
            key_frames: 0,
            stamped_frames: 0,
            decode_errors: 0,
        },
        decoded: frame::Video::empty(),
        converted: None,
        scaler: None,
    };
    loop {
        // av_read_frame does not unref its target: a fresh packet per read avoids leaking the last.
        let mut packet = Packet::empty();
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg_next::Error::Eof) => break,
            Err(_) => {
                state.info.decode_errors += 1;
                break;
            }
        }
        if packet.stream() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            state.info.decode_errors += 1;
        }
        state.drain(&mut decoder, &mut on_frame)?;
    }
    let _ = decoder.send_eof();
    state.drain(&mut decoder, &mut on_frame)?;
    let mut info = state.info;
    if info.frames == 0 {
        return Err(DecodeError::NoFrames);
    }
    let frame_secs = fps.map(|r| f64::from(r.invert())).unwrap_or(0.0);
    info.duration_secs = match (info.first_pts_secs, info.last_pts_secs) {
        (Some(a), Some(b)) => b - a + frame_secs,
        _ => info.frames as f64 * frame_secs,
    };
    Ok(info)
}

struct FrameLoop {
    tb: Rational,
    info: MediaInfo,
    decoded: frame::Video,
    converted: Option<frame::Video>,
    scaler: Option<scaling::Context>,
}

impl FrameLoop {
    fn drain<F: FnMut(&DecodedFrame)>(
        &mut self,
        decoder: &mut ffmpeg_next::decoder::Video,
        on_frame: &mut F,
    ) -> Result<(), DecodeError> {
        loop {
            match decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Other {
                    errno: libc::EAGAIN,
                })
                | Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(_) => {
                    self.info.decode_errors += 1;
                    continue;
                }
            }
            let f = &self.decoded;
            let pts = f.timestamp().or(f.pts());
            let pts_secs = pts.map(|p| p as f64 * f64::from(self.tb));
            if let Some(s) = pts_secs {
                self.info.first_pts_secs = Some(self.info.first_pts_secs.map_or(s, |a| a.min(s)));
                self.info.last_pts_secs = Some(self.info.last_pts_secs.map_or(s, |a| a.max(s)));
            }
            let stamp = read_stamp(f);
            let is_key = f.is_key();
            self.info.frames += 1;
            self.info.key_frames += is_key as u64;
            self.info.stamped_frames += stamp.is_some() as u64;
            self.info.width = f.width();
            self.info.height = f.height();
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
                index: self.info.frames - 1,
                pts,
                pts_secs,
                is_key,
                stamp,
                picture,
            });
        }
    }
}
