//! `lpt node …`: run one node of the stack in the foreground.
//!
//! Each command starts its node from a config file, then prints exactly one JSON line on stdout,
//! `{"event":"ready", …}`, naming the addresses it bound (ports may be 0 in the config, so only
//! the node knows them). The embedded stack launcher waits for that line; people read the same
//! facts in the log on stderr. The node runs until Ctrl-C or SIGTERM.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use tracing::info;

/// Prints the ready line and flushes it at once (stdout is a pipe under the launcher).
pub fn announce_ready(ready: serde_json::Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}").context("cannot write the ready line")?;
    stdout.flush().context("cannot flush the ready line")
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is made. Make it before announcing
/// readiness: whoever reads the announcement may send the stop at once, and a signal that comes
/// before its handler is installed takes the default action, killing the process uncleanly.
pub struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// Until Ctrl-C or SIGTERM.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

pub async fn broadcaster(config_path: &Path) -> anyhow::Result<()> {
    let config = node_broadcaster::BroadcasterConfig::load(config_path)
        .with_context(|| format!("broadcaster config {}", config_path.display()))?;
    let running = node_broadcaster::start(config).await?;
    let stop = StopSignals::install()?;
    info!(rtmp = %running.rtmp_addr, http = %running.http_addr, "broadcaster ready");
    announce_ready(json!({
        "event": "ready",
        "role": "broadcaster",
        "rtmp_url": format!("rtmp://{}/live/{{stream}}", running.rtmp_addr),
        "playback_url": format!("http://{}/stream/{{stream}}.m3u8", running.http_addr),
        "status_url": format!("http://{}/status", running.http_addr),
        "eth_address": running.eth_address.map(|a| a.to_string()),
    }))?;
    stop.wait().await;
    running.shutdown().await;
    Ok(())
}

/// Runs an orchestrator on a runtime of the size its config asks for (`io_threads`).
pub fn orchestrator(config_path: &Path) -> anyhow::Result<()> {
    let config = node_orchestrator::OrchestratorConfig::from_file(config_path)
        .with_context(|| format!("orchestrator config {}", config_path.display()))?;
    let runtime = config
        .runtime()
        .context("cannot start the orchestrator's runtime")?;
    runtime.block_on(run_orchestrator(config))
}

async fn run_orchestrator(config: node_orchestrator::OrchestratorConfig) -> anyhow::Result<()> {
    let mut running = node_orchestrator::start(config).await?;
    let stop = StopSignals::install()?;
    info!(service_uri = running.service_uri(), "orchestrator ready");
    announce_ready(json!({
        "event": "ready",
        "role": "orchestrator",
        "service_uri": running.service_uri(),
        "eth_address": running.eth_address().map(|a| a.to_string()),
    }))?;
    let ended = tokio::select! {
        end = running.wait() => end,
        () = stop.wait() => running.shutdown().await,
    };
    match ended {
        node_orchestrator::ServeEnd::Stopped => Ok(()),
        node_orchestrator::ServeEnd::Crashed => {
            anyhow::bail!("orchestrator crashed (crash_after_segments fault switch)")
        }
    }
}

pub async fn transcoder(
    orchestrator: &str,
    secret_env: &str,
    capacity: usize,
) -> anyhow::Result<()> {
    let secret = std::env::var(secret_env).with_context(|| {
        format!("the transcoder secret is read from ${secret_env}, which is not set")
    })?;
    reference_transcoder::tune_allocator_for_transcoding();
    let config = node_orchestrator::TranscoderConfig {
        capacity,
        ..node_orchestrator::TranscoderConfig::new(orchestrator, &secret)
    };
    let stop = StopSignals::install()?;
    announce_ready(
        json!({ "event": "ready", "role": "transcoder", "orchestrator": orchestrator }),
    )?;
    tokio::select! {
        result = node_orchestrator::run_transcoder(config) => result,
        () = stop.wait() => Ok(()),
    }
}
