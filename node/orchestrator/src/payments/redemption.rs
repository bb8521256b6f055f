//! Redeeming winning tickets so that none is lost and none is paid twice, whatever the chain
//! does: an RPC endpoint that stops answering, a reorg that drops a redemption, a node killed and
//! restarted.
//!
//! A winner moves through three places: the queue (waiting for its params to expire and the
//! sender's funds, or to be tried again), the unconfirmed list (its redemption was mined but is
//! less than `payments.confirmations` blocks deep) and its [`RedemptionRecord`], which `/status`
//! shows and which outlives it. The rules, and where they come from:
//!
//! - **Look before sending.** Every try first asks the chain whether the ticket is already used
//!   (go-livepeer's sender monitor checks `IsUsedTicket` before each redemption,
//!   `pm/sendermonitor.go`); a used ticket is recorded as redeemed, never sent again. So a
//!   transaction whose receipt could not be read during an outage, or a send whose answer was
//!   lost, costs no second transaction and no spurious "ticket is used" failure. A transaction
//!   sent but not read is looked up by hash first: mined, it is the redemption; still in the
//!   node's pool, it is waited for; unknown to the node, it is gone and the ticket is sent again.
//! - **Only the chain's "no" spends an attempt.** A revert, a failed transaction or an error
//!   answer counts against `payments.redeem_attempts`; a call that could not reach the chain (no
//!   connection, no answer within `payments.chain_timeout_ms`) counts only in
//!   `unreachable` and ends the pass, since every further call would wait out the same timeout.
//!   go-livepeer keeps retrying such tickets forever (`pm/queue.go` marks only
//!   non-retryable errors); we give up on refusals because a ticket the chain refuses five times
//!   will not pass the sixth.
//! - **Mined is not final.** A redemption stays unconfirmed until `confirmations` blocks are on
//!   top of it; at each new head (a reorg always changes the head's hash) the ticket is checked
//!   again with `usedTickets`, and one the chain no longer holds as used goes back in the queue,
//!   its record saying `reorged` until it is redeemed again. go-livepeer takes a receipt with
//!   status 1 as final (`eth/client.go` `CheckTx`), so this is ours.
//! - **A ticket the chain can no longer take is failed, with why.** Past its creation round's
//!   validity (`TICKET_VALIDITY_PERIOD`), the contract refuses it with "ticket is expired":
//!   that is recorded as `failed` at once, as go-livepeer's queue stops selecting tickets older
//!   than `ticketValidityPeriod` rounds (`pm/queue.go`), except that ours says so.
//! - **A restart loses nothing.** The ticket journal holds every accepted winner with what
//!   `redeemWinningTicket` needs; [`Payments::recover`] queues them at start, and the first
//!   look at the chain drops those already used (go-livepeer keeps its queue in sqlite for the
//!   same reason, `common/db.go`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use protocol::chain::{ChainError, ChainHead, TICKET_VALIDITY_PERIOD, TX_TIMEOUT, TxStatus};
use protocol::ticket::{ChainView, WinningTicket};
use serde::Serialize;

use super::{ChainLink, Payments};
use crate::faults::Faults;
use crate::journal::JournaledWinner;

/// The TicketBroker's revert while the current round waits to be initialized.
const ROUND_NOT_INITIALIZED: &str = "current round is not initialized";
/// Requests a chain view read makes (head, gas price, round, round hash): its call may take
/// this many request timeouts.
const VIEW_REQUESTS: u32 = 4;
/// Requests a send makes before the node has the transaction (gas, nonce, fees, send).
const SEND_REQUESTS: u32 = 5;
/// How often a sent redemption's receipt is read while the pass waits for it.
const RECEIPT_POLL: Duration = Duration::from_millis(100);

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A winner in the redemption queue.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    winner: WinningTicket,
    hash: B256,
    /// Attempts the chain ruled on; they count against `redeem_attempts`.
    attempts: u32,
    /// Tries that could not reach the chain.
    unreachable: u32,
    last_error: Option<String>,
    /// A redemption sent whose outcome was not read, and when: the next try looks it up before
    /// sending another.
    sent: Option<(B256, Instant)>,
    /// Read back from the journal at start: used on chain means redeemed before the restart.
    recovered: bool,
    received_ms: Option<u64>,
}

