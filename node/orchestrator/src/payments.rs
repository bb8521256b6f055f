//! The orchestrator's money: price, ticket params, per-session balances and the redemption queue.
//!
//! Design: ticket validation itself is the `protocol` crate's [`TicketRecipient`]; this module adds
//! what a running node needs around it: a chain view refreshed in the background (block, round,
//! gas price) so no request waits on an RPC, balances per (sender, session) as go-livepeer keeps
//! them (signed, because a fee may overdraw the credit of the segment's own tickets), and a queue
//! that redeems winners once their params expired and the sender's funds cover the face value,
//! retrying failures and recording every outcome for `/status`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alloy::primitives::{Address, B256, I256, U256};
use protocol::chain::{RoundsManagerClient, TicketBrokerClient};
use protocol::net;
use protocol::ticket::{
    ChainView, PaymentError, PaymentReceipt, PricePerPixel, ReceivedPayment, TicketRecipient,
    WinningTicket,
};
use serde::Serialize;

use crate::faults::Faults;
use crate::journal::TicketJournal;
use crate::metrics::Metrics;

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
}

/// One redemption outcome, as `/status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RedemptionRecord {
    /// Ticket hash.
    pub ticket_hash: B256,
    /// Ticket sender.
    pub sender: Address,
    /// Sender nonce.
    pub sender_nonce: u32,
    /// Face value, wei (decimal).
    pub face_value: String,
    /// `redeemed` or `failed`.
    pub status: &'static str,
    /// Transaction hash when redeemed.
    pub tx_hash: Option<B256>,
    /// Block when redeemed.
    pub block: Option<u64>,
    /// Attempts made.
    pub attempts: u32,
    /// Last error.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Pending {
    winner: WinningTicket,
    attempts: u32,
    last_error: Option<String>,
}

/// Price, tickets, balances and redemptions of one node.
#[derive(Debug)]
pub struct Payments {
    price: PricePerPixel,
    recipient: Option<Mutex<TicketRecipient>>,
    chain: Option<ChainLink>,
    view: RwLock<ChainView>,
    balances: Mutex<HashMap<(Address, String), I256>>,
    queue: Mutex<VecDeque<Pending>>,
    records: Mutex<Vec<RedemptionRecord>>,
    redeem_attempts: u32,
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
            recipient: recipient.map(Mutex::new),
            chain,
            view: RwLock::new(view),
            balances: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            records: Mutex::new(Vec::new()),
            redeem_attempts: redeem_attempts.max(1),
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

    /// Fresh ticket params for `sender`, or `None` when the node does not charge.
    pub fn ticket_params(&self, sender: Address) -> Option<net::TicketParams> {
        if !self.priced() {
            return None;
        }
        let view = self.view();
        let recipient = self.recipient.as_ref()?;
        let mut recipient = recipient.lock().unwrap_or_else(|e| e.into_inner());
        match recipient.issue_params(sender, self.price, &view) {
            Ok(params) => Some(params.to_message()),
            Err(err) => {
                tracing::error!(%err, "cannot issue ticket params");
                None
            }
        }
    }

