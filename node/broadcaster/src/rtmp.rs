//! RTMP ingest over tokio with `rml_rtmp`'s handshake and server session.
//!
//! The manifest ID is the stream name when there is one, else the application name, so both
//! `rtmp://host:port/<manifestID>` and `rtmp://host:port/live/<manifestID>` (the OBS/ffmpeg
//! "app/key" form) publish stream `<manifestID>`; a `?query` on the key is ignored, as
//! go-livepeer does. Every failure of a connection (bad handshake, protocol error, unparseable
//! FLV tag, a publisher vanishing mid-packet) is counted by kind in the record book and ends or
//! skips only that connection's data; the segment in progress is flushed so the stream ends
//! cleanly.
//!
//! A hostile client meets bounds at every step: a connection cap (`rtmp_max_connections`), a
//! deadline from accept until its publish is accepted (`rtmp_handshake_timeout_ms`), publish
//! authorization (stream key, auth webhook, stream caps: see [`Broadcaster::authorize`]), the
//! segmenter's byte and wall-clock caps on the open segment, and a limit on unparseable tags.
//! Its stream ends whatever way the connection's task ends, panics included, because the
//! [`Publishing`] guard ends it on drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

mod chunks;

use chunks::{ChunkError, ChunkReader};

use crate::accept::{Accepted, CappedListener};
use crate::flv;
use crate::segmenter::{SegmentLimit, Segmenter};
use crate::stream::{Broadcaster, Publisher, Publishing, query_key};

/// How long a silent client may stay connected before the connection is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Unparseable tags tolerated from one publisher before it is disconnected.
const MAX_BAD_TAGS: u32 = 100;

/// Why an RTMP connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// Socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The client's handshake bytes are invalid.
    #[error("handshake: {0}")]
    Handshake(String),
    /// A command or message `rml_rtmp`'s session refused.
    #[error("session: {0}")]
    Session(String),
    /// The chunk stream is malformed or exceeds a bound (see [`chunks`]).
    #[error("chunk stream: {0}")]
    Chunks(#[from] ChunkError),
    /// Nothing arrived for [`IDLE_TIMEOUT`].
    #[error("no data for {0:?}")]
    Idle(Duration),
    /// The handshake, connect and publish took longer than `rtmp_handshake_timeout_ms`.
    #[error("no publish accepted within {0:?} of connecting")]
    SetupTimeout(Duration),
    /// The open segment broke a cap; the publisher is disconnected.
    #[error("disconnected: {0}")]
    SegmentLimit(#[from] SegmentLimit),
    /// Too many unparseable FLV tags.
    #[error("{0} unparseable media tags, last: {1}")]
    Garbage(u32, flv::FlvError),
}

impl RtmpError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Io(_) => "rtmp_io",
            Self::Handshake(_) => "rtmp_handshake",
            Self::Session(_) => "rtmp_session",
            Self::Chunks(_) => "rtmp_chunks",
            Self::Idle(_) => "rtmp_idle",
            Self::SetupTimeout(_) => "rtmp_handshake_timeout",
            Self::SegmentLimit(_) => "segment_limit",
            Self::Garbage(..) => "flv_garbage",
        }
    }
}

/// The manifest ID an RTMP publisher addresses (see the module docs).
pub fn manifest_id(app: &str, stream_key: &str) -> String {
    let key = stream_key.split('?').next().unwrap_or("").trim_matches('/');
    let app = app.split('?').next().unwrap_or("").trim_matches('/');
    if key.is_empty() {
        app.to_string()
    } else {
        key.to_string()
    }
}

/// Accepts publishers until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    b: Arc<Broadcaster>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = CappedListener::new(
        listener,
        b.config.rtmp_max_connections,
        "RTMP",
        "rtmp_max_connections",
        "rtmp_connection_cap",
        b"",
    );
    while let Some(Accepted { socket, peer, slot }) =
        listener.next(&mut shutdown, b.records()).await
    {
        let b = b.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let local = socket.local_addr().unwrap_or(peer);
            let mut conn = Connection {
                b: b.clone(),
                peer,
                local,
                publish: None,
                publish_request: None,
                bad_tags: 0,
            };
            let result = conn.run(socket, shutdown).await;
            conn.end();
            match result {
                Err(e @ RtmpError::SegmentLimit(_)) => {
                    tracing::warn!("RTMP {peer}: {e}");
                    b.records().ingest_error(e.kind());
                }
                Err(e) => {
                    tracing::info!("RTMP {peer}: {e}");
                    b.records().ingest_error(e.kind());
                }
                Ok(()) => {}
            }
        });
    }
}

