//! Pairing reference and distorted frames: by frame stamp, or by presentation order.
//!
//! Stamp pairing is a merge join driven by the distorted stream: for each distorted frame we pull
//! reference frames until one carries the same frame number or a later one. Reference frames are
//! kept in a small window (not the whole segment) so that duplicated distorted frames, and small
//! reorderings, still find their partner while memory stays bounded. A distorted frame pairs
//! with the reference frame bearing its stamp however many frames were dropped, repeated or
//! re-timed around it; everything that cannot be paired is counted, never guessed.

use std::collections::VecDeque;
use std::fmt;

use crate::stamp::Stamp;

/// How the two inputs were paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// By the frame stamp drawn into both pictures.
    Stamp,
    /// The n-th decoded distorted frame with the n-th reference frame, as the `vmaf` tool does.
    PresentationOrder,
}

impl fmt::Display for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pairing::Stamp => "frame stamp",
            Pairing::PresentationOrder => "presentation order",
        })
    }
}

/// What alignment found. `paired` counts scored pairs, including duplicates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlignmentCounts {
    pub reference_frames: u64,
    pub distorted_frames: u64,
    pub paired: u64,
    /// Reference frames no distorted frame was paired with (dropped by the distorted side, or
    /// beyond its end).
    pub unmatched_reference: u64,
    /// Distorted frames with no reference partner (no stamp, another stream's stamp, a frame
    /// number the reference does not have, or beyond the reference's end).
    pub unmatched_distorted: u64,
    /// Paired distorted frames whose reference frame had already been paired (repeats).
    pub duplicated_distorted: u64,
    /// Reference frames whose stamp could not be read.
    pub unstamped_reference: u64,
    /// Distorted frames whose stamp could not be read (part of `unmatched_distorted`).
    pub unstamped_distorted: u64,
    /// Distorted frames stamped with another stream's id (part of `unmatched_distorted`).
    pub foreign_distorted: u64,
}

impl fmt::Display for AlignmentCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} reference and {} distorted frames: {} paired ({} repeats), {} unmatched reference, \
             {} unmatched distorted ({} unstamped, {} of another stream)",
            self.reference_frames,
            self.distorted_frames,
            self.paired,
            self.duplicated_distorted,
            self.unmatched_reference,
            self.unmatched_distorted,
            self.unstamped_distorted,
            self.foreign_distorted
        )
    }
}

/// A reference frame waiting in the window, and how many distorted frames paired with it.
struct Slot<R> {
    frame_number: u64,
    frame: R,
    pairs: u64,
}

/// Pairs distorted frames with reference frames by stamp, holding at most `capacity` reference
/// frames.
pub struct StampAligner<R> {
    window: VecDeque<Slot<R>>,
    capacity: usize,
    stream_id: Option<u64>,
    reference_exhausted: bool,
    counts: AlignmentCounts,
}

impl<R> StampAligner<R> {
    pub fn new(capacity: usize) -> Self {
        StampAligner {
            window: VecDeque::with_capacity(capacity + 1),
            capacity: capacity.max(1),
            stream_id: None,
            reference_exhausted: false,
            counts: AlignmentCounts::default(),
        }
    }

    /// Finds the reference partner of a distorted frame stamped `stamp`, pulling reference frames
    /// (each with the stamp read from it) from `next_reference` as needed.
    pub fn pair<E>(
        &mut self,
        stamp: Option<Stamp>,
        mut next_reference: impl FnMut() -> Result<Option<(Option<Stamp>, R)>, E>,
    ) -> Result<Option<&R>, E> {
        self.counts.distorted_frames += 1;
        let Some(stamp) = stamp else {
            self.counts.unstamped_distorted += 1;
            self.counts.unmatched_distorted += 1;
            return Ok(None);
        };
        loop {
            if self.stream_id.is_some_and(|id| id != stamp.stream_id) {
                self.counts.foreign_distorted += 1;
                self.counts.unmatched_distorted += 1;
                return Ok(None);
            }
            if let Some(position) = self
                .window
                .iter()
                .position(|slot| slot.frame_number == stamp.frame_number)
            {
                let slot = &mut self.window[position];
                if slot.pairs > 0 {
                    self.counts.duplicated_distorted += 1;
                }
                slot.pairs += 1;
                self.counts.paired += 1;
                return Ok(Some(&self.window[position].frame));
            }
            let passed = self
                .window
                .back()
                .is_some_and(|slot| slot.frame_number > stamp.frame_number);
            if passed || self.reference_exhausted {
                self.counts.unmatched_distorted += 1;
                return Ok(None);
            }
            match next_reference()? {
                None => self.reference_exhausted = true,
                Some((reference_stamp, frame)) => self.push_reference(reference_stamp, frame),
            }
        }
    }

