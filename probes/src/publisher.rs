//! The RTMP publisher probe: one TCP connection per stream, replaying the shared source in real
//! time with shifted timestamps, logging when every video frame went out.
//!
//! Design: one task per stream drives an `rml_rtmp` client session by hand (handshake, connect,
//! createStream/publish) and then loops: serialise every packet that is due into one reusable
//! write buffer, write it with a single syscall, log the video frames' send time, and sleep
//! until the next packet is due only when ahead of the wall clock, reading (and answering) the
//! server's control messages while it waits. Packets due within `send_ahead` (250 ms by
//! default; 0 paces every packet) go out together, and wake-ups are aligned to a shared grid,
//! so a publisher wakes about four times a second and many publishers wake at once (this cut
//! the CPU per stream by 3x in the publishers benchmark). Media chunks are written straight
//! into the reused buffer by [`crate::chunk`]: nothing is allocated per packet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reference_transcoder::MediaKind;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use crate::chunk;
use crate::clock::now_unix_ms;
use crate::observe::{PublishObservation, PublishPhase};
use crate::replay::ReplaySource;
use crate::sendlog::SendLog;

/// Where to publish: parsed from `rtmp://host[:port]/app[/stream key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream_key: String,
    /// The URL as given (also sent as `tcUrl`, without the stream key).
    pub url: String,
}

/// Why an RTMP URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtmpUrlError {
    #[error("RTMP URL {url:?} is not a valid URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("RTMP URL {url:?} must use the rtmp:// scheme")]
    Scheme { url: String },
    #[error("RTMP URL {url:?} has no application path")]
    NoApp { url: String },
}

impl RtmpTarget {
    /// Parses `rtmp://host[:port]/app/key`. With a single path segment
    /// (`rtmp://host/{stream}`, the Livepeer broadcaster's shape) the segment is both the
    /// application and the stream key.
    pub fn parse(url: &str) -> Result<RtmpTarget, RtmpUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| RtmpUrlError::Invalid {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.scheme() != "rtmp" {
            return Err(RtmpUrlError::Scheme {
                url: url.to_string(),
            });
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| RtmpUrlError::Invalid {
                url: url.to_string(),
                reason: "no host".into(),
            })?
            .to_string();
        let path = parsed.path().trim_start_matches('/');
        let (app, key) = match path.split_once('/') {
            Some((app, key)) if !key.is_empty() => (app.to_string(), key.to_string()),
            Some((app, _)) => (app.to_string(), app.to_string()),
            None => (path.to_string(), path.to_string()),
        };
        if app.is_empty() {
            return Err(RtmpUrlError::NoApp {
                url: url.to_string(),
            });
        }
        let key = match parsed.query() {
            Some(q) => format!("{key}?{q}"),
            None => key,
        };
        Ok(RtmpTarget {
            host,
            port: parsed.port().unwrap_or(1935),
            app,
            stream_key: key,
            url: url.to_string(),
        })
    }

    fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

/// How one publisher runs.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Media time to send (the clip loops to fill it).
    pub duration: Duration,
    /// Clip frame to start at (rounded down to its GOP's key frame).
    pub start_frame: u32,
    /// Deadline for TCP connect + handshake + connect + publish accepted.
    pub setup_timeout: Duration,
    /// How often a progress observation is emitted.
    pub progress_interval: Duration,
    /// If the server is so slow that media falls this far behind the wall clock, give up.
    pub max_lag: Duration,
    /// Packets due within this window are sent together: the publisher wakes at most about
    /// once per window instead of once per packet (the send log keeps the true send times).
    pub send_ahead: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            duration: Duration::from_secs(30),
            start_frame: 0,
            setup_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_secs(1),
            max_lag: Duration::from_secs(10),
            send_ahead: Duration::from_millis(250),
        }
    }
}

/// Why publishing stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("RTMP setup with {url} did not finish within {timeout:?} (stuck at {stage})")]
    SetupTimeout {
        url: String,
        timeout: Duration,
        stage: &'static str,
    },
    #[error("RTMP handshake with {url} failed: {reason}")]
    Handshake { url: String, reason: String },
    #[error("{url} refused the connection to app {app:?}: {description}")]
    ConnectRejected {
        url: String,
        app: String,
        description: String,
    },
    #[error("RTMP session error with {url}: {reason}")]
    Session { url: String, reason: String },
    #[error("{url} closed the connection after {media_ms:.0} ms of media")]
    Closed { url: String, media_ms: f64 },
    #[error("I/O error with {url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("publishing to {url} fell {lag_ms:.0} ms behind the wall clock")]
    TooSlow { url: String, lag_ms: f64 },
}

