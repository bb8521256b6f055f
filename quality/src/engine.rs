//! The scoring engine: picture pairs in, per-frame VMAF/PSNR/SSIM out.
//!
//! Pairs are streamed into libvmaf as they arrive (libvmaf computes features on its workers while
//! we decode the next frames); per-frame scores are read back once at the end, after the flush
//! that completes the temporal (motion) feature of the last frames. Only the scores are kept,
//! never the pictures.

use std::ffi::CStr;

use crate::QualityError;
use crate::options::QualityOptions;
use crate::vmaf::{ContextConfig, VmafContext, VmafError, VmafModel, VmafPicture};

const PSNR_Y: &CStr = c"psnr_y";
const PSNR_CB: &CStr = c"psnr_cb";
const PSNR_CR: &CStr = c"psnr_cr";
const FLOAT_SSIM: &CStr = c"float_ssim";

/// The scores of one frame index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexScores {
    pub index: u32,
    pub vmaf: f64,
    /// PSNR of luma, and of both chroma planes when the pictures have them (dB).
    pub psnr_y: Option<f64>,
    pub psnr_cb: Option<f64>,
    pub psnr_cr: Option<f64>,
    pub ssim: Option<f64>,
}

/// A libvmaf context with its model and the metrics asked for.
pub struct ScoringEngine {
    // Field order matters: the context is closed before the model it scores with is destroyed.
    context: VmafContext,
    model: VmafModel,
    psnr: bool,
    ssim: bool,
    subsample: u32,
    next_index: u32,
    has_chroma: bool,
}

impl ScoringEngine {
    pub fn new(options: &QualityOptions) -> Result<Self, QualityError> {
        options.validate()?;
        let model = VmafModel::load_built_in(options.model.as_str())?;
        let mut context = VmafContext::new(ContextConfig {
            threads: options.threads,
            subsample: options.subsample,
        })?;
        context.use_model_features(&model)?;
        if options.psnr {
            context.use_feature("psnr")?;
        }
        if options.ssim {
            context.use_feature("float_ssim")?;
        }
        Ok(ScoringEngine {
            context,
            model,
            psnr: options.psnr,
            ssim: options.ssim,
            subsample: options.subsample,
            next_index: 0,
            has_chroma: true,
        })
    }

    /// Feeds the next pair; returns the index libvmaf scores it under.
    pub fn push(
        &mut self,
        reference: VmafPicture,
        distorted: VmafPicture,
    ) -> Result<u32, VmafError> {
        let index = self.next_index;
        self.has_chroma = reference.has_chroma();
        self.context.read_pictures(reference, distorted, index)?;
        self.next_index += 1;
        Ok(index)
    }

    /// Pairs fed so far.
    pub fn frames(&self) -> u32 {
        self.next_index
    }

    /// Whether frame `index` gets scores under the subsampling.
    pub fn is_scored(&self, index: u32) -> bool {
        index.is_multiple_of(self.subsample)
    }

    /// Flushes libvmaf and reads back the scores of every scored index, in order.
    pub fn finish(mut self) -> Result<Vec<IndexScores>, VmafError> {
        self.context.flush()?;
        let mut scores = Vec::with_capacity((self.next_index / self.subsample + 1) as usize);
        for index in (0..self.next_index).step_by(self.subsample as usize) {
            let vmaf = self.context.score_at_index(&self.model, index)?;
            let feature = |context: &mut VmafContext, name, wanted| -> Result<_, VmafError> {
                if wanted {
                    context.feature_score_at_index(name, index).map(Some)
                } else {
                    Ok(None)
                }
            };
            let chroma = self.psnr && self.has_chroma;
            scores.push(IndexScores {
                index,
                vmaf,
                psnr_y: feature(&mut self.context, PSNR_Y, self.psnr)?,
                psnr_cb: feature(&mut self.context, PSNR_CB, chroma)?,
                psnr_cr: feature(&mut self.context, PSNR_CR, chroma)?,
                ssim: feature(&mut self.context, FLOAT_SSIM, self.ssim)?,
            });
        }
        Ok(scores)
    }
}
