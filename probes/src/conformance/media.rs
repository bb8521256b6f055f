//! One media playlist followed across refreshes, and the segments downloaded from it.
//!
//! Each refresh is read in one pass (`scan::lines`) into the segments it lists, numbered from
//! EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE, then judged three ways:
//! - playlist-wide rules (headers, required tags, the window's length) are reported when they
//!   start to fail and not again until a refresh passes them ([`Episodes`]);
//! - a segment's own rules (its EXTINF against the target duration, its date) once, on the
//!   refresh that first lists it;
//! - changes from the previous refresh (the media sequence going back, a listed segment
//!   changing, a removed one coming back, no new segment for 1.5 target durations) when they
//!   happen.
//!
//! The window rules (at least 3 target durations, Apple's six segments) are judged once the
//! server has begun removing segments: while a live window fills, a short playlist is the
//! stream's start, not a fault.
//!
//! The previous refresh is kept as digests (`Entry`: sequence number, URI digest, duration,
//! discontinuity number), at most [`MAX_WINDOW`] of the newest, and the URIs that left the
//! window as digests too, at most [`MAX_LEFT`], oldest forgotten first. A refresh whose numbering
//! cannot be read (a malformed sequence tag, numbers past 2^64) is judged on its own and not
//! compared, and leaves the kept state as it was.

use std::collections::{HashSet, VecDeque};

use super::http;
use super::master::{MASTER_TAGS, version_findings};
use super::rules::Id;
use super::scan::{self, LineKind, attributes, date_time_ms, decimal_float, decimal_integer};
use super::{Episodes, Finding, HttpFacts, SegmentFacts, Violation, format_findings};

/// Segments of the previous refresh kept for comparison (the newest ones).
pub const MAX_WINDOW: usize = 8192;
/// URIs that left the window remembered, to catch one coming back.
pub const MAX_LEFT: usize = 4096;

/// Tags RFC 8216 allows once per media playlist (§4.3.1.2, §4.3.3, §4.3.5), and the two
/// low-latency Media Playlist tags of its second edition (RFC 8216bis §4.4.3).
const ONCE: [&str; 11] = [
    "EXT-X-VERSION",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-ENDLIST",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-I-FRAMES-ONLY",
    "EXT-X-INDEPENDENT-SEGMENTS",
    "EXT-X-START",
    "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL",
];

/// A part may outlast PART-TARGET by this much (s) before it is judged over it: the decimal
/// rounding of the two written values.
const PART_ROUNDING_SECS: f64 = 0.001;

/// URI endings of fragmented MP4 segments.
const FMP4_ENDINGS: [&str; 6] = [".m4s", ".mp4", ".cmfv", ".cmfa", ".m4v", ".m4a"];

/// A frame period assumed when a segment's frame rate is unknown: 24 fps, the longest common
/// one, so the duration rule never judges tighter than a real frame.
const DEFAULT_FRAME_SECS: f64 = 1.0 / 24.0;

/// One listed segment.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Media sequence number (its index in the playlist while the playlist is read).
    seq: u64,
    /// Digest of its URI.
    uri: u64,
    /// Where its URI is in the refresh's text (start, end).
    span: (usize, usize),
    uri_line: u32,
    /// EXTINF duration; NaN when the tag is missing or its value is not a number.
    extinf: f64,
    /// Line of its EXTINF, 0 without one.
    extinf_line: u32,
    /// Discontinuity sequence number (the count of discontinuities before it while reading).
    disc: u64,
    gap: bool,
    /// EXT-X-PROGRAM-DATE-TIME applied to it (Unix ms) and its line.
    date: Option<(i64, u32)>,
}

impl Entry {
    fn same_media(&self, other: &Entry) -> bool {
        self.uri == other.uri
            && (self.extinf == other.extinf || (self.extinf.is_nan() && other.extinf.is_nan()))
    }
}

