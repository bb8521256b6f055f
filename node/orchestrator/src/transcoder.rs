//! The remote transcoder node (`lpt node transcoder --orchestrator URL --secret S`): registers
//! with an orchestrator, takes `NotifySegment` work, fetches each source segment, transcodes it
//! with the reference transcoder and posts the renditions back to `/transcodeResults`.
//!
//! Design: the work stream is read by one task; each segment runs as its own task in a
//! [`JoinSet`] bounded by the declared capacity, so dropping the node (or killing it in a test)
//! cancels every in-flight segment with it — exactly what the orchestrator must survive. The
//! exchange is go-livepeer's (server/ot_rpc.go), so this transcoder also works for a go
//! orchestrator: the source is a plain GET of `NotifySegment.url` (no credentials), results go
//! with `Authorization: Livepeer-Transcoder-1.0`, `Credentials: <secret>`, `TaskId` and the
//! decoded `Pixels`, one part per rendition in profile order carrying only `Content-Length`,
//! `Content-Type` and `Pixels` (sorted, as Go's multipart writer emits them), and a failure goes
//! as a `livepeer/transcoding-error` body holding the message. A `NotifySegment` without a URL
//! ends the named session, as go's orchestrator uses it.
//!
//! Two additions go-livepeer does not have, both invisible to a go orchestrator: a transcoder may
//! carry a name ([`TranscoderConfig::name`]), sent as the gRPC request metadata
//! [`TRANSCODER_NAME_METADATA`] of `RegisterTranscoder` (go ignores metadata it does not know),
//! and fault switches ([`TranscoderFaults`], see [`crate::transcoder_faults`]) make it misbehave
//! on purpose. Fault state that outlives one registration (the last completed task, which
//! `wrong_stream` answers with) belongs to the node; the count `disconnect_after` watches belongs
//! to one registration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use protocol::net::transcoder_client::TranscoderClient;
use protocol::net::video_profile::Format;
use protocol::net::{NotifySegment, RegisterRequest, VideoProfile};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Secret;
use crate::http::{
    CREDENTIALS_HEADER, PIXELS_HEADER, TASK_ID_HEADER, TRANSCODE_ERROR_TYPE, TRANSCODER_PROTOCOL,
};
use crate::multipart::{self, Part};
use crate::profiles;
use crate::transcode::{LocalTranscoders, Transcoded};
use crate::transcoder_faults::TranscoderFaults;
use protocol::client::{grpc_channel, http_client};

/// The gRPC request metadata key under which `RegisterTranscoder` carries the transcoder's name.
pub const TRANSCODER_NAME_METADATA: &str = "lpt-transcoder-name";

/// The longest transcoder name.
pub const MAX_TRANSCODER_NAME: usize = 64;

/// Checks a transcoder name: 1 to [`MAX_TRANSCODER_NAME`] characters of `[A-Za-z0-9._-]`.
pub fn check_transcoder_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= MAX_TRANSCODER_NAME,
        "transcoder name {name:?}: must be 1 to {MAX_TRANSCODER_NAME} characters"
    );
    anyhow::ensure!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
        "transcoder name {name:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"
    );
    Ok(())
}

/// A remote transcoder's settings.
#[derive(Debug, Clone)]
pub struct TranscoderConfig {
    /// Orchestrator service URI (`https://host:port`).
    pub orchestrator: String,
    /// Shared secret (`Debug` prints `<redacted>`).
    pub secret: Secret,
    /// Segments transcoded at once.
    pub capacity: usize,
    /// libx264 preset.
    pub x264_preset: String,
    /// A name sent with the registration as [`TRANSCODER_NAME_METADATA`] (checked by
    /// [`check_transcoder_name`]); none sends no metadata.
    pub name: Option<String>,
    /// Fault switches (default: honest).
    pub faults: TranscoderFaults,
}

impl TranscoderConfig {
    /// A transcoder for `orchestrator` with `secret`, capacity 1, preset `veryfast`.
    pub fn new(orchestrator: &str, secret: &str) -> Self {
        Self {
            orchestrator: orchestrator.trim_end_matches('/').to_string(),
            secret: secret.into(),
            capacity: 1,
            x264_preset: "veryfast".into(),
            name: None,
            faults: TranscoderFaults::default(),
        }
    }

    /// Checks the name and the fault switches.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(name) = &self.name {
            check_transcoder_name(name)?;
        }
        self.faults.validate()?;
        Ok(())
    }
}

/// What a transcoder keeps across its registrations.
#[derive(Debug, Default)]
struct NodeState {
    /// Segments transcoded and posted back.
    completed: AtomicU64,
    /// The last task transcoded (for the `wrong_stream` fault switch).
    previous: Mutex<Option<Transcoded>>,
}

