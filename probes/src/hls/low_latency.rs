//! The Low-Latency HLS tags of a media playlist (RFC 8216bis §4.4.3.7 EXT-X-PART-INF, §4.4.3.8
//! EXT-X-SERVER-CONTROL, §4.4.4.9 EXT-X-PART, §4.4.5.2 EXT-X-SKIP, §4.4.5.3 EXT-X-PRELOAD-HINT,
//! §4.4.5.4 EXT-X-RENDITION-REPORT), read from the text the follower already has: m3u8-rs 6 knows
//! none of them and drops a trailing EXT-X-PRELOAD-HINT. Lines and attribute lists are read by the
//! conformance checker's reader (`conformance::scan`), so both read a playlist the same way.
//!
//! Parts are numbered as the specification numbers them: a part's media sequence number is its
//! parent segment's (the segment whose URI line follows it; the parts after the last URI line
//! belong to the segment still being made, [`LowLatency::next_msn`]), its index its position among
//! its parent's parts. A part's BYTERANGE without an offset follows on from the previous part of
//! the same parent and resource.
//!
//! The reader is strict where the follower relies on a value (a part's URI and DURATION, a hint's
//! URI, the PART-TARGET that blocking deadlines are timed from) and refuses the playlist naming
//! the line and what is wrong; tags, attributes and hint types it does not know are ignored, as
//! a client must (RFC 8216bis §6.3.1, §6.3.8). It reads in one pass and is bounded: more than
//! `max_parts` parts refuses the playlist, rendition reports past `max_reports` are not kept.

use std::time::Duration;

use url::Url;

use crate::conformance::scan::{self, AttrValue, Attrs, LineKind, attributes, decimal_float};

/// Why the low-latency tags of a playlist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowLatencyError {
    #[error("line {line}: {tag}: {reason}")]
    Tag {
        line: u32,
        tag: &'static str,
        reason: String,
    },
    #[error("line {line}: more than {limit} EXT-X-PART tags")]
    TooManyParts { line: u32, limit: usize },
}

/// What a playlist's EXT-X-SERVER-CONTROL offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    /// `CAN-BLOCK-RELOAD=YES`: the server holds `_HLS_msn`/`_HLS_part` reloads (§6.2.5.2).
    pub can_block_reload: bool,
    pub part_hold_back_secs: Option<f64>,
    pub hold_back_secs: Option<f64>,
    pub can_skip_until_secs: Option<f64>,
}

/// The media initialization section (EXT-X-MAP) in force at a part: its URI and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRef {
    pub uri: String,
    pub range: Option<(u64, u64)>,
}

/// One EXT-X-PART.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Media sequence number of its parent segment.
    pub msn: u64,
    /// Its position among its parent's parts, from 0.
    pub index: u64,
    /// As written (relative to the playlist, or absolute).
    pub uri: String,
    pub duration_secs: f64,
    /// `INDEPENDENT=YES`: it starts with a frame that decodes on its own.
    pub independent: bool,
    /// `GAP=YES`: the server says it is not available; it is not to be requested.
    pub gap: bool,
    /// The bytes of the resource it is: offset and length.
    pub range: Option<(u64, u64)>,
    pub map: Option<MapRef>,
    /// Its line in the playlist.
    pub line: u32,
}

impl Part {
    /// Its (media sequence number, index): parts are ordered by it.
    pub fn key(&self) -> (u64, u64) {
        (self.msn, self.index)
    }
}

/// What an EXT-X-PRELOAD-HINT names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintType {
    Part,
    Map,
}

/// The first EXT-X-PRELOAD-HINT of a type (a client ignores the others, §6.3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadHint {
    pub kind: HintType,
    pub uri: String,
    /// `BYTERANGE-START` (0 without it).
    pub start: u64,
    /// `BYTERANGE-LENGTH`; `None` runs to the end of the resource.
    pub length: Option<u64>,
}

/// What of its resource a hint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintRange {
    Whole,
    /// Offset and length.
    Bytes(u64, u64),
    /// From an offset to the end of a resource still being written: the puller reads such a
    /// part once it is listed, with its length.
    OpenEnded(u64),
}

impl PreloadHint {
    pub fn range(&self) -> HintRange {
        match (self.start, self.length) {
            (0, None) => HintRange::Whole,
            (start, Some(length)) => HintRange::Bytes(start, length),
            (start, None) => HintRange::OpenEnded(start),
        }
    }
}

