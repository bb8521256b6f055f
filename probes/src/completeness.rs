//! Renditions that never appeared: a source segment with no transcoded counterpart.
//!
//! When an orchestrator fails a segment and the broadcaster has nowhere else to send it, the
//! source playlist gets the segment and the rendition playlists simply do not: HLS numbers
//! segments by position, so nothing in a rendition's playlist shows the hole. The frame stamps
//! do: every transcoded segment starts on the same stamped frame as the source segment it was
//! made from. The source clip loops, so a stamp recurs once per loop: the ledger counts, per
//! stamp, the source segments and each rendition's segments, and when the stream ends it names
//! the source segments that a rendition has fewer of (the latest ones, when a stamp recurs) — only those seen at least `grace` before the end, so segments still in flight when the
//! stream stopped are not blamed. A rendition segment whose stamp could not be read may stand for
//! any source segment, so each one forgives one hole (never a false alarm from a blurred stamp).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::UnixMs;
use crate::hls::GAP_FAILURE;
use crate::observe::SegmentObservation;
use crate::quality::SOURCE_RENDITION;

/// A source segment that a rendition lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRendition {
    pub rendition: String,
    /// The source segment's media sequence number.
    pub source_seq: u64,
    /// Its first stamped frame.
    pub first_frame: u32,
}

/// Source and rendition segments seen by one stream's puller.
#[derive(Debug, Default)]
pub struct RenditionLedger {
    /// First stamp → every source segment starting on it: (seq, first seen).
    source: BTreeMap<u32, Vec<(u64, UnixMs)>>,
    /// Rendition → first stamp → segments seen starting on it.
    renditions: BTreeMap<String, BTreeMap<u32, usize>>,
    /// Rendition → segments accounted for without a stamp: media whose stamp was unreadable, and
    /// gaps the playlist declared (each already reported as a failed segment of its own).
    unstamped: BTreeMap<String, usize>,
}

impl RenditionLedger {
    /// Records a successfully downloaded segment (failed ones are reported on their own).
    pub fn record(&mut self, o: &SegmentObservation) {
        if !o.success {
            if o.failure.as_deref() == Some(GAP_FAILURE) {
                *self.unstamped.entry(o.rendition.clone()).or_default() += 1;
            }
            return;
        }
        let stamp = o.media.as_ref().and_then(|m| m.first_stamp_frame);
        if o.rendition.eq_ignore_ascii_case(SOURCE_RENDITION) {
            if let (Some(frame), Some(seen)) = (stamp, o.first_seen_unix_ms) {
                self.source.entry(frame).or_default().push((o.seq, seen));
            }
            return;
        }
        match stamp {
            Some(frame) => {
                *self
                    .renditions
                    .entry(o.rendition.clone())
                    .or_default()
                    .entry(frame)
                    .or_default() += 1;
            }
            None => *self.unstamped.entry(o.rendition.clone()).or_default() += 1,
        }
    }

