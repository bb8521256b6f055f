//! One rendition followed until the deadline: its media playlist polled, each new segment
//! downloaded once in order, segments that left the window unseen reported as missed, and
//! stalls opened and closed.
//!
//! A segment the playlist marks `#EXT-X-GAP` is reported failed ([`PullError::Gap`]) without a
//! request. It still counts as the playlist moving on: the server has said the segment will
//! never come, so the time it covers is no stall.
//!
//! A segment under an `#EXT-X-MAP` (fMP4/CMAF) is handed over with its init segment in front, so
//! it decodes on its own: the init segment is fetched once per map (URI and byte range) and kept
//! until the playlist names another; a map that cannot be fetched fails the segments that need
//! it. `#EXT-X-BYTERANGE` segments are fetched as ranges, an offset left out following on from
//! the previous range of the same resource (RFC 8216 §4.3.2.2).
//!
//! A low-latency playlist (`low_latency`) changes how the follower waits and adds parts: when the
//! server can block reloads, the next reload asks for the part after the last one listed
//! (`_HLS_msn`, `_HLS_part`; the segment after the last one without parts) and the follower
//! reloads again as soon as the answer lists it, with no timer; a blocking reload not answered
//! within its wait is given up for a plain reload at once, and an answer that does not list what
//! was asked (a server that does not block) puts the follower back on its timer for good. Each
//! poll's new parts are handed over before its new segments (`parts`), and the hinted part is
//! requested after them, while the server makes it.
//!
//! A playlist that cannot be read for a while (a server restarting: connections refused, then 404
//! until its stream is published again) is a failed poll each time and is polled on at the same
//! pace until the deadline, never given up: when it comes back numbered on, the segments that
//! left its window meanwhile are missed, and a discontinuity is taken as announced (continuity is
//! not judged across it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use m3u8_rs::{ByteRange, Map, MediaPlaylist, MediaSegment, Playlist};
use tokio::time::Instant;
use url::Url;

use super::HlsOptions;
use super::events::{BlockingReload, PlaylistPoll, PullError, PullEvent, PullSink, PulledSegment};
use super::fetch::{Limits, fetch};
use super::low_latency::{self, LowLatency, blocking_reload_url};
use super::parse::{is_gap, parse_playlist};
use super::parts::PartCursor;
use super::stop::PullStop;
use crate::clock::{UnixMs, now_unix_ms};
use crate::observe::StallObservation;

/// Polls one media playlist and downloads its segments.
pub(super) struct RenditionFollower {
    pub(super) client: reqwest::Client,
    pub(super) url: Url,
    pub(super) name: String,
    pub(super) stream_key: String,
    pub(super) options: HlsOptions,
    pub(super) sink: Arc<dyn PullSink>,
    pub(super) stop: PullStop,
}

/// The init segment of the map in force, fetched once.
pub(super) struct InitSegment {
    /// The map's resolved URL and byte range.
    key: (String, Option<(u64, u64)>),
    bytes: Result<Bytes, PullError>,
}

/// How a listed segment is to be fetched: which map it is under and which bytes it is.
struct SegmentSource<'a> {
    map: Option<&'a Map>,
    range: Option<(u64, u64)>,
}

/// Where the byte range of a segment starts when its offset is left out: right after the previous
/// range of the same resource.
fn resolve_range(
    range: Option<&ByteRange>,
    uri: &str,
    previous: &mut Option<(String, u64)>,
) -> Option<(u64, u64)> {
    let Some(range) = range else {
        *previous = None;
        return None;
    };
    let offset = match (range.offset, previous.as_ref()) {
        (Some(o), _) => o,
        (None, Some((last_uri, end))) if last_uri == uri => *end,
        (None, _) => 0,
    };
    *previous = Some((uri.to_string(), offset.saturating_add(range.length)));
    Some((offset, range.length))
}

/// A media playlist as read: parsed, its text, its headers and when it arrived.
pub(super) struct PlaylistRead {
    pub(super) media: MediaPlaylist,
    pub(super) text: Bytes,
    pub(super) content_type: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) at: UnixMs,
}

/// A blocking reload to make: what to wait for, and for how long at most.
struct BlockingRequest {
    msn: u64,
    part: Option<u64>,
    wait: Duration,
}

struct StallState {
    detected_unix_ms: UnixMs,
    last_new_unix_ms: UnixMs,
}

