//! What a pull reports: the events a [`PullSink`] receives as they happen (renditions found,
//! playlist polls, segments, low-latency parts, missed segments, stalls), why a request failed,
//! and the totals.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;
use crate::observe::StallObservation;

/// Why a request or a playlist failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullError {
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: no complete response within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    #[error("GET {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("GET {url}: body cut short: {reason}")]
    Truncated { url: String, reason: String },
    #[error("GET {url}: body larger than the {limit}-byte limit; stopped reading")]
    TooLarge { url: String, limit: u64 },
    #[error("{url} is not an HLS playlist: {reason}")]
    Garbage { url: String, reason: String },
    #[error("{url} is a master playlist where a media playlist was expected")]
    UnexpectedMaster { url: String },
    #[error("master playlist {url} lists no renditions")]
    NoRenditions { url: String },
    #[error("master playlist {url} lists {listed} renditions; only the first {limit} are followed")]
    TooManyRenditions {
        url: String,
        listed: usize,
        limit: usize,
    },
    #[error(
        "{url}: #EXT-X-TARGETDURATION:{secs} is beyond the {limit_secs} s the puller accepts; playlist refused"
    )]
    TargetDurationTooLong {
        url: String,
        secs: u64,
        limit_secs: u64,
    },
    #[error(
        "{url}: #EXT-X-MEDIA-SEQUENCE:{first} with {segments} segments numbers past 2^64 - 1; playlist refused"
    )]
    SequenceOverflow {
        url: String,
        first: u64,
        segments: usize,
    },
    #[error("{url}: bad URI {uri:?}: {reason}")]
    BadUri {
        url: String,
        uri: String,
        reason: String,
    },
    /// The media initialization section (`#EXT-X-MAP`) a segment needs could not be had.
    #[error("init segment {url}: {reason}")]
    InitSegment { url: String, reason: String },
    /// A byte range (`#EXT-X-BYTERANGE` or a map's `BYTERANGE`) the response does not hold.
    #[error("GET {url}: bytes {offset}..{end} asked, {reason}")]
    Range {
        url: String,
        offset: u64,
        end: u64,
        reason: String,
    },
    #[error("{url}: media sequence went back from {from} to {to}")]
    SequenceWentBack { url: String, from: u64, to: u64 },
    #[error("the run's deadline passed before {url} was read")]
    Deadline { url: String },
    /// The playlist marks the segment `#EXT-X-GAP`: the server says it has no media, so it is
    /// not requested. Its text is its code alone: a segment's failure text is what its journal
    /// record keeps as the error, and the URL, the one detail, is the segment's own.
    #[error("gap")]
    Gap { url: String },
    /// The low-latency tags of a media playlist could not be read (`low_latency`).
    #[error("{url}: {reason}; playlist refused")]
    LowLatency { url: String, reason: String },
}

/// The failure text of a [`PullError::Gap`], which a segment's observation and journal record keep.
pub const GAP_FAILURE: &str = "gap";

/// A rendition found in the master playlist (or the media playlist itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionInfo {
    pub name: String,
    pub url: String,
    pub bandwidth: Option<u64>,
    pub resolution: Option<(u32, u32)>,
}

/// One segment, downloaded or not.
#[derive(Debug, Clone)]
pub struct PulledSegment {
    pub rendition: String,
    pub seq: u64,
    pub url: String,
    pub extinf_secs: f64,
    pub discontinuity: bool,
    pub target_duration_secs: f64,
    pub first_seen_unix_ms: UnixMs,
    pub download_started_unix_ms: UnixMs,
    pub download_finished_unix_ms: UnixMs,
    pub http_status: Option<u16>,
    pub content_type: Option<String>,
    /// Bytes of the media segment received (also when `body` is not kept); the init segment is
    /// not counted.
    pub size: u64,
    /// What a decoder needs (empty when `keep_bytes` is off): the segment's init segment
    /// (`#EXT-X-MAP`, fetched once per map) followed by the media segment, or why it could not be
    /// had ([`PullError::Gap`] for a gap, which is never requested).
    pub body: Result<Bytes, PullError>,
    /// Bytes of `body` that are the init segment (0 without `#EXT-X-MAP`).
    pub init_size: u64,
    /// The byte range of the resource the segment is (`#EXT-X-BYTERANGE`): offset and length.
    pub byte_range: Option<(u64, u64)>,
}

