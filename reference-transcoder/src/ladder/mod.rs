//! The ladder transcoder: decode a segment once, then scale, re-time and encode it into every
//! rendition of a ladder, each muxed to MPEG-TS in memory.
//!
//! Design: a [`LadderTranscoder`] is one stream's session. It keeps its decoder and one worker
//! thread per rendition for the session's whole life; each worker owns its scaler, frame-rate
//! converter, encoder and muxer, so renditions scale and encode in parallel while the session's
//! thread decodes (FFmpeg's own CLI scales every rendition on one thread). Decoded frames reach
//! workers as reference-counted `AVFrame`s, never copied. At a segment's end every encoder is
//! drained; encoders that support `AV_CODEC_CAP_ENCODER_FLUSH` are then flushed and reused,
//! others are reopened. Frame-rate conversion works on timestamps (output slot =
//! round(pts × fps)), so source timestamps are kept and variable frame rate input is handled.

mod hardware;
mod profile;
mod worker;

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ffmpeg_next::codec::{self, Id as CodecId};
use ffmpeg_next::ffi::*;
use ffmpeg_next::{Packet, Rational, frame, media};
use serde::Serialize;

pub use hardware::{EncoderPath, HardwarePreference, HardwareProbe, choose_path, hardware_probe};
pub use profile::{
    BENCH_LADDER, DEFAULT_LADDER, Gop, H264Profile, Profile, ProfileError, parse_json_profiles,
    parse_ladder,
};

use crate::memio::{MemoryInput, OpenError, open_container};
use worker::{Job, SegmentStart, WorkerConfig};

/// How frames are resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScaleAlgorithm {
    FastBilinear,
    Bilinear,
    /// FFmpeg's `scale` filter default.
    #[default]
    Bicubic,
    Lanczos,
}

impl ScaleAlgorithm {
    pub(crate) fn flags(self) -> ffmpeg_next::software::scaling::Flags {
        use ffmpeg_next::software::scaling::Flags;
        match self {
            ScaleAlgorithm::FastBilinear => Flags::FAST_BILINEAR,
            ScaleAlgorithm::Bilinear => Flags::BILINEAR,
            ScaleAlgorithm::Bicubic => Flags::BICUBIC,
            ScaleAlgorithm::Lanczos => Flags::LANCZOS,
        }
    }
}

/// Session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderOptions {
    /// libx264 preset (`veryfast` suits live).
    pub x264_preset: String,
    pub hardware: HardwarePreference,
    pub scale: ScaleAlgorithm,
    /// Threads per encoder; 0 = automatic: 3 × cores, at most 16. (libx264's own default is
    /// 1.5 × cores; measured with `benches/ladder_vs_ffmpeg.rs`, the extra frame threads keep the
    /// cores busy while encoders drain at every segment boundary, +18 % frames/s for one
    /// session on 2 cores, at ~2 % CPU per frame.)
    pub encoder_threads: usize,
    /// Decoder threads; 0 = automatic.
    pub decoder_threads: usize,
    /// Copy the segment's audio into every rendition.
    pub copy_audio: bool,
    /// Fail a segment the decoder reported errors on (instead of transcoding what decoded).
    pub reject_corrupt: bool,
}

impl Default for LadderOptions {
    fn default() -> Self {
        LadderOptions {
            x264_preset: "veryfast".into(),
            hardware: HardwarePreference::Auto,
            scale: ScaleAlgorithm::Bicubic,
            encoder_threads: 0,
            decoder_threads: 0,
            copy_audio: true,
            reject_corrupt: true,
        }
    }
}

/// Why a segment could not be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the segment is empty (0 bytes)")]
    EmptySegment,
    #[error(
        "the MPEG-TS segment is truncated: {len} bytes is not a whole number of 188-byte packets"
    )]
    TruncatedSegment { len: usize },
    #[error("the segment is not a readable media container: {0}")]
    Demux(ffmpeg_next::Error),
    #[error("the segment has no video stream")]
    NoVideoStream,
    #[error("no decoder for the segment's video codec {codec}")]
    UnsupportedCodec { codec: String },
    #[error("decoder failed while {stage}: {source}")]
    Decoder {
        stage: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("no frame could be decoded from {packets} video packets")]
    NoFramesDecoded { packets: u32 },
    #[error(
        "the segment is corrupt: the decoder reported {decode_errors} errors ({frames} frames decoded)"
    )]
    CorruptSegment { decode_errors: u32, frames: u64 },
    #[error("FFmpeg has no {0} encoder")]
    EncoderMissing(&'static str),
    #[error("the ladder has no profiles")]
    EmptyLadder,
    #[error("rendition {profile}: {stage} failed: {source}")]
    Encoder {
        profile: String,
        stage: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("rendition {profile}: its worker thread stopped")]
    WorkerGone { profile: String },
}