/// What one refresh says, besides its segments.
#[derive(Debug, Default)]
struct Header {
    version: Option<(Option<u64>, u32)>,
    /// Valid value, or `None` with the tag missing or malformed.
    target: Option<u64>,
    target_line: Option<u32>,
    media_sequence: Option<u64>,
    media_sequence_line: Option<u32>,
    discontinuity_sequence: Option<u64>,
    discontinuity_sequence_line: Option<u32>,
    /// A sequence tag was malformed: the segments cannot be numbered.
    unnumbered: bool,
    endlist: bool,
    vod: bool,
    i_frames_only: bool,
    any_date: bool,
    map_line: Option<u32>,
    /// What the low-latency tags say (RFC 8216bis).
    low_latency: LowLatencyHeader,
}

/// The low-latency tags of one refresh.
#[derive(Debug, Default)]
struct LowLatencyHeader {
    /// EXT-X-PART tags, and the line of the first.
    parts: u32,
    first_part_line: Option<u32>,
    /// The longest DURATION of a part, and its line.
    longest_part: Option<(f64, u32)>,
    /// PART-TARGET of EXT-X-PART-INF (s), and the tag's line.
    part_target: Option<(f64, u32)>,
    /// EXT-X-SERVER-CONTROL's line, CAN-BLOCK-RELOAD=YES and PART-HOLD-BACK.
    server_control_line: Option<u32>,
    can_block_reload: bool,
    part_hold_back: Option<f64>,
    /// An EXT-X-PRELOAD-HINT of TYPE=PART.
    part_hint: bool,
}

/// One media playlist followed over time.
#[derive(Debug, Clone)]
pub struct MediaPlaylistChecker {
    url: String,
    episodes: Episodes,
    segment_episodes: Episodes,
    /// The previous numbered refresh's segments (the newest [`MAX_WINDOW`]).
    window: Vec<Entry>,
    /// The refresh being read.
    scratch: Vec<Entry>,
    /// Whether `window` and the sequence fields below hold a previous refresh.
    compared: bool,
    media_sequence: u64,
    discontinuity_sequence: u64,
    target: Option<u64>,
    left: HashSet<u64>,
    left_order: VecDeque<u64>,
    /// The highest media sequence number ever listed, and when it was first seen (Unix ms).
    newest: Option<(u64, i64)>,
    stale_reported: bool,
    /// Whether segments have left the window since the first refresh: from then on the window
    /// must keep its length (§6.2.2).
    removed_any: bool,
    /// The highest media sequence number when EXT-X-ENDLIST was first seen.
    ended_at: Option<u64>,
}

impl MediaPlaylistChecker {
    pub fn new(url: &str) -> Self {
        MediaPlaylistChecker {
            url: url.to_string(),
            episodes: Episodes::default(),
            segment_episodes: Episodes::default(),
            window: Vec::new(),
            scratch: Vec::new(),
            compared: false,
            media_sequence: 0,
            discontinuity_sequence: 0,
            target: None,
            left: HashSet::new(),
            left_order: VecDeque::new(),
            newest: None,
            stale_reported: false,
            removed_any: false,
            ended_at: None,
        }
    }

    /// The playlist's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// EXT-X-TARGETDURATION of the last refresh that had a valid one (s).
    pub fn target_duration_secs(&self) -> Option<u64> {
        self.target
    }

