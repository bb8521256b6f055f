//! A local AI worker speaking Livepeer ai-runner's HTTP API, standing in for a GPU runner in
//! tests so an AI probe can be exercised end to end without model weights.
//!
//! It does real CPU work for the pipelines that need no weights: `text-to-image` with a seeded
//! deterministic renderer, `image-to-image` through an FFmpeg filter graph, and `upscale` with
//! libswscale's Lanczos, and `live-video-to-video` relaying Trickle segments through a hue
//! filter (see `live.rs`). The other ai-runner routes answer 501. Faults (delay, wrong size,
//! every-Nth error, cold start) can be injected to test a probe's judgement.

mod config;
mod error;
mod filter_graph;
mod imaging;
mod live;
mod media;
mod multipart;
mod render;
mod serve;
mod server;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{AiFaults, AiWorkerConfig, LiveConfig, MediaMode, ModelIds, describe_faults};
pub use server::WorkerStats;

/// A worker that is listening.
pub struct RunningAiWorker {
    /// The address it listens on (the real port when `listen` asked for port 0).
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

/// Validates `config`, binds its address and starts serving on the current Tokio runtime.
pub async fn start(config: AiWorkerConfig) -> anyhow::Result<RunningAiWorker> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the AI worker to {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("reading the AI worker's address")?;
    let shared = Arc::new(server::Shared::new(config, addr));
    let app = server::router(shared.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve::serve(listener, app, stopped));
    tracing::info!(%addr, "AI worker listening");
    Ok(RunningAiWorker {
        addr,
        shared,
        stop: Some(stop),
        task,
    })
}

impl RunningAiWorker {
    /// Stops accepting connections and waits (at most a few seconds) for open ones to finish.
    pub async fn shutdown(mut self) {
        self.shared.stop_live();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        let _ = (&mut self.task).await;
    }

    /// What the worker has seen so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }
}

impl Drop for RunningAiWorker {
    fn drop(&mut self) {
        // Dropped without `shutdown`: don't leave a server running in the background. Aborting
        // the loop drops its JoinSet, which aborts every connection task too.
        if self.stop.is_some() {
            self.shared.stop_live();
            self.task.abort();
        }
    }
}
