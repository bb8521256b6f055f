//! Streams: what ingest produces, what transcoding consumes, what HLS serves.
//!
//! A stream is keyed by its manifest ID and outlives its publisher: when the publisher
//! reconnects, numbering continues and the first new segment carries a discontinuity. Source
//! segments are playable as soon as they are cut; each is then queued to the stream's own
//! transcode worker, which tries orchestrators in turn (see [`crate::orch`]) and adds the
//! renditions to HLS. A bounded queue per stream means a slow network costs segments (recorded as
//! failed with `backlog`), never unbounded memory. The playlists gain EXT-X-ENDLIST only once the
//! publisher is gone and the queue is empty, so a reader that sees ENDLIST has everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reference_transcoder::ladder::Profile;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::BroadcasterConfig;
use crate::hls::{self, HlsSegment, Rendition};
use crate::orch::{OrchestratorPool, Payer, submit};
use crate::records::{Attempt, RecordBook, SegmentRecord};
use crate::segmenter::{SegmenterConfig, SegmenterStats, SourceSegment};
use crate::store::{SegmentBody, SegmentStore};

/// Segments waiting for transcoding per stream before new ones are dropped.
const TRANSCODE_QUEUE: usize = 8;

/// A stream cannot be published.
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
    store: SegmentStore,
}

/// One stream.
pub struct Stream {
    /// Manifest ID.
    pub manifest_id: String,
    inner: Mutex<StreamInner>,
    pending: AtomicUsize,
    queue: mpsc::Sender<SourceSegment>,
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
}

/// A push-ingest stream with no push for this long is ended (its playlists get ENDLIST).
const PUSH_IDLE_END: Duration = Duration::from_secs(30);

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

