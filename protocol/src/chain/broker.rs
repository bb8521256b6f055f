//! Deployment of lpt's contracts and typed clients for the TicketBroker, the RoundsManager and
//! the ServiceRegistry.
//!
//! Clients take domain types ([`WinningTicket`], [`Ticket`]) rather than ABI structs, so callers
//! never assemble `auxData` or signatures by hand. Every transaction waits for its receipt and
//! returns a [`TxOutcome`] (hash, block, gas used and price) so callers can account for gas when
//! checking balances; the exception is [`TicketBrokerClient::send_redeem_winning_ticket`], which
//! returns once the node took the transaction, for a caller that must tell "sent, receipt not
//! read" apart from "not sent" and reads the outcome itself ([`TicketBrokerClient::tx_status`]).

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;

use super::ChainError;
use super::bindings::{
    LivepeerBondingManager, LivepeerController, LivepeerManager, RoundsManager, ServiceRegistry,
    TicketBroker,
};
use super::blocks::{ChainHead, latest_head, latest_l1_block};
use crate::ticket::{ChainView, Ticket, WinningTicket};

/// Parameters of a local deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployConfig {
    /// Blocks per round. The default (50) outlasts a ticket's 40-block params expiry, so a
    /// winner can wait for its params to expire and still be redeemable in the next round.
    pub round_length: u64,
    /// Rounds between `unlock()` and a possible `withdraw()`.
    pub unlock_period: u64,
    /// Recipients a reserve is split between each round.
    pub reserve_recipients: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            round_length: 50,
            unlock_period: 2,
            reserve_recipients: 1,
        }
    }
}

/// Addresses of a TicketBroker, its RoundsManager and a ServiceRegistry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contracts {
    /// TicketBroker.
    pub ticket_broker: Address,
    /// RoundsManager.
    pub rounds_manager: Address,
    /// ServiceRegistry.
    pub service_registry: Address,
}

impl Contracts {
    /// Deploys the three contracts from `provider`'s account and initializes the current round.
    pub async fn deploy(provider: &DynProvider, config: DeployConfig) -> Result<Self, ChainError> {
        let rounds = RoundsManager::deploy(provider.clone(), U256::from(config.round_length))
            .await
            .map_err(|e| ChainError::from_contract("deploy RoundsManager", e))?;
        let broker = TicketBroker::deploy(
            provider.clone(),
            *rounds.address(),
            U256::from(config.unlock_period),
            U256::from(config.reserve_recipients),
        )
        .await
        .map_err(|e| ChainError::from_contract("deploy TicketBroker", e))?;
        let registry = ServiceRegistry::deploy(provider.clone())
            .await
            .map_err(|e| ChainError::from_contract("deploy ServiceRegistry", e))?;
        let contracts = Self {
            ticket_broker: *broker.address(),
            rounds_manager: *rounds.address(),
            service_registry: *registry.address(),
        };
        contracts
            .rounds(provider.clone())
            .initialize_round_if_needed()
            .await?;
        Ok(contracts)
    }

    /// TicketBroker client over `provider`.
    pub fn ticket_broker(&self, provider: DynProvider) -> TicketBrokerClient {
        TicketBrokerClient::new(provider, self.ticket_broker)
    }

    /// RoundsManager client over `provider`.
    pub fn rounds(&self, provider: DynProvider) -> RoundsManagerClient {
        RoundsManagerClient::new(provider, self.rounds_manager)
    }

    /// ServiceRegistry client over `provider`.
    pub fn service_registry(&self, provider: DynProvider) -> ServiceRegistryClient {
        ServiceRegistryClient::new(provider, self.service_registry)
    }
}

/// A mined, successful transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOutcome {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block it was mined in.
    pub block_number: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Price paid per gas, wei.
    pub effective_gas_price: u128,
}

impl TxOutcome {
    /// Total fee paid, wei.
    pub fn fee(&self) -> U256 {
        U256::from(self.gas_used) * U256::from(self.effective_gas_price)
    }

