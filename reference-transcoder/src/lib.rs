//! The media engine: stamped synthetic sources, decode → scale → encode ladders, hardware benchmark.
//!
//! Everything is built on FFmpeg's libraries through `ffmpeg-next`: the stack's transcoder, the
//! quality probe and `lpt bench` all share this one implementation so that their numbers agree.

pub mod bench;
pub mod h264;
pub mod input;
pub mod ladder;
pub mod memio;
pub mod probe;
pub mod source;
pub mod stamp;

pub use bench::{BenchMode, BenchOptions, BenchSummary, SegmentRecord, run_bench};
pub use input::BenchInput;
pub use ladder::{
    LadderOptions, LadderOutput, LadderTranscoder, Profile, RenditionOutput, TranscodeError,
};
pub use probe::{
    DecodeError, DecodedFrame, MediaInfo, decode_bytes, decode_file, probe_bytes, probe_file,
};
pub use source::{
    EncodedSource, FlvPacket, MediaKind, SourceConfig, SourceError, TsSegment, generate,
};
pub use stamp::{BAND_HEIGHT_FRACTION, FrameStamp, read_stamp, write_stamp};

/// Initialises FFmpeg once per process and keeps its logging to errors only.
pub fn init_ffmpeg() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}
