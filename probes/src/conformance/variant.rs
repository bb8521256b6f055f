//! What a master playlist declares for each variant against what the variant's segments measure.
//!
//! Tolerances are Apple's for live content, since the streams this tester pulls are live:
//! - peak: the peak segment bit rate (RFC 8216 §4.1: the highest bit rate of any run of
//!   consecutive segments lasting 0.5 to 1.5 target durations, bits over EXTINF seconds) must
//!   stay below 125 % of BANDWIDTH (Apple §1.29; VOD's ±10 % of §1.27 does not apply live);
//! - average: the average segment bit rate over everything measured must stay below 110 % of
//!   AVERAGE-BANDWIDTH (Apple §1.28, which means about an hour of it: judged only at
//!   [`VariantChecker::finish`], over the whole run);
//! - RESOLUTION equal to the decoded size; FRAME-RATE at least the decoded rate (it is the
//!   maximum, rounded to three decimals, so 0.1 % above it is allowed);
//! - every codec decoded is one CODECS lists (mapped from RFC 6381 names to FFmpeg's by
//!   [`codec_name`]); a CODECS entry this module cannot map makes the variant's codecs unjudged
//!   rather than wrongly judged.
//!
//! A variant is judged from its third segment on (the first ones of a stream may be start-up
//! transients), and each rule at most once per variant: these rules describe the variant, not
//! an event. Segments that did not arrive (non-2xx, empty) measure nothing.

use std::collections::VecDeque;

use super::master::{Declared, scan_master};
use super::rules::{Id, RuleSet};
use super::{Finding, SegmentFacts, Violation};

/// Variants kept per master playlist (the first ones listed).
pub const MAX_VARIANTS: usize = 256;
/// Segments a variant has before it is judged.
const MIN_SEGMENTS: u64 = 3;
/// Apple §1.29: a live variant's measured peak must be under 125 % of BANDWIDTH.
const PEAK_FACTOR: f64 = 1.25;
/// Apple §1.28: a live variant's average must be under 110 % of AVERAGE-BANDWIDTH.
const AVERAGE_FACTOR: f64 = 1.10;
/// Recent segments kept for the peak's runs: enough for 1.5 target durations of any sane
/// segmenting, bounded whatever the server does.
const RECENT: usize = 64;

/// FFmpeg's decoder name for an RFC 6381 codec (`avc1.64001f` → `h264`, `mp4a.40.2` → `aac`),
/// `None` for one this module does not know.
pub fn codec_name(rfc6381: &str) -> Option<&'static str> {
    let entry = rfc6381.trim();
    let (fourcc, rest) = entry.split_once('.').unwrap_or((entry, ""));
    Some(match fourcc {
        "avc1" | "avc3" | "dva1" | "dvav" => "h264",
        "hvc1" | "hev1" | "dvh1" | "dvhe" => "hevc",
        "av01" => "av1",
        "vp09" => "vp9",
        "vp08" => "vp8",
        "mp4v" => "mpeg4",
        "mp4a" => match rest.to_ascii_lowercase().as_str() {
            "40.34" | "69" | "6b" => "mp3",
            "a5" => "ac3",
            "a6" => "eac3",
            r if r == "40" || r.starts_with("40.") => "aac",
            _ => return None,
        },
        "ac-3" => "ac3",
        "ec-3" => "eac3",
        "Opus" | "opus" => "opus",
        "fLaC" | "flac" => "flac",
        "alac" => "alac",
        _ => return None,
    })
}

/// Whether an RFC 6381 codec is a video one.
pub(crate) fn is_video_codec(rfc6381: &str) -> bool {
    codec_name(rfc6381).is_some_and(|c| VIDEO.contains(&c))
}

const VIDEO: [&str; 6] = ["h264", "hevc", "av1", "vp9", "vp8", "mpeg4"];

/// CODECS entries that carry no audio or video (subtitles): neither judged nor unknown.
fn is_text_codec(rfc6381: &str) -> bool {
    let fourcc = rfc6381.trim().split('.').next().unwrap_or("");
    matches!(fourcc, "wvtt" | "stpp")
}

#[derive(Debug, Clone)]
struct Variant {
    /// The media playlist's URL, resolved against the master's.
    url: String,
    declared: Declared,
    /// FFmpeg names of the CODECS entries; `None` when CODECS is absent or has an entry this
    /// module cannot map.
    codecs: Option<Vec<&'static str>>,
    segments: u64,
    bits: f64,
    secs: f64,
    /// (seq, bits, EXTINF s) of the newest segments.
    recent: VecDeque<(u64, f64, f64)>,
    /// Highest run bit rate so far, and the run's first and last sequence numbers.
    peak: Option<(f64, u64, u64)>,
    fired: RuleSet,
}

