//! The text-to-image "model": a deterministic stand-in for a diffusion pipeline.
//!
//! Pixels depend only on (seed, width, height, prompt): a two-colour diagonal gradient chosen by
//! the seed, a handful of seeded discs and rectangles, and a horizontal band whose position and
//! colour come from a hash of the prompt. So the same request gives byte-identical PNGs and a
//! different seed gives different pixels, which is what a probe needs to check determinism and
//! seed handling without model weights. The PRNG is SplitMix64, fixed here so outputs never
//! change with a dependency's version.

use image::ImageEncoder;
use image::codecs::png::PngEncoder;

/// SplitMix64: tiny, well-mixed, and stable forever.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the modulo bias is irrelevant for pictures.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }

    fn colour(&mut self) -> [u8; 3] {
        let v = self.next_u64();
        [v as u8, (v >> 8) as u8, (v >> 16) as u8]
    }
}

/// FNV-1a, so the prompt's contribution is stable across Rust versions (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Renders an RGB8 picture (`width * height * 3` bytes). Callers bound the size.
pub fn render(seed: u64, width: u32, height: u32, prompt: &str) -> Vec<u8> {
    let (w, h) = (width.max(1) as usize, height.max(1) as usize);
    let mut rng = SplitMix64::new(seed);
    let (c0, c1) = (rng.colour(), rng.colour());
    let mut px = vec![0u8; w * h * 3];
    let span = (w + h).max(2) - 2;
    for y in 0..h {
        for x in 0..w {
            let t = ((x + y) * 255 / span.max(1)) as u32;
            let i = (y * w + x) * 3;
            for c in 0..3 {
                px[i + c] = ((u32::from(c0[c]) * (255 - t) + u32::from(c1[c]) * t) / 255) as u8;
            }
        }
    }
    let shapes = 3 + rng.below(5);
    for _ in 0..shapes {
        let colour = rng.colour();
        let cx = rng.below(width.max(1)) as i64;
        let cy = rng.below(height.max(1)) as i64;
        let r = 1 + i64::from(rng.below((width.min(height) / 4).max(1)));
        let disc = rng.below(2) == 0;
        let (x0, x1) = ((cx - r).max(0) as usize, ((cx + r) as usize).min(w - 1));
        let (y0, y1) = ((cy - r).max(0) as usize, ((cy + r) as usize).min(h - 1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (x as i64 - cx, y as i64 - cy);
                if !disc || dx * dx + dy * dy <= r * r {
                    let i = (y * w + x) * 3;
                    px[i..i + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    let hash = fnv1a(prompt.as_bytes());
    let band = [(hash >> 8) as u8, (hash >> 16) as u8, (hash >> 24) as u8];
    let band_h = (h / 10).max(1);
    let band_y = (hash >> 32) as usize % h;
    for y in band_y..(band_y + band_h).min(h) {
        for x in 0..w {
            let i = (y * w + x) * 3;
            for c in 0..3 {
                px[i + c] = ((u16::from(px[i + c]) + u16::from(band[c])) / 2) as u8;
            }
        }
    }
    px
}

/// Encodes RGB8 pixels as PNG; deterministic for given pixels.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(rgb, width, height, image::ColorType::Rgb8)
        .map_err(|e| format!("encoding PNG: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = render(7, 64, 32, "a cat");
        assert_eq!(a.len(), 64 * 32 * 3);
        assert_eq!(a, render(7, 64, 32, "a cat"));
        assert_ne!(a, render(8, 64, 32, "a cat"));
        assert_ne!(a, render(7, 64, 32, "a dog"));
        // Degenerate sizes must not panic.
        assert_eq!(render(1, 1, 1, "").len(), 3);
        let png = encode_png(&a, 64, 32).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn splitmix_reference_value() {
        // First output of SplitMix64 seeded with 0, as published with the algorithm.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
