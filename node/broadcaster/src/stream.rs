//! Streams: what ingest produces, what transcoding consumes, what HLS serves.
//!
//! A stream is keyed by its manifest ID and outlives its publisher: when the publisher
//! reconnects, numbering continues and the first new segment carries a discontinuity. With
//! segments in files (`hls_dir`) it also outlives the node: a broadcaster started after a crash
//! finds the window the dead one left (see [`crate::store`]) and, when the stream is published
//! again, lists it again with every entry's place kept, one gap for the segment that was being cut
//! when the node died (its media is lost and a player should skip it, not wait for it), and
//! numbers on after it, the first new segment after a discontinuity. A client polling the same
//! playlist URL so never sees its media sequence go back, which RFC 8216 §6.2.2 forbids and which
//! would leave it waiting for numbers it has already played; go-livepeer instead starts every
//! RTMP connection's playlists at 0 (`server/mediaserver.go` `registerConnection` makes a new
//! `BasicPlaylistManager`), and so does this node when its segments are in memory. Source
//! segments are playable as soon as they are cut; each is then queued to the stream's own
//! transcode worker, which tries orchestrators in turn (see [`crate::orch`]) and adds the
//! renditions to HLS. A bounded queue per stream means a slow network costs segments (recorded as
//! failed with `backlog`), never unbounded memory. The playlists gain EXT-X-ENDLIST only once the
//! publisher is gone and the queue is empty, so a reader that sees ENDLIST has everything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reference_transcoder::ladder::Profile;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::BroadcasterConfig;
use crate::hls::{self, HlsSegment, Place, Rendition};
use crate::orch::{OrchestratorPool, Payer, submit};
use crate::records::{Attempt, RecordBook, SourceSegmentRecord};
use crate::segmenter::{SegmenterConfig, SegmenterStats, SourceSegment};
use crate::store::{LeftSegment, SegmentBody, SegmentName, SegmentStore};

/// Segments waiting for transcoding per stream before new ones are dropped.
const TRANSCODE_QUEUE: usize = 8;

/// A stream cannot be published (or pushed to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The manifest ID has characters outside `[A-Za-z0-9._-]` or is empty/too long.
    #[error("invalid manifest id {0:?}: use 1-128 characters from [A-Za-z0-9._-]")]
    InvalidManifestId(String),
    /// Someone is already publishing it.
    #[error("stream {0:?} already has a live publisher")]
    AlreadyLive(String),
    /// The broadcaster is shutting down.
    #[error("the broadcaster is shutting down")]
    ShuttingDown,
    /// Stream keys are configured and the publisher gave none that is listed.
    #[error("no valid stream key: add ?key=<stream key> to the stream name or push URL")]
    Unauthorized,
    /// The auth webhook answered with a refusal.
    #[error("refused by the auth webhook: {0}")]
    Refused(String),
    /// The auth webhook could not be asked or gave an unusable answer; the publish is refused.
    #[error("auth webhook failed, publish refused: {0}")]
    WebhookFailed(String),
    /// The stream is live or recently ended and belongs to another client.
    #[error("stream {0:?} belongs to another publisher (live or recently ended)")]
    Taken(String),
    /// The stream is published by the other ingest (RTMP vs HTTP push).
    #[error("stream {id:?} is published over {ingest}; push and RTMP cannot share a stream")]
    WrongIngest {
        /// Manifest ID.
        id: String,
        /// How the stream is published.
        ingest: &'static str,
    },
    /// `max_live_streams` streams are live.
    #[error("{0} streams are live, the most this broadcaster accepts")]
    TooManyStreams(usize),
    /// `max_live_streams_per_ip` streams from this client are live.
    #[error("{ip} already publishes {limit} live streams, the most one client may")]
    TooManyFromClient {
        /// The client.
        ip: IpAddr,
        /// The cap.
        limit: usize,
    },
    /// A pushed segment's sequence number is too far ahead of the stream's.
    #[error("segment {seq} is more than {limit} past the stream's next sequence number {next}")]
    SeqJump {
        /// The pushed number.
        seq: u64,
        /// The stream's next number.
        next: u64,
        /// `push_max_seq_jump`.
        limit: u64,
    },
}

impl PublishError {
    /// The counter this refusal is recorded under (`/status` `ingest_errors`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidManifestId(_) => "publish_invalid_id",
            Self::AlreadyLive(_) => "publish_already_live",
            Self::ShuttingDown => "publish_shutting_down",
            Self::Unauthorized => "publish_unauthorized",
            Self::Refused(_) => "publish_refused",
            Self::WebhookFailed(_) => "publish_webhook_failed",
            Self::Taken(_) => "publish_taken",
            Self::WrongIngest { .. } => "publish_wrong_ingest",
            Self::TooManyStreams(_) => "publish_stream_cap",
            Self::TooManyFromClient { .. } => "publish_client_cap",
            Self::SeqJump { .. } => "push_seq_jump",
        }
    }
}