struct Publish {
    publishing: Publishing,
    segmenter: Segmenter,
}

/// A publish command waiting for authorization (which is asynchronous: the auth webhook).
struct PublishRequest {
    request_id: u32,
    app_name: String,
    stream_key: String,
}

struct Connection {
    b: Arc<Broadcaster>,
    peer: SocketAddr,
    local: SocketAddr,
    publish: Option<Publish>,
    publish_request: Option<PublishRequest>,
    bad_tags: u32,
}

impl Connection {
    async fn run(
        &mut self,
        mut socket: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), RtmpError> {
        socket.set_nodelay(true)?;
        let setup_limit = Duration::from_millis(self.b.config.rtmp_handshake_timeout_ms);
        let setup_deadline = Instant::now() + setup_limit;
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let remaining = loop {
            let n = read(&mut socket, &mut buf, Some((setup_deadline, setup_limit))).await?;
            if n == 0 {
                return Err(RtmpError::Handshake(
                    "connection closed during handshake".into(),
                ));
            }
            match handshake
                .process_bytes(&buf[..n])
                .map_err(|e| RtmpError::Handshake(format!("{e:?}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    socket.write_all(&response_bytes).await?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    socket.write_all(&response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        let (mut chunks, chunk_size) = ChunkReader::new()?;
        let mut out = Vec::new();
        let mut keep = self.process(&mut session, initial, &mut out).await?;
        let mut input = chunk_size;
        input.extend(chunks.push(&remaining)?);
        let results = session
            .handle_input(&input)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        keep &= self.process(&mut session, results, &mut out).await?;
        socket.write_all(&out).await?;
        while keep {
            out.clear();
            let setup = self
                .publish
                .is_none()
                .then_some((setup_deadline, setup_limit));
            let n = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                n = read(&mut socket, &mut buf, setup) => n?,
            };
            if n == 0 {
                return Ok(());
            }
            let messages = chunks.push(&buf[..n])?;
            if messages.is_empty() {
                continue;
            }
            let results = session
                .handle_input(&messages)
                .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
            keep = self.process(&mut session, results, &mut out).await?;
            if !out.is_empty() {
                socket.write_all(&out).await?;
            }
        }
        Ok(())
    }

    /// Handles session results, then a publish request they raised; returns false when the
    /// connection should close.
    async fn process(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
    ) -> Result<bool, RtmpError> {
        let mut keep = self.handle(session, results, out)?;
        if let Some(request) = self.publish_request.take() {
            keep &= self.publish(session, request, out).await?;
        }
        Ok(keep)
    }

    /// Authorizes and starts a publish, or refuses it with the reason; false closes.
    async fn publish(
        &mut self,
        session: &mut ServerSession,
        request: PublishRequest,
        out: &mut Vec<u8>,
    ) -> Result<bool, RtmpError> {
        let session_err = |e| RtmpError::Session(format!("{e:?}"));
        let requested = manifest_id(&request.app_name, &request.stream_key);
        let query = [&request.stream_key, &request.app_name]
            .into_iter()
            .find_map(|s| s.split_once('?').map(|(_, q)| q))
            .unwrap_or("");
        let publisher = Publisher {
            ip: self.peer.ip(),
            key: query_key(query).map(str::to_owned),
        };
        let app = request.app_name.trim_matches('/');
        let url = if request.stream_key.is_empty() {
            format!("rtmp://{}/{app}", self.local)
        } else {
            format!("rtmp://{}/{app}/{}", self.local, request.stream_key)
        };
        let started = match self.b.authorize(&requested, &url, &publisher).await {
            Ok(id) => self.b.begin_publish(&id, &publisher).map(|p| (id, p)),
            Err(e) => Err(e),
        };
        match started {
            Ok((id, publishing)) => {
                tracing::info!(
                    "RTMP {} publishes {id} from seq {} (restart: {})",
                    self.peer,
                    publishing.first_seq,
                    publishing.restart
                );
                self.publish = Some(Publish {
                    segmenter: Segmenter::new(
                        self.b.segmenter_config(),
                        publishing.first_seq,
                        publishing.restart,
                    ),
                    publishing,
                });
                let results = session
                    .accept_request(request.request_id)
                    .map_err(session_err)?;
                self.handle(session, results, out)
            }
            Err(e) => {
                tracing::warn!("RTMP {}: publish of {requested:?} refused: {e}", self.peer);
                self.b.records().ingest_error(e.kind());
                let r = session
                    .reject_request(
                        request.request_id,
                        "NetStream.Publish.BadName",
                        &e.to_string(),
                    )
                    .map_err(session_err)?;
                self.handle(session, r, out)?;
                Ok(false)
            }
        }
    }

    /// Handles session results; returns false when the connection should close.
    fn handle(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
    ) -> Result<bool, RtmpError> {
        let mut keep = true;
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.extend_from_slice(&packet.bytes)
                }
                ServerSessionResult::RaisedEvent(event) => {
                    keep &= self.event(session, event, out)?
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(keep)
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
        out: &mut Vec<u8>,
    ) -> Result<bool, RtmpError> {
        let session_err = |e| RtmpError::Session(format!("{e:?}"));
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                let results = session.accept_request(request_id).map_err(session_err)?;
                self.handle(session, results, out)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                if self.publish.is_some() || self.publish_request.is_some() {
                    let r = session
                        .reject_request(
                            request_id,
                            "NetStream.Publish.BadName",
                            "already publishing",
                        )
                        .map_err(session_err)?;
                    return self.handle(session, r, out);
                }
                self.publish_request = Some(PublishRequest {
                    request_id,
                    app_name,
                    stream_key,
                });
                Ok(true)
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                let Some(p) = self.publish.as_mut() else {
                    return Ok(true);
                };
                match flv::parse_video(&data) {
                    Ok(tag) => {
                        if let Some(seg) = p.segmenter.push_video(tag, i64::from(timestamp.value)) {
                            self.b.add_segment(p.publishing.stream(), seg);
                        }
                        check_limits(&mut p.segmenter)?;
                    }
                    Err(e) => self.bad_tag(e)?,
                }
                Ok(true)
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                let Some(p) = self.publish.as_mut() else {
                    return Ok(true);
                };
                match flv::parse_audio(&data) {
                    Ok(tag) => {
                        p.segmenter.push_audio(tag, i64::from(timestamp.value));
                        check_limits(&mut p.segmenter)?;
                    }
                    Err(e) => self.bad_tag(e)?,
                }
                Ok(true)
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.end();
                Ok(true)
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let r = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "playback is served as HLS over HTTP",
                    )
                    .map_err(session_err)?;
                self.handle(session, r, out)
            }
            _ => Ok(true),
        }
    }

