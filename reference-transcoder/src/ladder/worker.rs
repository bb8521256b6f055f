//! One rendition's worker thread: frame-rate conversion, scaling, encoding and muxing.
//!
//! Design: the worker owns everything that is not `Send` in ffmpeg-next (the scaler) and keeps
//! its encoder across segments; it talks to the session only through a bounded job channel (so
//! a slow encoder applies back-pressure instead of buffering frames) and a reply channel.

use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use ffmpeg_next::codec;
use ffmpeg_next::ffi::*;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Dictionary, Packet, Rational, frame, picture};

use super::{EncoderPath, Gop, LadderOptions, Profile, RenditionOutput, TranscodeError};
use crate::encode::receive_packet;
use crate::memio::{MemoryMuxer, StreamSpec};

const TS_TIME_BASE: Rational = Rational(1, 90_000);

pub(super) struct SegmentStart {
    pub video_time_base: Rational,
    pub source_fps: Rational,
    pub audio: Option<(codec::Parameters, Rational)>,
}

pub(super) enum Job {
    Begin(SegmentStart),
    Frame(frame::Video),
    Audio(Packet),
    End,
}

pub(super) struct WorkerConfig {
    pub profile: Profile,
    pub options: LadderOptions,
    pub path: EncoderPath,
}

struct OpenEncoder {
    encoder: ffmpeg_next::encoder::Video,
    fps: Rational,
    reusable: bool,
}

struct Segment {
    video_tb: Rational,
    source_fps: Rational,
    /// Presentation time of the newest frame shown, to fill the segment's last frame period.
    last_frame_secs: Option<f64>,
    /// Gap between the last two frames shown: the last frame's duration for VFR input.
    last_frame_gap: Option<f64>,
    audio_tb: Rational,
    muxer: Option<MemoryMuxer>,
    audio_stream: Option<usize>,
    /// Encoded packets muxed: the exact frame count of the rendition.
    packets: u64,
    busy: Duration,
    first_frame: bool,
    error: Option<TranscodeError>,
}

struct State {
    config: WorkerConfig,
    width: u32,
    height: u32,
    encoder: Option<OpenEncoder>,
    scaler: Option<scaling::Context>,
    scaled: frame::Video,
    next_slot: Option<i64>,
    packet: Packet,
}

pub(super) fn run(
    config: WorkerConfig,
    jobs: Receiver<Job>,
    done: SyncSender<Result<RenditionOutput, TranscodeError>>,
) {
    // x264 with 4:2:0 needs even dimensions; an odd custom size is rounded down.
    let width = config.profile.width & !1;
    let height = config.profile.height & !1;
    let mut state = State {
        config,
        width,
        height,
        encoder: None,
        scaler: None,
        scaled: frame::Video::new(Pixel::YUV420P, width, height),
        next_slot: None,
        packet: Packet::empty(),
    };
    let mut segment: Option<Segment> = None;
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Begin(start) => segment = Some(state.begin(start)),
            Job::Frame(f) => {
                if let Some(seg) = segment.as_mut().filter(|s| s.error.is_none()) {
                    let t = Instant::now();
                    if let Err(e) = state.frame(seg, &f) {
                        seg.error = Some(e);
                    }
                    seg.busy += t.elapsed();
                }
            }
            Job::Audio(mut p) => {
                if let Some(seg) = segment.as_mut().filter(|s| s.error.is_none())
                    && let (Some(mux), Some(index)) = (seg.muxer.as_mut(), seg.audio_stream)
                {
                    // Audio that the muxer refuses (bad timestamps) is dropped, not fatal.
                    let _ = mux.write(&mut p, index, seg.audio_tb);
                }
            }
            Job::End => {
                let reply = match segment.take() {
                    Some(seg) => state.end(seg),
                    None => Err(TranscodeError::WorkerGone {
                        profile: state.config.profile.name.clone(),
                    }),
                };
                if done.send(reply).is_err() {
                    return;
                }
            }
        }
    }
}

impl State {
    fn profile_name(&self) -> String {
        self.config.profile.name.clone()
    }

    fn enc_err(
        &self,
        stage: &'static str,
    ) -> impl FnOnce(ffmpeg_next::Error) -> TranscodeError + use<> {
        let profile = self.profile_name();
        move |source| TranscodeError::Encoder {
            profile,
            stage,
            source,
        }
    }

