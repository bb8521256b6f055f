//! The master playlist: its format, its tags, and what each `EXT-X-STREAM-INF` declares.
//!
//! One scan ([`scan_master`]) reads the text once and yields both the findings and the declared
//! variants, so [`check_master`] and [`super::VariantChecker`] read a master the same way.
//! Whether a variant has video (which makes RESOLUTION and FRAME-RATE required, Apple §9.2,
//! §9.15) is known from CODECS, or from a RESOLUTION being there; a variant with neither is not
//! judged on those two, since nothing says it has video.

use std::collections::HashSet;

use super::rules::Id;
use super::scan::{self, AttrValue, LineKind, attributes, decimal_float, decimal_integer};
use super::variant::is_video_codec;
use super::{Episodes, Finding, HttpFacts, Violation, format_findings, http};

/// Tags of media playlists and media segments: a master holding one is not a master (RFC 8216
/// §4.3.2, §4.3.3; the low-latency and gap tags of the second edition too).
pub(crate) const MEDIA_TAGS: &[&str] = &[
    "EXTINF",
    "EXT-X-BYTERANGE",
    "EXT-X-DISCONTINUITY",
    "EXT-X-KEY",
    "EXT-X-MAP",
    "EXT-X-PROGRAM-DATE-TIME",
    "EXT-X-DATERANGE",
    "EXT-X-GAP",
    "EXT-X-BITRATE",
    "EXT-X-PART",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-ENDLIST",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-I-FRAMES-ONLY",
    "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-SKIP",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
];

/// Tags of master playlists: a media playlist holding one is not a media playlist (§4.3.4).
pub(crate) const MASTER_TAGS: &[&str] = &[
    "EXT-X-MEDIA",
    "EXT-X-STREAM-INF",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-SESSION-DATA",
    "EXT-X-SESSION-KEY",
    "EXT-X-CONTENT-STEERING",
];

/// What one `EXT-X-STREAM-INF` declares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Declared {
    /// Line of the tag.
    pub line: u32,
    /// The URI line after it, as written.
    pub uri: Option<String>,
    pub bandwidth: Option<u64>,
    pub average_bandwidth: Option<u64>,
    pub resolution: Option<(u64, u64)>,
    pub frame_rate: Option<f64>,
    /// The CODECS list, as written.
    pub codecs: Option<String>,
}

/// A master playlist read once.
#[derive(Debug, Default)]
pub(crate) struct MasterScan {
    pub variants: Vec<Declared>,
    pub findings: Vec<Finding>,
}

/// Judges one master playlist (fetched from `url`, answered with `http`): every rule broken.
pub fn check_master(url: &str, text: &str, http: &HttpFacts) -> Vec<Violation> {
    master_findings(url, text, http)
        .into_iter()
        .map(|f| f.at(url))
        .collect()
}

fn master_findings(url: &str, text: &str, http: &HttpFacts) -> Vec<Finding> {
    let mut findings = scan_master(text).findings;
    if let Some((id, detail)) = http::playlist_type(url, http.content_type.as_deref()) {
        findings.push(Finding::new(id, None, detail));
    }
    findings
}

/// A master playlist followed across refreshes: [`check_master`] on each, a finding reported
/// when its rule appears and not again until a refresh without it.
#[derive(Debug, Clone)]
pub struct MasterPlaylistChecker {
    url: String,
    episodes: Episodes,
}

impl MasterPlaylistChecker {
    pub fn new(url: &str) -> Self {
        MasterPlaylistChecker {
            url: url.to_string(),
            episodes: Episodes::default(),
        }
    }

    /// Each fetch of the master playlist.
    pub fn on_refresh(&mut self, text: &str, http: &HttpFacts) -> Vec<Violation> {
        let findings = master_findings(&self.url, text, http);
        self.episodes
            .filter(findings)
            .into_iter()
            .map(|f| f.at(&self.url))
            .collect()
    }
}

