//! What the scorer needs to know about frame stamps, independent of how they are drawn.
//!
//! Alignment only needs a stamp's stream id and frame number, and cropping only needs to know
//! where the stamp band starts; the drawing and reading of stamps belong to the media engine
//! (`reference-transcoder`). Keeping this as a small trait lets the scorer work with any stamp
//! format and lets the alignment logic be tested on its own.

use ffmpeg_next::frame::Video;

/// The identity a frame stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Stamp {
    pub stream_id: u64,
    pub frame_number: u64,
}

/// Reads stamps from decoded frames and says where the stamp band sits.
pub trait StampReader: Send + Sync {
    /// The stamp drawn in `frame`, or `None` when there is none or it fails its checksum.
    fn read(&self, frame: &Video) -> Option<Stamp>;

    /// The first row of the stamp band in a `width`×`height` picture; rows from here down are
    /// excluded from scoring.
    fn band_top(&self, width: u32, height: u32) -> u32;
}
