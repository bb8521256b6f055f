//! The HLS conformance checkers of one stream, fed from what its puller already fetched and its
//! checks already decoded: the master playlist on each refresh (its rules, and what it declares
//! for each variant), each media playlist on each refresh, each segment's measured facts, and the
//! renditions' timelines against each other. Nothing is downloaded for it.

use std::collections::HashMap;

use crate::conformance::{
    HttpFacts, MasterPlaylistChecker, MediaPlaylistChecker, SegmentFacts, TimelineChecker,
    VariantChecker, Violation,
};
use crate::decode::DecodedSegment;
use crate::hls::{PlaylistPoll, PulledSegment};

/// Renditions judged at most per stream; the puller follows no more than its own limit anyway.
const MAX_RENDITIONS: usize = 64;

/// Every conformance checker of one stream.
#[derive(Default)]
pub struct StreamConformance {
    master: Option<(MasterPlaylistChecker, VariantChecker)>,
    /// Each rendition's media playlist checker, by rendition name.
    media: HashMap<String, MediaPlaylistChecker>,
    timeline: TimelineChecker,
}

/// A violation, with the rendition it was found in (none for the master playlist).
pub type Found = (Option<String>, Violation);

impl StreamConformance {
    /// A playlist poll: a master's or a rendition's text as the puller read it.
    pub fn playlist(&mut self, poll: &PlaylistPoll) -> Vec<Found> {
        let (Ok(_), Some(text)) = (&poll.outcome, &poll.text) else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(text);
        let http = HttpFacts {
            status: 200,
            content_type: poll.content_type.clone(),
            cache_control: poll.cache_control.clone(),
            at_unix_ms: poll.at_unix_ms,
        };
        match &poll.rendition {
            None => {
                let (master, variants) = self.master.get_or_insert_with(|| {
                    (
                        MasterPlaylistChecker::new(&poll.url),
                        VariantChecker::new(&poll.url, ""),
                    )
                });
                variants.on_master(&text);
                master
                    .on_refresh(&text, &http)
                    .into_iter()
                    .map(|v| (None, v))
                    .collect()
            }
            Some(rendition) => {
                if !self.media.contains_key(rendition) && self.media.len() >= MAX_RENDITIONS {
                    return Vec::new();
                }
                self.media
                    .entry(rendition.clone())
                    .or_insert_with(|| MediaPlaylistChecker::new(&poll.url))
                    .on_refresh(&text, &http)
                    .into_iter()
                    .map(|v| (Some(rendition.clone()), v))
                    .collect()
            }
        }
    }

    /// A downloaded segment, with what decoding it found (`None` when it was not decoded).
    pub fn segment(
        &mut self,
        pulled: &SegmentMeta,
        decoded: Option<&DecodedSegment>,
    ) -> Vec<Found> {
        let Some(status) = pulled.http_status else {
            return Vec::new();
        };
        let facts = SegmentFacts {
            seq: pulled.seq,
            url: pulled.url.clone(),
            http: HttpFacts {
                status,
                content_type: pulled.content_type.clone(),
                cache_control: None,
                at_unix_ms: pulled.download_finished_unix_ms,
            },
            extinf_secs: pulled.extinf_secs,
            bytes: pulled.size,
            target_duration_secs: Some(pulled.target_duration_secs),
            measured_duration_secs: decoded.map(DecodedSegment::duration_secs),
            first_frame_is_key: decoded
                .filter(|d| !d.audio_only)
                .and_then(|d| d.frames.first())
                .map(|f| f.is_key),
            codec: decoded.filter(|d| !d.audio_only).map(|d| d.codec.clone()),
            width: decoded.filter(|d| !d.audio_only).map(|d| d.width),
            height: decoded.filter(|d| !d.audio_only).map(|d| d.height),
            fps: decoded.and_then(|d| d.fps),
            first_pts_secs: decoded.and_then(DecodedSegment::first_pts_secs),
            audio_codec: decoded.and_then(|d| d.audio_codec.clone()),
        };
        let rendition = &pulled.rendition;
        let mut found = Vec::new();
        if let Some(media) = self.media.get_mut(rendition) {
            found.extend(media.on_segment(&facts));
            if let Some((_, variants)) = &mut self.master {
                let url = media.url().to_string();
                found.extend(variants.on_segment(&url, &facts));
            }
        }
        if let Some(decoded) = decoded.filter(|d| !d.audio_only)
            && let (Some(pts), Some(frame)) = (decoded.first_pts_secs(), decoded.frame_secs())
        {
            let url = pulled.url.as_str();
            found.extend(
                self.timeline
                    .on_segment(rendition, pulled.seq, pts, frame, url),
            );
        }
        found
            .into_iter()
            .map(|v| (Some(rendition.clone()), v))
            .collect()
    }

    /// The end of the pull: what is judged over the whole run (average bit rates).
    pub fn finish(&mut self) -> Vec<Found> {
        match &mut self.master {
            Some((_, variants)) => variants.finish().into_iter().map(|v| (None, v)).collect(),
            None => Vec::new(),
        }
    }
}

/// What the conformance checks read of a pulled segment (the segment itself moves on to be
/// decoded).
pub struct SegmentMeta {
    pub rendition: String,
    pub seq: u64,
    pub url: String,
    pub http_status: Option<u16>,
    pub content_type: Option<String>,
    pub extinf_secs: f64,
    pub target_duration_secs: f64,
    pub size: u64,
    pub download_finished_unix_ms: i64,
}

impl SegmentMeta {
    pub fn of(pulled: &PulledSegment) -> SegmentMeta {
        SegmentMeta {
            rendition: pulled.rendition.clone(),
            seq: pulled.seq,
            url: pulled.url.clone(),
            http_status: pulled.http_status,
            content_type: pulled.content_type.clone(),
            extinf_secs: pulled.extinf_secs,
            target_duration_secs: pulled.target_duration_secs,
            size: pulled.size,
            download_finished_unix_ms: pulled.download_finished_unix_ms,
        }
    }
}
