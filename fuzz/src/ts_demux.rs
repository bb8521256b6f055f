//! `ts_demux`: a downloaded segment through the probes' demuxer and the checks that read what it
//! found. `probes::decode_segment` demuxes and decodes segments fetched from broadcasters and
//! orchestrators nobody here controls (MPEG-TS, or whatever FFmpeg's probe recognises, read from
//! memory through `reference_transcoder::memio`); `SegmentChecker::check` then judges codec,
//! resolution, duration, continuity, drift and stamps from those facts. The segment is checked
//! as two consecutive segments of one rendition and as the same sequence number of a second
//! rendition, so the continuity and drift arithmetic runs on the input's timestamps.
//!
//! The broadcaster never demuxes TS (`node_broadcaster::ts` is a muxer, reached by `flv_tags`
//! and `rtmp_chunks`).

use bytes::Bytes;
use probes::{CheckOptions, PulledSegment, SegmentChecker};

/// A downloaded segment as the puller reports it.
pub fn pulled(rendition: &str, seq: u64, body: &[u8]) -> PulledSegment {
    PulledSegment {
        rendition: rendition.to_string(),
        seq,
        url: format!("http://127.0.0.1/{rendition}/{seq}.ts"),
        extinf_secs: 2.0,
        discontinuity: false,
        target_duration_secs: 2.0,
        first_seen_unix_ms: 1_000,
        download_started_unix_ms: 1_000,
        download_finished_unix_ms: 1_010,
        http_status: Some(200),
        content_type: Some("video/mp2t".into()),
        size: body.len() as u64,
        body: Ok(Bytes::copy_from_slice(body)),
        init_size: 0,
        byte_range: None,
    }
}

/// Feeds one input; panics are the findings.
pub fn run(data: &[u8]) {
    let decoded = probes::decode_segment(data);
    if let Ok(segment) = &decoded {
        let _ = segment.frame_secs();
        let _ = segment.duration_secs();
        let _ = segment.stamps().count();
    }
    let checker = SegmentChecker::new("fuzz", None, CheckOptions::default()).expect_stream_id(1);
    checker.announce_resolution("P240p30fps16x9", (426, 240));
    for (rendition, seq) in [("source", 0), ("source", 1), ("P240p30fps16x9", 1)] {
        let checked = checker.check(&pulled(rendition, seq, data), Some(&decoded));
        assert!(checked.verdict("download").is_some());
    }
}
