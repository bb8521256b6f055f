//! The renditions of one stream on one timeline: a media sequence number starts at the same
//! presentation time in every rendition, within one frame (RFC 8216 §6.2.4), so a player
//! switching renditions neither skips nor repeats.
//!
//! The first rendition to report a sequence number sets its reference; every other rendition's
//! segment of that number is compared with it, within the longer of the two frame periods. A
//! rendition that drifts off is reported when it goes off, and again only after it has been
//! back in line. State: the reference of the newest [`MAX_TIMELINE_SEQS`] sequence numbers and
//! whether each of at most 64 renditions is off.

use std::collections::BTreeMap;

use super::rules::Id;
use super::{Finding, Violation};

/// Sequence numbers whose reference PTS is kept.
pub const MAX_TIMELINE_SEQS: usize = 256;
/// Renditions judged per stream (more is not a ladder, it is a hostile master).
const MAX_RENDITIONS: usize = 64;
/// Frame period assumed when none is known (24 fps, the longest common one).
const DEFAULT_FRAME_SECS: f64 = 1.0 / 24.0;

#[derive(Debug, Clone)]
struct Reference {
    rendition: String,
    pts: f64,
    frame: f64,
}

/// One stream's renditions against each other.
#[derive(Debug, Clone, Default)]
pub struct TimelineChecker {
    by_seq: BTreeMap<u64, Reference>,
    /// Each rendition seen, and whether it is off the timeline now.
    renditions: Vec<(String, bool)>,
}

impl TimelineChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoded segment `seq` of `rendition` (downloaded from `url`), whose first frame is
    /// presented at `first_pts_secs` and whose frames last `frame_secs`.
    pub fn on_segment(
        &mut self,
        rendition: &str,
        seq: u64,
        first_pts_secs: f64,
        frame_secs: f64,
        url: &str,
    ) -> Vec<Violation> {
        if !first_pts_secs.is_finite() {
            return Vec::new();
        }
        let frame = if frame_secs.is_finite() && frame_secs > 0.0 {
            frame_secs
        } else {
            DEFAULT_FRAME_SECS
        };
        let state = match self.renditions.iter().position(|(r, _)| r == rendition) {
            Some(i) => i,
            None if self.renditions.len() < MAX_RENDITIONS => {
                self.renditions.push((rendition.to_string(), false));
                self.renditions.len() - 1
            }
            None => return Vec::new(),
        };
        let Some(reference) = self.by_seq.get(&seq) else {
            self.by_seq.insert(
                seq,
                Reference {
                    rendition: rendition.to_string(),
                    pts: first_pts_secs,
                    frame,
                },
            );
            while self.by_seq.len() > MAX_TIMELINE_SEQS {
                self.by_seq.pop_first();
            }
            return Vec::new();
        };
        if reference.rendition == rendition {
            return Vec::new();
        }
        let tolerance = frame.max(reference.frame);
        let off = (first_pts_secs - reference.pts).abs() > tolerance + 1e-6;
        let was_off = std::mem::replace(&mut self.renditions[state].1, off);
        if !off || was_off {
            return Vec::new();
        }
        vec![
            Finding::new(
                Id::TimelineMisaligned,
                None,
                format!(
                    "segment {seq} starts at PTS {first_pts_secs:.3} s in {rendition} but at {:.3} s in {} (one frame is {tolerance:.3} s)",
                    reference.pts, reference.rendition
                ),
            )
            .at(url),
        ]
    }
}