    /// Validates a decoded payment and credits the session; refuses it when any ticket fails.
    pub fn process(
        &self,
        payment: &net::Payment,
        session: &str,
    ) -> Result<PaymentReceipt, PaymentRejected> {
        let Some(recipient) = &self.recipient else {
            return Ok(PaymentReceipt {
                sender: Address::ZERO,
                accepted: 0,
                winners: 0,
                credited: U256::ZERO,
                rejected: Vec::new(),
            });
        };
        let block = self.view().block;
        let (receipt, winners, rands) = {
            let mut recipient = recipient.lock().unwrap_or_else(|e| e.into_inner());
            let receipt = recipient.receive_payment(payment, block)?;
            let rands = self.journal.as_ref().and_then(|_| {
                let received = ReceivedPayment::from_message(payment).ok()?;
                let seed = received.params.seed;
                Some(
                    received
                        .tickets
                        .into_iter()
                        .map(|t| {
                            let rand = recipient.recipient_rand_for(&t.ticket, seed);
                            (t, rand)
                        })
                        .collect::<Vec<_>>(),
                )
            });
            (receipt, recipient.take_redeemable(u64::MAX), rands)
        };
        if let (Some(journal), Some(rands)) = (&self.journal, rands) {
            for (signed, rand) in &rands {
                let reason = receipt
                    .rejected
                    .iter()
                    .find(|(nonce, _)| *nonce == signed.ticket.sender_nonce)
                    .map(|(_, rejection)| rejection.to_string());
                if let Err(err) = journal.record(signed, *rand, reason.as_deref()) {
                    tracing::warn!(%err, "cannot append to the ticket journal");
                }
            }
        }
        let total = payment.ticket_sender_params.len();
        self.metrics
            .tickets_received
            .fetch_add(total as u64, Ordering::Relaxed);
        self.metrics
            .tickets_accepted
            .fetch_add(u64::from(receipt.accepted), Ordering::Relaxed);
        self.metrics
            .tickets_won
            .fetch_add(u64::from(receipt.winners), Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(winners.into_iter().map(|winner| Pending {
                winner,
                attempts: 0,
                last_error: None,
            }));
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

    /// Winners waiting for redemption.
    pub fn pending_redemptions(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every redemption outcome so far.
    pub fn redemptions(&self) -> Vec<RedemptionRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Passes the redemption loop has made.
    pub fn redemption_passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    fn adjust(&self, sender: Address, session: &str, delta: I256) {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let entry = balances.entry((sender, session.to_string())).or_default();
        *entry = entry.saturating_add(delta);
    }

    /// Refreshes the chain view and redeems what is due, every `poll` until `stop` fires.
    pub async fn run_chain(
        self: Arc<Self>,
        poll: Duration,
        faults: Faults,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        loop {
            match chain.rounds.chain_view().await {
                Ok(view) => {
                    *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
                    if let Some(recipient) = &self.recipient {
                        recipient
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .prune_nonces(view.block);
                    }
                }
                Err(err) => tracing::warn!(%err, "refreshing the chain view"),
            }
            if !faults.snapshot().stop_redeeming {
                self.redeem_due(&chain).await;
            }
            self.passes.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn redeem_due(&self, chain: &ChainLink) {
        let block = self.view().block;
        let due: Vec<Pending> = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let (due, waiting): (Vec<_>, Vec<_>) = queue
                .drain(..)
                .partition(|p| p.winner.ticket.params_expiration_block < block);
            *queue = waiting.into();
            due
        };
        for mut pending in due {
            let ticket = &pending.winner.ticket;
            match chain.broker.sender_info(ticket.sender).await {
                Ok(info)
                    if info.deposit.saturating_add(info.reserve_funds_remaining)
                        < ticket.face_value =>
                {
                    // Funds do not cover it yet: wait without spending an attempt.
                    self.requeue(pending);
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    pending.last_error = Some(err.to_string());
                    self.requeue(pending);
                    continue;
                }
            }
            pending.attempts += 1;
            match chain.broker.redeem_winning_ticket(&pending.winner).await {
                Ok(tx) => {
                    self.metrics
                        .tickets_redeemed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(tx = %tx.tx_hash, block = tx.block_number, "redeemed a winning ticket");
                    self.record(
                        &pending,
                        "redeemed",
                        Some((tx.tx_hash, tx.block_number)),
                        None,
                    );
                }
                Err(err) => {
                    self.metrics
                        .redemption_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%err, attempt = pending.attempts, "redeeming a winning ticket");
                    if pending.attempts >= self.redeem_attempts {
                        self.record(&pending, "failed", None, Some(err.to_string()));
                    } else {
                        pending.last_error = Some(err.to_string());
                        self.requeue(pending);
                    }
                }
            }
        }
    }

    fn requeue(&self, pending: Pending) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(pending);
    }

    fn record(
        &self,
        pending: &Pending,
        status: &'static str,
        tx: Option<(B256, u64)>,
        error: Option<String>,
    ) {
        let ticket = &pending.winner.ticket;
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RedemptionRecord {
                ticket_hash: ticket.hash(),
                sender: ticket.sender,
                sender_nonce: ticket.sender_nonce,
                face_value: ticket.face_value.to_string(),
                status,
                tx_hash: tx.map(|t| t.0),
                block: tx.map(|t| t.1),
                attempts: pending.attempts,
                error: error.or_else(|| pending.last_error.clone()),
            });
    }
}

fn to_signed(value: U256) -> I256 {
    I256::try_from(value).unwrap_or(I256::MAX)
}
