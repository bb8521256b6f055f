//! User-facing scoring options, validated before any work starts.

use std::fmt;
use std::str::FromStr;

use crate::QualityError;

/// The built-in VMAF models a user can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum VmafModelVersion {
    /// `vmaf_v0.6.1`: the standard model (1080p viewing on a TV at 3 picture heights).
    #[default]
    #[serde(rename = "vmaf_v0.6.1")]
    V061,
    /// `vmaf_4k_v0.6.1`: 4K viewing at 1.5 picture heights.
    #[serde(rename = "vmaf_4k_v0.6.1")]
    FourK061,
}

impl VmafModelVersion {
    /// libvmaf's name for the model.
    pub fn as_str(self) -> &'static str {
        match self {
            VmafModelVersion::V061 => "vmaf_v0.6.1",
            VmafModelVersion::FourK061 => "vmaf_4k_v0.6.1",
        }
    }
}

impl fmt::Display for VmafModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VmafModelVersion {
    type Err = QualityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vmaf_v0.6.1" | "vmaf" | "default" => Ok(VmafModelVersion::V061),
            "vmaf_4k_v0.6.1" | "4k" => Ok(VmafModelVersion::FourK061),
            other => Err(QualityError::UnknownModel(other.to_owned())),
        }
    }
}

/// How to pair reference and distorted frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PairingMode {
    /// By stamp when both inputs carry stamps, by presentation order otherwise.
    #[default]
    Auto,
    /// By stamp only; frames without a readable stamp stay unpaired.
    Stamp,
    /// The n-th distorted frame with the n-th reference frame.
    PresentationOrder,
}

/// Options for scoring one reference/distorted pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityOptions {
    pub model: VmafModelVersion,
    /// libvmaf worker threads; 0 computes on the scoring thread itself.
    pub threads: u32,
    /// Score every `subsample`-th paired frame (1 = all). Motion is still computed on every frame
    /// so the scored frames' VMAF is exact.
    pub subsample: u32,
    /// Also compute PSNR (Y, Cb, Cr; libvmaf's integer `psnr` extractor).
    pub psnr: bool,
    /// Also compute SSIM (libvmaf's `float_ssim` extractor; costs about as much as VMAF itself).
    pub ssim: bool,
    /// Scale the distorted picture to the reference size (bicubic) when they differ; when false,
    /// different sizes are an error.
    pub scale_distorted: bool,
    /// Leave the stamp band out of the scored area when the reference carries stamps.
    pub crop_stamp_band: bool,
    pub pairing: PairingMode,
}

impl Default for QualityOptions {
    fn default() -> Self {
        QualityOptions {
            model: VmafModelVersion::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            subsample: 1,
            psnr: true,
            ssim: false,
            scale_distorted: true,
            crop_stamp_band: true,
            pairing: PairingMode::Auto,
        }
    }
}

impl QualityOptions {
    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<(), QualityError> {
        if self.subsample == 0 {
            return Err(QualityError::InvalidOption {
                name: "subsample",
                value: "0".into(),
                reason: "must be at least 1 (1 scores every frame)",
            });
        }
        if self.threads > 256 {
            return Err(QualityError::InvalidOption {
                name: "threads",
                value: self.threads.to_string(),
                reason: "must be at most 256",
            });
        }
        Ok(())
    }
}
