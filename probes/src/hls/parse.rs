//! Playlist text to playlists and renditions: anything that does not start with `#EXTM3U` is
//! refused with what it started with, renditions are named from their URLs, and gaps are read
//! from the tags the m3u8 parser does not know.

use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaSegment, Playlist};
use url::Url;

use super::events::{PullError, RenditionInfo};

/// Parses a playlist, refusing anything that does not start with `#EXTM3U` (the m3u8 parser
/// alone accepts some garbage as an empty playlist).
pub(super) fn parse_playlist(url: &Url, body: &[u8]) -> Result<Playlist, PullError> {
    let garbage = |reason: String| PullError::Garbage {
        url: url.to_string(),
        reason,
    };
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    if !text[start..].starts_with(b"#EXTM3U") {
        let preview: String = String::from_utf8_lossy(&text[start..text.len().min(start + 40)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(garbage(format!(
            "does not start with #EXTM3U (starts with {preview:?})"
        )));
    }
    match m3u8_rs::parse_playlist_res(text) {
        Ok(Playlist::MediaPlaylist(m)) if m.target_duration == 0 && !m.segments.is_empty() => Err(
            garbage("media playlist without #EXT-X-TARGETDURATION".into()),
        ),
        Ok(p) => Ok(p),
        Err(e) => Err(garbage(format!("{e:?}").chars().take(200).collect())),
    }
}

/// Whether the playlist marks `segment` as a gap (`#EXT-X-GAP`, RFC 8216bis §4.4.4.7: its URI
/// holds no media and clients should not load it). m3u8-rs 6 does not know the tag and keeps it
/// among the unknown tags of the segment it precedes, which is the one it applies to.
pub(super) fn is_gap(segment: &MediaSegment) -> bool {
    segment
        .unknown_tags
        .iter()
        .any(|t| t.tag.trim_end() == "X-GAP")
}

pub(super) fn master_renditions(
    url: &Url,
    master: &MasterPlaylist,
) -> Result<Vec<RenditionInfo>, PullError> {
    let mut out = Vec::new();
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        let joined = url.join(&v.uri).map_err(|e| PullError::BadUri {
            url: url.to_string(),
            uri: v.uri.clone(),
            reason: e.to_string(),
        })?;
        out.push(RenditionInfo {
            name: rendition_name(&joined),
            url: joined.to_string(),
            bandwidth: Some(v.bandwidth),
            resolution: v.resolution.map(|r| {
                (
                    r.width.min(u32::MAX as u64) as u32,
                    r.height.min(u32::MAX as u64) as u32,
                )
            }),
        });
    }
    // Audio renditions of their own (`#EXT-X-MEDIA:TYPE=AUDIO` with a URI) are followed too; one
    // without a URI is the audio muxed into the variants.
    for alternative in master
        .alternatives
        .iter()
        .filter(|a| a.media_type == AlternativeMediaType::Audio)
    {
        let Some(uri) = &alternative.uri else {
            continue;
        };
        let joined = url.join(uri).map_err(|e| PullError::BadUri {
            url: url.to_string(),
            uri: uri.clone(),
            reason: e.to_string(),
        })?;
        if out.iter().any(|r| r.url == joined.as_str()) {
            continue;
        }
        out.push(RenditionInfo {
            name: rendition_name(&joined),
            url: joined.to_string(),
            bandwidth: None,
            resolution: None,
        });
    }
    if out.is_empty() {
        return Err(PullError::NoRenditions {
            url: url.to_string(),
        });
    }
    Ok(out)
}

/// A rendition's name from its playlist URL: the file stem (`.../P360p30fps16x9.m3u8`), or the
/// folder when the file has a generic name (`.../P360p30fps16x9/index.m3u8`).
pub fn rendition_name(url: &Url) -> String {
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let file = segments.last().copied().unwrap_or("playlist");
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    if matches!(
        stem,
        "index" | "playlist" | "stream" | "prog_index" | "chunklist"
    ) && segments.len() >= 2
    {
        segments[segments.len() - 2].to_string()
    } else {
        stem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_renditions_from_their_urls() {
        let n = |u: &str| rendition_name(&Url::parse(u).unwrap());
        assert_eq!(
            n("http://h/stream/abc/P360p30fps16x9.m3u8"),
            "P360p30fps16x9"
        );
        assert_eq!(
            n("http://h/hls/P240p30fps16x9/index.m3u8"),
            "P240p30fps16x9"
        );
        assert_eq!(n("http://h/hls/key.m3u8"), "key");
    }

    #[test]
    fn garbage_is_refused_with_what_it_started_with() {
        let url = Url::parse("http://h/x.m3u8").unwrap();
        let e = parse_playlist(&url, b"<html>oops</html>").unwrap_err();
        assert!(e.to_string().contains("<html>oops"), "{e}");
        let ok = parse_playlist(
            &url,
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\na.ts\n",
        )
        .unwrap();
        match ok {
            Playlist::MediaPlaylist(m) => {
                assert_eq!((m.media_sequence, m.segments.len()), (7, 1));
            }
            Playlist::MasterPlaylist(_) => panic!("media expected"),
        }
    }

    #[test]
    fn master_lists_renditions_with_resolution() {
        let url = Url::parse("http://h/stream/k.m3u8").unwrap();
        let body = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=426x240\nk/P240p30fps16x9.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360\nk/P360p30fps16x9.m3u8\n";
        let Playlist::MasterPlaylist(m) = parse_playlist(&url, body).unwrap() else {
            panic!("master expected")
        };
        let r = master_renditions(&url, &m).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "P240p30fps16x9");
        assert_eq!(r[0].url, "http://h/stream/k/P240p30fps16x9.m3u8");
        assert_eq!(r[1].resolution, Some((640, 360)));
    }

    #[test]
    fn audio_renditions_of_their_own_are_followed_and_muxed_audio_is_not() {
        let url = Url::parse("http://h/live/s.m3u8").unwrap();
        let body = b"#EXTM3U\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,URI=\"s-audio.m3u8\"\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"muxed\",NAME=\"main\"\n\
            #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"en\",URI=\"subs.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360,AUDIO=\"aud\"\ns-video.m3u8\n";
        let Playlist::MasterPlaylist(m) = parse_playlist(&url, body).unwrap() else {
            panic!("master expected")
        };
        let r = master_renditions(&url, &m).unwrap();
        let listed: Vec<(&str, Option<(u32, u32)>)> =
            r.iter().map(|r| (r.url.as_str(), r.resolution)).collect();
        assert_eq!(
            listed,
            [
                ("http://h/live/s-video.m3u8", Some((640, 360))),
                ("http://h/live/s-audio.m3u8", None),
            ]
        );
    }

    #[test]
    fn ext_x_gap_marks_only_the_segment_it_precedes() {
        let url = Url::parse("http://h/r/index.m3u8").unwrap();
        let body = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
            #EXTINF:2.0,\n4.ts\n#EXT-X-GAP\n#EXTINF:2.0,\n5.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-GAP \n\
            #EXTINF:2.5,\n6.ts\n#EXTINF:2.0,\n7.ts\n#EXT-X-GAPS\n#EXTINF:2.0,\n8.ts\n";
        let Playlist::MediaPlaylist(m) = parse_playlist(&url, body).unwrap() else {
            panic!("media expected")
        };
        let marked: Vec<(&str, bool, f32)> = m
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), is_gap(s), s.duration))
            .collect();
        assert_eq!(
            marked,
            [
                ("4.ts", false, 2.0),
                ("5.ts", true, 2.0),
                ("6.ts", true, 2.5),
                ("7.ts", false, 2.0),
                ("8.ts", false, 2.0),
            ]
        );
        assert!(m.segments[2].discontinuity);
    }
}
