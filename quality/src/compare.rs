//! Scoring one distorted video against a reference, end to end: decode, align, prepare, score.
//!
//! Both inputs are decoded on their own threads while this thread pairs frames and feeds libvmaf,
//! so at any time only a handful of decoded frames per input exist (the decode-ahead channel, the
//! few frames peeked to detect stamps, and the alignment window). Under subsampling, frames that
//! are not scored still go through libvmaf (its motion feature needs every reference frame), but
//! their distorted picture is not scaled: libvmaf only reads the reference for those frames.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use crate::align::{AlignmentCounts, Pairing, StampAligner};
use crate::decode::{DecodedFrame, FrameSource, MediaInput};
use crate::engine::ScoringEngine;
use crate::options::{PairingMode, QualityOptions};
use crate::picture::{PicturePreparer, ScoredGeometry};
use crate::report::{FrameScore, PooledScores, QualityReport};
use crate::stamp::StampReader;
use crate::{QualityError, vmaf};

/// Frames decoded up front from each input to find out whether it carries stamps.
const STAMP_PEEK_FRAMES: usize = 12;
/// Reference frames kept for stamp alignment (repeats and small reorders within this distance
/// still pair).
const STAMP_WINDOW: usize = 8;

/// A frame source with a small look-ahead buffer.
struct PeekableSource {
    source: FrameSource,
    buffer: VecDeque<DecodedFrame>,
}

impl PeekableSource {
    fn new(source: FrameSource) -> Self {
        PeekableSource {
            source,
            buffer: VecDeque::with_capacity(STAMP_PEEK_FRAMES),
        }
    }

    fn next(&mut self) -> Result<Option<DecodedFrame>, QualityError> {
        match self.buffer.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => self.source.next_frame(),
        }
    }

    /// Whether any of the first `count` frames carries a stamp; decodes only as far as the first
    /// stamped frame, so stamped inputs buffer a single frame here.
    fn any_stamped(&mut self, count: usize) -> Result<bool, QualityError> {
        loop {
            if self.buffer.iter().any(|frame| frame.stamp.is_some()) {
                return Ok(true);
            }
            if self.buffer.len() >= count {
                return Ok(false);
            }
            match self.source.next_frame()? {
                Some(frame) => self.buffer.push_back(frame),
                None => return Ok(false),
            }
        }
    }

    fn first(&self) -> Option<&DecodedFrame> {
        self.buffer.front()
    }
}

/// The stamp reader for the project's own frame stamp (drawn by `reference-transcoder`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LptStamps;

impl StampReader for LptStamps {
    fn read(&self, frame: &ffmpeg_next::frame::Video) -> Option<crate::Stamp> {
        reference_transcoder::read_stamp(frame).map(|stamp| crate::Stamp {
            stream_id: u64::from(stamp.stream_id),
            frame_number: u64::from(stamp.frame_number),
        })
    }

    fn band_top(&self, _width: u32, height: u32) -> u32 {
        reference_transcoder::stamp::band_rows(height).0
    }
}

/// Scores `distorted` against `reference` (any container FFmpeg reads), pairing by the project's
/// frame stamp when both carry it and by presentation order otherwise.
pub fn compare_files(
    reference: &Path,
    distorted: &Path,
    options: &QualityOptions,
) -> Result<QualityReport, QualityError> {
    compare_files_with(reference, distorted, options, Some(Arc::new(LptStamps)))
}

/// [`compare_files`] with another stamp format, or none (`None` always pairs by presentation
/// order and never crops).
pub fn compare_files_with(
    reference: &Path,
    distorted: &Path,
    options: &QualityOptions,
    stamps: Option<Arc<dyn StampReader>>,
) -> Result<QualityReport, QualityError> {
    compare_inputs(reference.into(), distorted.into(), options, stamps)
}