/// What a finished publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSummary {
    pub frames_sent: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub media_ms: f64,
    pub loops: u64,
    pub max_lag_ms: f64,
    pub started_unix_ms: i64,
}

/// One stream's publisher.
pub struct RtmpPublisher {
    target: RtmpTarget,
    source: Arc<ReplaySource>,
    options: PublishOptions,
    log: Arc<SendLog>,
}

impl RtmpPublisher {
    /// A publisher of `source` to `target`; its send log exists (empty) from now on.
    pub fn new(target: RtmpTarget, source: Arc<ReplaySource>, options: PublishOptions) -> Self {
        let log = Arc::new(SendLog::new(
            &target.stream_key,
            source.format.stream_id,
            source.clip_frames,
            source.start_point(options.start_frame).1,
        ));
        RtmpPublisher {
            target,
            source,
            options,
            log,
        }
    }

    /// The send log this publisher fills (share it with the checks while publishing).
    pub fn send_log(&self) -> Arc<SendLog> {
        self.log.clone()
    }

    pub fn target(&self) -> &RtmpTarget {
        &self.target
    }

    /// Publishes for the configured duration. `progress` gets a `Started` observation, one
    /// `Progress` per interval and a final `Finished` or `Failed`.
    pub async fn run(
        &self,
        progress: &mut (dyn FnMut(&PublishObservation) + Send),
    ) -> Result<PublishSummary, PublishError> {
        let mut state = SendState::new(&self.target);
        let result = self.run_inner(&mut state, progress).await;
        let (phase, error) = match &result {
            Ok(_) => (PublishPhase::Finished, None),
            Err(e) => (PublishPhase::Failed, Some(e.to_string())),
        };
        progress(&state.observation(phase, error));
        result.map(|()| state.summary())
    }