    fn begin(&mut self, start: SegmentStart) -> Segment {
        let t = Instant::now();
        let mut seg = Segment {
            video_tb: start.video_time_base,
            source_fps: start.source_fps,
            last_frame_secs: None,
            last_frame_gap: None,
            audio_tb: start.audio.as_ref().map(|a| a.1).unwrap_or(TS_TIME_BASE),
            muxer: None,
            audio_stream: None,
            packets: 0,
            busy: Duration::ZERO,
            first_frame: true,
            error: None,
        };
        let fps = match self.config.profile.fps() {
            Some((n, d)) => Rational(n as i32, d as i32),
            None => start.source_fps,
        };
        if self.encoder.as_ref().is_none_or(|e| e.fps != fps) {
            self.next_slot = None;
            match self.open_encoder(fps) {
                Ok(e) => self.encoder = Some(e),
                Err(e) => {
                    seg.error = Some(e);
                    return seg;
                }
            }
        }
        match self.open_muxer(start.audio.as_ref()) {
            Ok((mux, audio)) => {
                seg.muxer = Some(mux);
                seg.audio_stream = audio;
            }
            Err(e) => seg.error = Some(e),
        }
        seg.busy += t.elapsed();
        seg
    }

    fn open_muxer(
        &self,
        audio: Option<&(codec::Parameters, Rational)>,
    ) -> Result<(MemoryMuxer, Option<usize>), TranscodeError> {
        let err = self.enc_err("creating the MPEG-TS muxer");
        let build = || -> Result<_, ffmpeg_next::Error> {
            let mut mux = MemoryMuxer::new("mpegts")?;
            mux.add_stream(&StreamSpec::H264 {
                width: self.width,
                height: self.height,
                time_base: TS_TIME_BASE,
            })?;
            let a = match audio {
                Some((params, tb)) => Some(mux.add_stream_copy(params, *tb)?),
                None => None,
            };
            mux.write_header()?;
            Ok((mux, a))
        };
        build().map_err(err)
    }

    fn open_encoder(&self, fps: Rational) -> Result<OpenEncoder, TranscodeError> {
        let p = &self.config.profile;
        let name = self.config.path.encoder_name();
        let codec =
            ffmpeg_next::encoder::find_by_name(name).ok_or(TranscodeError::EncoderMissing(name))?;
        let ctx = codec::context::Context::new_with_codec(codec);
        let mut enc = ctx
            .encoder()
            .video()
            .map_err(self.enc_err("creating the encoder"))?;
        enc.set_width(self.width);
        enc.set_height(self.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(fps.invert());
        enc.set_frame_rate(Some(fps));
        enc.set_bit_rate(p.bitrate as usize);
        let fps_f = f64::from(fps);
        let keyint = match p.gop {
            Gop::IntraOnly => Some(1),
            Gop::Seconds(s) => Some(((s * fps_f).round() as u32).max(1)),
            Gop::Default => None,
        };
        if let Some(k) = keyint {
            enc.set_gop(k);
        }
        let mut opts = Dictionary::new();
        opts.set(
            "threads",
            &encoder_threads(self.config.options.encoder_threads).to_string(),
        );
        opts.set("forced-idr", "1");
        if let Some(profile) = p.h264_profile.x264_name() {
            opts.set("profile", profile);
        }
        match self.config.path {
            EncoderPath::NvdecNvenc => {
                opts.set("preset", "p4");
                opts.set("tune", "ll");
            }
            _ => {
                opts.set("preset", &self.config.options.x264_preset);
                let mut params = Vec::new();
                if let Some(k) = keyint {
                    params.push(format!("keyint={k}:min-keyint={k}"));
                }
                if p.h264_profile == super::H264Profile::ConstrainedHigh {
                    params.push("bframes=0".to_string());
                }
                if !params.is_empty() {
                    opts.set("x264-params", &params.join(":"));
                }
            }
        }
        let encoder = enc
            .open_with(opts)
            .map_err(self.enc_err("opening the encoder"))?;
        let reusable =
            unsafe { (*codec.as_ptr()).capabilities & AV_CODEC_CAP_ENCODER_FLUSH as i32 != 0 };
        Ok(OpenEncoder {
            encoder,
            fps,
            reusable,
        })
    }

    /// Frame-rate conversion by timestamp: each output slot (1/fps apart) shows the newest
    /// frame at or before it; surplus frames are dropped, gaps are filled by repeating.
    fn frame(&mut self, seg: &mut Segment, f: &frame::Video) -> Result<(), TranscodeError> {
        let fps = self
            .encoder
            .as_ref()
            .map(|e| e.fps)
            .unwrap_or(Rational(30, 1));
        let pts = f.pts().unwrap_or(0);
        let secs = pts as f64 * f64::from(seg.video_tb);
        let slot = (secs * f64::from(fps)).round() as i64;
        let one_second = f64::from(fps).ceil() as i64;
        let next = match self.next_slot {
            // A jump of more than a second either way is a discontinuity, not a gap to fill.
            Some(n) if slot >= n - one_second && slot <= n + one_second => n,
            _ => slot,
        };
        if slot < next {
            return Ok(());
        }
        self.scale(f)?;
        if let Some(prev) = seg.last_frame_secs.filter(|&p| secs > p) {
            seg.last_frame_gap = Some(secs - prev);
        }
        seg.last_frame_secs = Some(secs);
        for s in next..=slot {
            self.encode_slot(seg, s)?;
        }
        self.next_slot = Some(slot + 1);
        Ok(())
    }

    fn scale(&mut self, f: &frame::Video) -> Result<(), TranscodeError> {
        let stale = self.scaler.as_ref().is_none_or(|s| {
            let i = s.input();
            i.width != f.width() || i.height != f.height() || i.format != f.format()
        });
        if stale {
            let scaler = scaling::Context::get(
                f.format(),
                f.width(),
                f.height(),
                Pixel::YUV420P,
                self.width,
                self.height,
                self.config.options.scale.flags(),
            )
            .map_err(self.enc_err("creating the scaler"))?;
            self.scaler = Some(scaler);
        }
        // The encoder may still hold a reference to the previous picture.
        let ret = unsafe { av_frame_make_writable(self.scaled.as_mut_ptr()) };
        if ret < 0 {
            return Err(self.enc_err("allocating a frame")(ret.into()));
        }
        let scaler = self.scaler.as_mut().expect("set above");
        let result = scaler.run(f, &mut self.scaled);
        result.map_err(self.enc_err("scaling"))
    }

    fn encode_slot(&mut self, seg: &mut Segment, slot: i64) -> Result<(), TranscodeError> {
        let err = self.enc_err("encoding");
        let enc = self.encoder.as_mut().expect("encoder opened in begin");
        self.scaled.set_pts(Some(slot));
        self.scaled.set_kind(if seg.first_frame {
            picture::Type::I
        } else {
            picture::Type::None
        });
        seg.first_frame = false;
        enc.encoder.send_frame(&self.scaled).map_err(err)?;
        self.drain(seg)
    }

    fn drain(&mut self, seg: &mut Segment) -> Result<(), TranscodeError> {
        let err = self.enc_err("muxing");
        let encode_err = self.enc_err("encoding");
        let enc = self.encoder.as_mut().expect("encoder opened in begin");
        let tb = enc.fps.invert();
        loop {
            match receive_packet(&mut enc.encoder, &mut self.packet) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(encode_err(e)),
            }
            seg.packets += 1;
            if let Some(mux) = seg.muxer.as_mut()
                && let Err(e) = mux.write(&mut self.packet, 0, tb)
            {
                return Err(err(e));
            }
        }
        Ok(())
    }

