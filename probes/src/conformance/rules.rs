//! The rule catalogue: every rule the conformance checker judges, with its stable ID, its
//! severity and the one line that says what it asks and where the requirement is written.
//!
//! IDs are the contract: the journal's `violation` records, the `hls_violations{rule=…}` metric
//! and every report key on them, so an ID is never renamed or reused; a rule that goes away
//! leaves its ID unused. They are `HLS-` followed by upper-case words. Severity follows the
//! source's own word: `Must` where RFC 8216 or Apple's "HLS Authoring Specification for Apple
//! Devices" says MUST (or the RFC states a definition the server cannot contradict), `Should`
//! where it says SHOULD or where the rule is this checker's reading of the text rather than its
//! letter (the message says so). The catalogue is declared once, by the macro below, which also
//! gives the checkers a typed [`Id`] per rule, so a checker cannot emit an ID the catalogue lacks.

use std::fmt;

/// How binding a rule is: the source's MUST or SHOULD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The source says MUST (or MUST NOT): a player may fail on it.
    Must,
    /// The source says SHOULD: a player copes, but worse.
    Should,
}

impl Severity {
    /// `must` or `should`, as the journal and the reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Must => "must",
            Severity::Should => "should",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable ID, e.g. `HLS-TARGETDURATION-EXCEEDED`.
    pub id: &'static str,
    /// Whether the source says MUST or SHOULD.
    pub severity: Severity,
    /// What the rule asks, in one line that cites its source.
    pub message: &'static str,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $severity:ident, $message:literal; )+) => {
        /// A rule of the catalogue, as the checkers name it: its position in [`RULES`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Id {
            $( $(#[$doc])* $variant, )+
        }

        /// Every rule, in catalogue order.
        pub static RULES: &[Rule] = &[
            $( Rule { id: $id, severity: Severity::$severity, message: $message }, )+
        ];
    };
}