/// Reads a master playlist: its findings and its variants (every one, in order; the caller
/// bounds how many it keeps).
pub(crate) fn scan_master(text: &str) -> MasterScan {
    let mut out = MasterScan::default();
    format_findings(text, &mut out.findings);
    let f = &mut out.findings;
    let mut version: Option<(Option<u64>, u32)> = None;
    let mut once = [("EXT-X-INDEPENDENT-SEGMENTS", 0u32), ("EXT-X-START", 0)];
    let mut pending: Option<Declared> = None;
    let mut media_groups: HashSet<(&str, &str)> = HashSet::new();
    let mut group_refs: Vec<(&str, &str, u32)> = Vec::new();
    let mut mixed = false;
    let mut needs: Option<(u64, u32, &str)> = None;
    for line in scan::lines(text) {
        let n = line.number;
        match line.kind {
            LineKind::Blank | LineKind::Comment => {}
            LineKind::Uri(uri) => match pending.take() {
                Some(mut declared) => {
                    declared.uri = Some(uri.to_string());
                    out.variants.push(declared);
                }
                None if !mixed => {
                    mixed = true;
                    f.push(Finding::new(
                        Id::MixedPlaylist,
                        Some(n),
                        format!(
                            "URI line `{}` follows no EXT-X-STREAM-INF: a media segment in a master playlist",
                            scan::clip(uri)
                        ),
                    ));
                }
                None => {}
            },
            LineKind::Tag { name, value } => match name {
                "EXT-X-VERSION" => match version {
                    Some(_) => f.push(Finding::new(
                        Id::TagDuplicate,
                        Some(n),
                        "EXT-X-VERSION appears again",
                    )),
                    None => version = Some((value.and_then(decimal_integer), n)),
                },
                "EXT-X-INDEPENDENT-SEGMENTS" | "EXT-X-START" => {
                    if let Some((_, count)) = once.iter_mut().find(|(t, _)| *t == name) {
                        *count += 1;
                        if *count == 2 {
                            f.push(Finding::new(
                                Id::TagDuplicate,
                                Some(n),
                                format!("{name} appears again"),
                            ));
                        }
                    }
                }
                "EXT-X-STREAM-INF" => {
                    if let Some(previous) = pending.take() {
                        f.push(stream_inf_without_uri(&previous));
                    }
                    let declared = stream_inf(n, value.unwrap_or(""), f, &mut group_refs);
                    pending = Some(declared);
                }
                "EXT-X-MEDIA" => {
                    let (attrs, problem) = attributes(value.unwrap_or(""));
                    if let Some(problem) = problem {
                        f.push(Finding::new(
                            Id::TagValueInvalid,
                            Some(n),
                            format!("EXT-X-MEDIA: {problem}"),
                        ));
                    }
                    let missing: Vec<&str> = ["TYPE", "GROUP-ID", "NAME"]
                        .into_iter()
                        .filter(|a| !attrs.has(a))
                        .collect();
                    if !missing.is_empty() {
                        f.push(Finding::new(
                            Id::RequiredAttributeMissing,
                            Some(n),
                            format!("EXT-X-MEDIA without {}", missing.join(", ")),
                        ));
                    }
                    if let (Some(kind), Some(group)) = (attrs.get("TYPE"), attrs.get("GROUP-ID")) {
                        media_groups.insert((kind.text(), group.text()));
                    }
                    if attrs
                        .get("INSTREAM-ID")
                        .is_some_and(|v| v.text().starts_with("SERVICE"))
                        && needs.is_none_or(|(v, _, _)| v < 7)
                    {
                        needs = Some((7, n, "an INSTREAM-ID of SERVICEn"));
                    }
                }
                "EXT-X-ALLOW-CACHE" => f.push(Finding::new(
                    Id::AllowCacheRemoved,
                    Some(n),
                    "EXT-X-ALLOW-CACHE is present",
                )),
                _ if MEDIA_TAGS.contains(&name) && !mixed => {
                    mixed = true;
                    f.push(Finding::new(
                        Id::MixedPlaylist,
                        Some(n),
                        format!("media playlist tag {name} in a master playlist"),
                    ));
                }
                _ => {}
            },
        }
    }
    if let Some(previous) = pending.take() {
        f.push(stream_inf_without_uri(&previous));
    }
    for (kind, group, n) in group_refs {
        if !media_groups.contains(&(kind, group)) {
            f.push(Finding::new(
                Id::MediaGroupMissing,
                Some(n),
                format!(
                    "{kind}=\"{}\" names no EXT-X-MEDIA with TYPE={kind} and that GROUP-ID",
                    scan::clip(group)
                ),
            ));
        }
    }
    if once[0].1 == 0 && !out.variants.is_empty() {
        f.push(Finding::new(
            Id::IndependentSegmentsMissing,
            None,
            "no EXT-X-INDEPENDENT-SEGMENTS",
        ));
    }
    version_findings(version, needs, f);
    out
}

/// The finding of an EXT-X-STREAM-INF whose URI line never came.
fn stream_inf_without_uri(declared: &Declared) -> Finding {
    Finding::new(
        Id::StreamInfUriMissing,
        Some(declared.line),
        "EXT-X-STREAM-INF is followed by no URI line",
    )
}