/// One EXT-X-RENDITION-REPORT: how far another rendition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: Option<u64>,
    pub last_part: Option<u64>,
}

/// What a playlist says of low latency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LowLatency {
    pub server_control: Option<ServerControl>,
    /// EXT-X-PART-INF's PART-TARGET (s).
    pub part_target_secs: Option<f64>,
    /// Every part listed, in playlist order (so in key order).
    pub parts: Vec<Part>,
    /// The first hint of a part.
    pub part_hint: Option<PreloadHint>,
    /// The first hint of an initialization section.
    pub map_hint: Option<PreloadHint>,
    /// The first `max_reports` rendition reports.
    pub reports: Vec<RenditionReport>,
    /// The media sequence number of the segment after the last one listed: the parent of the
    /// parts listed after the last URI line.
    pub next_msn: u64,
    pub end_list: bool,
}

/// What the reader keeps at most.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// More parts than this refuses the playlist.
    pub max_parts: usize,
    /// Rendition reports kept; the rest are ignored.
    pub max_reports: usize,
    /// A PART-TARGET above this (s) refuses the playlist: deadlines are timed from it.
    pub max_part_target_secs: f64,
}

impl LowLatency {
    /// Whether the playlist uses any low-latency feature.
    pub fn is_low_latency(&self) -> bool {
        self.server_control.is_some() || self.part_target_secs.is_some() || !self.parts.is_empty()
    }

    /// Whether the follower may ask for blocking reloads: the server says it can, and the
    /// playlist has not ended (a server ignores the directives then, §6.2.5.2).
    pub fn can_block_reload(&self) -> bool {
        !self.end_list
            && self
                .server_control
                .as_ref()
                .is_some_and(|c| c.can_block_reload)
    }

    /// The key of the part after the last one listed: the one a part hint names and the one a
    /// blocking reload waits for.
    pub fn next_part_key(&self) -> (u64, u64) {
        match self.parts.last() {
            Some(last) if last.msn == self.next_msn => (last.msn, last.index.saturating_add(1)),
            _ => (self.next_msn, 0),
        }
    }

    /// Whether the playlist lists part `key` or anything after it: a blocking reload for `key`
    /// was answered as asked.
    pub fn reaches(&self, key: (u64, u64)) -> bool {
        let (msn, _) = key;
        // A segment listed whole at or after `msn` means every part of `msn` was published.
        msn < self.next_msn || self.parts.last().is_some_and(|p| p.key() >= key)
    }

    /// How long a blocking request may wait before it is given up: three part targets (three
    /// target durations without parts: the most §6.2.5.2 lets a server hold one) and `margin`.
    pub fn blocking_wait(&self, target_duration_secs: f64, margin: Duration) -> Duration {
        let unit = self.part_target_secs.unwrap_or(target_duration_secs);
        Duration::try_from_secs_f64(3.0 * unit.max(0.0))
            .unwrap_or(Duration::MAX)
            .saturating_add(margin)
    }
}

