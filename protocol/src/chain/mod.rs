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
//! what tests and operators match on.

mod blocks;
mod broker;
mod events;
mod local;
mod gate;
mod logs;
mod registry;

use std::path::PathBuf;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;
use alloy::transports::http::reqwest::Url;

pub use blocks::latest_l1_block;
pub use broker::{
    Contracts, DeployConfig, MIN_DEPOSIT_PENDING_RATIO, RoundsManagerClient, SenderFunds,
    SenderInfo, ServiceRegistryClient, TX_TIMEOUT, TicketBrokerClient, TxOutcome,
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
    /// A contract call failed for another reason (transport, decoding, pending tx).
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
        /// The block field (`l1BlockNumber`, `number`, or `block` for the whole object).
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
        Self::Call {
            call,
            reason: err.to_string(),
        }
    }
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
