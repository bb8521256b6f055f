//! The payment probe: from the chain alone, did the broadcaster pay what the delivered work was
//! worth?
//!
//! It knows what any outsider can know: an RPC URL, the TicketBroker address, the broadcaster's
//! (ticket sender's) address and the orchestrators with their advertised prices. It reads the
//! broker's `DepositFunded`, `ReserveFunded`, `WinningTicketRedeemed` and `WinningTicketTransfer`
//! events for the sender over the run's block window, and reconciles the redeemed face values
//! with the fees owed for the pixels the stream probes verified, using the Poisson acceptance
//! interval of [`crate::reconcile`].
//!
//! Design: orchestrators redeem asynchronously (after the tickets' expiration block, when funds
//! cover them), so the probe polls the chain until redemptions settle or a deadline passes. It
//! counts the window settled when no orchestrator is still short of its interval's lower bound
//! and the set of redemptions stayed unchanged for `quiet_polls` consecutive polls; each poll
//! reads only the blocks it has not read yet. A caller that knows when every winner of the window
//! must be due (the embedded stack, whose params' expiry it set) can make a shortfall final after
//! `shortfall_final_polls` unchanged polls, so a missing redemption costs that wait rather than
//! the whole settle timeout. At the deadline the report is returned anyway,
//! marked unsettled, and whatever is still short is reported as missing redemptions. When the
//! caller knows only the run's total pixels (which orchestrator did which segment is invisible
//! from outside), [`PaymentProbe::settle_total`] reconciles the orchestrators as one pool.

use std::collections::HashMap;
use std::time::Duration;

use protocol::chain::{BrokerEvent, ChainError, EventReader};
use protocol::{Address, U256};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::reconcile::{Delivered, PaymentVerdict, Reconciliation, Redemption, reconcile};

/// The recipient name of the pooled entry of [`PaymentProbe::settle_total`].
pub const POOLED_RECIPIENT: &str = "all orchestrators";

/// An orchestrator the run paid, with the price it advertised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorPrice {
    pub address: Address,
    /// `price_per_unit` wei per `pixels_per_unit` output pixels.
    pub price_per_unit: u128,
    pub pixels_per_unit: u128,
}

/// What the payment probe watches and how long it waits.
#[derive(Debug, Clone)]
pub struct PaymentProbeConfig {
    pub rpc_url: String,
    pub ticket_broker: Address,
    /// The broadcaster's ticket-signing address.
    pub sender: Address,
    pub orchestrators: Vec<OrchestratorPrice>,
    /// First block of the run's window (e.g. [`PaymentProbe::latest_block`] before publishing).
    pub from_block: u64,
    /// Tickets' face value when known from the orchestrators' ticket parameters; otherwise
    /// the face value seen in the redemptions is used.
    pub face_value_wei: Option<f64>,
    /// Confidence of the winner-count interval (e.g. 0.999).
    pub confidence: f64,
    /// Longest wait for redemptions to settle.
    pub settle_timeout: Duration,
    pub poll_interval: Duration,
    /// Unchanged polls (with nothing short) that count as settled.
    pub quiet_polls: u32,
    /// Unchanged polls after which a shortfall is final, when the caller knows every winner of
    /// the window must be due by then (its params' expiry is known); `None` waits for the settle
    /// timeout, as a probe of a network with unknown redemption habits must.
    pub shortfall_final_polls: Option<u32>,
}

impl PaymentProbeConfig {
    /// Defaults: 99.9 % interval, 2 minutes to settle, polled every second, 3 quiet polls.
    pub fn new(
        rpc_url: &str,
        ticket_broker: Address,
        sender: Address,
        orchestrators: Vec<OrchestratorPrice>,
        from_block: u64,
    ) -> Self {
        PaymentProbeConfig {
            rpc_url: rpc_url.to_string(),
            ticket_broker,
            sender,
            orchestrators,
            from_block,
            face_value_wei: None,
            confidence: 0.999,
            settle_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
            quiet_polls: 3,
            shortfall_final_polls: None,
        }
    }
}

