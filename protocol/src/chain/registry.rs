//! On-chain orchestrator discovery the way the Livepeer network does it: the ServiceRegistry's
//! `ServiceURIUpdate(address indexed addr, string serviceURI)` events name every address that
//! ever registered, and `getServiceURI(address)` says what each one serves now.
//!
//! Design: events only nominate candidates; the registry's current state decides, so a
//! re-registration is read once with its latest URI and an address that set an empty URI
//! (deregistered) is dropped, even if its update is outside the scanned range. Logs are read in
//! pages like [`super::EventReader`] (a page the node refuses is halved and retried), and the
//! same reader works against Arbitrum One given its RPC URL and
//! [`super::ARBITRUM_ONE`]`.service_registry`.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::sol_types::SolEvent;

use super::bindings::ServiceRegistry;
use super::broker::ServiceRegistryClient;
use super::logs::LogPages;
use super::{ChainError, read_provider};

/// An orchestrator found on chain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegisteredOrchestrator {
    /// Its Ethereum address.
    pub address: Address,
    /// Its current service URI (never empty).
    pub service_uri: String,
    /// Block of the latest `ServiceURIUpdate` seen for it in the scanned range.
    pub updated_block: u64,
}

/// Reads registered orchestrators from a ServiceRegistry.
#[derive(Debug, Clone)]
pub struct RegistryReader {
    logs: LogPages,
}

impl RegistryReader {
    /// A reader of the registry at `registry` through `provider`.
    pub fn new(provider: DynProvider, registry: Address) -> Self {
        Self {
            logs: LogPages::new(provider, registry),
        }
    }

    /// A reader over the JSON-RPC endpoint `url`.
    pub fn connect(url: &str, registry: Address) -> Result<Self, ChainError> {
        Ok(Self::new(read_provider(url)?, registry))
    }

    /// Blocks per `eth_getLogs` request (at least 1).
    pub fn with_page_size(self, blocks: u64) -> Self {
        Self {
            logs: self.logs.with_page_size(blocks),
        }
    }

    /// Every address with a `ServiceURIUpdate` in blocks `from..=to`, with the block of its
    /// latest update, in first-seen order.
    pub async fn updated_addresses(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Address, u64)>, ChainError> {
        let mut seen: Vec<(Address, u64)> = Vec::new();
        let signature = ServiceRegistry::ServiceURIUpdate::SIGNATURE_HASH;
        self.logs
            .for_each(&[signature], from, to, |log| {
                let block = log.block_number;
                let update = ServiceRegistry::ServiceURIUpdate::decode_log(&log.inner)
                    .map_err(|e| ChainError::BadLog {
                        event: "ServiceURIUpdate",
                        block,
                        reason: e.to_string(),
                    })?
                    .data;
                let block = block.unwrap_or_default();
                match seen.iter_mut().find(|(a, _)| *a == update.addr) {
                    Some(entry) => entry.1 = entry.1.max(block),
                    None => seen.push((update.addr, block)),
                }
                Ok(())
            })
            .await?;
        Ok(seen)
    }

    /// The orchestrators registered now among those updated in `from..=to`, each confirmed with
    /// `getServiceURI` (the latest URI wins; an empty URI means deregistered and is left out),
    /// sorted by address.
    pub async fn registered(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<RegisteredOrchestrator>, ChainError> {
        let client = ServiceRegistryClient::new(self.logs.provider.clone(), self.logs.contract);
        let mut found = BTreeSet::new();
        for (address, updated_block) in self.updated_addresses(from, to).await? {
            let service_uri = client.service_uri(address).await?;
            if service_uri.trim().is_empty() {
                continue;
            }
            found.insert(RegisteredOrchestrator {
                address,
                service_uri,
                updated_block,
            });
        }
        Ok(found.into_iter().collect())
    }

    /// [`Self::registered`] from block 0 to the latest block.
    pub async fn registered_now(&self) -> Result<Vec<RegisteredOrchestrator>, ChainError> {
        let latest = self.logs.latest_block().await?;
        self.registered(0, latest).await
    }
}