catalogue! {
    // Any playlist.
    ExtM3uMissing = "HLS-EXTM3U-MISSING", Must,
        "The first line of every playlist must be #EXTM3U (RFC 8216 §4.3.1.1)";
    PlaylistEncoding = "HLS-PLAYLIST-ENCODING", Must,
        "A playlist must be UTF-8 without a byte order mark and without control characters other than CR and LF (RFC 8216 §4.1)";
    PlaylistContentType = "HLS-PLAYLIST-CONTENT-TYPE", Must,
        "A playlist must be identified by a path ending .m3u8 or .m3u, or by Content-Type application/vnd.apple.mpegurl or audio/mpegurl (RFC 8216 §4)";
    PlaylistMimeType = "HLS-PLAYLIST-MIME-TYPE", Should,
        "A playlist should be served as application/vnd.apple.mpegurl (audio/mpegurl for .m3u) even when its path identifies it (Apple HLS authoring §10.4)";
    TagDuplicate = "HLS-TAG-DUPLICATE", Must,
        "EXT-X-VERSION, each Media Playlist tag and each Media-or-Master Playlist tag must appear at most once (RFC 8216 §4.3.1.2, §4.3.3, §4.3.5; RFC 8216bis §4.4.3 for EXT-X-PART-INF and EXT-X-SERVER-CONTROL)";
    MixedPlaylist = "HLS-MIXED-PLAYLIST", Must,
        "A playlist must be either a Media or a Master Playlist: no master tags in a media playlist, no media or segment tags in a master (RFC 8216 §4.1, §4.3.4)";
    TagValueInvalid = "HLS-TAG-VALUE-INVALID", Must,
        "Tag values and attribute lists must have their defined types, quoted strings closed, and no attribute named twice in one list (RFC 8216 §4.2, §4.3)";
    VersionIncompatible = "HLS-VERSION-INCOMPATIBLE", Must,
        "EXT-X-VERSION must be a decimal-integer at least as high as the tags and attributes used require; without it the playlist must suit version 1 (RFC 8216 §4.3.1.2, §7)";
    AllowCacheRemoved = "HLS-ALLOW-CACHE-REMOVED", Should,
        "EXT-X-ALLOW-CACHE was removed in protocol version 7 and should not be sent (RFC 8216 §7)";
    ProgramIdRemoved = "HLS-PROGRAM-ID-REMOVED", Should,
        "The PROGRAM-ID attribute of EXT-X-STREAM-INF was removed in protocol version 6 and should not be sent (RFC 8216 §7)";
    RequiredAttributeMissing = "HLS-REQUIRED-ATTRIBUTE-MISSING", Must,
        "A tag must carry its REQUIRED attributes: URI of EXT-X-MAP, METHOD of EXT-X-KEY, TYPE, GROUP-ID and NAME of EXT-X-MEDIA (RFC 8216 §4.3.2.4, §4.3.2.5, §4.3.4.1)";

    // Media playlists.
    TargetDurationInvalid = "HLS-TARGETDURATION-INVALID", Must,
        "A media playlist must carry EXT-X-TARGETDURATION with a decimal-integer number of seconds (RFC 8216 §4.3.3.1)";
    TargetDurationExceeded = "HLS-TARGETDURATION-EXCEEDED", Must,
        "EXTINF rounded to the nearest integer must not exceed EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1)";
    TargetDurationChanged = "HLS-TARGETDURATION-CHANGED", Must,
        "The EXT-X-TARGETDURATION of a media playlist must not change (RFC 8216 §6.2.1)";
    ExtinfInvalid = "HLS-EXTINF-INVALID", Must,
        "EXTINF must give the segment's duration as a non-negative decimal number of seconds (RFC 8216 §4.3.2.1)";
    ExtinfMissing = "HLS-EXTINF-MISSING", Must,
        "Every media segment must have an EXTINF tag (RFC 8216 §4.3.2.1)";
    SegmentUriMissing = "HLS-SEGMENT-URI-MISSING", Must,
        "A media segment's tags must be followed by its URI line (RFC 8216 §4.3.2)";
    SequenceTagLate = "HLS-SEQUENCE-TAG-LATE", Must,
        "EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE must come before the first segment, and the latter before any EXT-X-DISCONTINUITY (RFC 8216 §4.3.3.2, §4.3.3.3)";
    MediaSequenceDecreased = "HLS-MEDIA-SEQUENCE-DECREASED", Must,
        "EXT-X-MEDIA-SEQUENCE must not decrease or wrap from one refresh to the next (RFC 8216 §6.2.2)";
    DiscontinuitySequenceDecreased = "HLS-DISCONTINUITY-SEQUENCE-DECREASED", Must,
        "EXT-X-DISCONTINUITY-SEQUENCE must not decrease or wrap from one refresh to the next (RFC 8216 §6.2.2)";
    SegmentChanged = "HLS-SEGMENT-CHANGED", Must,
        "A segment still listed must keep its media sequence number, URI and duration: a server only appends segments and removes them from the start (RFC 8216 §6.2.1, §6.2.2)";
    DiscontinuityNumberChanged = "HLS-DISCONTINUITY-NUMBER-CHANGED", Must,
        "When an EXT-X-DISCONTINUITY leaves the playlist, EXT-X-DISCONTINUITY-SEQUENCE must be there and incremented so listed segments keep their discontinuity numbers (RFC 8216 §6.2.2)";
    SegmentReappeared = "HLS-SEGMENT-REAPPEARED", Should,
        "A segment URI that left a live playlist should not be listed again: segments leave in order and for good (reading of RFC 8216 §6.2.2, which does not forbid URI reuse outright)";
    PlaylistStale = "HLS-PLAYLIST-STALE", Must,
        "A live media playlist must list a new segment no later than 1.5 × the target duration after its previous version (RFC 8216 §6.2.1)";
    WindowTooShort = "HLS-WINDOW-TOO-SHORT", Must,
        "A live playlist must not remove a segment if that leaves it shorter than 3 × the target duration (RFC 8216 §6.2.2)";
    WindowFewSegments = "HLS-WINDOW-FEW-SEGMENTS", Must,
        "A live playlist must provide at least six segments (Apple HLS authoring §8.11)";
    SegmentAfterEndlist = "HLS-SEGMENT-AFTER-ENDLIST", Must,
        "Once a playlist has EXT-X-ENDLIST no segment may be added and the tag must stay (RFC 8216 §4.3.3.4, §6.2.1)";
    ProgramDateTimeMissing = "HLS-PROGRAM-DATE-TIME-MISSING", Must,
        "EXT-X-PROGRAM-DATE-TIME must be present in every live media playlist (Apple HLS authoring §8.4)";
    ProgramDateTimeBackwards = "HLS-PROGRAM-DATE-TIME-BACKWARDS", Must,
        "EXT-X-PROGRAM-DATE-TIME must not make the date-to-segment mapping ambiguous: a later segment's date must not precede an earlier one's (RFC 8216 §6.2.1)";
    PlaylistCacheControl = "HLS-PLAYLIST-CACHE-CONTROL", Should,
        "A live media playlist should not be cacheable beyond half a target duration (no-cache, no-store or max-age ≤ TD/2), or caches hide the updates RFC 8216 §6.2.1 requires from the reloads of §6.3.4";
    MapMissing = "HLS-MAP-MISSING", Must,
        "Every fragmented MP4 segment must have an EXT-X-MAP applied to it (RFC 8216 §3.3; Apple HLS authoring §8.20)";

    // Segments as downloaded.
    SegmentUnavailable = "HLS-SEGMENT-UNAVAILABLE", Must,
        "A listed segment's URI must let clients obtain its data: a 2xx response (RFC 8216 §6.2.1, §6.2.2)";
    SegmentEmpty = "HLS-SEGMENT-EMPTY", Must,
        "A listed segment's URI must deliver its media data, not an empty body (RFC 8216 §6.2.1)";
    SegmentContentType = "HLS-SEGMENT-CONTENT-TYPE", Should,
        "Segments should be served with a recommended MIME type such as video/mp2t, video/mp4, video/iso.segment or audio/mp4 (Apple HLS authoring §10.4)";
    SegmentNotKeyframe = "HLS-SEGMENT-NOT-KEYFRAME", Must,
        "Video segments must start with an IDR frame (Apple HLS authoring §7.4)";
    SegmentDurationMismatch = "HLS-SEGMENT-DURATION-MISMATCH", Must,
        "EXTINF must be within one video frame of the segment's actual media duration (Apple HLS authoring §8.1)";
    SegmentOverTarget = "HLS-SEGMENT-OVER-TARGET", Must,
        "A segment's media must not exceed the target duration by more than 0.5 s (Apple HLS authoring §7.7)";

    // Master playlists.
    StreamInfUriMissing = "HLS-STREAM-INF-URI-MISSING", Must,
        "EXT-X-STREAM-INF must be followed by the URI line of its media playlist (RFC 8216 §4.3.4.2)";
    StreamInfBandwidth = "HLS-STREAM-INF-BANDWIDTH", Must,
        "Every EXT-X-STREAM-INF must have BANDWIDTH, a decimal-integer of bits per second (RFC 8216 §4.3.4.2)";
    StreamInfCodecsMissing = "HLS-STREAM-INF-CODECS-MISSING", Must,
        "EXT-X-STREAM-INF must always provide CODECS (Apple HLS authoring §9.1; RFC 8216 §4.3.4.2 says SHOULD)";
    StreamInfResolutionMissing = "HLS-STREAM-INF-RESOLUTION-MISSING", Must,
        "EXT-X-STREAM-INF must provide RESOLUTION when the variant has video (Apple HLS authoring §9.2)";
    StreamInfFrameRateMissing = "HLS-STREAM-INF-FRAME-RATE-MISSING", Must,
        "EXT-X-STREAM-INF must provide FRAME-RATE when the variant has video (Apple HLS authoring §9.15)";
    StreamInfAverageBandwidthMissing = "HLS-STREAM-INF-AVERAGE-BANDWIDTH-MISSING", Must,
        "EXT-X-STREAM-INF must include AVERAGE-BANDWIDTH (Apple HLS authoring §9.14)";
    MediaGroupMissing = "HLS-MEDIA-GROUP-MISSING", Must,
        "AUDIO, VIDEO, SUBTITLES and CLOSED-CAPTIONS must name the GROUP-ID of an EXT-X-MEDIA of that TYPE in the master (RFC 8216 §4.3.4.2)";
    IndependentSegmentsMissing = "HLS-INDEPENDENT-SEGMENTS-MISSING", Should,
        "A master playlist whose video segments start with an IDR should carry EXT-X-INDEPENDENT-SEGMENTS (Apple HLS authoring §9.11; RFC 8216 §4.3.5.1)";

    // What a master declares against what its media measure.
    VariantPeakBitrate = "HLS-VARIANT-PEAK-BITRATE", Must,
        "A live variant's peak segment bit rate (RFC 8216 §4.1) must stay below 125 % of its BANDWIDTH (Apple HLS authoring §1.29)";
    VariantAverageBitrate = "HLS-VARIANT-AVERAGE-BITRATE", Must,
        "A live variant's average segment bit rate must stay below 110 % of its AVERAGE-BANDWIDTH (Apple HLS authoring §1.28)";
    VariantCodecsMismatch = "HLS-VARIANT-CODECS-MISMATCH", Must,
        "CODECS must list every media format present in the variant's segments (RFC 8216 §6.2.4)";
    VariantResolutionMismatch = "HLS-VARIANT-RESOLUTION-MISMATCH", Should,
        "RESOLUTION should be the pixel size of the variant's video (RFC 8216 §4.3.4.2)";
    VariantFrameRateMismatch = "HLS-VARIANT-FRAME-RATE-MISMATCH", Should,
        "FRAME-RATE should be at least the variant's highest frame rate, rounded to three decimals (RFC 8216 §4.3.4.2)";

    // Across renditions.
    TimelineMisaligned = "HLS-TIMELINE-MISALIGNED", Must,
        "Matching content in variant streams must have matching timestamps: a media sequence number starts at the same PTS, within one frame, in every rendition (RFC 8216 §6.2.4)";

    // Low-latency media playlists (the second edition of HLS, draft-pantos-hls-rfc8216bis).
    PartInfMissing = "HLS-PART-INF-MISSING", Must,
        "A media playlist with EXT-X-PART tags must carry EXT-X-PART-INF with its PART-TARGET (RFC 8216bis §4.4.3.7)";
    PartOverTarget = "HLS-PART-OVER-TARGET", Must,
        "A partial segment's DURATION must not exceed the PART-TARGET of EXT-X-PART-INF (RFC 8216bis §4.4.4.9)";
    PartHoldBack = "HLS-PART-HOLD-BACK", Must,
        "A playlist with EXT-X-PART-INF must give EXT-X-SERVER-CONTROL a PART-HOLD-BACK of at least twice the PART-TARGET (RFC 8216bis §4.4.3.8)";
    PreloadHintMissing = "HLS-PRELOAD-HINT-MISSING", Should,
        "A live playlist with parts whose server blocks reloads should hint its next part with EXT-X-PRELOAD-HINT:TYPE=PART, so clients request it before it exists (reading of RFC 8216bis §6.2.6 and its Low-Latency Server Configuration Profile)";
}

