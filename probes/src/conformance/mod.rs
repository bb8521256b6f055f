//! The HLS conformance checker: what a server's playlists and segments must be, per RFC 8216 and
//! Apple's "HLS Authoring Specification for Apple Devices", judged from what a client sees.
//!
//! Every rule is in one catalogue ([`RULES`]: stable ID, must/should, the line of the source it
//! comes from); a check that finds a rule broken returns a [`Violation`] naming the rule, the
//! URL, the line of the playlist (when the fault is in a playlist) and what was seen. The engine
//! knows no network: the HLS puller hands it each playlist's text and HTTP facts as it fetches
//! them and each segment's measured facts as it decodes them, and journals what comes back.
//!
//! - [`check_master`] judges one master playlist; [`MasterPlaylistChecker`] does it on every
//!   refresh and reports a finding when it appears, not again while it lasts.
//! - [`MediaPlaylistChecker`] follows one media playlist across refreshes: each playlist-wide
//!   finding (a missing tag, a wrong header) is reported when it appears; each segment's (an
//!   EXTINF over the target duration) when the segment first appears; each change between
//!   refreshes (the media sequence going back, a segment coming back) when it happens. Its
//!   [`MediaPlaylistChecker::on_segment`] judges each downloaded segment.
//! - [`VariantChecker`] holds what the master declared for each variant (bandwidths, resolution,
//!   frame rate, codecs) against what its segments measure, from the third segment of a variant
//!   on and again at [`VariantChecker::finish`]; each rule at most once per variant.
//! - [`TimelineChecker`] compares, across the renditions of one stream, the first PTS of each
//!   media sequence number.
//!
//! Everything from the wire is hostile: the playlist is read line by line by this module's own
//! reader (`scan`), in one pass, never panicking; state is bounded (the last window's segments,
//! at most [`MAX_WINDOW`] of them, kept as digests; at most [`MAX_LEFT`] URIs that left the
//! window; at most [`MAX_VARIANTS`] variants and [`MAX_TIMELINE_SEQS`] sequence numbers), so a
//! server can make the checker report, never grow or stall.

mod http;
mod master;
mod media;
mod rules;
pub(crate) mod scan;
mod timeline;
mod variant;

#[cfg(test)]
mod tests;

use std::fmt;

pub use master::{MasterPlaylistChecker, check_master};
pub use media::{MAX_LEFT, MAX_WINDOW, MediaPlaylistChecker};
pub use rules::{RULES, Rule, Severity, rule};
pub use timeline::{MAX_TIMELINE_SEQS, TimelineChecker};
pub use variant::{MAX_VARIANTS, VariantChecker, codec_name};

use rules::{Id, RuleSet};

/// One rule found broken.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The rule's ID (an entry of [`RULES`]).
    pub rule: &'static str,
    /// The playlist or segment at fault.
    pub url: String,
    /// The 1-based line of the playlist at fault, when the fault is in a playlist's text.
    pub line: Option<u32>,
    /// What was seen, with the values that break the rule.
    pub detail: String,
}

impl Violation {
    /// The rule's catalogue entry.
    pub fn rule(&self) -> &'static Rule {
        // The checkers make violations from catalogue IDs only (`Finding`); a violation made by
        // hand with an unknown ID reads as the first rule, a MUST, rather than panicking.
        rule(self.rule).unwrap_or(&RULES[0])
    }

    /// `must` or `should`.
    pub fn severity(&self) -> Severity {
        self.rule().severity
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) {}", self.rule, self.severity(), self.url)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What the HTTP response of a playlist or segment said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFacts {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header, as sent.
    pub content_type: Option<String>,
    /// `Cache-Control` header, as sent.
    pub cache_control: Option<String>,
    /// When the response arrived (Unix ms).
    pub at_unix_ms: i64,
}

/// What one downloaded segment measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFacts {
    /// Media sequence number.
    pub seq: u64,
    /// The segment's URL.
    pub url: String,
    /// Its HTTP response.
    pub http: HttpFacts,
    /// Its EXTINF duration (s).
    pub extinf_secs: f64,
    /// Bytes of the media segment (an init section not counted).
    pub bytes: u64,
    /// The media playlist's EXT-X-TARGETDURATION when the segment was listed (s): the peak
    /// bit rate's window ([`VariantChecker`]).
    pub target_duration_secs: Option<f64>,
    /// Duration of its media, from the decoded timestamps (s).
    pub measured_duration_secs: Option<f64>,
    /// Whether its first video frame is a key (IDR) frame; `None` without video.
    pub first_frame_is_key: Option<bool>,
    /// FFmpeg's name of its video codec (`h264`, `hevc`).
    pub codec: Option<String>,
    /// Decoded width (px).
    pub width: Option<u32>,
    /// Decoded height (px).
    pub height: Option<u32>,
    /// Video frame rate.
    pub fps: Option<f64>,
    /// First presentation timestamp (s).
    pub first_pts_secs: Option<f64>,
    /// FFmpeg's name of its audio codec (`aac`), when it has audio.
    pub audio_codec: Option<String>,
}

/// A rule found broken, before it is told which URL it is about.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub id: Id,
    pub line: Option<u32>,
    pub detail: String,
}

impl Finding {
    pub(crate) fn new(id: Id, line: Option<u32>, detail: impl Into<String>) -> Self {
        Finding {
            id,
            line,
            detail: detail.into(),
        }
    }

    pub(crate) fn at(self, url: &str) -> Violation {
        Violation {
            rule: self.id.rule().id,
            url: url.to_string(),
            line: self.line,
            detail: self.detail,
        }
    }
}

/// Which rules were found on the last judgment of something judged again and again (a
/// playlist on each refresh): a finding is reported when its rule was not found last time, so a
/// fault that lasts is one report, and one that goes and comes back is two.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Episodes {
    active: RuleSet,
}

impl Episodes {
    /// The findings whose rule is new since the last call.
    pub(crate) fn filter(&mut self, findings: Vec<Finding>) -> Vec<Finding> {
        let mut now = RuleSet::default();
        for f in &findings {
            now.insert(f.id);
        }
        let before = std::mem::replace(&mut self.active, now);
        findings
            .into_iter()
            .filter(|f| !before.contains(f.id))
            .collect()
    }

    /// Marks `id` found (`true`) or not (`false`) by a judgment of its own, and says whether
    /// that starts an episode.
    pub(crate) fn set(&mut self, id: Id, found: bool) -> bool {
        let started = found && !self.active.contains(id);
        if found {
            self.active.insert(id);
        } else {
            self.active.remove(id);
        }
        started
    }
}

/// Format rules every playlist obeys: encoding (§4.1) and `#EXTM3U` first (§4.3.1.1).
pub(crate) fn format_findings(text: &str, out: &mut Vec<Finding>) {
    if text.starts_with('\u{FEFF}') {
        out.push(Finding::new(
            Id::PlaylistEncoding,
            Some(1),
            "starts with a byte order mark",
        ));
    } else {
        let mut line = 1u32;
        for c in text.chars() {
            if c == '\n' {
                line = line.saturating_add(1);
            } else if c.is_control() && c != '\r' {
                out.push(Finding::new(
                    Id::PlaylistEncoding,
                    Some(line),
                    format!("control character U+{:04X}", u32::from(c)),
                ));
                break;
            }
        }
    }
    let body = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let first = body.split('\n').next().unwrap_or("").trim_end();
    if first != "#EXTM3U" {
        out.push(Finding::new(
            Id::ExtM3uMissing,
            Some(1),
            format!("the first line is `{}`", scan::clip(first)),
        ));
    }
}
