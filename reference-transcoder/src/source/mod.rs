//! The stamped synthetic source: generated, stamped and encoded once, then replayed.
//!
//! Design: content comes from FFmpeg's own lavfi sources run through ffmpeg-next's filter API
//! (`testsrc2` for motion and gradients, blended with a coarse Game of Life for sharp moving
//! edges, plus temporal noise) so it is cheap to make yet costly to encode; every frame gets a
//! [`crate::stamp`] before one libx264 encode with closed GOPs of exactly `gop_secs` (no scene
//! cuts). The result keeps the Annex B packets on a 90 kHz timeline, from which it serves both
//! FLV-ready packets for RTMP replay and MPEG-TS segments cut at key frames.
//!
//! A user's video file may replace the lavfi content (`SourceConfig::input_file`): it is decoded,
//! scaled to the configured size, given the configured frame rate by frame count (constant frame
//! rate, one input frame per output frame, looping to fill `duration_secs`), stamped and
//! re-encoded exactly like the synthetic content; its audio is replaced by the tone.
//!
//! The module reads in the order a source is made: this file holds the configuration and
//! [`generate`], `pictures` where each frame's picture comes from (lavfi or a user's file),
//! `encoding` the libx264 and AAC encoders, and `packaging` the encoded result and how it is
//! served (FLV packets, MPEG-TS segments).

mod encoding;
mod packaging;
mod pictures;

use encoding::{encode_tone, open_x264};
pub use packaging::{EncodedSource, FlvPacket, MediaKind, SourcePacket, TsSegment, VideoFormat};
use pictures::PictureSource;

use std::path::PathBuf;

use ffmpeg_next::{Packet, Rational};

use crate::encode::receive_packet;
use crate::h264;
use crate::stamp::{FrameStamp, StampError, write_stamp};

/// MPEG-TS and our internal timeline tick rate.
pub const TICKS_PER_SECOND: i64 = 90_000;
const TICK_BASE: Rational = Rational(1, 90_000);
const AUDIO_RATE: u32 = 48_000;

/// How to make the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub width: u32,
    pub height: u32,
    /// Frame rate as a fraction `fps_num / fps_den` (30/1, 30000/1001, ...).
    pub fps_num: u32,
    pub fps_den: u32,
    pub duration_secs: f64,
    /// Key frame interval; every GOP is closed and exactly this long.
    pub gop_secs: f64,
    /// Written into every frame stamp.
    pub stream_id: u32,
    /// Video bit rate; `None` picks ~0.15 bit per pixel.
    pub video_bitrate: Option<u64>,
    pub x264_preset: String,
    /// Adds a 48 kHz mono AAC sine tone.
    pub audio: bool,
    pub tone_hz: u32,
    /// Temporal noise strength (0 = none); makes the content harder to encode.
    pub noise: u32,
    /// Use this video file's pictures instead of the synthetic content.
    pub input_file: Option<PathBuf>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            width: 1280,
            height: 720,
            fps_num: 30,
            fps_den: 1,
            duration_secs: 10.0,
            gop_secs: 2.0,
            stream_id: 1,
            video_bitrate: None,
            x264_preset: "veryfast".into(),
            audio: true,
            tone_hz: 440,
            noise: 6,
            input_file: None,
        }
    }
}

