//! The crate's typed error: every variant names the file, option or libvmaf call at fault.
//!
//! Problems that still leave something to score (a corrupt packet, an unmatched or unstamped
//! frame, inputs of different lengths) are not errors: they are counted in the report, and the
//! scores cover what could be paired. Only what stops scoring altogether is an error.

use std::path::PathBuf;

use crate::align::AlignmentCounts;
use crate::vmaf::VmafError;

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("{path} has no video stream")]
    NoVideoStream { path: PathBuf },
    #[error("cannot open a decoder for the video stream of {path}: {source}")]
    Decoder {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("reading {path} failed repeatedly: {source}")]
    Read {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("the decoding thread for {path} stopped unexpectedly")]
    DecoderThread { path: PathBuf },
    #[error(transparent)]
    Vmaf(#[from] VmafError),
    #[error("unknown VMAF model {0:?}; built-in models are vmaf_v0.6.1 and vmaf_4k_v0.6.1")]
    UnknownModel(String),
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "{reference} is {reference_width}x{reference_height} but {distorted} is \
         {distorted_width}x{distorted_height}, and scaling the distorted video is disabled"
    )]
    SizeMismatch {
        reference: PathBuf,
        distorted: PathBuf,
        reference_width: u32,
        reference_height: u32,
        distorted_width: u32,
        distorted_height: u32,
    },
    #[error("cannot convert a {width}x{height} {format:?} picture of {path}: {source}")]
    Scale {
        path: PathBuf,
        format: ffmpeg_next::format::Pixel,
        width: u32,
        height: u32,
        source: ffmpeg_next::Error,
    },
    #[error(
        "the stamp band leaves no picture to score in {path} ({height} rows, band starts at row {band_top})"
    )]
    NoAreaAboveBand {
        path: PathBuf,
        height: u32,
        band_top: u32,
    },
    #[error("{path} is {width}x{height}: too small to score (at least 32x32)")]
    PictureTooSmall {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("no frame of {distorted} could be paired with {reference} ({counts})")]
    NothingPaired {
        reference: PathBuf,
        distorted: PathBuf,
        counts: AlignmentCounts,
    },
    #[error("the reference transcoder failed{}: {source}", segment.as_ref().map(|s| format!(" on {s}")).unwrap_or_default())]
    ReferenceTranscode {
        segment: Option<String>,
        source: reference_transcoder::TranscodeError,
    },
    #[error("rendition profile {profile} is not in the reference ladder {ladder:?}")]
    ProfileNotInLadder {
        profile: String,
        ladder: Vec<String>,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
