//! Which encode/decode path this machine gets, decided once per process.
//!
//! Design: NVIDIA support is probed through FFmpeg itself — a `cuda` hardware device for NVDEC
//! and opening a tiny `h264_nvenc` encoder for NVENC — rather than by looking for driver files,
//! so the answer is exactly what FFmpeg can use. Data-centre Hopper GPUs (H100/H200) have NVDEC
//! but no NVENC, which gives the mixed "decode on GPU, encode on CPU" path. The outcome and its
//! reason are logged once.

use std::ptr;
use std::sync::OnceLock;

use ffmpeg_next::ffi::*;
use serde::Serialize;

/// What the caller allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HardwarePreference {
    /// Use NVIDIA when FFmpeg can open it, else the CPU.
    #[default]
    Auto,
    /// Never touch a GPU.
    Cpu,
}

/// The path a ladder session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderPath {
    /// Decode with FFmpeg's software decoders, encode with libx264.
    CpuX264,
    /// NVDEC decode, libx264 encode (GPUs without NVENC, e.g. H100).
    NvdecX264,
    /// NVDEC decode, NVENC encode.
    NvdecNvenc,
}

impl EncoderPath {
    pub fn hw_decode(self) -> bool {
        !matches!(self, EncoderPath::CpuX264)
    }
    pub fn encoder_name(self) -> &'static str {
        match self {
            EncoderPath::NvdecNvenc => "h264_nvenc",
            _ => "libx264",
        }
    }
}

/// Result of the NVIDIA probe.
#[derive(Debug, Clone)]
pub struct HardwareProbe {
    pub cuda_device: bool,
    pub nvenc: bool,
    pub reason: String,
}

/// A CUDA device context (an `AVBufferRef`), shared by decoders.
pub(crate) struct CudaDevice(pub(crate) *mut AVBufferRef);
// SAFETY: FFmpeg hardware device contexts are reference counted and thread safe.
unsafe impl Send for CudaDevice {}
unsafe impl Sync for CudaDevice {}

static PROBE: OnceLock<(HardwareProbe, Option<CudaDevice>)> = OnceLock::new();

fn probe() -> &'static (HardwareProbe, Option<CudaDevice>) {
    PROBE.get_or_init(|| {
        crate::init_ffmpeg();
        let mut device: *mut AVBufferRef = ptr::null_mut();
        // A machine without NVIDIA is the normal case: keep FFmpeg from logging it as an error.
        let level = ffmpeg_next::util::log::get_level();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Quiet);
        let ret = unsafe {
            av_hwdevice_ctx_create(
                &mut device,
                AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
                ptr::null(),
                ptr::null_mut(),
                0,
            )
        };
        let nvenc = (ret >= 0 && !device.is_null()).then(nvenc_opens);
        if let Ok(level) = level {
            ffmpeg_next::util::log::set_level(level);
        }
        if ret < 0 || device.is_null() {
            let why = ffmpeg_next::Error::from(ret);
            return (
                HardwareProbe {
                    cuda_device: false,
                    nvenc: false,
                    reason: format!("no CUDA device ({why})"),
                },
                None,
            );
        }
        let nvenc = nvenc.unwrap_or(Err("not probed".into()));
        let reason = match &nvenc {
            Ok(()) => "CUDA device and h264_nvenc available".to_string(),
            Err(why) => format!(
                "CUDA device present but h264_nvenc cannot open ({why}); GPU without NVENC?"
            ),
        };
        (
            HardwareProbe {
                cuda_device: true,
                nvenc: nvenc.is_ok(),
                reason,
            },
            Some(CudaDevice(device)),
        )
    })
}

fn nvenc_opens() -> Result<(), String> {
    let codec =
        ffmpeg_next::encoder::find_by_name("h264_nvenc").ok_or("FFmpeg has no h264_nvenc")?;
    let mut enc = ffmpeg_next::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    enc.set_width(256);
    enc.set_height(144);
    enc.set_format(ffmpeg_next::format::Pixel::YUV420P);
    enc.set_time_base(ffmpeg_next::Rational(1, 30));
    enc.open().map(|_| ()).map_err(|e| e.to_string())
}

/// The NVIDIA probe result (runs the probe on first use).
pub fn hardware_probe() -> &'static HardwareProbe {
    &probe().0
}

pub(crate) fn cuda_device() -> Option<&'static CudaDevice> {
    probe().1.as_ref()
}

/// Chooses the path for `preference` and logs it (once per process and path).
pub fn choose_path(preference: HardwarePreference) -> (EncoderPath, String) {
    let (path, why) = match preference {
        HardwarePreference::Cpu => (EncoderPath::CpuX264, "CPU requested".to_string()),
        HardwarePreference::Auto => {
            let p = hardware_probe();
            let path = match (p.cuda_device, p.nvenc) {
                (true, true) => EncoderPath::NvdecNvenc,
                (true, false) => EncoderPath::NvdecX264,
                _ => EncoderPath::CpuX264,
            };
            (path, p.reason.clone())
        }
    };
    static LOGGED: OnceLock<std::sync::Mutex<Vec<EncoderPath>>> = OnceLock::new();
    let mut logged = LOGGED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !logged.contains(&path) {
        logged.push(path);
        tracing::info!(path = ?path, reason = %why, "ladder transcoder encoder path");
    }
    (path, why)
}
