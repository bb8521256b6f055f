//! The orchestrator's side of tickets: issuing params committed to a secret random number,
//! validating received tickets, crediting senders and queueing winners for redemption.
//!
//! recipientRand is not stored per params: it is re-derived as HMAC-SHA256(secret, params) when a
//! ticket arrives, so O keeps no per-params state besides used nonces and a forged params field
//! (face value, price, round…) simply fails the commitment check. Each acceptance rule of
//! PROTOCOL.md §4 fails with its own [`TicketRejection`] variant, checked in a fixed order (cheap
//! checks before the signature recovery).

use std::collections::{HashMap, HashSet, VecDeque};

use alloy::primitives::{Address, B256, U256, eip191_hash_message, keccak256};
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;

use super::{
    EvError, PricePerPixel, ReceivedPayment, Ticket, TicketExpirationParams, TicketParams,
    is_winning,
};
use crate::fields::{self, FieldError};
use crate::net;
use crate::sig::{self, SigError};

/// Gas of one `redeemWinningTicket` on Arbitrum, used to size the face value.
pub const REDEEM_GAS: u64 = 1_200_000;
/// go-livepeer's default ticket EV: 8e9 wei.
pub const DEFAULT_TICKET_EV: u64 = 8_000_000_000;
/// Params stay valid for this many blocks after the last seen block.
pub const DEFAULT_EXPIRATION_WINDOW: u64 = 40;
/// Most nonces O accepts per recipientRand.
pub const DEFAULT_MAX_NONCES: u32 = 600;
/// faceValue = redemption tx cost × this.
const FACE_VALUE_MULTIPLIER: u64 = 100;

/// O's ticket policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientConfig {
    /// EV of each ticket O asks for.
    pub ticket_ev: U256,
    /// Fixed face value; `None` derives it from the gas price (`gas × REDEEM_GAS × 100`).
    pub face_value: Option<U256>,
    /// Blocks after the current one at which issued params expire.
    pub expiration_window: u64,
    /// Most nonces accepted per recipientRand.
    pub max_nonces: u32,
}

impl Default for RecipientConfig {
    fn default() -> Self {
        Self {
            ticket_ev: U256::from(DEFAULT_TICKET_EV),
            face_value: None,
            expiration_window: DEFAULT_EXPIRATION_WINDOW,
            max_nonces: DEFAULT_MAX_NONCES,
        }
    }
}

/// What O knows about the chain when it issues params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainView {
    /// Last seen (L1) block number.
    pub block: u64,
    /// Current round.
    pub round: u64,
    /// The RoundsManager's block hash for `round`.
    pub round_block_hash: B256,
    /// Gas price used to size the face value, wei.
    pub gas_price: U256,
}

/// A received ticket that O refuses; one variant per acceptance rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketRejection {
    /// Rule: the recipient is O itself.
    #[error("ticket recipient {got} is not this orchestrator {expected}")]
    WrongRecipient {
        /// O's address.
        expected: Address,
        /// Ticket's recipient.
        got: Address,
    },
    /// Rule: the sender is not the zero address.
    #[error("ticket sender is the zero address")]
    ZeroSender,
    /// Rule: params not expired.
    #[error("ticket params expired at block {expiration_block} (now {current_block})")]
    ParamsExpired {
        /// Params' expiration block.
        expiration_block: u64,
        /// O's latest block.
        current_block: u64,
    },
    /// Rule: recipientRand derived from the params matches recipientRandHash.
    #[error("recipientRand does not match recipientRandHash {0}")]
    RecipientRandMismatch(B256),
    /// Rule: the signature is valid and by the sender.
    #[error("invalid ticket signature: {0}")]
    BadSignature(SigError),
    /// Rule: the nonce is unused.
    #[error("nonce {nonce} already used for recipientRandHash {recipient_rand_hash}")]
    NonceReused {
        /// The repeated nonce.
        nonce: u32,
        /// Params commitment.
        recipient_rand_hash: B256,
    },
    /// Rule: at most `limit` nonces per recipientRand.
    #[error("more than {limit} nonces for recipientRandHash {recipient_rand_hash}")]
    TooManyNonces {
        /// The limit.
        limit: u32,
        /// Params commitment.
        recipient_rand_hash: B256,
    },
    /// Rule: the sender is not unlocking its deposit.
    #[error("sender {0} is unlocking its deposit")]
    SenderUnlocking(Address),
}

