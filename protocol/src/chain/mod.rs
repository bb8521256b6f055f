//! Settlement on an EVM chain: a local anvil chain for tests and the embedded stack, deployment of
//! lpt's contracts, a TicketBroker client, a paginated event reader and on-chain orchestrator
//! discovery from the ServiceRegistry ([`RegistryReader`]).
//!
//! Ticket expiry counts L1 blocks ([`latest_l1_block`]): on Arbitrum `eth_blockNumber` is the L2
//! block, and go-livepeer issues and checks `paramsExpirationBlock` against the header's
//! `l1BlockNumber` instead. Event block ranges stay L2 numbers.
//!
//! Everything talks through alloy's type-erased [`DynProvider`], so the same client and reader
//! work against the local chain and any JSON-RPC URL (e.g. Arbitrum One's TicketBroker at
//! [`ARBITRUM_ONE`]). Contract bindings come from the committed solc artifacts in
//! `contracts/artifacts/` via `sol!`, so a binding can never drift from the deployed bytecode.
//! Reverts are surfaced as [`ChainError::Reverted`] with the contract's reason string, which is
//! what tests and operators match on; a chain that could not be reached (connection refused or
//! reset, no answer within the transport's timeout) is [`ChainError::Unreachable`], so a caller
//! can tell "the chain said no" from "the chain said nothing" ([`ChainError::is_unreachable`]).
//! [`RpcGate`] makes the second on purpose, for tests and chaos runs.

mod blocks;
mod broker;
mod events;
mod gate;
mod local;
mod logs;
mod registry;

use std::path::PathBuf;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;
use alloy::transports::http::reqwest::Url;

pub use blocks::{ChainHead, latest_head, latest_l1_block};
pub use broker::{
    Contracts, DeployConfig, MIN_DEPOSIT_PENDING_RATIO, RoundsManagerClient, SenderFunds,
    SenderInfo, ServiceRegistryClient, TICKET_VALIDITY_PERIOD, TX_TIMEOUT, TicketBrokerClient,
    TxOutcome, TxStatus,
};
pub use events::{BrokerEvent, EventReader, EventRecord};
pub use gate::RpcGate;
#[cfg(target_os = "linux")]
pub use local::die_with_parent;
pub use local::{ANVIL_ENV, LocalChain, PortHold};
pub use logs::DEFAULT_PAGE_SIZE;
pub use registry::{RegisteredOrchestrator, RegistryReader};

/// alloy bindings generated from the committed solc artifacts.
pub mod bindings {
    #![allow(missing_docs, clippy::too_many_arguments)]

    // `sol!` reads the artifacts without telling cargo; including them makes a recompiled
    // artifact rebuild the bindings (and the bytecode `deploy` sends).
    const _: &[u8] = include_bytes!("../../../contracts/artifacts/TicketBroker.json");
    const _: &[u8] = include_bytes!("../../../contracts/artifacts/RoundsManager.json");
    const _: &[u8] = include_bytes!("../../../contracts/artifacts/ServiceRegistry.json");

    alloy::sol!(
        #[sol(rpc)]
        TicketBroker,
        "../contracts/artifacts/TicketBroker.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        RoundsManager,
        "../contracts/artifacts/RoundsManager.json"
    );
    alloy::sol!(
        #[sol(rpc)]
        ServiceRegistry,
        "../contracts/artifacts/ServiceRegistry.json"
    );

    // The parts of Livepeer's deployment that lpt's own contracts fold into the TicketBroker:
    // the Controller every Livepeer contract names, and the BondingManager's pool size, which
    // splits a sender's reserve among recipients.
    alloy::sol! {
        #[sol(rpc)]
        interface LivepeerManager {
            function controller() external view returns (address);
        }

        #[sol(rpc)]
        interface LivepeerController {
            function getContract(bytes32 id) external view returns (address);
        }

        #[sol(rpc)]
        interface LivepeerBondingManager {
            function getTranscoderPoolSize() external view returns (uint256);
        }
    }
}

