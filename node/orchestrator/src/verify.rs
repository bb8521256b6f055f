//! Spot-checking a remote transcoder's renditions against the source segment it was sent.
//!
//! A remote transcoder is untrusted: it may return a rendition of the wrong size, drop frames,
//! starve the encoder of bits, or return another segment's pictures. [`check_rendition`] decides
//! cheaply whether a returned rendition is what the profile asks for and shows the source's
//! pictures. It is pure and synchronous (the caller runs it on a blocking thread).
//!
//! The model is go-livepeer's: its verifier checks the pixel count a transcoder claims (here the
//! decoded resolution and frame count, which are what pixels are billed on), and lpms compares
//! a rendition with the source by a perceptual signature. Instead of a signature this checker
//! measures the mean luma PSNR of the rendition's frames against the time-matched source frames
//! scaled to the rendition's size (bicubic, as the ladder transcoder scales), which separates an
//! honest encode from a starved one as well as from other pictures.
//!
//! Cost: the source is decoded once ([`SourceFrames::decode`]), keeping only its luma planes, and
//! reused for every rendition of the segment; each rendition is decoded once; only the source
//! luma of compared frames is scaled, and only luma is compared. Every rendition frame is
//! decoded (so resolution and frame count cover every frame), and every `compare_every`-th frame
//! is compared. Decoding dominates: `benches/spot_check.rs` measures the whole check of a 720p30
//! 2 s segment's 4-rung ladder against transcoding it.
//!
//! Frame matching: at the source's frame rate, rendition frame `j` (presentation order) is
//! compared with source frame `j + k`, where the shift `k` (−1, 0 or 1: a segment cut from a live
//! stream may start its renditions a frame off its source) is the best of the three on the first
//! compared frame, then held. At another rate it is compared with the best matching of the
//! few source frames around the one the ladder transcoder's timestamp frame-rate conversion puts
//! in output slot `j` (the newest at or before `(j + ½) / rendition fps`; which one exactly
//! depends on the segment's absolute timestamps), which costs a few more scalings per compared
//! frame for such renditions only.
//!
//! Memory: the source's luma planes for the whole segment (a 2 s 720p30 segment holds 55 MB).

use std::time::{Duration, Instant};

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video;
use ffmpeg_next::software::scaling;
use reference_transcoder::Profile;
use reference_transcoder::decode::{
    DecodeOptions, DecoderThreads, Demuxer, ReadErrors, VideoDecoder,
};
use reference_transcoder::memio::open_container;
use reference_transcoder::stamp::luma_is_first_plane;

/// Per-frame PSNR of identical pictures (an MSE of 0 would give infinity).
pub const MAX_PSNR_DB: f64 = 100.0;

/// What a rendition must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Mean luma PSNR (dB) over the compared frames, at least.
    pub min_psnr_db: f64,
    /// How far the rendition's frame count may be from the expected count.
    pub frame_tolerance: u32,
    /// Compare every `compare_every`-th rendition frame (frames `o`, `o + k`, `o + 2k`, … with
    /// `o = compare_offset % k`); 1 compares all. Every frame is still decoded and its size
    /// checked, and all count towards the frame count.
    pub compare_every: u32,
    /// Which frames of each `compare_every` are compared. A transcoder that knew which frames
    /// are compared could spoil the others unseen, so a caller should pick it at random per
    /// segment (default 0).
    pub compare_offset: u32,
    /// Decode errors the rendition may have (a packet the decoder rejects, a damaged frame)
    /// before it is [`CheckFailure::Undecodable`].
    pub max_decode_errors: u64,
}

impl Default for CheckOptions {
    /// Calibrated with real encodes (see the constants' documentation).
    fn default() -> Self {
        CheckOptions {
            min_psnr_db: DEFAULT_MIN_PSNR_DB,
            frame_tolerance: 1,
            compare_every: DEFAULT_COMPARE_EVERY,
            compare_offset: 0,
            max_decode_errors: 0,
        }
    }
}