impl Pending {
    pub(crate) fn new(winner: WinningTicket, received_ms: Option<u64>, recovered: bool) -> Self {
        Self {
            hash: winner.ticket.hash(),
            winner,
            attempts: 0,
            unreachable: 0,
            last_error: None,
            sent: None,
            recovered,
            received_ms,
        }
    }
}

/// A redemption mined but not yet `confirmations` blocks deep.
#[derive(Debug)]
struct Unconfirmed {
    pending: Pending,
    /// Our transaction, when it is known (a ticket found used after a lost answer has none).
    tx: Option<B256>,
    /// The block it was mined in, or the head when it was found used without a receipt.
    block: u64,
}

/// One winning ticket's redemption, as `/status` lists it.
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
    /// `redeemed` (mined; final once `confirmed`), `reorged` (a reorg dropped its redemption and
    /// it is back in the queue) or `failed` (given up: `error` says why).
    pub status: &'static str,
    /// The redeeming transaction, when known.
    pub tx_hash: Option<B256>,
    /// The block it was mined in.
    pub block: Option<u64>,
    /// Whether `payments.confirmations` blocks are on top of it.
    pub confirmed: bool,
    /// Attempts the chain ruled on (they count against `payments.redeem_attempts`).
    pub attempts: u32,
    /// Tries that could not reach the chain (they spend no attempt).
    pub unreachable: u32,
    /// Times a reorg dropped its redemption.
    pub reorgs: u32,
    /// Last error.
    pub error: Option<String>,
    /// When the ticket was received (unix ms), if known.
    pub received_ms: Option<u64>,
    /// When its redemption was last seen mined (unix ms).
    pub redeemed_ms: Option<u64>,
    /// Every change, oldest first.
    pub history: Vec<RedemptionEvent>,
}

/// One change of a [`RedemptionRecord`].
#[derive(Debug, Clone, Serialize)]
pub struct RedemptionEvent {
    /// `redeemed`, `moved` (a reorg put the transaction in another block), `reorged`,
    /// `confirmed` or `failed`.
    pub status: &'static str,
    /// Transaction.
    pub tx_hash: Option<B256>,
    /// Block.
    pub block: Option<u64>,
    /// Error, for `failed`.
    pub error: Option<String>,
    /// When (unix ms).
    pub at_ms: u64,
}

/// Counts of redemption outcomes, for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedemptionCounts {
    /// Winners whose redemption is mined now, confirmed or not.
    pub redeemed: u64,
    /// Of those, `confirmations` deep.
    pub confirmed: u64,
    /// Of those, not yet.
    pub unconfirmed: u64,
    /// Redemptions a reorg dropped (each went back in the queue), since start.
    pub reorged: u64,
    /// Winners given up.
    pub failed: u64,
    /// Winners in the queue, due or not (a reorged one included).
    pub pending: u64,
    /// Tries that could not reach the chain, since start.
    pub unreachable: u64,
    /// Attempts the chain refused, since start.
    pub refused: u64,
}

/// The records and the unconfirmed list.
#[derive(Debug, Default)]
pub(crate) struct Redemptions {
    unconfirmed: Mutex<Vec<Unconfirmed>>,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    list: Vec<RedemptionRecord>,
    by_hash: HashMap<B256, usize>,
}

/// How one try ended.
enum Tried {
    /// Recorded, waiting again, or given up: the pass goes on.
    Done,
    /// The chain is out of reach: the pass stops.
    Unreachable,
}