/// Livepeer's contract addresses on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivepeerDeployment {
    /// Chain id.
    pub chain_id: u64,
    /// TicketBroker (proxy).
    pub ticket_broker: Address,
    /// RoundsManager (proxy).
    pub rounds_manager: Address,
    /// BondingManager (proxy).
    pub bonding_manager: Address,
    /// ServiceRegistry.
    pub service_registry: Address,
    /// Controller.
    pub controller: Address,
    /// Round length in blocks.
    pub round_length: u64,
}

/// Livepeer on Arbitrum One (PROTOCOL.md §5).
pub const ARBITRUM_ONE: LivepeerDeployment = LivepeerDeployment {
    chain_id: 42161,
    ticket_broker: address!("0xa8bB618B1520E284046F3dFc448851A1Ff26e41B"),
    rounds_manager: address!("0xdd6f56DcC28D3F5f27084381fE8Df634985cc39f"),
    bonding_manager: address!("0x35Bcf3c30594191d53231E4FF333E8A770453e40"),
    service_registry: address!("0xC92d3A360b8f9e083bA64DE15d95Cf8180897431"),
    controller: address!("0xD8E8328501E9645d16Cf49539efC04f734606ee4"),
    round_length: 5760,
};

/// A chain operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The anvil binary is not where we looked.
    #[error("anvil not found at {0}: set {ANVIL_ENV} or run `npm ci` in ci/chain")]
    AnvilMissing(PathBuf),
    /// anvil did not start.
    #[error("starting anvil {path}: {reason}")]
    AnvilStart {
        /// Binary used.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An RPC URL that does not parse.
    #[error("invalid RPC URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Parser message.
        reason: String,
    },
    /// The contract reverted; `reason` is its revert string (or the raw data in hex).
    #[error("{call} reverted: {reason}")]
    Reverted {
        /// Contract function.
        call: &'static str,
        /// Revert reason.
        reason: String,
    },
    /// The transaction was mined but failed.
    #[error("{call}: transaction {tx} failed")]
    TxFailed {
        /// Contract function.
        call: &'static str,
        /// Transaction hash.
        tx: alloy::primitives::B256,
    },
    /// The chain could not be reached: the connection was refused, reset or closed, or no
    /// answer came within the transport's timeout. Nothing is known of what the chain did.
    #[error("{call}: chain unreachable: {reason}")]
    Unreachable {
        /// Contract function or RPC method.
        call: &'static str,
        /// Error text.
        reason: String,
    },
    /// A contract call failed for another reason (decoding, an error answer, pending tx).
    #[error("{call}: {reason}")]
    Call {
        /// Contract function or RPC method.
        call: &'static str,
        /// Error text.
        reason: String,
    },
    /// A JSON-RPC request failed.
    #[error("{call}: {source}")]
    Rpc {
        /// RPC method.
        call: &'static str,
        /// Underlying error.
        source: TransportError,
    },
    /// The latest block from `eth_getBlockByNumber` lacks a field or has a malformed one.
    #[error("eth_getBlockByNumber(latest): bad {field}: {reason}")]
    BadBlock {
        /// The block field (`l1BlockNumber`, `number`, `hash`, or `block` for the whole object).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A log with a known topic that does not decode.
    #[error("cannot decode {event} log in block {block:?}: {reason}")]
    BadLog {
        /// Event name.
        event: &'static str,
        /// Block of the log.
        block: Option<u64>,
        /// Decoder message.
        reason: String,
    },
}