/// The result of an accepted ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketOutcome {
    /// EV credited to the sender.
    pub ev: U256,
    /// Whether the ticket won (and was queued for redemption).
    pub winning: bool,
}

/// A winning ticket with what `redeemWinningTicket` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinningTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// Sender's signature.
    pub sig: Vec<u8>,
    /// O's revealed random number.
    pub recipient_rand: U256,
}

/// Summary of a processed `Payment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    /// Sender of the payment.
    pub sender: Address,
    /// Tickets accepted.
    pub accepted: u32,
    /// Accepted tickets that won.
    pub winners: u32,
    /// EV credited to the sender by this payment.
    pub credited: U256,
    /// Refused tickets: nonce and reason.
    pub rejected: Vec<(u32, TicketRejection)>,
}

/// A payment that cannot be processed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The sender's credit does not cover a debit.
    #[error("insufficient balance for {sender}: have {balance}, need {needed}")]
    InsufficientBalance {
        /// Sender.
        sender: Address,
        /// Credit held.
        balance: U256,
        /// Amount requested.
        needed: U256,
    },
}

#[derive(Debug)]
struct NonceRecord {
    expiration_block: u64,
    used: HashSet<u32>,
}

/// The orchestrator's ticket book.
#[derive(Debug)]
pub struct TicketRecipient {
    address: Address,
    secret: [u8; 32],
    config: RecipientConfig,
    rng: StdRng,
    nonces: HashMap<B256, NonceRecord>,
    balances: HashMap<Address, U256>,
    unlocking: HashSet<Address>,
    winners: VecDeque<WinningTicket>,
}

impl TicketRecipient {
    /// A recipient for `address` with a secret and seeds from the OS RNG.
    pub fn new(address: Address, config: RecipientConfig) -> Self {
        Self::from_rng(address, config, StdRng::from_os_rng())
    }

    /// A recipient whose secret and seeds are derived from `seed`: same seed, same params.
    pub fn with_seed(address: Address, config: RecipientConfig, seed: u64) -> Self {
        Self::from_rng(address, config, StdRng::seed_from_u64(seed))
    }

    /// A recipient with a given secret (seeds from the OS RNG): an orchestrator that keeps its
    /// secret across restarts, or a peer implementation checking this one's recipientRand (as
    /// go-livepeer's `NewRecipientWithSecret`).
    pub fn with_secret(address: Address, config: RecipientConfig, secret: [u8; 32]) -> Self {
        Self {
            secret,
            ..Self::new(address, config)
        }
    }

    fn from_rng(address: Address, config: RecipientConfig, mut rng: StdRng) -> Self {
        let secret: [u8; 32] = rng.random();
        Self {
            address,
            secret,
            config,
            rng,
            nonces: HashMap::new(),
            balances: HashMap::new(),
            unlocking: HashSet::new(),
            winners: VecDeque::new(),
        }
    }

    /// O's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The policy in force.
    pub fn config(&self) -> &RecipientConfig {
        &self.config
    }

    /// Face value for a gas price: `gas × REDEEM_GAS × 100`, at least the ticket EV (or the fixed
    /// face value of the config).
    pub fn face_value(&self, gas_price: U256) -> U256 {
        self.config
            .face_value
            .unwrap_or_else(|| {
                gas_price.saturating_mul(U256::from(REDEEM_GAS * FACE_VALUE_MULTIPLIER))
            })
            .max(self.config.ticket_ev)
    }

    /// Fresh params for `sender` at `price`: a new seed, the configured EV, and the commitment
    /// `keccak256(leftpad32(HMAC(secret, params)))`.
    pub fn issue_params(
        &mut self,
        sender: Address,
        price: PricePerPixel,
        chain: &ChainView,
    ) -> Result<TicketParams, EvError> {
        let face_value = self.face_value(chain.gas_price);
        let win_prob = super::win_prob_for_ev(self.config.ticket_ev, face_value)?;
        let seed = U256::from_be_bytes(self.rng.random::<[u8; 32]>());
        let mut params = TicketParams {
            recipient: self.address,
            face_value,
            win_prob,
            recipient_rand_hash: B256::ZERO,
            seed,
            expiration_block: chain.block + self.config.expiration_window,
            expiration: TicketExpirationParams {
                creation_round: chain.round,
                creation_round_block_hash: chain.round_block_hash,
            },
            price,
        };
        let rand = self.rand_for(&params.ticket(sender, 0), seed);
        params.recipient_rand_hash = recipient_rand_hash(rand);
        Ok(params)
    }

