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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
use crate::transcode::LocalTranscoders;
use protocol::client::{grpc_channel, http_client};

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
}

impl TranscoderConfig {
    /// A transcoder for `orchestrator` with `secret`, capacity 1, preset `veryfast`.
    pub fn new(orchestrator: &str, secret: &str) -> Self {
        Self {
            orchestrator: orchestrator.trim_end_matches('/').to_string(),
            secret: secret.into(),
            capacity: 1,
            x264_preset: "veryfast".into(),
        }
    }
}

/// A transcoder running as a task.
#[derive(Debug)]
pub struct RunningTranscoder {
    task: JoinHandle<anyhow::Result<()>>,
    completed: Arc<AtomicU64>,
}

impl RunningTranscoder {
    /// Segments transcoded and posted back so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
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

/// Registers with the orchestrator and serves one work stream as a background task.
pub fn start_transcoder(config: TranscoderConfig) -> RunningTranscoder {
    let completed = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(serve_stream(config, completed.clone()));
    RunningTranscoder { task, completed }
}

/// `lpt node transcoder`: serves the orchestrator until Ctrl-C/SIGTERM, re-registering (after a
/// second) when the stream ends.
pub async fn run_transcoder(config: TranscoderConfig) -> anyhow::Result<()> {
    let completed = Arc::new(AtomicU64::new(0));
    let work = async {
        loop {
            if let Err(err) = serve_stream(config.clone(), completed.clone()).await {
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

async fn serve_stream(config: TranscoderConfig, completed: Arc<AtomicU64>) -> anyhow::Result<()> {
    let channel = grpc_channel(&config.orchestrator)?;
    let mut stream = TranscoderClient::new(channel)
        .register_transcoder(RegisterRequest {
            secret: config.secret.expose().to_string(),
            capacity: config.capacity as i64,
            capabilities: Some(crate::node::offered_capabilities().to_message()),
        })
        .await
        .with_context(|| format!("registering with {}", config.orchestrator))?
        .into_inner();
    tracing::info!(orchestrator = %config.orchestrator, "registered as a remote transcoder");
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
        let permit = slots.clone().acquire_owned().await?;
        let http = http.clone();
        let transcoders = transcoders.clone();
        let config = config.clone();
        let completed = completed.clone();
        tasks.spawn(async move {
            let task = notify.task_id;
            match work(&http, &transcoders, &config, notify).await {
                Ok(()) => {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => tracing::warn!(task, %err, "remote task failed"),
            }
            drop(permit);
        });
    }
}

async fn work(
    http: &reqwest::Client,
    transcoders: &LocalTranscoders,
    config: &TranscoderConfig,
    notify: NotifySegment,
) -> anyhow::Result<()> {
    let outcome = transcode(http, transcoders, &notify).await;
    let request = http
        .post(format!("{}/transcodeResults", config.orchestrator))
        .header("Authorization", TRANSCODER_PROTOCOL)
        .header(CREDENTIALS_HEADER, config.secret.expose())
        .header(TASK_ID_HEADER, notify.task_id.to_string());
    let request = match &outcome {
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
    outcome.map(drop)
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

/// Transcodes a task; returns the result parts and the decoded pixels.
async fn transcode(
    http: &reqwest::Client,
    transcoders: &LocalTranscoders,
    notify: &NotifySegment,
) -> anyhow::Result<(Vec<Part>, u64)> {
    let seg = notify
        .seg_data
        .as_ref()
        .context("NotifySegment without segData")?;
    let ladder = profiles::requested(seg)?;
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
    let parts = done
        .renditions
        .into_iter()
        .zip(types)
        .map(|(r, content_type)| Part {
            headers: vec![
                ("Content-Length".into(), r.data.len().to_string()),
                ("Content-Type".into(), content_type.into()),
                (PIXELS_HEADER.into(), r.pixels.to_string()),
            ],
            body: r.data,
        })
        .collect();
    Ok((parts, done.decoded_pixels))
}