/// The default [`CheckOptions::min_psnr_db`].
///
/// Measured on the reference transcoder's stamped source (testsrc2 + Game of Life + temporal
/// noise 6: costly to encode, so honest renditions score low), renditions encoded by the ladder
/// transcoder (libx264 veryfast), mean luma PSNR over several runs (each run makes new noise):
/// - honest, 720p30 2 s segment (`benches/spot_check.rs`): 720p 4 Mb/s 46.0-46.5 dB,
///   480p (854x480) 1.5 Mb/s 33.9-35.3, 360p 1.2 Mb/s 39.2-40.2, 240p 600 kb/s 28.6-30.1;
///   426x240 source, 144p 400 kb/s (the unit tests): 28.1-29.8 at 30 fps, 34.1 at 15 fps;
/// - the same encodes at 1/20 of the bit rate: 720p 21.8-22.6 dB, 480p 18.5-18.8, 360p
///   19.1-19.5, 240p 18.9; 144p 15.2-16.4;
/// - the next segment's renditions (the same stream 2 s later): 14.6-15.3 dB at 720p-240p;
///   144p 13.3-13.5.
///
/// - in the embedded stack (`scenarios/pools/honest.toml`: a 720p source published over RTMP,
///   segmented by the broadcaster, transcoded by a remote transcoder), honest 240p renditions
///   score 24.6-24.7 dB: below the bench's, on segments of the live stream.
///
/// 21.5 dB sits 3.1 dB under the lowest honest rendition and 2 dB over the best starved one at
/// 480p and below; a 720p rung starved to 1/20 of its bit rate still scores about 22 dB on this
/// content and passes. PSNR depends on the content: easy content scores higher whatever the bit
/// rate, so a starved encode of easy content may pass; the threshold catches gross starvation
/// and foreign pictures, not a modest bit-rate cut (the stream probe's VMAF against the
/// reference transcoder measures that).
pub const DEFAULT_MIN_PSNR_DB: f64 = 21.5;

/// The default [`CheckOptions::compare_every`]: every 4th frame (15 of a 2 s 30 fps segment).
/// Decoding dominates the cost; comparing every frame instead of every 4th adds the bicubic
/// scaling and PSNR of 3 × 45 more frames, about 10 % more CPU for a 720p 4-rung ladder
/// (check ÷ transcode CPU about 0.32 instead of 0.29 in `benches/spot_check.rs`). A compared
/// frame's PSNR stays within ~2 dB of the segment's mean on honest encodes, so 15 frames decide as well.
pub const DEFAULT_COMPARE_EVERY: u32 = 4;

/// What a passing check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Frames decoded from the rendition.
    pub frames: u32,
    /// The rendition's size (every frame's).
    pub width: u32,
    pub height: u32,
    /// Frames the source's frames give at the profile's frame rate.
    pub expected_frames: u32,
    /// Mean luma PSNR over the compared frames.
    pub psnr_db: f64,
    /// The lowest compared frame's luma PSNR.
    pub min_frame_psnr_db: f64,
    /// Frames compared with the source.
    pub compared_frames: u32,
    /// Decode errors tolerated (at most [`CheckOptions::max_decode_errors`]).
    pub decode_errors: u64,
    /// Wall time of this check (not of the source's decode).
    pub elapsed: Duration,
}

/// Why a rendition (or the source) fails the check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckFailure {
    #[error("{0}")]
    Undecodable(String),
    #[error(
        "rendition {profile} is {width}x{height} (frame {frame}), the profile asks {expected_width}x{expected_height}"
    )]
    WrongResolution {
        profile: String,
        /// The first frame of the wrong size, from 0.
        frame: u32,
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },
    #[error(
        "rendition {profile} has {frames} frames, the source's {source_frames} frames at {fps:.3} fps give {expected} (± {tolerance})"
    )]
    WrongFrameCount {
        profile: String,
        frames: u32,
        expected: u32,
        tolerance: u32,
        source_frames: u32,
        fps: f64,
    },
    #[error(
        "rendition {profile} does not show the source's pictures: mean luma PSNR {psnr_db:.1} dB over {compared} frames, at least {min:.1} dB needed"
    )]
    LowSimilarity {
        profile: String,
        psnr_db: f64,
        min: f64,
        compared: u32,
    },
}