/// One EXT-X-STREAM-INF's attributes judged and read.
fn stream_inf<'a>(
    n: u32,
    value: &'a str,
    f: &mut Vec<Finding>,
    group_refs: &mut Vec<(&'a str, &'a str, u32)>,
) -> Declared {
    let (attrs, problem) = attributes(value);
    if let Some(problem) = problem {
        f.push(Finding::new(
            Id::TagValueInvalid,
            Some(n),
            format!("EXT-X-STREAM-INF: {problem}"),
        ));
    }
    let invalid = |f: &mut Vec<Finding>, attribute: &str, v: AttrValue<'_>, expected: &str| {
        f.push(Finding::new(
            Id::TagValueInvalid,
            Some(n),
            format!("{attribute}={} is not {expected}", scan::clip(v.text())),
        ));
    };
    let bandwidth = attrs.get("BANDWIDTH").and_then(|v| match v {
        AttrValue::Bare(t) => decimal_integer(t),
        AttrValue::Quoted(_) => None,
    });
    let average_bandwidth = attrs.get("AVERAGE-BANDWIDTH").and_then(|v| {
        let parsed = match v {
            AttrValue::Bare(t) => decimal_integer(t),
            AttrValue::Quoted(_) => None,
        };
        if parsed.is_none() {
            invalid(f, "AVERAGE-BANDWIDTH", v, "a decimal-integer");
        }
        parsed
    });
    let resolution = attrs.get("RESOLUTION").and_then(|v| {
        let parsed = match v {
            AttrValue::Bare(t) => scan::resolution(t),
            AttrValue::Quoted(_) => None,
        };
        if parsed.is_none() {
            invalid(f, "RESOLUTION", v, "a decimal-resolution (WIDTHxHEIGHT)");
        }
        parsed
    });
    let frame_rate = attrs.get("FRAME-RATE").and_then(|v| {
        let parsed = match v {
            AttrValue::Bare(t) => decimal_float(t),
            AttrValue::Quoted(_) => None,
        };
        if parsed.is_none() {
            invalid(f, "FRAME-RATE", v, "a decimal-floating-point");
        }
        parsed
    });
    let codecs = attrs.get("CODECS").and_then(|v| match v {
        AttrValue::Quoted(t) => Some(t.to_string()),
        AttrValue::Bare(_) => {
            invalid(f, "CODECS", v, "a quoted-string");
            None
        }
    });
    if bandwidth.is_none() {
        f.push(Finding::new(
            Id::StreamInfBandwidth,
            Some(n),
            match attrs.get("BANDWIDTH") {
                Some(v) => format!(
                    "BANDWIDTH={} is not a decimal-integer",
                    scan::clip(v.text())
                ),
                None => "no BANDWIDTH".to_string(),
            },
        ));
    }
    if !attrs.has("AVERAGE-BANDWIDTH") {
        f.push(Finding::new(
            Id::StreamInfAverageBandwidthMissing,
            Some(n),
            "no AVERAGE-BANDWIDTH",
        ));
    }
    if !attrs.has("CODECS") {
        f.push(Finding::new(
            Id::StreamInfCodecsMissing,
            Some(n),
            "no CODECS",
        ));
    }
    let has_video = match &codecs {
        Some(list) => list.split(',').any(|c| is_video_codec(c.trim())),
        None => resolution.is_some(),
    };
    if has_video && !attrs.has("RESOLUTION") {
        f.push(Finding::new(
            Id::StreamInfResolutionMissing,
            Some(n),
            "a variant with video has no RESOLUTION",
        ));
    }
    if has_video && !attrs.has("FRAME-RATE") {
        f.push(Finding::new(
            Id::StreamInfFrameRateMissing,
            Some(n),
            "a variant with video has no FRAME-RATE",
        ));
    }
    if attrs.has("PROGRAM-ID") {
        f.push(Finding::new(
            Id::ProgramIdRemoved,
            Some(n),
            "EXT-X-STREAM-INF has PROGRAM-ID",
        ));
    }
    for attribute in ["AUDIO", "VIDEO", "SUBTITLES", "CLOSED-CAPTIONS"] {
        match attrs.get(attribute) {
            Some(AttrValue::Quoted(group)) => group_refs.push((attribute, group, n)),
            Some(AttrValue::Bare("NONE")) if attribute == "CLOSED-CAPTIONS" => {}
            Some(v @ AttrValue::Bare(_)) => invalid(f, attribute, v, "a quoted-string"),
            None => {}
        }
    }
    Declared {
        line: n,
        uri: None,
        bandwidth,
        average_bandwidth,
        resolution,
        frame_rate,
        codecs,
    }
}

/// EXT-X-VERSION against what the playlist uses (§4.3.1.2: none means version 1; §7).
pub(crate) fn version_findings(
    version: Option<(Option<u64>, u32)>,
    needs: Option<(u64, u32, &str)>,
    f: &mut Vec<Finding>,
) {
    match (version, needs) {
        (Some((None, line)), _) => f.push(Finding::new(
            Id::VersionIncompatible,
            Some(line),
            "EXT-X-VERSION is not a decimal-integer",
        )),
        (Some((Some(v), line)), Some((need, at, feature))) if v < need => f.push(Finding::new(
            Id::VersionIncompatible,
            Some(at),
            format!("EXT-X-VERSION:{v} (line {line}), but {feature} needs version {need}"),
        )),
        (None, Some((need, at, feature))) if need > 1 => f.push(Finding::new(
            Id::VersionIncompatible,
            Some(at),
            format!("no EXT-X-VERSION (so version 1), but {feature} needs version {need}"),
        )),
        _ => {}
    }
}
