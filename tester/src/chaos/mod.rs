//! The chaos timeline: a scenario's `[[chaos]]` events carried out against the embedded stack
//! while the workloads run, and what each one cost measured afterwards.
//!
//! Every occurrence is a real failure of the stack's processes or of the chain RPC they use: a
//! node is SIGKILLed (and started again from the same config for a restart), the nodes' gate to
//! the chain holds every connection silent for an outage, anvil drops its last blocks for a
//! reorg. Nothing in our nodes is told. Each occurrence becomes a `chaos` journal record with
//! when it started and ended; after the workloads, [`recovery`] reads the streams' segments and
//! [`redemptions`] the orchestrators' winning tickets and the chain to measure what it cost, as
//! `recovery` records tagged with the occurrence's label.

pub mod recovery;
pub mod redemptions;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use observation::record::ChaosRecord;
use probes::clock::now_unix_ms;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::scenario::{ChaosAction, ChaosEvent, StackNode};
use crate::stack::EmbeddedStack;
use recovery::Occurrence;

/// How long a reorg waits for a redemption to land so that it can drop it.
const REORG_WAIT: Duration = Duration::from_secs(90);
/// How often a reorg looks for a new redemption.
const REORG_POLL: Duration = Duration::from_millis(200);

/// Where a reorg finds the chain: anvil itself (not the nodes' gate) and the TicketBroker whose
/// redemptions it drops.
#[derive(Debug, Clone)]
pub struct ChainAccess {
    pub rpc: String,
    pub ticket_broker: protocol::Address,
}

/// The occurrences of `events`, each with its start from the run's start, in time order.
pub fn schedule(events: &[ChaosEvent]) -> Vec<(Duration, String, ChaosAction)> {
    let mut planned: Vec<_> = events
        .iter()
        .flat_map(|event| {
            event
                .occurrences()
                .into_iter()
                .map(move |at| (at, event.label(at), event.action.clone()))
        })
        .collect();
    planned.sort_by_key(|(at, _, _)| *at);
    planned
}

