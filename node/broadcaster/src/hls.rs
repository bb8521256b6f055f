//! HLS output: per-stream renditions with sliding-window media playlists and a master playlist.
//!
//! Segments are kept only for the window, in memory as `Bytes` (shared, never copied on serving)
//! or in files (see [`crate::store`]), so what a stream holds is bounded by
//! `window × renditions × segment size`. Playlists are
//! rendered on request from the window: EXT-X-MEDIA-SEQUENCE counts the segments that slid out,
//! EXT-X-DISCONTINUITY-SEQUENCE the discontinuities that slid out, and EXT-X-TARGETDURATION is
//! the largest duration ever listed, rounded up, so it never shrinks during a stream (RFC 8216
//! forbids changing it). An ended stream gets EXT-X-ENDLIST so players read it to the end.
//!
//! Every entry has a place a client keys on: its media sequence number and its discontinuity
//! sequence number (RFC 8216 §4.3.3.2, §4.3.3.3). Neither may change while the entry is listed nor
//! go back for the same playlist URL (§6.2.2: EXT-X-MEDIA-SEQUENCE "MUST NOT decrease"), so a
//! window put back after a crash ([`Rendition::resume`]) takes its numbers from the places its
//! files recorded ([`Place`]), and the next entry continues from them.
//!
//! A rendition segment that no orchestrator produced keeps its place as a gap (RFC 8216bis
//! §4.4.4.7 `#EXT-X-GAP`, with its `#EXTINF` and URI, the URI answering 404): media sequence
//! numbers stay the stream's, so a player skips the gap's duration instead of waiting for a
//! segment that will never come. EXT-X-VERSION stays 3: the draft's version rules (§8) ask no
//! version for EXT-X-GAP, and a higher one would make older players refuse the whole playlist
//! instead of ignoring the one tag they do not know.

use std::collections::VecDeque;
use std::fmt::Write;

use crate::segmenter::SourceSegment;
use crate::store::SegmentBody;

/// Name of the source rendition.
pub const SOURCE: &str = "source";

/// One segment in a rendition's window.
#[derive(Debug, Clone)]
pub struct HlsSegment {
    /// Stream sequence number (also the file name).
    pub seq: u64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// MPEG-TS bytes; `None` for a gap, which is listed but never served.
    pub data: Option<SegmentBody>,
    /// Preceded by `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

impl HlsSegment {
    /// The playlist entry of source segment `seg` (or of one of its renditions) holding `data`.
    pub fn of(seg: &SourceSegment, data: SegmentBody) -> Self {
        Self {
            seq: seg.seq,
            duration_ms: seg.duration_ms,
            data: Some(data),
            discontinuity: seg.discontinuity,
        }
    }

    /// The gap entry of a rendition of `seg` that no orchestrator produced.
    pub fn gap(seg: &SourceSegment) -> Self {
        Self {
            seq: seg.seq,
            duration_ms: seg.duration_ms,
            data: None,
            discontinuity: seg.discontinuity,
        }
    }

    /// Whether this is a gap.
    pub fn is_gap(&self) -> bool {
        self.data.is_none()
    }
}

/// Where an entry sits in its rendition's playlist: the numbers a client keys on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// Media sequence number.
    pub media_sequence: u64,
    /// Discontinuity sequence number: EXT-X-DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY
    /// tags up to and including the entry's own.
    pub discontinuity_sequence: u64,
}

/// One rendition of a stream.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// Name (`source` or the profile name).
    pub name: String,
    /// Picture size, if known.
    pub size: Option<(u32, u32)>,
    /// Nominal bandwidth, bits/s (0: measured from the window).
    pub bandwidth: u64,
    window: VecDeque<HlsSegment>,
    removed: u64,
    removed_discontinuities: u64,
    target_duration_s: u64,
}

impl Rendition {
    /// An empty rendition.
    pub fn new(name: &str, size: Option<(u32, u32)>, bandwidth: u64, target_ms: u64) -> Self {
        Self {
            name: name.to_string(),
            size,
            bandwidth,
            window: VecDeque::new(),
            removed: 0,
            removed_discontinuities: 0,
            target_duration_s: target_ms.div_ceil(1000).max(1),
        }
    }

