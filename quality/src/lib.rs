//! Video quality scoring for `lpt`: VMAF, PSNR and SSIM through libvmaf, with frames paired by
//! the project's frame stamp.
//!
//! Design: libvmaf (vendored 2.3.1, statically linked) does all the scoring, so our numbers are
//! Netflix's numbers; this crate adds what the `vmaf` tool lacks for a live-video tester:
//! decoding of any container, pairing frames by stamp so dropped, repeated and re-timed frames
//! pair with the right source frame, leaving the stamp band out of the scored area, scaling
//! renditions to the source size, and comparing a network's rendition with a local reference
//! transcode of the same source. Memory is bounded by a few frames per input, never a segment.
//!
//! Entry points: [`compare_files`] (the `lpt quality` command) and [`compare_inputs`] (segments in
//! memory); [`ReferenceLadder`] and [`compare_with_reference`] (a network rendition beside the
//! local reference transcoder's rendition); [`ScoringEngine`] for callers that already hold
//! pictures.

mod align;
mod compare;
mod decode;
mod engine;
mod error;
mod options;
mod picture;
mod reference;
mod report;
mod stamp;
pub mod vmaf;

pub use align::{AlignmentCounts, Pairing, StampAligner};
pub use compare::{LptStamps, compare_files, compare_files_with, compare_inputs};
pub use decode::{MediaInput, VideoReader};
pub use engine::{IndexScores, ScoringEngine};
pub use error::QualityError;
pub use options::{PairingMode, QualityOptions, VmafModelVersion};
pub use picture::{PicturePreparer, ScoredGeometry};
pub use reference::{
    NetworkRendition, ReferenceComparison, ReferenceLadder, RenditionComparison,
    compare_inputs_with_reference, compare_with_reference,
};
pub use report::{FrameScore, Pooled, PooledScores, QualityReport};
pub use stamp::{Stamp, StampReader};