    fn from_receipt(call: &'static str, receipt: TransactionReceipt) -> Result<Self, ChainError> {
        if !receipt.status() {
            return Err(ChainError::TxFailed {
                call,
                tx: receipt.transaction_hash,
            });
        }
        Ok(Self {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
        })
    }
}

/// Longest wait for a sent transaction's receipt.
pub const TX_TIMEOUT: Duration = Duration::from_secs(120);

/// Rounds a ticket stays redeemable after its creation round: the TicketBroker's
/// `ticketValidityPeriod` (ours and Livepeer's), which refuses it with "ticket is expired" once
/// `creationRound + TICKET_VALIDITY_PERIOD <= currentRound`.
pub const TICKET_VALIDITY_PERIOD: u64 = 2;

/// Where a sent transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// No receipt: not mined yet, or dropped (by a reorg, or from the node's pool).
    Pending,
    /// Mined and successful.
    Mined(TxOutcome),
    /// Mined and reverted.
    Failed {
        /// Transaction hash.
        tx: B256,
        /// Block it was mined in.
        block: u64,
    },
}

/// Sends a prepared contract call and waits for its receipt (at most [`TX_TIMEOUT`]).
macro_rules! send {
    ($call_name:literal, $builder:expr) => {{
        let pending = $builder
            .send()
            .await
            .map_err(|e| ChainError::from_contract($call_name, e))?;
        let receipt = pending
            .with_timeout(Some(TX_TIMEOUT))
            .get_receipt()
            .await
            .map_err(|e| ChainError::Call {
                call: $call_name,
                reason: e.to_string(),
            })?;
        TxOutcome::from_receipt($call_name, receipt)
    }};
}

/// Reads a view function.
macro_rules! view {
    ($call_name:literal, $builder:expr) => {{
        $builder
            .call()
            .await
            .map_err(|e| ChainError::from_contract($call_name, e))
    }};
}

/// A sender's funds as `getSenderInfo` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Deposit, wei.
    pub deposit: U256,
    /// Round from which the sender may withdraw (0: not unlocking).
    pub withdraw_round: U256,
    /// Reserve left, wei.
    pub reserve_funds_remaining: U256,
    /// Reserve claimed in the current round, wei.
    pub reserve_claimed_in_current_round: U256,
}

/// go-livepeer's `minDepositPendingRatio`: a sender whose deposit is at least this many times
/// the face value pending redemption keeps its whole reserve allocation as max float.
pub const MIN_DEPOSIT_PENDING_RATIO: u64 = 3;

/// What a sender's funds guarantee one recipient this round: its `getSenderInfo`, what that
/// recipient already claimed from the reserve this round, and how many recipients the reserve is
/// split between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderFunds {
    /// Deposit, unlock round and reserve.
    pub info: SenderInfo,
    /// Reserve the recipient claimed in the current round, wei (`claimedReserve`).
    pub claimed_reserve: U256,
    /// Recipients the reserve is split between: our broker's `reserveRecipients`, Livepeer's
    /// active transcoder pool size.
    pub reserve_recipients: U256,
}

impl SenderFunds {
    /// The recipient's share of the reserve this round, minus what it already claimed:
    /// `(fundsRemaining + claimedInCurrentRound) / recipients − claimed` (go-livepeer's
    /// `reserveAlloc`; zero without recipients).
    pub fn reserve_alloc(&self) -> U256 {
        if self.reserve_recipients.is_zero() {
            return U256::ZERO;
        }
        let reserve = self
            .info
            .reserve_funds_remaining
            .saturating_add(self.info.reserve_claimed_in_current_round);
        (reserve / self.reserve_recipients).saturating_sub(self.claimed_reserve)
    }

