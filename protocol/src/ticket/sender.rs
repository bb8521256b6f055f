//! The broadcaster's side of tickets: nonce bookkeeping, the acceptance rules for an
//! orchestrator's params, and creating signed tickets that pay a fee.
//!
//! Nonces are counted per recipientRandHash from 1, because O tracks used nonces per committed
//! random number; fresh params (a new commitment) restart the count. [`TicketSender::pay`] refuses
//! params that break any of B's rules with a [`ParamsRejection`] naming the rule;
//! [`TicketSender::sign_tickets`] skips the policy so probes can deliberately send tickets that an
//! honest broadcaster would not (e.g. winProb at the maximum, or to test O's rejections).
//!
//! go-livepeer's sender bounds a ticket's EV from above only, so params with an EV of 1 wei pass
//! and a fee of 10¹⁰ wei becomes 10¹⁰ signatures. Here the ticket count is computed first, exactly,
//! and a payment needing more than the sender's `max_tickets` is refused before any nonce or
//! signature (the rule go-livepeer's remote signer applies, at 100). [`TicketSender::reserve`]
//! does the O(1) part (rules, nonces) and returns a [`TicketBatch`] to sign after the caller
//! releases whatever lock guards the sender.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256, eip191_hash_message};
use alloy::signers::local::PrivateKeySigner;

use super::{SignedTicket, TicketParams, ev, payment_message};
use crate::net;
use crate::sig::{self, SigError};

/// go-livepeer's default `maxTicketEV`: 3e12 wei.
pub const DEFAULT_MAX_TICKET_EV: u64 = 3_000_000_000_000;
/// go-livepeer's default `maxTotalEV`: 2e13 wei.
pub const DEFAULT_MAX_TOTAL_EV: u64 = 20_000_000_000_000;
/// Most tickets in one payment unless set with [`TicketSender::with_max_tickets`]: the cap
/// go-livepeer's remote signer puts on a payment ("prevent both draining funds and perf issues").
pub const DEFAULT_SENDER_MAX_TICKETS: u64 = 100;

/// B's limits on what O may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderLimits {
    /// Largest acceptable EV of one ticket.
    pub max_ticket_ev: U256,
    /// Largest acceptable EV of all tickets in one payment.
    pub max_total_ev: U256,
}

impl Default for SenderLimits {
    fn default() -> Self {
        Self {
            max_ticket_ev: U256::from(DEFAULT_MAX_TICKET_EV),
            max_total_ev: U256::from(DEFAULT_MAX_TOTAL_EV),
        }
    }
}

/// An orchestrator's ticket params that break one of the broadcaster's acceptance rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsRejection {
    /// Rule "expiry more than 1 block away".
    #[error(
        "rule expiry: params expire at block {expiration_block}, not more than 1 block after {current_block}"
    )]
    ExpiresTooSoon {
        /// Params' expiration block.
        expiration_block: u64,
        /// B's latest known block.
        current_block: u64,
    },
    /// Rule "EV < faceValue".
    #[error("rule EV < faceValue: ticket EV {ev} is not below faceValue {face_value}")]
    EvNotBelowFaceValue {
        /// Ticket EV.
        ev: U256,
        /// Face value.
        face_value: U256,
    },
    /// Rule "EV ≤ maxTicketEV".
    #[error("rule EV <= maxTicketEV: ticket EV {ev} exceeds {max}")]
    TicketEvAboveMax {
        /// Ticket EV.
        ev: U256,
        /// B's limit.
        max: U256,
    },
    /// Rule "EV × tickets ≤ maxTotalEV".
    #[error("rule EV x tickets <= maxTotalEV: {tickets} tickets total {total}, exceeding {max}")]
    TotalEvAboveMax {
        /// Number of tickets the payment needs.
        tickets: u64,
        /// Their total EV.
        total: U256,
        /// B's limit.
        max: U256,
    },
    /// Rule "tickets ≤ maxTickets": an EV tiny beside the fee costs a signature per ticket.
    #[error(
        "rule tickets <= maxTickets: the payment takes {tickets} tickets of EV {ev} wei, more than {max}"
    )]
    TooManyTickets {
        /// Number of tickets the payment needs.
        tickets: u64,
        /// Ticket EV.
        ev: U256,
        /// B's limit.
        max: u64,
    },
    /// Rule "faceValue ≤ deposit".
    #[error("rule faceValue <= deposit: faceValue {face_value} exceeds deposit {deposit}")]
    FaceValueAboveDeposit {
        /// Face value.
        face_value: U256,
        /// B's deposit.
        deposit: U256,
    },
}