    /// Marks whether `sender` is unlocking its deposit (from chain monitoring); tickets from an
    /// unlocking sender are refused.
    pub fn set_sender_unlocking(&mut self, sender: Address, unlocking: bool) {
        if unlocking {
            self.unlocking.insert(sender);
        } else {
            self.unlocking.remove(&sender);
        }
    }

    /// Validates one ticket (signed `sig`, made from params with `seed`) at O's latest block;
    /// on success credits its EV to the sender and queues it if it wins.
    pub fn receive_ticket(
        &mut self,
        ticket: &Ticket,
        sig: &[u8],
        seed: U256,
        current_block: u64,
    ) -> Result<TicketOutcome, TicketRejection> {
        if ticket.recipient != self.address {
            return Err(TicketRejection::WrongRecipient {
                expected: self.address,
                got: ticket.recipient,
            });
        }
        if ticket.sender.is_zero() {
            return Err(TicketRejection::ZeroSender);
        }
        if ticket.params_expiration_block <= current_block {
            return Err(TicketRejection::ParamsExpired {
                expiration_block: ticket.params_expiration_block,
                current_block,
            });
        }
        let rand = self.rand_for(ticket, seed);
        if recipient_rand_hash(rand) != ticket.recipient_rand_hash {
            return Err(TicketRejection::RecipientRandMismatch(
                ticket.recipient_rand_hash,
            ));
        }
        let signer = sig::recover_prehash(&eip191_hash_message(ticket.hash()), sig)
            .map_err(TicketRejection::BadSignature)?;
        if signer != ticket.sender {
            return Err(TicketRejection::BadSignature(SigError::WrongSigner {
                expected: ticket.sender,
                recovered: signer,
            }));
        }
        self.use_nonce(ticket)?;
        if self.unlocking.contains(&ticket.sender) {
            return Err(TicketRejection::SenderUnlocking(ticket.sender));
        }
        let ev = ticket.ev();
        let balance = self.balances.entry(ticket.sender).or_default();
        *balance = balance.saturating_add(ev);
        let winning = is_winning(sig, rand, ticket.win_prob);
        if winning {
            self.winners.push_back(WinningTicket {
                ticket: ticket.clone(),
                sig: sig.to_vec(),
                recipient_rand: rand,
            });
        }
        Ok(TicketOutcome { ev, winning })
    }

    /// Validates every ticket of a decoded `Livepeer-Payment`. A malformed field fails the whole
    /// payment; a bad ticket is listed in the receipt and the others still count.
    pub fn receive_payment(
        &mut self,
        payment: &net::Payment,
        current_block: u64,
    ) -> Result<PaymentReceipt, PaymentError> {
        let received = ReceivedPayment::from_message(payment)?;
        let mut receipt = PaymentReceipt {
            sender: received.sender,
            accepted: 0,
            winners: 0,
            credited: U256::ZERO,
            rejected: Vec::new(),
        };
        for signed in &received.tickets {
            match self.receive_ticket(
                &signed.ticket,
                &signed.sig,
                received.params.seed,
                current_block,
            ) {
                Ok(outcome) => {
                    receipt.accepted += 1;
                    receipt.winners += u32::from(outcome.winning);
                    receipt.credited = receipt.credited.saturating_add(outcome.ev);
                }
                Err(rejection) => receipt
                    .rejected
                    .push((signed.ticket.sender_nonce, rejection)),
            }
        }
        Ok(receipt)
    }

    /// EV credited to `sender` and not yet debited.
    pub fn balance(&self, sender: &Address) -> U256 {
        self.balances.get(sender).copied().unwrap_or_default()
    }

