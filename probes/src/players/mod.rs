//! Browser players: each a headless Chromium tab playing a stream's HLS with hls.js, as a
//! viewer's browser would, measured from inside the page.
//!
//! What a puller cannot see, a player does: how long a viewer waits for the first picture, how
//! often and how long playback stops for data, how far behind the publisher the picture on
//! screen is, which frames arrive too late to show, and when the player changes rendition.
//!
//! Design decisions:
//! - **One browser per run, one tab per player** ([`Players`]), driven over the DevTools protocol
//!   by the `browser` crate. Its page and hls.js are answered from memory
//!   ([`browser::Browser::serve`]) at [`PAGE_ORIGIN`], so no server runs for them; the page then
//!   reads the stream across origins, as a web player on another site would, so a target without
//!   CORS headers fails here as it would for real viewers.
//! - **hls.js comes from npm**, pinned by `ci/players/package-lock.json` and read from disk when
//!   the run starts (`$LPT_HLSJS`, else the copy `ci/setup` installs).
//! - **The page queues, lpt drains**: the page (`player.js`) pushes events to a queue that
//!   [`session`] drains once a second, so the page never waits on lpt and lpt holds at most a
//!   second of events per tab.
//! - **Latency from the frame stamps**: the page reads the stamp of a shown frame once a second
//!   (stamp_ms) from a canvas and reports its frame number and the wall-clock time it was shown;
//!   the stream's send log says when that frame was sent. The browser runs on this machine, so
//!   its clock is the send log's.

mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use browser::Browser;
use tokio::sync::watch;

use crate::observe::ProbeObserver;
use crate::sendlog::SendLog;

/// The made-up origin the player page and hls.js are served at (from memory; never resolved).
pub const PAGE_ORIGIN: &str = "http://players.lpt.localhost";

/// The environment variable naming another hls.js build than [`DEFAULT_HLSJS`].
pub const HLSJS_ENV: &str = "LPT_HLSJS";

/// The hls.js `ci/setup` installs (`npm ci` in `ci/players`).
pub const DEFAULT_HLSJS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ci/players/node_modules/hls.js/dist/hls.min.js"
);

const PAGE: &str = include_str!("player.html");
const SCRIPT: &str = include_str!("player.js");

/// Why players cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PlayersError {
    #[error(
        "{path}: no hls.js to serve the players ({source}); run ci/setup (npm ci in ci/players), or set {HLSJS_ENV} to hls.min.js"
    )]
    HlsJs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the players' browser: {0}")]
    Browser(#[from] browser::Error),
}

/// How players play.
#[derive(Debug, Clone)]
pub struct PlayerOptions {
    /// How often a player reads the stamp of the frame it shows (a latency sample).
    pub stamp_every: Duration,
    /// How long a player waits for the stream's playlist before giving up.
    pub playlist_deadline: Duration,
    /// How long a player may go without a first frame once it has the playlist.
    pub first_frame_deadline: Duration,
}

impl Default for PlayerOptions {
    fn default() -> Self {
        PlayerOptions {
            stamp_every: Duration::from_secs(1),
            playlist_deadline: Duration::from_secs(60),
            first_frame_deadline: Duration::from_secs(30),
        }
    }
}

/// A run's players: one headless Chromium whose tabs play streams with hls.js.
pub struct Players {
    browser: Browser,
    options: PlayerOptions,
}

impl std::fmt::Debug for Players {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Players")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Players {
    /// Reads hls.js and starts the browser; its pages may reach this machine and `reach` (the
    /// hosts of the playback URLs).
    pub async fn launch(options: PlayerOptions, reach: &[String]) -> Result<Players, PlayersError> {
        let path =
            std::env::var_os(HLSJS_ENV).map_or_else(|| PathBuf::from(DEFAULT_HLSJS), PathBuf::from);
        let hls_js = std::fs::read(&path).map_err(|source| PlayersError::HlsJs { path, source })?;
        let browser = Browser::launch_reaching(reach).await?;
        browser.serve(
            &format!("{PAGE_ORIGIN}/player.html"),
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
        );
        browser.serve(
            &format!("{PAGE_ORIGIN}/player.js"),
            "text/javascript; charset=utf-8",
            SCRIPT.as_bytes(),
        );
        browser.serve(
            &format!("{PAGE_ORIGIN}/hls.min.js"),
            "text/javascript; charset=utf-8",
            &hls_js,
        );
        Ok(Players { browser, options })
    }

    /// The browser's processes now (what the players cost is read from them).
    pub fn processes(&self) -> std::collections::BTreeSet<u32> {
        self.browser.processes()
    }

    /// Plays `stream` in `count` tabs until `stop` turns true, reporting what each saw to
    /// `observer`.
    pub async fn play(
        &self,
        stream: StreamToPlay,
        count: u32,
        observer: Arc<dyn ProbeObserver>,
        stop: watch::Receiver<bool>,
    ) {
        let stream = Arc::new(stream);
        let sessions = (0..count).map(|player| {
            session::play(
                &self.browser,
                &self.options,
                Arc::clone(&stream),
                player,
                Arc::clone(&observer),
                stop.clone(),
            )
        });
        futures_util::future::join_all(sessions).await;
    }
}

/// The players watching one stream: the run's browser, and how many tabs.
#[derive(Debug, Clone)]
pub struct StreamPlayers {
    pub players: Arc<Players>,
    pub count: u32,
}

/// The stream a player plays.
pub struct StreamToPlay {
    pub stream_key: String,
    /// The master (or media) playlist.
    pub playback_url: String,
    /// When each stamped frame was sent; without it players measure no latency.
    pub log: Option<Arc<SendLog>>,
    /// The client that checks the playlist exists before the players load it.
    pub client: reqwest::Client,
}

/// The page a player opens for `playback_url`.
fn page_url(playback_url: &str, stamp_every: Duration) -> String {
    let mut url = url::Url::parse(&format!("{PAGE_ORIGIN}/player.html"))
        .unwrap_or_else(|_| unreachable!("PAGE_ORIGIN is a URL"));
    url.query_pairs_mut()
        .append_pair("src", playback_url)
        .append_pair("stamp_ms", &stamp_every.as_millis().to_string());
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_stream_url_escaped() {
        let url = page_url(
            "http://127.0.0.1:8935/stream/a b.m3u8?key=x&y=1",
            Duration::from_millis(500),
        );
        assert_eq!(
            url,
            "http://players.lpt.localhost/player.html?src=http%3A%2F%2F127.0.0.1%3A8935%2Fstream%2Fa+b.m3u8%3Fkey%3Dx%26y%3D1&stamp_ms=500"
        );
    }
}