/// Why the sender could not produce tickets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// O's params break a rule.
    #[error(transparent)]
    Rejected(#[from] ParamsRejection),
    /// EV arithmetic failed (e.g. zero EV cannot pay a fee).
    #[error(transparent)]
    Ev(#[from] ev::EvError),
    /// All 2³² − 1 nonces of this recipientRandHash are used.
    #[error("nonces exhausted for recipientRandHash {0}")]
    NoncesExhausted(B256),
    /// Signing failed.
    #[error(transparent)]
    Sig(#[from] SigError),
}

/// Creates and signs tickets for one broadcaster account.
#[derive(Debug)]
pub struct TicketSender {
    signer: PrivateKeySigner,
    limits: SenderLimits,
    max_tickets: u64,
    last_nonce: HashMap<B256, u32>,
}

/// Tickets that passed B's rules, their nonces reserved, not yet signed: signing takes a
/// signature per ticket, so a caller holding the sender under a lock signs after releasing it.
#[derive(Debug)]
pub struct TicketBatch {
    signer: PrivateKeySigner,
    params: TicketParams,
    first_nonce: u64,
    count: u64,
}

impl TicketBatch {
    /// Number of tickets.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The signed tickets, nonces in order.
    pub fn sign(&self) -> Result<Vec<SignedTicket>, SenderError> {
        let sender = self.signer.address();
        (self.first_nonce..self.first_nonce + self.count)
            .map(|nonce| {
                // Reservation kept every nonce of the batch within u32.
                let ticket = self.params.ticket(sender, nonce as u32);
                let sig = sig::sign_prehash(&self.signer, &eip191_hash_message(ticket.hash()))?;
                Ok(SignedTicket {
                    ticket,
                    sig: sig.to_vec(),
                })
            })
            .collect()
    }

    /// The signed tickets in the `Payment` message for the `Livepeer-Payment` header.
    pub fn payment(&self) -> Result<net::Payment, SenderError> {
        let tickets = self.sign()?;
        Ok(payment_message(
            &self.params,
            self.signer.address(),
            &tickets,
        ))
    }
}

impl TicketSender {
    /// A sender signing with `signer`, enforcing `limits` and at most
    /// [`DEFAULT_SENDER_MAX_TICKETS`] tickets per payment.
    pub fn new(signer: PrivateKeySigner, limits: SenderLimits) -> Self {
        Self {
            signer,
            limits,
            max_tickets: DEFAULT_SENDER_MAX_TICKETS,
            last_nonce: HashMap::new(),
        }
    }

    /// The same sender refusing payments of more than `max` tickets (rule "tickets ≤ maxTickets").
    pub fn with_max_tickets(mut self, max: u64) -> Self {
        self.max_tickets = max;
        self
    }

    /// Most tickets one payment may carry.
    pub fn max_tickets(&self) -> u64 {
        self.max_tickets
    }

    /// B's address (the ticket sender).
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The limits in force.
    pub fn limits(&self) -> SenderLimits {
        self.limits
    }

    /// Checks O's params against every acceptance rule for a payment of `tickets` tickets, given
    /// B's latest block and on-chain deposit.
    pub fn check_params(
        &self,
        params: &TicketParams,
        tickets: u64,
        current_block: u64,
        deposit: U256,
    ) -> Result<(), ParamsRejection> {
        if params.expiration_block <= current_block.saturating_add(1) {
            return Err(ParamsRejection::ExpiresTooSoon {
                expiration_block: params.expiration_block,
                current_block,
            });
        }
        let ev = params.ev();
        if ev >= params.face_value {
            return Err(ParamsRejection::EvNotBelowFaceValue {
                ev,
                face_value: params.face_value,
            });
        }
        if ev > self.limits.max_ticket_ev {
            return Err(ParamsRejection::TicketEvAboveMax {
                ev,
                max: self.limits.max_ticket_ev,
            });
        }
        let total = ev.saturating_mul(U256::from(tickets));
        if total > self.limits.max_total_ev {
            return Err(ParamsRejection::TotalEvAboveMax {
                tickets,
                total,
                max: self.limits.max_total_ev,
            });
        }
        if tickets > self.max_tickets {
            return Err(ParamsRejection::TooManyTickets {
                tickets,
                ev,
                max: self.max_tickets,
            });
        }
        if params.face_value > deposit {
            return Err(ParamsRejection::FaceValueAboveDeposit {
                face_value: params.face_value,
                deposit,
            });
        }
        Ok(())
    }

    /// The unsigned batch of tickets whose Σ EV covers `fee`, after checking O's params against
    /// B's rules: the count is computed exactly and checked before a nonce is taken, so the work
    /// is O(1) whatever O asks; a refusal consumes no nonce.
    pub fn reserve(
        &mut self,
        params: &TicketParams,
        fee: U256,
        current_block: u64,
        deposit: U256,
    ) -> Result<TicketBatch, SenderError> {
        let count = ev::tickets_for_fee(fee, params.ev())?;
        self.check_params(params, count, current_block, deposit)?;
        self.batch(params, count)
    }

    /// Tickets whose Σ EV covers `fee`, after checking O's params against B's rules.
    pub fn pay(
        &mut self,
        params: &TicketParams,
        fee: U256,
        current_block: u64,
        deposit: U256,
    ) -> Result<Vec<SignedTicket>, SenderError> {
        self.reserve(params, fee, current_block, deposit)?.sign()
    }

    /// [`pay`](Self::pay), wrapped in the `Payment` message for the `Livepeer-Payment` header.
    pub fn payment(
        &mut self,
        params: &TicketParams,
        fee: U256,
        current_block: u64,
        deposit: U256,
    ) -> Result<net::Payment, SenderError> {
        self.reserve(params, fee, current_block, deposit)?.payment()
    }

    /// Signs `count` tickets under `params` with the next nonces, without applying B's rules.
    pub fn sign_tickets(
        &mut self,
        params: &TicketParams,
        count: u64,
    ) -> Result<Vec<SignedTicket>, SenderError> {
        self.batch(params, count)?.sign()
    }

    fn batch(&mut self, params: &TicketParams, count: u64) -> Result<TicketBatch, SenderError> {
        let first_nonce = self.reserve_nonces(params.recipient_rand_hash, count)?;
        Ok(TicketBatch {
            signer: self.signer.clone(),
            params: params.clone(),
            first_nonce,
            count,
        })
    }

    /// The last nonce used under `recipient_rand_hash` (0 if none).
    pub fn last_nonce(&self, recipient_rand_hash: &B256) -> u32 {
        self.last_nonce
            .get(recipient_rand_hash)
            .copied()
            .unwrap_or(0)
    }

    /// Drops the nonce counter of params that will not be used again.
    pub fn forget(&mut self, recipient_rand_hash: &B256) {
        self.last_nonce.remove(recipient_rand_hash);
    }

    /// Takes the next `count` nonces; returns the first (all of them fit in u32).
    fn reserve_nonces(
        &mut self,
        recipient_rand_hash: B256,
        count: u64,
    ) -> Result<u64, SenderError> {
        let last = self.last_nonce.entry(recipient_rand_hash).or_insert(0);
        let first = u64::from(*last) + 1;
        let end = u32::try_from(u64::from(*last).saturating_add(count))
            .map_err(|_| SenderError::NoncesExhausted(recipient_rand_hash))?;
        *last = end;
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ticket::{PricePerPixel, TicketExpirationParams, win_prob_for_ev};

    fn sender() -> TicketSender {
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0xb0)).unwrap();
        TicketSender::new(key, SenderLimits::default())
    }

    /// Params with a face value of 1 gwei worth `ev` wei per ticket.
    fn params(ev: u64) -> TicketParams {
        let face_value = U256::from(1_000_000_000u64);
        TicketParams {
            recipient: Address::repeat_byte(1),
            face_value,
            win_prob: win_prob_for_ev(U256::from(ev), face_value).unwrap(),
            recipient_rand_hash: B256::repeat_byte(2),
            seed: U256::from(3),
            expiration_block: 100,
            expiration: TicketExpirationParams::default(),
            price: PricePerPixel {
                price_per_unit: 1,
                pixels_per_unit: 1,
            },
        }
    }

    fn deposit() -> U256 {
        U256::from(10u64).pow(U256::from(18))
    }

    /// Params worth 1 wei a ticket pass go-livepeer's EV rules; paying 10¹⁰ wei with them would
    /// take 10¹⁰ signatures. The refusal names the count and takes no nonce.
    #[test]
    fn one_wei_tickets_for_a_real_fee_are_refused_before_any_signature() {
        let mut s = sender();
        let cheap = params(1);
        assert_eq!(cheap.ev(), U256::from(1));
        let started = Instant::now();
        let err = s
            .pay(&cheap, U256::from(10_000_000_000u64), 50, deposit())
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(
            err,
            SenderError::Rejected(ParamsRejection::TooManyTickets {
                tickets: 10_000_000_000,
                ev: U256::from(1),
                max: DEFAULT_SENDER_MAX_TICKETS,
            })
        );
        assert!(
            err.to_string()
                .starts_with("rule tickets <= maxTickets: the payment takes 10000000000 tickets"),
            "{err}"
        );
        assert_eq!(s.last_nonce(&cheap.recipient_rand_hash), 0);
        // A count beyond u64 is an error too, not a saturated count.
        let err = s.pay(&cheap, U256::MAX, 50, deposit()).unwrap_err();
        assert!(
            matches!(err, SenderError::Ev(ev::EvError::TooManyTickets { .. })),
            "{err}"
        );
        // Exactly the cap is paid; one wei more is refused.
        let at_cap = U256::from(DEFAULT_SENDER_MAX_TICKETS);
        assert_eq!(s.pay(&cheap, at_cap, 50, deposit()).unwrap().len(), 100);
        assert!(
            s.pay(&cheap, at_cap + U256::from(1), 50, deposit())
                .is_err()
        );
        assert_eq!(s.last_nonce(&cheap.recipient_rand_hash), 100);
    }

    #[test]
    fn the_cap_is_configurable_and_a_batch_signs_its_reserved_nonces() {
        let mut s = sender().with_max_tickets(3);
        assert_eq!(s.max_tickets(), 3);
        let p = params(1_000);
        let err = s.reserve(&p, U256::from(3_001), 50, deposit()).unwrap_err();
        assert!(
            matches!(
                err,
                SenderError::Rejected(ParamsRejection::TooManyTickets {
                    tickets: 4,
                    max: 3,
                    ..
                })
            ),
            "{err}"
        );
        let first = s.reserve(&p, U256::from(2_500), 50, deposit()).unwrap();
        let second = s.reserve(&p, U256::from(1), 50, deposit()).unwrap();
        assert_eq!((first.count(), second.count()), (3, 1));
        assert_eq!(s.last_nonce(&p.recipient_rand_hash), 4);
        // Signed in either order, each batch carries the nonces it reserved.
        let later = second.payment().unwrap();
        let earlier = first.sign().unwrap();
        let nonces: Vec<u32> = earlier.iter().map(|t| t.ticket.sender_nonce).collect();
        assert_eq!(nonces, [1, 2, 3]);
        assert_eq!(later.ticket_sender_params.len(), 1);
        assert_eq!(later.ticket_sender_params[0].sender_nonce, 4);
    }

    #[test]
    fn nonces_run_out_without_overflow() {
        let mut s = sender();
        let p = params(1_000);
        s.last_nonce.insert(p.recipient_rand_hash, u32::MAX - 1);
        assert_eq!(
            s.sign_tickets(&p, 1).unwrap()[0].ticket.sender_nonce,
            u32::MAX
        );
        assert!(s.sign_tickets(&p, 0).unwrap().is_empty());
        assert_eq!(
            s.sign_tickets(&p, 1).unwrap_err(),
            SenderError::NoncesExhausted(p.recipient_rand_hash)
        );
    }
}