/// Why the payment probe could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("payment confidence {0} must be strictly between 0 and 1")]
    Confidence(f64),
    #[error("orchestrator {0:#x} advertises zero pixels per unit")]
    ZeroPixelsPerUnit(Address),
    #[error("pixels delivered by {0:#x}, which is not among the known orchestrators")]
    UnknownOrchestrator(Address),
    #[error("no orchestrators given: pooled reconciliation needs their price")]
    NoOrchestrators,
    #[error(
        "orchestrators {0:#x} and {1:#x} advertise different prices: pixels must be given per orchestrator"
    )]
    MixedPrices(Address, Address),
    #[error("reading TicketBroker events: {0}")]
    Chain(#[from] ChainError),
}

/// The sender's on-chain activity in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainActivity {
    pub deposit_funded_wei: f64,
    pub reserve_funded_wei: f64,
    /// Every `WinningTicketRedeemed` for the sender: (recipient, face value).
    pub redemptions: Vec<RedeemedTicket>,
    /// Σ `WinningTicketTransfer` amounts (what actually moved; below the face value when the
    /// sender's funds ran short).
    pub transferred_wei: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedeemedTicket {
    /// Lower-case `0x` hex.
    pub recipient: String,
    pub face_value_wei: f64,
    pub block: u64,
}

/// The payment verdict of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentReport {
    pub sender: String,
    pub ticket_broker: String,
    pub from_block: u64,
    /// Last block read.
    pub to_block: u64,
    /// False when the deadline passed before redemptions settled.
    pub settled: bool,
    pub waited_ms: f64,
    pub confidence: f64,
    pub deposit_funded_wei: f64,
    pub reserve_funded_wei: f64,
    pub transferred_wei: f64,
    pub tickets_redeemed: u64,
    pub redeemed_wei: f64,
    pub expected_wei: f64,
    /// One entry per known orchestrator, then one per unknown recipient.
    pub orchestrators: Vec<Reconciliation>,
    /// The largest |redeemed − expected| / expected over the orchestrators that were owed
    /// something (`None` when nobody was). Noisy when few tickets are expected to win: the
    /// verdicts use the interval, this figure is for trends and thresholds.
    pub payment_ev_error: Option<f64>,
    pub overcharged: bool,
    pub missing_redemptions: bool,
    /// Recipients paid by the sender that are not among the known orchestrators.
    pub unknown_recipients: Vec<String>,
}

impl PaymentReport {
    /// True when no flag is raised.
    pub fn consistent(&self) -> bool {
        !self.overcharged && !self.missing_redemptions && self.unknown_recipients.is_empty()
    }
}

/// Reads and reconciles one broadcaster's payments.
#[derive(Debug, Clone)]
pub struct PaymentProbe {
    config: PaymentProbeConfig,
    reader: EventReader,
}

impl PaymentProbe {
    /// Validates `config` and connects to its RPC URL (no request is made yet).
    pub fn new(config: PaymentProbeConfig) -> Result<PaymentProbe, PaymentError> {
        if !(config.confidence > 0.0 && config.confidence < 1.0) {
            return Err(PaymentError::Confidence(config.confidence));
        }
        if let Some(o) = config.orchestrators.iter().find(|o| o.pixels_per_unit == 0) {
            return Err(PaymentError::ZeroPixelsPerUnit(o.address));
        }
        let reader = EventReader::connect(&config.rpc_url, config.ticket_broker)?;
        Ok(PaymentProbe { config, reader })
    }

    pub fn config(&self) -> &PaymentProbeConfig {
        &self.config
    }

    /// The chain's latest block (the start of a run's window).
    pub async fn latest_block(&self) -> Result<u64, PaymentError> {
        Ok(self.reader.latest_block().await?)
    }