/// A segment's source decoded once, reused for every rendition of that segment.
pub struct SourceFrames {
    /// The luma plane of every source frame, as GRAY8 frames, in presentation order.
    lumas: Vec<Video>,
    width: u32,
    height: u32,
    /// Frames per second of the source.
    fps: f64,
    /// Last PTS − first PTS + one frame period.
    duration_secs: f64,
    /// Wall time of the decode.
    pub elapsed: Duration,
}

impl std::fmt::Debug for SourceFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFrames")
            .field("frames", &self.lumas.len())
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("fps", &self.fps)
            .field("duration_secs", &self.duration_secs)
            .finish()
    }
}

/// Every input is decoded with frame threads: the caller's blocking thread is the only one
/// waiting on it. A demuxer error ends the input; decode errors are counted.
const DECODE: DecodeOptions = DecodeOptions {
    threads: DecoderThreads::Frame,
    read_errors: ReadErrors::EndInput,
};

fn open_decoder(ts: &[u8], what: &str) -> Result<VideoDecoder, CheckFailure> {
    reference_transcoder::init_ffmpeg();
    let input = open_container(ts.to_vec())
        .map_err(|e| CheckFailure::Undecodable(format!("{what} cannot be decoded: {e}")))?;
    VideoDecoder::open(Demuxer::Memory(input), DECODE)
        .map_err(|e| CheckFailure::Undecodable(format!("{what} cannot be decoded: {e}")))
}

/// A scaler for one input shape.
struct Scaler {
    input: (Pixel, u32, u32),
    output: (u32, u32),
    context: scaling::Context,
}

impl Scaler {
    /// Scales `frame` to `size` as GRAY8 into `out`, reusing the context when the shape is the
    /// same as last time.
    fn run(
        cache: &mut Option<Scaler>,
        frame: &Video,
        size: (u32, u32),
        out: &mut Video,
    ) -> Result<(), String> {
        let input = (frame.format(), frame.width(), frame.height());
        if cache
            .as_ref()
            .is_none_or(|s| s.input != input || s.output != size)
        {
            let context = scaling::Context::get(
                input.0,
                input.1,
                input.2,
                Pixel::GRAY8,
                size.0,
                size.1,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| format!("cannot scale {input:?} to {size:?}: {e}"))?;
            *cache = Some(Scaler {
                input,
                output: size,
                context,
            });
        }
        let scaler = cache.as_mut().expect("scaler was just ensured");
        scaler
            .context
            .run(frame, out)
            .map_err(|e| format!("cannot scale {input:?} to {size:?}: {e}"))
    }
}

/// Copies (or converts) the luma of `frame` into a GRAY8 frame of the same size.
fn luma_copy(frame: &Video, converter: &mut Option<Scaler>) -> Result<Video, String> {
    let (w, h) = (frame.width(), frame.height());
    let mut out = Video::new(Pixel::GRAY8, w, h);
    if luma_is_first_plane(frame.format()) {
        let (src_stride, dst_stride) = (frame.stride(0), out.stride(0));
        let src = frame.data(0);
        let dst = out.data_mut(0);
        for y in 0..h as usize {
            dst[y * dst_stride..y * dst_stride + w as usize]
                .copy_from_slice(&src[y * src_stride..y * src_stride + w as usize]);
        }
    } else {
        Scaler::run(converter, frame, (w, h), &mut out)?;
    }
    Ok(out)
}

/// Luma PSNR of two 8-bit planes of `width` × `height`.
fn psnr(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize, width: usize, height: usize) -> f64 {
    let mut sse: u64 = 0;
    for y in 0..height {
        let ra = &a[y * a_stride..y * a_stride + width];
        let rb = &b[y * b_stride..y * b_stride + width];
        // At most 65025 per pixel, so a row of up to 66051 pixels fits in u32; wrapping
        // arithmetic keeps overflow checks out of the loop so it vectorises.
        let row = ra.iter().zip(rb).fold(0u32, |acc, (&p, &q)| {
            let d = u32::from(p.abs_diff(q));
            acc.wrapping_add(d.wrapping_mul(d))
        });
        sse += u64::from(row);
    }
    if sse == 0 {
        return MAX_PSNR_DB;
    }
    let mse = sse as f64 / (width * height) as f64;
    (10.0 * (255.0 * 255.0 / mse).log10()).min(MAX_PSNR_DB)
}

