//! The puller of one playback URL: fetches the master (or media) playlist, starts one
//! follower per rendition (at most [`HlsOptions::max_renditions`]), keeps the master refreshed,
//! and counts what passes to its sink into the [`PullSummary`].

use std::sync::Arc;

use bytes::Bytes;
use m3u8_rs::Playlist;
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use super::HlsOptions;
use super::events::{
    Delivery, PlaylistPoll, PullError, PullEvent, PullSink, PullSummary, RenditionInfo,
};
use super::fetch::{Limits, fetch};
use super::follower::{PlaylistRead, RenditionFollower};
use super::parse::{master_renditions, parse_playlist, rendition_name};
use super::stop::{PullStop, after, pull_stop, sleep_or_deadline};
use crate::clock::now_unix_ms;

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
            let outcome = fetched.and_then(|(body, ct, cache)| {
                parse_playlist(&self.url, &body).map(|p| (p, ct, cache, body))
            });
            match outcome {
                Ok((Playlist::MasterPlaylist(master), ct, cache_control, text)) => {
                    let renditions = match master_renditions(&self.url, &master) {
                        Ok(r) => r,
                        Err(e) => {
                            sink.deliver(PullEvent::Playlist(PlaylistPoll::failed(
                                None,
                                self.url.as_str(),
                                at,
                                ct,
                                e.clone(),
                            )))
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
                        cache_control,
                        text: Some(text),
                        outcome: Ok(master.variants.len()),
                        blocking: None,
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
                        sink.deliver(PullEvent::Playlist(PlaylistPoll::failed(
                            None,
                            self.url.as_str(),
                            at,
                            None,
                            PullError::TooManyRenditions {
                                url: self.url.to_string(),
                                listed,
                                limit,
                            },
                        )))
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
                Ok((Playlist::MediaPlaylist(media), content_type, cache_control, text)) => {
                    let info = RenditionInfo {
                        name: rendition_name(&self.url),
                        url: self.url.to_string(),
                        bandwidth: None,
                        resolution: None,
                    };
                    sink.deliver(PullEvent::Renditions(vec![info.clone()]))
                        .await;
                    let follower = self.follower(&info, sink.clone(), stop.clone());
                    let read = PlaylistRead {
                        media,
                        text,
                        content_type,
                        cache_control,
                        at,
                    };
                    follower.follow(deadline, Some(read)).await;
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
                        sink.deliver(PullEvent::Playlist(PlaylistPoll::failed(
                            None,
                            self.url.as_str(),
                            at,
                            None,
                            e.clone(),
                        )))
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
    ) -> Result<(Bytes, Option<String>, Option<String>), PullError> {
        fetch(
            &self.client,
            url,
            Limits {
                timeout: self.options.request_timeout,
                deadline,
                keep: true,
                max_bytes: self.options.max_playlist_bytes,
                range: None,
            },
            stop,
        )
        .await
        .and_then(|f| f.body.map(|b| (b, f.content_type, f.cache_control)))
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
                if let Some(b) = &p.blocking {
                    c.blocking_reloads += b.given_up.is_none() as u64;
                    c.blocking_reloads_given_up += b.given_up.is_some() as u64;
                }
            }
            PullEvent::Part(p) => {
                if p.body.is_ok() {
                    c.parts_ok += 1;
                } else {
                    c.parts_failed += 1;
                }
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