impl NodeState {
    /// What `wrong_stream` answers a task transcoded as `done` with: the previous completed task
    /// when it has as many renditions, else `done` itself; `done` becomes the previous one.
    fn replay(&self, done: Transcoded) -> Transcoded {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        match previous.replace(done.clone()) {
            Some(old) if old.renditions.len() == done.renditions.len() => old,
            _ => done,
        }
    }
}

/// A transcoder running as a task.
#[derive(Debug)]
pub struct RunningTranscoder {
    task: JoinHandle<anyhow::Result<()>>,
    state: Arc<NodeState>,
}

impl RunningTranscoder {
    /// Segments transcoded and posted back so far.
    pub fn completed(&self) -> u64 {
        self.state.completed.load(Ordering::Relaxed)
    }

    /// Stops at once, abandoning segments in flight (as a killed process would).
    pub fn kill(self) {
        self.task.abort();
    }

    /// Waits until the session with the orchestrator ends.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("transcoder task")?
    }
}

/// Registers with the orchestrator and serves one work stream as a background task (an invalid
/// name or fault switch ends it at once with an error).
pub fn start_transcoder(config: TranscoderConfig) -> RunningTranscoder {
    let state = Arc::new(NodeState::default());
    let task = tokio::spawn(serve_stream(config, state.clone()));
    RunningTranscoder { task, state }
}

