//! The HLS puller probe: master playlist → every rendition's media playlist → every segment,
//! exactly once, timed.
//!
//! Design: one task per rendition polls its media playlist at `poll_factor × target duration`
//! (half by default, so a segment is seen at most about half a target duration after it
//! appears) and downloads each segment whose sequence number it has not seen, in order, once.
//! "First seen" is the moment the playlist response listing the segment arrived. Everything
//! that goes wrong (HTTP errors, timeouts, garbage playlists, segments that left the window
//! before being seen, stalls) becomes an event with a reason, and polling goes on until the
//! deadline: a bad target never panics the puller nor keeps it past its deadline. All pullers
//! of a run share one `reqwest::Client` (one connection pool).
//!
//! A playback URL may be anybody's server, so everything read from the wire is bounded before it
//! is used: bodies are streamed and cut at [`HlsOptions::max_playlist_bytes`] /
//! [`HlsOptions::max_segment_bytes`], a master playlist gets at most
//! [`HlsOptions::max_renditions`] followers, a target duration beyond
//! [`HlsOptions::max_target_duration`] or media sequence numbers that overflow `u64` make the
//! poll a recorded failure, and events go to the sink through [`PullSink::deliver`], which a
//! sink whose consumer is behind uses to hold the puller back (so segment bytes never queue
//! without bound).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use m3u8_rs::{MasterPlaylist, MediaPlaylist, Playlist};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use crate::clock::{UnixMs, now_unix_ms};
use crate::observe::StallObservation;

/// Builds the HTTP client to share between all pullers: HTTP/1.1, rustls with the webpki roots
/// (ring), no proxy, connection reuse.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(concat!("lpt-probes/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How a puller behaves.
#[derive(Debug, Clone)]
pub struct HlsOptions {
    /// Poll a media playlist every `poll_factor × target duration`.
    pub poll_factor: f64,
    /// No new segment for `stall_factor × target duration` is a stall.
    pub stall_factor: f64,
    /// Timeout of one playlist or segment request.
    pub request_timeout: Duration,
    /// How long a playlist that is not there yet (404, refused) is retried at start.
    pub playlist_wait: Duration,
    /// Pause between retries while waiting for the first playlist or after a failed poll when
    /// the target duration is not known yet.
    pub retry_interval: Duration,
    /// Re-read the master playlist this often to pick up renditions added later.
    pub master_refresh: Duration,
    /// Hand segment bytes to the sink (off for pure load).
    pub keep_bytes: bool,
    /// On the first poll of a rendition, take only the newest `n` segments (as a player
    /// joining a live stream does); `None` downloads the whole window.
    pub live_edge: Option<usize>,
    /// A playlist body longer than this is cut there and the poll fails (`TooLarge`).
    pub max_playlist_bytes: u64,
    /// A segment body longer than this is cut there and the segment fails (`TooLarge`).
    pub max_segment_bytes: u64,
    /// Renditions of a master playlist followed at most (one task each); the rest are refused
    /// with a recorded failure.
    pub max_renditions: usize,
    /// A media playlist whose `#EXT-X-TARGETDURATION` exceeds this is refused (the poll fails):
    /// polling and stall detection are timed from it.
    pub max_target_duration: Duration,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions {
            poll_factor: 0.5,
            stall_factor: 3.0,
            request_timeout: Duration::from_secs(10),
            playlist_wait: Duration::from_secs(30),
            retry_interval: Duration::from_millis(250),
            master_refresh: Duration::from_secs(5),
            keep_bytes: true,
            live_edge: None,
            max_playlist_bytes: 2 << 20,
            max_segment_bytes: 32 << 20,
            max_renditions: 16,
            max_target_duration: Duration::from_secs(300),
        }
    }
}

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
    #[error("{url}: media sequence went back from {from} to {to}")]
    SequenceWentBack { url: String, from: u64, to: u64 },
    #[error("the run's deadline passed before {url} was read")]
    Deadline { url: String },
}

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
    /// Bytes received (also when `body` is not kept).
    pub size: u64,
    /// The body (empty when `keep_bytes` is off), or why it could not be had.
    pub body: Result<Bytes, PullError>,
}