/// How a stream is published. A stream keeps the ingest it was created with: an HTTP push to an
/// RTMP stream (or the reverse) would let one publisher rewrite another's playlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// An RTMP publisher.
    Rtmp,
    /// HTTP push (`/live/<id>/<seq>.ts`).
    Push,
}

impl Ingest {
    fn name(self) -> &'static str {
        match self {
            Self::Rtmp => "RTMP",
            Self::Push => "HTTP push",
        }
    }
}

/// Who publishes: the stream key when one was given (a publisher keeps its stream across
/// networks), else the client's IP address.
#[derive(Clone)]
pub struct Publisher {
    /// The client's address.
    pub ip: IpAddr,
    /// The stream key it gave, if any.
    pub key: Option<String>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never logged.
        f.debug_struct("Publisher")
            .field("ip", &self.ip)
            .field("key", &self.key.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Publisher {
    fn same_as(&self, other: &Publisher) -> bool {
        match (&self.key, &other.key) {
            (Some(a), Some(b)) => keys_match(a, b),
            _ => self.ip == other.ip,
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn keys_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `key` parameter of a URL query (`a=b&key=K`).
pub fn query_key(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

/// Checks a manifest ID.
pub fn validate_manifest_id(id: &str) -> Result<(), PublishError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(PublishError::InvalidManifestId(id.to_string()))
    }
}

/// State shared by ingest, workers and HTTP.
pub struct Broadcaster {
    pub(crate) config: BroadcasterConfig,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) pool: Arc<OrchestratorPool>,
    pub(crate) payer: Option<Arc<Payer>>,
    records: RecordBook,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Push IDs the auth webhook renamed: requested ID → stream ID.
    aliases: Mutex<HashMap<String, String>>,
    store: SegmentStore,
    stream_keys: Vec<String>,
    webhook: reqwest::Client,
}

/// One stream.
pub struct Stream {
    /// Manifest ID.
    pub manifest_id: String,
    inner: Mutex<StreamInner>,
    pending: Arc<AtomicUsize>,
    queue: mpsc::Sender<(SourceSegment, PendingGuard)>,
}

/// Counts one segment as pending (queued or in transcoding) until dropped, so a segment whose
/// work is abandoned (a push client gone, a worker gone) never stays counted.
pub struct PendingGuard(Arc<AtomicUsize>);

impl PendingGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A live publish. Dropping it ends the stream, so a publishing task that fails or panics
/// never leaves its stream live.
pub struct Publishing {
    stream: Arc<Stream>,
    /// The first segment's sequence number.
    pub first_seq: u64,
    /// The stream was published before (the first segment starts a discontinuity).
    pub restart: bool,
}

impl Publishing {
    /// The stream being published.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Ends the publish, keeping the segmenter's observations for `/status`.
    pub fn end(self, stats: SegmenterStats) {
        self.stream.lock().stats = stats;
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        let mut inner = self.stream.lock();
        inner.live = false;
        inner.ended_at = Some(Instant::now());
    }
}

struct StreamInner {
    renditions: Vec<Rendition>,
    live: bool,
    ended_at: Option<Instant>,
    next_seq: u64,
    publishes: u32,
    stats: SegmenterStats,
    /// Last HTTP push; a push stream has no connection whose close would end it.
    last_push: Option<Instant>,
    /// Who published it last: nobody else may publish it while it is known.
    owner: Option<Publisher>,
    ingest: Option<Ingest>,
}

/// A push-ingest stream with no push for this long is ended (its playlists get ENDLIST).
const PUSH_IDLE_END: Duration = Duration::from_secs(30);

/// Most bytes of an auth webhook answer that are read.
const WEBHOOK_ANSWER_MAX: usize = 64 * 1024;

/// A stream's state for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// Manifest ID.
    pub manifest_id: String,
    /// A publisher is connected.
    pub live: bool,
    /// Segments cut so far.
    pub segments: u64,
    /// Times a publisher started it.
    pub publishes: u32,
    /// Segments waiting for or in transcoding.
    pub pending: usize,
    /// Rendition names.
    pub renditions: Vec<String>,
    /// Segmenter observations of the last publisher.
    pub ingest: SegmenterStats,
}

/// The part of go-livepeer's auth webhook answer this node uses.
#[derive(serde::Deserialize)]
struct WebhookAnswer {
    #[serde(rename = "manifestID", default)]
    manifest_id: String,
}

impl Broadcaster {
    pub(crate) fn new(
        config: BroadcasterConfig,
        profiles: Vec<Profile>,
        pool: Arc<OrchestratorPool>,
        payer: Option<Arc<Payer>>,
        store: SegmentStore,
        stream_keys: Vec<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            records: RecordBook::new(config.records_kept),
            config,
            profiles,
            pool,
            payer,
            streams: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            store,
            stream_keys,
            webhook: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        })
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn aliases(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.aliases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the window's segments are kept.
    pub fn store(&self) -> &SegmentStore {
        &self.store
    }

    /// Every segment's outcome and the ingest error counters.
    pub fn records(&self) -> &RecordBook {
        &self.records
    }

    /// The segmenter settings from the config.
    pub fn segmenter_config(&self) -> SegmenterConfig {
        SegmenterConfig {
            target_ms: self.config.segment_duration_ms as i64,
            max_ms: self.config.max_segment_duration_ms as i64,
            max_bytes: self.config.max_segment_bytes,
            max_wall: Duration::from_millis(self.config.max_segment_wall_ms),
        }
    }

    /// The stream `id`, if known.
    pub fn stream(&self, id: &str) -> Option<Arc<Stream>> {
        self.streams().get(id).cloned()
    }

    /// Streams with a live publisher.
    pub fn live_streams(&self) -> usize {
        self.streams().values().filter(|s| s.lock().live).count()
    }

    /// Decides whether a new publish may start: checks the stream key (when keys are
    /// configured), then asks the auth webhook (when one is configured) about `url`, the stream
    /// URL with its query. Returns the manifest ID to publish under: `requested`, or the one the
    /// webhook named.
    pub async fn authorize(
        &self,
        requested: &str,
        url: &str,
        publisher: &Publisher,
    ) -> Result<String, PublishError> {
        validate_manifest_id(requested)?;
        self.check_key(publisher)?;
        let Some(hook) = &self.config.auth_webhook_url else {
            return Ok(requested.to_string());
        };
        let limit = Duration::from_millis(self.config.auth_webhook_timeout_ms);
        let answer = tokio::time::timeout(limit, self.ask_webhook(hook, url))
            .await
            .map_err(|_| PublishError::WebhookFailed(format!("no answer within {limit:?}")))??;
        match answer {
            None => Ok(requested.to_string()),
            Some(id) => {
                validate_manifest_id(&id)?;
                Ok(id)
            }
        }
    }

    fn check_key(&self, publisher: &Publisher) -> Result<(), PublishError> {
        if self.stream_keys.is_empty() {
            return Ok(());
        }
        let given = publisher.key.as_deref().ok_or(PublishError::Unauthorized)?;
        // Every listed key is compared, so the time taken does not say which one was close.
        let listed = self
            .stream_keys
            .iter()
            .fold(false, |found, k| found | keys_match(k, given));
        if listed {
            Ok(())
        } else {
            Err(PublishError::Unauthorized)
        }
    }

    /// go-livepeer's `authenticateStream`: POST `{"url": url}`; a non-200 refuses, an empty 200
    /// approves, a 200 body must name a non-empty `manifestID`.
    async fn ask_webhook(&self, hook: &str, url: &str) -> Result<Option<String>, PublishError> {
        let failed = |e: String| PublishError::WebhookFailed(e);
        let body = serde_json::json!({ "url": url }).to_string();
        let mut resp = self
            .webhook
            .post(hook)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(format!("{hook}: {e}")))?;
        let status = resp.status();
        let mut answer = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
            let room = WEBHOOK_ANSWER_MAX.saturating_sub(answer.len());
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            return Err(PublishError::Refused(format!(
                "status {status}: {}",
                text.trim()
            )));
        }
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let parsed: WebhookAnswer = serde_json::from_slice(&answer)
            .map_err(|e| failed(format!("answer is not JSON: {e}")))?;
        if parsed.manifest_id.is_empty() {
            return Err(failed("empty manifest id not allowed".into()));
        }
        Ok(Some(parsed.manifest_id))
    }

