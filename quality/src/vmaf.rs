//! A safe, owning wrapper over libvmaf's C API (context, model, pictures).
//!
//! Every C handle lives in a Rust value whose `Drop` releases it, so an early return on an error
//! never leaks a context, a model or a picture buffer. Pictures are moved into libvmaf by
//! [`VmafContext::read_pictures`]; libvmaf takes its own references and bounds how many it keeps
//! in flight (its per-extractor context pool blocks the caller when every context is busy), which
//! is what keeps our memory to a small window of frames however long the input is.

use std::ffi::{CStr, CString};
use std::ptr;

use libvmaf_sys as sys;

/// A libvmaf call that returned an error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvmaf {call} failed: {kind} (code {code})")]
pub struct VmafError {
    /// The C function that failed.
    pub call: &'static str,
    /// The raw (negative errno-style) code libvmaf returned.
    pub code: i32,
    /// What the code means.
    pub kind: VmafErrorKind,
}

/// The meaning of a libvmaf error code. libvmaf returns negated errno values, sometimes OR-ed
/// together from several steps, so anything else is kept as [`VmafErrorKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VmafErrorKind {
    #[error("invalid argument (e.g. pictures of different sizes or formats, or a missing score)")]
    InvalidArgument,
    #[error("out of memory")]
    OutOfMemory,
    #[error("unspecified libvmaf error")]
    Other,
}

impl VmafError {
    fn from_code(call: &'static str, code: i32) -> Self {
        let kind = match code {
            c if c == -libc_errno::EINVAL => VmafErrorKind::InvalidArgument,
            c if c == -libc_errno::ENOMEM => VmafErrorKind::OutOfMemory,
            _ => VmafErrorKind::Other,
        };
        VmafError { call, code, kind }
    }
}

/// Pictures smaller than this in either dimension are refused before they reach libvmaf.
pub const MIN_PICTURE_SIZE: usize = 32;

/// The two errno values libvmaf uses, without pulling in `libc` for them.
mod libc_errno {
    pub const ENOMEM: i32 = 12;
    pub const EINVAL: i32 = 22;
}

fn check(call: &'static str, code: i32) -> Result<(), VmafError> {
    if code == 0 {
        Ok(())
    } else {
        Err(VmafError::from_code(call, code))
    }
}

/// The version string of the linked libvmaf (e.g. `"2.3.1"`).
pub fn version() -> String {
    // SAFETY: vmaf_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::vmaf_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Plane layout of a picture handed to libvmaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChromaLayout {
    Yuv420,
    Yuv422,
    Yuv444,
    /// Luma only.
    Yuv400,
}

impl ChromaLayout {
    fn to_sys(self) -> sys::VmafPixelFormat {
        match self {
            ChromaLayout::Yuv420 => sys::VmafPixelFormat::VMAF_PIX_FMT_YUV420P,
            ChromaLayout::Yuv422 => sys::VmafPixelFormat::VMAF_PIX_FMT_YUV422P,
            ChromaLayout::Yuv444 => sys::VmafPixelFormat::VMAF_PIX_FMT_YUV444P,
            ChromaLayout::Yuv400 => sys::VmafPixelFormat::VMAF_PIX_FMT_YUV400P,
        }
    }

    /// Log2 of the chroma subsampling factors (horizontal, vertical).
    pub fn chroma_shift(self) -> (u32, u32) {
        match self {
            ChromaLayout::Yuv420 => (1, 1),
            ChromaLayout::Yuv422 => (1, 0),
            ChromaLayout::Yuv444 | ChromaLayout::Yuv400 => (0, 0),
        }
    }

    pub fn plane_count(self) -> usize {
        if self == ChromaLayout::Yuv400 { 1 } else { 3 }
    }
}

/// A picture buffer allocated by libvmaf, owned until it is moved into
/// [`VmafContext::read_pictures`].
pub struct VmafPicture {
    raw: sys::VmafPicture,
}

// SAFETY: the picture owns its buffer (refcounted by libvmaf with atomics); nothing else aliases
// it until it is handed to libvmaf.
unsafe impl Send for VmafPicture {}

impl VmafPicture {
    /// Allocates a `width`×`height` picture with `bits` bits per component (8–16).
    pub fn alloc(
        layout: ChromaLayout,
        bits: u32,
        width: u32,
        height: u32,
    ) -> Result<Self, VmafError> {
        // SAFETY: VmafPicture is plain data; zeroed is its documented "empty" state.
        let mut raw: sys::VmafPicture = unsafe { std::mem::zeroed() };
        // SAFETY: raw is a valid out-pointer.
        let code =
            unsafe { sys::vmaf_picture_alloc(&mut raw, layout.to_sys(), bits, width, height) };
        check("vmaf_picture_alloc", code)?;
        Ok(VmafPicture { raw })
    }

    pub fn width(&self, plane: usize) -> usize {
        self.raw.w[plane] as usize
    }

