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

use std::path::PathBuf;

use ffmpeg_next::codec::{self, Flags as CodecFlags};
use ffmpeg_next::format::{Pixel, Sample, sample::Type as SampleType};
use ffmpeg_next::software::scaling;
use ffmpeg_next::{ChannelLayout, Dictionary, Packet, Rational, filter, frame};
use serde::Serialize;

use crate::h264;
use crate::memio::{MemoryMuxer, StreamSpec};
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

/// The source, encoded once.
#[derive(Debug, Clone)]
pub struct EncodedSource {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub gop_frames: u32,
    pub stream_id: u32,
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
        TICKS_PER_SECOND * self.fps_den as i64 / self.fps_num as i64
    }

    pub fn frame_count(&self) -> usize {
        self.video.len()
    }

    pub fn duration_secs(&self) -> f64 {
        self.video.len() as f64 * self.fps_den as f64 / self.fps_num as f64
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
            width: self.width,
            height: self.height,
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

/// Generates, stamps and encodes the source described by `config`.
pub fn generate(config: &SourceConfig) -> Result<EncodedSource, SourceError> {
    crate::init_ffmpeg();
    validate(config)?;
    let fps = Rational(config.fps_num as i32, config.fps_den as i32);
    let frame_count =
        (config.duration_secs * config.fps_num as f64 / config.fps_den as f64).round() as u32;
    let gop_frames =
        ((config.gop_secs * config.fps_num as f64 / config.fps_den as f64).round() as u32).max(1);
    let mut pictures = PictureSource::new(config)?;
    let mut encoder = open_x264(config, gop_frames)?;
    let enc_tb = Rational(config.fps_den as i32, config.fps_num as i32);

    let mut video = Vec::with_capacity(frame_count as usize);
    let mut packet = Packet::empty();
    let mut collect = |encoder: &mut ffmpeg_next::encoder::Video, video: &mut Vec<SourcePacket>| {
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.rescale_ts(enc_tb, TICK_BASE);
            video.push(SourcePacket {
                pts: packet.pts().unwrap_or(0),
                dts: packet.dts().unwrap_or(0),
                duration: TICKS_PER_SECOND * config.fps_den as i64 / config.fps_num as i64,
                is_key: packet.is_key(),
                data: packet.data().unwrap_or_default().to_vec(),
            });
        }
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
        collect(&mut encoder, &mut video);
    }
    encoder
        .send_eof()
        .map_err(ff("flushing the video encoder"))?;
    collect(&mut encoder, &mut video);
    let _ = fps;

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
        width: config.width,
        height: config.height,
        fps_num: config.fps_num,
        fps_den: config.fps_den,
        gop_frames,
        stream_id: config.stream_id,
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

fn open_x264(
    config: &SourceConfig,
    gop_frames: u32,
) -> Result<ffmpeg_next::encoder::Video, SourceError> {
    let codec = ffmpeg_next::encoder::find_by_name("libx264")
        .ok_or(SourceError::EncoderMissing("libx264"))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ff("creating libx264"))?;
    enc.set_width(config.width);
    enc.set_height(config.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(Rational(config.fps_den as i32, config.fps_num as i32));
    enc.set_frame_rate(Some(Rational(config.fps_num as i32, config.fps_den as i32)));
    enc.set_gop(gop_frames);
    let pixels_per_sec =
        config.width as f64 * config.height as f64 * config.fps_num as f64 / config.fps_den as f64;
    let bitrate = config
        .video_bitrate
        .unwrap_or((pixels_per_sec * 0.15) as u64);
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize * 3 / 2);
    let mut opts = Dictionary::new();
    opts.set("preset", &config.x264_preset);
    opts.set(
        "x264-params",
        &format!("keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0:open-gop=0"),
    );
    opts.set("forced-idr", "1");
    enc.open_with(opts).map_err(ff("opening libx264"))
}