    fn bad_tag(&mut self, e: flv::FlvError) -> Result<(), RtmpError> {
        self.bad_tags += 1;
        self.b.records().ingest_error("flv_tag");
        if self.bad_tags >= MAX_BAD_TAGS {
            return Err(RtmpError::Garbage(self.bad_tags, e));
        }
        Ok(())
    }

    /// Flushes the open segment and marks the stream ended.
    fn end(&mut self) {
        if let Some(mut p) = self.publish.take() {
            let stream = p.publishing.stream();
            if let Some(seg) = p.segmenter.finish() {
                self.b.add_segment(stream, seg);
            }
            let stats = p.segmenter.stats().clone();
            if stats.frames_before_keyframe > 0 && stream.next_seq() == 0 {
                self.b.records().ingest_error("no_keyframe");
            }
            p.publishing.end(stats);
        }
    }
}

/// Holds the open segment to its caps; one that broke a cap is dropped, not flushed.
fn check_limits(segmenter: &mut Segmenter) -> Result<(), RtmpError> {
    segmenter
        .check_limits()
        .inspect_err(|_| segmenter.discard())?;
    Ok(())
}

/// Reads with the idle timeout and, until a publish is accepted, the setup deadline.
async fn read(
    socket: &mut TcpStream,
    buf: &mut [u8],
    setup: Option<(Instant, Duration)>,
) -> Result<usize, RtmpError> {
    let idle = Instant::now() + IDLE_TIMEOUT;
    let (deadline, err) = match setup {
        Some((deadline, limit)) if deadline < idle => (deadline, RtmpError::SetupTimeout(limit)),
        _ => (idle, RtmpError::Idle(IDLE_TIMEOUT)),
    };
    match tokio::time::timeout_at(deadline, socket.read(buf)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::manifest_id;

    #[test]
    fn manifest_id_is_the_key_or_the_app() {
        assert_eq!(manifest_id("live", "abc"), "abc");
        assert_eq!(manifest_id("abc", ""), "abc");
        assert_eq!(manifest_id("live", "abc?token=1"), "abc");
    }
}