    /// The most a recipient should let this sender owe it in one winning ticket (go-livepeer's
    /// `MaxFloat`): the reserve allocation, minus `pending` (face values of the sender's winners
    /// the recipient has not redeemed yet) unless the deposit is at least
    /// [`MIN_DEPOSIT_PENDING_RATIO`] times `pending`. The deposit is not counted itself: other
    /// recipients may drain it, while the reserve allocation is the recipient's alone.
    pub fn max_float(&self, pending: U256) -> U256 {
        let alloc = self.reserve_alloc();
        let deposit_covers_pending = !pending.is_zero()
            && self.info.deposit >= pending.saturating_mul(U256::from(MIN_DEPOSIT_PENDING_RATIO));
        if deposit_covers_pending {
            alloc
        } else {
            alloc.saturating_sub(pending)
        }
    }
}

/// Client for a TicketBroker (ours on anvil or Livepeer's on Arbitrum: same ABI).
#[derive(Debug, Clone)]
pub struct TicketBrokerClient {
    contract: TicketBroker::TicketBrokerInstance<DynProvider>,
}

impl TicketBrokerClient {
    /// A client for the broker at `address`.
    pub fn new(provider: DynProvider, address: Address) -> Self {
        Self {
            contract: TicketBroker::new(address, provider),
        }
    }

    /// The broker's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// `fundDeposit()` with `amount` wei.
    pub async fn fund_deposit(&self, amount: U256) -> Result<TxOutcome, ChainError> {
        send!("fundDeposit", self.contract.fundDeposit().value(amount))
    }

    /// `fundReserve()` with `amount` wei.
    pub async fn fund_reserve(&self, amount: U256) -> Result<TxOutcome, ChainError> {
        send!("fundReserve", self.contract.fundReserve().value(amount))
    }

    /// `fundDepositAndReserve(deposit, reserve)` paying `deposit + reserve` wei.
    pub async fn fund_deposit_and_reserve(
        &self,
        deposit: U256,
        reserve: U256,
    ) -> Result<TxOutcome, ChainError> {
        send!(
            "fundDepositAndReserve",
            self.contract
                .fundDepositAndReserve(deposit, reserve)
                .value(deposit.saturating_add(reserve))
        )
    }

    /// `redeemWinningTicket(ticket, sig, recipientRand)`.
    pub async fn redeem_winning_ticket(
        &self,
        winner: &WinningTicket,
    ) -> Result<TxOutcome, ChainError> {
        send!(
            "redeemWinningTicket",
            self.contract.redeemWinningTicket(
                abi_ticket(&winner.ticket),
                Bytes::copy_from_slice(&winner.sig),
                winner.recipient_rand
            )
        )
    }

    /// Sends `redeemWinningTicket(ticket, sig, recipientRand)` and returns its hash once the node
    /// took it, without waiting for a receipt. A revert found while estimating gas is
    /// [`ChainError::Reverted`] and nothing was sent; [`ChainError::Unreachable`] leaves unknown
    /// whether the node got it.
    pub async fn send_redeem_winning_ticket(
        &self,
        winner: &WinningTicket,
    ) -> Result<B256, ChainError> {
        let pending = self
            .contract
            .redeemWinningTicket(
                abi_ticket(&winner.ticket),
                Bytes::copy_from_slice(&winner.sig),
                winner.recipient_rand,
            )
            .send()
            .await
            .map_err(|e| ChainError::from_contract("redeemWinningTicket", e))?;
        Ok(*pending.tx_hash())
    }

    /// Where the transaction `tx` stands now (one `eth_getTransactionReceipt`).
    pub async fn tx_status(&self, tx: B256) -> Result<TxStatus, ChainError> {
        let receipt = self
            .contract
            .provider()
            .get_transaction_receipt(tx)
            .await
            .map_err(|source| ChainError::from_rpc("eth_getTransactionReceipt", source))?;
        let Some(receipt) = receipt else {
            return Ok(TxStatus::Pending);
        };
        // A receipt of a pending block has no number yet: not mined for our purposes.
        let Some(block) = receipt.block_number else {
            return Ok(TxStatus::Pending);
        };
        Ok(
            match TxOutcome::from_receipt("eth_getTransactionReceipt", receipt) {
                Ok(outcome) => TxStatus::Mined(outcome),
                Err(_) => TxStatus::Failed { tx, block },
            },
        )
    }