    /// Source segments seen before `end − grace` that a transcoded rendition in `renditions`
    /// never delivered. Empty when the target publishes no `source` rendition.
    pub fn missing(
        &self,
        renditions: &[String],
        end: UnixMs,
        grace: Duration,
    ) -> Vec<MissingRendition> {
        let cutoff = end.saturating_sub(grace.as_millis() as UnixMs);
        let mut missing = Vec::new();
        for rendition in renditions
            .iter()
            .filter(|r| !r.eq_ignore_ascii_case(SOURCE_RENDITION))
        {
            let seen = self.renditions.get(rendition);
            let mut holes = Vec::new();
            for (frame, occurrences) in &self.source {
                let due: Vec<u64> = occurrences
                    .iter()
                    .filter(|(_, first_seen)| *first_seen <= cutoff)
                    .map(|(seq, _)| *seq)
                    .collect();
                let have = seen.and_then(|s| s.get(frame)).copied().unwrap_or(0);
                let lacking = due.len().saturating_sub(have);
                holes.extend(
                    due[due.len() - lacking..]
                        .iter()
                        .map(|seq| MissingRendition {
                            rendition: rendition.clone(),
                            source_seq: *seq,
                            first_frame: *frame,
                        }),
                );
            }
            holes.sort_by_key(|h| h.source_seq);
            let forgiven = self.unstamped.get(rendition).copied().unwrap_or(0);
            missing.extend(holes.into_iter().skip(forgiven));
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{SegmentLatency, SegmentMedia};

    fn segment(rendition: &str, seq: u64, stamp: Option<u32>, seen: UnixMs) -> SegmentObservation {
        SegmentObservation {
            stream_key: "s".into(),
            rendition: rendition.into(),
            seq,
            url: None,
            success: true,
            failure: None,
            extinf_secs: Some(2.0),
            discontinuity: false,
            first_seen_unix_ms: Some(seen),
            download_started_unix_ms: None,
            download_finished_unix_ms: None,
            download_ms: None,
            bytes: 1,
            http_status: Some(200),
            content_type: None,
            media: Some(SegmentMedia {
                first_stamp_frame: stamp,
                ..SegmentMedia::default()
            }),
            latency: SegmentLatency::default(),
        }
    }

    #[test]
    fn names_the_source_segments_a_rendition_lacks_once_their_grace_is_over() {
        let mut ledger = RenditionLedger::default();
        for (seq, frame) in [(0, 0), (1, 60), (2, 120), (3, 180)] {
            ledger.record(&segment(
                "source",
                seq,
                Some(frame),
                1_000 + seq as i64 * 2_000,
            ));
        }
        // The rendition skipped the source's seq 1; its playlist numbers the rest 0, 1, 2.
        ledger.record(&segment("P240p", 0, Some(0), 3_000));
        ledger.record(&segment("P240p", 1, Some(120), 7_000));
        let names = ["source".to_owned(), "P240p".to_owned()];
        // Seq 3 (seen at 7 s) is still within its grace at 10 s.
        let missing = ledger.missing(&names, 10_000, Duration::from_secs(4));
        assert_eq!(
            missing,
            vec![MissingRendition {
                rendition: "P240p".into(),
                source_seq: 1,
                first_frame: 60,
            }]
        );
        // Later, seq 3 is due too.
        assert_eq!(
            ledger.missing(&names, 20_000, Duration::from_secs(4)).len(),
            2
        );
        // An unreadable stamp forgives one hole.
        ledger.record(&segment("P240p", 2, None, 9_000));
        assert_eq!(
            ledger.missing(&names, 20_000, Duration::from_secs(4)).len(),
            1
        );
    }

    #[test]
    fn a_looping_source_counts_each_recurrence_of_a_stamp() {
        let mut ledger = RenditionLedger::default();
        // A two-segment clip looped three times: stamps 0, 60, 0, 60, 0, 60.
        for seq in 0..6u64 {
            let frame = if seq % 2 == 0 { 0 } else { 60 };
            ledger.record(&segment("source", seq, Some(frame), seq as i64 * 2_000));
        }
        for (seq, frame) in [(0, 0), (1, 60), (2, 0), (3, 60)] {
            ledger.record(&segment(
                "P360p",
                seq,
                Some(frame),
                seq as i64 * 2_000 + 500,
            ));
        }
        let names = ["P360p".to_owned()];
        let missing = ledger.missing(&names, 60_000, Duration::from_secs(4));
        let seqs: Vec<u64> = missing.iter().map(|m| m.source_seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn a_target_without_a_source_rendition_is_not_judged() {
        let mut ledger = RenditionLedger::default();
        ledger.record(&segment("720p", 0, Some(0), 0));
        let names = ["720p".to_owned()];
        assert!(ledger.missing(&names, 60_000, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_declared_gap_is_not_also_a_missing_rendition() {
        let mut ledger = RenditionLedger::default();
        for seq in 0..3 {
            ledger.record(&segment(
                SOURCE_RENDITION,
                seq,
                Some(seq as u32 * 60),
                1_000,
            ));
        }
        ledger.record(&segment("P240p", 0, Some(0), 2_000));
        let mut gap = segment("P240p", 1, None, 2_000);
        gap.success = false;
        gap.failure = Some(GAP_FAILURE.into());
        ledger.record(&gap);
        let renditions = ["P240p".to_owned()];
        let missing = ledger.missing(&renditions, 100_000, Duration::from_secs(1));
        // seq 1 is the gap, reported on its own; only seq 2 was never delivered.
        assert_eq!(
            missing.iter().map(|m| m.source_seq).collect::<Vec<_>>(),
            [2]
        );
    }
}