impl Id {
    /// This rule's catalogue entry.
    pub(crate) fn rule(self) -> &'static Rule {
        &RULES[self as usize]
    }

    /// This rule's bit in a [`RuleSet`].
    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// The rule with ID `id`, if the catalogue has one.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// A set of rules (the catalogue has fewer than 64, which a test pins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RuleSet(u64);

impl RuleSet {
    pub(crate) fn insert(&mut self, id: Id) {
        self.0 |= id.bit();
    }

    pub(crate) fn remove(&mut self, id: Id) {
        self.0 &= !id.bit();
    }

    pub(crate) fn contains(self, id: Id) -> bool {
        self.0 & id.bit() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_well_formed_and_fit_a_rule_set() {
        assert!(RULES.len() <= 64, "RuleSet holds 64 rules");
        assert!(RULES.len() >= 25);
        for (i, r) in RULES.iter().enumerate() {
            assert!(
                RULES[..i].iter().all(|o| o.id != r.id),
                "{} is in the catalogue twice",
                r.id
            );
            assert!(r.id.starts_with("HLS-"), "{}", r.id);
            assert!(
                r.id[4..]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.id
            );
            assert!(
                r.message.contains("RFC 8216") || r.message.contains("Apple HLS authoring"),
                "{}: the message cites no source",
                r.id
            );
            assert!(!r.message.contains('\n'), "{}: one line", r.id);
            assert_eq!(rule(r.id), Some(r));
        }
        assert_eq!(rule("HLS-NOT-A-RULE"), None);
        assert_eq!(
            Id::TimelineMisaligned.rule().id,
            "HLS-TIMELINE-MISALIGNED",
            "Id and RULES are in the same order"
        );
    }
}