impl RenditionFollower {
    pub(super) async fn follow(&self, deadline: Instant, mut first: Option<PlaylistRead>) {
        let mut highest: Option<u64> = None;
        let mut last_new = Instant::now();
        let mut last_new_unix = now_unix_ms();
        let mut target_secs: Option<f64> = None;
        let mut stall: Option<StallState> = None;
        let mut init: Option<InitSegment> = None;
        let mut parts = PartCursor::default();
        let mut request: Option<BlockingRequest> = None;
        let mut server_blocks = true;
        loop {
            let poll_started = Instant::now();
            if poll_started >= deadline || self.stop.is_set() {
                break;
            }
            let asked = request.as_ref().map(|r| (r.msn, r.part.unwrap_or(0)));
            let (polled, blocking) = match first.take() {
                Some(read) => (Ok(read), None),
                None => self.reload(request.take(), deadline).await,
            };
            let polled = polled.and_then(|read| {
                self.refuse_absurd(&read.media)?;
                let ll = self.low_latency(&read)?;
                Ok((read, ll))
            });
            let mut ended = false;
            // When the next reload may go at once (a blocking one): no sooner than this after
            // this one started, so a server answering at once cannot spin the follower.
            let mut pace: Option<Duration> = None;
            match polled {
                Ok((
                    PlaylistRead {
                        media,
                        text,
                        content_type,
                        cache_control,
                        at,
                    },
                    ll,
                )) => {
                    let target = (media.target_duration as f64).max(0.1);
                    target_secs = Some(target);
                    let answered = blocking.as_ref().is_some_and(|b| b.given_up.is_none());
                    // A server answering a blocking reload without what it asked for does not
                    // block (§6.2.5.2 has it wait or fail): the follower stops asking it to.
                    if answered && asked.is_some_and(|key| !ll.reaches(key)) {
                        server_blocks = false;
                    }
                    let given_up = blocking.as_ref().is_some_and(|b| b.given_up.is_some());
                    self.sink
                        .deliver(PullEvent::Playlist(PlaylistPoll {
                            rendition: Some(self.name.clone()),
                            url: self.url.to_string(),
                            at_unix_ms: at,
                            content_type,
                            cache_control,
                            text: Some(text),
                            outcome: Ok(media.segments.len()),
                            blocking,
                        }))
                        .await;
                    // `refuse_absurd` made sure every listed number fits in a u64; one past
                    // the last may not, hence the saturation.
                    let last_listed = media
                        .media_sequence
                        .saturating_add(media.segments.len() as u64);
                    if let Some(h) = highest
                        && last_listed.saturating_add(1) < h
                        && !media.segments.is_empty()
                    {
                        // The server restarted its numbering: follow the new one.
                        self.sink
                            .deliver(PullEvent::Playlist(PlaylistPoll::failed(
                                Some(self.name.clone()),
                                self.url.as_str(),
                                at,
                                None,
                                PullError::SequenceWentBack {
                                    url: self.url.to_string(),
                                    from: h,
                                    to: media.media_sequence,
                                },
                            )))
                            .await;
                        highest = media.media_sequence.checked_sub(1);
                    }
                    if highest.is_none()
                        && let Some(n) = self.options.live_edge
                    {
                        let skip = media.segments.len().saturating_sub(n.max(1)) as u64;
                        highest = media.media_sequence.saturating_add(skip).checked_sub(1);
                    }
                    if (!ll.parts.is_empty() || ll.part_hint.is_some())
                        && !self
                            .pull_parts(&ll, &mut parts, &mut init, at, deadline)
                            .await
                    {
                        break;
                    }
                    // A map and an open-ended byte range carry over from the segments before.
                    let mut map: Option<&Map> = None;
                    let mut last_range: Option<(String, u64)> = None;
                    for (i, segment) in media.segments.iter().enumerate() {
                        let Some(seq) = media.media_sequence.checked_add(i as u64) else {
                            break;
                        };
                        map = segment.map.as_ref().or(map);
                        let source = SegmentSource {
                            map,
                            range: resolve_range(
                                segment.byte_range.as_ref(),
                                &segment.uri,
                                &mut last_range,
                            ),
                        };
                        if highest.is_some_and(|h| seq <= h) {
                            continue;
                        }
                        if let Some(h) = highest {
                            // Segments between the last one seen and the first listed now left
                            // the window unseen (bounded so a wild jump cannot flood events).
                            for missed in (h + 1..seq).take(10_000) {
                                self.sink
                                    .deliver(PullEvent::Missed {
                                        rendition: self.name.clone(),
                                        seq: missed,
                                        at_unix_ms: at,
                                    })
                                    .await;
                            }
                        }
                        highest = Some(seq);
                        if let Some(s) = stall.take() {
                            let ended = Some(now_unix_ms());
                            let last_seq = Some(seq.saturating_sub(1));
                            self.report_stall(&s, ended, at, target, last_seq).await;
                        }
                        last_new = Instant::now();
                        last_new_unix = at;
                        let pulled = if is_gap(segment) {
                            self.gap(segment, seq, at, target)
                        } else {
                            self.download(segment, &source, &mut init, seq, at, target, deadline)
                                .await
                        };
                        if matches!(pulled.body, Err(PullError::Deadline { .. })) {
                            break;
                        }
                        self.sink
                            .deliver(PullEvent::Segment(Box::new(pulled)))
                            .await;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    ended = media.end_list;
                    if server_blocks && ll.can_block_reload() && Instant::now() < deadline {
                        self.prefetch_hint(&ll, &mut parts, at, target, deadline)
                            .await;
                        let (msn, part) = match ll.part_target_secs {
                            Some(_) => {
                                let (msn, part) = ll.next_part_key();
                                (msn, Some(part))
                            }
                            None => (ll.next_msn, None),
                        };
                        request = Some(BlockingRequest {
                            msn,
                            part,
                            wait: ll.blocking_wait(target, self.options.blocking_reload_margin),
                        });
                        // Next at once, unless this reload gave one up: that one's wait was the
                        // pause, and the timer's is the next.
                        if !given_up {
                            let unit = ll.part_target_secs.unwrap_or(target);
                            pace = Some(Duration::from_secs_f64(unit / 4.0));
                        }
                    }
                }
                Err(PullError::Deadline { .. }) => break,
                Err(e) => {
                    let mut failed = PlaylistPoll::failed(
                        Some(self.name.clone()),
                        self.url.as_str(),
                        now_unix_ms(),
                        None,
                        e,
                    );
                    failed.blocking = blocking;
                    self.sink.deliver(PullEvent::Playlist(failed)).await;
                }
            }
            if ended {
                break;
            }
            if let Some(target) = target_secs
                && stall.is_none()
                && last_new.elapsed().as_secs_f64() > self.options.stall_factor * target
            {
                let now = now_unix_ms();
                let detected = StallState {
                    detected_unix_ms: now,
                    last_new_unix_ms: last_new_unix,
                };
                self.report_stall(&detected, None, now, target, highest)
                    .await;
                stall = Some(detected);
            }
            let interval = match (pace, target_secs) {
                (Some(pace), _) => pace,
                (None, Some(t)) => {
                    Duration::try_from_secs_f64((t * self.options.poll_factor).max(0.05))
                        .unwrap_or(self.options.max_target_duration)
                        .min(self.options.max_target_duration)
                }
                (None, None) => self.options.retry_interval,
            };
            let next = poll_started.checked_add(interval).unwrap_or(deadline);
            if next >= deadline {
                break;
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait() => break,
            }
        }
        if let Some(s) = stall {
            let now = now_unix_ms();
            let target = target_secs.unwrap_or(0.0);
            self.report_stall(&s, Some(now), now, target, highest).await;
        }
    }

    /// Tells the sink about `stall`: just detected (`ended_unix_ms` is `None`) or over. It lasted
    /// from the last new segment until `stalled_until_unix_ms`.
    async fn report_stall(
        &self,
        stall: &StallState,
        ended_unix_ms: Option<UnixMs>,
        stalled_until_unix_ms: UnixMs,
        target_duration_secs: f64,
        last_seq: Option<u64>,
    ) {
        self.sink
            .deliver(PullEvent::Stall(StallObservation {
                stream_key: self.stream_key.clone(),
                rendition: self.name.clone(),
                ended: ended_unix_ms.is_some(),
                last_new_segment_unix_ms: stall.last_new_unix_ms,
                detected_unix_ms: stall.detected_unix_ms,
                ended_unix_ms,
                stalled_ms: (stalled_until_unix_ms - stall.last_new_unix_ms) as f64,
                target_duration_secs,
                last_seq,
            }))
            .await;
    }

    /// Refuses a media playlist whose numbers the puller cannot work with: a target duration
    /// beyond `max_target_duration` (polling and stalls are timed from it) or sequence numbers
    /// past `u64::MAX`.
    fn refuse_absurd(&self, media: &MediaPlaylist) -> Result<(), PullError> {
        let limit_secs = self.options.max_target_duration.as_secs();
        if media.target_duration > limit_secs {
            return Err(PullError::TargetDurationTooLong {
                url: self.url.to_string(),
                secs: media.target_duration,
                limit_secs,
            });
        }
        let segments = media.segments.len();
        if segments > 0
            && media
                .media_sequence
                .checked_add(segments as u64 - 1)
                .is_none()
        {
            return Err(PullError::SequenceOverflow {
                url: self.url.to_string(),
                first: media.media_sequence,
                segments,
            });
        }
        Ok(())
    }

    /// The low-latency tags of `read` (none when [`HlsOptions::low_latency`] is off).
    fn low_latency(&self, read: &PlaylistRead) -> Result<LowLatency, PullError> {
        if !self.options.low_latency {
            return Ok(LowLatency::default());
        }
        let bounds = low_latency::Bounds {
            max_parts: self.options.max_parts,
            max_reports: self.options.max_renditions,
            max_part_target_secs: self.options.max_target_duration.as_secs_f64(),
        };
        low_latency::read(&String::from_utf8_lossy(&read.text), bounds).map_err(|e| {
            PullError::LowLatency {
                url: self.url.to_string(),
                reason: e.to_string(),
            }
        })
    }

    /// Reads the media playlist: as the blocking reload `request` asks, when there is one, and
    /// plainly when there is none or it is given up (its wait ran out, the server refused it).
    async fn reload(
        &self,
        request: Option<BlockingRequest>,
        deadline: Instant,
    ) -> (Result<PlaylistRead, PullError>, Option<BlockingReload>) {
        let timeout = self.options.request_timeout;
        let Some(request) = request else {
            return (self.poll(&self.url, timeout, deadline).await, None);
        };
        let url = blocking_reload_url(&self.url, request.msn, request.part);
        let mut blocking = BlockingReload {
            msn: request.msn,
            part: request.part,
            given_up: None,
        };
        match self.poll(&url, request.wait.min(timeout), deadline).await {
            Err(e @ PullError::Deadline { .. }) => (Err(e), None),
            Ok(read) => (Ok(read), Some(blocking)),
            Err(e) => {
                blocking.given_up = Some(e);
                let plain = self.poll(&self.url, timeout, deadline).await;
                (plain, Some(blocking))
            }
        }
    }

    async fn poll(
        &self,
        url: &Url,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<PlaylistRead, PullError> {
        let fetched = fetch(
            &self.client,
            url,
            Limits {
                timeout,
                deadline,
                keep: true,
                max_bytes: self.options.max_playlist_bytes,
                range: None,
            },
            &self.stop,
        )
        .await?;
        let at = now_unix_ms();
        let text = fetched.body?;
        match parse_playlist(url, &text)? {
            Playlist::MediaPlaylist(media) => Ok(PlaylistRead {
                media,
                text,
                content_type: fetched.content_type,
                cache_control: fetched.cache_control,
                at,
            }),
            Playlist::MasterPlaylist(_) => Err(PullError::UnexpectedMaster {
                url: url.to_string(),
            }),
        }
    }

    /// `segment` as listed, nothing received yet, its download (if any) starting at `started`.
    fn listed(
        &self,
        segment: &MediaSegment,
        seq: u64,
        first_seen: UnixMs,
        target: f64,
        started: UnixMs,
    ) -> PulledSegment {
        PulledSegment {
            rendition: self.name.clone(),
            seq,
            url: segment.uri.clone(),
            extinf_secs: segment.duration as f64,
            discontinuity: segment.discontinuity,
            target_duration_secs: target,
            first_seen_unix_ms: first_seen,
            download_started_unix_ms: started,
            download_finished_unix_ms: started,
            http_status: None,
            content_type: None,
            size: 0,
            body: Ok(Bytes::new()),
            init_size: 0,
            byte_range: None,
        }
    }

    /// A gap: failed as soon as it is seen, and never requested (RFC 8216bis: a gap's URI is not
    /// to be loaded, and a server may answer it with anything).
    fn gap(
        &self,
        segment: &MediaSegment,
        seq: u64,
        first_seen: UnixMs,
        target: f64,
    ) -> PulledSegment {
        let mut pulled = self.listed(segment, seq, first_seen, target, first_seen);
        if let Ok(url) = self.url.join(&segment.uri) {
            pulled.url = url.to_string();
        }
        pulled.body = Err(PullError::Gap {
            url: pulled.url.clone(),
        });
        pulled
    }

    /// The init segment at `uri` (bytes `range` of it), fetched unless it is the one `init`
    /// holds already.
    pub(super) async fn init_segment<'a>(
        &self,
        uri: &str,
        range: Option<(u64, u64)>,
        init: &'a mut Option<InitSegment>,
        deadline: Instant,
    ) -> &'a Result<Bytes, PullError> {
        let url = self.url.join(uri);
        let key = (
            url.as_ref()
                .map_or_else(|_| uri.to_string(), Url::to_string),
            range,
        );
        if init.as_ref().is_none_or(|i| i.key != key) {
            let bytes = match url {
                Err(e) => Err(PullError::BadUri {
                    url: self.url.to_string(),
                    uri: uri.to_string(),
                    reason: e.to_string(),
                }),
                Ok(url) => fetch(
                    &self.client,
                    &url,
                    Limits {
                        timeout: self.options.request_timeout,
                        deadline,
                        keep: true,
                        max_bytes: self.options.max_segment_bytes,
                        range,
                    },
                    &self.stop,
                )
                .await
                .and_then(|f| f.body),
            };
            *init = Some(InitSegment { key, bytes });
        }
        &init.as_ref().expect("set above").bytes
    }