/// One rendition of one segment.
#[derive(Clone, Serialize)]
pub struct RenditionOutput {
    pub profile: String,
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    /// Frames encoded (and muxed).
    pub frames: u64,
    /// width × height × frames: what orchestrators bill.
    pub pixels: u64,
    /// Time this rendition's worker spent scaling, encoding and muxing.
    pub encode_time: Duration,
    /// The MPEG-TS bytes.
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RenditionOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenditionOutput")
            .field("profile", &self.profile)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("fps", &format_args!("{}/{}", self.fps_num, self.fps_den))
            .field("frames", &self.frames)
            .field("pixels", &self.pixels)
            .field("encode_time", &self.encode_time)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// A transcoded segment.
#[derive(Debug, Clone, Serialize)]
pub struct LadderOutput {
    pub renditions: Vec<RenditionOutput>,
    pub source_frames: u64,
    pub source_width: u32,
    pub source_height: u32,
    /// From the decoded frames' timestamps (last − first + one frame).
    pub source_duration_secs: f64,
    pub first_pts_secs: Option<f64>,
    pub decode_errors: u32,
    /// Wall time of the whole segment (demux, decode, all renditions).
    pub transcode_time: Duration,
}

impl LadderOutput {
    pub fn total_pixels(&self) -> u64 {
        self.renditions.iter().map(|r| r.pixels).sum()
    }
}

struct SessionDecoder {
    decoder: ffmpeg_next::decoder::Video,
    codec: CodecId,
    width: u32,
    height: u32,
}

struct Worker {
    profile: String,
    jobs: SyncSender<Job>,
    done: Receiver<Result<RenditionOutput, TranscodeError>>,
    handle: Option<JoinHandle<()>>,
}

/// One stream's transcoding session; reuse it for every segment of that stream.
pub struct LadderTranscoder {
    profiles: Vec<Profile>,
    options: LadderOptions,
    path: EncoderPath,
    path_reason: String,
    decoder: Option<SessionDecoder>,
    workers: Vec<Worker>,
    segments: u64,
}

impl LadderTranscoder {
    /// Starts a session for `profiles` (one worker thread per profile).
    pub fn new(profiles: Vec<Profile>, options: LadderOptions) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        if profiles.is_empty() {
            return Err(TranscodeError::EmptyLadder);
        }
        let (path, path_reason) = choose_path(options.hardware);
        let encoder_name = path.encoder_name();
        if ffmpeg_next::encoder::find_by_name(encoder_name).is_none() {
            return Err(TranscodeError::EncoderMissing(encoder_name));
        }
        let mut workers = Vec::with_capacity(profiles.len());
        for profile in &profiles {
            let (jobs, job_rx) = sync_channel::<Job>(8);
            let (done_tx, done) = sync_channel(1);
            let config = WorkerConfig {
                profile: profile.clone(),
                options: options.clone(),
                path,
            };
            let handle = std::thread::Builder::new()
                .name(format!("ladder-{}", profile.name))
                .spawn(move || worker::run(config, job_rx, done_tx))
                .map_err(|_| TranscodeError::WorkerGone {
                    profile: profile.name.clone(),
                })?;
            workers.push(Worker {
                profile: profile.name.clone(),
                jobs,
                done,
                handle: Some(handle),
            });
        }
        Ok(LadderTranscoder {
            profiles,
            options,
            path,
            path_reason,
            decoder: None,
            workers,
            segments: 0,
        })
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The encode path in use and why it was chosen.
    pub fn encoder_path(&self) -> (EncoderPath, &str) {
        (self.path, &self.path_reason)
    }

    /// Segments transcoded so far (successfully or not).
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Transcodes one segment (MPEG-TS, or any container FFmpeg can probe).
    pub fn transcode(&mut self, segment: &[u8]) -> Result<LadderOutput, TranscodeError> {
        self.transcode_owned(segment.to_vec())
    }