    /// The last source frame lasts as long as the gap before it (one frame period for constant
    /// rate input): repeat it into the output slots that covers (30 → 60 fps gives 120 frames
    /// for 2 s, not 119).
    fn fill_to_segment_end(&mut self, seg: &mut Segment) -> Result<(), TranscodeError> {
        let (Some(last), Some(next), Some(enc)) =
            (seg.last_frame_secs, self.next_slot, self.encoder.as_ref())
        else {
            return Ok(());
        };
        let duration = seg
            .last_frame_gap
            .unwrap_or(f64::from(seg.source_fps.invert()));
        let end = ((last + duration) * f64::from(enc.fps)).round() as i64;
        for s in next..end {
            self.encode_slot(seg, s)?;
        }
        self.next_slot = Some(end.max(next));
        Ok(())
    }

    fn end(&mut self, mut seg: Segment) -> Result<RenditionOutput, TranscodeError> {
        let t = Instant::now();
        if seg.error.is_none()
            && let Err(e) = self.fill_to_segment_end(&mut seg)
        {
            seg.error = Some(e);
        }
        if seg.error.is_none() {
            if let Some(enc) = self.encoder.as_mut() {
                let _ = enc.encoder.send_eof();
            }
            if let Err(e) = self.drain(&mut seg) {
                seg.error = Some(e);
            }
        }
        // Ready the encoder for the next segment: flush if the codec allows, else reopen later.
        match self.encoder.as_mut() {
            Some(enc) if enc.reusable && seg.error.is_none() => unsafe {
                avcodec_flush_buffers(enc.encoder.as_mut_ptr())
            },
            _ => self.encoder = None,
        }
        if let Some(e) = seg.error {
            return Err(e);
        }
        let data = match seg.muxer.take() {
            Some(mux) => mux
                .finish()
                .map_err(self.enc_err("finishing the MPEG-TS"))?,
            None => Vec::new(),
        };
        seg.busy += t.elapsed();
        let fps = self.encoder.as_ref().map(|e| e.fps);
        let (fps_num, fps_den) = match (self.config.profile.fps(), fps) {
            (Some((n, d)), _) => (n, d),
            (None, Some(r)) => (r.numerator() as u32, r.denominator() as u32),
            (None, None) => (0, 1),
        };
        Ok(RenditionOutput {
            profile: self.profile_name(),
            width: self.width,
            height: self.height,
            fps_num,
            fps_den,
            frames: seg.packets,
            pixels: seg.packets * self.width as u64 * self.height as u64,
            encode_time: seg.busy,
            data,
        })
    }
}

/// Threads for one encoder: the configured count, or 3 × cores (at most 16).
fn encoder_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (3 * cores).min(16)
}