/// Encodes `secs` of sine tone; returns packets on the 90 kHz timeline, the
/// AudioSpecificConfig and the channel count.
fn encode_tone(
    config: &SourceConfig,
    secs: f64,
) -> Result<(Vec<SourcePacket>, Vec<u8>, u32), SourceError> {
    let mut graph = filter::Graph::new();
    let sink =
        filter::find("abuffersink").ok_or(SourceError::EncoderMissing("abuffersink filter"))?;
    graph
        .add(&sink, "out", "")
        .map_err(ff("building the audio graph"))?;
    let spec = format!(
        "sine=frequency={}:sample_rate={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=mono",
        config.tone_hz
    );
    graph
        .input("out", 0)
        .and_then(|p| p.parse(&spec))
        .map_err(ff("parsing the audio graph"))?;
    graph
        .validate()
        .map_err(ff("configuring the audio graph"))?;
    let codec =
        ffmpeg_next::encoder::find(codec::Id::AAC).ok_or(SourceError::EncoderMissing("aac"))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(ff("creating aac"))?;
    enc.set_rate(AUDIO_RATE as i32);
    enc.set_channel_layout(ChannelLayout::MONO);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_time_base(Rational(1, AUDIO_RATE as i32));
    enc.set_bit_rate(96_000);
    enc.set_flags(CodecFlags::GLOBAL_HEADER);
    let mut encoder = enc.open().map_err(ff("opening aac"))?;
    let frame_size = encoder.frame_size().max(1024);
    graph
        .get("out")
        .expect("sink added above")
        .sink()
        .set_frame_size(frame_size);
    let asc = unsafe {
        let ctx = encoder.as_ptr();
        std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size.max(0) as usize).to_vec()
    };
    let total_samples = (secs * AUDIO_RATE as f64).round() as i64;
    let mut out = Vec::new();
    let mut frame = frame::Audio::empty();
    let mut packet = Packet::empty();
    let tb = Rational(1, AUDIO_RATE as i32);
    let mut drain = |encoder: &mut ffmpeg_next::encoder::Audio, out: &mut Vec<SourcePacket>| {
        while encoder.receive_packet(&mut packet).is_ok() {
            let duration = packet.duration();
            packet.rescale_ts(tb, TICK_BASE);
            out.push(SourcePacket {
                pts: packet.pts().unwrap_or(0),
                dts: packet.dts().unwrap_or(0),
                duration: duration * TICKS_PER_SECOND / AUDIO_RATE as i64,
                is_key: true,
                data: packet.data().unwrap_or_default().to_vec(),
            });
        }
    };
    let mut samples = 0i64;
    while samples < total_samples {
        graph
            .get("out")
            .expect("sink")
            .sink()
            .frame(&mut frame)
            .map_err(ff("generating the tone"))?;
        frame.set_pts(Some(samples));
        samples += frame.samples() as i64;
        encoder.send_frame(&frame).map_err(ff("encoding audio"))?;
        drain(&mut encoder, &mut out);
    }
    encoder.send_eof().map_err(ff("flushing aac"))?;
    drain(&mut encoder, &mut out);
    Ok((out, asc, 1))
}

/// Where the pictures come from: the lavfi graph, or a user's file.
enum PictureSource {
    Lavfi(filter::Graph),
    File(Box<FilePictures>),
}

impl PictureSource {
    fn new(config: &SourceConfig) -> Result<Self, SourceError> {
        if let Some(path) = &config.input_file {
            return Ok(PictureSource::File(Box::new(FilePictures::open(
                path.clone(),
                config,
            )?)));
        }
        let (w, h) = (config.width, config.height);
        let rate = format!("{}/{}", config.fps_num, config.fps_den);
        let (lw, lh) = ((w / 8).max(16), (h / 8).max(16));
        let noise = if config.noise > 0 {
            format!(",noise=alls={}:allf=t", config.noise)
        } else {
            String::new()
        };
        let spec = format!(
            "testsrc2=s={w}x{h}:r={rate},format=yuv420p[t];\
             life=s={lw}x{lh}:r={rate}:mold=10:ratio=0.3:life_color=#ffffff:death_color=#202020,\
             scale={w}x{h}:flags=neighbor,format=yuv420p[l];\
             [t][l]blend=all_mode=average{noise},format=yuv420p"
        );
        let mut graph = filter::Graph::new();
        let sink =
            filter::find("buffersink").ok_or(SourceError::EncoderMissing("buffersink filter"))?;
        graph
            .add(&sink, "out", "")
            .map_err(ff("building the video graph"))?;
        graph
            .input("out", 0)
            .and_then(|p| p.parse(&spec))
            .map_err(ff("parsing the video graph"))?;
        graph
            .validate()
            .map_err(ff("configuring the video graph"))?;
        Ok(PictureSource::Lavfi(graph))
    }

