//! Low-latency parts measured: which pictures a part brought, and how long after its first one
//! was sent its last byte arrived ([`crate::latency::part_latency`]).
//!
//! A part arrives behind the init segment and the earlier parts of its parent it depends on
//! ([`PulledPart::body`]), so it decodes like a segment; its own pictures are those that decoding
//! its lead alone does not give. Parts of one rendition arrive in order, each one's lead the
//! previous one's whole body, so the presentation times of each rendition's last decode are kept
//! and the lead is decoded again only when that chain breaks (the first part after joining, or
//! after a part that failed).

use std::collections::HashMap;

use crate::decode::{DecodeError, DecodedSegment, decode_segment};
use crate::hls::PulledPart;
use crate::latency::part_latency;
use crate::observe::PartObservation;
use crate::sendlog::SendLog;

/// A rendition's last decoded part: its key, how many parts its body held, the presentation
/// times its decode gave (as `f64` bits, sorted).
struct Decoded {
    key: (u64, u64),
    parts: usize,
    pts: Vec<u64>,
}

/// What decoding one part found.
pub struct PartDecode {
    decoded: Result<DecodedSegment, DecodeError>,
    /// The presentation times of its lead, when decoded here (a broken chain).
    lead: Option<Vec<u64>>,
}

/// The parts of one stream, measured in arrival order.
#[derive(Default)]
pub struct PartMeasure {
    last: HashMap<String, Decoded>,
}

fn pts_bits(decoded: &DecodedSegment) -> Vec<u64> {
    let mut pts: Vec<u64> = decoded
        .frames
        .iter()
        .filter_map(|f| f.pts_secs.map(f64::to_bits))
        .collect();
    pts.sort_unstable();
    pts
}

impl PartMeasure {
    /// Whether `part`'s lead must be decoded with it: it has earlier parts in front and the
    /// last part decoded for its rendition is not the one before it.
    pub fn needs_lead(&self, part: &PulledPart) -> bool {
        match part.lead_parts {
            None | Some(0) => false,
            Some(n) => !self
                .last
                .get(&part.rendition)
                .is_some_and(|d| d.key == (part.msn, part.index.wrapping_sub(1)) && d.parts == n),
        }
    }

    /// Decodes `part` (its lead too when `lead` is set); blocking, for the blocking pool.
    /// `None` when the part cannot be decoded (not downloaded, or its lead incomplete).
    pub fn decode(part: &PulledPart, lead: bool) -> Option<PartDecode> {
        let body = part.body.as_ref().ok()?;
        part.lead_parts?;
        let lead = lead.then(|| {
            let end = (part.lead_size as usize).min(body.len());
            decode_segment(&body[..end])
                .map(|d| pts_bits(&d))
                .unwrap_or_default()
        });
        Some(PartDecode {
            decoded: decode_segment(body),
            lead,
        })
    }

