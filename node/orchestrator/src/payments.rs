//! The orchestrator's money: price, ticket params, per-session balances and the redemption queue.
//!
//! Design: ticket validation itself is the `protocol` crate's [`TicketRecipient`]; this module adds
//! what a running node needs around it: a chain view refreshed in the background (block, round,
//! gas price) so no request waits on an RPC, balances per (sender, session) as go-livepeer keeps
//! them (signed, because a fee may overdraw the credit of the segment's own tickets), and a queue
//! that redeems winners once their params expired and the sender's funds cover the face value,
//! keeps each redemption until it is final, and records every outcome for `/status`
//! (`payments/redemption.rs`: through chain outages, reorgs and restarts).
//!
//! Hostile payers: a payment's ticket count is capped and its signatures recovered before the
//! recipient's lock is taken ([`TicketVerifier`]), and a sender must have funds on chain, as
//! go-livepeer's sender monitor requires. Each sender's deposit and reserve are read from the
//! TicketBroker and cached per sender for at most the refresh interval (a bounded number of
//! senders, least recently read dropped first); its max float is the reserve allocation for this
//! recipient minus the face value of its winners not yet redeemed (kept whole while the deposit
//! is at least three times that) ([`SenderFunds::max_float`]). Params quote a face value of at
//! most the max float and are refused below the ticket EV, and a payment whose face value the
//! max float does not cover is refused whole with go's error, "insufficient sender reserve".
//! While the chain is known to be out of reach, a sender's cached funds serve without a wait, so
//! paid work goes on through an RPC outage on the last chain view.

mod redemption;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, I256, U256};
use protocol::chain::{ChainError, RoundsManagerClient, SenderFunds, TicketBrokerClient};
use protocol::net;
use protocol::ticket::{
    ChainView, IssueError, PaymentError, PaymentReceipt, PricePerPixel, TicketRecipient,
    TicketVerifier,
};

use crate::journal::TicketJournal;
use crate::metrics::Metrics;
use redemption::{Pending, Redemptions};
pub use redemption::{RedemptionCounts, RedemptionEvent, RedemptionRecord};

/// Senders whose funds are cached at most; the least recently read is dropped first.
const MAX_CACHED_SENDERS: usize = 10_000;
/// Longest wait for a sender's funds from the chain before the request is refused.
const SENDER_FUNDS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait to refresh funds already cached before the cached copy serves: the refresh is
/// on the path of a segment or a GetOrchestrator, which a broadcaster gives seconds (go-livepeer
/// serves its sender monitor's cached funds and never reads the chain there).
const STALE_FUNDS_REFRESH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a sender's funds read from the chain are used unless set otherwise
/// (`payments.sender_refresh_ms`).
pub const DEFAULT_SENDER_REFRESH: Duration = Duration::from_secs(5);
/// Blocks mined on top of a redemption before it is final, unless set otherwise
/// (`payments.confirmations`). go-livepeer has no such depth (a receipt with status 1 is final
/// to it), so this is the depth commonly waited for on Ethereum.
pub const DEFAULT_CONFIRMATIONS: u64 = 6;
/// Longest wait for one JSON-RPC request unless set otherwise (`payments.chain_timeout_ms`):
/// go-livepeer's `ethRPCTimeout` (cmd/livepeer/starter).
pub const DEFAULT_CHAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The chain connection of an on-chain node.
#[derive(Debug, Clone)]
pub struct ChainLink {
    /// TicketBroker, sending as the orchestrator.
    pub broker: TicketBrokerClient,
    /// RoundsManager.
    pub rounds: RoundsManagerClient,
}