    /// Each refresh of the media playlist: its text (line numbers come from it) and its HTTP
    /// facts. A response that is not 2xx has no playlist to judge and is ignored.
    pub fn on_refresh(&mut self, text: &str, http: &HttpFacts) -> Vec<Violation> {
        if !(200..300).contains(&http.status) {
            return Vec::new();
        }
        let mut playlist = Vec::new();
        let mut events = Vec::new();
        format_findings(text, &mut playlist);
        if let Some((id, detail)) = http::playlist_type(&self.url, http.content_type.as_deref()) {
            playlist.push(Finding::new(id, None, detail));
        }
        let header = self.read(text, &mut playlist);
        let live = !header.endlist && !header.vod;
        if header.target.is_none() && !playlist.iter().any(|f| f.id == Id::TargetDurationInvalid) {
            playlist.push(Finding::new(
                Id::TargetDurationInvalid,
                None,
                "no EXT-X-TARGETDURATION",
            ));
        }
        if live && !header.any_date && !self.scratch.is_empty() {
            playlist.push(Finding::new(
                Id::ProgramDateTimeMissing,
                None,
                "a live playlist without EXT-X-PROGRAM-DATE-TIME",
            ));
        }
        if let (true, Some(target)) = (live, header.target)
            && let Some(detail) = http::playlist_cache(http.cache_control.as_deref(), target)
        {
            playlist.push(Finding::new(Id::PlaylistCacheControl, None, detail));
        }
        if !header.unnumbered && self.number(&header) {
            self.compare(text, &header, http.at_unix_ms, &mut playlist, &mut events);
        }
        let mut out: Vec<Violation> = self
            .episodes
            .filter(playlist)
            .into_iter()
            .map(|f| f.at(&self.url))
            .collect();
        out.extend(events.into_iter().map(|f| f.at(&self.url)));
        out
    }