    #[allow(clippy::too_many_arguments)]
    async fn download(
        &self,
        segment: &MediaSegment,
        source: &SegmentSource<'_>,
        init: &mut Option<InitSegment>,
        seq: u64,
        first_seen: UnixMs,
        target: f64,
        deadline: Instant,
    ) -> PulledSegment {
        let mut pulled = self.listed(segment, seq, first_seen, target, now_unix_ms());
        pulled.byte_range = source.range;
        let init_bytes = match source.map {
            None => None,
            Some(map) => {
                let range = map
                    .byte_range
                    .as_ref()
                    .map(|r| (r.offset.unwrap_or(0), r.length));
                match self.init_segment(&map.uri, range, init, deadline).await {
                    Ok(bytes) => Some(bytes.clone()),
                    Err(e) => {
                        pulled.url = self
                            .url
                            .join(&segment.uri)
                            .map_or_else(|_| segment.uri.clone(), |u| u.to_string());
                        pulled.download_finished_unix_ms = now_unix_ms();
                        pulled.body = Err(match e {
                            PullError::Deadline { .. } => e.clone(),
                            _ => PullError::InitSegment {
                                url: map.uri.clone(),
                                reason: e.to_string(),
                            },
                        });
                        return pulled;
                    }
                }
            }
        };
        let url = match self.url.join(&segment.uri) {
            Ok(u) => u,
            Err(e) => {
                pulled.body = Err(PullError::BadUri {
                    url: self.url.to_string(),
                    uri: segment.uri.clone(),
                    reason: e.to_string(),
                });
                return pulled;
            }
        };
        pulled.url = url.to_string();
        let fetched = fetch(
            &self.client,
            &url,
            Limits {
                timeout: self.options.request_timeout,
                deadline,
                keep: self.options.keep_bytes,
                max_bytes: self.options.max_segment_bytes,
                range: source.range,
            },
            &self.stop,
        )
        .await;
        pulled.download_finished_unix_ms = now_unix_ms();
        match fetched {
            Ok(f) => {
                pulled.http_status = Some(f.status);
                pulled.content_type = f.content_type;
                pulled.size = f.size;
                pulled.body = match (f.body, init_bytes) {
                    (Ok(media), Some(init)) if self.options.keep_bytes => {
                        pulled.init_size = init.len() as u64;
                        let mut whole = Vec::with_capacity(init.len() + media.len());
                        whole.extend_from_slice(&init);
                        whole.extend_from_slice(&media);
                        Ok(Bytes::from(whole))
                    }
                    (body, _) => body,
                };
            }
            Err(e) => {
                if let PullError::Status { status, .. } = &e {
                    pulled.http_status = Some(*status);
                }
                pulled.body = Err(e);
            }
        }
        pulled
    }
}