/// One low-latency part (`#EXT-X-PART`, RFC 8216bis §4.4.4.9), downloaded or not.
#[derive(Debug, Clone)]
pub struct PulledPart {
    pub rendition: String,
    /// The media sequence number of its parent segment.
    pub msn: u64,
    /// Its position among its parent's parts, from 0.
    pub index: u64,
    pub url: String,
    /// Its `DURATION`.
    pub duration_secs: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// Requested from an `#EXT-X-PRELOAD-HINT` before a playlist listed it: its bytes arrived as
    /// soon as the server had them.
    pub hinted: bool,
    /// When the playlist listing it (or hinting it) arrived.
    pub first_seen_unix_ms: UnixMs,
    pub download_started_unix_ms: UnixMs,
    /// When its last byte arrived: the moment its latency is measured to.
    pub download_finished_unix_ms: UnixMs,
    pub http_status: Option<u16>,
    pub content_type: Option<String>,
    /// Bytes of the part itself received.
    pub size: u64,
    /// What a decoder needs (empty when `keep_bytes` is off): the init segment, the earlier parts
    /// of the same parent it depends on (from the last `INDEPENDENT=YES` one), then the part; or
    /// why it could not be had ([`PullError::Gap`] for a gap, which is never requested).
    pub body: Result<Bytes, PullError>,
    /// Bytes of `body` before the part's own: the init segment and the earlier parts.
    pub lead_size: u64,
    /// How many earlier parts `body` carries before this one; `None` when the part depends on
    /// earlier parts that could not be had, so it cannot be decoded.
    pub lead_parts: Option<usize>,
    /// The byte range of the resource the part is: offset and length.
    pub byte_range: Option<(u64, u64)>,
}

/// A blocking playlist reload (RFC 8216bis §6.2.5.2) a poll asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingReload {
    /// `_HLS_msn`: the media sequence number waited for.
    pub msn: u64,
    /// `_HLS_part`: the part of it waited for.
    pub part: Option<u64>,
    /// Why it was given up (its deadline passed, or the server refused it); the poll's playlist
    /// is then a plain reload made right after. `None`: the server answered it.
    pub given_up: Option<PullError>,
}

/// One poll of a playlist.
#[derive(Debug, Clone)]
pub struct PlaylistPoll {
    pub rendition: Option<String>,
    pub url: String,
    pub at_unix_ms: UnixMs,
    pub content_type: Option<String>,
    /// The response's `Cache-Control` header.
    pub cache_control: Option<String>,
    /// The playlist's text as received (bounded by `max_playlist_bytes`), when it was read.
    pub text: Option<Bytes>,
    /// Segments listed, or why the poll failed.
    pub outcome: Result<usize, PullError>,
    /// The blocking reload this poll was, when it was one.
    pub blocking: Option<BlockingReload>,
}

impl PlaylistPoll {
    /// A poll of `url` that failed with `error` at `at_unix_ms`.
    pub(super) fn failed(
        rendition: Option<String>,
        url: &str,
        at_unix_ms: UnixMs,
        content_type: Option<String>,
        error: PullError,
    ) -> PlaylistPoll {
        PlaylistPoll {
            rendition,
            url: url.to_string(),
            at_unix_ms,
            content_type,
            cache_control: None,
            text: None,
            outcome: Err(error),
            blocking: None,
        }
    }
}

/// Everything a puller reports.
#[derive(Debug, Clone)]
pub enum PullEvent {
    Renditions(Vec<RenditionInfo>),
    Playlist(PlaylistPoll),
    Segment(Box<PulledSegment>),
    /// A low-latency part, as soon as it arrived.
    Part(Box<PulledPart>),
    /// A segment that left the playlist window before this puller saw it.
    Missed {
        rendition: String,
        seq: u64,
        at_unix_ms: UnixMs,
    },
    Stall(StallObservation),
}

/// A boxed future of [`PullSink::deliver`].
pub type Delivery<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where a puller's events go. Called from the puller's tasks; must not block.
pub trait PullSink: Send + Sync {
    fn event(&self, event: PullEvent);

    /// How the puller hands over every event: a sink whose consumer is behind returns a future
    /// that waits for room (back-pressure: the puller downloads nothing more meanwhile). The
    /// default takes the event at once through [`PullSink::event`].
    fn deliver(&self, event: PullEvent) -> Delivery<'_> {
        self.event(event);
        Box::pin(std::future::ready(()))
    }
}

impl<F: Fn(PullEvent) + Send + Sync> PullSink for F {
    fn event(&self, event: PullEvent) {
        self(event)
    }
}

/// Totals of one pull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSummary {
    pub renditions: usize,
    pub segments_ok: u64,
    pub segments_failed: u64,
    pub segments_missed: u64,
    pub playlist_polls: u64,
    pub playlist_failures: u64,
    pub stalls: u64,
    pub bytes: u64,
    /// Low-latency parts downloaded whole, and failed (gaps among them).
    pub parts_ok: u64,
    pub parts_failed: u64,
    /// Blocking playlist reloads the server answered, and those given up for a plain reload.
    pub blocking_reloads: u64,
    pub blocking_reloads_given_up: u64,
    /// Set when the playback URL never produced a playlist.
    pub error: Option<PullError>,
}