    /// Starts an RTMP publish of `id` (already authorized): refuses a live stream, one owned by
    /// another publisher, a push stream, and a publish past the stream caps.
    pub fn begin_publish(
        self: &Arc<Self>,
        id: &str,
        publisher: &Publisher,
    ) -> Result<Publishing, PublishError> {
        validate_manifest_id(id)?;
        let mut streams = self.streams();
        let stream = self.claim(&mut streams, id, publisher, Ingest::Rtmp, None)?;
        let mut inner = stream.lock();
        inner.stats = SegmenterStats::default();
        let first_seq = inner.next_seq;
        // A discontinuity only where something was listed before: a publisher that left before
        // its first segment was cut changed no timeline.
        let restart = first_seq > 0;
        drop(inner);
        Ok(Publishing {
            stream,
            first_seq,
            restart,
        })
    }

    /// Finds the push stream for a push of segment `seq` to `requested` (the URL's ID) from
    /// `publisher`, starting it (caps, key, webhook, as for RTMP) when it is not live, and
    /// marks it pushed.
    pub async fn begin_push(
        self: &Arc<Self>,
        requested: &str,
        seq: u64,
        url: &str,
        publisher: &Publisher,
    ) -> Result<Arc<Stream>, PublishError> {
        validate_manifest_id(requested)?;
        // Every push carries its key: a stream key guards each segment, not only the first.
        self.check_key(publisher)?;
        let known = self.aliases().get(requested).cloned();
        let id = known.clone().unwrap_or_else(|| requested.to_string());
        if let Some(stream) = self.stream(&id) {
            let mut inner = stream.lock();
            if inner.live && inner.ingest == Some(Ingest::Push) {
                if !inner.owner.as_ref().is_some_and(|o| o.same_as(publisher)) {
                    return Err(PublishError::Taken(id));
                }
                self.check_seq(seq, inner.next_seq)?;
                inner.last_push = Some(Instant::now());
                drop(inner);
                return Ok(stream);
            }
        }
        let id = match known {
            Some(id) => id,
            None => self.authorize(requested, url, publisher).await?,
        };
        let mut streams = self.streams();
        let stream = self.claim(&mut streams, &id, publisher, Ingest::Push, Some(seq))?;
        drop(streams);
        if id != requested {
            self.aliases().insert(requested.to_string(), id);
        }
        stream.lock().last_push = Some(Instant::now());
        Ok(stream)
    }