/// One poll of a playlist.
#[derive(Debug, Clone)]
pub struct PlaylistPoll {
    pub rendition: Option<String>,
    pub url: String,
    pub at_unix_ms: UnixMs,
    pub content_type: Option<String>,
    /// Segments listed, or why the poll failed.
    pub outcome: Result<usize, PullError>,
}

/// Everything a puller reports.
#[derive(Debug, Clone)]
pub enum PullEvent {
    Renditions(Vec<RenditionInfo>),
    Playlist(PlaylistPoll),
    Segment(Box<PulledSegment>),
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
    /// Set when the playback URL never produced a playlist.
    pub error: Option<PullError>,
}

/// Follows one playback URL until its deadline.
#[derive(Clone)]
pub struct HlsPuller {
    client: reqwest::Client,
    url: Url,
    stream_key: String,
    options: HlsOptions,
}

impl HlsPuller {
    /// A puller of `url` (master or media playlist) reporting as `stream_key`.
    pub fn new(
        client: reqwest::Client,
        url: &str,
        stream_key: &str,
        options: HlsOptions,
    ) -> Result<HlsPuller, PullError> {
        let url = Url::parse(url).map_err(|e| PullError::BadUri {
            url: url.to_string(),
            uri: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PullError::BadUri {
                url: url.to_string(),
                uri: url.to_string(),
                reason: "only http and https are supported".into(),
            });
        }
        Ok(HlsPuller {
            client,
            url,
            stream_key: stream_key.to_string(),
            options,
        })
    }

    /// Pulls until `deadline`, reporting to `sink`.
    pub async fn run(&self, deadline: Instant, sink: Arc<dyn PullSink>) -> PullSummary {
        let (_handle, stop) = pull_stop();
        self.run_until(deadline, sink, stop).await
    }