    /// Whether the node knows the transaction `tx` at all (mined or in its pool): one
    /// `eth_getTransactionByHash`. A transaction a reorg dropped and the node did not take back
    /// into its pool is unknown.
    pub async fn tx_known(&self, tx: B256) -> Result<bool, ChainError> {
        let found = self
            .contract
            .provider()
            .get_transaction_by_hash(tx)
            .await
            .map_err(|source| ChainError::from_rpc("eth_getTransactionByHash", source))?;
        Ok(found.is_some())
    }

    /// `batchRedeemWinningTickets`: all or nothing — one invalid ticket reverts the batch with
    /// that ticket's reason.
    pub async fn batch_redeem_winning_tickets(
        &self,
        winners: &[WinningTicket],
    ) -> Result<TxOutcome, ChainError> {
        let tickets = winners.iter().map(|w| abi_ticket(&w.ticket)).collect();
        let sigs = winners
            .iter()
            .map(|w| Bytes::copy_from_slice(&w.sig))
            .collect();
        let rands = winners.iter().map(|w| w.recipient_rand).collect();
        send!(
            "batchRedeemWinningTickets",
            self.contract
                .batchRedeemWinningTickets(tickets, sigs, rands)
        )
    }

    /// `unlock()`: starts the unlock period of the caller's funds.
    pub async fn unlock(&self) -> Result<TxOutcome, ChainError> {
        send!("unlock", self.contract.unlock())
    }

    /// `cancelUnlock()`.
    pub async fn cancel_unlock(&self) -> Result<TxOutcome, ChainError> {
        send!("cancelUnlock", self.contract.cancelUnlock())
    }

    /// `withdraw()`: takes back deposit and reserve after the unlock period.
    pub async fn withdraw(&self) -> Result<TxOutcome, ChainError> {
        send!("withdraw", self.contract.withdraw())
    }

    /// `getSenderInfo(sender)`.
    pub async fn sender_info(&self, sender: Address) -> Result<SenderInfo, ChainError> {
        let info = view!("getSenderInfo", self.contract.getSenderInfo(sender))?;
        Ok(SenderInfo {
            deposit: info.sender.deposit,
            withdraw_round: info.sender.withdrawRound,
            reserve_funds_remaining: info.reserve.fundsRemaining,
            reserve_claimed_in_current_round: info.reserve.claimedInCurrentRound,
        })
    }

    /// `claimedReserve(holder, claimant)`: reserve `claimant` claimed from `holder` this round.
    pub async fn claimed_reserve(
        &self,
        holder: Address,
        claimant: Address,
    ) -> Result<U256, ChainError> {
        view!(
            "claimedReserve",
            self.contract.claimedReserve(holder, claimant)
        )
    }

    /// How many recipients a reserve is split between: `reserveRecipients()` on lpt's broker;
    /// Livepeer's has no such function and splits among the active transcoder pool, whose size
    /// its BondingManager (found through the broker's Controller) reports.
    pub async fn reserve_recipients(&self) -> Result<U256, ChainError> {
        match view!("reserveRecipients", self.contract.reserveRecipients()) {
            Ok(count) => Ok(count),
            Err(ours) => self.transcoder_pool_size().await.map_err(|_| ours),
        }
    }

    async fn transcoder_pool_size(&self) -> Result<U256, ChainError> {
        let provider = self.contract.provider();
        let controller = view!(
            "controller",
            LivepeerManager::new(self.address(), provider).controller()
        )?;
        let bonding_manager = view!(
            "getContract",
            LivepeerController::new(controller, provider).getContract(keccak256("BondingManager"))
        )?;
        view!(
            "getTranscoderPoolSize",
            LivepeerBondingManager::new(bonding_manager, provider).getTranscoderPoolSize()
        )
    }