    fn check_seq(&self, seq: u64, next: u64) -> Result<(), PublishError> {
        let limit = self.config.push_max_seq_jump;
        if seq > next.saturating_add(limit) {
            return Err(PublishError::SeqJump { seq, next, limit });
        }
        Ok(())
    }

    /// Makes `publisher` the live publisher of `id` (created if new) after every check.
    fn claim(
        self: &Arc<Self>,
        streams: &mut HashMap<String, Arc<Stream>>,
        id: &str,
        publisher: &Publisher,
        ingest: Ingest,
        push_seq: Option<u64>,
    ) -> Result<Arc<Stream>, PublishError> {
        let existing = streams.get(id).cloned();
        let mut next_seq = 0;
        if let Some(s) = &existing {
            let inner = s.lock();
            if let Some(other) = inner.ingest.filter(|k| *k != ingest) {
                return Err(PublishError::WrongIngest {
                    id: id.to_string(),
                    ingest: other.name(),
                });
            }
            if inner.live {
                return Err(PublishError::AlreadyLive(id.to_string()));
            }
            if inner.owner.as_ref().is_some_and(|o| !o.same_as(publisher)) {
                return Err(PublishError::Taken(id.to_string()));
            }
            next_seq = inner.next_seq;
        }
        if let Some(seq) = push_seq {
            self.check_seq(seq, next_seq)?;
        }
        let (mut live, mut from_client) = (0, 0);
        for s in streams.values() {
            let inner = s.lock();
            if inner.live {
                live += 1;
                if inner.owner.as_ref().is_some_and(|o| o.ip == publisher.ip) {
                    from_client += 1;
                }
            }
        }
        if live >= self.config.max_live_streams {
            return Err(PublishError::TooManyStreams(live));
        }
        if from_client >= self.config.max_live_streams_per_ip {
            return Err(PublishError::TooManyFromClient {
                ip: publisher.ip,
                limit: self.config.max_live_streams_per_ip,
            });
        }
        let stream = match existing {
            Some(s) => s,
            None => self.create(streams, id, ingest),
        };
        let mut inner = stream.lock();
        inner.live = true;
        inner.ended_at = None;
        inner.publishes = inner.publishes.saturating_add(1);
        inner.owner = Some(publisher.clone());
        inner.ingest = Some(ingest);
        drop(inner);
        Ok(stream)
    }

