//! Scoring a network's rendition side by side with a local reference transcode of the same
//! profile, against the same source frames.
//!
//! Both renditions are scored with identical options against the same source, and both pair by
//! stamp, so each score covers exactly the source frames that rendition shows. The difference
//! (`vmaf - vmaf_reference`) is what a user reads: "this orchestrator's 360p is 11 VMAF points
//! below a standard transcode". [`ReferenceLadder`] makes the reference renditions itself with
//! `reference-transcoder`'s ladder (one session per stream, so its encoders are reused across
//! segments), transcoding each source segment once for every profile of the ladder.

use std::path::Path;
use std::sync::Arc;

use reference_transcoder::{LadderOptions, LadderTranscoder, Profile};

use crate::decode::MediaInput;
use crate::report::QualityReport;
use crate::{LptStamps, QualityError, QualityOptions, compare_inputs};

/// A network rendition and the local reference rendition, scored against one source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReferenceComparison {
    /// Pooled mean VMAF of the network's rendition.
    pub vmaf: f64,
    /// Pooled mean VMAF of the reference transcoder's rendition.
    pub vmaf_reference: f64,
    /// `vmaf - vmaf_reference`: negative when the network does worse than the reference.
    pub difference: f64,
    pub network: QualityReport,
    pub reference: QualityReport,
}

/// Scores `network_rendition` and `reference_rendition` against `source` with the same options.
pub fn compare_with_reference(
    source: &Path,
    network_rendition: &Path,
    reference_rendition: &Path,
    options: &QualityOptions,
) -> Result<ReferenceComparison, QualityError> {
    compare_inputs_with_reference(
        source.into(),
        network_rendition.into(),
        reference_rendition.into(),
        options,
    )
}

/// [`compare_with_reference`] for inputs that may be in memory.
pub fn compare_inputs_with_reference(
    source: MediaInput,
    network_rendition: MediaInput,
    reference_rendition: MediaInput,
    options: &QualityOptions,
) -> Result<ReferenceComparison, QualityError> {
    let stamps = Some(Arc::new(LptStamps) as Arc<dyn crate::StampReader>);
    let network = compare_inputs(source.clone(), network_rendition, options, stamps.clone())?;
    let reference = compare_inputs(source, reference_rendition, options, stamps)?;
    let (vmaf, vmaf_reference) = (network.pooled.vmaf.mean, reference.pooled.vmaf.mean);
    Ok(ReferenceComparison {
        vmaf,
        vmaf_reference,
        difference: vmaf - vmaf_reference,
        network,
        reference,
    })
}

/// One rendition of a segment as the network delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRendition {
    /// The ladder profile it was made for (e.g. `"P360p30fps16x9"`).
    pub profile: String,
    /// The rendition segment's bytes (MPEG-TS, or any container FFmpeg reads).
    pub data: Vec<u8>,
}

/// The comparison for one profile of one segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RenditionComparison {
    pub profile: String,
    #[serde(flatten)]
    pub comparison: ReferenceComparison,
}

/// A local reference transcoder session that scores a stream's network renditions against
/// reference renditions of the same profiles.
pub struct ReferenceLadder {
    transcoder: LadderTranscoder,
    options: QualityOptions,
}

impl ReferenceLadder {
    /// Starts a reference session for `profiles` (the ladder the network was asked for).
    pub fn new(
        profiles: Vec<Profile>,
        ladder: LadderOptions,
        options: QualityOptions,
    ) -> Result<Self, QualityError> {
        options.validate()?;
        let transcoder = LadderTranscoder::new(profiles, ladder).map_err(|source| {
            QualityError::ReferenceTranscode {
                segment: None,
                source,
            }
        })?;
        Ok(ReferenceLadder {
            transcoder,
            options,
        })
    }

    /// Transcodes `source_segment` with the reference ladder and scores each network rendition
    /// beside the reference rendition of its profile, in the order given. `label` names the
    /// segment in reports and errors.
    pub fn score_segment(
        &mut self,
        label: &str,
        source_segment: &[u8],
        renditions: Vec<NetworkRendition>,
    ) -> Result<Vec<RenditionComparison>, QualityError> {
        for rendition in &renditions {
            if !self
                .transcoder
                .profiles()
                .iter()
                .any(|p| p.name == rendition.profile)
            {
                return Err(QualityError::ProfileNotInLadder {
                    profile: rendition.profile.clone(),
                    ladder: self
                        .transcoder
                        .profiles()
                        .iter()
                        .map(|p| p.name.clone())
                        .collect(),
                });
            }
        }
        let ladder = self
            .transcoder
            .transcode(source_segment)
            .map_err(|source| QualityError::ReferenceTranscode {
                segment: Some(label.to_owned()),
                source,
            })?;
        let source = MediaInput::Memory {
            label: format!("{label} (source)"),
            data: source_segment.to_vec(),
        };
        let mut comparisons = Vec::with_capacity(renditions.len());
        for rendition in renditions {
            let reference = ladder
                .renditions
                .iter()
                .find(|r| r.profile == rendition.profile)
                .ok_or_else(|| QualityError::ProfileNotInLadder {
                    profile: rendition.profile.clone(),
                    ladder: ladder
                        .renditions
                        .iter()
                        .map(|r| r.profile.clone())
                        .collect(),
                })?;
            let comparison = compare_inputs_with_reference(
                source.clone(),
                MediaInput::Memory {
                    label: format!("{label} {} (network)", rendition.profile),
                    data: rendition.data,
                },
                MediaInput::Memory {
                    label: format!("{label} {} (reference)", rendition.profile),
                    data: reference.data.clone(),
                },
                &self.options,
            )?;
            comparisons.push(RenditionComparison {
                profile: rendition.profile,
                comparison,
            });
        }
        Ok(comparisons)
    }
}
