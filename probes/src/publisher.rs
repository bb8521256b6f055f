//! The RTMP publisher probe: one TCP connection at a time per stream, replaying the shared source
//! in real time with shifted timestamps, logging when every video frame went out.
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
//!
//! A connection lost mid-stream (reset, end of stream, failed write) is made again as OBS makes
//! it, not given up as ffmpeg does: the same URL and stream key after a pause that doubles from
//! `reconnect_backoff` to `reconnect_max_backoff`, until the stream's end. The timeline goes on
//! from where the wall clock is then, at the next key frame: what fell due while disconnected is
//! never sent, and every frame's timestamp and logged send time stay its true media time, which
//! latency is measured from. Each reconnect is reported (`Disconnected`, then `Reconnected` with
//! the outage's length).

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
use crate::replay::{ReplayPacket, ReplaySource};
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
    /// After the connection drops mid-stream, the pause before the first new attempt; it
    /// doubles after every failed attempt up to `reconnect_max_backoff`, and attempts go on
    /// until the stream's end.
    pub reconnect_backoff: Duration,
    pub reconnect_max_backoff: Duration,
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
            reconnect_backoff: Duration::from_millis(250),
            reconnect_max_backoff: Duration::from_secs(2),
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
    #[error(
        "the connection to {url} was lost after {media_ms:.0} ms of media and not made again by the stream's end ({attempts} attempts; last: {last})"
    )]
    Lost {
        url: String,
        media_ms: f64,
        attempts: u32,
        last: String,
    },
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
    /// Times the connection was lost and made again.
    pub reconnects: u64,
    /// Time without a connection, over every reconnect.
    pub disconnected_ms: f64,
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
    /// `Progress` per interval, a `Disconnected` and a `Reconnected` around every time the
    /// connection was lost and found again, and a final `Finished` or `Failed`.
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
        let mut io = Buffers {
            read: vec![0u8; 16 * 1024],
            write: Vec::with_capacity(64 * 1024),
            positions: Vec::with_capacity(64),
        };
        // The first connection's failures are final: there is no stream to resume yet.
        let setup_deadline = tokio::time::Instant::now() + self.options.setup_timeout;
        let mut conn = self.open(setup_deadline, &mut io).await?;
        self.start_media(&mut conn, 0, &mut io.write)?;
        let timeline = Timeline::new(
            &self.source,
            self.options.start_frame,
            self.options.duration,
        );
        let mut cursor = timeline.first();
        let start = Instant::now();
        state.started(now_unix_ms());
        progress(&state.observation(PublishPhase::Started, None));
        loop {
            let lost = match self
                .send(
                    &mut conn,
                    &timeline,
                    &mut cursor,
                    start,
                    state,
                    progress,
                    &mut io,
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(e @ PublishError::TooSlow { .. }) => return Err(e),
                Err(e) => e,
            };
            let down = Instant::now();
            drop(conn);
            // What was queued never went out: its frames are not logged as sent.
            io.write.clear();
            io.positions.clear();
            progress(&state.observation(PublishPhase::Disconnected, Some(lost.to_string())));
            let end = start + self.options.duration;
            conn = self.reconnect(lost, end, state, &mut io).await?;
            // Media picks up where the wall clock is now, stamped with the time it is sent at,
            // so timestamps go on rising by the time that passed.
            let now_ms = start.elapsed().as_secs_f64() * 1000.0;
            cursor = timeline.resume_at(cursor, now_ms);
            state.loops = cursor.pass;
            self.start_media(&mut conn, timeline.ts(cursor).round() as u32, &mut io.write)?;
            let outage = down.elapsed().as_secs_f64() * 1000.0;
            state.reconnected(outage);
            progress(&state.observation(PublishPhase::Reconnected, None));
        }
    }

    /// Opens a new connection after `lost` ended the last one: an attempt after a pause that
    /// starts at `reconnect_backoff` and doubles up to `reconnect_max_backoff`, as OBS retries
    /// (ffmpeg does not retry at all), until `end`.
    async fn reconnect(
        &self,
        lost: PublishError,
        end: Instant,
        state: &SendState,
        io: &mut Buffers,
    ) -> Result<Connection, PublishError> {
        let mut pause = self.options.reconnect_backoff;
        let mut last = lost.to_string();
        let mut attempts = 0u32;
        loop {
            let wake = (Instant::now() + pause).min(end);
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
            if Instant::now() >= end {
                return Err(PublishError::Lost {
                    url: self.target.url.clone(),
                    media_ms: state.media_ms,
                    attempts,
                    last,
                });
            }
            attempts += 1;
            let deadline = (Instant::now() + self.options.setup_timeout).min(end);
            match self
                .open(tokio::time::Instant::from_std(deadline), io)
                .await
            {
                Ok(conn) => return Ok(conn),
                Err(e) => last = e.to_string(),
            }
            io.write.clear();
            pause = (pause * 2).min(self.options.reconnect_max_backoff.max(pause));
        }
    }

    /// Connects and sets up a publishing session: TCP connect, handshake, `connect`,
    /// `createStream` and `publish` accepted, all within `setup_deadline`.
    async fn open(
        &self,
        setup_deadline: tokio::time::Instant,
        io: &mut Buffers,
    ) -> Result<Connection, PublishError> {
        let url = self.target.url.clone();
        let addr = format!("{}:{}", self.target.host, self.target.port);
        let stage = "tcp connect";
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
        let sess = |e: rml_rtmp::sessions::ClientSessionError| PublishError::Session {
            url: url.clone(),
            reason: e.to_string(),
        };
        let rbuf = &mut io.read;
        let wbuf = &mut io.write;

        let stage = "handshake";
        let leftover = tokio::time::timeout_at(
            setup_deadline,
            handshake(&mut reader, &mut writer, rbuf, &url),
        )
        .await
        .map_err(|_| timeout_err(stage))??;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(self.target.tc_url());
        config.chunk_size = chunk::CHUNK_SIZE as u32;
        config.flash_version = "FMLE/3.0 (compatible; lpt)".into();
        let (mut session, _) = ClientSession::new(config).map_err(sess)?;

        let setup = async {
            let mut events = Vec::new();
            feed(&mut session, &leftover, wbuf, &mut events).map_err(sess)?;
            push(session.request_connection(self.target.app.clone()), wbuf).map_err(sess)?;
            // The server's answer to what was just pushed.
            macro_rules! answer {
                ($pick:expr) => {
                    wait_for(
                        &mut session,
                        &mut reader,
                        &mut writer,
                        rbuf,
                        wbuf,
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
                wbuf,
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
        Ok(Connection {
            stream,
            session,
            msid: 0,
        })
    }

    /// Queues the stream's metadata and sequence headers, stamped `at_ms`, and learns the
    /// message stream id the media chunks go on.
    fn start_media(
        &self,
        conn: &mut Connection,
        at_ms: u32,
        wbuf: &mut Vec<u8>,
    ) -> Result<(), PublishError> {
        let url = &self.target.url;
        let sess = |e: rml_rtmp::sessions::ClientSessionError| PublishError::Session {
            url: url.clone(),
            reason: e.to_string(),
        };
        let session = &mut conn.session;
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
        push(session.publish_metadata(&metadata), wbuf).map_err(sess)?;
        // The session serialises the video sequence header with a full chunk header, which is
        // where the stream id from createStream can be read for the media chunks written later.
        let header = session
            .publish_video_data(
                source.video_header.clone(),
                RtmpTimestamp::new(at_ms),
                false,
            )
            .map_err(sess)?;
        let ClientSessionResult::OutboundResponse(header) = header else {
            return Err(PublishError::Session {
                url: url.clone(),
                reason: "the session produced no video header packet".into(),
            });
        };
        conn.msid = chunk::message_stream_id_of_full_chunk(&header.bytes).ok_or_else(|| {
            PublishError::Session {
                url: url.clone(),
                reason: "cannot read the message stream id of the video header".into(),
            }
        })?;
        wbuf.extend_from_slice(&header.bytes);
        if let Some(audio) = &source.audio_header {
            push(
                session.publish_audio_data(audio.clone(), RtmpTimestamp::new(at_ms), false),
                wbuf,
            )
            .map_err(sess)?;
        }
        Ok(())
    }

    /// Sends the timeline from `cursor` on, each packet when it is due (media time from
    /// `start`), until the stream's end (`Ok`, the publish stopped cleanly) or until the
    /// connection fails (`cursor` is then the first packet not sent).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        conn: &mut Connection,
        timeline: &Timeline<'_>,
        cursor: &mut Cursor,
        start: Instant,
        state: &mut SendState,
        progress: &mut (dyn FnMut(&PublishObservation) + Send),
        io: &mut Buffers,
    ) -> Result<(), PublishError> {
        let url = &self.target.url;
        let io_err = |source| PublishError::Io {
            url: url.clone(),
            source,
        };
        let sess = |e: rml_rtmp::sessions::ClientSessionError| PublishError::Session {
            url: url.clone(),
            reason: e.to_string(),
        };
        let msid = conn.msid;
        let session = &mut conn.session;
        let (mut reader, mut writer) = conn.stream.split();
        let Buffers {
            read: rbuf,
            write: wbuf,
            positions,
        } = io;
        let max_lag_ms = self.options.max_lag.as_secs_f64() * 1000.0;
        let ahead = self.options.send_ahead;
        let mut next_progress = Instant::now() + self.options.progress_interval;
        loop {
            let ts = timeline.ts(*cursor);
            if ts >= timeline.duration_ms {
                break;
            }
            let now = Instant::now();
            let due = start + Duration::from_secs_f64(ts / 1000.0);
            if due > now + ahead {
                if !wbuf.is_empty() {
                    writer.write_all(wbuf).await.map_err(io_err)?;
                    state.bytes_sent += wbuf.len() as u64;
                    wbuf.clear();
                    self.log.record(positions, now_unix_ms());
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
                    read = reader.read(rbuf) => {
                        let n = read.map_err(io_err)?;
                        if n == 0 {
                            return Err(PublishError::Closed { url: url.clone(), media_ms: state.media_ms });
                        }
                        let mut events = Vec::new();
                        feed(session, &rbuf[..n], wbuf, &mut events).map_err(sess)?;
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
            let packet = &timeline.packets[cursor.index];
            let timestamp = ts.round() as u32;
            match packet.kind {
                MediaKind::Video => {
                    if let Some(frame) = packet.frame {
                        positions.push(self.log.position(cursor.pass, frame));
                        state.frames_sent += 1;
                    }
                    chunk::write_message(
                        wbuf,
                        chunk::VIDEO_CSID,
                        chunk::VIDEO_TYPE,
                        timestamp,
                        msid,
                        &packet.body,
                    );
                }
                MediaKind::Audio => chunk::write_message(
                    wbuf,
                    chunk::AUDIO_CSID,
                    chunk::AUDIO_TYPE,
                    timestamp,
                    msid,
                    &packet.body,
                ),
            }
            state.packets_sent += 1;
            state.media_ms = ts;
            *cursor = timeline.next(*cursor);
            state.loops = cursor.pass;
            // Bound the batch so a stream that is far behind still flushes regularly.
            if wbuf.len() >= 256 * 1024 {
                writer.write_all(wbuf).await.map_err(io_err)?;
                state.bytes_sent += wbuf.len() as u64;
                wbuf.clear();
                self.log.record(positions, now_unix_ms());
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
            writer.write_all(wbuf).await.map_err(io_err)?;
            state.bytes_sent += wbuf.len() as u64;
            wbuf.clear();
            self.log.record(positions, now_unix_ms());
            positions.clear();
        }
        let _ = writer.shutdown().await;
        Ok(())
    }
}

/// The buffers a publisher reuses across packets and connections.
struct Buffers {
    read: Vec<u8>,
    write: Vec<u8>,
    /// Send-log positions of the frames queued in `write`.
    positions: Vec<u64>,
}

/// One connection, publishing.
struct Connection {
    stream: TcpStream,
    session: ClientSession,
    /// The message stream id `createStream` gave, which media chunks go on.
    msid: u32,
}

/// The looped clip as one stream sends it: the packet at a [`Cursor`] goes out at media time
/// [`Timeline::ts`], milliseconds from the stream's start.
struct Timeline<'a> {
    packets: &'a [ReplayPacket],
    loop_ms: f64,
    /// The packet the stream starts at (a key frame), where every pass starts.
    start_index: usize,
    base_dts: f64,
    duration_ms: f64,
}

/// A packet of the timeline: index into the clip's packets and the pass over the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    index: usize,
    pass: u64,
}

impl<'a> Timeline<'a> {
    fn new(source: &'a ReplaySource, start_frame: u32, duration: Duration) -> Self {
        let (start_index, _) = source.start_point(start_frame);
        Timeline {
            packets: &source.packets,
            loop_ms: source.loop_ms,
            start_index,
            base_dts: source.packets[start_index].dts_ms as f64,
            duration_ms: duration.as_secs_f64() * 1000.0,
        }
    }

    fn first(&self) -> Cursor {
        Cursor {
            index: self.start_index,
            pass: 0,
        }
    }

    /// Media time of the packet at `c`: its decode timestamp rotated to the stream's start,
    /// plus the passes before it.
    fn ts(&self, c: Cursor) -> f64 {
        let d = self.packets[c.index].dts_ms as f64 - self.base_dts;
        let d = if d < 0.0 { d + self.loop_ms } else { d };
        d + c.pass as f64 * self.loop_ms
    }

    fn next(&self, c: Cursor) -> Cursor {
        let index = (c.index + 1) % self.packets.len();
        let pass = c.pass + (index == self.start_index) as u64;
        Cursor { index, pass }
    }

    /// The first video key frame at or after media time `at_ms`, from `c` on (or the first
    /// packet past the end): where a publisher that lost its connection picks the timeline up
    /// again. As OBS does, it neither sends late what fell due while it was away nor starts
    /// mid-GOP, where a decoder could not start.
    fn resume_at(&self, mut c: Cursor, at_ms: f64) -> Cursor {
        loop {
            let ts = self.ts(c);
            let packet = &self.packets[c.index];
            if ts >= self.duration_ms
                || (ts >= at_ms && packet.kind == MediaKind::Video && packet.is_key)
            {
                return c;
            }
            c = self.next(c);
        }
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
    reconnects: u64,
    disconnected_ms: f64,
    /// The outage that the latest reconnect ended.
    outage_ms: Option<f64>,
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
            reconnects: 0,
            disconnected_ms: 0.0,
            outage_ms: None,
        }
    }

    fn reconnected(&mut self, outage_ms: f64) {
        self.reconnects += 1;
        self.disconnected_ms += outage_ms;
        self.outage_ms = Some(outage_ms);
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
            reconnects: self.reconnects,
            disconnected_ms: self.disconnected_ms,
            outage_ms: (phase == PublishPhase::Reconnected)
                .then_some(self.outage_ms)
                .flatten(),
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
            reconnects: self.reconnects,
            disconnected_ms: self.disconnected_ms,
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

    /// A clip of `gops` GOPs of three 100 ms frames, with an audio packet after each key frame.
    fn clip(gops: u32) -> ReplaySource {
        let mut packets = Vec::new();
        for frame in 0..gops * 3 {
            let is_key = frame % 3 == 0;
            let video = ReplayPacket {
                kind: MediaKind::Video,
                dts_ms: frame * 100,
                is_key,
                body: bytes::Bytes::new(),
                frame: Some(frame),
            };
            packets.push(video);
            if is_key {
                packets.push(ReplayPacket {
                    kind: MediaKind::Audio,
                    dts_ms: frame * 100 + 10,
                    is_key: false,
                    body: bytes::Bytes::new(),
                    frame: None,
                });
            }
        }
        ReplaySource {
            format: reference_transcoder::VideoFormat {
                width: 64,
                height: 64,
                fps_num: 10,
                fps_den: 1,
                gop_frames: 3,
                stream_id: 1,
            },
            clip_frames: gops * 3,
            loop_ms: f64::from(gops * 300),
            bytes_per_loop: 0,
            video_header: bytes::Bytes::new(),
            audio_header: None,
            packets,
        }
    }

    #[test]
    fn a_resumed_timeline_starts_at_the_next_key_frame_due_and_stamps_go_on_rising() {
        let source = clip(3);
        // Starting at frame 3: media time 0 is frame 3, the clip loops every 900 ms.
        let timeline = Timeline::new(&source, 3, Duration::from_millis(2500));
        let first = timeline.first();
        assert_eq!(source.packets[first.index].frame, Some(3));
        let frame_at = |c: Cursor| (source.packets[c.index].frame, c.pass, timeline.ts(c));
        // Lost 350 ms in: frames due then are skipped up to the key frame at 600 ms (frame 0 of
        // the clip's next pass round, the stream's third GOP).
        let resumed = timeline.resume_at(timeline.next(first), 350.0);
        assert_eq!(frame_at(resumed), (Some(0), 0, 600.0));
        // Exactly on a key frame's time: that one.
        assert_eq!(
            frame_at(timeline.resume_at(first, 300.0)),
            (Some(6), 0, 300.0)
        );
        // Over a pass boundary: the stream's passes go on counting.
        assert_eq!(
            frame_at(timeline.resume_at(first, 1000.0)),
            (Some(6), 1, 1200.0)
        );
        // Past the end: a cursor whose time is the end or later, so sending stops at once.
        let after = timeline.resume_at(first, 5000.0);
        assert!(timeline.ts(after) >= 2500.0);
        // Media time only rises, also across the clip's loop.
        let mut c = first;
        let mut last = -1.0;
        while timeline.ts(c) < 2500.0 {
            assert!(timeline.ts(c) > last, "{c:?}");
            last = timeline.ts(c);
            c = timeline.next(c);
        }
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
