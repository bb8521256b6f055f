//! A throwaway local chain: anvil started from the npm package pinned in `ci/chain/`.
//!
//! The binary path is fixed at compile time relative to the workspace (so tests need no setup
//! beyond `npm ci`) and overridable at run time with `LPT_ANVIL`. anvil listens on port 0 of the
//! loopback interface and reports the port it got, so parallel tests never collide; it dies when
//! the [`LocalChain`] is dropped. anvil's stdout is drained by a thread so its per-transaction
//! logging can never fill the pipe and stall the node.

use std::io::Read;
use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;

use super::{ChainError, read_provider, wallet_provider};

/// Environment variable overriding the anvil binary.
pub const ANVIL_ENV: &str = "LPT_ANVIL";

const DEFAULT_ANVIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ci/chain/node_modules/.bin/anvil"
);

/// A running anvil node with its ten funded test accounts.
#[derive(Debug)]
pub struct LocalChain {
    anvil: AnvilInstance,
    url: String,
}

impl LocalChain {
    /// Where anvil is taken from: `$LPT_ANVIL`, else `ci/chain/node_modules/.bin/anvil`.
    pub fn anvil_path() -> PathBuf {
        std::env::var_os(ANVIL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ANVIL))
    }

    /// Starts anvil from [`anvil_path`](Self::anvil_path) on a free loopback port (chain id
    /// 31337, blocks mined on demand).
    pub fn start() -> Result<Self, ChainError> {
        Self::start_with(&Self::anvil_path())
    }

    /// Starts the anvil binary at `path`.
    pub fn start_with(path: &Path) -> Result<Self, ChainError> {
        if !path.exists() {
            return Err(ChainError::AnvilMissing(path.to_path_buf()));
        }
        let mut anvil = Anvil::new()
            .path(path)
            .host("127.0.0.1")
            .keep_stdout()
            .try_spawn()
            .map_err(|source| ChainError::AnvilStart {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(mut stdout) = anvil.child_mut().stdout.take() {
            std::thread::spawn(move || {
                let mut sink = [0u8; 8192];
                while matches!(stdout.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
        let url = anvil.endpoint();
        Ok(Self { anvil, url })
    }

    /// HTTP JSON-RPC endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Chain id (31337).
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// The `index`-th funded test account (0..10).
    pub fn signer(&self, index: usize) -> PrivateKeySigner {
        let key = self.anvil.keys()[index].clone();
        let mut signer = PrivateKeySigner::from(key);
        signer.set_chain_id(Some(self.chain_id()));
        signer
    }

    /// Addresses of the funded accounts.
    pub fn accounts(&self) -> &[Address] {
        self.anvil.addresses()
    }

    /// A provider sending transactions as `signer`.
    pub fn provider(&self, signer: PrivateKeySigner) -> DynProvider {
        wallet_provider(&self.url, signer).expect("anvil endpoint is a valid URL")
    }

    /// A read-only provider.
    pub fn reader(&self) -> DynProvider {
        read_provider(&self.url).expect("anvil endpoint is a valid URL")
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        self.reader()
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
            .await
            .map(drop)
            .map_err(|source| ChainError::Rpc {
                call: "anvil_mine",
                source,
            })
    }

    /// Current block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.reader()
            .get_block_number()
            .await
            .map_err(|source| ChainError::Rpc {
                call: "eth_blockNumber",
                source,
            })
    }

    /// Sets an account's ETH balance (e.g. to fund a fresh key).
    pub async fn set_balance(&self, account: Address, wei: U256) -> Result<(), ChainError> {
        self.reader()
            .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (account, wei))
            .await
            .map(drop)
            .map_err(|source| ChainError::Rpc {
                call: "anvil_setBalance",
                source,
            })
    }
}