    fn push_reference(&mut self, stamp: Option<Stamp>, frame: R) {
        self.counts.reference_frames += 1;
        let Some(stamp) = stamp else {
            self.counts.unstamped_reference += 1;
            self.counts.unmatched_reference += 1;
            return;
        };
        let stream_id = *self.stream_id.get_or_insert(stamp.stream_id);
        if stamp.stream_id != stream_id {
            self.counts.unmatched_reference += 1;
            return;
        }
        self.window.push_back(Slot {
            frame_number: stamp.frame_number,
            frame,
            pairs: 0,
        });
        if self.window.len() > self.capacity
            && let Some(evicted) = self.window.pop_front()
            && evicted.pairs == 0
        {
            self.counts.unmatched_reference += 1;
        }
    }

    /// Counts the reference frames left over (still in the window or never pulled).
    pub fn finish<E>(
        mut self,
        mut next_reference: impl FnMut() -> Result<Option<(Option<Stamp>, R)>, E>,
    ) -> Result<AlignmentCounts, E> {
        if !self.reference_exhausted {
            while let Some((stamp, frame)) = next_reference()? {
                self.push_reference(stamp, frame);
            }
        }
        let unpaired = self.window.iter().filter(|slot| slot.pairs == 0).count() as u64;
        self.counts.unmatched_reference += unpaired;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(frame_number: u64) -> Option<Stamp> {
        Some(Stamp {
            stream_id: 7,
            frame_number,
        })
    }

    /// Runs the aligner over reference frames 0..reference_len and the given distorted stamps,
    /// returning the reference frame each distorted frame paired with.
    fn run(reference_len: u64, distorted: &[Option<Stamp>]) -> (Vec<Option<u64>>, AlignmentCounts) {
        let mut reference = (0..reference_len).map(|n| (stamp(n), n));
        let mut aligner = StampAligner::new(8);
        let pairs = distorted
            .iter()
            .map(|s| {
                aligner
                    .pair(*s, || Ok::<_, ()>(reference.next()))
                    .unwrap()
                    .copied()
            })
            .collect();
        let counts = aligner.finish(|| Ok::<_, ()>(reference.next())).unwrap();
        (pairs, counts)
    }

    #[test]
    fn halved_frame_rate_pairs_every_other_reference_frame() {
        let distorted: Vec<_> = (0..30).map(|n| stamp(n * 2)).collect();
        let (pairs, counts) = run(60, &distorted);
        assert_eq!(pairs, (0..30).map(|n| Some(n * 2)).collect::<Vec<_>>());
        assert_eq!(counts.paired, 30);
        assert_eq!(counts.unmatched_reference, 30);
        assert_eq!(counts.unmatched_distorted, 0);
        assert_eq!(counts.reference_frames, 60);
    }

    #[test]
    fn duplicates_and_drops_pair_with_their_own_reference_frame() {
        let distorted = [
            stamp(0),
            stamp(1),
            stamp(1),
            stamp(1),
            stamp(4),
            stamp(5),
            stamp(5),
        ];
        let (pairs, counts) = run(8, &distorted);
        assert_eq!(
            pairs,
            vec![
                Some(0),
                Some(1),
                Some(1),
                Some(1),
                Some(4),
                Some(5),
                Some(5)
            ]
        );
        assert_eq!(counts.duplicated_distorted, 3);
        assert_eq!(
            counts.unmatched_reference, 4,
            "frames 2, 3, 6 and 7 were never shown"
        );
    }

    #[test]
    fn unstamped_foreign_and_unknown_frames_are_counted_not_paired() {
        let distorted = [
            None,
            stamp(0),
            Some(Stamp {
                stream_id: 8,
                frame_number: 1,
            }),
            stamp(2),
            stamp(0), // a repeat of a frame still in the window
            stamp(99),
        ];
        let (pairs, counts) = run(20, &distorted);
        assert_eq!(pairs, vec![None, Some(0), None, Some(2), Some(0), None]);
        assert_eq!(counts.unstamped_distorted, 1);
        assert_eq!(counts.foreign_distorted, 1);
        assert_eq!(counts.unmatched_distorted, 3);
        assert_eq!(counts.paired, 3);
        assert_eq!(counts.unmatched_reference, 18);
    }

    #[test]
    fn a_frame_older_than_the_window_is_unmatched() {
        let distorted = [stamp(0), stamp(15), stamp(1)];
        let (pairs, counts) = run(20, &distorted);
        assert_eq!(pairs, vec![Some(0), Some(15), None]);
        assert_eq!(counts.unmatched_distorted, 1);
    }
}
