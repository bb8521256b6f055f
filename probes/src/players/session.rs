//! One player's life: wait for the stream's playlist, open the tab, drain its events once a
//! second into observations, and at the end read its frame totals and close it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::{Browser, Page};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{PlayerOptions, StreamToPlay, page_url};
use crate::clock::now_unix_ms;
use crate::observe::{PlayerEvent, PlayerObservation, ProbeObserver};

/// How often a player's queued events are drained.
const DRAIN_EVERY: Duration = Duration::from_secs(1);

/// How often the playlist is asked for while it does not exist yet.
const PLAYLIST_RETRY: Duration = Duration::from_millis(500);

/// One event the page queued (`player.js`).
#[derive(Debug, Deserialize)]
struct PageEvent {
    kind: String,
    /// Wall clock when the page queued it (unix ms).
    t: f64,
    #[serde(default)]
    rendition: Option<String>,
    #[serde(default)]
    ttff_ms: Option<f64>,
    #[serde(default)]
    stall_ms: Option<f64>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stream_id: Option<u32>,
    #[serde(default)]
    frame: Option<u32>,
    /// Wall clock when the stamped frame was shown (unix ms).
    #[serde(default)]
    shown_at: Option<f64>,
}

/// The page's totals when the player is stopped (`lptTotals()`).
#[derive(Debug, Deserialize)]
struct PageTotals {
    decoded: u64,
    dropped: u64,
    /// How long the stall under way has lasted (ms), if one is.
    stalled_ms: Option<f64>,
    rendition: Option<String>,
    first_frame: bool,
    failed: bool,
}

/// What one player observed so far, for the checks at its end.
struct Player<'a> {
    stream: &'a StreamToPlay,
    player: u32,
    observer: &'a dyn ProbeObserver,
    first_frame: bool,
    failed: bool,
    frames_of_another_stream: u64,
}

impl Player<'_> {
    fn report(&self, at_unix_ms: i64, rendition: Option<String>, event: PlayerEvent) {
        self.observer.player(&PlayerObservation {
            stream_key: self.stream.stream_key.clone(),
            player: self.player,
            at_unix_ms,
            rendition,
            event,
        });
    }

    fn fail(&mut self, error: String, totals: Option<(u64, u64)>) {
        self.failed = true;
        self.report(
            now_unix_ms(),
            None,
            PlayerEvent::Ended {
                decoded_frames: totals.map(|t| t.0),
                dropped_frames: totals.map(|t| t.1),
                error: Some(error),
            },
        );
    }

    fn page_event(&mut self, e: PageEvent) {
        let at = e.t as i64;
        match e.kind.as_str() {
            "first_frame" => {
                self.first_frame = true;
                if let Some(ttff_ms) = e.ttff_ms {
                    self.report(at, e.rendition, PlayerEvent::FirstFrame { ttff_ms });
                }
            }
            "stall" => {
                if let Some(stall_ms) = e.stall_ms {
                    self.report(at, e.rendition, PlayerEvent::Stall { stall_ms });
                }
            }
            "level_switch" => {
                self.report(at, e.rendition, PlayerEvent::LevelSwitch { from: e.from });
            }
            "frame" => self.stamped_frame(&e),
            "unstamped" => debug!(
                stream = %self.stream.stream_key,
                player = self.player,
                "a shown frame's stamp did not read"
            ),
            "failed" => {
                self.failed = true;
                self.report(
                    at,
                    e.rendition,
                    PlayerEvent::Ended {
                        decoded_frames: None,
                        dropped_frames: None,
                        error: Some(e.error.unwrap_or_else(|| "the player failed".into())),
                    },
                );
            }
            other => debug!(kind = other, "a player event lpt does not know"),
        }
    }

    /// A shown frame whose stamp read: its latency, from the send log.
    fn stamped_frame(&mut self, e: &PageEvent) {
        let (Some(log), Some(stream_id), Some(frame), Some(shown_at)) =
            (&self.stream.log, e.stream_id, e.frame, e.shown_at)
        else {
            return;
        };
        if stream_id != log.stream_id() {
            // Another stream's picture on this stream's URL: the target mixed streams up.
            self.frames_of_another_stream += 1;
            return;
        }
        let shown = shown_at.round() as i64;
        if let Some(sent) = log.latest_send_of(frame, shown) {
            self.report(
                shown,
                e.rendition.clone(),
                PlayerEvent::Latency {
                    latency_ms: shown_at - sent.sent_at as f64,
                    frame,
                },
            );
        }
    }
}

