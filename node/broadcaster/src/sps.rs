//! Picture size from an H.264 sequence parameter set.
//!
//! The master playlist needs each rendition's RESOLUTION and the segmenter must notice a
//! publisher changing resolution mid-stream; both come from the SPS the publisher already sends,
//! so the broadcaster never decodes video. Only the fields before the frame size are walked
//! (Exp-Golomb, scaling lists skipped); a malformed SPS yields `None`, never a panic: every
//! value is the publisher's word, so the size arithmetic is checked and oversized pictures are
//! refused.

/// Width and height in pixels, after cropping.
pub fn picture_size(sps: &[u8]) -> Option<(u32, u32)> {
    let rbsp = unescape(sps.get(1..)?);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bits(1)?;
        }
        r.ue()?;
        r.ue()?;
        r.bits(1)?;
        if r.bits(1)? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bits(1)?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?;
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?;
    }
    r.bits(1)?; // direct_8x8_inference
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bits(1)? == 1 {
        let (l, rr, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma_format_idc {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_x = l.checked_add(rr)?.checked_mul(unit_x)?;
        crop_y = t.checked_add(b)?.checked_mul(unit_y)?;
    }
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = (2 - frame_mbs_only)
        .checked_mul(height_map_units)?
        .checked_mul(16)?
        .checked_sub(crop_y)?;
    (width > 0 && height > 0 && width <= 16384 && height <= 16384).then_some((width, height))
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Removes emulation-prevention bytes (00 00 03 → 00 00).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_x264_sps_sizes_with_cropping() {
        // libx264 (ultrafast, Baseline) for 640x360.
        let baseline = [
            0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03,
            0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x58, 0xba, 0x80,
        ];
        assert_eq!(picture_size(&baseline), Some((640, 360)));
        // libx264 (medium, High) for 426x240: width and height both cropped.
        let high = [
            0x67, 0x64, 0x00, 0x15, 0xac, 0xd9, 0x41, 0xb1, 0xfe, 0x4f, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x62, 0xd9, 0x60,
        ];
        assert_eq!(picture_size(&high), Some((426, 240)));
    }

    /// Writes Exp-Golomb and plain bits, for hand-made parameter sets.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn bits(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }

        fn ue(&mut self, v: u64) -> &mut Self {
            let coded = v + 1;
            let len = 64 - coded.leading_zeros();
            self.bits(len - 1, 0).bits(len, coded)
        }

        fn finish(&mut self) -> Vec<u8> {
            self.bits(1, 1);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, b| (acc << 1) | u8::from(*b)))
                .collect()
        }
    }

    /// A Baseline SPS (NAL header included) with the given size fields and optional crop.
    fn baseline_sps(width_mbs_minus1: u64, height_minus1: u64, crop: Option<[u64; 4]>) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 66).bits(16, 0x1e); // profile_idc, constraints, level
        w.ue(0).ue(0).ue(0).ue(0); // sps id, log2_max_frame_num, poc type 0, log2_max_poc_lsb
        w.ue(1).bits(1, 0); // max_num_ref_frames, gaps
        w.ue(width_mbs_minus1).ue(height_minus1);
        w.bits(1, 1).bits(1, 1); // frame_mbs_only, direct_8x8_inference
        match crop {
            Some([l, r, t, b]) => {
                w.bits(1, 1).ue(l).ue(r).ue(t).ue(b);
            }
            None => {
                w.bits(1, 0);
            }
        }
        w.bits(1, 0); // no VUI
        let mut sps = vec![0x67];
        sps.extend(w.finish());
        sps
    }

    #[test]
    fn hand_made_sps_reads_back() {
        assert_eq!(picture_size(&baseline_sps(39, 22, None)), Some((640, 368)));
        assert_eq!(
            picture_size(&baseline_sps(39, 22, Some([0, 0, 0, 4]))),
            Some((640, 360))
        );
    }

    #[test]
    fn wire_sized_dimensions_and_crops_are_refused_without_overflow() {
        let huge = u64::from(u32::MAX - 1);
        // pic_width_in_mbs × 16 and the height product overflow 32 bits.
        assert_eq!(picture_size(&baseline_sps(huge - 1, 22, None)), None);
        assert_eq!(picture_size(&baseline_sps(39, huge - 1, None)), None);
        assert_eq!(picture_size(&baseline_sps(0x1000_0000, 22, None)), None);
        // Crop sums and their products overflow.
        assert_eq!(
            picture_size(&baseline_sps(39, 22, Some([huge, huge, 0, 0]))),
            None
        );
        assert_eq!(
            picture_size(&baseline_sps(39, 22, Some([0, 0, 0x8000_0000, 0]))),
            None
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(picture_size(&[0x67]), None);
        assert_eq!(picture_size(&[0x67, 0x64, 0, 0x1e, 0, 0, 0, 0]), None);
    }
}
