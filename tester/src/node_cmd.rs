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

/// Runs the local AI worker from its config file (every default without one).
pub async fn ai_worker(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = match config_path {
        Some(path) => node_ai_worker::AiWorkerConfig::from_file(path)
            .with_context(|| format!("AI worker config {}", path.display()))?,
        None => node_ai_worker::AiWorkerConfig::default(),
    };
    let running = node_ai_worker::start(config).await?;
    let stop = StopSignals::install()?;
    info!(http = %running.addr, "AI worker ready");
    announce_ready(json!({
        "event": "ready",
        "role": "ai-worker",
        "url": format!("http://{}", running.addr),
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

/// What `lpt node transcoder` was given.
#[derive(Debug, Clone, Copy)]
pub struct TranscoderArgs<'a> {
    /// The orchestrator's service URI.
    pub orchestrator: &'a str,
    /// The environment variable holding the shared secret.
    pub secret_env: &'a str,
    /// Segments transcoded at once.
    pub capacity: usize,
    /// The name sent with the registration.
    pub name: Option<&'a str>,
    /// Fault switches as a JSON object (`TranscoderFaults`).
    pub faults: Option<&'a str>,
}

/// The transcoder's settings from its arguments and secret; a bad name or fault switch is an
/// error naming it.
pub fn transcoder_config(
    args: TranscoderArgs<'_>,
    secret: &str,
) -> anyhow::Result<node_orchestrator::TranscoderConfig> {
    let faults = match args.faults {
        Some(json) => node_orchestrator::transcoder_faults::TranscoderFaults::from_json(json)
            .context("--faults")?,
        None => Default::default(),
    };
    let config = node_orchestrator::TranscoderConfig {
        capacity: args.capacity,
        name: args.name.map(str::to_string),
        faults,
        ..node_orchestrator::TranscoderConfig::new(args.orchestrator, secret)
    };
    config.validate()?;
    Ok(config)
}

pub async fn transcoder(args: TranscoderArgs<'_>) -> anyhow::Result<()> {
    let secret_env = args.secret_env;
    let secret = std::env::var(secret_env).with_context(|| {
        format!("the transcoder secret is read from ${secret_env}, which is not set")
    })?;
    let config = transcoder_config(args, &secret)?;
    if config.faults.any() {
        tracing::warn!(faults = ?config.faults, "fault switches on: this transcoder misbehaves on purpose");
    }
    reference_transcoder::tune_allocator_for_transcoding();
    let stop = StopSignals::install()?;
    announce_ready(json!({
        "event": "ready",
        "role": "transcoder",
        "orchestrator": args.orchestrator,
        "name": config.name,
    }))?;
    tokio::select! {
        result = node_orchestrator::run_transcoder(config) => result,
        () = stop.wait() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: Option<&'static str>, faults: Option<&'static str>) -> TranscoderArgs<'static> {
        TranscoderArgs {
            orchestrator: "https://127.0.0.1:8935",
            secret_env: "LPT_TRANSCODER_SECRET",
            capacity: 2,
            name,
            faults,
        }
    }

    #[test]
    fn transcoder_flags_make_its_config() {
        let config = transcoder_config(
            args(Some("gpu-box.1"), Some(r#"{"inflate_pixels": 3.0}"#)),
            "s",
        )
        .unwrap();
        assert_eq!(config.capacity, 2);
        assert_eq!(config.name.as_deref(), Some("gpu-box.1"));
        assert_eq!(config.faults.inflate_pixels, 3.0);
        let honest = transcoder_config(args(None, None), "s").unwrap();
        assert!(honest.name.is_none() && !honest.faults.any());
    }

    #[test]
    fn bad_transcoder_flags_are_refused_by_name() {
        for (name, faults, needle) in [
            (None, Some(r#"{"inflate_pixels": 0.5}"#), "inflate_pixels"),
            (None, Some(r#"{"slow": true}"#), "slow"),
            (Some("no spaces"), None, "no spaces"),
        ] {
            let err = format!(
                "{:#}",
                transcoder_config(args(name, faults), "s").unwrap_err()
            );
            assert!(err.contains(needle), "{err}");
        }
    }
}