    /// As [`Self::transcode`], taking ownership of the bytes (saves a copy).
    pub fn transcode_owned(&mut self, segment: Vec<u8>) -> Result<LadderOutput, TranscodeError> {
        let started = Instant::now();
        self.segments += 1;
        let mut input = open_container(segment)?;
        let (video_index, video_tb, source_fps, params) = {
            let ictx = input.input();
            let stream = ictx
                .streams()
                .best(media::Type::Video)
                .ok_or(TranscodeError::NoVideoStream)?;
            let fps = [stream.avg_frame_rate(), stream.rate()]
                .into_iter()
                .find(|r| r.numerator() > 0 && r.denominator() > 0)
                .unwrap_or(Rational(30, 1));
            (stream.index(), stream.time_base(), fps, stream.parameters())
        };
        let audio = if self.options.copy_audio {
            let ictx = input.input();
            ictx.streams()
                .best(media::Type::Audio)
                .map(|s| (s.index(), s.parameters(), s.time_base()))
        } else {
            None
        };
        self.ensure_decoder(&params)?;

        for w in &self.workers {
            let start = SegmentStart {
                video_time_base: video_tb,
                source_fps,
                audio: audio.as_ref().map(|(_, p, tb)| (p.clone(), *tb)),
            };
            w.jobs
                .send(Job::Begin(start))
                .map_err(|_| TranscodeError::WorkerGone {
                    profile: w.profile.clone(),
                })?;
        }
        let result = self.decode_and_distribute(
            &mut input,
            video_index,
            video_tb,
            source_fps,
            audio.as_ref().map(|a| a.0),
        );
        // Always close the segment in every worker so the session stays usable after a failure.
        // All workers are told first so their encoders drain in parallel, then collected.
        let told: Vec<bool> = self
            .workers
            .iter()
            .map(|w| w.jobs.send(Job::End).is_ok())
            .collect();
        let mut renditions = Vec::with_capacity(self.workers.len());
        let mut worker_error = None;
        for (w, told) in self.workers.iter().zip(told) {
            let out = told
                .then(|| w.done.recv().ok())
                .flatten()
                .unwrap_or_else(|| {
                    Err(TranscodeError::WorkerGone {
                        profile: w.profile.clone(),
                    })
                });
            match out {
                Ok(r) => renditions.push(r),
                Err(e) => worker_error = worker_error.or(Some(e)),
            }
        }
        let stats = result?;
        if stats.frames == 0 {
            return Err(TranscodeError::NoFramesDecoded {
                packets: stats.packets,
            });
        }
        if self.options.reject_corrupt && stats.errors > 0 {
            return Err(TranscodeError::CorruptSegment {
                decode_errors: stats.errors,
                frames: stats.frames,
            });
        }
        if let Some(e) = worker_error {
            return Err(e);
        }
        let frame_secs = source_fps.denominator() as f64 / source_fps.numerator() as f64;
        let tb = f64::from(video_tb);
        let source_duration_secs = match (stats.first_pts, stats.last_pts) {
            (Some(a), Some(b)) => (b - a) as f64 * tb + frame_secs,
            _ => stats.frames as f64 * frame_secs,
        };
        Ok(LadderOutput {
            renditions,
            source_frames: stats.frames,
            source_width: stats.width,
            source_height: stats.height,
            source_duration_secs,
            first_pts_secs: stats.first_pts.map(|p| p as f64 * tb),
            decode_errors: stats.errors,
            transcode_time: started.elapsed(),
        })
    }