    /// The sender's activity in blocks `from..=to`, added to `activity`.
    pub async fn read_into(
        &self,
        activity: &mut ChainActivity,
        from: u64,
        to: u64,
    ) -> Result<(), PaymentError> {
        let sender = self.config.sender;
        for record in self.reader.read(from, to).await? {
            match record.event {
                BrokerEvent::DepositFunded { sender: s, amount } if s == sender => {
                    activity.deposit_funded_wei += wei(amount);
                }
                BrokerEvent::ReserveFunded {
                    reserve_holder,
                    amount,
                } if reserve_holder == sender => activity.reserve_funded_wei += wei(amount),
                BrokerEvent::WinningTicketRedeemed {
                    sender: s,
                    recipient,
                    face_value,
                    ..
                } if s == sender => activity.redemptions.push(RedeemedTicket {
                    recipient: hex(recipient),
                    face_value_wei: wei(face_value),
                    block: record.block_number,
                }),
                BrokerEvent::WinningTicketTransfer {
                    sender: s, amount, ..
                } if s == sender => activity.transferred_wei += wei(amount),
                _ => {}
            }
        }
        Ok(())
    }

    /// Polls the chain until redemptions for the pixels `delivered` (output pixels per
    /// orchestrator, as verified by the stream probes) settle or the settle timeout passes, and
    /// reconciles them.
    pub async fn settle(
        &self,
        delivered: &HashMap<Address, u128>,
    ) -> Result<PaymentReport, PaymentError> {
        if let Some(a) = delivered
            .keys()
            .find(|a| !self.config.orchestrators.iter().any(|o| o.address == **a))
        {
            return Err(PaymentError::UnknownOrchestrator(*a));
        }
        let delivered: Vec<Delivered> = self
            .config
            .orchestrators
            .iter()
            .map(|o| Delivered {
                recipient: hex(o.address),
                pixels: delivered.get(&o.address).copied().unwrap_or(0),
                price_per_unit: o.price_per_unit,
                pixels_per_unit: o.pixels_per_unit,
            })
            .collect();
        self.poll(delivered, false).await
    }

    /// [`Self::settle`] when only the run's total output pixels are known (a black-box probe
    /// cannot tell which orchestrator transcoded which segment): every known orchestrator must
    /// advertise the same price, and their redemptions are reconciled together as one entry
    /// named [`POOLED_RECIPIENT`]. Redemptions to strangers are still flagged one by one.
    pub async fn settle_total(&self, pixels: u128) -> Result<PaymentReport, PaymentError> {
        let Some(first) = self.config.orchestrators.first() else {
            return Err(PaymentError::NoOrchestrators);
        };
        let price = |o: &OrchestratorPrice| o.price_per_unit as f64 / o.pixels_per_unit as f64;
        if let Some(o) = self
            .config
            .orchestrators
            .iter()
            .find(|o| price(o) != price(first))
        {
            return Err(PaymentError::MixedPrices(o.address, first.address));
        }
        let delivered = vec![Delivered {
            recipient: POOLED_RECIPIENT.to_string(),
            pixels,
            price_per_unit: first.price_per_unit,
            pixels_per_unit: first.pixels_per_unit,
        }];
        self.poll(delivered, true).await
    }