/// `lpt node transcoder`: serves the orchestrator until Ctrl-C/SIGTERM, re-registering (after a
/// second) when the stream ends; an invalid name or fault switch is an error at once.
pub async fn run_transcoder(config: TranscoderConfig) -> anyhow::Result<()> {
    config.validate()?;
    let state = Arc::new(NodeState::default());
    let work = async {
        loop {
            if let Err(err) = serve_stream(config.clone(), state.clone()).await {
                tracing::warn!(%err, "transcoder session ended; registering again");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        _ = work => Ok(()),
        _ = crate::shutdown_signal() => Ok(()),
    }
}

async fn serve_stream(config: TranscoderConfig, state: Arc<NodeState>) -> anyhow::Result<()> {
    config.validate()?;
    let channel = grpc_channel(&config.orchestrator)?;
    let mut request = tonic::Request::new(RegisterRequest {
        secret: config.secret.expose().to_string(),
        capacity: config.capacity as i64,
        capabilities: Some(crate::node::offered_capabilities().to_message()),
    });
    if let Some(name) = &config.name {
        let value = name
            .parse()
            .with_context(|| format!("transcoder name {name:?}"))?;
        request
            .metadata_mut()
            .insert(TRANSCODER_NAME_METADATA, value);
    }
    let mut stream = TranscoderClient::new(channel)
        .register_transcoder(request)
        .await
        .with_context(|| format!("registering with {}", config.orchestrator))?
        .into_inner();
    tracing::info!(
        orchestrator = %config.orchestrator,
        name = config.name.as_deref().unwrap_or(""),
        faults = ?config.faults,
        "registered as a remote transcoder"
    );
    // Tasks answered on this registration (what `disconnect_after` counts).
    let answered = Arc::new(AtomicU64::new(0));
    let http = http_client();
    let transcoders = Arc::new(LocalTranscoders::new(&config.x264_preset, 0));
    let slots = Arc::new(Semaphore::new(config.capacity.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(notify) = message.context("reading the work stream")? else {
            anyhow::bail!("the orchestrator closed the work stream");
        };
        if notify.url.is_empty() {
            if let Some(token) = notify.seg_data.as_ref().and_then(|s| s.auth_token.as_ref()) {
                tracing::info!(session = %token.session_id, "orchestrator ended a session");
                transcoders.close(&token.session_id);
            }
            continue;
        }
        let arrived = Instant::now();
        let done = answered.load(Ordering::Relaxed);
        if config.faults.disconnects_at(done) {
            // Returning drops the work stream, the channel and every task in flight at once.
            tracing::warn!(
                task = notify.task_id,
                answered = done,
                "disconnect_after fault switch: dropping the connection mid-segment"
            );
            anyhow::bail!(
                "disconnected on purpose with task {} after {done} answered tasks \
                 (disconnect_after fault switch)",
                notify.task_id
            );
        }
        let permit = slots.clone().acquire_owned().await?;
        let http = http.clone();
        let transcoders = transcoders.clone();
        let config = config.clone();
        let state = state.clone();
        let answered = answered.clone();
        tasks.spawn(async move {
            let task = notify.task_id;
            let job = Job {
                http: &http,
                transcoders: &transcoders,
                config: &config,
                state: &state,
                answered: &answered,
            };
            match job.work(notify, arrived).await {
                Ok(()) => {
                    state.completed.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => tracing::warn!(task, %err, "remote task failed"),
            }
            drop(permit);
        });
    }
}

/// What one task needs of its transcoder.
struct Job<'a> {
    http: &'a reqwest::Client,
    transcoders: &'a LocalTranscoders,
    config: &'a TranscoderConfig,
    state: &'a NodeState,
    /// Tasks answered on this registration.
    answered: &'a AtomicU64,
}

impl Job<'_> {
    /// Transcodes a task that `arrived` and posts its answer, as the fault switches say.
    async fn work(&self, notify: NotifySegment, arrived: Instant) -> anyhow::Result<()> {
        let Self { http, config, .. } = *self;
        let faults = &config.faults;
        let outcome = transcode(http, self.transcoders, faults, &notify)
            .await
            .map(|(done, types)| {
                let sent = if faults.wrong_stream {
                    self.state.replay(done)
                } else {
                    done
                };
                (result_parts(&sent, types, faults), sent.decoded_pixels)
            });
        let duration_ms = notify.seg_data.as_ref().map_or(0, |s| s.duration);
        tokio::time::sleep_until((arrived + faults.answer_after(duration_ms)).into()).await;
        // Counted as it goes, so the next task cannot arrive before it is.
        self.answered.fetch_add(1, Ordering::Relaxed);
        post(http, config, notify.task_id, &outcome).await?;
        outcome.map(drop)
    }
}

/// The result parts of `done`, one per rendition in profile order, labelled `types`.
fn result_parts(
    done: &Transcoded,
    types: Vec<&'static str>,
    faults: &TranscoderFaults,
) -> Vec<Part> {
    done.renditions
        .iter()
        .zip(types)
        .map(|(r, content_type)| Part {
            headers: vec![
                ("Content-Length".into(), r.data.len().to_string()),
                ("Content-Type".into(), content_type.into()),
                (
                    PIXELS_HEADER.into(),
                    faults.reported_pixels(r.pixels).to_string(),
                ),
            ],
            body: r.data.clone(),
        })
        .collect()
}

/// Posts a task's answer (parts and decoded pixels, or its error) to `/transcodeResults`.
async fn post(
    http: &reqwest::Client,
    config: &TranscoderConfig,
    task_id: i64,
    outcome: &anyhow::Result<(Vec<Part>, u64)>,
) -> anyhow::Result<()> {
    let request = http
        .post(format!("{}/transcodeResults", config.orchestrator))
        .header("Authorization", TRANSCODER_PROTOCOL)
        .header(CREDENTIALS_HEADER, config.secret.expose())
        .header(TASK_ID_HEADER, task_id.to_string());
    let request = match outcome {
        Ok((parts, decoded_pixels)) => {
            let (content_type, body) = multipart::encode(parts);
            request
                .header("Content-Type", content_type)
                .header(PIXELS_HEADER, decoded_pixels.to_string())
                .body(body)
        }
        Err(err) => request
            .header("Content-Type", TRANSCODE_ERROR_TYPE)
            .header(PIXELS_HEADER, "0")
            .body(format!("{err:#}")),
    };
    let response = request.send().await.context("posting results")?;
    anyhow::ensure!(
        response.status().is_success(),
        "orchestrator refused results: {}",
        response.status()
    );
    Ok(())
}

/// The MIME type go-livepeer labels a rendition part with, by the profile's output format. The
/// reference transcoder writes MPEG-TS only, so an MP4 profile is refused rather than mislabelled.
fn part_type(profile: &VideoProfile) -> anyhow::Result<&'static str> {
    match Format::try_from(profile.format) {
        Ok(Format::Mpegts) => Ok("video/mp2t"),
        Ok(Format::Mp4) => anyhow::bail!(
            "profile {:?}: MP4 output is not supported (this transcoder writes MPEG-TS)",
            profile.name
        ),
        Err(_) => anyhow::bail!(
            "profile {:?}: unknown format {}",
            profile.name,
            profile.format
        ),
    }
}

/// Transcodes a task (its ladder as the fault switches encode it); returns the renditions and
/// the MIME type of each.
async fn transcode(
    http: &reqwest::Client,
    transcoders: &LocalTranscoders,
    faults: &TranscoderFaults,
    notify: &NotifySegment,
) -> anyhow::Result<(Transcoded, Vec<&'static str>)> {
    let seg = notify
        .seg_data
        .as_ref()
        .context("NotifySegment without segData")?;
    let ladder = faults.encoded_profiles(&profiles::requested(seg)?);
    let types = protocol::sig::segment_profiles(seg)
        .iter()
        .map(part_type)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let response = http
        .get(&notify.url)
        .send()
        .await
        .context("fetching the segment")?;
    anyhow::ensure!(
        response.status().is_success(),
        "fetching the segment: {}",
        response.status()
    );
    let source: Bytes = response.bytes().await.context("fetching the segment")?;
    let session = seg
        .auth_token
        .as_ref()
        .map(|t| t.session_id.clone())
        .unwrap_or_else(|| hex::encode(&seg.manifest_id));
    let done = transcoders
        .transcode(&session, ladder, source)
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        done.renditions.len() == types.len(),
        "{} renditions for {} profiles",
        done.renditions.len(),
        types.len()
    );
    Ok((done, types))
}