/// [`compare_files_with`] for inputs that may be in memory (e.g. a source segment and a
/// rendition segment just downloaded); pass `Some(Arc::new(LptStamps))` for the project's stamp.
pub fn compare_inputs(
    reference: MediaInput,
    distorted: MediaInput,
    options: &QualityOptions,
    stamps: Option<Arc<dyn StampReader>>,
) -> Result<QualityReport, QualityError> {
    let (reference_label, distorted_label) = (reference.label(), distorted.label());
    options.validate()?;
    let mut engine = ScoringEngine::new(options)?;
    let mut reference_frames = PeekableSource::new(FrameSource::spawn(reference, stamps.clone())?);
    let mut distorted_frames = PeekableSource::new(FrameSource::spawn(distorted, stamps.clone())?);
    let (reference, distorted) = (reference_label.as_path(), distorted_label.as_path());

    // Buffer the first reference frame (it fixes the geometry), then look for stamps.
    reference_frames.any_stamped(1)?;
    let reference_stamped = stamps.is_some() && reference_frames.any_stamped(STAMP_PEEK_FRAMES)?;
    let distorted_stamped = stamps.is_some() && distorted_frames.any_stamped(STAMP_PEEK_FRAMES)?;
    let pairing = match options.pairing {
        PairingMode::Auto if reference_stamped && distorted_stamped => Pairing::Stamp,
        PairingMode::Auto | PairingMode::PresentationOrder => Pairing::PresentationOrder,
        PairingMode::Stamp => Pairing::Stamp,
    };

    let Some(first) = reference_frames.first() else {
        // An empty reference: count what the distorted side had and report nothing paired.
        let mut counts = AlignmentCounts::default();
        while distorted_frames.next()?.is_some() {
            counts.distorted_frames += 1;
            counts.unmatched_distorted += 1;
        }
        return Err(nothing_paired(reference, distorted, counts));
    };
    let band_top = match (&stamps, options.crop_stamp_band && reference_stamped) {
        (Some(reader), true) => Some(reader.band_top(first.frame.width(), first.frame.height())),
        _ => None,
    };
    let geometry = ScoredGeometry::for_reference(reference, &first.frame, band_top)?;

    let mut run = Run {
        engine: &mut engine,
        reference_preparer: PicturePreparer::new(reference, geometry),
        distorted_preparer: PicturePreparer::new(distorted, geometry),
        pairs: Vec::new(),
        geometry,
        scale_distorted: options.scale_distorted,
        reference,
        distorted,
    };
    let counts = match pairing {
        Pairing::Stamp => run.by_stamp(&mut reference_frames, &mut distorted_frames)?,
        Pairing::PresentationOrder => {
            run.by_presentation_order(&mut reference_frames, &mut distorted_frames)?
        }
    };
    let (pairs, distorted_scaled) = (run.pairs, run.distorted_preparer.scaled_any);
    let reference_stats = reference_frames.source.finish()?;
    let distorted_stats = distorted_frames.source.finish()?;
    if pairs.is_empty() {
        return Err(nothing_paired(reference, distorted, counts));
    }

    let frames: Vec<FrameScore> = engine
        .finish()?
        .into_iter()
        .map(|scores| {
            let (reference_frame, distorted_frame) = pairs[scores.index as usize];
            FrameScore {
                index: scores.index,
                reference_frame,
                distorted_frame,
                vmaf: scores.vmaf,
                psnr_y: scores.psnr_y,
                psnr_cb: scores.psnr_cb,
                psnr_cr: scores.psnr_cr,
                ssim: scores.ssim,
            }
        })
        .collect();
    let pooled =
        PooledScores::of(&frames).ok_or_else(|| nothing_paired(reference, distorted, counts))?;
    Ok(QualityReport {
        reference: reference.to_owned(),
        distorted: distorted.to_owned(),
        model: options.model,
        libvmaf_version: vmaf::version(),
        pairing,
        counts,
        reference_decode_errors: reference_stats.decode_errors,
        distorted_decode_errors: distorted_stats.decode_errors,
        scored_width: geometry.width,
        scored_height: geometry.scored_height,
        excluded_rows: geometry.height - geometry.scored_height,
        distorted_scaled,
        subsample: options.subsample,
        frames,
        pooled,
    })
}

fn nothing_paired(reference: &Path, distorted: &Path, counts: AlignmentCounts) -> QualityError {
    QualityError::NothingPaired {
        reference: reference.to_owned(),
        distorted: distorted.to_owned(),
        counts,
    }
}

/// The state of one scoring run while frames are paired and fed.
struct Run<'a> {
    engine: &'a mut ScoringEngine,
    reference_preparer: PicturePreparer,
    distorted_preparer: PicturePreparer,
    /// (reference frame, distorted frame) of each fed index.
    pairs: Vec<(u64, u64)>,
    geometry: ScoredGeometry,
    scale_distorted: bool,
    reference: &'a Path,
    distorted: &'a Path,
}

impl Run<'_> {
    fn score_pair(
        &mut self,
        reference: &DecodedFrame,
        reference_frame: u64,
        distorted: &DecodedFrame,
    ) -> Result<(), QualityError> {
        let (width, height) = (distorted.frame.width(), distorted.frame.height());
        if !self.scale_distorted && (width != self.geometry.width || height != self.geometry.height)
        {
            return Err(QualityError::SizeMismatch {
                reference: self.reference.to_owned(),
                distorted: self.distorted.to_owned(),
                reference_width: self.geometry.width,
                reference_height: self.geometry.height,
                distorted_width: width,
                distorted_height: height,
            });
        }
        let reference_picture = self.reference_preparer.prepare(&reference.frame)?;
        let distorted_picture = if self.engine.is_scored(self.engine.frames()) {
            self.distorted_preparer.prepare(&distorted.frame)?
        } else {
            // Only temporal features (computed on the reference) run for this index.
            self.reference_preparer.prepare(&reference.frame)?
        };
        self.engine.push(reference_picture, distorted_picture)?;
        self.pairs.push((reference_frame, distorted.order));
        Ok(())
    }

    fn by_stamp(
        &mut self,
        reference: &mut PeekableSource,
        distorted: &mut PeekableSource,
    ) -> Result<AlignmentCounts, QualityError> {
        let mut aligner = StampAligner::new(STAMP_WINDOW);
        let mut next_reference =
            || Ok::<_, QualityError>(reference.next()?.map(|frame| (frame.stamp, frame)));
        while let Some(frame) = distorted.next()? {
            if let Some(partner) = aligner.pair(frame.stamp, &mut next_reference)? {
                let number = partner
                    .stamp
                    .map_or(partner.order, |stamp| stamp.frame_number);
                self.score_pair(partner, number, &frame)?;
            }
        }
        aligner.finish(next_reference)
    }

    fn by_presentation_order(
        &mut self,
        reference: &mut PeekableSource,
        distorted: &mut PeekableSource,
    ) -> Result<AlignmentCounts, QualityError> {
        let mut counts = AlignmentCounts::default();
        loop {
            match (reference.next()?, distorted.next()?) {
                (Some(r), Some(d)) => {
                    counts.reference_frames += 1;
                    counts.distorted_frames += 1;
                    counts.paired += 1;
                    self.score_pair(&r, r.order, &d)?;
                }
                (Some(_), None) => {
                    counts.reference_frames += 1;
                    counts.unmatched_reference += 1;
                }
                (None, Some(_)) => {
                    counts.distorted_frames += 1;
                    counts.unmatched_distorted += 1;
                }
                (None, None) => return Ok(counts),
            }
        }
    }
}
