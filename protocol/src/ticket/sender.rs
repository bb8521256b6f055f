//! The broadcaster's side of tickets: nonce bookkeeping, the acceptance rules for an
//! orchestrator's params, and creating signed tickets that pay a fee.
//!
//! Nonces are counted per recipientRandHash from 1, because O tracks used nonces per committed
//! random number; fresh params (a new commitment) restart the count. [`TicketSender::pay`] refuses
//! params that break any of B's rules with a [`ParamsRejection`] naming the rule;
//! [`TicketSender::sign_tickets`] skips the policy so probes can deliberately send tickets that an
//! honest broadcaster would not (e.g. winProb at the maximum, or to test O's rejections).

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
    last_nonce: HashMap<B256, u32>,
}

impl TicketSender {
    /// A sender signing with `signer` and enforcing `limits`.
    pub fn new(signer: PrivateKeySigner, limits: SenderLimits) -> Self {
        Self {
            signer,
            limits,
            last_nonce: HashMap::new(),
        }
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
        if params.face_value > deposit {
            return Err(ParamsRejection::FaceValueAboveDeposit {
                face_value: params.face_value,
                deposit,
            });
        }
        Ok(())
    }

    /// Tickets whose Σ EV covers `fee`, after checking O's params against B's rules.
    pub fn pay(
        &mut self,
        params: &TicketParams,
        fee: U256,
        current_block: u64,
        deposit: U256,
    ) -> Result<Vec<SignedTicket>, SenderError> {
        let count = ev::tickets_for_fee(fee, params.ev())?;
        self.check_params(params, count, current_block, deposit)?;
        self.sign_tickets(params, count)
    }

    /// [`pay`](Self::pay), wrapped in the `Payment` message for the `Livepeer-Payment` header.
    pub fn payment(
        &mut self,
        params: &TicketParams,
        fee: U256,
        current_block: u64,
        deposit: U256,
    ) -> Result<net::Payment, SenderError> {
        let tickets = self.pay(params, fee, current_block, deposit)?;
        Ok(payment_message(params, self.address(), &tickets))
    }

    /// Signs `count` tickets under `params` with the next nonces, without applying B's rules.
    pub fn sign_tickets(
        &mut self,
        params: &TicketParams,
        count: u64,
    ) -> Result<Vec<SignedTicket>, SenderError> {
        let sender = self.address();
        let first = self.reserve_nonces(params.recipient_rand_hash, count)?;
        (0..count)
            .map(|i| {
                let ticket = params.ticket(sender, first + i as u32);
                let sig = sig::sign_prehash(&self.signer, &eip191_hash_message(ticket.hash()))?;
                Ok(SignedTicket {
                    ticket,
                    sig: sig.to_vec(),
                })
            })
            .collect()
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

    fn reserve_nonces(
        &mut self,
        recipient_rand_hash: B256,
        count: u64,
    ) -> Result<u32, SenderError> {
        let last = self.last_nonce.entry(recipient_rand_hash).or_insert(0);
        let end = u64::from(*last) + count;
        if end > u64::from(u32::MAX) {
            return Err(SenderError::NoncesExhausted(recipient_rand_hash));
        }
        let first = *last + 1;
        *last = end as u32;
        Ok(first)
    }
}