    async fn run_inner(
        &self,
        state: &mut SendState,
        progress: &mut (dyn FnMut(&PublishObservation) + Send),
    ) -> Result<(), PublishError> {
        let url = self.target.url.clone();
        let setup_deadline = tokio::time::Instant::now() + self.options.setup_timeout;
        let addr = format!("{}:{}", self.target.host, self.target.port);
        let mut stage = "tcp connect";
        let timeout_err = |stage| PublishError::SetupTimeout {
            url: url.clone(),
            timeout: self.options.setup_timeout,
            stage,
        };
        let mut stream = tokio::time::timeout_at(setup_deadline, TcpStream::connect(&addr))
            .await
            .map_err(|_| timeout_err(stage))?
            .map_err(|source| PublishError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.split();
        let mut rbuf = vec![0u8; 16 * 1024];
        let io = |source| PublishError::Io {
            url: url.clone(),
            source,
        };
        let sess = |e: rml_rtmp::sessions::ClientSessionError| PublishError::Session {
            url: url.clone(),
            reason: e.to_string(),
        };

        stage = "handshake";
        let leftover = tokio::time::timeout_at(
            setup_deadline,
            handshake(&mut reader, &mut writer, &mut rbuf, &url),
        )
        .await
        .map_err(|_| timeout_err(stage))??;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(self.target.tc_url());
        config.chunk_size = chunk::CHUNK_SIZE as u32;
        config.flash_version = "FMLE/3.0 (compatible; lpt)".into();
        let (mut session, _) = ClientSession::new(config).map_err(sess)?;
        let mut wbuf: Vec<u8> = Vec::with_capacity(64 * 1024);

        let setup = async {
            let mut events = Vec::new();
            feed(&mut session, &leftover, &mut wbuf, &mut events).map_err(sess)?;
            push(
                session.request_connection(self.target.app.clone()),
                &mut wbuf,
            )
            .map_err(sess)?;
            // The server's answer to what was just pushed.
            macro_rules! answer {
                ($pick:expr) => {
                    wait_for(
                        &mut session,
                        &mut reader,
                        &mut writer,
                        &mut rbuf,
                        &mut wbuf,
                        &url,
                        $pick,
                    )
                };
            }
            answer!(|e| match e {
                ClientSessionEvent::ConnectionRequestAccepted => Some(Ok(())),
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    Some(Err(PublishError::ConnectRejected {
                        url: url.clone(),
                        app: self.target.app.clone(),
                        description: description.clone(),
                    }))
                }
                _ => None,
            })
            .await?;
            push(
                session
                    .request_publishing(self.target.stream_key.clone(), PublishRequestType::Live),
                &mut wbuf,
            )
            .map_err(sess)?;
            answer!(|e| match e {
                ClientSessionEvent::PublishRequestAccepted => Some(Ok(())),
                _ => None,
            })
            .await
        };
        tokio::time::timeout_at(setup_deadline, setup)
            .await
            .map_err(|_| timeout_err("connect/publish"))??;

        let source = &*self.source;
        let mut metadata = StreamMetadata::new();
        metadata.video_width = Some(source.format.width);
        metadata.video_height = Some(source.format.height);
        metadata.video_codec_id = Some(7);
        metadata.video_frame_rate =
            Some(source.format.fps_num as f32 / source.format.fps_den as f32);
        metadata.video_bitrate_kbps = Some((source.bitrate_bps() / 1000.0) as u32);
        if source.audio_header.is_some() {
            metadata.audio_codec_id = Some(10);
        }
        metadata.encoder = Some("lpt probes".into());
        push(session.publish_metadata(&metadata), &mut wbuf).map_err(sess)?;
        // The session serialises the video sequence header with a full chunk header, which is
        // where the stream id from createStream can be read for the media chunks written below.
        let header = session
            .publish_video_data(source.video_header.clone(), RtmpTimestamp::new(0), false)
            .map_err(sess)?;
        let ClientSessionResult::OutboundResponse(header) = header else {
            return Err(PublishError::Session {
                url: url.clone(),
                reason: "the session produced no video header packet".into(),
            });
        };
        let msid = chunk::message_stream_id_of_full_chunk(&header.bytes).ok_or_else(|| {
            PublishError::Session {
                url: url.clone(),
                reason: "cannot read the message stream id of the video header".into(),
            }
        })?;
        wbuf.extend_from_slice(&header.bytes);
        if let Some(audio) = &source.audio_header {
            push(
                session.publish_audio_data(audio.clone(), RtmpTimestamp::new(0), false),
                &mut wbuf,
            )
            .map_err(sess)?;
        }

        let start = Instant::now();
        state.started(now_unix_ms());
        progress(&state.observation(PublishPhase::Started, None));

        let (start_index, _) = source.start_point(self.options.start_frame);
        let packets = &source.packets;
        let base_dts = packets[start_index].dts_ms as f64;
        let duration_ms = self.options.duration.as_secs_f64() * 1000.0;
        let max_lag_ms = self.options.max_lag.as_secs_f64() * 1000.0;
        let ahead = self.options.send_ahead;
        let mut index = start_index;
        let mut pass: u64 = 0;
        let mut positions: Vec<u64> = Vec::with_capacity(64);
        let mut next_progress = start + self.options.progress_interval;
        // Rotated decode timestamp of packet `i` within its pass.
        let rotated = |i: usize| {
            let d = packets[i].dts_ms as f64 - base_dts;
            if d < 0.0 { d + source.loop_ms } else { d }
        };
        loop {
            let ts = rotated(index) + pass as f64 * source.loop_ms;
            if ts >= duration_ms {
                break;
            }
            let now = Instant::now();
            let due = start + Duration::from_secs_f64(ts / 1000.0);
            if due > now + ahead {
                if !wbuf.is_empty() {
                    writer.write_all(&wbuf).await.map_err(io)?;
                    state.bytes_sent += wbuf.len() as u64;
                    wbuf.clear();
                    self.log.record(&positions, now_unix_ms());
                    positions.clear();
                }
                if now >= next_progress {
                    progress(&state.observation(PublishPhase::Progress, None));
                    next_progress = now + self.options.progress_interval;
                }
                // On a shared grid (a quarter of the window, so never late) all publishers of a
                // runtime wake together instead of each at its own millisecond.
                let wake =
                    tokio::time::Instant::from_std(crate::clock::align_up(due - ahead, ahead / 4));
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    read = reader.read(&mut rbuf) => {
                        let n = read.map_err(io)?;
                        if n == 0 {
                            return Err(PublishError::Closed { url: url.clone(), media_ms: state.media_ms });
                        }
                        let mut events = Vec::new();
                        feed(&mut session, &rbuf[..n], &mut wbuf, &mut events).map_err(sess)?;
                    }
                }
                continue;
            }
            let lag = now.saturating_duration_since(due).as_secs_f64() * 1000.0;
            state.lag_ms = lag;
            state.max_lag_ms = state.max_lag_ms.max(lag);
            if lag > max_lag_ms {
                return Err(PublishError::TooSlow {
                    url: url.clone(),
                    lag_ms: lag,
                });
            }
            let packet = &packets[index];
            let timestamp = ts.round() as u32;
            match packet.kind {
                MediaKind::Video => {
                    if let Some(frame) = packet.frame {
                        positions.push(self.log.position(pass, frame));
                        state.frames_sent += 1;
                    }
                    chunk::write_message(
                        &mut wbuf,
                        chunk::VIDEO_CSID,
                        chunk::VIDEO_TYPE,
                        timestamp,
                        msid,
                        &packet.body,
                    );
                }
                MediaKind::Audio => chunk::write_message(
                    &mut wbuf,
                    chunk::AUDIO_CSID,
                    chunk::AUDIO_TYPE,
                    timestamp,
                    msid,
                    &packet.body,
                ),
            }
            state.packets_sent += 1;
            state.media_ms = ts;
            index += 1;
            if index == packets.len() {
                index = 0;
            }
            if index == start_index {
                pass += 1;
                state.loops = pass;
            }
            // Bound the batch so a stream that is far behind still flushes regularly.
            if wbuf.len() >= 256 * 1024 {
                writer.write_all(&wbuf).await.map_err(io)?;
                state.bytes_sent += wbuf.len() as u64;
                wbuf.clear();
                self.log.record(&positions, now_unix_ms());
                positions.clear();
            }
        }
        if let Ok(results) = session.stop_publishing() {
            for r in results {
                if let ClientSessionResult::OutboundResponse(p) = r {
                    wbuf.extend_from_slice(&p.bytes);
                }
            }
        }
        if !wbuf.is_empty() {
            writer.write_all(&wbuf).await.map_err(io)?;
            state.bytes_sent += wbuf.len() as u64;
            self.log.record(&positions, now_unix_ms());
        }
        let _ = writer.shutdown().await;
        Ok(())
    }
}