/// The URL of a blocking reload of `playlist` for part `part` of segment `msn` (or for segment
/// `msn` without `part`): the playlist's own query, less any `_HLS_` directive, with the
/// directives added, every parameter in UTF-8 order as §6.2.5 asks (so caches see one URL).
pub fn blocking_reload_url(playlist: &Url, msn: u64, part: Option<u64>) -> Url {
    let mut pairs: Vec<(String, String)> = playlist
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("_HLS_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("_HLS_msn".into(), msn.to_string()));
    if let Some(part) = part {
        pairs.push(("_HLS_part".into(), part.to_string()));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut url = playlist.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url
}

/// Reads the low-latency tags of a media playlist's `text`.
pub fn read(text: &str, bounds: Bounds) -> Result<LowLatency, LowLatencyError> {
    let mut out = LowLatency::default();
    // The numbering and the map are the m3u8 parser's business until a part needs them: a
    // playlist without parts is never refused here.
    let mut media_sequence: Result<u64, LowLatencyError> = Ok(0);
    // Segments before the current line: URI lines, and those an EXT-X-SKIP stands for.
    let mut segments = 0u64;
    let mut index = 0u64;
    let mut map: Option<Result<MapRef, LowLatencyError>> = None;
    // The end of the previous part's range within the current parent, and its URI.
    let mut previous_range: Option<(String, u64)> = None;
    for line in scan::lines(text) {
        let n = line.number;
        let (name, value) = match line.kind {
            LineKind::Uri(_) => {
                segments = segments.saturating_add(1);
                index = 0;
                previous_range = None;
                continue;
            }
            LineKind::Tag { name, value } => (name, value.unwrap_or("")),
            LineKind::Blank | LineKind::Comment => continue,
        };
        match name {
            "EXT-X-MEDIA-SEQUENCE" => {
                media_sequence = scan::decimal_integer(value).ok_or_else(|| LowLatencyError::Tag {
                    line: n,
                    tag: "EXT-X-MEDIA-SEQUENCE",
                    reason: format!("`{}` is not a decimal-integer", scan::clip(value)),
                });
            }
            "EXT-X-ENDLIST" => out.end_list = true,
            "EXT-X-MAP" => {
                map = Some(Tag::new("EXT-X-MAP", n, value).and_then(|tag| {
                    Ok(MapRef {
                        uri: tag.required_text("URI")?.to_string(),
                        range: tag.byte_range("BYTERANGE", None)?,
                    })
                }));
            }
            "EXT-X-SERVER-CONTROL" => {
                let tag = Tag::new("EXT-X-SERVER-CONTROL", n, value)?;
                out.server_control.get_or_insert(ServerControl {
                    can_block_reload: tag.yes("CAN-BLOCK-RELOAD")?,
                    part_hold_back_secs: tag.seconds("PART-HOLD-BACK")?,
                    hold_back_secs: tag.seconds("HOLD-BACK")?,
                    can_skip_until_secs: tag.seconds("CAN-SKIP-UNTIL")?,
                });
            }
            "EXT-X-PART-INF" => {
                let tag = Tag::new("EXT-X-PART-INF", n, value)?;
                let target = tag
                    .seconds("PART-TARGET")?
                    .ok_or_else(|| tag.error("no PART-TARGET".into()))?;
                if target <= 0.0 || target > bounds.max_part_target_secs {
                    return Err(tag.error(format!(
                        "PART-TARGET={target} is not within (0, {}] s",
                        bounds.max_part_target_secs
                    )));
                }
                out.part_target_secs.get_or_insert(target);
            }
            "EXT-X-SKIP" => {
                let tag = Tag::new("EXT-X-SKIP", n, value)?;
                let skipped = tag
                    .integer("SKIPPED-SEGMENTS")?
                    .ok_or_else(|| tag.error("no SKIPPED-SEGMENTS".into()))?;
                segments = segments.saturating_add(skipped);
            }
            "EXT-X-PART" => {
                if out.parts.len() >= bounds.max_parts {
                    return Err(LowLatencyError::TooManyParts {
                        line: n,
                        limit: bounds.max_parts,
                    });
                }
                let tag = Tag::new("EXT-X-PART", n, value)?;
                let uri = tag.required_text("URI")?.to_string();
                let duration_secs = tag
                    .seconds("DURATION")?
                    .ok_or_else(|| tag.error("no DURATION".into()))?;
                let follows = previous_range
                    .as_ref()
                    .filter(|(u, _)| *u == uri)
                    .map(|(_, end)| *end);
                let range = tag.byte_range("BYTERANGE", follows)?;
                previous_range = range.map(|(o, l)| (uri.clone(), o.saturating_add(l)));
                let msn = media_sequence
                    .clone()?
                    .checked_add(segments)
                    .ok_or_else(|| {
                        tag.error("its media sequence number is past 2^64 - 1".into())
                    })?;
                out.parts.push(Part {
                    msn,
                    index,
                    uri,
                    duration_secs,
                    independent: tag.yes("INDEPENDENT")?,
                    gap: tag.yes("GAP")?,
                    range,
                    map: map.clone().transpose()?,
                    line: n,
                });
                index = index.saturating_add(1);
            }
            "EXT-X-PRELOAD-HINT" => {
                let tag = Tag::new("EXT-X-PRELOAD-HINT", n, value)?;
                let kind = match tag.required_text("TYPE")? {
                    "PART" => HintType::Part,
                    "MAP" => HintType::Map,
                    // A type this client does not know is ignored (§6.3.8).
                    _ => continue,
                };
                let hint = PreloadHint {
                    kind,
                    uri: tag.required_text("URI")?.to_string(),
                    start: tag.integer("BYTERANGE-START")?.unwrap_or(0),
                    length: tag.integer("BYTERANGE-LENGTH")?,
                };
                if hint.length == Some(0) {
                    return Err(tag.error("BYTERANGE-LENGTH=0".into()));
                }
                let slot = match kind {
                    HintType::Part => &mut out.part_hint,
                    HintType::Map => &mut out.map_hint,
                };
                slot.get_or_insert(hint);
            }
            "EXT-X-RENDITION-REPORT" => {
                if out.reports.len() >= bounds.max_reports {
                    continue;
                }
                let tag = Tag::new("EXT-X-RENDITION-REPORT", n, value)?;
                out.reports.push(RenditionReport {
                    uri: tag.required_text("URI")?.to_string(),
                    last_msn: tag.integer("LAST-MSN")?,
                    last_part: tag.integer("LAST-PART")?,
                });
            }
            _ => {}
        }
    }
    // Saturates: the follower refuses numbering past u64 before it asks for a next segment.
    out.next_msn = media_sequence.unwrap_or(0).saturating_add(segments);
    Ok(out)
}

/// One tag's attribute list, read for its line.
struct Tag<'a> {
    name: &'static str,
    line: u32,
    attrs: Attrs<'a>,
}

impl<'a> Tag<'a> {
    fn new(name: &'static str, line: u32, value: &'a str) -> Result<Self, LowLatencyError> {
        let (attrs, problem) = attributes(value);
        let tag = Tag { name, line, attrs };
        match problem {
            Some(problem) => Err(tag.error(problem)),
            None => Ok(tag),
        }
    }

    fn error(&self, reason: String) -> LowLatencyError {
        LowLatencyError::Tag {
            line: self.line,
            tag: self.name,
            reason,
        }
    }

    fn get(&self, attr: &str) -> Option<&'a str> {
        self.attrs.get(attr).map(AttrValue::text)
    }

    fn required_text(&self, attr: &str) -> Result<&'a str, LowLatencyError> {
        match self.get(attr) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(self.error(format!("no {attr}"))),
        }
    }

    /// An enumerated-string that is `YES` when present; anything else but `NO` is an error.
    fn yes(&self, attr: &str) -> Result<bool, LowLatencyError> {
        match self.get(attr) {
            None | Some("NO") => Ok(false),
            Some("YES") => Ok(true),
            Some(other) => Err(self.error(format!("{attr}={} is not YES", scan::clip(other)))),
        }
    }

    fn seconds(&self, attr: &str) -> Result<Option<f64>, LowLatencyError> {
        self.get(attr)
            .map(|v| {
                decimal_float(v).ok_or_else(|| {
                    self.error(format!(
                        "{attr}={} is not a decimal number of seconds",
                        scan::clip(v)
                    ))
                })
            })
            .transpose()
    }

    fn integer(&self, attr: &str) -> Result<Option<u64>, LowLatencyError> {
        self.get(attr)
            .map(|v| {
                scan::decimal_integer(v).ok_or_else(|| {
                    self.error(format!("{attr}={} is not a decimal-integer", scan::clip(v)))
                })
            })
            .transpose()
    }

    /// A `"<length>[@<offset>]"` byte range; an offset left out starts at `follows` (0 when
    /// nothing of the same resource came before).
    fn byte_range(
        &self,
        attr: &str,
        follows: Option<u64>,
    ) -> Result<Option<(u64, u64)>, LowLatencyError> {
        let Some(text) = self.get(attr) else {
            return Ok(None);
        };
        let bad = || {
            self.error(format!(
                "{attr}=\"{}\" is not <length>[@<offset>]",
                scan::clip(text)
            ))
        };
        let (length, offset) = match text.split_once('@') {
            Some((l, o)) => (l, Some(scan::decimal_integer(o).ok_or_else(bad)?)),
            None => (text, None),
        };
        let length = scan::decimal_integer(length).ok_or_else(bad)?;
        let offset = offset.or(follows).unwrap_or(0);
        if length == 0 || offset.checked_add(length).is_none() {
            return Err(bad());
        }
        Ok(Some((offset, length)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        max_parts: 1000,
        max_reports: 16,
        max_part_target_secs: 300.0,
    };

    /// A low-latency playlist as gohlslib writes it: two whole segments, their parts, two parts
    /// of the segment being made and the hint of the next.
    const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=12.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI=\"p_init.mp4\"
#EXT-X-PART:DURATION=0.20000,URI=\"p_part0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"p_part1.mp4\"
#EXTINF:0.40000,
p_seg7.mp4
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T09:47:22.497Z
#EXT-X-PART:DURATION=0.20000,URI=\"p_part2.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"p_part3.mp4\"
#EXTINF:0.40000,
p_seg8.mp4
#EXT-X-PART:DURATION=0.20000,URI=\"p_part4.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.18000,URI=\"p_part5.mp4\",GAP=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p_part6.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ignored.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../720p/stream.m3u8\",LAST-MSN=9,LAST-PART=1
";

    fn read_ok(text: &str) -> LowLatency {
        read(text, BOUNDS).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn a_live_low_latency_playlist_is_read_whole() {
        let ll = read_ok(LIVE);
        assert_eq!(
            ll.server_control,
            Some(ServerControl {
                can_block_reload: true,
                part_hold_back_secs: Some(0.6),
                hold_back_secs: None,
                can_skip_until_secs: Some(12.0),
            })
        );
        assert_eq!(ll.part_target_secs, Some(0.2));
        assert_eq!(ll.next_msn, 9);
        let keys: Vec<_> = ll.parts.iter().map(|p| (p.key(), p.uri.as_str())).collect();
        assert_eq!(
            keys,
            [
                ((7, 0), "p_part0.mp4"),
                ((7, 1), "p_part1.mp4"),
                ((8, 0), "p_part2.mp4"),
                ((8, 1), "p_part3.mp4"),
                ((9, 0), "p_part4.mp4"),
                ((9, 1), "p_part5.mp4"),
            ]
        );
        let independent: Vec<bool> = ll.parts.iter().map(|p| p.independent).collect();
        assert_eq!(independent, [true, false, true, false, true, false]);
        assert!(ll.parts[5].gap && !ll.parts[4].gap);
        assert_eq!(ll.parts[5].duration_secs, 0.18);
        assert_eq!(ll.parts[5].line, 18);
        assert_eq!(
            ll.parts[4].map,
            Some(MapRef {
                uri: "p_init.mp4".into(),
                range: None
            })
        );
        assert_eq!(
            ll.part_hint,
            Some(PreloadHint {
                kind: HintType::Part,
                uri: "p_part6.mp4".into(),
                start: 0,
                length: None,
            }),
            "the first hint of a type counts"
        );
        assert_eq!(ll.map_hint, None);
        assert_eq!(
            ll.reports,
            [RenditionReport {
                uri: "../720p/stream.m3u8".into(),
                last_msn: Some(9),
                last_part: Some(1),
            }]
        );
        assert!(ll.is_low_latency() && ll.can_block_reload());
        assert_eq!(ll.next_part_key(), (9, 2));
        assert!(ll.reaches((9, 1)) && ll.reaches((8, 5)) && !ll.reaches((9, 2)));
        assert_eq!(
            ll.blocking_wait(2.0, Duration::from_millis(500)),
            Duration::from_millis(1100)
        );
    }

    #[test]
    fn the_next_part_after_a_whole_segment_is_part_zero_of_the_next() {
        let ll = read_ok(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-PART:DURATION=1,URI=\"a\"\n#EXTINF:1,\ns3.mp4\n",
        );
        assert_eq!((ll.next_msn, ll.next_part_key()), (4, (4, 0)));
        assert!(ll.is_low_latency(), "a part is listed");
        assert!(!ll.can_block_reload(), "no EXT-X-SERVER-CONTROL");
        let plain = read_ok("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns0.ts\n");
        assert!(!plain.is_low_latency());
        assert_eq!(
            plain.blocking_wait(2.0, Duration::ZERO),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn byte_ranges_follow_on_within_a_parent_and_hints_may_be_ranges() {
        let ll = read_ok(
            "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3
#EXT-X-PART-INF:PART-TARGET=1
#EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"800@0\"
#EXT-X-PART:DURATION=1,URI=\"all.mp4\",BYTERANGE=\"1000@800\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1,URI=\"all.mp4\",BYTERANGE=\"500\"
#EXTINF:2,
all.mp4
#EXT-X-PART:DURATION=1,URI=\"all.mp4\",BYTERANGE=\"700\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"all.mp4\",BYTERANGE-START=2300,BYTERANGE-LENGTH=600
#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"next_init.mp4\"
#EXT-X-ENDLIST
",
        );
        let ranges: Vec<_> = ll.parts.iter().map(|p| p.range).collect();
        assert_eq!(
            ranges,
            [Some((800, 1000)), Some((1800, 500)), Some((0, 700))],
            "an offset left out follows the previous part of the same parent only"
        );
        assert_eq!(ll.parts[0].map.as_ref().unwrap().range, Some((0, 800)));
        let hint = ll.part_hint.clone().unwrap();
        assert_eq!(hint.range(), HintRange::Bytes(2300, 600));
        assert_eq!(ll.map_hint.as_ref().unwrap().uri, "next_init.mp4");
        assert!(!ll.can_block_reload(), "the playlist ended");
        let open = PreloadHint {
            kind: HintType::Part,
            uri: "x".into(),
            start: 100,
            length: None,
        };
        assert_eq!(open.range(), HintRange::OpenEnded(100));
    }

    #[test]
    fn delta_updates_count_the_skipped_segments() {
        let ll = read_ok(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXTINF:2,\ns15.mp4\n#EXT-X-PART:DURATION=1,URI=\"p\"\n",
        );
        assert_eq!(ll.parts[0].key(), (16, 0));
    }

    #[test]
    fn blocking_reload_urls_replace_directives_and_keep_the_query_sorted() {
        let url = Url::parse("http://h/live/stream.m3u8?token=abc&_HLS_msn=1&a=1").unwrap();
        assert_eq!(
            blocking_reload_url(&url, 42, Some(3)).as_str(),
            "http://h/live/stream.m3u8?_HLS_msn=42&_HLS_part=3&a=1&token=abc"
        );
        let plain = Url::parse("http://h/stream.m3u8").unwrap();
        assert_eq!(
            blocking_reload_url(&plain, 7, None).as_str(),
            "http://h/stream.m3u8?_HLS_msn=7"
        );
    }

    #[test]
    fn bad_attributes_are_refused_with_their_line() {
        let head = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n";
        for (tag, reason) in [
            ("#EXT-X-PART:DURATION=0.2", "line 3: EXT-X-PART: no URI"),
            (
                "#EXT-X-PART:URI=\"p.mp4\"",
                "line 3: EXT-X-PART: no DURATION",
            ),
            (
                "#EXT-X-PART:DURATION=-1,URI=\"p.mp4\"",
                "line 3: EXT-X-PART: DURATION=-1 is not a decimal number of seconds",
            ),
            (
                "#EXT-X-PART:DURATION=1,URI=\"p.mp4\",INDEPENDENT=yes",
                "line 3: EXT-X-PART: INDEPENDENT=yes is not YES",
            ),
            (
                "#EXT-X-PART:DURATION=1,URI=\"p.mp4\",BYTERANGE=\"0@5\"",
                "line 3: EXT-X-PART: BYTERANGE=\"0@5\" is not <length>[@<offset>]",
            ),
            (
                "#EXT-X-PART:DURATION=1,URI=\"p.mp4\",BYTERANGE=\"1@18446744073709551615\"",
                "line 3: EXT-X-PART: BYTERANGE=\"1@18446744073709551615\" is not <length>[@<offset>]",
            ),
            (
                "#EXT-X-PART:DURATION=1,URI=\"p.mp4",
                "line 3: EXT-X-PART: the quoted value of URI is not closed",
            ),
            (
                "#EXT-X-PART-INF:PART-TARGET=0",
                "line 3: EXT-X-PART-INF: PART-TARGET=0 is not within (0, 300] s",
            ),
            (
                "#EXT-X-PART-INF:PART-TARGET=1e9",
                "line 3: EXT-X-PART-INF: PART-TARGET=1e9 is not a decimal number of seconds",
            ),
            (
                "#EXT-X-PART-INF:PART-TARGET=99999",
                "line 3: EXT-X-PART-INF: PART-TARGET=99999 is not within (0, 300] s",
            ),
            (
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD",
                "line 3: EXT-X-SERVER-CONTROL: `CAN-BLOCK-RELOAD` has no `=value`",
            ),
            (
                "#EXT-X-PRELOAD-HINT:TYPE=PART",
                "line 3: EXT-X-PRELOAD-HINT: no URI",
            ),
            (
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"n\",BYTERANGE-LENGTH=0",
                "line 3: EXT-X-PRELOAD-HINT: BYTERANGE-LENGTH=0",
            ),
            (
                "#EXT-X-MEDIA-SEQUENCE:18446744073709551616\n#EXT-X-PART:DURATION=1,URI=\"p\"",
                "line 3: EXT-X-MEDIA-SEQUENCE: `18446744073709551616` is not a decimal-integer",
            ),
            (
                "#EXT-X-MAP:BYTERANGE=\"5@0\"\n#EXT-X-PART:DURATION=1,URI=\"p\"",
                "line 3: EXT-X-MAP: no URI",
            ),
        ] {
            let text = format!("{head}{tag}\n");
            assert_eq!(
                read(&text, BOUNDS).map(|_| ()).unwrap_err().to_string(),
                reason,
                "{tag}"
            );
        }
        // Numbers past u64: the parent of a part, and the segment after the last.
        let past = format!(
            "{head}#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:2,\na\n#EXT-X-PART:DURATION=1,URI=\"p\"\n"
        );
        assert_eq!(
            read(&past, BOUNDS).unwrap_err().to_string(),
            "line 6: EXT-X-PART: its media sequence number is past 2^64 - 1"
        );
        // Without parts, the numbering and the map are not this reader's to judge.
        let plain = read_ok(&format!(
            "{head}#EXT-X-MEDIA-SEQUENCE:x\n#EXT-X-MAP:BYTERANGE=\"5@0\"\n#EXTINF:2,\na.ts\n"
        ));
        assert!(!plain.is_low_latency());
        // Unknown hint types, tags and attributes are a client's to ignore.
        let ll = read_ok(&format!(
            "{head}#EXT-X-PRELOAD-HINT:TYPE=FUTURE,URI=\"x\"\n#EXT-X-PART:DURATION=1,URI=\"p\",NEW-ATTR=7\n#EXT-X-NEW-TAG:JUNK\n"
        ));
        assert_eq!((ll.part_hint, ll.parts.len()), (None, 1));
    }

    #[test]
    fn a_huge_part_list_is_refused_in_linear_time() {
        let mut text = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
        for i in 0..200_000 {
            text.push_str(&format!("#EXT-X-PART:DURATION=0.2,URI=\"p{i}.mp4\"\n"));
        }
        let started = std::time::Instant::now();
        assert_eq!(
            read(&text, BOUNDS),
            Err(LowLatencyError::TooManyParts {
                line: 1003,
                limit: 1000
            })
        );
        let reports: String = (0..50_000)
            .map(|i| format!("#EXT-X-RENDITION-REPORT:URI=\"r{i}.m3u8\",LAST-MSN={i}\n"))
            .collect();
        let ll = read_ok(&format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n{reports}"));
        assert_eq!(ll.reports.len(), 16, "reports past the bound are not kept");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // One line of a million attributes is one attribute list, read once.
        let wide = format!(
            "#EXTM3U\n#EXT-X-PART:DURATION=1,URI=\"p\",{}\n",
            (0..1_000_000)
                .map(|i| format!("X{i}=1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(read_ok(&wide).parts.len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let pieces = [
            "#EXT-X-PART:",
            "#EXT-X-PART:URI=",
            "#EXT-X-PART:DURATION=1,URI=\"\"",
            "#EXT-X-PART-INF:",
            "#EXT-X-SERVER-CONTROL:,,,",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a\",BYTERANGE-START=18446744073709551615",
            "#EXT-X-RENDITION-REPORT:URI=\"a\",LAST-MSN=x",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=18446744073709551615",
            "#EXT-X-MAP:URI=\"i\",BYTERANGE=\"@\"",
            "\u{0}\u{FEFF}é",
            "segment.ts",
            "#EXTINF:1,",
            "#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut text = String::from("#EXTM3U\n");
            for _ in 0..12 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
                text.push('\n');
            }
            let _ = read(&text, BOUNDS);
        }
    }
}