    /// Creates stream `id` with its transcode worker, first forgetting the oldest ended streams
    /// beyond `max_ended_streams`, and lists again what a crashed predecessor left of it.
    fn create(
        self: &Arc<Self>,
        streams: &mut HashMap<String, Arc<Stream>>,
        id: &str,
        ingest: Ingest,
    ) -> Arc<Stream> {
        let mut ended: Vec<(Instant, String)> = streams
            .iter()
            .filter(|(_, s)| s.pending.load(Ordering::SeqCst) == 0)
            .filter_map(|(k, s)| {
                let inner = s.lock();
                (!inner.live)
                    .then_some(inner.ended_at?)
                    .map(|t| (t, k.clone()))
            })
            .collect();
        if ended.len() >= self.config.max_ended_streams {
            ended.sort();
            let excess = ended.len() + 1 - self.config.max_ended_streams.max(1);
            for (_, old) in ended.into_iter().take(excess) {
                streams.remove(&old);
            }
            let known: Vec<String> = streams.keys().cloned().collect();
            self.aliases().retain(|_, to| known.contains(to));
            if let Some(payer) = &self.payer {
                payer.forget_streams(|id| streams.contains_key(id));
            }
        }
        let (tx, rx) = mpsc::channel(TRANSCODE_QUEUE);
        let mut renditions = vec![Rendition::new(
            hls::SOURCE,
            None,
            0,
            self.config.segment_duration_ms,
        )];
        renditions.extend(self.profiles.iter().map(|p| {
            Rendition::new(
                &p.name,
                Some((p.width, p.height)),
                p.bitrate,
                self.config.segment_duration_ms,
            )
        }));
        let next_seq = self.resume_left(id, &mut renditions, ingest);
        let stream = Arc::new(Stream {
            manifest_id: id.to_string(),
            inner: Mutex::new(StreamInner {
                renditions,
                live: false,
                ended_at: None,
                next_seq,
                publishes: 0,
                stats: SegmenterStats::default(),
                last_push: None,
                owner: None,
                ingest: None,
            }),
            pending: Arc::new(AtomicUsize::new(0)),
            queue: tx,
        });
        streams.insert(id.to_string(), stream.clone());
        tokio::spawn(transcode_worker(self.clone(), stream.clone(), rx));
        stream
    }

    /// Lists in `renditions` what a crashed predecessor left of stream `id` (see the module
    /// header); returns the stream's next sequence number, 0 when nothing was left.
    fn resume_left(&self, id: &str, renditions: &mut [Rendition], ingest: Ingest) -> u64 {
        let left = self.store.take_left(id);
        if left.is_empty() {
            return 0;
        }
        let mut by_rendition: HashMap<String, BTreeMap<u64, LeftSegment>> = HashMap::new();
        for segment in left {
            by_rendition
                .entry(segment.name.rendition.clone())
                .or_default()
                .insert(segment.name.seq, segment);
        }
        let last = by_rendition
            .values()
            .filter_map(|kept| kept.keys().next_back())
            .max()
            .copied()
            .unwrap_or(0);
        // Every cut segment is in the source's window before any rendition of it: a number
        // there whose rendition never came will never come now, and is a gap in it.
        let source: BTreeMap<u64, SegmentName> = by_rendition
            .get(hls::SOURCE)
            .map(|kept| kept.iter().map(|(seq, s)| (*seq, s.name.clone())).collect())
            .unwrap_or_default();
        let mut listed = 0;
        for r in renditions.iter_mut() {
            let mut own = by_rendition.remove(&r.name).unwrap_or_default();
            let mut seqs: BTreeSet<u64> = own.keys().copied().collect();
            if r.name != hls::SOURCE {
                seqs.extend(source.keys());
            }
            let entries: Vec<(HlsSegment, Place)> = seqs
                .into_iter()
                .filter_map(|seq| match own.remove(&seq) {
                    Some(kept) => Some((
                        HlsSegment {
                            seq,
                            duration_ms: kept.name.duration_ms,
                            data: Some(kept.body),
                            discontinuity: kept.name.discontinuity,
                        },
                        kept.name.place,
                    )),
                    None => source.get(&seq).map(|name| {
                        let entry = HlsSegment {
                            seq,
                            duration_ms: name.duration_ms,
                            data: None,
                            discontinuity: name.discontinuity,
                        };
                        (entry, name.place)
                    }),
                })
                .collect();
            listed += entries.len();
            r.resume(entries, self.config.hls_window);
        }
        let mut next_seq = last.saturating_add(1);
        if ingest == Ingest::Rtmp {
            // The segment being cut when the node died: its media is gone.
            let open = HlsSegment {
                seq: next_seq,
                duration_ms: self.config.segment_duration_ms as i64,
                data: None,
                discontinuity: false,
            };
            for r in renditions.iter_mut() {
                r.push(open.clone(), self.config.hls_window);
            }
            next_seq = next_seq.saturating_add(1);
        }
        tracing::info!(
            "stream {id}: {listed} playlist entries a crashed broadcaster left listed again; \
             numbering continues at {next_seq}"
        );
        next_seq
    }