/// Counters of one publish, turned into observations.
struct SendState {
    stream_key: String,
    url: String,
    started_unix_ms: Option<i64>,
    media_ms: f64,
    frames_sent: u64,
    packets_sent: u64,
    bytes_sent: u64,
    loops: u64,
    lag_ms: f64,
    max_lag_ms: f64,
}

impl SendState {
    fn new(target: &RtmpTarget) -> Self {
        SendState {
            stream_key: target.stream_key.clone(),
            url: target.url.clone(),
            started_unix_ms: None,
            media_ms: 0.0,
            frames_sent: 0,
            packets_sent: 0,
            bytes_sent: 0,
            loops: 0,
            lag_ms: 0.0,
            max_lag_ms: 0.0,
        }
    }

    fn started(&mut self, at: i64) {
        self.started_unix_ms = Some(at);
    }

    fn observation(&self, phase: PublishPhase, error: Option<String>) -> PublishObservation {
        PublishObservation {
            stream_key: self.stream_key.clone(),
            url: self.url.clone(),
            phase,
            at_unix_ms: now_unix_ms(),
            started_unix_ms: self.started_unix_ms,
            media_ms: self.media_ms,
            frames_sent: self.frames_sent,
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            loops: self.loops,
            lag_ms: self.lag_ms,
            max_lag_ms: self.max_lag_ms,
            error,
        }
    }

    fn summary(&self) -> PublishSummary {
        PublishSummary {
            frames_sent: self.frames_sent,
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            media_ms: self.media_ms,
            loops: self.loops,
            max_lag_ms: self.max_lag_ms,
            started_unix_ms: self.started_unix_ms.unwrap_or(0),
        }
    }
}