    pub fn height(&self, plane: usize) -> usize {
        self.raw.h[plane] as usize
    }

    /// Whether the picture has chroma planes (everything but 4:0:0).
    pub fn has_chroma(&self) -> bool {
        self.raw.pix_fmt != sys::VmafPixelFormat::VMAF_PIX_FMT_YUV400P
    }

    /// Bytes per sample (1 for 8-bit, 2 for 9–16-bit).
    pub fn bytes_per_sample(&self) -> usize {
        if self.raw.bpc > 8 { 2 } else { 1 }
    }

    /// Row `y` of `plane` as bytes (width × bytes per sample long).
    pub fn row_mut(&mut self, plane: usize, y: usize) -> &mut [u8] {
        assert!(y < self.height(plane), "row {y} outside plane {plane}");
        let len = self.width(plane) * self.bytes_per_sample();
        let stride = self.raw.stride[plane];
        // SAFETY: libvmaf allocated h rows of `stride` bytes, each at least `len` long, and we
        // hold the only reference to the buffer.
        unsafe {
            let base = (self.raw.data[plane] as *mut u8).offset(stride * y as isize);
            std::slice::from_raw_parts_mut(base, len)
        }
    }
}

impl Drop for VmafPicture {
    fn drop(&mut self) {
        if !self.raw.ref_.is_null() {
            // SAFETY: the picture still holds its reference (read_pictures zeroes it on success).
            unsafe { sys::vmaf_picture_unref(&mut self.raw) };
        }
    }
}

/// A loaded, built-in VMAF model.
pub struct VmafModel {
    raw: *mut sys::VmafModel,
    /// The name the model's scores are stored under in the feature collector.
    _name: CString,
}

// SAFETY: a model is immutable after loading apart from the score cache libvmaf keeps in the
// context; it is only used from the thread owning the context.
unsafe impl Send for VmafModel {}

impl VmafModel {
    /// Loads a model compiled into libvmaf by its version string (e.g. `"vmaf_v0.6.1"`).
    pub fn load_built_in(version: &str) -> Result<Self, VmafError> {
        let name = CString::new("vmaf").expect("static name has no NUL");
        let version_c = CString::new(version)
            .map_err(|_| VmafError::from_code("vmaf_model_load", -libc_errno::EINVAL))?;
        let mut config = sys::VmafModelConfig {
            name: name.as_ptr(),
            flags: 0,
        };
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer, config and NUL-terminated version; libvmaf copies the name.
        let code = unsafe { sys::vmaf_model_load(&mut raw, &mut config, version_c.as_ptr()) };
        check("vmaf_model_load", code)?;
        Ok(VmafModel { raw, _name: name })
    }
}

impl Drop for VmafModel {
    fn drop(&mut self) {
        // SAFETY: raw came from vmaf_model_load and is destroyed once.
        unsafe { sys::vmaf_model_destroy(self.raw) };
    }
}

/// Settings for a libvmaf context.
#[derive(Debug, Clone, Copy)]
pub struct ContextConfig {
    /// Worker threads (0 = libvmaf computes on the calling thread).
    pub threads: u32,
    /// Compute non-temporal features only on every `subsample`-th index (1 = every frame).
    pub subsample: u32,
}

/// A libvmaf scoring context.
pub struct VmafContext {
    raw: *mut sys::VmafContext,
    flushed: bool,
}

// SAFETY: the context is used by one thread at a time (it is not Sync); libvmaf's own workers
// synchronise internally.
unsafe impl Send for VmafContext {}

impl VmafContext {
    pub fn new(config: ContextConfig) -> Result<Self, VmafError> {
        let cfg = sys::VmafConfiguration {
            log_level: sys::VmafLogLevel::VMAF_LOG_LEVEL_NONE,
            n_threads: config.threads,
            n_subsample: config.subsample.max(1),
            cpumask: 0,
        };
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("vmaf_init", unsafe { sys::vmaf_init(&mut raw, cfg) })?;
        Ok(VmafContext {
            raw,
            flushed: false,
        })
    }

    /// Registers the feature extractors `model` needs.
    pub fn use_model_features(&mut self, model: &VmafModel) -> Result<(), VmafError> {
        // SAFETY: both handles are live.
        let code = unsafe { sys::vmaf_use_features_from_model(self.raw, model.raw) };
        check("vmaf_use_features_from_model", code)
    }

    /// Registers one feature extractor by name (e.g. `"psnr"`, `"float_ssim"`).
    pub fn use_feature(&mut self, name: &str) -> Result<(), VmafError> {
        let name_c = CString::new(name)
            .map_err(|_| VmafError::from_code("vmaf_use_feature", -libc_errno::EINVAL))?;
        // SAFETY: live context, NUL-terminated name, no options dictionary.
        let code = unsafe { sys::vmaf_use_feature(self.raw, name_c.as_ptr(), ptr::null_mut()) };
        check("vmaf_use_feature", code)
    }