/// Why a source could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid source configuration: {0}")]
    InvalidConfig(String),
    #[error("FFmpeg has no {0} encoder")]
    EncoderMissing(&'static str),
    #[error("FFmpeg failed while {stage}: {source}")]
    Ffmpeg {
        stage: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("could not open input file {path}: {source}")]
    InputFile {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("input file {path} has no video stream")]
    NoVideoStream { path: PathBuf },
    #[error(transparent)]
    Stamp(#[from] StampError),
    #[error("the encoder produced no key frame with SPS/PPS")]
    NoParameterSets,
}

fn ff(stage: &'static str) -> impl FnOnce(ffmpeg_next::Error) -> SourceError {
    move |source| SourceError::Ffmpeg { stage, source }
}

/// Generates, stamps and encodes the source described by `config`.
pub fn generate(config: &SourceConfig) -> Result<EncodedSource, SourceError> {
    crate::init_ffmpeg();
    validate(config)?;
    let frame_count =
        (config.duration_secs * config.fps_num as f64 / config.fps_den as f64).round() as u32;
    let gop_frames =
        ((config.gop_secs * config.fps_num as f64 / config.fps_den as f64).round() as u32).max(1);
    let mut pictures = PictureSource::new(config)?;
    let mut encoder = open_x264(config, gop_frames)?;
    let enc_tb = Rational(config.fps_den as i32, config.fps_num as i32);

    let mut video = Vec::with_capacity(frame_count as usize);
    let mut packet = Packet::empty();
    let mut collect = |encoder: &mut ffmpeg_next::encoder::Video,
                       video: &mut Vec<SourcePacket>|
     -> Result<(), SourceError> {
        while receive_packet(encoder, &mut packet).map_err(ff("encoding video"))? {
            packet.rescale_ts(enc_tb, TICK_BASE);
            video.push(SourcePacket {
                pts: packet.pts().unwrap_or(0),
                dts: packet.dts().unwrap_or(0),
                duration: TICKS_PER_SECOND * config.fps_den as i64 / config.fps_num as i64,
                is_key: packet.is_key(),
                data: packet.data().unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    };
    for n in 0..frame_count {
        let mut picture = pictures.next_frame()?;
        write_stamp(
            &mut picture,
            FrameStamp {
                stream_id: config.stream_id,
                frame_number: n,
            },
        )?;
        picture.set_pts(Some(n as i64));
        picture.set_kind(if n % gop_frames == 0 {
            ffmpeg_next::picture::Type::I
        } else {
            ffmpeg_next::picture::Type::None
        });
        encoder.send_frame(&picture).map_err(ff("encoding video"))?;
        collect(&mut encoder, &mut video)?;
    }
    encoder
        .send_eof()
        .map_err(ff("flushing the video encoder"))?;
    collect(&mut encoder, &mut video)?;

    let (mut audio, audio_specific_config, audio_channels) = if config.audio {
        encode_tone(
            config,
            frame_count as f64 * config.fps_den as f64 / config.fps_num as f64,
        )?
    } else {
        (Vec::new(), Vec::new(), 0)
    };

    // Shift everything so the earliest DTS (B-frame delay, AAC priming) is zero: muxers would
    // otherwise shift each segment on their own.
    let min_ts = video
        .iter()
        .map(|p| p.dts)
        .chain(audio.iter().map(|p| p.pts.min(p.dts)))
        .min()
        .unwrap_or(0);
    let shift = (-min_ts).max(0);
    for p in video.iter_mut().chain(audio.iter_mut()) {
        p.pts += shift;
        p.dts += shift;
    }
    let (sps, pps) = video
        .iter()
        .find(|p| p.is_key)
        .and_then(|p| h264::find_parameter_sets(&p.data))
        .ok_or(SourceError::NoParameterSets)?;
    Ok(EncodedSource {
        format: VideoFormat {
            width: config.width,
            height: config.height,
            fps_num: config.fps_num,
            fps_den: config.fps_den,
            gop_frames,
            stream_id: config.stream_id,
        },
        video,
        audio,
        avc_decoder_config: h264::avc_decoder_configuration_record(&sps, &pps),
        audio_specific_config,
        audio_channels,
    })
}

fn validate(c: &SourceConfig) -> Result<(), SourceError> {
    let bad = |m: String| Err(SourceError::InvalidConfig(m));
    if c.width < 64
        || c.height < 32
        || !c.width.is_multiple_of(2)
        || !c.height.is_multiple_of(2)
        || c.width > 7680
        || c.height > 4320
    {
        return bad(format!(
            "size {}x{} must be even and between 64x32 and 7680x4320",
            c.width, c.height
        ));
    }
    if c.fps_num == 0 || c.fps_den == 0 || c.fps_num / c.fps_den > 240 {
        return bad(format!(
            "frame rate {}/{} must be positive and at most 240",
            c.fps_num, c.fps_den
        ));
    }
    if !(c.duration_secs.is_finite() && c.duration_secs > 0.0 && c.duration_secs <= 24.0 * 3600.0) {
        return bad(format!("duration {} s must be positive", c.duration_secs));
    }
    if !(c.gop_secs.is_finite() && c.gop_secs > 0.0) {
        return bad(format!("GOP {} s must be positive", c.gop_secs));
    }
    Ok(())
}
