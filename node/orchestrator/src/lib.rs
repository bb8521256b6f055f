//! The orchestrator and transcoder nodes, wire-compatible with go-livepeer.
//!
//! An orchestrator ([`start`] / [`run_orchestrator`]) serves gRPC discovery and HTTP segment
//! upload on one TLS port, validates tickets and signatures with the `protocol` crate, transcodes
//! with the `reference-transcoder` crate (or hands segments to attached remote transcoders,
//! [`transcoder::start_transcoder`] / [`run_transcoder`]), stores renditions for download, bills
//! output pixels and redeems winning tickets on chain. Fault switches ([`faults`]) make it
//! misbehave on purpose so probes can prove they notice. The broadcaster's side of the same wire
//! protocol is [`protocol::client`], shared with the broadcaster node and the direct-to-orchestrator
//! probe.
//!
//! Design: the library owns everything (`start` returns a handle with the bound address and a
//! stop switch) and the `lpt node …` commands are thin wrappers that run until a signal, so tests,
//! the stack launcher and the CLI all run the same code.

pub mod auth;
pub mod config;
pub mod faults;
pub mod grpc;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod multipart;
pub mod node;
pub mod payments;
pub mod pool;
pub mod profiles;
pub mod remote;
pub mod server;
pub mod store;
pub mod tls;
pub mod transcode;
pub mod transcoder;
pub mod transcoder_faults;
pub mod verify;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use protocol::chain::{RoundsManagerClient, TicketBrokerClient, wallet_provider_with_timeout};
use protocol::net::orchestrator_server::OrchestratorServer;
use protocol::net::transcoder_server::TranscoderServer;
use protocol::sig::NodeKey;
use protocol::ticket::{ChainView, PricePerPixel, RecipientConfig, TicketRecipient};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{OrchestratorConfig, TranscodeMode};
pub use faults::{FaultConfig, Faults};
pub use server::ServeEnd;
pub use transcoder::{RunningTranscoder, TranscoderConfig, run_transcoder, start_transcoder};

/// A running orchestrator.
#[derive(Debug)]
pub struct RunningOrchestrator {
    local_addr: SocketAddr,
    node: Arc<node::Node>,
    stop: watch::Sender<bool>,
    crash: watch::Receiver<bool>,
    server: Option<JoinHandle<ServeEnd>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningOrchestrator {
    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The service URI advertised in `OrchestratorInfo` (`https://host:port`).
    pub fn service_uri(&self) -> &str {
        &self.node.service_uri
    }

    /// The node's Ethereum address (none off-chain).
    pub fn eth_address(&self) -> Option<Address> {
        self.node.address()
    }

    /// The fault switches, for in-process control (the admin endpoint does the same over HTTP).
    pub fn faults(&self) -> &Faults {
        &self.node.faults
    }

    /// Waits until the server ends (stopped or crashed by the fault switch).
    pub async fn wait(&mut self) -> ServeEnd {
        let mut crash = self.crash.clone();
        match self.server.as_mut() {
            Some(server) => {
                let end = server.await.unwrap_or(ServeEnd::Crashed);
                self.server = None;
                end
            }
            None => {
                if *crash.borrow() {
                    ServeEnd::Crashed
                } else {
                    let _ = crash.changed().await;
                    ServeEnd::Crashed
                }
            }
        }
    }

    /// Stops accepting, lets open requests finish (5 s at most) and stops background tasks.
    pub async fn shutdown(mut self) -> ServeEnd {
        let _ = self.stop.send(true);
        let end = match self.server.take() {
            Some(server) => server.await.unwrap_or(ServeEnd::Crashed),
            None => ServeEnd::Stopped,
        };
        for task in self.background.drain(..) {
            task.abort();
        }
        end
    }
}

impl Drop for RunningOrchestrator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.background {
            task.abort();
        }
    }
}

fn parse_wei(key: &str, value: &str) -> anyhow::Result<U256> {
    U256::from_str(value.trim()).with_context(|| format!("{key}: {value:?} is not an integer"))
}

fn parse_address(key: &str, value: &str) -> anyhow::Result<Address> {
    Address::from_str(value.trim()).with_context(|| format!("{key}: {value:?} is not an address"))
}