    /// Charges `amount` (a fee) against `sender`'s credit.
    pub fn debit(&mut self, sender: Address, amount: U256) -> Result<(), PaymentError> {
        let balance = self.balances.entry(sender).or_default();
        if *balance < amount {
            return Err(PaymentError::InsufficientBalance {
                sender,
                balance: *balance,
                needed: amount,
            });
        }
        *balance -= amount;
        Ok(())
    }

    /// Winning tickets waiting for redemption.
    pub fn pending_winners(&self) -> impl Iterator<Item = &WinningTicket> {
        self.winners.iter()
    }

    /// Removes and returns the winners whose params expiration block has passed (`< current_block`)
    /// — the point from which O redeems. The caller checks the sender's funds on chain and
    /// [`requeue`](Self::requeue)s what it cannot redeem yet.
    pub fn take_redeemable(&mut self, current_block: u64) -> Vec<WinningTicket> {
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .winners
            .drain(..)
            .partition(|w| w.ticket.params_expiration_block < current_block);
        self.winners = waiting.into();
        ready
    }

    /// Puts a winner back in the queue.
    pub fn requeue(&mut self, winner: WinningTicket) {
        self.winners.push_back(winner);
    }

    /// Forgets used nonces of params that expired before `current_block` (their tickets are
    /// refused as expired anyway).
    pub fn prune_nonces(&mut self, current_block: u64) {
        self.nonces
            .retain(|_, record| record.expiration_block > current_block);
    }

    fn use_nonce(&mut self, ticket: &Ticket) -> Result<(), TicketRejection> {
        let limit = self.config.max_nonces;
        let record = self
            .nonces
            .entry(ticket.recipient_rand_hash)
            .or_insert_with(|| NonceRecord {
                expiration_block: ticket.params_expiration_block,
                used: HashSet::new(),
            });
        if record.used.contains(&ticket.sender_nonce) {
            return Err(TicketRejection::NonceReused {
                nonce: ticket.sender_nonce,
                recipient_rand_hash: ticket.recipient_rand_hash,
            });
        }
        if record.used.len() >= limit as usize {
            return Err(TicketRejection::TooManyNonces {
                limit,
                recipient_rand_hash: ticket.recipient_rand_hash,
            });
        }
        record.used.insert(ticket.sender_nonce);
        Ok(())
    }

    /// The recipientRand this recipient derives for `ticket` under the params seeded with `seed`:
    /// what go-livepeer's `pm.Validator` checks a ticket against, and what redemption reveals.
    pub fn recipient_rand_for(&self, ticket: &Ticket, seed: U256) -> U256 {
        self.rand_for(ticket, seed)
    }

    fn rand_for(&self, ticket: &Ticket, seed: U256) -> U256 {
        recipient_rand(
            &self.secret,
            seed,
            ticket.sender,
            ticket.face_value,
            ticket.win_prob,
            ticket.params_expiration_block,
            ticket.price,
            &ticket.aux_data(),
        )
    }
}

/// recipientRand = HMAC-SHA256(secret, seed ‖ sender ‖ faceValue ‖ winProb ‖ expirationBlock ‖
/// price numerator ‖ price denominator ‖ auxData), integers as minimal big-endian bytes and the
/// price as a reduced fraction.
#[allow(clippy::too_many_arguments)]
pub fn recipient_rand(
    secret: &[u8; 32],
    seed: U256,
    sender: Address,
    face_value: U256,
    win_prob: U256,
    expiration_block: u64,
    price: PricePerPixel,
    aux_data: &[u8],
) -> U256 {
    let (num, den) = price.reduced();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(&fields::minimal_be(seed));
    mac.update(sender.as_slice());
    mac.update(&fields::minimal_be(face_value));
    mac.update(&fields::minimal_be(win_prob));
    mac.update(&fields::minimal_be(U256::from(expiration_block)));
    mac.update(&fields::minimal_be(U256::from(num)));
    mac.update(&fields::minimal_be(U256::from(den)));
    mac.update(aux_data);
    U256::from_be_bytes(mac.finalize().into_bytes().into())
}

/// recipientRandHash = keccak256(leftpad32(recipientRand)).
pub fn recipient_rand_hash(recipient_rand: U256) -> B256 {
    keccak256(recipient_rand.to_be_bytes::<32>())
}
