//! Paged `eth_getLogs` over a block range, shared by the event and registry readers.
//!
//! Public RPC providers cap `eth_getLogs` by block span or result count, so a range is read in
//! pages of [`DEFAULT_PAGE_SIZE`] blocks; when a page is refused it is halved and retried, down
//! to a single block, before the error is returned.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};

use super::ChainError;

/// Blocks per `eth_getLogs` request unless configured otherwise.
pub const DEFAULT_PAGE_SIZE: u64 = 10_000;

/// The logs of one contract, read in pages.
#[derive(Debug, Clone)]
pub(crate) struct LogPages {
    pub(crate) provider: DynProvider,
    pub(crate) contract: Address,
    page_size: u64,
}

impl LogPages {
    pub(crate) fn new(provider: DynProvider, contract: Address) -> Self {
        Self {
            provider,
            contract,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Blocks per request (at least 1).
    pub(crate) fn with_page_size(mut self, blocks: u64) -> Self {
        self.page_size = blocks.max(1);
        self
    }

    /// The latest block of the endpoint (`eth_blockNumber`).
    pub(crate) async fn latest_block(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|source| ChainError::Rpc {
                call: "eth_blockNumber",
                source,
            })
    }

    /// Hands every log of the contract whose topic0 is one of `signatures`, emitted in blocks
    /// `from..=to`, to `on_log` in chain order; an error from `on_log` ends the read.
    pub(crate) async fn for_each(
        &self,
        signatures: &[B256],
        from: u64,
        to: u64,
        mut on_log: impl FnMut(&Log) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        let mut page = self.page_size;
        let mut start = from;
        while start <= to {
            let end = start.saturating_add(page - 1).min(to);
            let filter = Filter::new()
                .address(self.contract)
                .event_signature(signatures.to_vec())
                .from_block(start)
                .to_block(end);
            match self.provider.get_logs(&filter).await {
                Ok(logs) => {
                    logs.iter().try_for_each(&mut on_log)?;
                    if end == u64::MAX {
                        break;
                    }
                    start = end + 1;
                }
                Err(_) if page > 1 => page = page.div_ceil(2),
                Err(source) => {
                    return Err(ChainError::Rpc {
                        call: "eth_getLogs",
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}
