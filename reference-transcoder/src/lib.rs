//! The media engine: stamped synthetic sources, decode → scale → encode ladders, hardware benchmark.
//!
//! Everything is built on FFmpeg's libraries through `ffmpeg-next`: the stack's transcoder, the
//! quality probe and `lpt bench` all share this one implementation so that their numbers agree.
//!
//! Entry points:
//! - [`source::generate`] makes the stamped source once; [`source::EncodedSource::flv_packets`]
//!   feeds an RTMP publisher, [`source::EncodedSource::ts_segments`] gives key-frame-cut
//!   MPEG-TS segments.
//! - [`stamp::read_stamp`] reads a frame's stamp back; [`stamp::BAND_HEIGHT_FRACTION`] is the
//!   bottom band quality scoring should leave out.
//! - [`ladder::LadderTranscoder`] is one stream's transcoding session
//!   ([`ladder::parse_ladder`], [`ladder::parse_json_profiles`] build its ladder).
//! - [`decode::VideoDecoder`] is the one video decoder every reader of media goes through;
//!   [`probe::decode_bytes`] / [`probe::decode_file`] stream its frames (with stamps) to a
//!   callback and summarise the segment.
//! - [`bench::run_bench`] runs `lpt bench` over an [`input::BenchInput`].

pub mod bench;
pub mod decode;
pub mod encode;
pub mod h264;
pub mod input;
pub mod ladder;
mod log;
pub mod memio;
pub mod probe;
pub mod source;
pub mod stamp;
#[cfg(feature = "wire")]
pub mod wire;

pub use bench::{BenchMode, BenchOptions, BenchSummary, BenchedSegment, run_bench};
pub use input::BenchInput;
pub use ladder::{
    LadderOptions, LadderOutput, LadderTranscoder, Profile, RenditionOutput, TranscodeError,
};
pub use probe::{
    DecodeError, DecodeSummary, DecodedFrame, MediaInfo, decode_bytes, decode_file, probe_bytes,
    probe_file,
};
pub use source::{
    EncodedSource, FlvPacket, MediaKind, SourceConfig, SourceError, TsSegment, VideoFormat,
    generate,
};
pub use stamp::{BAND_HEIGHT_FRACTION, FrameStamp, read_stamp, write_stamp};

/// Initialises FFmpeg once per process, its log (warnings and worse) going through `tracing`
/// (target `libav`, see `log`).
pub fn init_ffmpeg() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        log::install();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Warning);
    });
}

/// Tunes glibc's allocator for a long-running transcoding process: large blocks (encoder frame
/// pools, which libx264 reallocates whenever an encoder is reopened at a segment boundary) stay
/// in the heap for reuse instead of being unmapped and faulted back in, zeroed, next segment.
/// Process-wide, so it is the binary's choice (`lpt bench`, the node's transcoder), not done
/// implicitly by this library. Returns whether glibc accepted the settings.
pub fn tune_allocator_for_transcoding() -> bool {
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20) == 1
    }
}