impl Variant {
    fn new(url: String, declared: Declared) -> Self {
        let codecs = declared.codecs.as_deref().and_then(|list| {
            list.split(',')
                .filter(|c| !is_text_codec(c))
                .map(codec_name)
                .collect::<Option<Vec<_>>>()
        });
        Variant {
            url,
            declared,
            codecs,
            segments: 0,
            bits: 0.0,
            secs: 0.0,
            recent: VecDeque::new(),
            peak: None,
            fired: RuleSet::default(),
        }
    }

    /// A finding about this variant, at its EXT-X-STREAM-INF line, at most once per rule.
    fn fire(&mut self, id: Id, detail: String, out: &mut Vec<Finding>) {
        if !self.fired.contains(id) {
            self.fired.insert(id);
            out.push(Finding::new(
                id,
                Some(self.declared.line),
                format!("variant {}: {detail}", self.url),
            ));
        }
    }

    /// Adds a segment to the measurements and the peak.
    fn measure(&mut self, facts: &SegmentFacts) {
        self.segments += 1;
        let secs = facts.extinf_secs;
        if !(secs.is_finite() && secs > 0.0) {
            return;
        }
        let bits = facts.bytes as f64 * 8.0;
        self.bits += bits;
        self.secs += secs;
        if self
            .recent
            .back()
            .is_some_and(|(seq, _, _)| seq.checked_add(1) != Some(facts.seq))
        {
            self.recent.clear();
        }
        self.recent.push_back((facts.seq, bits, secs));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        // Runs ending at this segment: as long as they last at most 1.5 target durations; a
        // run counts once it lasts at least half of one. Without a target duration, the
        // segment alone.
        let target = facts
            .target_duration_secs
            .filter(|t| t.is_finite() && *t > 0.0);
        let (low, high) = target.map_or((0.0, secs), |t| (0.5 * t, 1.5 * t));
        let (mut run_bits, mut run_secs) = (0.0, 0.0);
        for (seq, bits, secs) in self.recent.iter().rev() {
            run_bits += bits;
            run_secs += secs;
            if run_secs > high {
                break;
            }
            if run_secs >= low {
                let rate = run_bits / run_secs;
                if self.peak.is_none_or(|(p, _, _)| rate > p) {
                    self.peak = Some((rate, *seq, facts.seq));
                }
            }
        }
    }

    /// The rules judged on every segment from the third on.
    fn judge(&mut self, facts: &SegmentFacts, out: &mut Vec<Finding>) {
        if let (Some(bandwidth), Some((peak, from, to))) = (self.declared.bandwidth, self.peak)
            && peak >= PEAK_FACTOR * bandwidth as f64
        {
            self.fire(
                Id::VariantPeakBitrate,
                format!(
                    "peak segment bit rate {peak:.0} bit/s ({}) is not below 125 % of BANDWIDTH={bandwidth}",
                    if from == to {
                        format!("segment {from}")
                    } else {
                        format!("segments {from}–{to}")
                    }
                ),
                out,
            );
        }
        if let (Some((w, h)), Some(width), Some(height)) =
            (self.declared.resolution, facts.width, facts.height)
            && (u64::from(width), u64::from(height)) != (w, h)
        {
            self.fire(
                Id::VariantResolutionMismatch,
                format!(
                    "RESOLUTION={w}x{h}, segment {} decodes at {width}x{height}",
                    facts.seq
                ),
                out,
            );
        }
        if let (Some(declared), Some(fps)) = (
            self.declared.frame_rate,
            facts.fps.filter(|f| f.is_finite()),
        ) && fps > declared * 1.001 + 0.0005
        {
            self.fire(
                Id::VariantFrameRateMismatch,
                format!(
                    "FRAME-RATE={declared}, segment {} runs at {fps:.3} fps",
                    facts.seq
                ),
                out,
            );
        }
        let missing: Option<Vec<&str>> = self.codecs.as_ref().map(|codecs| {
            [facts.codec.as_deref(), facts.audio_codec.as_deref()]
                .into_iter()
                .flatten()
                .filter(|c| !codecs.contains(c))
                .collect()
        });
        if let Some(missing) = missing.filter(|m| !m.is_empty()) {
            let listed = self.declared.codecs.clone().unwrap_or_default();
            self.fire(
                Id::VariantCodecsMismatch,
                format!(
                    "segment {} holds {} that CODECS=\"{listed}\" does not list",
                    facts.seq,
                    missing.join(" and ")
                ),
                out,
            );
        }
    }

