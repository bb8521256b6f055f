//! A Trickle server for tests: channels of segments relayed from one streamed POST to any
//! number of GETs while the POST is still arriving.
//!
//! Everything is bounded so a hostile or broken peer cannot grow it without limit: the number
//! of channels, the bytes of one segment, the segments kept per channel, and how long a
//! request may sit without a byte moving (a preconnected request waits at most that long).

use crate::{CLOSED_HEADER, LATEST_HEADER, LIMIT_HEADER, SEQ_HEADER, STATUS_NOT_RETAINED};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bounds a server keeps against hostile or broken peers.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Channels that may exist at once; a publish creating one more is refused with 503.
    pub max_channels: usize,
    /// Bytes one segment may hold; a publish beyond it is cut with 413.
    pub max_segment_bytes: usize,
    /// Segments retained per channel (the newest ones); older seqs answer 470.
    pub kept_segments: usize,
    /// How long a publish or subscribe may wait without a byte moving before it is cut: a
    /// preconnected or stalled request. Channels with no publish for ten times as long are ended
    /// (5 minutes by default, go-livepeer's sweep).
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_channels: 64,
            max_segment_bytes: 32 * 1024 * 1024,
            kept_segments: 5,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A running Trickle server.
pub struct TrickleServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<watch::Sender<bool>>,
    task: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl TrickleServer {
    /// Binds `addr` (e.g. 127.0.0.1:0) and serves channels under `/`; a channel is created by its first publish.
    pub async fn start(addr: SocketAddr, limits: ServerLimits) -> std::io::Result<TrickleServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let limits = ServerLimits {
            kept_segments: limits.kept_segments.max(1),
            ..limits
        };
        let shared = Arc::new(Shared {
            limits,
            channels: Mutex::new(HashMap::new()),
            stopped: stopped.clone(),
        });
        let app = Router::new()
            .route(
                "/{channel}/{seq}",
                get(handle_get).post(handle_post).delete(handle_delete_seq),
            )
            .route("/{channel}", delete(handle_delete))
            .with_state(shared.clone());
        let mut shutdown = stopped.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            });
            if let Err(err) = serve.await {
                tracing::warn!(%err, "trickle server stopped with an error");
            }
        });
        let sweeper = tokio::spawn(sweep(shared.clone()));
        tracing::info!(%addr, "trickle server listening");
        Ok(TrickleServer {
            addr,
            shared,
            stop: Some(stop),
            task,
            sweeper,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/NAME`
    pub fn channel_url(&self, name: &str) -> String {
        format!("http://{}/{}", self.addr, name)
    }

    /// Ends every channel (subscribers see the end), stops accepting, and waits a little for
    /// open requests before cutting them.
    pub async fn stop(mut self) {
        let channels: Vec<Arc<Channel>> = lock(&self.shared.channels).values().cloned().collect();
        for channel in channels {
            channel.close();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.sweeper.abort();
        // Handlers watch `stopped` too, so they return promptly; the bound is for a peer that
        // never reads its response.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for TrickleServer {
    fn drop(&mut self) {
        // Dropped without `stop`: don't leave a server running in the background.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
            self.task.abort();
            self.sweeper.abort();
        }
    }
}

struct Shared {
    limits: ServerLimits,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    stopped: watch::Receiver<bool>,
}

struct Channel {
    name: String,
    state: Mutex<ChannelState>,
}

struct ChannelState {
    /// Retained segments by seq (at most `kept_segments`, plus one precreated by a subscriber).
    segments: BTreeMap<u64, Arc<Segment>>,
    /// The seq the next publish is expected to write: one past the newest that received bytes.
    next_write: u64,
    content_type: Option<HeaderValue>,
    closed_at: Option<Instant>,
    last_publish: Instant,
}

/// One segment's bytes as published so far, shared by the publishing POST and the GETs.
struct Segment {
    seq: u64,
    data: watch::Sender<SegmentData>,
}

#[derive(Default)]
struct SegmentData {
    chunks: Vec<Bytes>,
    len: usize,
    end: Option<SegmentEnd>,
    /// A POST is writing it (a second one is refused rather than interleaved).
    writing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SegmentEnd {
    /// Published completely (or ended with its channel).
    Complete,
    /// The publish failed: subscribers get a broken body, not a clean end.
    Aborted,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Segment {
    fn new(seq: u64) -> Arc<Segment> {
        Arc::new(Segment {
            seq,
            data: watch::Sender::new(SegmentData::default()),
        })
    }

    fn end(&self, end: SegmentEnd) {
        self.data.send_modify(|data| {
            if data.end.is_none() {
                data.end = Some(end);
            }
        });
    }
}

impl Channel {
    fn is_closed(&self) -> bool {
        lock(&self.state).closed_at.is_some()
    }

    fn close(&self) {
        let segments: Vec<Arc<Segment>> = {
            let mut state = lock(&self.state);
            if state.closed_at.is_none() {
                state.closed_at = Some(Instant::now());
            }
            state.segments.values().cloned().collect()
        };
        for segment in segments {
            segment.end(SegmentEnd::Complete);
        }
        tracing::debug!(channel = %self.name, "trickle channel closed");
    }
}

/// Ends channels nobody publishes to and forgets ended ones, so abandoned channels do not pin
/// memory or channel slots.
async fn sweep(shared: Arc<Shared>) {
    let idle = shared.limits.idle_timeout;
    let mut tick = tokio::time::interval(idle.max(Duration::from_millis(50)));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let channels: Vec<Arc<Channel>> = lock(&shared.channels).values().cloned().collect();
        for channel in channels {
            let (closed_at, last_publish, writing) = {
                let state = lock(&channel.state);
                let writing = state
                    .segments
                    .values()
                    .any(|segment| segment.data.borrow().writing);
                (state.closed_at, state.last_publish, writing)
            };
            match closed_at {
                Some(at) if now.duration_since(at) > idle => {
                    lock(&shared.channels).remove(&channel.name);
                }
                None if !writing && now.duration_since(last_publish) > idle * 10 => {
                    tracing::info!(channel = %channel.name, "trickle channel idle, ending it");
                    channel.close();
                }
                _ => {}
            }
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_string()).into_response()
}

fn not_retained(seq: i64, latest: u64) -> Response {
    let mut response = plain(
        StatusCode::from_u16(STATUS_NOT_RETAINED).unwrap_or(StatusCode::GONE),
        "Entry not found",
    );
    let headers = response.headers_mut();
    headers.insert(SEQ_HEADER, HeaderValue::from(seq));
    headers.insert(LATEST_HEADER, HeaderValue::from(latest));
    response
}

fn closed_response(seq: i64) -> Response {
    let mut response = plain(StatusCode::OK, "");
    let headers = response.headers_mut();
    headers.insert(SEQ_HEADER, HeaderValue::from(seq));
    headers.insert(CLOSED_HEADER, HeaderValue::from_static("terminated"));
    response
}

fn parse_seq(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|seq| *seq >= -2)
}

async fn handle_post(
    State(shared): State<Arc<Shared>>,
    Path((name, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(seq) = parse_seq(&seq).filter(|seq| *seq != -2) else {
        return plain(StatusCode::BAD_REQUEST, "Invalid idx");
    };
    let channel = {
        let mut channels = lock(&shared.channels);
        match channels.get(&name) {
            Some(channel) => channel.clone(),
            None => {
                if channels.len() >= shared.limits.max_channels {
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "Too many channels");
                }
                let channel = Arc::new(Channel {
                    name: name.clone(),
                    state: Mutex::new(ChannelState {
                        segments: BTreeMap::new(),
                        next_write: 0,
                        content_type: None,
                        closed_at: None,
                        last_publish: Instant::now(),
                    }),
                });
                channels.insert(name.clone(), channel.clone());
                tracing::debug!(channel = %name, "trickle channel created");
                channel
            }
        }
    };
    let kept = shared.limits.kept_segments as u64;
    let segment = {
        let mut state = lock(&channel.state);
        if state.closed_at.is_some() {
            let mut response = plain(StatusCode::GONE, "Channel closed");
            response
                .headers_mut()
                .insert(CLOSED_HEADER, HeaderValue::from_static("terminated"));
            return response;
        }
        let seq = if seq == -1 {
            state.next_write
        } else {
            seq as u64
        };
        // An old seq falling outside the retained window would evict newer data: refuse it.
        if seq + kept < state.next_write {
            return not_retained(seq as i64, state.next_write);
        }
        if let Some(content_type) = headers.get(axum::http::header::CONTENT_TYPE) {
            state.content_type = Some(content_type.clone());
        }
        state.last_publish = Instant::now();
        let segment = state
            .segments
            .entry(seq)
            .or_insert_with(|| Segment::new(seq))
            .clone();
        let mut refused = false;
        segment.data.send_if_modified(|data| {
            if data.writing || data.end.is_some() || data.len > 0 {
                refused = true;
                false
            } else {
                data.writing = true;
                false
            }
        });
        if refused {
            return plain(StatusCode::CONFLICT, "Segment already published");
        }
        // Keep only the newest `kept` segments (counting this one).
        while state.segments.len() > kept as usize {
            let Some((&oldest, _)) = state.segments.iter().next() else {
                break;
            };
            if oldest >= seq {
                break;
            }
            if let Some(old) = state.segments.remove(&oldest) {
                // A subscriber still reading it holds its own reference.
                old.end(SegmentEnd::Complete);
            }
        }
        segment
    };
    receive(shared, channel, segment, body).await
}

/// Copies a POST body into `segment` chunk by chunk, under the byte and idle limits.
async fn receive(
    shared: Arc<Shared>,
    channel: Arc<Channel>,
    segment: Arc<Segment>,
    body: Body,
) -> Response {
    let limits = shared.limits.clone();
    let mut stopped = shared.stopped.clone();
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    let outcome = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(limits.idle_timeout, stream.next()) => next,
            _ = stopped.wait_for(|stop| *stop) => break Err(plain(StatusCode::SERVICE_UNAVAILABLE, "Server stopping")),
        };
        let chunk = match next {
            Err(_) => {
                tracing::info!(channel = %channel.name, seq = segment.seq, "trickle publish idle, cutting it");
                break Err(plain(StatusCode::REQUEST_TIMEOUT, "Publish idle too long"));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(err))) => {
                tracing::info!(channel = %channel.name, seq = segment.seq, %err, "trickle publish body failed");
                break Err(plain(StatusCode::BAD_REQUEST, "Body failed"));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if chunk.is_empty() {
            continue;
        }
        total += chunk.len();
        if total > limits.max_segment_bytes {
            tracing::info!(channel = %channel.name, seq = segment.seq, limit = limits.max_segment_bytes, "trickle segment too large");
            let mut response = plain(StatusCode::PAYLOAD_TOO_LARGE, "Segment too large");
            response
                .headers_mut()
                .insert(LIMIT_HEADER, HeaderValue::from(limits.max_segment_bytes));
            // Dropping the body now would close the connection under the publisher while it
            // writes, and it would see a broken pipe instead of this 413. Discard the rest in
            // the background (nothing is kept, so only time and bytes are capped) while the
            // answer goes out.
            let (idle, cap) = (
                limits.idle_timeout,
                limits.max_segment_bytes.saturating_mul(64),
            );
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + idle;
                let mut drained = 0usize;
                while drained < cap {
                    match tokio::time::timeout_at(until, stream.next()).await {
                        Ok(Some(Ok(chunk))) => drained += chunk.len(),
                        _ => break,
                    }
                }
            });
            break Err(response);
        }
        if total == chunk.len() {
            let mut state = lock(&channel.state);
            state.next_write = state.next_write.max(segment.seq + 1);
            state.last_publish = Instant::now();
        }
        let mut ended = false;
        segment.data.send_modify(|data| {
            if data.end.is_some() {
                // The channel ended (or the segment aged out) under us.
                ended = true;
            } else {
                data.len += chunk.len();
                data.chunks.push(chunk);
            }
        });
        if ended {
            break Err(plain(StatusCode::GONE, "Channel closed"));
        }
    };
    {
        let mut state = lock(&channel.state);
        state.last_publish = Instant::now();
        // An empty publish still moves the head on, as go-livepeer does, so a subscriber
        // waiting on the next seq is not stuck behind a segment that will never have bytes.
        if outcome.is_ok() {
            state.next_write = state.next_write.max(segment.seq + 1);
        }
    }
    segment.data.send_modify(|data| {
        data.writing = false;
        if data.end.is_none() {
            data.end = Some(if outcome.is_ok() {
                SegmentEnd::Complete
            } else {
                SegmentEnd::Aborted
            });
        }
    });
    match outcome {
        Ok(()) => plain(StatusCode::OK, ""),
        Err(response) => response,
    }
}

enum Piece {
    Chunk(Bytes),
    End(SegmentEnd),
    Idle,
    Stopped,
}

/// A subscriber's position in one segment.
struct Cursor {
    /// Held so the segment outlives its eviction from the channel while this reads it.
    segment: Arc<Segment>,
    data: watch::Receiver<SegmentData>,
    next_chunk: usize,
    idle: Duration,
    stopped: watch::Receiver<bool>,
}

impl Cursor {
    async fn next(&mut self) -> Piece {
        loop {
            {
                let data = self.data.borrow_and_update();
                if let Some(chunk) = data.chunks.get(self.next_chunk) {
                    self.next_chunk += 1;
                    return Piece::Chunk(chunk.clone());
                }
                if let Some(end) = data.end {
                    return Piece::End(end);
                }
            }
            tokio::select! {
                changed = tokio::time::timeout(self.idle, self.data.changed()) => match changed {
                    Err(_) => return Piece::Idle,
                    // The cursor holds the segment, so the sender outlives it; be safe anyway.
                    Ok(Err(_)) => return Piece::End(SegmentEnd::Aborted),
                    Ok(Ok(())) => {}
                },
                _ = self.stopped.wait_for(|stop| *stop) => return Piece::Stopped,
            }
        }
    }
}

async fn handle_get(
    State(shared): State<Arc<Shared>>,
    Path((name, seq)): Path<(String, String)>,
) -> Response {
    let Some(asked) = parse_seq(&seq) else {
        return plain(StatusCode::BAD_REQUEST, "Invalid idx");
    };
    let Some(channel) = lock(&shared.channels).get(&name).cloned() else {
        return plain(StatusCode::NOT_FOUND, "Stream not found");
    };
    let (segment, content_type) = {
        let mut state = lock(&channel.state);
        let seq = match asked {
            -1 => state.next_write,
            -2 => state.next_write.saturating_sub(1),
            seq => seq as u64,
        };
        match state.segments.get(&seq) {
            Some(segment) => (segment.clone(), state.content_type.clone()),
            None if state.closed_at.is_some() => return closed_response(seq as i64),
            // Just ahead of the write head: wait for it (a preconnect), bounded by the idle
            // timeout. Anything else is too old or too far ahead.
            None if seq == state.next_write => {
                let segment = Segment::new(seq);
                state.segments.insert(seq, segment.clone());
                (segment, state.content_type.clone())
            }
            None => return not_retained(seq as i64, state.next_write),
        }
    };
    let mut cursor = Cursor {
        data: segment.data.subscribe(),
        segment,
        next_chunk: 0,
        idle: shared.limits.idle_timeout,
        stopped: shared.stopped.clone(),
    };
    let seq = cursor.segment.seq;
    // Headers wait for the first byte so an empty end can still be told apart: the channel's
    // end, or a segment that was dropped.
    let first = match cursor.next().await {
        Piece::Chunk(chunk) => chunk,
        Piece::End(_) => {
            if channel.is_closed() {
                return closed_response(seq as i64);
            }
            let latest = lock(&channel.state).next_write;
            return not_retained(seq as i64, latest);
        }
        Piece::Idle => return plain(StatusCode::REQUEST_TIMEOUT, "Nothing published in time"),
        Piece::Stopped => return plain(StatusCode::SERVICE_UNAVAILABLE, "Server stopping"),
    };
    let rest = futures_util::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        match cursor.next().await {
            Piece::Chunk(chunk) => Some((Ok(chunk), Some(cursor))),
            Piece::End(SegmentEnd::Complete) => None,
            // A broken body (no final chunk) tells the subscriber the segment is incomplete.
            Piece::End(SegmentEnd::Aborted) => {
                Some((Err(std::io::Error::other("segment publish failed")), None))
            }
            Piece::Idle => Some((Err(std::io::Error::other("segment publish stalled")), None)),
            Piece::Stopped => Some((Err(std::io::Error::other("server stopping")), None)),
        }
    });
    let body =
        futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(first) }).chain(rest);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(SEQ_HEADER, HeaderValue::from(seq));
    if let Some(content_type) = content_type {
        headers.insert(axum::http::header::CONTENT_TYPE, content_type);
    }
    response
}

async fn handle_delete(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(channel) = lock(&shared.channels).get(&name).cloned() else {
        return plain(StatusCode::NOT_FOUND, "Stream not found");
    };
    // Kept (closed) for a while so late subscribers see the end rather than a 404; the
    // sweeper forgets it after the idle timeout.
    channel.close();
    plain(StatusCode::OK, "")
}

/// go-livepeer's DELETE of one seq: ends that segment as it stands.
async fn handle_delete_seq(
    State(shared): State<Arc<Shared>>,
    Path((name, seq)): Path<(String, String)>,
) -> Response {
    let Some(seq) = seq.parse::<u64>().ok() else {
        return plain(StatusCode::BAD_REQUEST, "Invalid idx");
    };
    let Some(channel) = lock(&shared.channels).get(&name).cloned() else {
        return plain(StatusCode::NOT_FOUND, "Stream not found");
    };
    let Some(segment) = lock(&channel.state).segments.get(&seq).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "Nonexistent segment");
    };
    segment.end(SegmentEnd::Complete);
    plain(StatusCode::OK, "")
}