    fn next_frame(&mut self) -> Result<frame::Video, SourceError> {
        match self {
            PictureSource::Lavfi(graph) => {
                let mut frame = frame::Video::empty();
                graph
                    .get("out")
                    .expect("sink added")
                    .sink()
                    .frame(&mut frame)
                    .map_err(ff("generating video"))?;
                // Filter frames may share buffers; the stamp writes into them.
                unsafe {
                    let ret = ffmpeg_next::ffi::av_frame_make_writable(frame.as_mut_ptr());
                    if ret < 0 {
                        return Err(SourceError::Ffmpeg {
                            stage: "making a frame writable",
                            source: ret.into(),
                        });
                    }
                }
                Ok(frame)
            }
            PictureSource::File(file) => file.next_frame(),
        }
    }
}

/// Decoded pictures of a user's file, scaled to the configured size, looping at the end.
struct FilePictures {
    path: PathBuf,
    width: u32,
    height: u32,
    input: ffmpeg_next::format::context::Input,
    stream: usize,
    decoder: ffmpeg_next::decoder::Video,
    scaler: Option<scaling::Context>,
    eof: bool,
    decoded_any: bool,
}

impl FilePictures {
    fn open(path: PathBuf, config: &SourceConfig) -> Result<Self, SourceError> {
        let input = ffmpeg_next::format::input(&path).map_err(|source| SourceError::InputFile {
            path: path.clone(),
            source,
        })?;
        let stream = input
            .streams()
            .best(ffmpeg_next::media::Type::Video)
            .ok_or_else(|| SourceError::NoVideoStream { path: path.clone() })?;
        let index = stream.index();
        let ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(ff("reading input parameters"))?;
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|source| SourceError::InputFile {
                path: path.clone(),
                source,
            })?;
        Ok(FilePictures {
            path,
            width: config.width,
            height: config.height,
            input,
            stream: index,
            decoder,
            scaler: None,
            eof: false,
            decoded_any: false,
        })
    }

    fn next_frame(&mut self) -> Result<frame::Video, SourceError> {
        let mut decoded = frame::Video::empty();
        for _attempt in 0..2 {
            loop {
                if self.decoder.receive_frame(&mut decoded).is_ok() {
                    self.decoded_any = true;
                    return self.scale(&decoded);
                }
                if self.eof {
                    break;
                }
                let mut packet = Packet::empty();
                match packet.read(&mut self.input) {
                    Ok(()) if packet.stream() == self.stream => {
                        // A damaged packet is skipped, as a player would.
                        let _ = self.decoder.send_packet(&packet);
                    }
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::Eof) => {
                        self.eof = true;
                        let _ = self.decoder.send_eof();
                    }
                    Err(source) => {
                        return Err(SourceError::InputFile {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            if !self.decoded_any {
                break;
            }
            // Loop the file: rewind and start decoding again.
            self.input
                .seek(0, ..)
                .map_err(|source| SourceError::InputFile {
                    path: self.path.clone(),
                    source,
                })?;
            self.decoder.flush();
            self.eof = false;
        }
        Err(SourceError::NoVideoStream {
            path: self.path.clone(),
        })
    }

    fn scale(&mut self, decoded: &frame::Video) -> Result<frame::Video, SourceError> {
        let needs_new = self.scaler.as_ref().is_none_or(|s| {
            s.input().width != decoded.width()
                || s.input().height != decoded.height()
                || s.input().format != decoded.format()
        });
        if needs_new {
            self.scaler = Some(
                scaling::Context::get(
                    decoded.format(),
                    decoded.width(),
                    decoded.height(),
                    Pixel::YUV420P,
                    self.width,
                    self.height,
                    scaling::Flags::BICUBIC,
                )
                .map_err(ff("creating a scaler"))?,
            );
        }
        let mut out = frame::Video::new(Pixel::YUV420P, self.width, self.height);
        self.scaler
            .as_mut()
            .expect("set above")
            .run(decoded, &mut out)
            .map_err(ff("scaling input"))?;
        Ok(out)
    }
}
