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
//!
//! O chooses the ticket EV, so O chooses how many signatures a segment costs B: params worth
//! 1 wei a ticket would make one segment billions of tickets. The sender refuses a payment of
//! more than `payment.max_tickets_per_segment` tickets, counted exactly before anything is signed,
//! and the lock every stream's payments share is held only for that O(1) check and the nonce
//! reservation; the (at most capped) signatures are made after it is released.
//!
//! The latest block is the last seen **L1** block ([`protocol::chain::latest_l1_block`]), the
//! number O's params expire in (PROTOCOL.md §4): on Arbitrum `eth_blockNumber` is the L2 block,
//! far ahead of L1, and every params would look expired.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::providers::DynProvider;
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
    /// Credit (wei) B believes O holds, per stream and O session.
    balances: Mutex<HashMap<CreditKey, i128>>,
    block: AtomicU64,
    deposit: Mutex<U256>,
    provider: DynProvider,
    broker: TicketBrokerClient,
}

/// Whose credit a payment or a fee moves: one stream's, at one orchestrator session (see
/// `submit::credit_key` for why per stream).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditKey {
    /// The stream's manifest ID.
    pub stream: String,
    /// The orchestrator's URI and its auth token's session ID.
    pub session: String,
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
        max_tickets_per_segment: u64,
    ) -> Result<Self, PaymentError> {
        let provider = protocol::chain::read_provider(eth_url)?;
        let broker = TicketBrokerClient::new(provider.clone(), broker);
        let sender = TicketSender::new(signer, SenderLimits::default())
            .with_max_tickets(max_tickets_per_segment);
        let payer = Self {
            sender: Mutex::new(sender),
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

    /// The latest L1 block B knows of (what params expiry counts).
    pub fn block(&self) -> u64 {
        self.block.load(Ordering::Relaxed)
    }

    /// Re-reads the latest L1 block and B's deposit.
    pub async fn refresh(&self) -> Result<(), PaymentError> {
        let block = protocol::chain::latest_l1_block(&self.provider).await?;
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
        session: &CreditKey,
    ) -> Result<(net::Payment, u64), PaymentError> {
        let fee = params
            .price
            .fee(pixels)
            .saturating_mul(U256::from(self.margin_permille))
            / U256::from(1000u64);
        let credit = self.credit(session);
        let shortfall = to_i128(fee).saturating_sub(credit);
        if shortfall <= 0 {
            return Ok((payment_message(params, self.address(), &[]), 0));
        }
        let block = self.block.load(Ordering::Relaxed);
        let deposit = *self.deposit.lock().unwrap_or_else(|e| e.into_inner());
        let batch = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(params, U256::from(shortfall.unsigned_abs()), block, deposit)?;
        let payment = batch.payment()?;
        let n = batch.count();
        self.adjust(session, to_i128(params.ev().saturating_mul(U256::from(n))));
        Ok((payment, n))
    }

    /// Charges the fee O billed for `pixels` output pixels at `price` to `session`'s credit.
    pub fn debit(&self, session: &CreditKey, price: &protocol::ticket::PricePerPixel, pixels: u64) {
        self.adjust(session, -to_i128(price.fee(pixels)));
    }

    /// The credit B believes O holds for `session` (negative when O is owed).
    pub fn credit(&self, session: &CreditKey) -> i128 {
        let balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        balances.get(session).copied().unwrap_or(0)
    }

    fn adjust(&self, session: &CreditKey, amount: i128) {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let balance = balances.entry(session.clone()).or_insert(0);
        *balance = balance.saturating_add(amount);
    }

    /// Drops the credit of every stream `known` no longer holds, so the map lives as long as the
    /// streams the broadcaster keeps (bounded by `max_live_streams` and `max_ended_streams`).
    pub fn forget_streams(&self, known: impl Fn(&str) -> bool) {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        balances.retain(|key, _| known(&key.stream));
    }

    /// How many (stream, session) credits are held.
    pub fn credits_held(&self) -> usize {
        self.balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Wei amounts on the wire are 256-bit; any real fee or credit fits in an i128.
fn to_i128(value: U256) -> i128 {
    i128::try_from(value).unwrap_or(i128::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use alloy::sol_types::SolCall;
    use axum::http::header;
    use protocol::chain::bindings::TicketBroker;
    use serde_json::{Value, json};

    use super::*;

    const L2_BLOCK: u64 = 0x1000_0000;
    const L1_BLOCK: u64 = 0x123_4567;
    const DEPOSIT: u64 = 5_000_000;

    /// A fake Arbitrum node on a loopback port: `eth_blockNumber` is the L2 block, the latest
    /// header carries the L1 block as `l1BlockNumber`, and `getSenderInfo` answers a deposit.
    pub(crate) async fn fake_arbitrum_node() -> String {
        async fn rpc(body: axum::body::Bytes) -> impl axum::response::IntoResponse {
            let request: Value = serde_json::from_slice(&body).unwrap();
            let result = match request["method"].as_str().unwrap() {
                "eth_blockNumber" => json!(format!("{L2_BLOCK:#x}")),
                "eth_getBlockByNumber" => json!({
                    "number": format!("{L2_BLOCK:#x}"),
                    "l1BlockNumber": format!("{L1_BLOCK:#x}"),
                }),
                "eth_call" => {
                    let call = &request["params"][0];
                    let input = call["input"].as_str().or(call["data"].as_str()).unwrap();
                    let input = alloy::hex::decode(input).unwrap();
                    assert!(input.starts_with(&TicketBroker::getSenderInfoCall::SELECTOR));
                    // (Sender{deposit, withdrawRound}, ReserveInfo{funds, claimed}): 4 words.
                    let mut words = [0u8; 128];
                    words[..32].copy_from_slice(&U256::from(DEPOSIT).to_be_bytes::<32>());
                    json!(format!("0x{}", alloy::hex::encode(words)))
                }
                other => panic!("unexpected method {other}"),
            };
            let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
            (
                [(header::CONTENT_TYPE, "application/json")],
                reply.to_string(),
            )
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/", axum::routing::post(rpc));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// B's latest block is the L1 block O's params expire in, not Arbitrum's L2 `eth_blockNumber`.
    #[tokio::test]
    async fn refresh_keeps_the_l1_block_on_a_two_layer_chain() {
        let url = fake_arbitrum_node().await;
        let signer = PrivateKeySigner::from_bytes(&protocol::B256::repeat_byte(0xb0)).unwrap();
        let payer = Payer::connect(&url, protocol::Address::repeat_byte(0x42), signer, 1.2, 100)
            .await
            .unwrap();
        assert_eq!(payer.block(), L1_BLOCK);
        assert_eq!(
            *payer.deposit.lock().unwrap_or_else(|e| e.into_inner()),
            U256::from(DEPOSIT)
        );
    }
}