    /// Reads the refresh into `scratch` (segments numbered from 0) and its header; the
    /// findings of single lines go to `f`.
    fn read(&mut self, text: &str, f: &mut Vec<Finding>) -> Header {
        self.scratch.clear();
        let mut h = Header::default();
        let mut once = [0u32; ONCE.len()];
        let mut seen_segment = false;
        let mut seen_discontinuity = false;
        let mut mixed = false;
        let mut map_missing_reported = false;
        let mut needs: Option<(u64, u32, &str)> = None;
        let mut need = |version: u64, line: u32, feature: &'static str| {
            if needs.is_none_or(|(v, _, _)| v < version) {
                needs = Some((version, line, feature));
            }
        };
        // The segment being read: its EXTINF (value, line), gap, date; discontinuities so far.
        let mut extinf: Option<(f64, u32)> = None;
        let mut gap = false;
        let mut date: Option<(i64, u32)> = None;
        let mut discontinuities = 0u64;
        let mut index = 0u64;
        for line in scan::lines(text) {
            let n = line.number;
            let (name, value) = match line.kind {
                LineKind::Blank | LineKind::Comment => continue,
                LineKind::Uri(uri) => {
                    if extinf.is_none() {
                        f.push(Finding::new(
                            Id::ExtinfMissing,
                            Some(n),
                            format!("segment `{}` has no EXTINF", scan::clip(uri)),
                        ));
                    }
                    let lower = scan::url_path(uri).to_ascii_lowercase();
                    if h.map_line.is_none()
                        && !map_missing_reported
                        && FMP4_ENDINGS.iter().any(|e| lower.ends_with(e))
                    {
                        map_missing_reported = true;
                        f.push(Finding::new(
                            Id::MapMissing,
                            Some(n),
                            format!(
                                "fragmented MP4 segment `{}` has no EXT-X-MAP",
                                scan::clip(uri)
                            ),
                        ));
                    }
                    let start = uri.as_ptr() as usize - text.as_ptr() as usize;
                    let (value, extinf_line) = extinf.take().unwrap_or((f64::NAN, 0));
                    self.scratch.push(Entry {
                        seq: index,
                        uri: scan::digest(uri),
                        span: (start, start + uri.len()),
                        uri_line: n,
                        extinf: value,
                        extinf_line,
                        disc: discontinuities,
                        gap: std::mem::take(&mut gap),
                        date: date.take(),
                    });
                    // Keep the newest MAX_WINDOW at amortized constant cost.
                    if self.scratch.len() >= 2 * MAX_WINDOW {
                        self.scratch.drain(..MAX_WINDOW);
                    }
                    index += 1;
                    seen_segment = true;
                    continue;
                }
                LineKind::Tag { name, value } => (name, value),
            };
            if let Some(i) = ONCE.iter().position(|t| *t == name) {
                once[i] += 1;
                if once[i] == 2 {
                    f.push(Finding::new(
                        Id::TagDuplicate,
                        Some(n),
                        format!("{name} appears again"),
                    ));
                }
                if once[i] > 1 {
                    continue;
                }
            }
            let value = value.unwrap_or("");
            match name {
                "EXT-X-VERSION" => h.version = Some((decimal_integer(value), n)),
                "EXT-X-TARGETDURATION" => {
                    h.target = decimal_integer(value);
                    h.target_line = Some(n);
                    if h.target.is_none() {
                        f.push(Finding::new(
                            Id::TargetDurationInvalid,
                            Some(n),
                            format!("`{}` is not a decimal-integer", scan::clip(value)),
                        ));
                    }
                }
                "EXT-X-MEDIA-SEQUENCE" | "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    let late = seen_segment
                        || (name == "EXT-X-DISCONTINUITY-SEQUENCE" && seen_discontinuity);
                    if late {
                        f.push(Finding::new(
                            Id::SequenceTagLate,
                            Some(n),
                            format!("{name} comes after the first segment or discontinuity"),
                        ));
                    }
                    let parsed = decimal_integer(value);
                    if parsed.is_none() {
                        h.unnumbered = true;
                        f.push(Finding::new(
                            Id::TagValueInvalid,
                            Some(n),
                            format!("{name}:{} is not a decimal-integer", scan::clip(value)),
                        ));
                    }
                    if name == "EXT-X-MEDIA-SEQUENCE" {
                        h.media_sequence = parsed;
                        h.media_sequence_line = Some(n);
                    } else {
                        h.discontinuity_sequence = parsed;
                        h.discontinuity_sequence_line = Some(n);
                    }
                }
                "EXT-X-ENDLIST" => h.endlist = true,
                "EXT-X-PLAYLIST-TYPE" => h.vod = value == "VOD",
                "EXT-X-I-FRAMES-ONLY" => {
                    h.i_frames_only = true;
                    need(4, n, "EXT-X-I-FRAMES-ONLY");
                }
                "EXTINF" => {
                    if let Some((_, previous)) = extinf {
                        f.push(Finding::new(
                            Id::SegmentUriMissing,
                            Some(previous),
                            "EXTINF is followed by another EXTINF, not by its URI",
                        ));
                    }
                    let duration = value.split(',').next().unwrap_or("").trim();
                    let parsed = decimal_float(duration);
                    if parsed.is_some() && duration.contains('.') {
                        need(3, n, "a floating-point EXTINF duration");
                    }
                    extinf = Some((parsed.unwrap_or(f64::NAN), n));
                    seen_segment = true;
                }
                "EXT-X-BYTERANGE" => {
                    need(4, n, "EXT-X-BYTERANGE");
                    seen_segment = true;
                }
                "EXT-X-DISCONTINUITY" => {
                    discontinuities += 1;
                    seen_discontinuity = true;
                    seen_segment = true;
                }
                "EXT-X-GAP" => {
                    gap = true;
                    seen_segment = true;
                }
                "EXT-X-PROGRAM-DATE-TIME" => {
                    h.any_date = true;
                    seen_segment = true;
                    match date_time_ms(value) {
                        Some(ms) => date = Some((ms, n)),
                        None => f.push(Finding::new(
                            Id::TagValueInvalid,
                            Some(n),
                            format!(
                                "EXT-X-PROGRAM-DATE-TIME:{} is not a date-time with a time zone",
                                scan::clip(value)
                            ),
                        )),
                    }
                }
                "EXT-X-KEY" | "EXT-X-MAP" => {
                    let (attrs, problem) = attributes(value);
                    if let Some(problem) = problem {
                        f.push(Finding::new(
                            Id::TagValueInvalid,
                            Some(n),
                            format!("{name}: {problem}"),
                        ));
                    }
                    let required = if name == "EXT-X-KEY" { "METHOD" } else { "URI" };
                    if !attrs.has(required) {
                        f.push(Finding::new(
                            Id::RequiredAttributeMissing,
                            Some(n),
                            format!("{name} without {required}"),
                        ));
                    }
                    if name == "EXT-X-MAP" {
                        h.map_line.get_or_insert(n);
                    } else if attrs.has("KEYFORMAT") || attrs.has("KEYFORMATVERSIONS") {
                        need(5, n, "KEYFORMAT or KEYFORMATVERSIONS on EXT-X-KEY");
                    } else if attrs.has("IV") {
                        need(2, n, "the IV attribute of EXT-X-KEY");
                    }
                }
                "EXT-X-PART" | "EXT-X-PART-INF" | "EXT-X-SERVER-CONTROL" | "EXT-X-PRELOAD-HINT" => {
                    let (attrs, problem) = attributes(value);
                    if let Some(problem) = problem {
                        f.push(Finding::new(
                            Id::TagValueInvalid,
                            Some(n),
                            format!("{name}: {problem}"),
                        ));
                    }
                    let seconds =
                        |attr: &str| attrs.get(attr).and_then(|v| decimal_float(v.text()));
                    let ll = &mut h.low_latency;
                    match name {
                        "EXT-X-PART" => {
                            ll.parts = ll.parts.saturating_add(1);
                            ll.first_part_line.get_or_insert(n);
                            if let Some(d) = seconds("DURATION")
                                && ll.longest_part.is_none_or(|(l, _)| d > l)
                            {
                                ll.longest_part = Some((d, n));
                            }
                            seen_segment = true;
                        }
                        "EXT-X-PART-INF" => {
                            ll.part_target = seconds("PART-TARGET").map(|t| (t, n));
                        }
                        "EXT-X-SERVER-CONTROL" => {
                            ll.server_control_line = Some(n);
                            ll.can_block_reload =
                                attrs.get("CAN-BLOCK-RELOAD").map(|v| v.text()) == Some("YES");
                            ll.part_hold_back = seconds("PART-HOLD-BACK");
                        }
                        _ => {
                            ll.part_hint |= attrs.get("TYPE").map(|v| v.text()) == Some("PART");
                        }
                    }
                }
                "EXT-X-ALLOW-CACHE" => f.push(Finding::new(
                    Id::AllowCacheRemoved,
                    Some(n),
                    "EXT-X-ALLOW-CACHE is present",
                )),
                _ if MASTER_TAGS.contains(&name) && !mixed => {
                    mixed = true;
                    f.push(Finding::new(
                        Id::MixedPlaylist,
                        Some(n),
                        format!("master playlist tag {name} in a media playlist"),
                    ));
                }
                _ => {}
            }
        }
        if let Some((_, line)) = extinf {
            f.push(Finding::new(
                Id::SegmentUriMissing,
                Some(line),
                "the last EXTINF has no URI line after it",
            ));
        }
        if let Some(line) = h.map_line {
            if h.i_frames_only {
                need(5, line, "EXT-X-MAP in an I-frames-only playlist");
            } else {
                need(6, line, "EXT-X-MAP");
            }
        }
        version_findings(h.version, needs, f);
        low_latency_findings(&h, f);
        if self.scratch.len() > MAX_WINDOW {
            let extra = self.scratch.len() - MAX_WINDOW;
            self.scratch.drain(..extra);
        }
        h
    }

    /// Numbers `scratch` from the header's sequence tags; `false` when the numbers overflow.
    fn number(&mut self, h: &Header) -> bool {
        let base = h.media_sequence.unwrap_or(0);
        let disc_base = h.discontinuity_sequence.unwrap_or(0);
        for e in &mut self.scratch {
            match (base.checked_add(e.seq), disc_base.checked_add(e.disc)) {
                (Some(seq), Some(disc)) => {
                    e.seq = seq;
                    e.disc = disc;
                }
                _ => return false,
            }
        }
        true
    }

    /// Judges the numbered refresh against the previous one and keeps it for the next.
    fn compare(
        &mut self,
        text: &str,
        h: &Header,
        at_ms: i64,
        playlist: &mut Vec<Finding>,
        events: &mut Vec<Finding>,
    ) {
        let live = !h.endlist && !h.vod;
        let base = h.media_sequence.unwrap_or(0);
        let disc_base = h.discontinuity_sequence.unwrap_or(0);
        let mut restarted = false;
        let mut disc_back = false;
        if self.compared {
            if base < self.media_sequence {
                restarted = true;
                events.push(Finding::new(
                    Id::MediaSequenceDecreased,
                    h.media_sequence_line,
                    format!(
                        "EXT-X-MEDIA-SEQUENCE went from {} to {base}",
                        self.media_sequence
                    ),
                ));
            }
            if disc_base < self.discontinuity_sequence {
                disc_back = true;
                events.push(Finding::new(
                    Id::DiscontinuitySequenceDecreased,
                    h.discontinuity_sequence_line,
                    format!(
                        "EXT-X-DISCONTINUITY-SEQUENCE went from {} to {disc_base}",
                        self.discontinuity_sequence
                    ),
                ));
            }
            if let (Some(before), Some(now)) = (self.target, h.target)
                && before != now
            {
                events.push(Finding::new(
                    Id::TargetDurationChanged,
                    h.target_line,
                    format!("EXT-X-TARGETDURATION went from {before} to {now}"),
                ));
            }
            if !restarted {
                self.compare_listed(disc_back, events);
                self.forget_removed(base);
            }
            if let Some(ended) = self.ended_at {
                let last = self.scratch.last().map(|e| e.seq);
                if !h.endlist {
                    playlist.push(Finding::new(
                        Id::SegmentAfterEndlist,
                        None,
                        "EXT-X-ENDLIST is gone after a refresh had it",
                    ));
                } else if let Some(last) = last.filter(|l| *l > ended) {
                    playlist.push(Finding::new(
                        Id::SegmentAfterEndlist,
                        None,
                        format!("segment {last} is listed after EXT-X-ENDLIST ended the playlist at {ended}"),
                    ));
                }
            }
        }
        if restarted {
            self.left.clear();
            self.left_order.clear();
            self.newest = None;
        }
        // Each segment's own rules, on the refresh that first lists it.
        let newest = self.newest.map(|(seq, _)| seq);
        let mut last_date: Option<i64> = None;
        for e in &self.scratch {
            let new = newest.is_none_or(|n| e.seq > n);
            if let Some((date, line)) = e.date {
                if new && last_date.is_some_and(|d| date < d) {
                    events.push(Finding::new(
                        Id::ProgramDateTimeBackwards,
                        Some(line),
                        format!(
                            "segment {} is dated {} ms before an earlier segment",
                            e.seq,
                            last_date.unwrap_or(date) - date
                        ),
                    ));
                }
                last_date = Some(last_date.map_or(date, |d| d.max(date)));
            }
            if !new {
                continue;
            }
            if e.extinf_line != 0 && e.extinf.is_nan() {
                events.push(Finding::new(
                    Id::ExtinfInvalid,
                    Some(e.extinf_line),
                    format!("segment {}: EXTINF has no valid duration", e.seq),
                ));
            }
            if let Some(target) = h.target
                && e.extinf.round() > target as f64
            {
                events.push(Finding::new(
                    Id::TargetDurationExceeded,
                    Some(e.extinf_line),
                    format!(
                        "segment {}: EXTINF {} s rounds above EXT-X-TARGETDURATION {target} s",
                        e.seq, e.extinf
                    ),
                ));
            }
            if self.left.contains(&e.uri) {
                let uri = text.get(e.span.0..e.span.1).unwrap_or("");
                events.push(Finding::new(
                    Id::SegmentReappeared,
                    Some(e.uri_line),
                    format!(
                        "`{}` left the window earlier and is listed again as segment {}",
                        scan::clip(uri),
                        e.seq
                    ),
                ));
            }
        }
        // A new version of a live playlist is one with a new segment (§6.2.1).
        let last = self.scratch.last().map(|e| e.seq);
        match (self.newest, last) {
            (Some((newest, _)), Some(last)) if last > newest => {
                self.newest = Some((last, at_ms));
                self.stale_reported = false;
            }
            (None, Some(last)) => {
                self.newest = Some((last, at_ms));
                self.stale_reported = false;
            }
            (Some((newest, since)), _) => {
                if let (true, Some(target)) = (live, h.target) {
                    let waited = at_ms.saturating_sub(since);
                    let limit = target as f64 * 1500.0;
                    if waited as f64 > limit && !self.stale_reported {
                        self.stale_reported = true;
                        events.push(Finding::new(
                            Id::PlaylistStale,
                            None,
                            format!(
                                "no segment after {newest} for {waited} ms; 1.5 × the {target} s target duration is {limit} ms"
                            ),
                        ));
                    }
                }
            }
            (None, None) => {}
        }
        if self.compared && base > self.media_sequence {
            self.removed_any = true;
        }
        if let (true, true, Some(target)) = (live, self.removed_any, h.target) {
            let total: f64 = self
                .scratch
                .iter()
                .map(|e| e.extinf)
                .filter(|d| d.is_finite())
                .sum();
            if total < 3.0 * target as f64 {
                playlist.push(Finding::new(
                    Id::WindowTooShort,
                    None,
                    format!(
                        "segments were removed while the playlist lasts {total:.3} s, under 3 × the {target} s target duration"
                    ),
                ));
            }
            if self.scratch.len() < 6 {
                playlist.push(Finding::new(
                    Id::WindowFewSegments,
                    None,
                    format!("a live playlist of {} segments", self.scratch.len()),
                ));
            }
        }
        if h.endlist && self.ended_at.is_none() {
            self.ended_at = Some(last.unwrap_or(base));
        }
        std::mem::swap(&mut self.window, &mut self.scratch);
        self.compared = true;
        self.media_sequence = base;
        self.discontinuity_sequence = disc_base;
        if h.target.is_some() {
            self.target = h.target;
        }
    }

    /// Segments listed both now and before must be the same (§6.2.1, §6.2.2).
    fn compare_listed(&self, disc_back: bool, events: &mut Vec<Finding>) {
        let Some(first_before) = self.window.first().map(|e| e.seq) else {
            return;
        };
        let mut changed: Option<(u64, u32, usize)> = None;
        let mut renumbered: Option<(u64, u32, u64, u64, usize)> = None;
        for e in &self.scratch {
            let Some(before) = e
                .seq
                .checked_sub(first_before)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| self.window.get(i))
                .filter(|b| b.seq == e.seq)
            else {
                continue;
            };
            if !e.same_media(before) {
                let c = changed.get_or_insert((e.seq, e.uri_line, 0));
                c.2 += 1;
            } else if e.disc != before.disc && !disc_back {
                let r = renumbered.get_or_insert((e.seq, e.uri_line, before.disc, e.disc, 0));
                r.4 += 1;
            }
        }
        if let Some((seq, line, count)) = changed {
            events.push(Finding::new(
                Id::SegmentChanged,
                Some(line),
                format!(
                    "segment {seq} is listed with another URI or duration than on the previous refresh ({count} segment(s) changed)"
                ),
            ));
        }
        if let Some((seq, line, before, now, count)) = renumbered {
            events.push(Finding::new(
                Id::DiscontinuityNumberChanged,
                Some(line),
                format!(
                    "segment {seq}'s discontinuity sequence number went from {before} to {now} ({count} segment(s))"
                ),
            ));
        }
    }

    /// Remembers the URIs of the segments that left the window.
    fn forget_removed(&mut self, base: u64) {
        for e in self.window.iter().take_while(|e| e.seq < base) {
            if self.left.insert(e.uri) {
                self.left_order.push_back(e.uri);
                if self.left_order.len() > MAX_LEFT
                    && let Some(oldest) = self.left_order.pop_front()
                {
                    self.left.remove(&oldest);
                }
            }
        }
    }

    /// How many segments of the last refresh and URIs that left the window are kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> (usize, usize, usize) {
        (self.window.len(), self.left.len(), self.left_order.len())
    }

    /// Each downloaded segment's measured facts. A segment the playlist marks `EXT-X-GAP` is
    /// not judged.
    pub fn on_segment(&mut self, facts: &SegmentFacts) -> Vec<Violation> {
        let mut out = Vec::new();
        let listed = self
            .window
            .first()
            .and_then(|first| facts.seq.checked_sub(first.seq))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.window.get(i))
            .filter(|e| e.seq == facts.seq);
        if listed.is_some_and(|e| e.gap) {
            return out;
        }
        let mut push = |id: Id, detail: String| {
            out.push(Finding::new(id, None, detail).at(&facts.url));
        };
        let status = facts.http.status;
        if !(200..300).contains(&status) {
            push(
                Id::SegmentUnavailable,
                format!("segment {} answered HTTP {status}", facts.seq),
            );
            return out;
        }
        if facts.bytes == 0 {
            push(
                Id::SegmentEmpty,
                format!("segment {} answered HTTP {status} with no body", facts.seq),
            );
            return out;
        }
        let wrong_type = http::segment_type(facts.http.content_type.as_deref());
        let found = wrong_type.is_some();
        if self.segment_episodes.set(Id::SegmentContentType, found)
            && let Some(detail) = wrong_type
        {
            push(
                Id::SegmentContentType,
                format!("segment {} {detail}", facts.seq),
            );
        }
        if facts.first_frame_is_key == Some(false) {
            push(
                Id::SegmentNotKeyframe,
                format!(
                    "segment {} starts with a frame that is not a key frame",
                    facts.seq
                ),
            );
        }
        let Some(measured) = facts.measured_duration_secs.filter(|m| m.is_finite()) else {
            return out;
        };
        let frame = facts
            .fps
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(DEFAULT_FRAME_SECS, |f| 1.0 / f);
        let extinf = facts.extinf_secs;
        if extinf.is_finite() && (measured - extinf).abs() > frame + 0.001 {
            push(
                Id::SegmentDurationMismatch,
                format!(
                    "segment {}: EXTINF {extinf:.3} s, media {measured:.3} s (one frame is {:.3} s)",
                    facts.seq, frame
                ),
            );
        }
        let target = self
            .target
            .map(|t| t as f64)
            .or(facts.target_duration_secs.filter(|t| t.is_finite()));
        if let Some(target) = target
            && measured > target + 0.5
        {
            push(
                Id::SegmentOverTarget,
                format!(
                    "segment {}: media lasts {measured:.3} s, over the {target} s target duration by more than 0.5 s",
                    facts.seq
                ),
            );
        }
        out
    }
}