    /// Adds a segment in sequence order (a late one is inserted at its place) and slides the
    /// window to `capacity`. Media replaces a gap of the same number (a push retried after its
    /// transcode failed); a gap never replaces media a player may already have fetched.
    pub fn push(&mut self, segment: HlsSegment, capacity: usize) {
        let secs = (segment.duration_ms.max(0) as u64).div_ceil(1000);
        self.target_duration_s = self.target_duration_s.max(secs);
        let at = self.window.partition_point(|s| s.seq < segment.seq);
        if let Some(kept) = self.window.get_mut(at).filter(|s| s.seq == segment.seq) {
            if !segment.is_gap() {
                *kept = segment;
            }
        } else if at == 0 && self.removed > 0 && self.window.len() >= capacity {
            return; // Older than everything kept: it already slid out.
        } else {
            self.window.insert(at, segment);
        }
        self.slide(capacity);
    }

    /// Drops the oldest entries beyond `capacity`, counting them and the discontinuity tags
    /// that leave with them, so that the places of the entries still listed do not move.
    fn slide(&mut self, capacity: usize) {
        while self.window.len() > capacity {
            if let Some(old) = self.window.pop_front() {
                // The first entry carries its tag only when something was listed before it.
                if old.discontinuity && self.removed > 0 {
                    self.removed_discontinuities += 1;
                }
                self.removed += 1;
            }
        }
    }

    /// Whether the entry at `index` of the window is rendered after an EXT-X-DISCONTINUITY tag.
    fn tagged(&self, index: usize, discontinuity: bool) -> bool {
        discontinuity && (index > 0 || self.removed > 0)
    }

    /// The place `seq` takes if pushed now (its file records it, for [`Rendition::resume`]).
    pub fn place_of(&self, seq: u64, discontinuity: bool) -> Place {
        let at = self.window.partition_point(|s| s.seq < seq);
        let tags_before = self
            .window
            .iter()
            .take(at)
            .enumerate()
            .filter(|(i, s)| self.tagged(*i, s.discontinuity))
            .count() as u64;
        Place {
            media_sequence: self.removed + at as u64,
            discontinuity_sequence: self.removed_discontinuities
                + tags_before
                + self.tagged(at, discontinuity) as u64,
        }
    }

    /// Lists `entries` (in sequence order, each with the place it had when a crashed process
    /// listed it) as this rendition's window, numbered so that no listed entry's place goes
    /// back: where the recorded places agree (every entry pushed in order) they are kept
    /// exactly, and where they do not the numbers move forward, never back.
    pub fn resume(&mut self, entries: Vec<(HlsSegment, Place)>, capacity: usize) {
        self.removed = entries
            .iter()
            .enumerate()
            .map(|(i, (_, p))| p.media_sequence.saturating_sub(i as u64))
            .max()
            .unwrap_or(0);
        let mut tags = 0u64;
        let mut removed_discontinuities = 0u64;
        for (i, (segment, place)) in entries.iter().enumerate() {
            tags += self.tagged(i, segment.discontinuity) as u64;
            removed_discontinuities =
                removed_discontinuities.max(place.discontinuity_sequence.saturating_sub(tags));
        }
        self.removed_discontinuities = removed_discontinuities;
        self.window = entries
            .into_iter()
            .map(|(segment, _)| {
                let secs = (segment.duration_ms.max(0) as u64).div_ceil(1000);
                self.target_duration_s = self.target_duration_s.max(secs);
                segment
            })
            .collect();
        self.slide(capacity);
    }

    /// The segment `seq`, if still in the window.
    pub fn segment(&self, seq: u64) -> Option<&HlsSegment> {
        self.window.iter().find(|s| s.seq == seq)
    }

    /// Segments in the window.
    pub fn segments(&self) -> impl Iterator<Item = &HlsSegment> {
        self.window.iter()
    }