    /// What `sender`'s funds guarantee `recipient` now ([`SenderFunds`]).
    pub async fn sender_funds(
        &self,
        sender: Address,
        recipient: Address,
    ) -> Result<SenderFunds, ChainError> {
        Ok(SenderFunds {
            info: self.sender_info(sender).await?,
            claimed_reserve: self.claimed_reserve(sender, recipient).await?,
            reserve_recipients: self.reserve_recipients().await?,
        })
    }

    /// `usedTickets(hash)`.
    pub async fn is_ticket_used(&self, ticket_hash: B256) -> Result<bool, ChainError> {
        view!("usedTickets", self.contract.usedTickets(ticket_hash))
    }

    /// `getTicketHash(ticket)` computed by the contract.
    pub async fn ticket_hash(&self, ticket: &Ticket) -> Result<B256, ChainError> {
        view!(
            "getTicketHash",
            self.contract.getTicketHash(abi_ticket(ticket))
        )
    }
}

/// The ABI form of a ticket.
pub(crate) fn abi_ticket(ticket: &Ticket) -> TicketBroker::Ticket {
    TicketBroker::Ticket {
        recipient: ticket.recipient,
        sender: ticket.sender,
        faceValue: ticket.face_value,
        winProb: ticket.win_prob,
        senderNonce: U256::from(ticket.sender_nonce),
        recipientRandHash: ticket.recipient_rand_hash,
        auxData: Bytes::from(ticket.aux_data()),
    }
}

/// Client for a RoundsManager.
#[derive(Debug, Clone)]
pub struct RoundsManagerClient {
    contract: RoundsManager::RoundsManagerInstance<DynProvider>,
}

impl RoundsManagerClient {
    /// A client for the rounds manager at `address`.
    pub fn new(provider: DynProvider, address: Address) -> Self {
        Self {
            contract: RoundsManager::new(address, provider),
        }
    }

    /// `currentRound()`.
    pub async fn current_round(&self) -> Result<u64, ChainError> {
        let round = view!("currentRound", self.contract.currentRound())?;
        Ok(round.saturating_to())
    }

    /// `roundLength()`.
    pub async fn round_length(&self) -> Result<u64, ChainError> {
        Ok(view!("roundLength", self.contract.roundLength())?.saturating_to())
    }

    /// `currentRoundInitialized()`.
    pub async fn current_round_initialized(&self) -> Result<bool, ChainError> {
        view!(
            "currentRoundInitialized",
            self.contract.currentRoundInitialized()
        )
    }

    /// `blockHashForRound(round)` (zero if the round was never initialized).
    pub async fn block_hash_for_round(&self, round: u64) -> Result<B256, ChainError> {
        view!(
            "blockHashForRound",
            self.contract.blockHashForRound(U256::from(round))
        )
    }

    /// `initializeRound()`.
    pub async fn initialize_round(&self) -> Result<TxOutcome, ChainError> {
        send!("initializeRound", self.contract.initializeRound())
    }

    /// Initializes the current round unless it already is.
    pub async fn initialize_round_if_needed(&self) -> Result<(), ChainError> {
        if !self.current_round_initialized().await? {
            self.initialize_round().await?;
        }
        Ok(())
    }

    /// Mines blocks up to the start of the round `rounds` ahead and initializes it (works on a
    /// local anvil chain only: it uses `anvil_mine`).
    pub async fn advance_rounds(&self, rounds: u64) -> Result<u64, ChainError> {
        let provider = self.contract.provider();
        let length = self.round_length().await?;
        // Rounds count `block.number`, which is the L1 block on Arbitrum (the same on anvil).
        let block = latest_l1_block(provider).await?;
        let target_round = block / length + rounds;
        // Mine up to the round's first block so that calls evaluated at `latest` already see the
        // new round; initializeRound's transaction then lands in the round's second block.
        let blocks = (target_round * length).saturating_sub(block);
        if blocks > 0 {
            provider
                .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
                .await
                .map_err(|source| ChainError::Rpc {
                    call: "anvil_mine",
                    source,
                })?;
        }
        self.initialize_round_if_needed().await?;
        self.current_round().await
    }

