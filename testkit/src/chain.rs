//! A throwaway chain for tests: anvil with lpt's contracts deployed and, when asked, a broadcaster
//! with a funded deposit and reserve.
//!
//! Everything here goes through `protocol::chain` (anvil lookup, deployment, the TicketBroker
//! client), so tests exercise the code the nodes run; this module only fixes the choices tests
//! share: who deploys (account 0), who pays (account 1), who is paid (account 2), and how much.
//!
//! anvil gets `PR_SET_PDEATHSIG` against the thread that starts it, so start a chain from a
//! thread that outlives it (a test's runtime worker or main thread, not a blocking-pool thread).

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use protocol::chain::{Contracts, DeployConfig, LocalChain, TicketBrokerClient};

/// One ether in wei.
pub const ETH: u64 = 1_000_000_000_000_000_000;

/// anvil's account that deploys the contracts.
pub const DEPLOYER: usize = 0;
/// anvil's account that pays as the broadcaster.
pub const BROADCASTER: usize = 1;
/// anvil's account that is paid as the orchestrator.
pub const ORCHESTRATOR: usize = 2;

/// Rounds long enough (10,000 blocks) that no test sees a round change it did not mine for.
pub fn long_rounds() -> DeployConfig {
    DeployConfig {
        round_length: 10_000,
        ..DeployConfig::default()
    }
}

/// A running anvil and the contracts deployed on it. anvil dies when this is dropped.
pub struct TestChain {
    pub chain: LocalChain,
    pub contracts: Contracts,
}

impl TestChain {
    /// Starts anvil and deploys the contracts from [`DEPLOYER`] with `config`.
    pub async fn deploy(config: DeployConfig) -> TestChain {
        let chain =
            LocalChain::start().expect("anvil starts (run `npm ci` in ci/chain or set LPT_ANVIL)");
        let contracts = Contracts::deploy(&chain.provider(chain.signer(DEPLOYER)), config)
            .await
            .expect("the contracts deploy");
        TestChain { chain, contracts }
    }

    /// [`deploy`](Self::deploy), then funds [`BROADCASTER`] with a deposit of 1 ETH and a
    /// reserve of 0.5 ETH.
    pub async fn funded(config: DeployConfig) -> TestChain {
        let chain = TestChain::deploy(config).await;
        chain
            .fund(&chain.broadcaster(), U256::from(ETH), U256::from(ETH / 2))
            .await;
        chain
    }

    /// Pays `deposit` and `reserve` wei into `sender`'s TicketBroker balance.
    pub async fn fund(&self, sender: &PrivateKeySigner, deposit: U256, reserve: U256) {
        self.broker_as(sender)
            .fund_deposit_and_reserve(deposit, reserve)
            .await
            .expect("fundDepositAndReserve succeeds");
    }

    /// The paying account's key.
    pub fn broadcaster(&self) -> PrivateKeySigner {
        self.chain.signer(BROADCASTER)
    }

    /// The TicketBroker, sending transactions as `who`.
    pub fn broker_as(&self, who: &PrivateKeySigner) -> TicketBrokerClient {
        self.contracts
            .ticket_broker(self.chain.provider(who.clone()))
    }
}
