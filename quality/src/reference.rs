//! Scoring a network's rendition side by side with a local reference transcode of the same
//! profile, against the same source frames.
//!
//! Both renditions are scored with identical options against the same source, and both pair by
//! stamp, so each score covers exactly the source frames that rendition shows. The difference
//! (`vmaf - vmaf_reference`) is what a user reads: "this orchestrator's 360p is 11 VMAF points
//! below a standard transcode".

use std::path::Path;

use crate::report::QualityReport;
use crate::{QualityError, QualityOptions, compare_files};

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
    let network = compare_files(source, network_rendition, options)?;
    let reference = compare_files(source, reference_rendition, options)?;
    let (vmaf, vmaf_reference) = (network.pooled.vmaf.mean, reference.pooled.vmaf.mean);
    Ok(ReferenceComparison {
        vmaf,
        vmaf_reference,
        difference: vmaf - vmaf_reference,
        network,
        reference,
    })
}