    fn ensure_decoder(&mut self, params: &codec::Parameters) -> Result<(), TranscodeError> {
        let (id, width, height) = unsafe {
            let p = params.as_ptr();
            (
                params.id(),
                (*p).width.max(0) as u32,
                (*p).height.max(0) as u32,
            )
        };
        if let Some(d) = &self.decoder
            && d.codec == id
            && d.width == width
            && d.height == height
        {
            return Ok(());
        }
        let codec =
            ffmpeg_next::decoder::find(id).ok_or_else(|| TranscodeError::UnsupportedCodec {
                codec: format!("{id:?}"),
            })?;
        let mut ctx =
            codec::context::Context::from_parameters(params.clone()).map_err(|source| {
                TranscodeError::Decoder {
                    stage: "reading stream parameters",
                    source,
                }
            })?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: self.options.decoder_threads,
            ..Default::default()
        });
        if self.path.hw_decode()
            && let Some(dev) = hardware::cuda_device()
        {
            unsafe { (*ctx.as_mut_ptr()).hw_device_ctx = av_buffer_ref(dev.0) };
        }
        let decoder = ctx
            .decoder()
            .open_as(codec)
            .and_then(|o| o.video())
            .map_err(|source| TranscodeError::Decoder {
                stage: "opening",
                source,
            })?;
        self.decoder = Some(SessionDecoder {
            decoder,
            codec: id,
            width,
            height,
        });
        Ok(())
    }

    fn decode_and_distribute(
        &mut self,
        input: &mut MemoryInput,
        video_index: usize,
        video_tb: Rational,
        source_fps: Rational,
        audio_index: Option<usize>,
    ) -> Result<DecodeStats, TranscodeError> {
        let decoder = &mut self.decoder.as_mut().expect("ensure_decoder ran").decoder;
        let workers = &self.workers;
        let mut stats = DecodeStats::default();
        let frame_ticks = (f64::from(source_fps.invert()) / f64::from(video_tb))
            .round()
            .max(1.0) as i64;
        let mut decoded = frame::Video::empty();
        let mut deliver = |decoder: &mut ffmpeg_next::decoder::Video,
                           stats: &mut DecodeStats|
         -> Result<(), TranscodeError> {
            loop {
                match decoder.receive_frame(&mut decoded) {
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::Other {
                        errno: libc::EAGAIN,
                    })
                    | Err(ffmpeg_next::Error::Eof) => return Ok(()),
                    Err(_) => {
                        stats.errors += 1;
                        continue;
                    }
                }
                if decoded.is_corrupt() || unsafe { (*decoded.as_ptr()).decode_error_flags } != 0 {
                    stats.errors += 1;
                }
                let pts = decoded
                    .timestamp()
                    .or(decoded.pts())
                    .or(stats.last_pts.map(|p| p + frame_ticks))
                    .unwrap_or(0);
                decoded.set_pts(Some(pts));
                stats.frames += 1;
                stats.first_pts = Some(stats.first_pts.map_or(pts, |f: i64| f.min(pts)));
                stats.last_pts = Some(stats.last_pts.map_or(pts, |l: i64| l.max(pts)));
                stats.width = decoded.width();
                stats.height = decoded.height();
                let frame = download_if_hw(&decoded)?;
                for w in workers {
                    let shared = unsafe { frame::Video::wrap(av_frame_clone(frame.as_ptr())) };
                    w.jobs
                        .send(Job::Frame(shared))
                        .map_err(|_| TranscodeError::WorkerGone {
                            profile: w.profile.clone(),
                        })?;
                }
            }
        };
        loop {
            // av_read_frame does not unref its target: a fresh packet per read avoids leaking the last.
            let mut packet = Packet::empty();
            match packet.read(input.input()) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(_) => {
                    // A damaged container stops reading; what was read still counts.
                    stats.errors += 1;
                    break;
                }
            }
            if packet.stream() == video_index {
                stats.packets += 1;
                if decoder.send_packet(&packet).is_err() {
                    stats.errors += 1;
                }
                deliver(decoder, &mut stats)?;
            } else if Some(packet.stream()) == audio_index {
                for w in workers {
                    w.jobs.send(Job::Audio(packet.clone())).map_err(|_| {
                        TranscodeError::WorkerGone {
                            profile: w.profile.clone(),
                        }
                    })?;
                }
            }
        }
        let _ = decoder.send_eof();
        let result = deliver(decoder, &mut stats);
        // Ready the decoder for the next segment of the stream.
        decoder.flush();
        result.map(|_| stats)
    }
}

impl Drop for LadderTranscoder {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the job channel ends the worker's loop.
            let (dead, _) = sync_channel(0);
            drop(std::mem::replace(&mut w.jobs, dead));
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[derive(Default)]
struct DecodeStats {
    packets: u32,
    frames: u64,
    errors: u32,
    first_pts: Option<i64>,
    last_pts: Option<i64>,
    width: u32,
    height: u32,
}

impl From<OpenError> for TranscodeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Empty => TranscodeError::EmptySegment,
            OpenError::Truncated { len } => TranscodeError::TruncatedSegment { len },
            OpenError::Demux(e) => TranscodeError::Demux(e),
        }
    }
}

/// Copies a hardware (CUDA) frame to system memory; software frames pass through as references.
fn download_if_hw(f: &frame::Video) -> Result<frame::Video, TranscodeError> {
    unsafe {
        if (*f.as_ptr()).hw_frames_ctx.is_null() {
            return Ok(frame::Video::wrap(av_frame_clone(f.as_ptr())));
        }
        let mut sw = frame::Video::empty();
        let ret = av_hwframe_transfer_data(sw.as_mut_ptr(), f.as_ptr(), 0);
        if ret < 0 {
            return Err(TranscodeError::Decoder {
                stage: "downloading a GPU frame",
                source: ret.into(),
            });
        }
        av_frame_copy_props(sw.as_mut_ptr(), f.as_ptr());
        Ok(sw)
    }
}