/// Runs the client side of the RTMP handshake; returns bytes that followed it.
async fn handshake(
    reader: &mut ReadHalf<'_>,
    writer: &mut WriteHalf<'_>,
    rbuf: &mut [u8],
    url: &str,
) -> Result<Vec<u8>, PublishError> {
    let fail = |reason: String| PublishError::Handshake {
        url: url.to_string(),
        reason,
    };
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| fail(format!("{e:?}")))?;
    writer
        .write_all(&p0p1)
        .await
        .map_err(|e| fail(e.to_string()))?;
    loop {
        let n = reader.read(rbuf).await.map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            return Err(fail("server closed the connection".into()));
        }
        match hs
            .process_bytes(&rbuf[..n])
            .map_err(|e| fail(format!("{e:?}")))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                if !response_bytes.is_empty() {
                    writer
                        .write_all(&response_bytes)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                if !response_bytes.is_empty() {
                    writer
                        .write_all(&response_bytes)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                return Ok(remaining_bytes);
            }
        }
    }
}

/// Appends a session result's outbound bytes to the write buffer.
fn push(
    result: Result<ClientSessionResult, rml_rtmp::sessions::ClientSessionError>,
    wbuf: &mut Vec<u8>,
) -> Result<(), rml_rtmp::sessions::ClientSessionError> {
    if let ClientSessionResult::OutboundResponse(p) = result? {
        wbuf.extend_from_slice(&p.bytes);
    }
    Ok(())
}

/// Feeds server bytes to the session: replies go to `wbuf`, events to `events`.
fn feed(
    session: &mut ClientSession,
    bytes: &[u8],
    wbuf: &mut Vec<u8>,
    events: &mut Vec<ClientSessionEvent>,
) -> Result<(), rml_rtmp::sessions::ClientSessionError> {
    if bytes.is_empty() {
        return Ok(());
    }
    for r in session.handle_input(bytes)? {
        match r {
            ClientSessionResult::OutboundResponse(p) => wbuf.extend_from_slice(&p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(())
}

/// Flushes pending bytes and reads until `pick` recognises an event.
async fn wait_for(
    session: &mut ClientSession,
    reader: &mut ReadHalf<'_>,
    writer: &mut WriteHalf<'_>,
    rbuf: &mut [u8],
    wbuf: &mut Vec<u8>,
    url: &str,
    mut pick: impl FnMut(&ClientSessionEvent) -> Option<Result<(), PublishError>>,
) -> Result<(), PublishError> {
    let mut events = Vec::new();
    loop {
        if !wbuf.is_empty() {
            writer
                .write_all(wbuf)
                .await
                .map_err(|source| PublishError::Io {
                    url: url.to_string(),
                    source,
                })?;
            wbuf.clear();
        }
        for e in events.drain(..) {
            if let Some(done) = pick(&e) {
                return done;
            }
        }
        let n = reader.read(rbuf).await.map_err(|source| PublishError::Io {
            url: url.to_string(),
            source,
        })?;
        if n == 0 {
            return Err(PublishError::Closed {
                url: url.to_string(),
                media_ms: 0.0,
            });
        }
        feed(session, &rbuf[..n], wbuf, &mut events).map_err(|e| PublishError::Session {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_and_key() {
        let t = RtmpTarget::parse("rtmp://127.0.0.1:1999/live/abc").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.app.as_str(),
                t.stream_key.as_str()
            ),
            ("127.0.0.1", 1999, "live", "abc")
        );
        assert_eq!(t.tc_url(), "rtmp://127.0.0.1:1999/live");
        let t = RtmpTarget::parse("rtmp://h/stream1").unwrap();
        assert_eq!(
            (t.port, t.app.as_str(), t.stream_key.as_str()),
            (1935, "stream1", "stream1")
        );
        let t = RtmpTarget::parse("rtmp://h/live/k?token=1").unwrap();
        assert_eq!(t.stream_key, "k?token=1");
    }

    #[test]
    fn refuses_bad_urls_naming_them() {
        assert!(
            matches!(RtmpTarget::parse("http://h/live/k"), Err(RtmpUrlError::Scheme { url }) if url == "http://h/live/k")
        );
        assert!(matches!(
            RtmpTarget::parse("rtmp://h/"),
            Err(RtmpUrlError::NoApp { .. })
        ));
        assert!(matches!(
            RtmpTarget::parse("not a url"),
            Err(RtmpUrlError::Invalid { .. })
        ));
    }
}