impl Broadcaster {
    pub(crate) fn new(
        config: BroadcasterConfig,
        profiles: Vec<Profile>,
        pool: Arc<OrchestratorPool>,
        payer: Option<Arc<Payer>>,
        store: SegmentStore,
    ) -> Arc<Self> {
        Arc::new(Self {
            records: RecordBook::new(config.records_kept),
            config,
            profiles,
            pool,
            payer,
            streams: Mutex::new(HashMap::new()),
            store,
        })
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Starts publishing `id`: returns the stream, the first seq and whether it is a restart.
    pub fn begin_publish(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<(Arc<Stream>, u64, bool), PublishError> {
        validate_manifest_id(id)?;
        let stream = self.stream_or_create(id);
        let mut inner = stream.lock();
        if inner.live {
            return Err(PublishError::AlreadyLive(id.to_string()));
        }
        inner.live = true;
        inner.ended_at = None;
        inner.publishes += 1;
        inner.stats = SegmenterStats::default();
        let restart = inner.publishes > 1;
        let seq = inner.next_seq;
        drop(inner);
        Ok((stream, seq, restart))
    }

    /// The stream `id`, created (with its transcode worker) if new.
    pub fn stream_or_create(self: &Arc<Self>, id: &str) -> Arc<Stream> {
        let mut streams = self.streams();
        if let Some(s) = streams.get(id) {
            return s.clone();
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
        let stream = Arc::new(Stream {
            manifest_id: id.to_string(),
            inner: Mutex::new(StreamInner {
                renditions,
                live: false,
                ended_at: None,
                next_seq: 0,
                publishes: 0,
                stats: SegmenterStats::default(),
                last_push: None,
            }),
            pending: AtomicUsize::new(0),
            queue: tx,
        });
        streams.insert(id.to_string(), stream.clone());
        tokio::spawn(transcode_worker(self.clone(), stream.clone(), rx));
        stream
    }

    /// A cut source segment from a live publisher: served at once, queued for transcoding.
    pub fn add_segment(&self, stream: &Stream, seg: SourceSegment) {
        stream.add_source(self, &seg);
        stream.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::error::TrySendError::Full(seg) | mpsc::error::TrySendError::Closed(seg)) =
            stream.queue.try_send(seg)
        {
            stream.pending.fetch_sub(1, Ordering::SeqCst);
            self.records.record(SegmentRecord {
                manifest_id: stream.manifest_id.clone(),
                seq: seg.seq,
                duration_ms: seg.duration_ms,
                bytes: seg.data.len(),
                attempts: Vec::new(),
                orchestrator: None,
                renditions: Vec::new(),
                outcome: "failed".into(),
                error: Some("backlog: transcode queue full".into()),
                cut_at_unix_ms: unix_ms(),
            });
        }
    }

    /// The publisher of `stream` is gone.
    pub fn end_publish(&self, stream: &Stream, stats: SegmenterStats) {
        let mut inner = stream.lock();
        inner.live = false;
        inner.ended_at = Some(Instant::now());
        inner.stats = stats;
    }

    /// Ends idle push streams and forgets streams that ended longer than the retention ago.
    pub fn forget_ended(&self) {
        let keep = Duration::from_secs(self.config.ended_stream_retention_secs);
        for s in self.streams().values() {
            let mut inner = s.lock();
            if inner.live && inner.last_push.is_some_and(|t| t.elapsed() > PUSH_IDLE_END) {
                inner.live = false;
                inner.last_push = None;
                inner.ended_at = Some(Instant::now());
            }
        }
        self.streams().retain(|_, s| {
            let inner = s.lock();
            inner.live
                || inner.ended_at.is_none_or(|t| t.elapsed() < keep)
                || s.pending.load(Ordering::SeqCst) > 0
        });
    }

    /// Transcodes one segment, trying orchestrators in turn, and records the outcome; returns
    /// the renditions delivered.
    pub async fn transcode(&self, manifest_id: &str, seg: &SourceSegment) -> Vec<(String, Bytes)> {
        let cut_at = unix_ms();
        let mut record = SegmentRecord {
            manifest_id: manifest_id.to_string(),
            seq: seg.seq,
            duration_ms: seg.duration_ms,
            bytes: seg.data.len(),
            attempts: Vec::new(),
            orchestrator: None,
            renditions: Vec::new(),
            outcome: "failed".into(),
            error: None,
            cut_at_unix_ms: cut_at,
        };
        if self.profiles.is_empty() {
            record.outcome = "source_only".into();
            self.records.record(record);
            return Vec::new();
        }
        let mut tried = Vec::new();
        let mut delivered = Vec::new();
        for _ in 0..self.config.max_attempts {
            // Per attempt: a failover target may have sat idle while its params lapsed.
            if let Some(payer) = &self.payer {
                self.pool.forget_expiring_params(payer.block());
            }
            let Some(session) = self.pool.select(&tried).await else {
                break;
            };
            tried.push(session.uri.clone());
            let out = submit::submit(
                &self.pool,
                self.payer.as_deref(),
                &session,
                manifest_id,
                seg,
                &self.profiles,
            )
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
                    tracing::warn!("segment {manifest_id}/{} on {}: {e}", seg.seq, session.uri);
                    if e.is_payment_refusal() {
                        // B's payment was stale (params lapsed, credit book out of step with O's):
                        // not O's fault, so no cooldown; a fresh session (fresh params, zero
                        // credit on both sides) is discovered and O may be tried again.
                        self.pool.forget(&session.uri, &e.to_string());
                        tried.pop();
                    } else {
                        self.pool.failed(&session.uri, &e.to_string());
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

    fn add_source(&self, b: &Broadcaster, seg: &SourceSegment) {
        let data = b.store.keep(seg.data.clone());
        let mut inner = self.lock();
        inner.next_seq = inner.next_seq.max(seg.seq + 1);
        let source = &mut inner.renditions[0];
        if seg.size.is_some() {
            source.size = seg.size;
        }
        source.push(
            HlsSegment {
                seq: seg.seq,
                duration_ms: seg.duration_ms,
                data,
                discontinuity: seg.discontinuity,
            },
            b.config.hls_window,
        );
    }

    fn add_renditions(
        &self,
        b: &Broadcaster,
        seg: &SourceSegment,
        renditions: Vec<(String, Bytes)>,
    ) {
        // Written (when spilled) before the lock is taken: playlist requests never wait on a file.
        let renditions: Vec<(String, SegmentBody)> = renditions
            .into_iter()
            .map(|(name, data)| (name, b.store.keep(data)))
            .collect();
        let mut inner = self.lock();
        for (name, data) in renditions {
            if let Some(r) = inner.renditions.iter_mut().find(|r| r.name == name) {
                r.push(
                    HlsSegment {
                        seq: seg.seq,
                        duration_ms: seg.duration_ms,
                        data,
                        discontinuity: seg.discontinuity,
                    },
                    b.config.hls_window,
                );
            }
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

    /// A rendition's segment (read its bytes with [`SegmentBody::bytes`], outside any lock).
    pub fn segment(&self, rendition: &str, seq: u64) -> Option<SegmentBody> {
        let inner = self.lock();
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        r.segment(seq).map(|s| s.data.clone())
    }

    /// Marks a push-ingest stream live; the janitor ends it after [`PUSH_IDLE_END`] without pushes.
    pub(crate) fn mark_pushed(&self) {
        let mut inner = self.lock();
        inner.live = true;
        inner.ended_at = None;
        inner.last_push = Some(Instant::now());
    }

    /// Adds a pushed segment to the source rendition and counts it as pending.
    pub(crate) fn add_pushed(&self, b: &Broadcaster, seg: &SourceSegment) {
        self.add_source(b, seg);
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    /// Adds a pushed segment's renditions and clears it from pending.
    pub(crate) fn finish_pushed(
        &self,
        b: &Broadcaster,
        seg: &SourceSegment,
        renditions: Vec<(String, Bytes)>,
    ) {
        self.add_renditions(b, seg, renditions);
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn transcode_worker(
    b: Arc<Broadcaster>,
    stream: Arc<Stream>,
    mut rx: mpsc::Receiver<SourceSegment>,
) {
    // Hold only a weak interest: the worker ends when the stream is forgotten and the queue closes.
    let weak = Arc::downgrade(&stream);
    drop(stream);
    while let Some(seg) = rx.recv().await {
        let Some(stream) = weak.upgrade() else { break };
        let renditions = b.transcode(&stream.manifest_id, &seg).await;
        stream.add_renditions(&b, &seg, renditions);
        stream.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
