//! RTMP ingest over tokio with `rml_rtmp`'s handshake and server session.
//!
//! The manifest ID is the stream name when there is one, else the application name, so both
//! `rtmp://host:port/<manifestID>` and `rtmp://host:port/live/<manifestID>` (the OBS/ffmpeg
//! "app/key" form) publish stream `<manifestID>`; a `?query` on the key is ignored, as
//! go-livepeer does. Every failure of a connection (bad handshake, protocol error, unparseable
//! FLV tag, a publisher vanishing mid-packet) is counted by kind in the record book and ends or
//! skips only that connection's data; the segment in progress is flushed so the stream ends
//! cleanly.

use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::flv;
use crate::segmenter::Segmenter;
use crate::stream::{Broadcaster, Stream};

/// How long a handshake or a silent publisher may take before the connection is dropped.
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
    /// The chunk stream or a command is invalid.
    #[error("session: {0}")]
    Session(String),
    /// Nothing arrived for [`IDLE_TIMEOUT`].
    #[error("no data for {0:?}")]
    Idle(Duration),
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
            Self::Idle(_) => "rtmp_idle",
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
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let b = b.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let mut conn = Connection { b: b.clone(), publish: None, bad_tags: 0 };
                    let result = conn.run(socket, shutdown).await;
                    conn.end();
                    if let Err(e) = result {
                        tracing::info!("RTMP {peer}: {e}");
                        b.records().ingest_error(e.kind());
                    }
                });
            }
        }
    }
}

struct Publish {
    stream: Arc<Stream>,
    segmenter: Segmenter,
}

struct Connection {
    b: Arc<Broadcaster>,
    publish: Option<Publish>,
    bad_tags: u32,
}

impl Connection {
    async fn run(
        &mut self,
        mut socket: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), RtmpError> {
        socket.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let remaining = loop {
            let n = read(&mut socket, &mut buf).await?;
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
        let mut out = Vec::new();
        self.handle(&mut session, initial, &mut out)?;
        if !remaining.is_empty() {
            let results = session
                .handle_input(&remaining)
                .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
            self.handle(&mut session, results, &mut out)?;
        }
        socket.write_all(&out).await?;
        loop {
            out.clear();
            let n = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                n = read(&mut socket, &mut buf) => n?,
            };
            if n == 0 {
                return Ok(());
            }
            let results = session
                .handle_input(&buf[..n])
                .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
            let keep = self.handle(&mut session, results, &mut out)?;
            if !out.is_empty() {
                socket.write_all(&out).await?;
            }
            if !keep {
                return Ok(());
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
                let id = manifest_id(&app_name, &stream_key);
                if self.publish.is_some() {
                    let r = session
                        .reject_request(
                            request_id,
                            "NetStream.Publish.BadName",
                            "already publishing",
                        )
                        .map_err(session_err)?;
                    return self.handle(session, r, out);
                }
                match self.b.begin_publish(&id) {
                    Ok((stream, first_seq, restart)) => {
                        tracing::info!(
                            "RTMP publish {id} from seq {first_seq} (restart: {restart})"
                        );
                        self.publish = Some(Publish {
                            stream,
                            segmenter: Segmenter::new(
                                self.b.segmenter_config(),
                                first_seq,
                                restart,
                            ),
                        });
                        let results = session.accept_request(request_id).map_err(session_err)?;
                        self.handle(session, results, out)
                    }
                    Err(e) => {
                        self.b.records().ingest_error("publish_rejected");
                        let r = session
                            .reject_request(request_id, "NetStream.Publish.BadName", &e.to_string())
                            .map_err(session_err)?;
                        self.handle(session, r, out)?;
                        Ok(false)
                    }
                }
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
                            self.b.add_segment(&p.stream, seg);
                        }
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
                    Ok(tag) => p.segmenter.push_audio(tag, i64::from(timestamp.value)),
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
            if let Some(seg) = p.segmenter.finish() {
                self.b.add_segment(&p.stream, seg);
            }
            let stats = p.segmenter.stats().clone();
            if stats.frames_before_keyframe > 0 && p.stream.next_seq() == 0 {
                self.b.records().ingest_error("no_keyframe");
            }
            self.b.end_publish(&p.stream, stats);
        }
    }
}

async fn read(socket: &mut TcpStream, buf: &mut [u8]) -> Result<usize, RtmpError> {
    match tokio::time::timeout(IDLE_TIMEOUT, socket.read(buf)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RtmpError::Idle(IDLE_TIMEOUT)),
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
