//! A small MPEG-TS muxer for H.264 (Annex B) and AAC (ADTS), enough for HLS segments.
//!
//! The broadcaster only repackages what the publisher sent, so muxing in Rust without FFmpeg keeps
//! ingest cheap (no decoder, no per-segment muxer context) and safe. Each segment starts with a
//! PAT and PMT so it is independently playable; key frames carry SPS/PPS in band and a
//! random-access flag; PCR rides on the video PID. Timestamps are the publisher's (FLV ms × 90),
//! kept unchanged across segments so players see one continuous timeline.

use crate::flv::{AacConfig, AvcConfig};

const PACKET: usize = 188;
const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC elementary stream.
pub const AUDIO_PID: u16 = 0x101;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// Writes TS packets into a caller-owned buffer, keeping continuity counters across segments.
#[derive(Debug, Default)]
pub struct TsMuxer {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    pes: Vec<u8>,
}

impl TsMuxer {
    /// A muxer with fresh continuity counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes PAT and PMT (video and, when `audio`, audio) to start a segment.
    pub fn write_tables(&mut self, out: &mut Vec<u8>, audio: bool) {
        let pat = psi_section(0x00, 1, &{
            let mut program = Vec::with_capacity(4);
            program.extend_from_slice(&1u16.to_be_bytes());
            program.extend_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
            program
        });
        write_psi(out, 0, &mut self.cc_pat, &pat);
        let mut pmt_body = Vec::with_capacity(20);
        pmt_body.extend_from_slice(&(0xe000 | VIDEO_PID).to_be_bytes()); // PCR PID
        pmt_body.extend_from_slice(&0xf000u16.to_be_bytes()); // no program info
        pmt_body.push(0x1b);
        pmt_body.extend_from_slice(&(0xe000 | VIDEO_PID).to_be_bytes());
        pmt_body.extend_from_slice(&0xf000u16.to_be_bytes());
        if audio {
            pmt_body.push(0x0f);
            pmt_body.extend_from_slice(&(0xe000 | AUDIO_PID).to_be_bytes());
            pmt_body.extend_from_slice(&0xf000u16.to_be_bytes());
        }
        let pmt = psi_section(0x02, 1, &pmt_body);
        write_psi(out, PMT_PID, &mut self.cc_pmt, &pmt);
    }