impl SourceFrames {
    /// Decodes the source segment (MPEG-TS, or any container FFmpeg probes), keeping the luma
    /// plane of every frame.
    pub fn decode(source_ts: &[u8]) -> Result<Self, CheckFailure> {
        let started = Instant::now();
        let mut decoder = open_decoder(source_ts, "the source segment")?;
        let mut frame = Video::empty();
        let mut lumas = Vec::new();
        let mut converter = None;
        let (mut first_pts, mut last_pts) = (None::<i64>, None::<i64>);
        loop {
            match decoder.next_frame(&mut frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    return Err(CheckFailure::Undecodable(format!(
                        "the source segment cannot be decoded: {e}"
                    )));
                }
            }
            if let Some(pts) = frame.timestamp().or(frame.pts()) {
                first_pts = Some(first_pts.map_or(pts, |f| f.min(pts)));
                last_pts = Some(last_pts.map_or(pts, |l| l.max(pts)));
            }
            let luma = luma_copy(&frame, &mut converter).map_err(|e| {
                CheckFailure::Undecodable(format!("the source segment cannot be read: {e}"))
            })?;
            if let Some(first) = lumas.first().map(|f: &Video| (f.width(), f.height()))
                && first != (luma.width(), luma.height())
            {
                return Err(CheckFailure::Undecodable(format!(
                    "the source segment changes size from {}x{} to {}x{}",
                    first.0,
                    first.1,
                    luma.width(),
                    luma.height()
                )));
            }
            lumas.push(luma);
        }
        let Some((width, height)) = lumas.first().map(|f| (f.width(), f.height())) else {
            return Err(CheckFailure::Undecodable(
                "the source segment has no decodable frame".into(),
            ));
        };
        let n = lumas.len();
        let tb = f64::from(decoder.time_base);
        let span = match (first_pts, last_pts) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 * tb,
            _ => 0.0,
        };
        let fps = match decoder.fps.map(f64::from) {
            Some(fps) if fps.is_finite() && fps > 0.0 => fps,
            _ if n > 1 && span > 0.0 => (n - 1) as f64 / span,
            _ => 30.0,
        };
        let duration_secs = if span > 0.0 {
            span + 1.0 / fps
        } else {
            n as f64 / fps
        };
        Ok(SourceFrames {
            lumas,
            width,
            height,
            fps,
            duration_secs,
            elapsed: started.elapsed(),
        })
    }

    /// Frames decoded.
    pub fn frames(&self) -> u32 {
        self.lumas.len() as u32
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The source's frame rate (declared, else from its timestamps).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The source's duration from its timestamps (last − first + one frame).
    pub fn duration_secs(&self) -> f64 {
        self.duration_secs
    }

    /// The rendition frame rate `profile` gives this source: its own, or the source's.
    fn rendition_fps(&self, profile: &Profile) -> f64 {
        match profile.fps() {
            Some((num, den)) => f64::from(num) / f64::from(den),
            None => self.fps,
        }
    }

    /// Frames the source gives at `profile`'s frame rate.
    pub fn expected_frames(&self, profile: &Profile) -> u32 {
        match profile.fps() {
            None => self.frames(),
            Some(_) => (self.duration_secs * self.rendition_fps(profile)).round() as u32,
        }
    }

    /// The source frames rendition frame `j` may show (none past the source's end). At the
    /// source's rate, frame `j` and its neighbours. At another rate, output slot `j` shows the
    /// newest source frame at or before its middle, `(j + ½) / rendition fps` (the ladder transcoder's frame-rate
    /// conversion), but where the slots start depends on the segment's absolute timestamps, so
    /// the source frames within `ceil(source fps / rendition fps)` of that one are candidates.
    fn source_candidates(&self, j: u32, rendition_fps: f64) -> std::ops::Range<usize> {
        let n = self.lumas.len();
        if (rendition_fps - self.fps).abs() < 1e-9 {
            // Its neighbours too: a segment cut from a live stream can start its renditions a
            // frame off its source (timestamps in milliseconds at 30 fps, and encoder delay),
            // which would compare every frame with the next picture.
            let j = j as usize;
            return j.saturating_sub(1).min(n)..(j + 2).min(n);
        }
        let ratio = self.fps / rendition_fps;
        let nominal = ((f64::from(j) + 0.5) * ratio + 1e-9).floor() as usize;
        if nominal >= n + ratio.ceil() as usize {
            return n..n;
        }
        let reach = ratio.ceil().max(1.0) as usize;
        nominal.saturating_sub(reach).min(n)..(nominal + reach + 1).min(n)
    }
}