    /// A cut source segment from a live publisher: served at once, queued for transcoding.
    pub fn add_segment(&self, stream: &Stream, seg: SourceSegment) {
        stream.add_source(self, &seg);
        let pending = PendingGuard::new(&stream.pending);
        if let Err(
            mpsc::error::TrySendError::Full((seg, _)) | mpsc::error::TrySendError::Closed((seg, _)),
        ) = stream.queue.try_send((seg, pending))
        {
            self.records.record(SourceSegmentRecord {
                error: Some("backlog: transcode queue full".into()),
                ..SourceSegmentRecord::unsent(&stream.manifest_id, &seg, unix_ms())
            });
        }
    }

    /// Ends idle push streams and forgets streams that ended longer than the retention ago.
    pub fn forget_ended(&self) {
        let keep = Duration::from_secs(self.config.ended_stream_retention_secs);
        // A crashed predecessor's streams ended when it died.
        self.store.forget_left_after(keep);
        for s in self.streams().values() {
            let mut inner = s.lock();
            if inner.live && inner.last_push.is_some_and(|t| t.elapsed() > PUSH_IDLE_END) {
                inner.live = false;
                inner.last_push = None;
                inner.ended_at = Some(Instant::now());
            }
        }
        let mut streams = self.streams();
        streams.retain(|_, s| {
            let inner = s.lock();
            inner.live
                || inner.ended_at.is_none_or(|t| t.elapsed() < keep)
                || s.pending.load(Ordering::SeqCst) > 0
        });
        self.aliases().retain(|_, to| streams.contains_key(to));
        if let Some(payer) = &self.payer {
            payer.forget_streams(|id| streams.contains_key(id));
        }
    }

