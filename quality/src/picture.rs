//! Turning decoded frames into the pictures libvmaf scores: format, size and stamp-band crop.
//!
//! The reference fixes the scored geometry: its pixel layout when libvmaf can take it as is
//! (8- or 10-bit planar YUV or grey; anything else is converted to 8-bit 4:2:0), its size, and
//! the rows above the stamp band. The distorted picture is converted to that format and, when its
//! size differs, scaled to the reference size with bicubic swscale (the usual VMAF practice)
//! before the same rows are kept. Rows are copied straight into libvmaf's own buffer, so the crop
//! costs nothing extra, and scaler contexts and their output frames are reused across frames.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::frame::Video;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::QualityError;
use crate::vmaf::{ChromaLayout, VmafPicture};

/// The libvmaf layout and bit depth of an FFmpeg pixel format it can take without conversion.
fn direct_layout(format: Pixel) -> Option<(ChromaLayout, u32)> {
    Some(match format {
        Pixel::YUV420P | Pixel::YUVJ420P => (ChromaLayout::Yuv420, 8),
        Pixel::YUV422P | Pixel::YUVJ422P => (ChromaLayout::Yuv422, 8),
        Pixel::YUV444P | Pixel::YUVJ444P => (ChromaLayout::Yuv444, 8),
        Pixel::GRAY8 => (ChromaLayout::Yuv400, 8),
        Pixel::YUV420P10LE => (ChromaLayout::Yuv420, 10),
        Pixel::YUV422P10LE => (ChromaLayout::Yuv422, 10),
        Pixel::YUV444P10LE => (ChromaLayout::Yuv444, 10),
        _ => return None,
    })
}

/// The smallest width and scored height accepted: libvmaf 2.3.1 (and its `vmaf` tool) crashes
/// on pictures 16 pixels wide or high, and scores of tinier pictures mean nothing anyway.
const MIN_SCORED_SIZE: u32 = crate::vmaf::MIN_PICTURE_SIZE as u32;

/// The geometry every scored picture pair shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoredGeometry {
    /// FFmpeg format both pictures are brought to.
    pub format: Pixel,
    pub layout: ChromaLayout,
    pub bits: u32,
    /// Full reference picture size (the distorted picture is scaled to this).
    pub width: u32,
    pub height: u32,
    /// Rows scored, counted from the top (the stamp band and below are left out).
    pub scored_height: u32,
}

impl ScoredGeometry {
    /// The geometry for a reference frame, keeping rows above `band_top` when given.
    pub fn for_reference(
        path: &Path,
        frame: &Video,
        band_top: Option<u32>,
    ) -> Result<Self, QualityError> {
        let (format, layout, bits) = match direct_layout(frame.format()) {
            Some((layout, bits)) => (frame.format(), layout, bits),
            None => (Pixel::YUV420P, ChromaLayout::Yuv420, 8),
        };
        let (width, height) = (frame.width(), frame.height());
        let chroma_rows = 1 << layout.chroma_shift().1;
        let scored_height = match band_top {
            Some(top) => top.min(height) / chroma_rows * chroma_rows,
            None => height,
        };
        // libvmaf's filters need a few rows and columns to work on.
        if scored_height < MIN_SCORED_SIZE || width < MIN_SCORED_SIZE {
            return Err(match band_top {
                Some(band_top) if height >= MIN_SCORED_SIZE && width >= MIN_SCORED_SIZE => {
                    QualityError::NoAreaAboveBand {
                        path: path.to_owned(),
                        height,
                        band_top,
                    }
                }
                _ => QualityError::PictureTooSmall {
                    path: path.to_owned(),
                    width,
                    height,
                },
            });
        }
        Ok(ScoredGeometry {
            format,
            layout,
            bits,
            width,
            height,
            scored_height,
        })
    }
}

/// A swscale context for one input shape, and the frame it writes into.
struct CachedScaler {
    input: (Pixel, u32, u32),
    context: scaling::Context,
    output: Video,
}

/// Converts the frames of one input into libvmaf pictures of a fixed geometry.
pub struct PicturePreparer {
    path: PathBuf,
    geometry: ScoredGeometry,
    scaler: Option<CachedScaler>,
    /// Whether any frame needed scaling (reported so users know what was compared).
    pub scaled_any: bool,
}

impl PicturePreparer {
    pub fn new(path: &Path, geometry: ScoredGeometry) -> Self {
        PicturePreparer {
            path: path.to_owned(),
            geometry,
            scaler: None,
            scaled_any: false,
        }
    }

    /// The libvmaf picture for `frame`, converted, scaled and cropped as needed.
    pub fn prepare(&mut self, frame: &Video) -> Result<VmafPicture, QualityError> {
        let g = self.geometry;
        if frame.format() == g.format && frame.width() == g.width && frame.height() == g.height {
            return copy_rows(frame, &g);
        }
        if frame.width() != g.width || frame.height() != g.height {
            self.scaled_any = true;
        }
        let input = (frame.format(), frame.width(), frame.height());
        if self.scaler.as_ref().is_none_or(|s| s.input != input) {
            let context = scaling::Context::get(
                input.0,
                input.1,
                input.2,
                g.format,
                g.width,
                g.height,
                scaling::Flags::BICUBIC,
            )
            .map_err(|source| self.scale_error(frame, source))?;
            self.scaler = Some(CachedScaler {
                input,
                context,
                output: Video::empty(),
            });
        }
        let scaler = self.scaler.as_mut().expect("scaler was just ensured");
        if let Err(source) = scaler.context.run(frame, &mut scaler.output) {
            return Err(QualityError::Scale {
                path: self.path.clone(),
                format: frame.format(),
                width: frame.width(),
                height: frame.height(),
                source,
            });
        }
        copy_rows(&scaler.output, &g)
    }

    fn scale_error(&self, frame: &Video, source: ffmpeg::Error) -> QualityError {
        QualityError::Scale {
            path: self.path.clone(),
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
            source,
        }
    }
}

/// Copies the scored rows of a frame already in the scored format and size.
fn copy_rows(frame: &Video, g: &ScoredGeometry) -> Result<VmafPicture, QualityError> {
    let mut picture = VmafPicture::alloc(g.layout, g.bits, g.width, g.scored_height)?;
    for plane in 0..g.layout.plane_count() {
        let stride = frame.stride(plane);
        let data = frame.data(plane);
        for y in 0..picture.height(plane) {
            let row = picture.row_mut(plane, y);
            let start = y * stride;
            row.copy_from_slice(&data[start..start + row.len()]);
        }
    }
    Ok(picture)
}
