//! `flv_tags`: FLV tag bodies (what RTMP carries) through `node_broadcaster::flv`'s parsers and
//! on into the segmenter (SPS reading, MPEG-TS muxing), the broadcaster's media path without
//! the RTMP layer.
//!
//! Input: an FLV file (`FLV` header optional): each tag's type, 32-bit timestamp and body are
//! taken from the tag header (a body cut short by the end of the input is passed as is), video
//! tags go to `flv::parse_video` then `Segmenter::push_video`, audio tags to `flv::parse_audio`
//! then `Segmenter::push_audio`, exactly as the RTMP connection does with RTMP message
//! timestamps. The segmenter uses the broadcaster's default settings. Every segment cut must be
//! whole 188-byte TS packets, numbered one after the other, with a positive duration.

use bytes::Bytes;
use node_broadcaster::flv::{self, VideoTag};
use node_broadcaster::segmenter::{Segmenter, SourceSegment};

use super::broadcaster::with_node;

/// One FLV tag: type (8 audio, 9 video, 18 script), timestamp in ms, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// Splits an FLV file into tags (lenient: see the module docs).
pub fn tags(data: &[u8]) -> Vec<Tag> {
    let data = Bytes::copy_from_slice(data);
    let mut pos = 0usize;
    if data.starts_with(b"FLV") && data.len() >= 9 {
        let offset = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
        // Header, then PreviousTagSize0.
        pos = offset.clamp(9, data.len()).saturating_add(4);
    }
    let mut out = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        let timestamp =
            u32::from(h[7]) << 24 | u32::from(h[4]) << 16 | u32::from(h[5]) << 8 | u32::from(h[6]);
        let start = pos + 11;
        let end = start.saturating_add(size).min(data.len());
        out.push(Tag {
            kind: h[0] & 0x1f,
            timestamp,
            body: data.slice(start..end),
        });
        pos = end.saturating_add(4);
    }
    out
}

/// An FLV file holding `tags` (what [`tags`] reads back).
pub fn encode(tags: &[Tag]) -> Vec<u8> {
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for tag in tags {
        let size = tag.body.len().min(0xff_ffff) as u32;
        out.push(tag.kind);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&tag.timestamp.to_be_bytes()[1..]);
        out.push((tag.timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&tag.body[..size as usize]);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
    out
}

/// Feeds one input; panics are the findings.
pub fn run(data: &[u8]) {
    let config = with_node(|t| t.node.state().segmenter_config());
    let mut segmenter = Segmenter::new(config, 0, false);
    let mut expected_seq = 0u64;
    let mut check = |seg: SourceSegment| {
        assert_eq!(
            seg.seq, expected_seq,
            "segments numbered one after the other"
        );
        expected_seq += 1;
        assert!(
            seg.duration_ms > 0,
            "segment {} lasts {} ms",
            seg.seq,
            seg.duration_ms
        );
        assert!(
            seg.data.len().is_multiple_of(188) && seg.data.chunks(188).all(|p| p[0] == 0x47),
            "segment {} is not whole TS packets ({} bytes)",
            seg.seq,
            seg.data.len()
        );
    };
    for tag in tags(data) {
        let dts = i64::from(tag.timestamp);
        match tag.kind {
            9 => {
                if let Ok(video) = flv::parse_video(&tag.body) {
                    if let VideoTag::Config(cfg) = &video {
                        assert!(matches!(cfg.length_size, 1 | 2 | 4));
                    }
                    if let Some(seg) = segmenter.push_video(video, dts) {
                        check(seg);
                    }
                }
            }
            8 => {
                if let Ok(audio) = flv::parse_audio(&tag.body) {
                    segmenter.push_audio(audio, dts);
                }
            }
            _ => {}
        }
    }
    if let Some(seg) = segmenter.finish() {
        check(seg);
    }
}