    /// Bits per second: nominal, or the peak measured in the window.
    pub fn effective_bandwidth(&self) -> u64 {
        if self.bandwidth > 0 {
            return self.bandwidth;
        }
        self.window
            .iter()
            .filter_map(|s| Some((s.data.as_ref()?.len() as u64, s.duration_ms)))
            .map(|(len, ms)| len * 8 * 1000 / ms.max(1) as u64)
            .max()
            .unwrap_or(1)
    }

    /// The media playlist; segment URIs are `<name>/<seq>.ts` relative to `/stream/<id>/`.
    pub fn media_playlist(&self, ended: bool) -> String {
        let mut out = String::with_capacity(128 + self.window.len() * 48);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_s);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.removed);
        if self.removed_discontinuities > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.removed_discontinuities
            );
        }
        for (i, s) in self.window.iter().enumerate() {
            // A discontinuity on the first listed segment is still emitted: it marks the format
            // change relative to whatever a player played before.
            if self.tagged(i, s.discontinuity) {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if s.is_gap() {
                out.push_str("#EXT-X-GAP\n");
            }
            let _ = writeln!(
                out,
                "#EXTINF:{:.3},\n{}/{}.ts",
                s.duration_ms as f64 / 1000.0,
                self.name,
                s.seq
            );
        }
        if ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// The master playlist listing `renditions` (media playlists at `<id>/<name>.m3u8`).
pub fn master_playlist(manifest_id: &str, renditions: &[&Rendition]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for r in renditions {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH={}",
            r.effective_bandwidth()
        );
        if let Some((w, h)) = r.size {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        let _ = writeln!(out, "\n{manifest_id}/{}.m3u8", r.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, ms: i64, disc: bool) -> HlsSegment {
        HlsSegment {
            seq,
            duration_ms: ms,
            data: Some(SegmentBody::Memory(bytes::Bytes::from_static(b"x"))),
            discontinuity: disc,
        }
    }

    fn gap(seq: u64, ms: i64, disc: bool) -> HlsSegment {
        HlsSegment {
            data: None,
            ..seg(seq, ms, disc)
        }
    }

    #[test]
    fn window_slides_and_counts_what_left() {
        let mut r = Rendition::new("source", Some((640, 360)), 0, 2000);
        for seq in 0..5 {
            r.push(seg(seq, 2000, seq == 2), 3);
        }
        let p = r.media_playlist(false);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{p}");
        assert!(p.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(
            p.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nsource/2.ts"),
            "{p}"
        );
        assert!(!p.contains("ENDLIST"));
        r.push(seg(5, 2500, false), 3);
        let p = r.media_playlist(true);
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{p}");
        assert!(p.contains("#EXT-X-TARGETDURATION:3\n"));
        assert!(p.ends_with("source/5.ts\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn late_segments_are_inserted_in_order() {
        let mut r = Rendition::new("P240p30fps16x9", None, 600_000, 2000);
        r.push(seg(1, 2000, false), 6);
        r.push(seg(0, 2000, false), 6);
        let seqs: Vec<u64> = r.segments().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![0, 1]);
        let m = master_playlist("abc", &[&r]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=600000\nabc/P240p30fps16x9.m3u8\n"
        );
    }

    #[test]
    fn a_gap_keeps_its_number_extinf_and_uri_behind_ext_x_gap() {
        let mut r = Rendition::new("P144p30fps16x9", Some((256, 144)), 0, 2000);
        r.push(seg(0, 2000, false), 3);
        r.push(gap(1, 2000, false), 3);
        r.push(seg(2, 2000, false), 3);
        r.push(gap(3, 2500, true), 3);
        assert_eq!(
            r.media_playlist(true),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-GAP\n#EXTINF:2.000,\nP144p30fps16x9/1.ts\n\
             #EXTINF:2.000,\nP144p30fps16x9/2.ts\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-GAP\n#EXTINF:2.500,\nP144p30fps16x9/3.ts\n\
             #EXT-X-ENDLIST\n"
        );
        assert!(r.segment(1).is_some_and(HlsSegment::is_gap));
        assert!(r.segment(2).is_some_and(|s| !s.is_gap()));
        // One byte in 2 s: gaps have no bytes and do not count.
        assert_eq!(r.effective_bandwidth(), 4);
    }

    /// Every listed entry's place, read from the playlist as a client reads it (RFC 8216
    /// §4.3.3.2, §4.3.3.3), keyed by its URI's number.
    fn places(playlist: &str) -> Vec<(u64, Place)> {
        let number = |tag: &str| {
            playlist
                .lines()
                .find_map(|l| l.strip_prefix(tag))
                .map_or(0, |n| n.parse().unwrap())
        };
        let mut msn = number("#EXT-X-MEDIA-SEQUENCE:");
        let mut dsn = number("#EXT-X-DISCONTINUITY-SEQUENCE:");
        let mut out = Vec::new();
        for line in playlist.lines() {
            if line == "#EXT-X-DISCONTINUITY" {
                dsn += 1;
            } else if let Some(uri) = line.strip_suffix(".ts") {
                let seq = uri.rsplit('/').next().unwrap().parse().unwrap();
                let place = Place {
                    media_sequence: msn,
                    discontinuity_sequence: dsn,
                };
                out.push((seq, place));
                msn += 1;
            }
        }
        out
    }

    #[test]
    fn place_of_is_the_place_the_pushed_entry_is_listed_at() {
        let mut r = Rendition::new("source", None, 0, 2000);
        for seq in 0..12 {
            let disc = [0, 3, 4, 9].contains(&seq);
            let expected = r.place_of(seq, disc);
            r.push(seg(seq, 2000, disc), 3);
            let listed = places(&r.media_playlist(false));
            assert_eq!(listed.last(), Some(&(seq, expected)), "after {seq}");
        }
        // A first-ever entry flagged as a discontinuity has no tag to lose: the numbers of
        // the entries after it stay put when it slides out.
        assert!(
            r.media_playlist(false)
                .contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n")
        );
    }

    #[test]
    fn a_resumed_window_lists_every_entry_at_its_place_and_numbers_on() {
        let mut before = Rendition::new("P144p30fps16x9", None, 0, 2000);
        for seq in 0..9 {
            let entry = if seq == 7 {
                gap(seq, 2000, false)
            } else {
                seg(seq, 2000, [2, 6].contains(&seq))
            };
            before.push(entry, 4);
        }
        let listed = places(&before.media_playlist(false));
        let entries = before
            .segments()
            .cloned()
            .zip(listed.iter().map(|(_, p)| *p))
            .collect();
        let mut after = Rendition::new("P144p30fps16x9", None, 0, 2000);
        after.resume(entries, 4);
        assert_eq!(after.media_playlist(false), before.media_playlist(false));
        for r in [&mut before, &mut after] {
            r.push(seg(9, 2000, true), 4);
            r.push(seg(10, 2000, false), 4);
        }
        assert_eq!(after.media_playlist(false), before.media_playlist(false));
    }

    #[test]
    fn places_that_disagree_move_numbers_forward_never_back() {
        let mut r = Rendition::new("source", None, 0, 2000);
        let at = |msn, dsn| Place {
            media_sequence: msn,
            discontinuity_sequence: dsn,
        };
        // Entry 11 was listed at 12 (an entry before it was dropped): every entry moves up by
        // one rather than 11 going back.
        r.resume(
            vec![
                (seg(10, 2000, false), at(10, 0)),
                (seg(11, 2000, true), at(12, 3)),
            ],
            6,
        );
        let listed = places(&r.media_playlist(false));
        assert_eq!(listed, [(10, at(11, 2)), (11, at(12, 3))]);
    }

    #[test]
    fn media_replaces_a_gap_of_its_number_and_a_gap_never_replaces_media() {
        let mut r = Rendition::new("P144p30fps16x9", None, 0, 2000);
        r.push(gap(0, 2000, false), 6);
        r.push(seg(1, 2000, false), 6);
        r.push(seg(0, 2000, false), 6);
        r.push(gap(1, 2000, false), 6);
        let kinds: Vec<(u64, bool)> = r.segments().map(|s| (s.seq, s.is_gap())).collect();
        assert_eq!(kinds, [(0, false), (1, false)]);
        assert!(!r.media_playlist(false).contains("GAP"));
    }
}