/// Plays `stream` as player `player` until `stop` turns true.
pub(super) async fn play(
    browser: &Browser,
    options: &PlayerOptions,
    stream: Arc<StreamToPlay>,
    player: u32,
    observer: Arc<dyn ProbeObserver>,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = Player {
        stream: &stream,
        player,
        observer: &*observer,
        first_frame: false,
        failed: false,
        frames_of_another_stream: 0,
    };
    if let Err(error) = wait_for_playlist(&stream, options.playlist_deadline, &mut stop).await {
        state.fail(error, None);
        return;
    }
    let url = page_url(&stream.playback_url, options.stamp_every);
    let page = match browser.open(&url).await {
        Ok(page) => page,
        Err(error) => {
            state.fail(format!("opening the player: {error}"), None);
            return;
        }
    };
    let opened = Instant::now();
    loop {
        let stopped = tokio::select! {
            changed = stop.wait_for(|stop| *stop) => { let _ = changed; true }
            () = tokio::time::sleep(DRAIN_EVERY) => false,
        };
        if let Err(error) = drain(&page, &mut state).await {
            state.fail(format!("reading the player: {error}"), None);
            return;
        }
        if state.failed {
            return;
        }
        if !state.first_frame && opened.elapsed() >= options.first_frame_deadline {
            let totals = totals(&page).await.ok().map(|t| (t.decoded, t.dropped));
            state.fail(
                format!(
                    "no frame shown within {:?} of loading the stream",
                    options.first_frame_deadline
                ),
                totals,
            );
            return;
        }
        if stopped {
            break;
        }
    }
    finish(&page, &mut state).await;
}

/// The playlist answers 2xx, or `Err` once `deadline` passed (or `stop` turned true).
async fn wait_for_playlist(
    stream: &StreamToPlay,
    deadline: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let end = Instant::now() + deadline;
    loop {
        let last = match stream.client.get(&stream.playback_url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("HTTP {}", response.status()),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= end || *stop.borrow() {
            return Err(format!(
                "the playlist {} did not answer within {deadline:?} ({last})",
                stream.playback_url
            ));
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(PLAYLIST_RETRY) => {}
        }
    }
}

async fn drain(page: &Page, state: &mut Player<'_>) -> Result<(), browser::Error> {
    for event in page.eval::<Vec<PageEvent>>("lptDrain()").await? {
        state.page_event(event);
    }
    Ok(())
}

async fn totals(page: &Page) -> Result<PageTotals, browser::Error> {
    page.eval("lptTotals()").await
}

/// The player's last events and totals: a stall under way is reported as lasting until now,
/// and a player that never showed a frame failed.
async fn finish(page: &Page, state: &mut Player<'_>) {
    let totals = match totals(page).await {
        Ok(totals) => totals,
        Err(error) => {
            state.fail(format!("reading the player's totals: {error}"), None);
            return;
        }
    };
    if let Err(error) = drain(page, state).await {
        warn!(stream = %state.stream.stream_key, "reading a stopped player: {error}");
    }
    if state.failed || totals.failed {
        return;
    }
    let frames = (totals.decoded, totals.dropped);
    if !totals.first_frame {
        state.fail(
            "no frame shown before the stream ended".into(),
            Some(frames),
        );
        return;
    }
    if let Some(stall_ms) = totals.stalled_ms {
        state.report(
            now_unix_ms(),
            totals.rendition.clone(),
            PlayerEvent::Stall { stall_ms },
        );
    }
    if state.frames_of_another_stream > 0 {
        let error = format!(
            "{} shown frames carried another stream's stamp",
            state.frames_of_another_stream
        );
        state.fail(error, Some(frames));
        return;
    }
    state.report(
        now_unix_ms(),
        totals.rendition,
        PlayerEvent::Ended {
            decoded_frames: Some(totals.decoded),
            dropped_frames: Some(totals.dropped),
            error: None,
        },
    );
}