    /// The observation of `part` of `stream_key`, its latency read from its own first stamped
    /// picture and `log`.
    pub fn observe(
        &mut self,
        stream_key: &str,
        part: &PulledPart,
        decode: Option<PartDecode>,
        log: Option<&SendLog>,
    ) -> PartObservation {
        let mut o = PartObservation {
            stream_key: stream_key.to_string(),
            rendition: part.rendition.clone(),
            msn: part.msn,
            index: part.index,
            url: part.url.clone(),
            duration_secs: part.duration_secs,
            independent: part.independent,
            hinted: part.hinted,
            success: part.body.is_ok(),
            failure: part.body.as_ref().err().map(ToString::to_string),
            first_seen_unix_ms: part.first_seen_unix_ms,
            download_started_unix_ms: part.download_started_unix_ms,
            download_finished_unix_ms: part.download_finished_unix_ms,
            bytes: part.size,
            http_status: part.http_status,
            frames: None,
            first_stamp_frame: None,
            first_frame_sent_unix_ms: None,
            part_latency_ms: None,
        };
        let Some(PartDecode { decoded, lead }) = decode else {
            if part.body.is_err() {
                self.last.remove(&part.rendition);
            }
            return o;
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                self.last.remove(&part.rendition);
                o.success = false;
                o.failure = Some(format!("decode: {e}"));
                return o;
            }
        };
        let pts = pts_bits(&decoded);
        let before: &[u64] = match (&lead, self.last.get(&part.rendition)) {
            _ if part.lead_parts == Some(0) => &[],
            (Some(lead), _) => lead,
            (None, Some(last)) => &last.pts,
            (None, None) => &[],
        };
        let own: Vec<_> = decoded
            .frames
            .iter()
            .filter(|f| {
                f.pts_secs
                    .is_none_or(|p| before.binary_search(&p.to_bits()).is_err())
            })
            .collect();
        o.frames = Some(own.len() as u64);
        if let Some(stamp) = own.iter().find_map(|f| f.stamp) {
            o.first_stamp_frame = Some(stamp.frame_number);
            let ours = log.filter(|l| l.stream_id() == stamp.stream_id);
            if let Some((sent, ms)) = ours
                .and_then(|l| part_latency(l, stamp.frame_number, part.download_finished_unix_ms))
            {
                o.first_frame_sent_unix_ms = Some(sent);
                o.part_latency_ms = Some(ms);
            }
        }
        self.last.insert(
            part.rendition.clone(),
            Decoded {
                key: (part.msn, part.index),
                parts: part.lead_parts.unwrap_or(0) + 1,
                pts,
            },
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reference_transcoder::FrameStamp;

    use super::*;
    use crate::decode::FrameFacts;

    const STREAM_ID: u32 = 7;

    /// Part `index` of parent 3, 200 ms of 30 fps from frame `6 × index`, behind `lead_parts`
    /// earlier parts; arrived 250 ms after its first frame was sent at `t0 + 200 × index`.
    fn part(index: u64, lead_parts: Option<usize>, t0: i64) -> PulledPart {
        PulledPart {
            rendition: "r".into(),
            msn: 3,
            index,
            url: format!("http://h/p{index}.mp4"),
            duration_secs: 0.2,
            independent: index == 0,
            hinted: true,
            first_seen_unix_ms: t0,
            download_started_unix_ms: t0,
            download_finished_unix_ms: t0 + 200 * index as i64 + 250,
            http_status: Some(200),
            content_type: Some("video/mp4".into()),
            size: 1000,
            body: Ok(Bytes::from_static(b"bytes")),
            lead_size: 100,
            lead_parts,
            byte_range: None,
        }
    }

    /// What decoding the first `parts` parts of the parent gives: six stamped frames each.
    fn decoded(parts: u64) -> DecodedSegment {
        DecodedSegment {
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            codec: "h264".into(),
            width: 64,
            height: 64,
            fps: Some(30.0),
            audio_codec: None,
            frames: (0..parts * 6)
                .map(|f| FrameFacts {
                    pts_secs: Some(10.0 + f as f64 / 30.0),
                    is_key: f == 0,
                    stamp: Some(FrameStamp {
                        stream_id: STREAM_ID,
                        frame_number: f as u32,
                    }),
                })
                .collect(),
            decode_errors: 0,
            audio_only: false,
        }
    }

    fn sent_log() -> (SendLog, i64) {
        let log = SendLog::new("k", STREAM_ID, 300, 0);
        let t0 = crate::clock::now_unix_ms();
        for f in 0..60u64 {
            log.record(&[f], t0 + (f as i64 * 100) / 3);
        }
        (log, t0)
    }

    #[test]
    fn each_part_is_timed_from_its_own_first_picture_in_a_chain_of_decodes() {
        let (log, t0) = sent_log();
        let mut measure = PartMeasure::default();
        for index in 0..3u64 {
            let p = part(index, Some(index as usize), t0);
            assert!(!measure.needs_lead(&p), "part {index}: the chain holds");
            let decode = PartDecode {
                decoded: Ok(decoded(index + 1)),
                lead: None,
            };
            let o = measure.observe("k", &p, Some(decode), Some(&log));
            assert!(o.success, "{o:?}");
            assert_eq!(o.frames, Some(6), "part {index}: its own pictures only");
            assert_eq!(o.first_stamp_frame, Some(6 * index as u32));
            assert_eq!(o.first_frame_sent_unix_ms, Some(t0 + 200 * index as i64));
            assert_eq!(o.part_latency_ms, Some(250.0));
        }
    }

    #[test]
    fn a_broken_chain_decodes_the_lead_and_a_missing_lead_is_not_decoded() {
        let (log, t0) = sent_log();
        let mut measure = PartMeasure::default();
        // The first part after joining: two earlier parts in front, never decoded here.
        let p = part(2, Some(2), t0);
        assert!(measure.needs_lead(&p));
        let decode = PartDecode {
            decoded: Ok(decoded(3)),
            lead: Some(pts_bits(&decoded(2))),
        };
        let o = measure.observe("k", &p, Some(decode), Some(&log));
        assert_eq!((o.frames, o.first_stamp_frame), (Some(6), Some(12)));
        assert_eq!(o.part_latency_ms, Some(250.0));
        // A part whose earlier parts could not be had: downloaded, but not decodable.
        let lost = part(4, None, t0);
        assert!(PartMeasure::decode(&lost, false).is_none());
        let o = measure.observe("k", &lost, None, Some(&log));
        assert!(o.success);
        assert_eq!((o.frames, o.part_latency_ms), (None, None));
        // A failed download breaks the chain: the next part needs its lead decoded again.
        let mut failed = part(3, Some(3), t0);
        failed.body = Err(crate::hls::PullError::Status {
            url: failed.url.clone(),
            status: 404,
        });
        let o = measure.observe("k", &failed, None, Some(&log));
        assert!(!o.success);
        assert_eq!(o.failure.as_deref(), Some("GET http://h/p3.mp4: HTTP 404"));
        assert!(measure.needs_lead(&part(3, Some(3), t0)));
    }

    #[test]
    fn a_stamp_of_another_stream_or_an_undecodable_part_has_no_latency() {
        let (log, t0) = sent_log();
        let mut measure = PartMeasure::default();
        let mut foreign = decoded(1);
        for f in &mut foreign.frames {
            f.stamp = f.stamp.map(|s| FrameStamp { stream_id: 99, ..s });
        }
        let o = measure.observe(
            "k",
            &part(0, Some(0), t0),
            Some(PartDecode {
                decoded: Ok(foreign),
                lead: None,
            }),
            Some(&log),
        );
        assert_eq!((o.first_stamp_frame, o.part_latency_ms), (Some(0), None));
        let o = measure.observe(
            "k",
            &part(0, Some(0), t0),
            Some(PartDecode {
                decoded: Err(DecodeError::NoFrames { errors: 3 }),
                lead: None,
            }),
            Some(&log),
        );
        assert!(!o.success);
        assert_eq!(
            o.failure.as_deref(),
            Some("decode: no frame could be decoded (3 decode errors)")
        );
    }
}