    async fn poll(
        &self,
        delivered: Vec<Delivered>,
        pooled: bool,
    ) -> Result<PaymentReport, PaymentError> {
        let started = Instant::now();
        let deadline = started + self.config.settle_timeout;
        let mut activity = ChainActivity::default();
        let mut next_block = self.config.from_block;
        let mut last_count = None;
        let mut quiet = 0;
        loop {
            let latest = self.reader.latest_block().await?;
            if latest >= next_block {
                self.read_into(&mut activity, next_block, latest).await?;
                next_block = latest + 1;
            }
            let results = self.reconcile(&delivered, &activity, pooled);
            let short = results
                .iter()
                .any(|r| r.verdict == PaymentVerdict::MissingRedemptions);
            let count = activity.redemptions.len();
            quiet = if last_count == Some(count) {
                quiet + 1
            } else {
                0
            };
            last_count = Some(count);
            let settled = if short {
                self.config
                    .shortfall_final_polls
                    .is_some_and(|polls| quiet >= polls)
            } else {
                quiet >= self.config.quiet_polls
            };
            if settled || Instant::now() + self.config.poll_interval > deadline {
                return Ok(self.report(
                    results,
                    activity,
                    next_block.saturating_sub(1),
                    settled,
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    fn reconcile(
        &self,
        delivered: &[Delivered],
        activity: &ChainActivity,
        pooled: bool,
    ) -> Vec<Reconciliation> {
        let known = |r: &str| {
            self.config
                .orchestrators
                .iter()
                .any(|o| hex(o.address) == r)
        };
        let redemptions: Vec<Redemption> = activity
            .redemptions
            .iter()
            .map(|r| Redemption {
                recipient: if pooled && known(&r.recipient) {
                    POOLED_RECIPIENT.to_string()
                } else {
                    r.recipient.clone()
                },
                face_value_wei: r.face_value_wei,
            })
            .collect();
        reconcile(
            delivered,
            &redemptions,
            self.config.face_value_wei,
            self.config.confidence,
        )
    }

    fn report(
        &self,
        results: Vec<Reconciliation>,
        activity: ChainActivity,
        to_block: u64,
        settled: bool,
        waited: Duration,
    ) -> PaymentReport {
        let has = |v: PaymentVerdict| results.iter().any(|r| r.verdict == v);
        PaymentReport {
            sender: hex(self.config.sender),
            ticket_broker: hex(self.config.ticket_broker),
            from_block: self.config.from_block,
            to_block,
            settled,
            waited_ms: waited.as_secs_f64() * 1000.0,
            confidence: self.config.confidence,
            deposit_funded_wei: activity.deposit_funded_wei,
            reserve_funded_wei: activity.reserve_funded_wei,
            transferred_wei: activity.transferred_wei,
            tickets_redeemed: activity.redemptions.len() as u64,
            redeemed_wei: activity.redemptions.iter().map(|r| r.face_value_wei).sum(),
            expected_wei: results.iter().map(|r| r.expected_wei).sum(),
            payment_ev_error: results
                .iter()
                .filter_map(|r| r.ev_error)
                .map(f64::abs)
                .reduce(f64::max),
            overcharged: has(PaymentVerdict::Overcharged),
            missing_redemptions: has(PaymentVerdict::MissingRedemptions),
            unknown_recipients: results
                .iter()
                .filter(|r| r.verdict == PaymentVerdict::UnknownRecipient)
                .map(|r| r.recipient.clone())
                .collect(),
            orchestrators: results,
        }
    }
}

/// Lower-case `0x` hex, as [`crate::reconcile`] names recipients.
fn hex(address: Address) -> String {
    format!("{address:#x}")
}

/// Wei as `f64` (exact below 2^53 wei; face values are compared relatively).
fn wei(amount: U256) -> f64 {
    amount.to_string().parse().unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PaymentProbeConfig {
        PaymentProbeConfig::new(
            "http://127.0.0.1:1",
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            vec![OrchestratorPrice {
                address: Address::repeat_byte(3),
                price_per_unit: 1,
                pixels_per_unit: 1,
            }],
            0,
        )
    }

    #[test]
    fn bad_config_is_a_typed_error() {
        let mut c = config();
        c.confidence = 1.0;
        assert!(matches!(
            PaymentProbe::new(c),
            Err(PaymentError::Confidence(1.0))
        ));
        let mut c = config();
        c.orchestrators[0].pixels_per_unit = 0;
        let err = PaymentProbe::new(c).unwrap_err();
        assert!(err.to_string().contains("0x0303"), "{err}");
        let mut c = config();
        c.rpc_url = "not a url".into();
        assert!(matches!(
            PaymentProbe::new(c),
            Err(PaymentError::Chain(ChainError::BadUrl { .. }))
        ));
    }

    #[test]
    fn addresses_are_lower_case_hex_and_wei_converts() {
        assert_eq!(
            hex(Address::repeat_byte(0xAB)),
            format!("0x{}", "ab".repeat(20))
        );
        assert_eq!(wei(U256::from(1_000_000_000_000_000u64)), 1e15);
    }
}