/// Starts an orchestrator: binds its port, makes its certificate, connects to its chain and
/// serves until [`RunningOrchestrator::shutdown`].
pub async fn start(config: OrchestratorConfig) -> anyhow::Result<RunningOrchestrator> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let service_uri = config
        .service_uri
        .clone()
        .unwrap_or_else(|| format!("https://{local_addr}"))
        .trim_end_matches('/')
        .to_string();
    let metrics = Arc::new(metrics::Metrics::default());
    let (stop, stop_rx) = watch::channel(false);
    let (crash_tx, crash_rx) = watch::channel(false);

    let price = PricePerPixel {
        price_per_unit: config.payments.price_per_unit,
        pixels_per_unit: config.payments.pixels_per_unit,
    };
    let (key, payments, chain_poll) = if config.offchain {
        let payments = payments::Payments::new(
            PricePerPixel::default(),
            None,
            None,
            ChainView::default(),
            1,
            metrics.clone(),
        );
        (NodeKey::OffChain, payments, None)
    } else {
        let Some(chain) = &config.chain else {
            bail!("config key chain: required unless offchain = true");
        };
        let signer = PrivateKeySigner::from_str(chain.private_key.expose().trim())
            .context("chain.private_key: not a hex secp256k1 key")?;
        let chain_timeout = Duration::from_millis(config.payments.chain_timeout_ms);
        let provider = wallet_provider_with_timeout(&chain.rpc_url, signer.clone(), chain_timeout)?;
        let broker = TicketBrokerClient::new(
            provider.clone(),
            parse_address("chain.ticket_broker", &chain.ticket_broker)?,
        );
        let rounds = RoundsManagerClient::new(
            provider,
            parse_address("chain.rounds_manager", &chain.rounds_manager)?,
        );
        let view = rounds
            .chain_view()
            .await
            .with_context(|| format!("reading the chain at {}", chain.rpc_url))?;
        let recipient_config = RecipientConfig {
            ticket_ev: parse_wei("payments.ticket_ev", &config.payments.ticket_ev)?,
            face_value: config
                .payments
                .face_value
                .as_deref()
                .map(|v| parse_wei("payments.face_value", v))
                .transpose()?,
            expiration_window: config.payments.expiration_blocks,
            max_tickets_per_payment: config.payments.max_tickets_per_payment,
            ..RecipientConfig::default()
        };
        let recipient = TicketRecipient::new(signer.address(), recipient_config);
        let mut payments = payments::Payments::new(
            price,
            Some(recipient),
            Some(payments::ChainLink { broker, rounds }),
            view,
            config.payments.redeem_attempts,
            metrics.clone(),
        )
        .with_sender_refresh(Duration::from_millis(config.payments.sender_refresh_ms))
        .with_confirmations(config.payments.confirmations)
        .with_chain_timeout(chain_timeout);
        if let Some(path) = &config.payments.ticket_journal {
            // The winners of an earlier run of this node, killed or stopped before it redeemed
            // them all.
            let found = journal::read_winners(path).with_context(|| {
                format!("payments.ticket_journal: cannot read {}", path.display())
            })?;
            for (line, reason) in &found.unreadable {
                tracing::warn!(journal = %path.display(), line, %reason, "skipping a journal line");
            }
            let queued = payments.recover(found.winners, signer.address());
            if queued > 0 {
                tracing::info!(queued, journal = %path.display(), "journaled winners queued for redemption");
            }
            let journal = journal::TicketJournal::open(path).with_context(|| {
                format!("payments.ticket_journal: cannot open {}", path.display())
            })?;
            payments = payments.with_journal(journal);
        }
        (
            NodeKey::Account(signer),
            payments,
            Some(Duration::from_millis(chain.poll_ms.max(50))),
        )
    };
    let payments = Arc::new(payments);
    let ledger = Arc::new(
        pool::PoolLedger::new(
            Duration::from_secs(config.pool.payout_window_secs),
            config.pool.ledger_file.as_deref(),
        )
        .with_context(|| {
            format!(
                "pool.ledger_file: cannot open {}",
                config
                    .pool
                    .ledger_file
                    .as_deref()
                    .unwrap_or_else(|| std::path::Path::new(""))
                    .display()
            )
        })?,
    );
    let tls = tls::self_signed_server_config(server::certificate_names(local_addr, &service_uri))?;
    let serve_limits = server::ServeLimits::from_config(&config.limits);
    let node = Arc::new(node::Node::new(
        config,
        service_uri,
        key,
        payments.clone(),
        metrics.clone(),
        ledger,
        crash_tx,
    ));

    let mut background = Vec::new();
    if let Some(poll) = chain_poll {
        background.push(tokio::spawn(payments.run_chain(
            poll,
            node.faults.clone(),
            stop_rx.clone(),
        )));
    }
    let reaper_node = node.clone();
    background.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            reaper_node.reap_idle_sessions();
        }
    }));

    let grpc = tonic::service::Routes::new(OrchestratorServer::new(grpc::OrchestratorService(
        node.clone(),
    )))
    .add_service(TranscoderServer::new(grpc::TranscoderService(node.clone())))
    .into_axum_router();
    let service = server::dispatcher(grpc, http::router(node.clone()));
    let server = tokio::spawn(server::serve(
        listener,
        Arc::new(tls),
        service,
        serve_limits,
        metrics.clone(),
        stop_rx,
        crash_rx.clone(),
    ));
    tracing::info!(%local_addr, uri = %node.service_uri, "orchestrator listening");
    Ok(RunningOrchestrator {
        local_addr,
        node,
        stop,
        crash: crash_rx,
        server: Some(server),
        background,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `lpt node orchestrator --config FILE`: runs until Ctrl-C/SIGTERM; an error when the crash fault
/// switch stopped it.
pub async fn run_orchestrator(config: OrchestratorConfig) -> anyhow::Result<()> {
    let mut running = start(config).await?;
    println!(
        "orchestrator {} listening on {}",
        running.service_uri(),
        running.local_addr()
    );
    let ended = tokio::select! {
        end = running.wait() => Some(end),
        _ = shutdown_signal() => None,
    };
    let end = match ended {
        Some(end) => end,
        None => running.shutdown().await,
    };
    match end {
        ServeEnd::Stopped => Ok(()),
        ServeEnd::Crashed => bail!("orchestrator crashed (crash_after_segments fault switch)"),
    }
}
