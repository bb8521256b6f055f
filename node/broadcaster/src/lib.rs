//! The broadcaster node: RTMP ingest, segmenter, orchestrator sessions with payments, HLS output.
//!
//! [`start`] binds the RTMP and HTTP listeners (port 0 picks free ports, reported in
//! [`RunningBroadcaster`]), discovers the configured orchestrators and serves until
//! [`RunningBroadcaster::shutdown`]; [`run_broadcaster`] does the same until Ctrl-C or SIGTERM, for
//! `lpt node broadcaster --config FILE`. The pipeline per stream is
//! [`rtmp`] → [`flv`] → [`segmenter`] (→ [`ts`]) → [`stream`] → [`orch`] → [`hls`], with
//! [`records`] observing every segment for `/status` and `/metrics` ([`http`]).
//!
//! Publish to `rtmp://HOST:PORT/<manifestID>` or `rtmp://HOST:PORT/<app>/<manifestID>` (any app
//! name, e.g. `live`); play `http://HOST:HTTP_PORT/stream/<manifestID>.m3u8`.

mod accept;
pub mod config;
pub mod flv;
pub mod hls;
pub mod http;
pub mod orch;
pub mod records;
pub mod rtmp;
pub mod segmenter;
pub mod sps;
pub mod store;
pub mod stream;
pub mod ts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use protocol::sig::NodeKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{BroadcasterConfig, ConfigError, PaymentConfig};
pub use records::{Attempt, SourceSegmentRecord};
pub use stream::Broadcaster;

/// A broadcaster serving in the background.
pub struct RunningBroadcaster {
    /// Bound RTMP address.
    pub rtmp_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// The broadcaster's address when it pays with tickets.
    pub eth_address: Option<protocol::Address>,
    state: Arc<Broadcaster>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningBroadcaster {
    /// `rtmp://ADDR/live/<manifest_id>`.
    pub fn rtmp_url(&self, manifest_id: &str) -> String {
        format!("rtmp://{}/live/{manifest_id}", self.rtmp_addr)
    }

    /// `http://ADDR/stream/<manifest_id>.m3u8`.
    pub fn master_url(&self, manifest_id: &str) -> String {
        format!("http://{}/stream/{manifest_id}.m3u8", self.http_addr)
    }

    /// Shared state (streams, records), for embedding and tests.
    pub fn state(&self) -> &Arc<Broadcaster> {
        &self.state
    }

    /// Stops listening, ends every connection and waits for the servers to exit.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningBroadcaster {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.state.store().remove_all();
    }
}

/// Starts a broadcaster from `config`.
pub async fn start(config: BroadcasterConfig) -> anyhow::Result<RunningBroadcaster> {
    config.validate()?;
    let profiles = config.profiles()?;
    let mut tasks = Vec::new();
    let (key, payer) = match &config.payment.eth_url {
        Some(url) => {
            let signer = protocol::key::load_signer(&config.payment.key_source()?)
                .map_err(|e| config::ConfigError::Key(e.to_string()))?;
            let broker = config
                .payment
                .ticket_broker
                .as_deref()
                .unwrap_or_default()
                .parse()
                .context("payment.ticket_broker")?;
            let payer = orch::Payer::connect(
                url,
                broker,
                signer.clone(),
                config.payment.fee_margin.unwrap_or(1.2),
                config
                    .payment
                    .max_tickets_per_segment
                    .unwrap_or(protocol::ticket::DEFAULT_SENDER_MAX_TICKETS),
            )
            .await
            .with_context(|| format!("connecting to the chain at {url}"))?;
            let payer = Arc::new(payer);
            let refresher = payer.clone();
            tasks.push(tokio::spawn(async move {
                refresher.refresh_forever(Duration::from_millis(500)).await
            }));
            (NodeKey::Account(signer), Some(payer))
        }
        None => (NodeKey::OffChain, None),
    };
    let eth_address = key.address();
    let max_price = config
        .max_price_per_unit
        .map(|m| (m, config.pixels_per_unit));
    let pool = orch::OrchestratorPool::new(
        &config.orchestrators,
        key,
        max_price,
        Duration::from_secs(config.failure_cooldown_secs),
        config.rendition_fetch.clone(),
    );
    let rtmp = TcpListener::bind(config.rtmp_addr)
        .await
        .with_context(|| format!("binding RTMP {}", config.rtmp_addr))?;
    let http = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP {}", config.http_addr))?;
    let (rtmp_addr, http_addr) = (rtmp.local_addr()?, http.local_addr()?);
    let store = match &config.hls_dir {
        Some(dir) => store::SegmentStore::files(dir)
            .with_context(|| format!("cannot use hls_dir {}", dir.display()))?,
        None => store::SegmentStore::memory(),
    };
    let stream_keys = match &config.stream_keys_file {
        Some(path) => config::load_stream_keys(path)?,
        None => Vec::new(),
    };
    let state = Broadcaster::new(config, profiles, pool.clone(), payer, store, stream_keys);
    let (shutdown, rx) = watch::channel(false);
    tasks.push(tokio::spawn(rtmp::serve(rtmp, state.clone(), rx.clone())));
    tasks.push(tokio::spawn(http::serve(http, state.clone(), rx.clone())));
    let janitor = state.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            janitor.forget_ended();
        }
    }));
    tasks.push(tokio::spawn(async move { pool.discover_due().await }));
    tracing::info!("broadcaster: RTMP on {rtmp_addr}, HTTP on {http_addr}");
    Ok(RunningBroadcaster {
        rtmp_addr,
        http_addr,
        eth_address,
        state,
        shutdown,
        tasks,
    })
}

/// Runs a broadcaster until Ctrl-C or SIGTERM.
pub async fn run_broadcaster(config: BroadcasterConfig) -> anyhow::Result<()> {
    let running = start(config).await?;
    println!(
        "broadcaster ready: rtmp://{}/<manifestID>  http://{}/stream/<manifestID>.m3u8",
        running.rtmp_addr, running.http_addr
    );
    wait_for_signal().await?;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