    /// Transcodes one segment, trying orchestrators in turn, and records the outcome; returns
    /// the renditions delivered.
    pub async fn transcode(&self, manifest_id: &str, seg: &SourceSegment) -> Vec<(String, Bytes)> {
        let cut_at = unix_ms();
        let mut record = SourceSegmentRecord::unsent(manifest_id, seg, cut_at);
        if self.profiles.is_empty() {
            record.outcome = "source_only".into();
            self.records.record(record);
            return Vec::new();
        }
        let mut tried = Vec::new();
        let mut delivered = Vec::new();
        // A refused payment is B's stale view, not O's failure: it does not use up an attempt,
        // so an orchestrator crash met right after one still leaves the segment its failover.
        // Each orchestrator gets that benefit once, which bounds the loop.
        let mut failures = 0;
        let mut refused_by: Vec<String> = Vec::new();
        while failures < self.config.max_attempts {
            // Per attempt: a failover target may have sat idle while its params lapsed.
            if let Some(payer) = &self.payer {
                self.pool.forget_expiring_params(payer.block());
            }
            let Some(session) = self.pool.select(&tried).await else {
                break;
            };
            tried.push(session.uri.clone());
            let out = submit::submit(submit::Submission {
                pool: &self.pool,
                payer: self.payer.as_deref(),
                session: &session,
                manifest_id,
                seg,
                profiles: &self.profiles,
            })
            .await;
            let mut attempt = Attempt {
                orchestrator: session.uri.clone(),
                upload_ms: out.upload_ms,
                transcode_ms: out.transcode_ms,
                download_ms: out.download_ms,
                tickets: out.tickets,
                pixels: 0,
                error_kind: None,
                error: None,
            };
            match out.result {
                Ok(t) => {
                    attempt.pixels = t.pixels;
                    self.pool.succeeded(&session.uri, out.round_trip, t.info);
                    record.attempts.push(attempt);
                    record.orchestrator = Some(session.uri);
                    record.renditions = t.renditions.iter().map(|(n, _)| n.clone()).collect();
                    record.outcome = "ok".into();
                    delivered = t.renditions;
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        "segment {manifest_id}/{} on {} (attempt {}, {failures} failed): {e}",
                        seg.seq,
                        session.uri,
                        record.attempts.len() + 1
                    );
                    if e.is_payment_refusal() && !refused_by.contains(&session.uri) {
                        // B's payment was stale (params lapsed, credit book out of step with O's):
                        // not O's fault, so no cooldown; a fresh session (fresh params, zero
                        // credit on both sides) is discovered and O may be tried again.
                        self.pool.forget(&session.uri, &e.to_string());
                        tried.pop();
                        refused_by.push(session.uri.clone());
                    } else {
                        self.pool.failed(&session.uri, &e.to_string());
                        failures += 1;
                    }
                    attempt.error_kind = Some(e.kind().into());
                    attempt.error = Some(e.to_string());
                    record.error = Some(format!("{}: {e}", session.uri));
                    record.attempts.push(attempt);
                }
            }
        }
        if record.outcome != "ok" && record.attempts.is_empty() {
            record.error = Some("no orchestrator available".into());
        }
        self.records.record(record);
        delivered
    }

    /// Every stream's state.
    pub fn stream_status(&self) -> Vec<StreamStatus> {
        let mut out: Vec<StreamStatus> = self
            .streams()
            .values()
            .map(|s| {
                let inner = s.lock();
                StreamStatus {
                    manifest_id: s.manifest_id.clone(),
                    live: inner.live,
                    segments: inner.next_seq,
                    publishes: inner.publishes,
                    pending: s.pending.load(Ordering::SeqCst),
                    renditions: inner.renditions.iter().map(|r| r.name.clone()).collect(),
                    ingest: inner.stats.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.manifest_id.cmp(&b.manifest_id));
        out
    }
}

impl Stream {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name `seg`'s `rendition` segment is kept under, recording its playlist entry.
    fn segment_name(&self, rendition: &str, seg: &SourceSegment, place: Place) -> SegmentName {
        SegmentName {
            stream: self.manifest_id.clone(),
            rendition: rendition.to_string(),
            seq: seg.seq,
            place,
            duration_ms: seg.duration_ms,
            discontinuity: seg.discontinuity,
        }
    }

    fn add_source(&self, b: &Broadcaster, seg: &SourceSegment) {
        let place = self.lock().renditions[0].place_of(seg.seq, seg.discontinuity);
        let name = self.segment_name(hls::SOURCE, seg, place);
        // Written before the lock is taken again: playlist requests never wait on a file.
        let data = b.store.keep(&name, seg.data.clone());
        let mut inner = self.lock();
        inner.next_seq = inner.next_seq.max(seg.seq.saturating_add(1));
        let source = &mut inner.renditions[0];
        if seg.size.is_some() {
            source.size = seg.size;
        }
        source.push(HlsSegment::of(seg, data), b.config.hls_window);
    }

    /// Adds what transcoding `seg` delivered (after every attempt) to the renditions; every
    /// ladder rendition it did not deliver gets a gap in its place, so its playlist says the
    /// segment will never come rather than skipping its number.
    pub(crate) fn add_renditions(
        &self,
        b: &Broadcaster,
        seg: &SourceSegment,
        renditions: Vec<(String, Bytes)>,
    ) {
        let places: Vec<Place> = {
            let inner = self.lock();
            renditions
                .iter()
                .map(|(name, _)| {
                    inner
                        .renditions
                        .iter()
                        .find(|r| r.name == *name)
                        .map(|r| r.place_of(seg.seq, seg.discontinuity))
                        .unwrap_or_default()
                })
                .collect()
        };
        // Written (when spilled) outside the lock: playlist requests never wait on a file.
        let mut renditions: Vec<(String, SegmentBody)> = renditions
            .into_iter()
            .zip(places)
            .map(|((name, data), place)| {
                let body = b.store.keep(&self.segment_name(&name, seg, place), data);
                (name, body)
            })
            .collect();
        let mut inner = self.lock();
        let ladder = inner
            .renditions
            .iter_mut()
            .filter(|r| r.name != hls::SOURCE);
        for r in ladder {
            let entry = match renditions.iter().position(|(name, _)| *name == r.name) {
                Some(i) => HlsSegment::of(seg, renditions.swap_remove(i).1),
                None => HlsSegment::gap(seg),
            };
            r.push(entry, b.config.hls_window);
        }
    }

    /// The next sequence number (for HTTP push, the caller's seq wins).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Whether the publisher is gone and every queued segment is done.
    pub fn finished(&self) -> bool {
        !self.lock().live && self.pending.load(Ordering::SeqCst) == 0
    }

    /// The master playlist.
    pub fn master_playlist(&self) -> String {
        let inner = self.lock();
        let all: Vec<&Rendition> = inner.renditions.iter().collect();
        hls::master_playlist(&self.manifest_id, &all)
    }

    /// A rendition's media playlist.
    pub fn media_playlist(&self, rendition: &str) -> Option<String> {
        let ended = self.finished();
        let inner = self.lock();
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        Some(r.media_playlist(ended))
    }

    /// A rendition's segment (read its bytes with [`SegmentBody::bytes`], outside any lock); a
    /// gap has none, so players that fetch it anyway get a 404, never stand-in media.
    pub fn segment(&self, rendition: &str, seq: u64) -> Option<SegmentBody> {
        let inner = self.lock();
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        r.segment(seq)?.data.clone()
    }

    /// Adds a pushed segment to the source rendition; it counts as pending until the returned
    /// guard is dropped (also when the push client disconnects and its request is abandoned).
    pub(crate) fn add_pushed(&self, b: &Broadcaster, seg: &SourceSegment) -> PendingGuard {
        self.add_source(b, seg);
        PendingGuard::new(&self.pending)
    }
}

async fn transcode_worker(
    b: Arc<Broadcaster>,
    stream: Arc<Stream>,
    mut rx: mpsc::Receiver<(SourceSegment, PendingGuard)>,
) {
    // Hold only a weak interest: the worker ends when the stream is forgotten and the queue closes.
    let weak = Arc::downgrade(&stream);
    drop(stream);
    while let Some((seg, _pending)) = rx.recv().await {
        let Some(stream) = weak.upgrade() else { break };
        let renditions = b.transcode(&stream.manifest_id, &seg).await;
        stream.add_renditions(&b, &seg, renditions);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source-only broadcaster on free loopback ports.
    async fn broadcaster(config: BroadcasterConfig) -> crate::RunningBroadcaster {
        crate::start(BroadcasterConfig {
            rtmp_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            ladder: String::new(),
            ..config
        })
        .await
        .unwrap()
    }

    fn loopback() -> Publisher {
        Publisher {
            ip: IpAddr::from([127, 0, 0, 1]),
            key: None,
        }
    }

    #[tokio::test]
    async fn a_publishing_task_that_panics_still_ends_its_stream() {
        let running = broadcaster(BroadcasterConfig::default()).await;
        let b = running.state().clone();
        let task = tokio::spawn({
            let b = b.clone();
            async move {
                let publishing = b.begin_publish("doomed", &loopback()).unwrap();
                assert!(publishing.stream().lock().live);
                panic!("a bug in the publishing task");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        let stream = b.stream("doomed").unwrap();
        assert!(
            stream.finished(),
            "the stream stayed live after its task panicked"
        );
        // Its publisher may come back: the stream is ended, not stuck.
        assert!(b.begin_publish("doomed", &loopback()).is_ok());
    }

    #[tokio::test]
    async fn ended_streams_beyond_the_cap_are_forgotten_oldest_first() {
        let running = broadcaster(BroadcasterConfig {
            max_ended_streams: 2,
            ..BroadcasterConfig::default()
        })
        .await;
        let b = running.state();
        for id in ["s0", "s1", "s2", "s3"] {
            drop(b.begin_publish(id, &loopback()).unwrap());
        }
        let known: Vec<String> = b
            .stream_status()
            .into_iter()
            .map(|s| s.manifest_id)
            .collect();
        assert_eq!(known, ["s2", "s3"]);
    }

    #[tokio::test]
    async fn forgotten_streams_take_their_payment_credit_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, format!("{}\n", "b0".repeat(32))).unwrap();
        let mut config = BroadcasterConfig {
            max_ended_streams: 2,
            ..BroadcasterConfig::default()
        };
        config.payment.eth_url = Some(crate::orch::payment::tests::fake_arbitrum_node().await);
        config.payment.ticket_broker = Some(format!("{}", protocol::Address::repeat_byte(0x42)));
        config.payment.key_file = Some(key_file);
        let running = broadcaster(config).await;
        let b = running.state();
        let payer = b.payer.clone().expect("payments on");
        let price = protocol::ticket::PricePerPixel {
            price_per_unit: 1,
            pixels_per_unit: 1,
        };
        let key = |id: &str| crate::orch::payment::CreditKey {
            stream: id.to_string(),
            session: "https://o:8935#session".to_string(),
        };
        for id in ["s0", "s1", "s2", "s3"] {
            let publishing = b.begin_publish(id, &loopback()).unwrap();
            payer.debit(&key(id), &price, 1000);
            drop(publishing);
        }
        // s0 and s1 were forgotten when s2 and s3 were created, and their credit with them.
        assert_eq!(payer.credits_held(), 2);
        assert_eq!(payer.credit(&key("s0")), 0);
        assert_eq!(payer.credit(&key("s3")), -1000);
    }

    #[test]
    fn stream_keys_come_from_the_query_and_compare_whole() {
        assert_eq!(query_key("a=1&key=s3cret"), Some("s3cret"));
        assert_eq!(query_key("key="), None);
        assert_eq!(query_key("monkey=1"), None);
        assert!(keys_match("s3cret", "s3cret"));
        assert!(!keys_match("s3cret", "s3cre"));
        assert!(!keys_match("s3cret", "s3creT"));
    }
}