    /// What a recipient needs to issue params now: the last seen L1 block, current round, its
    /// block hash and the gas price.
    ///
    /// The block is [`latest_l1_block`], not `eth_blockNumber`: on Arbitrum the latter is the L2
    /// block, while params expiry (`block + 40`) and B's check of it count L1 blocks, as in
    /// go-livepeer.
    pub async fn chain_view(&self) -> Result<ChainView, ChainError> {
        Ok(self.chain_view_and_head().await?.0)
    }

    /// [`chain_view`](Self::chain_view) and the head block it was read at (its own number and
    /// hash, for confirmations and reorgs).
    pub async fn chain_view_and_head(&self) -> Result<(ChainView, ChainHead), ChainError> {
        let provider = self.contract.provider();
        let head = latest_head(provider).await?;
        let gas_price = provider
            .get_gas_price()
            .await
            .map_err(|source| ChainError::from_rpc("eth_gasPrice", source))?;
        let round = self.current_round().await?;
        let round_block_hash = self.block_hash_for_round(round).await?;
        let view = ChainView {
            block: head.l1_block,
            round,
            round_block_hash,
            gas_price: U256::from(gas_price),
        };
        Ok((view, head))
    }
}

/// Client for a ServiceRegistry.
#[derive(Debug, Clone)]
pub struct ServiceRegistryClient {
    contract: ServiceRegistry::ServiceRegistryInstance<DynProvider>,
}

impl ServiceRegistryClient {
    /// A client for the registry at `address`.
    pub fn new(provider: DynProvider, address: Address) -> Self {
        Self {
            contract: ServiceRegistry::new(address, provider),
        }
    }

    /// `setServiceURI(uri)` for the caller.
    pub async fn set_service_uri(&self, uri: &str) -> Result<TxOutcome, ChainError> {
        send!(
            "setServiceURI",
            self.contract.setServiceURI(uri.to_string())
        )
    }

    /// `getServiceURI(addr)`.
    pub async fn service_uri(&self, orchestrator: Address) -> Result<String, ChainError> {
        view!("getServiceURI", self.contract.getServiceURI(orchestrator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funds(
        deposit: u64,
        reserve: u64,
        claimed_this_round: u64,
        claimed_by_us: u64,
    ) -> SenderFunds {
        SenderFunds {
            info: SenderInfo {
                deposit: U256::from(deposit),
                withdraw_round: U256::ZERO,
                reserve_funds_remaining: U256::from(reserve),
                reserve_claimed_in_current_round: U256::from(claimed_this_round),
            },
            claimed_reserve: U256::from(claimed_by_us),
            reserve_recipients: U256::from(4),
        }
    }

    #[test]
    fn max_float_follows_go_livepeers_sender_monitor() {
        // (300 + 100) / 4 recipients − 40 already claimed by this one.
        let f = funds(0, 300, 100, 40);
        assert_eq!(f.reserve_alloc(), U256::from(60));
        assert_eq!(f.max_float(U256::ZERO), U256::from(60));
        // Pending winners come off unless the deposit is at least 3× them.
        assert_eq!(f.max_float(U256::from(25)), U256::from(35));
        assert_eq!(f.max_float(U256::from(99)), U256::ZERO);
        let rich = funds(75, 300, 100, 40);
        assert_eq!(rich.max_float(U256::from(25)), U256::from(60));
        assert_eq!(rich.max_float(U256::from(26)), U256::from(34));
        // A deposit alone guarantees nothing; neither does a reserve without recipients.
        assert_eq!(funds(1_000_000, 0, 0, 0).max_float(U256::ZERO), U256::ZERO);
        let nobody = SenderFunds {
            reserve_recipients: U256::ZERO,
            ..f
        };
        assert_eq!(nobody.max_float(U256::ZERO), U256::ZERO);
    }
}
