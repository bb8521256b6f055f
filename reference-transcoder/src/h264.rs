//! H.264 bitstream plumbing between FFmpeg's Annex B output and FLV/RTMP's AVCC form.
//!
//! libx264 emits Annex B access units with SPS/PPS repeated in every key frame, which is what
//! MPEG-TS wants. FLV wants length-prefixed NAL units plus one AVCDecoderConfigurationRecord as a
//! sequence header; these helpers convert without another trip through FFmpeg.

/// NAL units of an Annex B buffer (start codes removed).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        let three = data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1;
        if three {
            if let Some(s) = start {
                let mut end = i;
                // A four-byte start code leaves one zero behind the previous NAL.
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start.filter(|&s| s < data.len()) {
        nals.push(&data[s..]);
    }
    nals
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Converts an Annex B access unit to AVCC (4-byte lengths), dropping SPS, PPS and access unit
/// delimiters, which FLV carries in the sequence header instead.
pub fn annexb_to_avcc(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for nal in annexb_nals(data) {
        if matches!(nal_type(nal), 7..=9) || nal.is_empty() {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// First SPS and PPS found in an Annex B access unit.
pub fn find_parameter_sets(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nals = annexb_nals(data);
    let sps = nals.iter().find(|n| nal_type(n) == 7)?;
    let pps = nals.iter().find(|n| nal_type(n) == 8)?;
    Some((sps.to_vec(), pps.to_vec()))
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15) for one SPS and one PPS of 8-bit 4:2:0
/// video, the only kind this crate produces.
pub fn avc_decoder_configuration_record(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let profile = sps.get(1).copied().unwrap_or(66);
    let mut out = vec![
        1,
        profile,
        sps.get(2).copied().unwrap_or(0),
        sps.get(3).copied().unwrap_or(30),
        0xFF, // 4-byte NAL lengths
        0xE1, // one SPS
    ];
    out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    out.extend_from_slice(pps);
    if matches!(profile, 100 | 110 | 122 | 144) {
        // chroma_format_idc = 1 (4:2:0), bit depths 8, no SPS extensions.
        out.extend_from_slice(&[0xFC | 1, 0xF8, 0xF8, 0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let nals = annexb_nals(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9][..]]
        );
        assert_eq!(annexb_to_avcc(&data), vec![0, 0, 0, 3, 0x65, 9, 9]);
        let (sps, pps) = find_parameter_sets(&data).unwrap();
        assert_eq!((sps, pps), (vec![0x67, 1, 2], vec![0x68, 3]));
    }
}