/// Why a payment was refused.
#[derive(Debug, thiserror::Error)]
pub enum PaymentRejected {
    /// A field is malformed or a debit failed.
    #[error("{0}")]
    Payment(#[from] PaymentError),
    /// At least one ticket was refused.
    #[error("{refused} of {total} tickets refused: {first}")]
    Tickets {
        /// Refused tickets.
        refused: usize,
        /// Tickets in the payment.
        total: usize,
        /// First reason.
        first: String,
    },
    /// A priced node got no tickets at all.
    #[error("missing payment")]
    Missing,
    /// The sender's max float does not cover a ticket's face value (go-livepeer's
    /// `errInsufficientSenderReserve`, whose text this is).
    #[error("insufficient sender reserve")]
    InsufficientSenderReserve,
    /// The sender's funds could not be read from the chain.
    #[error("cannot read the funds of sender {sender}: {reason}")]
    SenderFunds {
        /// Sender.
        sender: Address,
        /// What failed.
        reason: String,
    },
}

/// A sender's funds as last read from the chain.
#[derive(Debug, Clone, Copy)]
struct CachedFunds {
    funds: SenderFunds,
    fetched: Instant,
    read: Instant,
    /// A redemption changed the funds since they were read: the next read refreshes them,
    /// whatever their age.
    stale: bool,
}

/// Price, tickets, balances and redemptions of one node.
#[derive(Debug)]
pub struct Payments {
    price: PricePerPixel,
    recipient: Option<Mutex<TicketRecipient>>,
    verifier: Option<TicketVerifier>,
    chain: Option<ChainLink>,
    senders: Mutex<HashMap<Address, CachedFunds>>,
    sender_refresh: Duration,
    /// Face value of each sender's winners queued or being redeemed.
    unredeemed: Mutex<HashMap<Address, U256>>,
    view: RwLock<ChainView>,
    /// Whether the last chain call answered; while it did not, cached funds serve at once.
    reachable: AtomicBool,
    chain_timeout: Duration,
    balances: Mutex<HashMap<(Address, String), I256>>,
    queue: Mutex<VecDeque<Pending>>,
    redemptions: Redemptions,
    redeem_attempts: u32,
    confirmations: u64,
    passes: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
    journal: Option<TicketJournal>,
}

impl Payments {
    /// Payments for a node charging `price`; `recipient` and `chain` are absent off-chain.
    pub fn new(
        price: PricePerPixel,
        recipient: Option<TicketRecipient>,
        chain: Option<ChainLink>,
        view: ChainView,
        redeem_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            price,
            verifier: recipient.as_ref().map(TicketRecipient::verifier),
            recipient: recipient.map(Mutex::new),
            chain,
            senders: Mutex::new(HashMap::new()),
            sender_refresh: DEFAULT_SENDER_REFRESH,
            unredeemed: Mutex::new(HashMap::new()),
            view: RwLock::new(view),
            reachable: AtomicBool::new(true),
            chain_timeout: DEFAULT_CHAIN_TIMEOUT,
            balances: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            redemptions: Redemptions::default(),
            redeem_attempts: redeem_attempts.max(1),
            confirmations: DEFAULT_CONFIRMATIONS,
            passes: Default::default(),
            metrics,
            journal: None,
        }
    }

    /// Records every received ticket in `journal` as well.
    pub fn with_journal(self, journal: TicketJournal) -> Self {
        Self {
            journal: Some(journal),
            ..self
        }
    }

    /// Reads a sender's funds from the chain again once they are `refresh` old (zero: on every
    /// use).
    pub fn with_sender_refresh(self, refresh: Duration) -> Self {
        Self {
            sender_refresh: refresh,
            ..self
        }
    }

    /// Keeps each redemption unconfirmed until `blocks` were mined on top of it (0: final when
    /// mined).
    pub fn with_confirmations(self, blocks: u64) -> Self {
        Self {
            confirmations: blocks,
            ..self
        }
    }

    /// Gives up on a chain call after `timeout` per request it makes (the provider should time
    /// out each request itself; this bounds the call whatever it does).
    pub fn with_chain_timeout(self, timeout: Duration) -> Self {
        Self {
            chain_timeout: timeout,
            ..self
        }
    }

    /// Whether the last chain call answered.
    pub fn chain_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Whether segments must be paid for.
    pub fn priced(&self) -> bool {
        self.recipient.is_some() && self.price.price_per_unit > 0
    }

    /// The price in force.
    pub fn price(&self) -> PricePerPixel {
        self.price
    }