/// [`check_rendition`] for every rendition of one segment, each on a thread of its own (the
/// source's pictures are shared), so checking a ladder takes about as long as its largest rung
/// rather than all of them in turn; results in the renditions' order.
pub fn check_renditions(
    source: &SourceFrames,
    renditions: &[(&[u8], &Profile)],
    options: &CheckOptions,
) -> Vec<Result<CheckReport, CheckFailure>> {
    std::thread::scope(|scope| {
        let checks: Vec<_> = renditions
            .iter()
            .map(|(data, profile)| {
                scope.spawn(move || check_rendition(source, data, profile, options))
            })
            .collect();
        checks
            .into_iter()
            .zip(renditions)
            .map(|(check, (_, profile))| {
                check.join().unwrap_or_else(|_| {
                    Err(CheckFailure::Undecodable(format!(
                        "rendition {}: the check panicked",
                        profile.name
                    )))
                })
            })
            .collect()
    })
}

/// Checks one rendition of the segment `source` was decoded from against `profile`: it
/// decodes, every frame has the profile's size, its frame count is the source's at the profile's
/// frame rate (± `frame_tolerance`) and its compared frames' mean luma PSNR against the
/// time-matched source frames is at least `min_psnr_db`. Failures come in that order; a wrong
/// size stops the decode at the first wrong frame.
pub fn check_rendition(
    source: &SourceFrames,
    rendition_ts: &[u8],
    profile: &Profile,
    options: &CheckOptions,
) -> Result<CheckReport, CheckFailure> {
    let started = Instant::now();
    let what = format!("rendition {}", profile.name);
    let mut decoder = open_decoder(rendition_ts, &what)?;
    let (pw, ph) = (profile.width, profile.height);
    let rendition_fps = source.rendition_fps(profile);
    let every = options.compare_every.max(1);
    let offset = options.compare_offset % every;
    let mut frame = Video::empty();
    let mut converter = None;
    let mut scaler = None;
    let mut scaled = Video::new(Pixel::GRAY8, pw, ph);
    let same_size = (source.width, source.height) == (pw, ph);
    let (mut frames, mut compared) = (0u32, 0u32);
    let (mut psnr_sum, mut psnr_min) = (0.0f64, f64::INFINITY);
    // At the source's rate the rendition is the source a whole number of frames off, if at all:
    // found on the first compared frame, then held, so each later frame is compared once.
    let same_rate = (rendition_fps - source.fps).abs() < 1e-9;
    let mut shift: Option<isize> = None;
    let undecodable = |e: String| CheckFailure::Undecodable(format!("{what}: {e}"));
    loop {
        match decoder.next_frame(&mut frame) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(undecodable(e.to_string())),
        }
        let j = frames;
        frames += 1;
        if (frame.width(), frame.height()) != (pw, ph) {
            return Err(CheckFailure::WrongResolution {
                profile: profile.name.clone(),
                frame: j,
                width: frame.width(),
                height: frame.height(),
                expected_width: pw,
                expected_height: ph,
            });
        }
        if j % every != offset {
            continue;
        }
        let candidates = match shift {
            Some(shift) => {
                let s = (j as isize + shift).clamp(0, source.lumas.len() as isize) as usize;
                s..(s + 1).min(source.lumas.len())
            }
            None => source.source_candidates(j, rendition_fps),
        };
        if candidates.is_empty() {
            // More frames than the source gives: the frame count check says so.
            continue;
        }
        let converted;
        let distorted = if luma_is_first_plane(frame.format()) {
            &frame
        } else {
            converted = luma_copy(&frame, &mut converter).map_err(undecodable)?;
            &converted
        };
        let (mut p, mut best) = (f64::NEG_INFINITY, candidates.start);
        for s in candidates {
            let source_luma = &source.lumas[s];
            let reference = if same_size {
                source_luma
            } else {
                Scaler::run(&mut scaler, source_luma, (pw, ph), &mut scaled)
                    .map_err(undecodable)?;
                &scaled
            };
            let this = psnr(
                distorted.data(0),
                distorted.stride(0),
                reference.data(0),
                reference.stride(0),
                pw as usize,
                ph as usize,
            );
            if this > p {
                (p, best) = (this, s);
            }
        }
        if same_rate && shift.is_none() {
            shift = Some(best as isize - j as isize);
        }
        psnr_sum += p;
        psnr_min = psnr_min.min(p);
        compared += 1;
    }
    if decoder.decode_errors > options.max_decode_errors {
        return Err(undecodable(format!(
            "the decoder reported {} errors ({frames} frames decoded)",
            decoder.decode_errors
        )));
    }
    if frames == 0 {
        return Err(undecodable("no frame could be decoded".into()));
    }
    let expected = source.expected_frames(profile);
    if frames.abs_diff(expected) > options.frame_tolerance {
        return Err(CheckFailure::WrongFrameCount {
            profile: profile.name.clone(),
            frames,
            expected,
            tolerance: options.frame_tolerance,
            source_frames: source.frames(),
            fps: rendition_fps,
        });
    }
    let psnr_db = if compared == 0 {
        0.0
    } else {
        psnr_sum / f64::from(compared)
    };
    if compared == 0 || psnr_db < options.min_psnr_db {
        return Err(CheckFailure::LowSimilarity {
            profile: profile.name.clone(),
            psnr_db,
            min: options.min_psnr_db,
            compared,
        });
    }
    Ok(CheckReport {
        frames,
        width: pw,
        height: ph,
        expected_frames: expected,
        psnr_db,
        min_frame_psnr_db: psnr_min,
        compared_frames: compared,
        decode_errors: decoder.decode_errors,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reference_transcoder::ladder::{Gop, H264Profile};
    use reference_transcoder::{LadderOptions, LadderTranscoder, SourceConfig, TsSegment};

    fn profile(name: &str, width: u32, height: u32, bitrate: u64) -> Profile {
        Profile {
            name: name.into(),
            width,
            height,
            bitrate,
            fps_num: 30,
            fps_den: 1,
            h264_profile: H264Profile::None,
            gop: Gop::Default,
        }
    }

    /// 1 s segments of a 426x240 30 fps stamped source, `seconds` long.
    fn segments(seconds: f64, gop_secs: f64, stream_id: u32) -> Vec<TsSegment> {
        let source = reference_transcoder::generate(&SourceConfig {
            width: 426,
            height: 240,
            duration_secs: seconds,
            gop_secs,
            stream_id,
            audio: false,
            ..SourceConfig::default()
        })
        .expect("source");
        source.ts_segments(gop_secs).expect("segments")
    }

    fn transcode(segment: &[u8], profile: &Profile) -> Vec<u8> {
        let mut t = LadderTranscoder::new(
            vec![profile.clone()],
            LadderOptions {
                encoder_threads: 1,
                ..LadderOptions::default()
            },
        )
        .expect("transcoder");
        let mut out = t.transcode(segment).expect("transcode");
        out.renditions.remove(0).data
    }

    /// The 144p preset's size and bit rate.
    fn p144() -> Profile {
        profile("P144p30fps16x9", 256, 144, 400_000)
    }

    #[test]
    fn honest_rendition_passes_and_degraded_or_foreign_ones_fail() {
        let segs = segments(2.0, 1.0, 7);
        let source = SourceFrames::decode(&segs[0].data).expect("source decodes");
        assert_eq!(source.frames(), 30);
        let p = p144();
        let options = CheckOptions::default();

        let honest = transcode(&segs[0].data, &p);
        let report = check_rendition(&source, &honest, &p, &options).expect("honest passes");
        eprintln!("honest 144p: {report:?}");
        assert_eq!(report.frames, 30);
        assert_eq!(report.expected_frames, 30);
        assert_eq!((report.width, report.height), (256, 144));
        assert!(report.psnr_db >= options.min_psnr_db + 2.0, "{report:?}");

        let starved = Profile {
            bitrate: p.bitrate / 20,
            ..p.clone()
        };
        let degraded = transcode(&segs[0].data, &starved);
        match check_rendition(&source, &degraded, &p, &options) {
            Err(CheckFailure::LowSimilarity { psnr_db, min, .. }) => {
                eprintln!("1/20 bit rate 144p: {psnr_db:.2} dB");
                assert_eq!(min, options.min_psnr_db);
            }
            other => panic!("1/20 bit rate: {other:?}"),
        }

        let foreign = transcode(&segs[1].data, &p);
        match check_rendition(&source, &foreign, &p, &options) {
            Err(CheckFailure::LowSimilarity { psnr_db, .. }) => {
                eprintln!("next segment 144p: {psnr_db:.2} dB")
            }
            other => panic!("another segment: {other:?}"),
        }
    }

    #[test]
    fn other_and_source_frame_rates_match_frames_by_time() {
        let segs = segments(1.0, 1.0, 5);
        let source = SourceFrames::decode(&segs[0].data).expect("source decodes");
        let options = CheckOptions {
            compare_every: 1,
            ..CheckOptions::default()
        };
        let half_rate = Profile {
            fps_num: 15,
            ..p144()
        };
        let rendition = transcode(&segs[0].data, &half_rate);
        let report = check_rendition(&source, &rendition, &half_rate, &options).expect("15 fps");
        // The ladder's slot rounding gives this segment 16 frames: within the tolerance.
        assert_eq!(report.expected_frames, 15, "{report:?}");
        assert!(report.frames.abs_diff(15) <= 1, "{report:?}");
        assert!(report.psnr_db >= options.min_psnr_db + 2.0, "{report:?}");

        let source_rate = Profile {
            fps_num: 0,
            fps_den: 0,
            ..p144()
        };
        let rendition = transcode(&segs[0].data, &source_rate);
        let report =
            check_rendition(&source, &rendition, &source_rate, &options).expect("source rate");
        assert_eq!(
            (report.frames, report.expected_frames),
            (30, 30),
            "{report:?}"
        );
        assert!(report.psnr_db >= options.min_psnr_db + 2.0, "{report:?}");
    }

    #[test]
    fn wrong_size_and_missing_frames_fail() {
        let segs = segments(1.0, 1.0, 9);
        let source = SourceFrames::decode(&segs[0].data).expect("source decodes");
        let p = p144();
        let options = CheckOptions::default();

        let half = Profile {
            width: 128,
            height: 72,
            ..p.clone()
        };
        let small = transcode(&segs[0].data, &half);
        let failure = check_rendition(&source, &small, &p, &options).unwrap_err();
        assert_eq!(
            failure,
            CheckFailure::WrongResolution {
                profile: p.name.clone(),
                frame: 0,
                width: 128,
                height: 72,
                expected_width: 256,
                expected_height: 144,
            }
        );
        assert_eq!(
            failure.to_string(),
            "rendition P144p30fps16x9 is 128x72 (frame 0), the profile asks 256x144"
        );

        // The same stream cut in half-second segments: the first holds 15 of the 30 frames.
        let short = segments(1.0, 0.5, 9);
        let short = transcode(&short[0].data, &p);
        match check_rendition(&source, &short, &p, &options) {
            Err(CheckFailure::WrongFrameCount {
                frames, expected, ..
            }) => assert_eq!((frames, expected), (15, 30)),
            other => panic!("missing frames: {other:?}"),
        }
    }

    #[test]
    fn source_frames_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<SourceFrames>();
    }

    #[test]
    fn garbage_is_undecodable() {
        let segs = segments(1.0, 1.0, 3);
        let source = SourceFrames::decode(&segs[0].data).expect("source decodes");
        let p = p144();
        let garbage: Vec<u8> = (0..188 * 20).map(|i| (i * 7 + 3) as u8).collect();
        assert!(matches!(
            check_rendition(&source, &garbage, &p, &CheckOptions::default()),
            Err(CheckFailure::Undecodable(_))
        ));
        assert!(matches!(
            check_rendition(&source, &[], &p, &CheckOptions::default()),
            Err(CheckFailure::Undecodable(_))
        ));
        assert!(matches!(
            SourceFrames::decode(&garbage),
            Err(CheckFailure::Undecodable(_))
        ));
    }
}
