//! The HLS puller probe: master playlist → every rendition's media playlist → every segment,
//! exactly once, timed.
//!
//! Design: one task per rendition polls its media playlist at `poll_factor × target duration`
//! (half by default, so a segment is seen at most about half a target duration after it
//! appears) and downloads each segment whose sequence number it has not seen, in order, once.
//! "First seen" is the moment the playlist response listing the segment arrived. Everything
//! that goes wrong (HTTP errors, timeouts, garbage playlists, segments that left the window
//! before being seen, segments the server marks as gaps, stalls) becomes an event with a
//! reason, and polling goes on until the deadline: a bad target never panics the puller nor
//! keeps it past its deadline. All pullers of a run share one `reqwest::Client` (one
//! connection pool).
//!
//! A playback URL may be anybody's server, so everything read from the wire is bounded before it
//! is used: bodies are streamed and cut at [`HlsOptions::max_playlist_bytes`] /
//! [`HlsOptions::max_segment_bytes`], a master playlist gets at most
//! [`HlsOptions::max_renditions`] followers, a target duration beyond
//! [`HlsOptions::max_target_duration`] or media sequence numbers that overflow `u64` make the
//! poll a recorded failure, and events go to the sink through [`PullSink::deliver`], which a
//! sink whose consumer is behind uses to hold the puller back (so segment bytes never queue
//! without bound).
//!
//! A low-latency playlist (RFC 8216bis: `#EXT-X-SERVER-CONTROL`, `#EXT-X-PART`,
//! `#EXT-X-PRELOAD-HINT`) is followed as a low-latency player does when
//! [`HlsOptions::low_latency`] is on (the default): a server that can block reloads is asked for
//! the next part (`_HLS_msn`, `_HLS_part`) instead of polled on the timer, each new part is
//! downloaded as it appears (the hinted one before it is listed, its request held by the server
//! until the part is there) and handed over with its arrival time, and whole segments are still
//! downloaded and reported as for any playlist. A blocking reload has a deadline
//! ([`HlsOptions::blocking_reload_margin`] over three part targets), after which the follower
//! reloads plainly; a server that does not block leaves the follower on its timer.
//!
//! The module reads in the order a pull runs: `client` (the puller and its master playlist),
//! `follower` (one task per media playlist), `parts` (the low-latency parts of one),
//! `low_latency` (their tags, read from the playlist text), `fetch` (one bounded GET), `parse`
//! (playlist text to renditions), with the events a pull reports in `events` and stopping and
//! waiting in `stop`.

mod client;
mod events;
mod fetch;
pub(crate) use fetch::error_chain;
mod follower;
pub mod low_latency;
mod parse;
mod parts;
mod stop;

pub use client::HlsPuller;
pub use events::{
    BlockingReload, Delivery, GAP_FAILURE, PlaylistPoll, PullError, PullEvent, PullSink,
    PullSummary, PulledPart, PulledSegment, RenditionInfo,
};
pub use parse::rendition_name;
pub use stop::{PullStop, PullStopHandle, pull_stop};

use std::time::Duration;

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
    /// polling and stall detection are timed from it. It bounds `PART-TARGET` too.
    pub max_target_duration: Duration,
    /// Use what a low-latency playlist offers: blocking reloads, parts and preload hints. Off,
    /// such a playlist is polled and its segments pulled as any other's.
    pub low_latency: bool,
    /// A blocking reload (or a hinted part's request) is given up after three part targets
    /// (target durations without parts) and this much more.
    pub blocking_reload_margin: Duration,
    /// A media playlist listing more `#EXT-X-PART`s than this is refused (the poll fails).
    pub max_parts: usize,
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
            low_latency: true,
            blocking_reload_margin: Duration::from_millis(500),
            max_parts: 1024,
        }
    }
}