    /// Writes one video access unit. `avcc` holds `config.length_size`-prefixed NAL units; they
    /// are rewritten with start codes, after an access unit delimiter and, on key frames, the
    /// parameter sets. Returns false (writing nothing) when a NAL length runs past the data.
    pub fn write_video(
        &mut self,
        out: &mut Vec<u8>,
        config: &AvcConfig,
        avcc: &[u8],
        dts_ms: i64,
        cts_ms: i32,
        keyframe: bool,
    ) -> bool {
        let mut es = std::mem::take(&mut self.pes);
        es.clear();
        es.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]);
        if keyframe {
            for set in config.sps.iter().chain(&config.pps) {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(set);
            }
        }
        let mut pos = 0;
        let ls = config.length_size;
        while pos < avcc.len() {
            if pos + ls > avcc.len() {
                self.pes = es;
                return false;
            }
            let len = avcc[pos..pos + ls]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            pos += ls;
            if pos + len > avcc.len() {
                self.pes = es;
                return false;
            }
            let nal = &avcc[pos..pos + len];
            pos += len;
            // Drop in-band AUDs: we wrote our own.
            if nal.first().map(|b| b & 0x1f) == Some(9) {
                continue;
            }
            es.extend_from_slice(&[0, 0, 0, 1]);
            es.extend_from_slice(nal);
        }
        let dts = ms_to_90k(dts_ms);
        let pts = ms_to_90k(dts_ms + i64::from(cts_ms));
        let pcr = keyframe.then_some(dts).or(Some(dts));
        let header = pes_header(0xe0, pts, Some(dts), 0);
        write_pes(
            out,
            VIDEO_PID,
            &mut self.cc_video,
            &header,
            &es,
            pcr,
            keyframe,
        );
        self.pes = es;
        true
    }

    /// Writes one raw AAC frame with an ADTS header.
    pub fn write_audio(
        &mut self,
        out: &mut Vec<u8>,
        config: &AacConfig,
        frame: &[u8],
        pts_ms: i64,
    ) {
        let mut es = std::mem::take(&mut self.pes);
        es.clear();
        let len = frame.len() + 7;
        es.extend_from_slice(&[
            0xff,
            0xf1,
            ((config.object_type - 1) << 6)
                | (config.frequency_index << 2)
                | (config.channels >> 2),
            ((config.channels & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ]);
        es.extend_from_slice(frame);
        let header = pes_header(0xc0, ms_to_90k(pts_ms), None, es.len());
        write_pes(
            out,
            AUDIO_PID,
            &mut self.cc_audio,
            &header,
            &es,
            None,
            false,
        );
        self.pes = es;
    }
}

fn ms_to_90k(ms: i64) -> u64 {
    (ms.wrapping_mul(90) as u64) & TIMESTAMP_MASK
}

fn pes_header(stream_id: u8, pts: u64, dts: Option<u64>, es_len: usize) -> Vec<u8> {
    let ts_len = if dts.is_some() { 10 } else { 5 };
    let mut h = Vec::with_capacity(9 + ts_len);
    h.extend_from_slice(&[0, 0, 1, stream_id]);
    let pes_len = 3 + ts_len + es_len;
    // Video PES length 0 means unbounded (allowed for video only); audio always fits.
    let field = if stream_id == 0xe0 || pes_len > 0xffff {
        0
    } else {
        pes_len as u16
    };
    h.extend_from_slice(&field.to_be_bytes());
    h.push(0x80);
    h.push(if dts.is_some() { 0xc0 } else { 0x80 });
    h.push(ts_len as u8);
    let marker = if dts.is_some() { 0x30 } else { 0x20 };
    push_timestamp(&mut h, marker, pts);
    if let Some(dts) = dts {
        push_timestamp(&mut h, 0x10, dts);
    }
    h
}

fn push_timestamp(h: &mut Vec<u8>, marker: u8, ts: u64) {
    h.push(marker | (((ts >> 30) as u8 & 7) << 1) | 1);
    h.extend_from_slice(&((((ts >> 15) & 0x7fff) << 1 | 1) as u16).to_be_bytes());
    h.extend_from_slice(&((((ts) & 0x7fff) << 1 | 1) as u16).to_be_bytes());
}

#[allow(clippy::too_many_arguments)]
fn write_pes(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    header: &[u8],
    es: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) {
    let total = header.len() + es.len();
    let mut written = 0;
    let mut first = true;
    while written < total {
        let start = out.len();
        out.push(0x47);
        out.push(if first { 0x40 } else { 0 } | ((pid >> 8) as u8 & 0x1f));
        out.push(pid as u8);
        let mut adaptation = Vec::new();
        if first && (pcr.is_some() || random_access) {
            let mut flags = 0u8;
            if random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            adaptation.push(flags);
            if let Some(pcr) = pcr {
                adaptation.extend_from_slice(&[
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    ((pcr as u8 & 1) << 7) | 0x7e,
                    0,
                ]);
            }
        }
        let remaining = total - written;
        let mut room = PACKET
            - 4
            - if adaptation.is_empty() {
                0
            } else {
                1 + adaptation.len()
            };
        if remaining < room {
            // Stuff with the adaptation field so the payload ends the packet exactly.
            if adaptation.is_empty() {
                let stuffing = room - remaining;
                // Needs at least the length byte; a 1-byte field has no flags byte.
                if stuffing == 1 {
                    out.push(0x30 | *cc);
                    out.push(0);
                } else {
                    out.push(0x30 | *cc);
                    out.push((stuffing - 1) as u8);
                    out.push(0);
                    out.resize(out.len() + stuffing - 2, 0xff);
                }
            } else {
                let stuffing = room - remaining;
                out.push(0x30 | *cc);
                out.push((adaptation.len() + stuffing) as u8);
                out.extend_from_slice(&adaptation);
                out.resize(out.len() + stuffing, 0xff);
            }
            room = remaining;
        } else if adaptation.is_empty() {
            out.push(0x10 | *cc);
        } else {
            out.push(0x30 | *cc);
            out.push(adaptation.len() as u8);
            out.extend_from_slice(&adaptation);
        }
        *cc = (*cc + 1) & 0x0f;
        let mut left = room;
        if written < header.len() {
            let n = (header.len() - written).min(left);
            out.extend_from_slice(&header[written..written + n]);
            written += n;
            left -= n;
        }
        if left > 0 {
            let off = written - header.len();
            out.extend_from_slice(&es[off..off + left]);
            written += left;
        }
        debug_assert_eq!(out.len() - start, PACKET);
        first = false;
    }
}

fn psi_section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(12 + body.len());
    s.push(table_id);
    let len = 5 + body.len() + 4;
    s.extend_from_slice(&(0xb000 | len as u16).to_be_bytes());
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&[0xc1, 0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn write_psi(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let start = out.len();
    out.push(0x47);
    out.push(0x40 | ((pid >> 8) as u8 & 0x1f));
    out.push(pid as u8);
    out.push(0x10 | *cc);
    *cc = (*cc + 1) & 0x0f;
    out.push(0); // pointer field
    out.extend_from_slice(section);
    out.resize(start + PACKET, 0xff);
}

fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_crc_matches_the_well_known_value() {
        // The PAT every FFmpeg TS file starts with (program 1 → PMT 0x1000).
        let pat = psi_section(0, 1, &[0, 1, 0xf0, 0]);
        assert_eq!(&pat[pat.len() - 4..], &[0x2a, 0xb1, 0x04, 0xb2]);
    }

    #[test]
    fn every_packet_is_188_bytes_whatever_the_payload() {
        let cfg = AvcConfig {
            length_size: 4,
            sps: vec![bytes::Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![bytes::Bytes::from_static(&[0x68, 3])],
        };
        let mut mux = TsMuxer::new();
        for size in [
            0usize, 1, 150, 160, 170, 171, 172, 173, 182, 183, 184, 1000, 5000,
        ] {
            let mut out = Vec::new();
            mux.write_tables(&mut out, true);
            let mut avcc = (size as u32).to_be_bytes().to_vec();
            avcc.extend(std::iter::repeat_n(0x65u8, size));
            assert!(mux.write_video(&mut out, &cfg, &avcc, 1000, 40, size % 2 == 0));
            mux.write_audio(
                &mut out,
                &AacConfig {
                    object_type: 2,
                    frequency_index: 4,
                    channels: 2,
                },
                &vec![0x21; size],
                1000,
            );
            assert_eq!(out.len() % PACKET, 0, "payload {size}");
            assert!(out.chunks(PACKET).all(|p| p[0] == 0x47));
        }
        let mut out = Vec::new();
        assert!(!mux.write_video(&mut out, &cfg, &[0, 0, 0, 9, 1], 0, 0, false));
    }
}
