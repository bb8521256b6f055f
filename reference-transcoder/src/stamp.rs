//! The frame stamp: a stream id and a frame number drawn into every source frame as big
//! black/white cells, and the reader that gets them back from a decoded frame of any size.
//!
//! Design: the stamp lives in a band across the bottom [`BAND_HEIGHT_FRACTION`] of the picture,
//! cut into a grid of [`STAMP_COLUMNS`] × [`STAMP_ROWS`] cells. Everything is proportional to the
//! frame, so a rendition scaled to any size (256×144 included) is read with the same geometry.
//! A cell is at least 1/32 of the width, large enough that a 400 kbps H.264 encode of a 144p
//! rendition keeps each cell's centre clearly black or white. Each row starts with a
//! white/black sync pair and ends with another; the reader takes its black and white levels from
//! those sync cells (so limited/full range and encoder drift do not matter), refuses any cell
//! whose level is ambiguous, and checks a fixed marker nibble plus a CRC-16 over the 64 payload
//! bits. A damaged stamp therefore reads as `None`, never as a wrong value.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use serde::{Deserialize, Serialize};

/// Fraction of the picture height, at the bottom, that the stamp band covers. Quality scoring
/// should exclude this band (it is identical in every rendition and would flatter the score).
pub const BAND_HEIGHT_FRACTION: f64 = 0.125;
/// Cells per row of the band.
pub const STAMP_COLUMNS: usize = 32;
/// Rows of cells in the band.
pub const STAMP_ROWS: usize = 3;

/// Luma levels used to draw cells (video range black and white).
const BLACK: u8 = 16;
const WHITE: u8 = 235;
/// Fixed marker bits after the payload: a stamp without them is not ours.
const MARKER: [bool; 4] = [true, false, true, false];
/// Bits carried per row after removing the two sync pairs.
const DATA_CELLS_PER_ROW: usize = STAMP_COLUMNS - 4;
const PAYLOAD_BITS: usize = 32 + 32 + 16;

/// What every source frame carries: which stream it belongs to and its number within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameStamp {
    pub stream_id: u32,
    pub frame_number: u32,
}

/// Why a stamp could not be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StampError {
    #[error("cannot draw a stamp on a {format:?} frame: only yuv420p/yuvj420p are supported")]
    UnsupportedFormat { format: Pixel },
    #[error("frame {width}x{height} is too small for a stamp (needs at least 64x32)")]
    FrameTooSmall { width: u32, height: u32 },
}

/// The band's pixel rows `[top, bottom)` for a picture of `height` rows: what quality scoring
/// should leave out.
pub fn band_rows(height: u32) -> (u32, u32) {
    let top = band_top(height as usize);
    (top as u32, height)
}

fn band_top(height: usize) -> usize {
    height - ((height as f64 * BAND_HEIGHT_FRACTION).round() as usize)
}

/// Cell rectangle `(x0, x1, y0, y1)` in pixels (end exclusive) for a picture of this size.
fn cell_rect(width: usize, height: usize, row: usize, col: usize) -> (usize, usize, usize, usize) {
    let top = band_top(height);
    let band = height - top;
    let x0 = col * width / STAMP_COLUMNS;
    let x1 = (col + 1) * width / STAMP_COLUMNS;
    let y0 = top + row * band / STAMP_ROWS;
    let y1 = top + (row + 1) * band / STAMP_ROWS;
    (x0, x1, y0, y1)
}

/// Role of each cell in a row: `Some(colour)` for sync cells, `None` for data cells.
fn sync_cell(col: usize) -> Option<bool> {
    match col {
        0 => Some(true),
        1 => Some(false),
        c if c == STAMP_COLUMNS - 2 => Some(true),
        c if c == STAMP_COLUMNS - 1 => Some(false),
        _ => None,
    }
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn payload_bytes(stamp: FrameStamp) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&stamp.stream_id.to_be_bytes());
    b[4..].copy_from_slice(&stamp.frame_number.to_be_bytes());
    b
}

/// The bits drawn into the data cells, in row-major order.
fn stamp_bits(stamp: FrameStamp) -> [bool; DATA_CELLS_PER_ROW * STAMP_ROWS] {
    let bytes = payload_bytes(stamp);
    let crc = crc16(&bytes);
    let mut bits = [false; DATA_CELLS_PER_ROW * STAMP_ROWS];
    let mut i = 0;
    for byte in bytes.iter().chain(crc.to_be_bytes().iter()) {
        for k in (0..8).rev() {
            bits[i] = (byte >> k) & 1 == 1;
            i += 1;
        }
    }
    for m in MARKER {
        bits[i] = m;
        i += 1;
    }
    debug_assert_eq!(i, PAYLOAD_BITS + MARKER.len());
    bits
}

/// Draws `stamp` into a YUV420P luma/chroma frame in place.
pub fn write_stamp(frame: &mut frame::Video, stamp: FrameStamp) -> Result<(), StampError> {
    let format = frame.format();
    if !matches!(format, Pixel::YUV420P | Pixel::YUVJ420P) {
        return Err(StampError::UnsupportedFormat { format });
    }
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    if width < 64 || height < 32 {
        return Err(StampError::FrameTooSmall {
            width: frame.width(),
            height: frame.height(),
        });
    }
    let bits = stamp_bits(stamp);
    let stride = frame.stride(0);
    let luma = frame.data_mut(0);
    let mut bit = 0;
    for row in 0..STAMP_ROWS {
        for col in 0..STAMP_COLUMNS {
            let white = match sync_cell(col) {
                Some(w) => w,
                None => {
                    bit += 1;
                    bits[bit - 1]
                }
            };
            let (x0, x1, y0, y1) = cell_rect(width, height, row, col);
            let level = if white { WHITE } else { BLACK };
            for y in y0..y1 {
                luma[y * stride + x0..y * stride + x1].fill(level);
            }
        }
    }
    // Neutral chroma keeps the band pure black/white after any colour conversion.
    let top = band_top(height) / 2;
    for plane in 1..3 {
        let stride = frame.stride(plane);
        let rows = frame.plane_height(plane) as usize;
        let cols = frame.plane_width(plane) as usize;
        let data = frame.data_mut(plane);
        for y in top..rows {
            data[y * stride..y * stride + cols].fill(128);
        }
    }
    Ok(())
}