    /// Pulls until `deadline` or until `stop` is signalled, whichever comes first; either way
    /// open stalls are closed and the summary is complete.
    pub async fn run_until(
        &self,
        deadline: Instant,
        sink: Arc<dyn PullSink>,
        stop: PullStop,
    ) -> PullSummary {
        let counting = Arc::new(CountingSink::new(sink));
        let sink: Arc<dyn PullSink> = counting.clone();
        let mut tasks = JoinSet::new();
        let mut known: Vec<String> = Vec::new();
        let wait_until = deadline.min(after(self.options.playlist_wait));
        let mut first_error = None;
        let mut started = false;
        let mut refusal_recorded = false;
        loop {
            if stop.is_set() {
                break;
            }
            let fetched = self.fetch_text(&self.url, deadline, &stop).await;
            let at = now_unix_ms();
            let outcome = fetched.and_then(|(body, ct)| {
                parse_playlist(&self.url, &body).map(|p| (p, ct, body.len()))
            });
            match outcome {
                Ok((Playlist::MasterPlaylist(master), ct, _)) => {
                    let renditions = match master_renditions(&self.url, &master) {
                        Ok(r) => r,
                        Err(e) => {
                            sink.deliver(PullEvent::Playlist(PlaylistPoll {
                                rendition: None,
                                url: self.url.to_string(),
                                at_unix_ms: at,
                                content_type: ct,
                                outcome: Err(e.clone()),
                            }))
                            .await;
                            first_error.get_or_insert(e);
                            if !started && Instant::now() >= wait_until {
                                break;
                            }
                            if !sleep_or_deadline(self.options.retry_interval, deadline, &stop)
                                .await
                            {
                                break;
                            }
                            continue;
                        }
                    };
                    sink.deliver(PullEvent::Playlist(PlaylistPoll {
                        rendition: None,
                        url: self.url.to_string(),
                        at_unix_ms: at,
                        content_type: ct,
                        outcome: Ok(master.variants.len()),
                    }))
                    .await;
                    // One follower per distinct URL, at most `max_renditions` in all: a master
                    // listing thousands of variants (or one URL thousands of times) gets the
                    // first few followed and one recorded refusal.
                    let listed = renditions.len();
                    let limit = self.options.max_renditions.max(1);
                    let mut new: Vec<RenditionInfo> = Vec::new();
                    let mut refused = false;
                    for r in renditions {
                        if known.contains(&r.url) || new.iter().any(|n| n.url == r.url) {
                            continue;
                        }
                        if known.len() + new.len() >= limit {
                            refused = true;
                            continue;
                        }
                        new.push(r);
                    }
                    if refused && !refusal_recorded {
                        refusal_recorded = true;
                        sink.deliver(PullEvent::Playlist(PlaylistPoll {
                            rendition: None,
                            url: self.url.to_string(),
                            at_unix_ms: at,
                            content_type: None,
                            outcome: Err(PullError::TooManyRenditions {
                                url: self.url.to_string(),
                                listed,
                                limit,
                            }),
                        }))
                        .await;
                    }
                    if !new.is_empty() {
                        sink.deliver(PullEvent::Renditions(new.clone())).await;
                    }
                    for r in new {
                        known.push(r.url.clone());
                        let follower = self.follower(&r, sink.clone(), stop.clone());
                        tasks.spawn(async move { follower.follow(deadline, None).await });
                    }
                    started = true;
                    if !sleep_or_deadline(self.options.master_refresh, deadline, &stop).await {
                        break;
                    }
                }
                Ok((Playlist::MediaPlaylist(media), ct, _)) => {
                    let info = RenditionInfo {
                        name: rendition_name(&self.url),
                        url: self.url.to_string(),
                        bandwidth: None,
                        resolution: None,
                    };
                    sink.deliver(PullEvent::Renditions(vec![info.clone()]))
                        .await;
                    let follower = self.follower(&info, sink.clone(), stop.clone());
                    follower.follow(deadline, Some((media, ct, at))).await;
                    started = true;
                    break;
                }
                Err(e @ PullError::Deadline { .. }) => {
                    if !started {
                        first_error = Some(first_error.unwrap_or(e));
                    }
                    break;
                }
                Err(e) => {
                    // Before the stream is up, "not there yet" answers (404, refused, slow)
                    // are expected: they are reported once, only if the wait runs out.
                    let not_yet = matches!(
                        e,
                        PullError::Status { status: 404, .. }
                            | PullError::Transport { .. }
                            | PullError::Timeout { .. }
                    );
                    let gave_up = !started && Instant::now() >= wait_until;
                    if started || !not_yet || gave_up {
                        sink.deliver(PullEvent::Playlist(PlaylistPoll {
                            rendition: None,
                            url: self.url.to_string(),
                            at_unix_ms: at,
                            content_type: None,
                            outcome: Err(e.clone()),
                        }))
                        .await;
                    }
                    if !started {
                        first_error = Some(e);
                        if gave_up {
                            break;
                        }
                    }
                    let pause = if started {
                        self.options.master_refresh
                    } else {
                        self.options.retry_interval
                    };
                    if !sleep_or_deadline(pause, deadline, &stop).await {
                        break;
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        let mut summary = counting.summary();
        summary.renditions = if started { known.len().max(1) } else { 0 };
        if !started {
            summary.error = first_error.or(Some(PullError::Deadline {
                url: self.url.to_string(),
            }));
        }
        summary
    }

    fn follower(
        &self,
        r: &RenditionInfo,
        sink: Arc<dyn PullSink>,
        stop: PullStop,
    ) -> RenditionFollower {
        RenditionFollower {
            client: self.client.clone(),
            url: Url::parse(&r.url).unwrap_or_else(|_| self.url.clone()),
            name: r.name.clone(),
            stream_key: self.stream_key.clone(),
            options: self.options.clone(),
            sink,
            stop,
        }
    }

    async fn fetch_text(
        &self,
        url: &Url,
        deadline: Instant,
        stop: &PullStop,
    ) -> Result<(Bytes, Option<String>), PullError> {
        fetch(
            &self.client,
            url,
            Limits {
                timeout: self.options.request_timeout,
                deadline,
                keep: true,
                max_bytes: self.options.max_playlist_bytes,
            },
            stop,
        )
        .await
        .and_then(|f| f.body.map(|b| (b, f.content_type)))
    }
}

/// Polls one media playlist and downloads its segments.
struct RenditionFollower {
    client: reqwest::Client,
    url: Url,
    name: String,
    stream_key: String,
    options: HlsOptions,
    sink: Arc<dyn PullSink>,
    stop: PullStop,
}

struct StallState {
    detected_unix_ms: UnixMs,
    last_new_unix_ms: UnixMs,
}

impl RenditionFollower {
    async fn follow(
        &self,
        deadline: Instant,
        mut first: Option<(MediaPlaylist, Option<String>, UnixMs)>,
    ) {
        let mut highest: Option<u64> = None;
        let mut last_new = Instant::now();
        let mut last_new_unix = now_unix_ms();
        let mut target_secs: Option<f64> = None;
        let mut stall: Option<StallState> = None;
        loop {
            let poll_started = Instant::now();
            if poll_started >= deadline || self.stop.is_set() {
                break;
            }
            let polled = match first.take() {
                Some((media, ct, at)) => Ok((media, ct, at)),
                None => self.poll(deadline).await,
            }
            .and_then(|(media, ct, at)| {
                self.refuse_absurd(&media)?;
                Ok((media, ct, at))
            });
            let mut ended = false;
            match polled {
                Ok((media, ct, at)) => {
                    let target = (media.target_duration as f64).max(0.1);
                    target_secs = Some(target);
                    self.sink
                        .deliver(PullEvent::Playlist(PlaylistPoll {
                            rendition: Some(self.name.clone()),
                            url: self.url.to_string(),
                            at_unix_ms: at,
                            content_type: ct,
                            outcome: Ok(media.segments.len()),
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
                            .deliver(PullEvent::Playlist(PlaylistPoll {
                                rendition: Some(self.name.clone()),
                                url: self.url.to_string(),
                                at_unix_ms: at,
                                content_type: None,
                                outcome: Err(PullError::SequenceWentBack {
                                    url: self.url.to_string(),
                                    from: h,
                                    to: media.media_sequence,
                                }),
                            }))
                            .await;
                        highest = media.media_sequence.checked_sub(1);
                    }
                    if highest.is_none()
                        && let Some(n) = self.options.live_edge
                    {
                        let skip = media.segments.len().saturating_sub(n.max(1)) as u64;
                        highest = media.media_sequence.saturating_add(skip).checked_sub(1);
                    }
                    for (i, segment) in media.segments.iter().enumerate() {
                        let Some(seq) = media.media_sequence.checked_add(i as u64) else {
                            break;
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
                            let now = now_unix_ms();
                            self.sink
                                .deliver(PullEvent::Stall(StallObservation {
                                    stream_key: self.stream_key.clone(),
                                    rendition: self.name.clone(),
                                    ended: true,
                                    last_new_segment_unix_ms: s.last_new_unix_ms,
                                    detected_unix_ms: s.detected_unix_ms,
                                    ended_unix_ms: Some(now),
                                    stalled_ms: (at - s.last_new_unix_ms) as f64,
                                    target_duration_secs: target,
                                    last_seq: Some(seq.saturating_sub(1)),
                                }))
                                .await;
                        }
                        last_new = Instant::now();
                        last_new_unix = at;
                        let pulled = self.download(segment, seq, at, target, deadline).await;
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
                }
                Err(PullError::Deadline { .. }) => break,
                Err(e) => {
                    self.sink
                        .deliver(PullEvent::Playlist(PlaylistPoll {
                            rendition: Some(self.name.clone()),
                            url: self.url.to_string(),
                            at_unix_ms: now_unix_ms(),
                            content_type: None,
                            outcome: Err(e),
                        }))
                        .await;
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
                stall = Some(StallState {
                    detected_unix_ms: now,
                    last_new_unix_ms: last_new_unix,
                });
                self.sink
                    .deliver(PullEvent::Stall(StallObservation {
                        stream_key: self.stream_key.clone(),
                        rendition: self.name.clone(),
                        ended: false,
                        last_new_segment_unix_ms: last_new_unix,
                        detected_unix_ms: now,
                        ended_unix_ms: None,
                        stalled_ms: (now - last_new_unix) as f64,
                        target_duration_secs: target,
                        last_seq: highest,
                    }))
                    .await;
            }
            let interval = match target_secs {
                Some(t) => Duration::try_from_secs_f64((t * self.options.poll_factor).max(0.05))
                    .unwrap_or(self.options.max_target_duration)
                    .min(self.options.max_target_duration),
                None => self.options.retry_interval,
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
            self.sink
                .deliver(PullEvent::Stall(StallObservation {
                    stream_key: self.stream_key.clone(),
                    rendition: self.name.clone(),
                    ended: true,
                    last_new_segment_unix_ms: s.last_new_unix_ms,
                    detected_unix_ms: s.detected_unix_ms,
                    ended_unix_ms: Some(now),
                    stalled_ms: (now - s.last_new_unix_ms) as f64,
                    target_duration_secs: target_secs.unwrap_or(0.0),
                    last_seq: highest,
                }))
                .await;
        }
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

    async fn poll(
        &self,
        deadline: Instant,
    ) -> Result<(MediaPlaylist, Option<String>, UnixMs), PullError> {
        let fetched = fetch(
            &self.client,
            &self.url,
            Limits {
                timeout: self.options.request_timeout,
                deadline,
                keep: true,
                max_bytes: self.options.max_playlist_bytes,
            },
            &self.stop,
        )
        .await?;
        let at = now_unix_ms();
        let body = fetched.body?;
        match parse_playlist(&self.url, &body)? {
            Playlist::MediaPlaylist(m) => Ok((m, fetched.content_type, at)),
            Playlist::MasterPlaylist(_) => Err(PullError::UnexpectedMaster {
                url: self.url.to_string(),
            }),
        }
    }

    async fn download(
        &self,
        segment: &m3u8_rs::MediaSegment,
        seq: u64,
        first_seen: UnixMs,
        target: f64,
        deadline: Instant,
    ) -> PulledSegment {
        let started = now_unix_ms();
        let mut pulled = PulledSegment {
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
                pulled.body = f.body;
            }
            Err(e) => pulled.body = Err(e),
        }
        pulled
    }
}

/// A finished GET: status and headers, and the body or why it was not received whole.
struct Fetched {
    status: u16,
    content_type: Option<String>,
    size: u64,
    body: Result<Bytes, PullError>,
}

/// What one GET may take.
#[derive(Clone, Copy)]
struct Limits {
    /// The request's own timeout (headers and body).
    timeout: Duration,
    /// The run's deadline, which the request never runs past.
    deadline: Instant,
    /// Keep the body (else only count it).
    keep: bool,
    /// Bytes read at most: the body is streamed and cut there (a failure).
    max_bytes: u64,
}

/// GETs `url` within `limits`, never past a stop. Non-2xx statuses are errors.
async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    limits: Limits,
    stop: &PullStop,
) -> Result<Fetched, PullError> {
    let mut stop = stop.clone();
    tokio::select! {
        fetched = fetch_inner(client, url, limits) => fetched,
        _ = stop.wait() => Err(PullError::Deadline { url: url.to_string() }),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    url: &Url,
    limits: Limits,
) -> Result<Fetched, PullError> {
    let Limits {
        timeout,
        deadline,
        keep,
        max_bytes,
    } = limits;
    let own_limit = after(timeout);
    let until = deadline.min(own_limit);
    // Cut by the run's end rather than by the server's slowness: not the target's fault.
    let timeout_err = || {
        if deadline < own_limit {
            PullError::Deadline {
                url: url.to_string(),
            }
        } else {
            PullError::Timeout {
                url: url.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }
        }
    };
    let response = tokio::time::timeout_at(until, client.get(url.clone()).send())
        .await
        .map_err(|_| timeout_err())?
        .map_err(|e| PullError::Transport {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !response.status().is_success() {
        return Err(PullError::Status {
            url: url.to_string(),
            status,
        });
    }
    let too_large = || PullError::TooLarge {
        url: url.to_string(),
        limit: max_bytes,
    };
    let mut response = response;
    let mut size = 0u64;
    let announced = response.content_length().unwrap_or(0);
    if announced > max_bytes {
        // Refused on the announcement alone: nothing is read.
        return Ok(Fetched {
            status,
            content_type,
            size,
            body: Err(too_large()),
        });
    }
    let mut kept = if keep {
        Vec::with_capacity(announced as usize)
    } else {
        Vec::new()
    };
    let body = loop {
        match tokio::time::timeout_at(until, response.chunk()).await {
            Err(_) => break Err(timeout_err()),
            Ok(Err(e)) => {
                break Err(PullError::Truncated {
                    url: url.to_string(),
                    reason: error_chain(&e),
                });
            }
            Ok(Ok(Some(chunk))) => {
                let room = max_bytes - size;
                if chunk.len() as u64 > room {
                    // Stop at the cap: keep nothing of a body that broke it.
                    size = max_bytes;
                    break Err(too_large());
                }
                size += chunk.len() as u64;
                if keep {
                    kept.extend_from_slice(&chunk);
                }
            }
            Ok(Ok(None)) => break Ok(Bytes::from(kept)),
        }
    };
    Ok(Fetched {
        status,
        content_type,
        size,
        body,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Parses a playlist, refusing anything that does not start with `#EXTM3U` (the m3u8 parser
/// alone accepts some garbage as an empty playlist).
fn parse_playlist(url: &Url, body: &[u8]) -> Result<Playlist, PullError> {
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

fn master_renditions(url: &Url, master: &MasterPlaylist) -> Result<Vec<RenditionInfo>, PullError> {
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

/// `now + d`, or a moment decades away when that is past what an `Instant` can hold.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// Sleeps `pause` unless the deadline or a stop comes first; false when either did.
async fn sleep_or_deadline(pause: Duration, deadline: Instant, stop: &PullStop) -> bool {
    let wake = after(pause);
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep_until(wake.min(deadline)) => wake < deadline,
        _ = stop.wait() => false,
    }
}

/// Ends a pull early: every task of the puller stops at its next wait or request (an
/// interrupted request is not reported as a failure) and the summary is still complete.
#[derive(Clone)]
pub struct PullStop(watch::Receiver<bool>);

/// The sending side of a [`PullStop`].
pub struct PullStopHandle(watch::Sender<bool>);

/// A stop signal for [`HlsPuller::run_until`].
pub fn pull_stop() -> (PullStopHandle, PullStop) {
    let (tx, rx) = watch::channel(false);
    (PullStopHandle(tx), PullStop(rx))
}

impl PullStopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl PullStop {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    async fn wait(&mut self) {
        // A dropped handle means nobody can stop this pull any more: wait forever.
        if self.0.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Counts what passes through to build the summary.
struct CountingSink {
    inner: Arc<dyn PullSink>,
    counts: std::sync::Mutex<PullSummary>,
}

impl CountingSink {
    fn new(inner: Arc<dyn PullSink>) -> Self {
        CountingSink {
            inner,
            counts: std::sync::Mutex::new(PullSummary::default()),
        }
    }

    fn summary(&self) -> PullSummary {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl CountingSink {
    fn count(&self, event: &PullEvent) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            PullEvent::Renditions(_) => {}
            PullEvent::Playlist(p) => {
                c.playlist_polls += 1;
                c.playlist_failures += p.outcome.is_err() as u64;
            }
            PullEvent::Segment(s) => {
                c.bytes += s.size;
                if s.body.is_ok() {
                    c.segments_ok += 1;
                } else {
                    c.segments_failed += 1;
                }
            }
            PullEvent::Missed { .. } => c.segments_missed += 1,
            PullEvent::Stall(s) => c.stalls += (!s.ended) as u64,
        }
    }
}

impl PullSink for CountingSink {
    fn event(&self, event: PullEvent) {
        self.count(&event);
        self.inner.event(event);
    }

    fn deliver(&self, event: PullEvent) -> Delivery<'_> {
        self.count(&event);
        self.inner.deliver(event)
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
}