impl ChainError {
    /// Whether the chain could not be reached, as opposed to having answered (a revert, an error
    /// answer, a malformed result): retrying later may succeed, and nothing was refused.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Rpc { source, .. } => unreachable_transport(source),
            _ => false,
        }
    }

    pub(crate) fn from_contract(call: &'static str, err: alloy::contract::Error) -> Self {
        if let Some(revert) = err.as_decoded_error::<alloy::sol_types::Revert>() {
            return Self::Reverted {
                call,
                reason: revert.reason,
            };
        }
        if let Some(data) = err.as_revert_data() {
            return Self::Reverted {
                call,
                reason: format!("0x{}", alloy::hex::encode(data)),
            };
        }
        let unreachable = match &err {
            alloy::contract::Error::TransportError(source) => unreachable_transport(source),
            alloy::contract::Error::PendingTransactionError(
                alloy::providers::PendingTransactionError::TransportError(source),
            ) => unreachable_transport(source),
            _ => false,
        };
        if unreachable {
            return Self::Unreachable {
                call,
                reason: err.to_string(),
            };
        }
        Self::Call {
            call,
            reason: err.to_string(),
        }
    }

    /// A JSON-RPC request that failed: [`Self::Unreachable`] when the transport failed, else
    /// [`Self::Rpc`].
    pub(crate) fn from_rpc(call: &'static str, source: TransportError) -> Self {
        if unreachable_transport(&source) {
            return Self::Unreachable {
                call,
                reason: source.to_string(),
            };
        }
        Self::Rpc { call, source }
    }
}

/// Whether a transport error means no answer came (refused, reset, timed out, an HTTP error from
/// something in front of the node) rather than an answer from the node.
fn unreachable_transport(err: &TransportError) -> bool {
    matches!(err, alloy::transports::RpcError::Transport(_))
}

fn parse_url(url: &str) -> Result<Url, ChainError> {
    Url::parse(url).map_err(|e| ChainError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// A read-only provider for any JSON-RPC URL.
pub fn read_provider(url: &str) -> Result<DynProvider, ChainError> {
    Ok(ProviderBuilder::new()
        .connect_http(parse_url(url)?)
        .erased())
}

/// A provider that signs and sends transactions as `signer`.
///
/// Nonces come from `eth_getTransactionCount(pending)` for every transaction rather than alloy's
/// default cache: the cache hands out a nonce even when gas estimation then fails (a reverting
/// `redeemWinningTicket`), leaving a gap that parks every later transaction forever.
pub fn wallet_provider(url: &str, signer: PrivateKeySigner) -> Result<DynProvider, ChainError> {
    Ok(ProviderBuilder::default()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(parse_url(url)?)
        .erased())
}

/// [`wallet_provider`] whose every JSON-RPC request (connecting included) fails as
/// [`ChainError::Unreachable`] after `timeout`: a node that must keep going when its RPC endpoint
/// accepts connections and never answers. A transaction's send makes several requests (gas,
/// nonce, fees, the send itself), each with its own `timeout`.
pub fn wallet_provider_with_timeout(
    url: &str,
    signer: PrivateKeySigner,
    timeout: Duration,
) -> Result<DynProvider, ChainError> {
    let client = alloy::transports::http::reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ChainError::BadUrl {
            url: url.to_string(),
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
    Ok(ProviderBuilder::default()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_reqwest(client, parse_url(url)?)
        .erased())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use alloy::primitives::B256;

    use super::*;

    /// A node behind a closed gate: every call fails as unreachable within its timeout, a read
    /// of a block as much as a contract call, and the same provider answers once it opens.
    #[tokio::test]
    async fn calls_to_a_silent_endpoint_time_out_as_unreachable() {
        // Nothing reaches the upstream while the gate is closed: any address will do.
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gate = RpcGate::start(upstream.local_addr().unwrap())
            .await
            .unwrap();
        gate.close();
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
        let timeout = Duration::from_millis(300);
        let provider = wallet_provider_with_timeout(&gate.url(), signer, timeout).unwrap();
        let started = Instant::now();
        let err = latest_l1_block(&provider).await.unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        let broker = TicketBrokerClient::new(provider, Address::repeat_byte(0x22));
        let err = broker.is_ticket_used(B256::ZERO).await.unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Unreachable {
                    call: "usedTickets",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // An answer, even a refusal, is not unreachability.
        let refused = ChainError::Reverted {
            call: "redeemWinningTicket",
            reason: "ticket is used".into(),
        };
        assert!(!refused.is_unreachable());
    }
}