    /// The chain as last seen.
    pub fn view(&self) -> ChainView {
        *self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Fresh ticket params for `sender`, or `None` when the node does not charge. The face value
    /// is at most the sender's max float; a sender whose max float is below the ticket EV gets
    /// [`PaymentRejected::InsufficientSenderReserve`].
    pub async fn ticket_params(
        &self,
        sender: Address,
    ) -> Result<Option<net::TicketParams>, PaymentRejected> {
        let Some(recipient) = self.recipient.as_ref().filter(|_| self.priced()) else {
            return Ok(None);
        };
        let max_float = self.max_float(sender).await?.unwrap_or(U256::MAX);
        let view = self.view();
        let issued = recipient
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue_params_within(sender, self.price, &view, max_float);
        match issued {
            Ok(params) => Ok(Some(params.to_message())),
            Err(IssueError::InsufficientSenderReserve { max_float, ev }) => {
                tracing::info!(%sender, %max_float, %ev, "refusing ticket params: insufficient sender reserve");
                Err(PaymentRejected::InsufficientSenderReserve)
            }
            Err(err) => {
                tracing::error!(%err, "cannot issue ticket params");
                Ok(None)
            }
        }
    }

    /// Validates a decoded payment and credits the session; refuses it when any ticket fails.
    ///
    /// The ticket cap and the signature recoveries run before the recipient's lock is taken,
    /// and the sender's funds are checked before anything is credited.
    pub async fn process(
        &self,
        payment: &net::Payment,
        session: &str,
    ) -> Result<PaymentReceipt, PaymentRejected> {
        let (Some(recipient), Some(verifier)) = (&self.recipient, &self.verifier) else {
            return Ok(PaymentReceipt {
                sender: Address::ZERO,
                accepted: 0,
                winners: 0,
                credited: U256::ZERO,
                rejected: Vec::new(),
            });
        };
        let verified = verifier.verify(payment)?;
        let received_ms = redemption::unix_ms();
        let received = verified.payment();
        let total = received.tickets.len();
        self.metrics
            .tickets_received
            .fetch_add(total as u64, Ordering::Relaxed);
        if let Some(max_float) = self.max_float(received.sender).await?
            && max_float < received.params.face_value
        {
            let refusal = PaymentRejected::InsufficientSenderReserve;
            tracing::info!(sender = %received.sender, %max_float, face_value = %received.params.face_value, "refusing a payment: {refusal}");
            self.journal_tickets(&verified, received_ms, |_| Some(refusal.to_string()));
            return Err(refusal);
        }
        let block = self.view().block;
        let (receipt, winners) = {
            let mut recipient = recipient.lock().unwrap_or_else(|e| e.into_inner());
            let receipt = recipient.receive_verified(&verified, block);
            (receipt, recipient.take_redeemable(u64::MAX))
        };
        self.journal_tickets(&verified, received_ms, |nonce| {
            receipt
                .rejected
                .iter()
                .find(|(n, _)| *n == nonce)
                .map(|(_, rejection)| rejection.to_string())
        });
        self.metrics
            .tickets_accepted
            .fetch_add(u64::from(receipt.accepted), Ordering::Relaxed);
        self.metrics
            .tickets_won
            .fetch_add(u64::from(receipt.winners), Ordering::Relaxed);
        {
            let mut unredeemed = self.unredeemed.lock().unwrap_or_else(|e| e.into_inner());
            for winner in &winners {
                let owed = unredeemed.entry(winner.ticket.sender).or_default();
                *owed = owed.saturating_add(winner.ticket.face_value);
            }
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).extend(
            winners
                .into_iter()
                .map(|winner| Pending::new(winner, Some(received_ms), false)),
        );
        self.adjust(receipt.sender, session, to_signed(receipt.credited));
        if let Some((_, first)) = receipt.rejected.first() {
            return Err(PaymentRejected::Tickets {
                refused: receipt.rejected.len(),
                total,
                first: first.to_string(),
            });
        }
        Ok(receipt)
    }

    /// Appends each ticket of `verified` to the journal with the verdict `reason` gives for its
    /// nonce (`None`: accepted).
    fn journal_tickets(
        &self,
        verified: &protocol::ticket::VerifiedPayment,
        received_ms: u64,
        reason: impl Fn(u32) -> Option<String>,
    ) {
        let Some(journal) = &self.journal else {
            return;
        };
        for signed in &verified.payment().tickets {
            let reason = reason(signed.ticket.sender_nonce);
            let rand = verified.recipient_rand();
            if let Err(err) = journal.record(signed, rand, reason.as_deref(), received_ms) {
                tracing::warn!(%err, "cannot append to the ticket journal");
            }
        }
    }

    /// The sender's max float ([`SenderFunds::max_float`] less its unredeemed winners), or
    /// `None` for a node without a chain, which has no funds to check.
    async fn max_float(&self, sender: Address) -> Result<Option<U256>, PaymentRejected> {
        let Some(chain) = &self.chain else {
            return Ok(None);
        };
        let funds = self.sender_funds(chain, sender).await?;
        let unredeemed = self
            .unredeemed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sender)
            .copied()
            .unwrap_or_default();
        Ok(Some(funds.max_float(unredeemed)))
    }