/// Whether the first plane of `format` is 8-bit luma, one byte per pixel.
pub fn luma_is_first_plane(format: Pixel) -> bool {
    matches!(
        format,
        Pixel::YUV420P
            | Pixel::YUVJ420P
            | Pixel::YUV422P
            | Pixel::YUVJ422P
            | Pixel::YUV444P
            | Pixel::YUVJ444P
            | Pixel::NV12
            | Pixel::NV21
            | Pixel::GRAY8
    )
}

/// Reads the stamp from a decoded frame of any size whose first plane is 8-bit luma.
/// Returns `None` when the frame has no stamp or it is damaged.
pub fn read_stamp(frame: &frame::Video) -> Option<FrameStamp> {
    if !luma_is_first_plane(frame.format()) {
        return None;
    }
    read_stamp_luma(
        frame.data(0),
        frame.stride(0),
        frame.width() as usize,
        frame.height() as usize,
    )
}

/// Reads the stamp from a raw 8-bit luma plane (`stride` bytes per row).
pub fn read_stamp_luma(
    luma: &[u8],
    stride: usize,
    width: usize,
    height: usize,
) -> Option<FrameStamp> {
    if width < 64 || height < 32 || stride < width || luma.len() < stride * (height - 1) + width {
        return None;
    }
    let mut levels = [[0f64; STAMP_COLUMNS]; STAMP_ROWS];
    for (row, row_levels) in levels.iter_mut().enumerate() {
        for (col, level) in row_levels.iter_mut().enumerate() {
            *level = cell_centre_mean(luma, stride, width, height, row, col);
        }
    }
    let (mut white_sum, mut black_sum, mut n) = (0.0, 0.0, 0.0);
    for row in &levels {
        for (col, &v) in row.iter().enumerate() {
            match sync_cell(col) {
                Some(true) => white_sum += v,
                Some(false) => black_sum += v,
                None => continue,
            }
            n += 0.5;
        }
    }
    let (white, black) = (white_sum / n, black_sum / n);
    let contrast = white - black;
    if contrast < 60.0 {
        return None;
    }
    let mid = (white + black) / 2.0;
    let margin = contrast * 0.2;
    let classify = |v: f64| -> Option<bool> {
        if v >= mid + margin {
            Some(true)
        } else if v <= mid - margin {
            Some(false)
        } else {
            None
        }
    };
    let mut bits = [false; DATA_CELLS_PER_ROW * STAMP_ROWS];
    let mut i = 0;
    for row in &levels {
        for (col, &v) in row.iter().enumerate() {
            let value = classify(v)?;
            match sync_cell(col) {
                Some(expected) if expected != value => return None,
                Some(_) => {}
                None => {
                    bits[i] = value;
                    i += 1;
                }
            }
        }
    }
    if bits[PAYLOAD_BITS..PAYLOAD_BITS + MARKER.len()] != MARKER {
        return None;
    }
    let mut bytes = [0u8; 10];
    for (k, b) in bits[..PAYLOAD_BITS].iter().enumerate() {
        bytes[k / 8] |= (*b as u8) << (7 - k % 8);
    }
    let crc = u16::from_be_bytes([bytes[8], bytes[9]]);
    if crc16(&bytes[..8]) != crc {
        return None;
    }
    Some(FrameStamp {
        stream_id: u32::from_be_bytes(bytes[0..4].try_into().ok()?),
        frame_number: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
    })
}

/// Mean luma of the central half (in both directions) of a cell: the cell's edges are where
/// scaling and block coding smear neighbours together.
fn cell_centre_mean(
    luma: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    row: usize,
    col: usize,
) -> f64 {
    let (x0, x1, y0, y1) = cell_rect(width, height, row, col);
    let (qx, qy) = ((x1 - x0) / 4, (y1 - y0) / 4);
    let (x0, x1, y0, y1) = (
        x0 + qx,
        (x1 - qx).max(x0 + qx + 1),
        y0 + qy,
        (y1 - qy).max(y0 + qy + 1),
    );
    let mut sum = 0u64;
    for y in y0..y1.min(height) {
        sum += luma[y * stride + x0..y * stride + x1.min(width)]
            .iter()
            .map(|&v| v as u64)
            .sum::<u64>();
    }
    let count = ((y1.min(height) - y0) * (x1.min(width) - x0)).max(1);
    sum as f64 / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(width: u32, height: u32) -> frame::Video {
        let mut f = frame::Video::new(Pixel::YUV420P, width, height);
        for p in 0..3 {
            f.data_mut(p).fill(100);
        }
        f
    }

    #[test]
    fn round_trips_at_several_sizes() {
        for (w, h) in [(1280, 720), (256, 144), (853, 480), (64, 32)] {
            let mut f = blank(w, h);
            let stamp = FrameStamp {
                stream_id: 0xDEAD_BEEF,
                frame_number: 12345,
            };
            write_stamp(&mut f, stamp).unwrap();
            assert_eq!(read_stamp(&f), Some(stamp), "{w}x{h}");
        }
    }

    #[test]
    fn unstamped_frame_reads_none() {
        assert_eq!(read_stamp(&blank(640, 360)), None);
    }

    #[test]
    fn crc_matches_reference_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }
}