/// Carries out every occurrence of `events` at its time from `started` (the workloads' start),
/// each on its own task so that events on different targets may overlap. Returns when all are
/// done or `cancel` fires, with the occurrences that started, as [`Occurrence`]s.
pub async fn run_timeline(
    events: Vec<ChaosEvent>,
    stack: Arc<EmbeddedStack>,
    chain: Option<ChainAccess>,
    journal: Option<reports::JournalWriter>,
    started: tokio::time::Instant,
    cancel: CancellationToken,
) -> Vec<Occurrence> {
    let tasks = schedule(&events).into_iter().map(|(at, label, action)| {
        let stack = stack.clone();
        let chain = chain.clone();
        let journal = journal.clone();
        let cancel = cancel.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep_until(started + at) => {}
                _ = cancel.cancelled() => return None,
            }
            let start_ms = now_unix_ms();
            info!(event = %label, "chaos event");
            let outcome = tokio::select! {
                outcome = carry_out(&action, &stack, chain.as_ref()) => outcome,
                _ = cancel.cancelled() => Err(anyhow!("the run was stopped during the event")),
            };
            // An outage cut short must not leave the nodes without a chain for the drain, nor an
            // impairment the path.
            match &action {
                ChaosAction::ChainOutage { .. } => {
                    let _ = stack.chain_resume();
                }
                ChaosAction::Network { node, .. } => {
                    let _ = stack.clear_path(*node).await;
                }
                _ => {}
            }
            let end_ms = now_unix_ms();
            let (ok, message) = match &outcome {
                Ok(done) => (true, done.clone()),
                Err(error) => {
                    warn!(event = %label, "chaos event not carried out: {error:#}");
                    (false, format!("{error:#}"))
                }
            };
            let lasting = !matches!(action, ChaosAction::Kill { .. });
            let record = ChaosRecord {
                t_ms: start_ms,
                event: label.clone(),
                kind: action.kind().to_owned(),
                target: action.node().to_string(),
                end_ms: lasting.then_some(end_ms),
                ok,
                message: Some(message),
            };
            if let Some(journal) = &journal
                && let Err(error) = journal.append(record)
            {
                warn!("cannot journal the chaos event {label}: {error}");
            }
            Some(Occurrence {
                label,
                start_ms,
                end_ms: if lasting { end_ms } else { start_ms },
            })
        }
    });
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Does what `action` says; the text says what was done.
async fn carry_out(
    action: &ChaosAction,
    stack: &EmbeddedStack,
    chain: Option<&ChainAccess>,
) -> anyhow::Result<String> {
    match action {
        ChaosAction::Kill { node } => {
            stack.kill(*node).await?;
            Ok(format!("{node} killed (SIGKILL)"))
        }
        ChaosAction::Restart { node, down_for } => {
            stack.kill(*node).await?;
            tokio::time::sleep(*down_for).await;
            let down = std::time::Instant::now();
            stack.restart(*node).await?;
            let how = if *node == StackNode::Chain {
                "stopped (SIGTERM, its state kept)"
            } else {
                "killed (SIGKILL)"
            };
            Ok(format!(
                "{node} {how}, started again after {down_for:?}, ready in {:?}",
                down.elapsed()
            ))
        }
        ChaosAction::ChainOutage { duration } => {
            stack.chain_outage()?;
            tokio::time::sleep(*duration).await;
            stack.chain_resume()?;
            Ok(format!("the nodes' chain RPC held silent for {duration:?}"))
        }
        ChaosAction::ChainReorg { depth } => {
            let chain = chain.ok_or_else(|| anyhow!("this stack has no chain"))?;
            reorg_after_next_redemption(chain, *depth).await
        }
        ChaosAction::DiskFull { node, duration } => {
            let filler = stack.fill_disk(*node).await?;
            let filled = format!(
                "{node}'s data directory filled with {:.1} MiB in {:?}",
                filler.bytes as f64 / f64::from(1 << 20),
                filler.took
            );
            tokio::time::sleep(*duration).await;
            let taken_back = tokio::task::spawn_blocking(move || filler.release())
                .await
                .unwrap_or(0);
            Ok(format!(
                "{filled}, kept full (took back {:.1} MiB the node freed), freed after {duration:?}",
                taken_back as f64 / f64::from(1 << 20)
            ))
        }
        ChaosAction::Network {
            node,
            impairment,
            duration,
        } => {
            stack.impair_path(*node, impairment).await?;
            tokio::time::sleep(*duration).await;
            let dropped = stack.clear_path(*node).await?;
            Ok(format!(
                "{} on the path between the broadcaster and {node} for {duration:?}: {dropped}",
                crate::scenario::impairment_text(impairment),
            ))
        }
    }
}

/// Waits for the next redemption to land, then has anvil drop the last `depth` blocks while
/// they hold it (and mine `depth` empty ones in their place); checks that its transaction is
/// gone from the chain, and tries again with a later redemption when blocks came too fast.
async fn reorg_after_next_redemption(chain: &ChainAccess, depth: u64) -> anyhow::Result<String> {
    use alloy::providers::Provider;
    use protocol::chain::BrokerEvent;
    let reader = protocol::chain::EventReader::connect(&chain.rpc, chain.ticket_broker)
        .context("cannot read the chain")?;
    let provider = protocol::chain::read_provider(&chain.rpc).context("cannot reach anvil")?;
    let mut from = reader.latest_block().await? + 1;
    let deadline = tokio::time::Instant::now() + REORG_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(REORG_POLL).await;
        let head = reader.latest_block().await?;
        let Some(redemption) = reader
            .read(from, head)
            .await?
            .into_iter()
            .filter(|e| matches!(e.event, BrokerEvent::WinningTicketRedeemed { .. }))
            .max_by_key(|e| e.block_number)
        else {
            continue;
        };
        from = head + 1;
        if head + 1 - redemption.block_number > depth {
            continue;
        }
        provider
            .raw_request::<_, serde_json::Value>(
                "anvil_reorg".into(),
                (depth, Vec::<serde_json::Value>::new()),
            )
            .await
            .context("anvil refused the reorg")?;
        let receipt = provider
            .get_transaction_receipt(redemption.tx_hash)
            .await
            .context("cannot read the chain after the reorg")?;
        if receipt.is_none() {
            return Ok(format!(
                "dropped the last {depth} blocks, among them block {} with redemption {}",
                redemption.block_number, redemption.tx_hash
            ));
        }
    }
    Err(anyhow!(
        "no redemption stayed within the last {depth} blocks long enough to be reorged away \
         within {REORG_WAIT:?}"
    ))
}