impl Payments {
    /// Winners waiting for redemption (a reorged one included).
    pub fn pending_redemptions(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every winner's redemption so far, one record per ticket.
    pub fn redemptions(&self) -> Vec<RedemptionRecord> {
        self.redemptions
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clone()
    }

    /// Counts of redemption outcomes.
    pub fn redemption_counts(&self) -> RedemptionCounts {
        let mut counts = RedemptionCounts {
            pending: self.pending_redemptions() as u64,
            reorged: self.metrics.tickets_reorged.load(Ordering::Relaxed),
            unreachable: self.metrics.redemption_unreachable.load(Ordering::Relaxed),
            refused: self.metrics.redemption_failures.load(Ordering::Relaxed),
            ..RedemptionCounts::default()
        };
        let records = self
            .redemptions
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for record in &records.list {
            match record.status {
                "redeemed" => {
                    counts.redeemed += 1;
                    if record.confirmed {
                        counts.confirmed += 1;
                    } else {
                        counts.unconfirmed += 1;
                    }
                }
                "failed" => counts.failed += 1,
                _ => {}
            }
        }
        counts
    }

    /// Passes the redemption loop has made.
    pub fn redemption_passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Queues the winners a journal holds for `recipient` (this node's address) that are not in
    /// the queue yet; the first look at the chain drops those already used. Returns how many
    /// were queued.
    pub fn recover(&self, winners: Vec<JournaledWinner>, recipient: Address) -> usize {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut queued = 0;
        for journaled in winners {
            let pending = Pending::new(journaled.winner, journaled.received_ms, true);
            if pending.winner.ticket.recipient != recipient
                || queue.iter().any(|p| p.hash == pending.hash)
            {
                continue;
            }
            self.owe(&pending);
            queue.push_back(pending);
            queued += 1;
        }
        queued
    }

    /// Writes the ticket journal's lines that a full disk held back, once there is room again,
    /// so that they reach the disk without waiting for the next ticket. A failure is the
    /// journal's to report: it warns on each ticket it cannot write.
    fn flush_journal(&self) {
        if let Some(journal) = &self.journal
            && journal.pending_lines() > 0
            && let Err(err) = journal.flush_pending()
        {
            tracing::debug!(%err, "the ticket journal's waiting lines stay in memory");
        }
    }

    /// Refreshes the chain view, re-checks unconfirmed redemptions at each new head, redeems what
    /// is due and writes the journal lines a full disk held back, every `poll` until `stop` fires.
    pub async fn run_chain(
        self: Arc<Self>,
        poll: Duration,
        faults: Faults,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(chain) = self.chain.clone() else {
            return;
        };
        let mut head: Option<ChainHead> = None;
        // The head at which every unconfirmed redemption was last found still used.
        let mut checked: Option<B256> = None;
        loop {
            let read = self
                .chain_call(
                    "chain view",
                    self.chain_timeout * VIEW_REQUESTS,
                    chain.rounds.chain_view_and_head(),
                )
                .await;
            match read {
                Ok((view, now)) => {
                    *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
                    if let Some(recipient) = &self.recipient {
                        recipient
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .prune_nonces(view.block);
                    }
                    head = Some(now);
                }
                Err(err) => tracing::warn!(%err, "refreshing the chain view"),
            }
            if let Some(now) = head
                && checked != Some(now.hash)
                && self.check_unconfirmed(&chain, now).await
            {
                checked = Some(now.hash);
            }
            if !faults.snapshot().stop_redeeming {
                self.redeem_due(&chain, head.map_or(0, |h| h.number)).await;
            }
            self.flush_journal();
            self.passes.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Checks each unconfirmed redemption at `head`: a ticket no longer used goes back in the
    /// queue, one `confirmations` deep is final. False when a check could not be made (it is
    /// made again at the next poll).
    async fn check_unconfirmed(&self, chain: &ChainLink, head: ChainHead) -> bool {
        let entries = std::mem::take(
            &mut *self
                .redemptions
                .unconfirmed
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let mut keep = Vec::new();
        let mut complete = true;
        for mut entry in entries {
            if !complete {
                keep.push(entry);
                continue;
            }
            let used = self
                .chain_call(
                    "usedTickets",
                    self.chain_timeout,
                    chain.broker.is_ticket_used(entry.pending.hash),
                )
                .await;
            match used {
                Ok(false) => self.reorged(entry),
                Ok(true) if head.number >= entry.block.saturating_add(self.confirmations) => {
                    // About to be final: count the depth from where the transaction is now,
                    // since a reorg may have mined it again in another block.
                    let Some(tx) = entry.tx else {
                        self.confirmed(entry);
                        continue;
                    };
                    let status = self.receipt(chain, tx).await;
                    match status {
                        Ok(TxStatus::Mined(outcome)) if outcome.block_number == entry.block => {
                            self.confirmed(entry);
                        }
                        Ok(TxStatus::Mined(outcome)) => {
                            entry.block = outcome.block_number;
                            self.update_record(&entry.pending, |record| {
                                record.block = Some(outcome.block_number);
                                record.history.push(event(
                                    "moved",
                                    Some(tx),
                                    Some(outcome.block_number),
                                    None,
                                ));
                            });
                            keep.push(entry);
                        }
                        Ok(TxStatus::Pending | TxStatus::Failed { .. }) => {
                            // Used, but not by our transaction as the node sees it now: count
                            // the depth from this head.
                            entry.tx = None;
                            entry.block = head.number;
                            keep.push(entry);
                        }
                        Err(err) => {
                            tracing::warn!(%err, "reading a redemption's receipt");
                            complete = false;
                            keep.push(entry);
                        }
                    }
                }
                Ok(true) => keep.push(entry),
                Err(err) => {
                    tracing::warn!(%err, ticket = %entry.pending.hash, "checking a redemption is still on chain");
                    complete = false;
                    keep.push(entry);
                }
            }
        }
        self.redemptions
            .unconfirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(keep);
        complete
    }

    /// Tries every winner whose params expired (`view.block` past the expiration block), in
    /// queue order, until the chain is found out of reach. Each stays in the queue while it is
    /// tried, so the queue's length is always the winners not yet redeemed.
    async fn redeem_due(&self, chain: &ChainLink, head_number: u64) {
        let view = self.view();
        let due: Vec<Pending> = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.winner.ticket.params_expiration_block < view.block)
            .cloned()
            .collect();
        for pending in due {
            if let Tried::Unreachable = self.try_redeem(chain, pending, &view, head_number).await {
                // Every further call would wait out the same timeout.
                break;
            }
        }
    }

    /// One try at redeeming `pending`.
    async fn try_redeem(
        &self,
        chain: &ChainLink,
        mut pending: Pending,
        view: &ChainView,
        head_number: u64,
    ) -> Tried {
        if let Some((tx, sent_at)) = pending.sent {
            pending = match self.settled_by_receipt(chain, pending, tx).await {
                Ok(tried) => return tried,
                Err(still_pending) => still_pending,
            };
            let known = self
                .chain_call(
                    "transaction lookup",
                    self.chain_timeout,
                    chain.broker.tx_known(tx),
                )
                .await;
            match known {
                Err(err) => return self.unreachable_or_wait(pending, err),
                // Still in the node's pool: sending another would only race it.
                Ok(true) => {
                    if sent_at.elapsed() > TX_TIMEOUT {
                        tracing::warn!(%tx, "a redemption has waited in the pool for over {TX_TIMEOUT:?}");
                    }
                    self.requeue(pending);
                    return Tried::Done;
                }
                // Dropped (by a reorg, or from the node's pool): look at the ticket.
                Ok(false) => pending.sent = None,
            }
        }

        let used = self
            .chain_call(
                "usedTickets",
                self.chain_timeout,
                chain.broker.is_ticket_used(pending.hash),
            )
            .await;
        match used {
            Err(err) => return self.unreachable_or_wait(pending, err),
            Ok(true) => {
                self.already_used(pending, head_number);
                return Tried::Done;
            }
            Ok(false) => {}
        }

        let ticket = &pending.winner.ticket;
        let creation_round = ticket.expiration.creation_round;
        if creation_round.saturating_add(TICKET_VALIDITY_PERIOD) <= view.round {
            let reason = format!(
                "ticket is expired: created in round {creation_round}, redeemable for \
                 {TICKET_VALIDITY_PERIOD} rounds, the current round is {}",
                view.round
            );
            self.failed(pending, reason);
            return Tried::Done;
        }

        let sender = ticket.sender;
        let face_value = ticket.face_value;
        match self
            .chain_call(
                "getSenderInfo",
                self.chain_timeout,
                chain.broker.sender_info(sender),
            )
            .await
        {
            Err(err) => return self.unreachable_or_wait(pending, err),
            Ok(info) if info.deposit.saturating_add(info.reserve_funds_remaining) < face_value => {
                // Funds do not cover it yet: wait without spending an attempt.
                self.requeue(pending);
                return Tried::Done;
            }
            Ok(_) => {}
        }

        let sent = self
            .chain_call(
                "redeemWinningTicket",
                self.chain_timeout * SEND_REQUESTS,
                chain.broker.send_redeem_winning_ticket(&pending.winner),
            )
            .await;
        let tx = match sent {
            Ok(tx) => tx,
            Err(err) if err.is_unreachable() => return self.unreachable_or_wait(pending, err),
            Err(ChainError::Reverted { reason, .. }) if reason == "ticket is used" => {
                // Used between the look and the send: by a send of ours whose answer was lost.
                self.already_used(pending, head_number);
                return Tried::Done;
            }
            Err(ChainError::Reverted { reason, .. }) if reason == ROUND_NOT_INITIALIZED => {
                // A new round waits for its keeper (go-livepeer's round initializer, the
                // embedded stack's ticker) for a few blocks; the ticket stays good for its
                // creation round and the next, so wait without spending an attempt.
                pending.last_error = Some(reason);
                self.requeue(pending);
                return Tried::Done;
            }
            Err(err) => {
                pending.attempts += 1;
                return self.refused(pending, err.to_string());
            }
        };
        pending.attempts += 1;
        pending.sent = Some((tx, Instant::now()));
        let deadline = Instant::now() + self.chain_timeout;
        loop {
            pending = match self.settled_by_receipt(chain, pending, tx).await {
                Ok(tried) => return tried,
                Err(still_pending) => still_pending,
            };
            // Not mined yet: a later pass looks it up again.
            if Instant::now() >= deadline {
                self.requeue(pending);
                return Tried::Done;
            }
            tokio::time::sleep(RECEIPT_POLL).await;
        }
    }

    /// Where transaction `tx` stands on the chain, within the chain timeout.
    async fn receipt(&self, chain: &ChainLink, tx: B256) -> Result<TxStatus, ChainError> {
        self.chain_call(
            "transaction receipt",
            self.chain_timeout,
            chain.broker.tx_status(tx),
        )
        .await
    }

    /// Reads the receipt of `pending`'s sent transaction `tx`: mined, it is redeemed; failed, the
    /// chain refused it (its attempt was counted when it was sent); out of reach, it waits. Gives
    /// `pending` back while the transaction is still pending.
    async fn settled_by_receipt(
        &self,
        chain: &ChainLink,
        mut pending: Pending,
        tx: B256,
    ) -> Result<Tried, Pending> {
        let status = self.receipt(chain, tx).await;
        match status {
            Err(err) => Ok(self.unreachable_or_wait(pending, err)),
            Ok(TxStatus::Mined(outcome)) => {
                tracing::info!(%tx, block = outcome.block_number, "redeemed a winning ticket");
                self.redeemed(pending, Some(tx), outcome.block_number);
                Ok(Tried::Done)
            }
            Ok(TxStatus::Failed { .. }) => {
                pending.sent = None;
                Ok(self.refused(
                    pending,
                    format!("redeemWinningTicket: transaction {tx} failed"),
                ))
            }
            Ok(TxStatus::Pending) => Err(pending),
        }
    }

    /// A chain call failed: out of reach, the try is counted as such and the pass stops;
    /// otherwise (an error answer to a read) it waits for the next pass. No attempt is spent
    /// either way: the redemption itself was not refused.
    fn unreachable_or_wait(&self, mut pending: Pending, err: ChainError) -> Tried {
        let unreachable = err.is_unreachable();
        if unreachable {
            pending.unreachable += 1;
            self.metrics
                .redemption_unreachable
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%err, ticket = %pending.hash, "the chain is out of reach; the winner stays queued");
        } else {
            tracing::warn!(%err, ticket = %pending.hash, "reading the chain for a redemption");
        }
        pending.last_error = Some(err.to_string());
        self.requeue(pending);
        if unreachable {
            Tried::Unreachable
        } else {
            Tried::Done
        }
    }

    /// The chain refused a redemption (its attempt is counted in `pending` already): given up
    /// after `redeem_attempts`.
    fn refused(&self, mut pending: Pending, reason: String) -> Tried {
        self.metrics
            .redemption_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%reason, attempt = pending.attempts, ticket = %pending.hash, "redeeming a winning ticket");
        if pending.attempts >= self.redeem_attempts {
            self.failed(pending, reason);
        } else {
            pending.last_error = Some(reason);
            self.requeue(pending);
        }
        Tried::Done
    }

    /// The ticket is used on chain though no receipt of ours says so.
    fn already_used(&self, pending: Pending, head_number: u64) {
        if pending.recovered && pending.sent.is_none() && pending.attempts == 0 {
            // Redeemed before the restart: not this run's to record.
            tracing::info!(ticket = %pending.hash, "a journaled winner was redeemed before the restart");
            self.settle(&pending);
            return;
        }
        let tx = pending.sent.map(|(tx, _)| tx);
        tracing::info!(ticket = %pending.hash, ?tx, "a winning ticket is used on chain: recorded as redeemed");
        self.redeemed(pending, tx, head_number);
    }

    /// Puts `pending` (as a try left it) back in its place in the queue, or at the end.
    fn requeue(&self, pending: Pending) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.iter_mut().find(|queued| queued.hash == pending.hash) {
            Some(queued) => *queued = pending,
            None => queue.push_back(pending),
        }
    }

    /// Takes `pending` out of the queue: redeemed or given up.
    fn dequeue(&self, pending: &Pending) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|queued| queued.hash != pending.hash);
    }

    /// Counts `pending`'s face value as owed by its sender (it lowers the sender's max float).
    fn owe(&self, pending: &Pending) {
        let ticket = &pending.winner.ticket;
        let mut unredeemed = self.unredeemed.lock().unwrap_or_else(|e| e.into_inner());
        let owed = unredeemed.entry(ticket.sender).or_default();
        *owed = owed.saturating_add(ticket.face_value);
    }

    /// `pending` is settled (redeemed or given up): out of the queue, no longer owed, and the
    /// sender's funds on chain have changed.
    fn settle(&self, pending: &Pending) {
        self.dequeue(pending);
        let ticket = &pending.winner.ticket;
        {
            let mut unredeemed = self.unredeemed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(owed) = unredeemed.get_mut(&ticket.sender) {
                *owed = owed.saturating_sub(ticket.face_value);
                if owed.is_zero() {
                    unredeemed.remove(&ticket.sender);
                }
            }
        }
        self.spend_cached_funds(ticket.sender, ticket.face_value);
    }

    /// `sender`'s cached funds after a redemption of `face_value` landed: the deposit pays first
    /// and this recipient's claim on the reserve the rest, as the TicketBroker pays. The copy is
    /// marked stale, so the next read refreshes it; it is kept rather than dropped because a
    /// segment whose sender has no cached funds waits for the chain (up to
    /// `SENDER_FUNDS_TIMEOUT`, past a broadcaster's result deadline when the chain is silent),
    /// while a stale copy is refreshed within `STALE_FUNDS_REFRESH_TIMEOUT` or serves as it is.
    fn spend_cached_funds(&self, sender: Address, face_value: U256) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = senders.get_mut(&sender) else {
            return;
        };
        let info = &mut entry.funds.info;
        let from_deposit = face_value.min(info.deposit);
        info.deposit -= from_deposit;
        let from_reserve = (face_value - from_deposit).min(info.reserve_funds_remaining);
        info.reserve_funds_remaining -= from_reserve;
        info.reserve_claimed_in_current_round = info
            .reserve_claimed_in_current_round
            .saturating_add(from_reserve);
        entry.funds.claimed_reserve = entry.funds.claimed_reserve.saturating_add(from_reserve);
        entry.stale = true;
    }

    /// Marks `sender`'s cached funds for a refresh at the next read (a redemption that was
    /// counted in them is undone); until then they err low.
    fn refresh_cached_funds(&self, sender: Address) {
        if let Some(entry) = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&sender)
        {
            entry.stale = true;
        }
    }

    /// The redemption of `pending` is mined (`tx` in `block`), or the ticket was found used at
    /// head `block`.
    fn redeemed(&self, mut pending: Pending, tx: Option<B256>, block: u64) {
        self.metrics
            .tickets_redeemed
            .fetch_add(1, Ordering::Relaxed);
        self.settle(&pending);
        pending.sent = None;
        let final_now = self.confirmations == 0;
        self.upsert_record(&pending, |record| {
            record.status = "redeemed";
            record.tx_hash = tx;
            record.block = Some(block);
            record.confirmed = final_now;
            record.redeemed_ms = Some(unix_ms());
            record
                .history
                .push(event("redeemed", tx, Some(block), None));
        });
        if !final_now {
            self.redemptions
                .unconfirmed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Unconfirmed { pending, tx, block });
        }
    }

    /// A reorg dropped `entry`'s redemption: back in the queue, owed again.
    fn reorged(&self, entry: Unconfirmed) {
        let Unconfirmed {
            mut pending, tx, ..
        } = entry;
        tracing::warn!(ticket = %pending.hash, ?tx, "a reorg dropped a redemption; the winner is queued again");
        self.metrics.tickets_reorged.fetch_add(1, Ordering::Relaxed);
        self.owe(&pending);
        self.refresh_cached_funds(pending.winner.ticket.sender);
        // The transaction may come back from the node's pool: the next try looks it up first.
        pending.sent = tx.map(|tx| (tx, Instant::now()));
        self.upsert_record(&pending, |record| {
            record.status = "reorged";
            record.confirmed = false;
            record.reorgs += 1;
            record
                .history
                .push(event("reorged", tx, record.block, None));
        });
        self.requeue(pending);
    }

    fn confirmed(&self, entry: Unconfirmed) {
        self.update_record(&entry.pending, |record| {
            record.confirmed = true;
            record
                .history
                .push(event("confirmed", entry.tx, Some(entry.block), None));
        });
    }

    /// Given up on `pending` for `reason`.
    fn failed(&self, pending: Pending, reason: String) {
        tracing::error!(ticket = %pending.hash, %reason, "a winning ticket cannot be redeemed");
        self.metrics
            .redemptions_failed
            .fetch_add(1, Ordering::Relaxed);
        self.settle(&pending);
        self.upsert_record(&pending, |record| {
            record.status = "failed";
            record.confirmed = false;
            record.error = Some(reason.clone());
            record
                .history
                .push(event("failed", None, None, Some(reason.clone())));
        });
    }

    /// Updates `pending`'s record (created if it has none) with its counters, then `change`.
    fn upsert_record(&self, pending: &Pending, change: impl FnOnce(&mut RedemptionRecord)) {
        let mut records = self
            .redemptions
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let records = &mut *records;
        let index = *records.by_hash.entry(pending.hash).or_insert_with(|| {
            let ticket = &pending.winner.ticket;
            records.list.push(RedemptionRecord {
                ticket_hash: pending.hash,
                sender: ticket.sender,
                sender_nonce: ticket.sender_nonce,
                face_value: ticket.face_value.to_string(),
                status: "redeemed",
                tx_hash: None,
                block: None,
                confirmed: false,
                attempts: 0,
                unreachable: 0,
                reorgs: 0,
                error: None,
                received_ms: pending.received_ms,
                redeemed_ms: None,
                history: Vec::new(),
            });
            records.list.len() - 1
        });
        let record = &mut records.list[index];
        record.attempts = pending.attempts;
        record.unreachable = pending.unreachable;
        record.error = pending.last_error.clone();
        change(record);
    }

    /// Changes `pending`'s record, if it has one.
    fn update_record(&self, pending: &Pending, change: impl FnOnce(&mut RedemptionRecord)) {
        let mut records = self
            .redemptions
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(&index) = records.by_hash.get(&pending.hash) {
            change(&mut records.list[index]);
        }
    }
}

fn event(
    status: &'static str,
    tx_hash: Option<B256>,
    block: Option<u64>,
    error: Option<String>,
) -> RedemptionEvent {
    RedemptionEvent {
        status,
        tx_hash,
        block,
        error,
        at_ms: unix_ms(),
    }
}