    /// `sender`'s funds: the cached copy while it is younger than the refresh interval, else
    /// read from the chain (the cached copy still serves when the chain does not answer, at once
    /// while the chain is known to be out of reach).
    async fn sender_funds(
        &self,
        chain: &ChainLink,
        sender: Address,
    ) -> Result<SenderFunds, PaymentRejected> {
        let now = Instant::now();
        let cached = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&sender)
            .map(|entry| {
                entry.read = now;
                *entry
            });
        if let Some(entry) = cached
            && !entry.stale
            && now.duration_since(entry.fetched) < self.sender_refresh
        {
            return Ok(entry.funds);
        }
        if let Some(entry) = cached
            && !self.chain_reachable()
        {
            return Ok(entry.funds);
        }
        let claimant = self
            .verifier
            .as_ref()
            .map(|v| v.address())
            .unwrap_or_default();
        let read = self
            .chain_call(
                "sender funds",
                if cached.is_some() {
                    STALE_FUNDS_REFRESH_TIMEOUT
                } else {
                    SENDER_FUNDS_TIMEOUT
                },
                chain.broker.sender_funds(sender, claimant),
            )
            .await
            .map_err(|e| e.to_string());
        match (read, cached) {
            (Ok(funds), _) => {
                let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
                if senders.len() >= MAX_CACHED_SENDERS
                    && !senders.contains_key(&sender)
                    && let Some(oldest) = senders
                        .iter()
                        .min_by_key(|(_, entry)| entry.read)
                        .map(|(address, _)| *address)
                {
                    senders.remove(&oldest);
                }
                senders.insert(
                    sender,
                    CachedFunds {
                        funds,
                        fetched: now,
                        read: now,
                        stale: false,
                    },
                );
                Ok(funds)
            }
            (Err(reason), Some(entry)) => {
                tracing::warn!(%sender, %reason, "cannot refresh a sender's funds; using the last read");
                Ok(entry.funds)
            }
            (Err(reason), None) => Err(PaymentRejected::SenderFunds { sender, reason }),
        }
    }

    /// Runs a chain call for at most `timeout`, keeping [`Self::chain_reachable`] up to date: a
    /// call past it is [`ChainError::Unreachable`].
    async fn chain_call<T>(
        &self,
        call: &'static str,
        timeout: Duration,
        future: impl std::future::Future<Output = Result<T, ChainError>>,
    ) -> Result<T, ChainError> {
        let result = match tokio::time::timeout(timeout, future).await {
            Ok(result) => result,
            Err(_) => Err(ChainError::Unreachable {
                call,
                reason: format!("no answer within {timeout:?}"),
            }),
        };
        match &result {
            Ok(_) => self.reachable.store(true, Ordering::Relaxed),
            Err(err) if err.is_unreachable() => self.reachable.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// Whether the session's credit covers at least one ticket's EV (go-livepeer's rule before
    /// transcoding). Always true for a node that does not charge.
    pub fn sufficient_balance(&self, sender: Address, session: &str) -> bool {
        let Some(recipient) = &self.recipient else {
            return true;
        };
        if !self.priced() {
            return true;
        }
        let ev = recipient
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config()
            .ticket_ev;
        self.balance(sender, session) >= to_signed(ev)
    }

    /// Charges the fee of `pixels` output pixels to the session; returns the fee.
    pub fn debit_pixels(&self, sender: Address, session: &str, pixels: u64) -> U256 {
        if !self.priced() {
            return U256::ZERO;
        }
        let fee = self.price.fee(pixels);
        self.adjust(sender, session, -to_signed(fee));
        fee
    }

    /// The session's credit (negative when overdrawn).
    pub fn balance(&self, sender: Address, session: &str) -> I256 {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(sender, session.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Sum of all sessions' credit, wei.
    pub fn total_balance(&self) -> I256 {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .fold(I256::ZERO, |a, b| a.saturating_add(*b))
    }

    /// Every session's balance, for `/status`.
    pub fn balances(&self) -> Vec<(Address, String, I256)> {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((a, s), b)| (*a, s.clone(), *b))
            .collect()
    }

    /// Forgets a closed session's balance.
    pub fn forget_session(&self, session: &str) {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, s), _| s != session);
    }

    fn adjust(&self, sender: Address, session: &str, delta: I256) {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let entry = balances.entry((sender, session.to_string())).or_default();
        *entry = entry.saturating_add(delta);
    }
}

fn to_signed(value: U256) -> I256 {
    I256::try_from(value).unwrap_or(I256::MAX)
}
