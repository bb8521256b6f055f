//! What the HTTP response of a playlist or a segment must say: its type and, for a live media
//! playlist, how long caches may keep it.
//!
//! The judgments are pure functions of the response's facts ([`super::HttpFacts`]) and return the
//! rule broken with a detail, or nothing; the checkers decide how often to report them.

use super::rules::Id;
use super::scan::{media_type, url_path};

/// The playlist types RFC 8216 §4 names.
const PLAYLIST_TYPES: [&str; 2] = ["application/vnd.apple.mpegurl", "audio/mpegurl"];

/// Segment types Apple's authoring specification recommends (§10.4).
const SEGMENT_TYPES: [&str; 11] = [
    "video/mp2t",
    "video/mp4",
    "video/iso.segment",
    "audio/mp4",
    "audio/aac",
    "audio/mpeg",
    "audio/ac3",
    "audio/eac3",
    "text/vtt",
    "text/plain",
    "application/mp4",
];

/// A playlist's identification (RFC 8216 §4: path or Content-Type; Apple §10.4: the type too).
pub(crate) fn playlist_type(url: &str, content_type: Option<&str>) -> Option<(Id, String)> {
    let kind = content_type.map(media_type);
    if kind.as_deref().is_some_and(|k| PLAYLIST_TYPES.contains(&k)) {
        return None;
    }
    let path = url_path(url).to_ascii_lowercase();
    let shown = content_type.map_or_else(
        || "no Content-Type".to_string(),
        |t| format!("Content-Type `{t}`"),
    );
    if path.ends_with(".m3u8") || path.ends_with(".m3u") {
        Some((
            Id::PlaylistMimeType,
            format!("served with {shown}, not application/vnd.apple.mpegurl"),
        ))
    } else {
        Some((
            Id::PlaylistContentType,
            format!("path `{path}` does not end .m3u8 or .m3u and the response has {shown}"),
        ))
    }
}

/// A live media playlist's caching: `None` when caches must revalidate it (`no-cache`,
/// `no-store`) or may keep it at most half a target duration.
pub(crate) fn playlist_cache(
    cache_control: Option<&str>,
    target_duration_s: u64,
) -> Option<String> {
    let half_ms = target_duration_s.saturating_mul(500);
    let Some(header) = cache_control else {
        return Some(format!(
            "no Cache-Control: caches may keep the playlist by heuristics; no-cache or max-age ≤ {} ms expected",
            half_ms
        ));
    };
    let mut longest: Option<(&str, u64)> = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        if name == "no-cache" || name == "no-store" {
            return None;
        }
        if name == "max-age" || name == "s-maxage" {
            let seconds = value
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .unwrap_or(u64::MAX);
            if longest.is_none_or(|(_, s)| seconds > s) {
                longest = Some((
                    if name == "max-age" {
                        "max-age"
                    } else {
                        "s-maxage"
                    },
                    seconds,
                ));
            }
        }
    }
    match longest {
        Some((_, seconds)) if seconds.saturating_mul(1000) <= half_ms => None,
        Some((name, seconds)) => Some(format!(
            "Cache-Control `{header}`: {name} {seconds} s is more than half the {target_duration_s} s target duration"
        )),
        None => Some(format!(
            "Cache-Control `{header}` sets no max-age, no-cache or no-store: caches may keep the playlist by heuristics"
        )),
    }
}

/// A segment's Content-Type (Apple §10.4).
pub(crate) fn segment_type(content_type: Option<&str>) -> Option<String> {
    match content_type {
        None => Some("served with no Content-Type".to_string()),
        Some(t) if SEGMENT_TYPES.contains(&media_type(t).as_str()) => None,
        Some(t) => Some(format!("served as `{t}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_playlist_is_identified_by_its_type_or_else_its_path() {
        let m3u8 = "https://h/live/index.m3u8?token=1";
        assert_eq!(
            playlist_type(m3u8, Some("application/vnd.apple.mpegurl")),
            None
        );
        assert_eq!(
            playlist_type("https://h/live", Some("audio/mpegurl; charset=UTF-8")),
            None
        );
        assert_eq!(
            playlist_type(m3u8, Some("text/plain")).map(|(id, _)| id),
            Some(Id::PlaylistMimeType)
        );
        let (id, detail) = playlist_type("https://h/live/index", None).unwrap();
        assert_eq!(id, Id::PlaylistContentType);
        assert_eq!(
            detail,
            "path `/live/index` does not end .m3u8 or .m3u and the response has no Content-Type"
        );
    }

    #[test]
    fn a_live_playlist_may_be_cached_half_a_target_duration_at_most() {
        assert_eq!(playlist_cache(Some("no-cache"), 2), None);
        assert_eq!(playlist_cache(Some("public, no-store"), 2), None);
        assert_eq!(playlist_cache(Some("max-age=1"), 2), None);
        assert_eq!(playlist_cache(Some("max-age=1, s-maxage=3"), 6), None);
        assert_eq!(
            playlist_cache(Some("max-age=1, s-maxage=2"), 2).as_deref(),
            Some(
                "Cache-Control `max-age=1, s-maxage=2`: s-maxage 2 s is more than half the 2 s target duration"
            )
        );
        assert!(playlist_cache(Some("max-age=junk"), 2).is_some());
        assert!(playlist_cache(Some("public"), 2).is_some());
        assert!(playlist_cache(None, 2).is_some());
    }

    #[test]
    fn segments_have_a_recommended_type() {
        assert_eq!(segment_type(Some("video/MP2T")), None);
        assert_eq!(segment_type(Some("video/iso.segment")), None);
        assert_eq!(
            segment_type(Some("application/octet-stream")).as_deref(),
            Some("served as `application/octet-stream`")
        );
        assert!(segment_type(None).is_some());
    }
}