    /// The average, judged over everything measured.
    fn judge_average(&mut self, out: &mut Vec<Finding>) {
        if self.segments < MIN_SEGMENTS || self.secs <= 0.0 {
            return;
        }
        let average = self.bits / self.secs;
        if let Some(declared) = self.declared.average_bandwidth
            && average >= AVERAGE_FACTOR * declared as f64
        {
            self.fire(
                Id::VariantAverageBitrate,
                format!(
                    "average segment bit rate {average:.0} bit/s over {} segments is not below 110 % of AVERAGE-BANDWIDTH={declared}",
                    self.segments
                ),
                out,
            );
        }
    }
}

/// Every variant of one master playlist: declared against measured.
#[derive(Debug, Clone)]
pub struct VariantChecker {
    master_url: String,
    variants: Vec<Variant>,
}

impl VariantChecker {
    /// The variants `master_text` (fetched from `master_url`) declares, the first
    /// [`MAX_VARIANTS`] of them.
    pub fn new(master_url: &str, master_text: &str) -> Self {
        let mut checker = VariantChecker {
            master_url: master_url.to_string(),
            variants: Vec::new(),
        };
        checker.on_master(master_text);
        checker
    }

    /// A refresh of the master: declarations re-read; a variant still listed keeps what it
    /// measured and which rules it already broke.
    pub fn on_master(&mut self, master_text: &str) {
        let base = url::Url::parse(&self.master_url).ok();
        let mut old = std::mem::take(&mut self.variants);
        for declared in scan_master(master_text).variants {
            if self.variants.len() >= MAX_VARIANTS {
                break;
            }
            let Some(uri) = declared.uri.as_deref() else {
                continue;
            };
            let url = base
                .as_ref()
                .and_then(|b| b.join(uri).ok())
                .map_or_else(|| uri.to_string(), |u| u.to_string());
            let mut variant = Variant::new(url, declared);
            if let Some(i) = old.iter().position(|v| v.url == variant.url) {
                let before = old.swap_remove(i);
                variant = Variant {
                    url: variant.url,
                    declared: variant.declared,
                    codecs: variant.codecs,
                    ..before
                };
            }
            self.variants.push(variant);
        }
    }

    /// A downloaded segment of the variant whose media playlist is `media_url` (resolved, as
    /// the puller names it); judged once the variant has three segments.
    pub fn on_segment(&mut self, media_url: &str, facts: &SegmentFacts) -> Vec<Violation> {
        let mut out = Vec::new();
        if !(200..300).contains(&facts.http.status) || facts.bytes == 0 {
            return Vec::new();
        }
        for variant in self.variants.iter_mut().filter(|v| v.url == media_url) {
            variant.measure(facts);
            if variant.segments >= MIN_SEGMENTS {
                variant.judge(facts, &mut out);
            }
        }
        out.into_iter().map(|f| f.at(&self.master_url)).collect()
    }

    /// The end of the run: the averages, over every segment measured.
    pub fn finish(&mut self) -> Vec<Violation> {
        let mut out = Vec::new();
        for variant in &mut self.variants {
            variant.judge_average(&mut out);
        }
        out.into_iter().map(|f| f.at(&self.master_url)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6381_codecs_map_to_ffmpeg_decoders() {
        for (rfc, ffmpeg) in [
            ("avc1.64001f", Some("h264")),
            ("avc3.42E01E", Some("h264")),
            ("hvc1.1.6.L93.B0", Some("hevc")),
            ("hev1.2.4.L120.B0", Some("hevc")),
            ("av01.0.04M.08", Some("av1")),
            ("mp4a.40.2", Some("aac")),
            ("mp4a.40.5", Some("aac")),
            ("mp4a.40.34", Some("mp3")),
            ("ac-3", Some("ac3")),
            ("ec-3", Some("eac3")),
            ("fLaC", Some("flac")),
            ("xyz1.2", None),
            ("mp4a.99", None),
        ] {
            assert_eq!(codec_name(rfc), ffmpeg, "{rfc}");
        }
        assert!(is_video_codec(" avc1.4d401f"));
        assert!(!is_video_codec("mp4a.40.2"));
    }
}