/// The low-latency rules a refresh breaks (RFC 8216bis): parts without a part target, parts
/// over it, a part hold-back under two part targets, a blocking live server without a part hint.
fn low_latency_findings(h: &Header, f: &mut Vec<Finding>) {
    let ll = &h.low_latency;
    let Some((target, target_line)) = ll.part_target else {
        if ll.parts > 0 {
            f.push(Finding::new(
                Id::PartInfMissing,
                ll.first_part_line,
                format!(
                    "{} EXT-X-PART tags without an EXT-X-PART-INF PART-TARGET",
                    ll.parts
                ),
            ));
        }
        return;
    };
    if let Some((longest, line)) = ll.longest_part
        && longest > target + PART_ROUNDING_SECS
    {
        f.push(Finding::new(
            Id::PartOverTarget,
            Some(line),
            format!("a part of DURATION={longest} is longer than PART-TARGET={target}"),
        ));
    }
    match ll.part_hold_back {
        Some(hold) if hold >= 2.0 * target => {}
        Some(hold) => f.push(Finding::new(
            Id::PartHoldBack,
            ll.server_control_line,
            format!("PART-HOLD-BACK={hold} is under twice PART-TARGET={target}"),
        )),
        None => f.push(Finding::new(
            Id::PartHoldBack,
            ll.server_control_line.or(Some(target_line)),
            format!("no PART-HOLD-BACK with PART-TARGET={target}"),
        )),
    }
    if ll.parts > 0 && ll.can_block_reload && !ll.part_hint && !h.endlist && !h.vod {
        f.push(Finding::new(
            Id::PreloadHintMissing,
            None,
            "parts and CAN-BLOCK-RELOAD=YES but no EXT-X-PRELOAD-HINT:TYPE=PART",
        ));
    }
}
