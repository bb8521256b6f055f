//! Paying orchestrators: a fee estimate per segment and tickets covering it.
//!
//! The fee is estimated like go-livepeer's: output pixels of the whole ladder for the segment's
//! duration (frames × width × height per rendition) at the orchestrator's price, times a margin,
//! because O bills the pixels it actually produced and B must not under-pay. Like go-livepeer's
//! `Balance`, B keeps the credit it believes O holds for each session: tickets are sent only for
//! the part of the estimate the credit does not cover, and the fee O bills (from the pixels in its
//! `TranscodeResult`) is debited after each segment. Without this the margin would be paid on top
//! of every segment and O would be paid ~20 % more than the work it did. Tickets come from the
//! protocol crate's [`TicketSender`], which also refuses params breaking B's rules. The chain is
//! read in the background (latest block, B's deposit) so paying a segment never waits on RPC.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use protocol::U256;
use protocol::chain::TicketBrokerClient;
use protocol::net;
use protocol::ticket::{SenderLimits, TicketParams, TicketSender, payment_message};
use reference_transcoder::ladder::Profile;

/// Output pixels a ladder produces for a segment of `duration_ms` with `source_frames` frames.
pub fn estimated_pixels(profiles: &[Profile], duration_ms: i64, source_frames: u32) -> u64 {
    profiles
        .iter()
        .map(|p| {
            let frames = match p.fps() {
                Some((num, den)) if den > 0 => {
                    (u64::from(num) * duration_ms.max(0) as u64).div_ceil(u64::from(den) * 1000)
                }
                _ => u64::from(source_frames),
            };
            u64::from(p.width) * u64::from(p.height) * frames
        })
        .sum()
}

/// The broadcaster's wallet: signer, ticket sender and a cached view of the chain.
pub struct Payer {
    sender: Mutex<TicketSender>,
    margin_permille: u64,
    /// Credit (wei) B believes O holds, per O session (auth token session id).
    balances: Mutex<HashMap<String, i128>>,
    block: AtomicU64,
    deposit: Mutex<U256>,
    provider: DynProvider,
    broker: TicketBrokerClient,
}

/// A failure to prepare a payment.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The orchestrator's params break a rule, or signing failed.
    #[error("ticket sender: {0}")]
    Sender(#[from] protocol::ticket::SenderError),
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] protocol::chain::ChainError),
}

impl Payer {
    /// A payer for `signer` on the chain at `eth_url` with the TicketBroker at `broker`.
    pub async fn connect(
        eth_url: &str,
        broker: protocol::Address,
        signer: PrivateKeySigner,
        fee_margin: f64,
    ) -> Result<Self, PaymentError> {
        let provider = protocol::chain::read_provider(eth_url)?;
        let broker = TicketBrokerClient::new(provider.clone(), broker);
        let payer = Self {
            sender: Mutex::new(TicketSender::new(signer, SenderLimits::default())),
            margin_permille: (fee_margin * 1000.0).round() as u64,
            balances: Mutex::new(HashMap::new()),
            block: AtomicU64::new(0),
            deposit: Mutex::new(U256::ZERO),
            provider,
            broker,
        };
        payer.refresh().await?;
        Ok(payer)
    }

    /// B's address.
    pub fn address(&self) -> protocol::Address {
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .address()
    }

    /// The latest block B knows of.
    pub fn block(&self) -> u64 {
        self.block.load(Ordering::Relaxed)
    }

    /// Re-reads the latest block and B's deposit.
    pub async fn refresh(&self) -> Result<(), PaymentError> {
        let block = self.provider.get_block_number().await.map_err(|source| {
            protocol::chain::ChainError::Rpc {
                call: "eth_blockNumber",
                source,
            }
        })?;
        let info = self.broker.sender_info(self.address()).await?;
        self.block.store(block, Ordering::Relaxed);
        *self.deposit.lock().unwrap_or_else(|e| e.into_inner()) = info.deposit;
        Ok(())
    }

    /// Keeps the chain view fresh until the task is aborted.
    pub async fn refresh_forever(&self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!("broadcaster chain refresh failed: {e}");
            }
        }
    }

    /// A `Payment` whose tickets, with the credit already held by O for `session`, cover `pixels`
    /// at the params' price plus the margin; returns it with the number of tickets.
    pub fn pay(
        &self,
        params: &TicketParams,
        pixels: u64,
        session: &str,
    ) -> Result<(net::Payment, u64), PaymentError> {
        let fee = params.price.fee(pixels) * U256::from(self.margin_permille) / U256::from(1000u64);
        let credit = self.credit(session);
        let shortfall = to_i128(fee).saturating_sub(credit);
        let block = self.block.load(Ordering::Relaxed);
        let deposit = *self.deposit.lock().unwrap_or_else(|e| e.into_inner());
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if shortfall <= 0 {
            let address = sender.address();
            return Ok((payment_message(params, address, &[]), 0));
        }
        let payment = sender.payment(params, U256::from(shortfall as u128), block, deposit)?;
        let n = payment.ticket_sender_params.len() as u64;
        self.adjust(session, to_i128(params.ev() * U256::from(n)));
        Ok((payment, n))
    }

    /// Charges the fee O billed for `pixels` output pixels at `price` to `session`'s credit.
    pub fn debit(&self, session: &str, price: &protocol::ticket::PricePerPixel, pixels: u64) {
        self.adjust(session, -to_i128(price.fee(pixels)));
    }

    /// The credit B believes O holds for `session` (negative when O is owed).
    pub fn credit(&self, session: &str) -> i128 {
        let balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        balances.get(session).copied().unwrap_or(0)
    }

    fn adjust(&self, session: &str, amount: i128) {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let balance = balances.entry(session.to_owned()).or_insert(0);
        *balance = balance.saturating_add(amount);
    }
}

/// Wei amounts on the wire are 256-bit; any real fee or credit fits in an i128.
fn to_i128(value: U256) -> i128 {
    i128::try_from(value).unwrap_or(i128::MAX)
}