    /// Hands a reference/distorted pair to libvmaf as frame `index`. The pictures are consumed;
    /// on error they are released by their `Drop`.
    pub fn read_pictures(
        &mut self,
        mut reference: VmafPicture,
        mut distorted: VmafPicture,
        index: u32,
    ) -> Result<(), VmafError> {
        // libvmaf 2.3.1 crashes (rather than failing) on pictures 16 pixels wide or high.
        let too_small =
            |p: &VmafPicture| p.width(0) < MIN_PICTURE_SIZE || p.height(0) < MIN_PICTURE_SIZE;
        if too_small(&reference) || too_small(&distorted) {
            return Err(VmafError::from_code(
                "vmaf_read_pictures",
                -libc_errno::EINVAL,
            ));
        }
        // SAFETY: live context and pictures; on success libvmaf unrefs and zeroes both structs,
        // so their Drop does nothing; on failure they still own their buffers.
        let code = unsafe {
            sys::vmaf_read_pictures(self.raw, &mut reference.raw, &mut distorted.raw, index)
        };
        check("vmaf_read_pictures", code)
    }

    /// Signals the end of input so temporal features of the last frames are computed.
    pub fn flush(&mut self) -> Result<(), VmafError> {
        if self.flushed {
            return Ok(());
        }
        // SAFETY: NULL pictures is libvmaf's flush request.
        let code =
            unsafe { sys::vmaf_read_pictures(self.raw, ptr::null_mut(), ptr::null_mut(), 0) };
        check("vmaf_read_pictures(flush)", code)?;
        self.flushed = true;
        Ok(())
    }

    /// The model's score at frame `index` (after [`flush`](Self::flush)).
    pub fn score_at_index(&mut self, model: &VmafModel, index: u32) -> Result<f64, VmafError> {
        let mut score = 0.0;
        // SAFETY: live handles, valid out-pointer.
        let code = unsafe { sys::vmaf_score_at_index(self.raw, model.raw, &mut score, index) };
        check("vmaf_score_at_index", code)?;
        Ok(score)
    }

    /// A feature's score at frame `index` (e.g. `"psnr_y"`, `"float_ssim"`).
    pub fn feature_score_at_index(&mut self, feature: &CStr, index: u32) -> Result<f64, VmafError> {
        let mut score = 0.0;
        // SAFETY: live context, NUL-terminated name, valid out-pointer.
        let code = unsafe {
            sys::vmaf_feature_score_at_index(self.raw, feature.as_ptr(), &mut score, index)
        };
        check("vmaf_feature_score_at_index", code)?;
        Ok(score)
    }
}

impl Drop for VmafContext {
    fn drop(&mut self) {
        // SAFETY: raw came from vmaf_init; vmaf_close waits for its workers and frees everything.
        unsafe { sys::vmaf_close(self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(width: u32, height: u32, level: u8) -> VmafPicture {
        let mut picture = VmafPicture::alloc(ChromaLayout::Yuv420, 8, width, height).unwrap();
        for plane in 0..3 {
            for y in 0..picture.height(plane) {
                picture.row_mut(plane, y).fill(level);
            }
        }
        picture
    }

    #[test]
    fn pictures_of_different_sizes_are_an_invalid_argument() {
        let model = VmafModel::load_built_in("vmaf_v0.6.1").unwrap();
        let mut context = VmafContext::new(ContextConfig {
            threads: 0,
            subsample: 1,
        })
        .unwrap();
        context.use_model_features(&model).unwrap();
        let error = context
            .read_pictures(filled(64, 64, 16), filled(32, 32, 16), 0)
            .unwrap_err();
        assert_eq!(error.call, "vmaf_read_pictures");
        assert_eq!(error.kind, VmafErrorKind::InvalidArgument);
    }

    #[test]
    fn unknown_models_and_features_are_errors_and_a_missing_score_too() {
        let error = VmafModel::load_built_in("vmaf_v9").err().unwrap();
        assert_eq!(
            (error.call, error.kind),
            ("vmaf_model_load", VmafErrorKind::InvalidArgument)
        );
        let mut context = VmafContext::new(ContextConfig {
            threads: 0,
            subsample: 1,
        })
        .unwrap();
        assert_eq!(
            context.use_feature("no_such_feature").unwrap_err().call,
            "vmaf_use_feature"
        );

        context.use_feature("psnr").unwrap();
        context
            .read_pictures(filled(64, 64, 100), filled(64, 64, 110), 0)
            .unwrap();
        context.flush().unwrap();
        let psnr = context.feature_score_at_index(c"psnr_y", 0).unwrap();
        // MSE 100 on 8 bits: 10 log10(255² / 100) = 28.13 dB.
        assert!((psnr - 28.1308).abs() < 1e-3, "{psnr}");
        assert!(
            context.feature_score_at_index(c"psnr_y", 1).is_err(),
            "no frame 1 was read"
        );
    }

    #[test]
    fn version_is_the_vendored_one() {
        assert_eq!(version(), "2.3.1");
    }
}
