//! The orchestrator's side of tickets: issuing params committed to a secret random number,
//! validating received tickets, crediting senders and queueing winners for redemption.
//!
//! recipientRand is not stored per params: it is re-derived as HMAC-SHA256(secret, params) when a
//! ticket arrives, so O keeps no per-params state besides used nonces and a forged params field
//! (face value, price, round…) simply fails the commitment check. Each acceptance rule of
//! PROTOCOL.md §4 fails with its own [`TicketRejection`] variant, checked in a fixed order (cheap
//! checks before the signature recovery).
//!
//! Validation is split in two so a node can keep the expensive part out of its lock: a
//! [`TicketVerifier`] (address and secret only, no state) caps the tickets of a payment before
//! decoding it, checks the payment's one recipientRand commitment, and only then recovers each
//! ticket's signer; [`TicketRecipient::receive_verified`] applies the stateful rules (expiry,
//! nonces, credit) under `&mut self`. Expiry is judged at the later of the caller's block and the
//! block the nonce book was last pruned at, so a caller holding a stale block cannot get a ticket
//! whose nonces were already forgotten accepted a second time.

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
    /// Most tickets one payment may carry; a larger payment is refused before any signature is
    /// recovered. Default [`DEFAULT_MAX_NONCES`]: a payment holds one params set, whose
    /// recipientRand takes at most that many nonces, so a larger batch is never accepted whole.
    pub max_tickets_per_payment: u32,
}

impl Default for RecipientConfig {
    fn default() -> Self {
        Self {
            ticket_ev: U256::from(DEFAULT_TICKET_EV),
            face_value: None,
            expiration_window: DEFAULT_EXPIRATION_WINDOW,
            max_nonces: DEFAULT_MAX_NONCES,
            max_tickets_per_payment: DEFAULT_MAX_NONCES,
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
    /// The payment carries more tickets than a payment may.
    #[error("payment carries {count} tickets, more than the {limit} a payment may carry")]
    TooManyTickets {
        /// Tickets in the payment.
        count: usize,
        /// The limit ([`RecipientConfig::max_tickets_per_payment`]).
        limit: u32,
    },
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

/// Params O will not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The face value and EV do not make a win probability.
    #[error(transparent)]
    Ev(#[from] EvError),
    /// The sender's max float, which caps the face value, is below the ticket EV (go-livepeer's
    /// `errInsufficientSenderReserve`, whose text this is).
    #[error("insufficient sender reserve")]
    InsufficientSenderReserve {
        /// The sender's max float, wei.
        max_float: U256,
        /// The ticket EV, wei.
        ev: U256,
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
    /// The block [`Self::prune_nonces`] last forgot nonces at: tickets are judged at this block
    /// at least, so none whose nonces were forgotten is accepted again.
    pruned_block: u64,
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
            pruned_block: 0,
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
    ) -> Result<TicketParams, IssueError> {
        self.issue_params_within(sender, price, chain, U256::MAX)
    }

    /// [`Self::issue_params`] for a sender whose funds guarantee this recipient `max_float` wei:
    /// the face value is at most `max_float` and never below the ticket EV, as go-livepeer's
    /// recipient quotes it; a max float below the EV is [`IssueError::InsufficientSenderReserve`].
    pub fn issue_params_within(
        &mut self,
        sender: Address,
        price: PricePerPixel,
        chain: &ChainView,
        max_float: U256,
    ) -> Result<TicketParams, IssueError> {
        let face_value = self.face_value(chain.gas_price).min(max_float);
        let ev = self.config.ticket_ev;
        if face_value < ev {
            return Err(IssueError::InsufficientSenderReserve { max_float, ev });
        }
        let win_prob = super::win_prob_for_ev(ev, face_value)?;
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
        let rand = self.rand_for(ticket, seed);
        self.accept(
            ticket,
            sig,
            rand,
            || recover_signer(ticket, sig),
            current_block,
        )
    }

    /// The stateless half of this recipient's validation, to run outside its lock.
    pub fn verifier(&self) -> TicketVerifier {
        TicketVerifier {
            address: self.address,
            secret: self.secret,
            max_tickets: self.config.max_tickets_per_payment,
        }
    }

    /// Validates every ticket of a decoded `Livepeer-Payment`. A malformed field or too many
    /// tickets fail the whole payment; a bad ticket is listed in the receipt and the others
    /// still count.
    pub fn receive_payment(
        &mut self,
        payment: &net::Payment,
        current_block: u64,
    ) -> Result<PaymentReceipt, PaymentError> {
        let verified = self.verifier().verify(payment)?;
        Ok(self.receive_verified(&verified, current_block))
    }

    /// Applies the stateful rules (expiry, nonces, unlocking) to a payment whose signatures a
    /// [`TicketVerifier`] already recovered, credits the accepted tickets and queues the winners.
    /// The commitment is checked again here (one HMAC per payment), so a payment verified by
    /// another recipient's verifier gains nothing.
    pub fn receive_verified(
        &mut self,
        verified: &VerifiedPayment,
        current_block: u64,
    ) -> PaymentReceipt {
        let received = &verified.received;
        let mut receipt = PaymentReceipt {
            sender: received.sender,
            accepted: 0,
            winners: 0,
            credited: U256::ZERO,
            rejected: Vec::new(),
        };
        let rand = self.payment_rand(received);
        let recovered = (rand == verified.recipient_rand).then_some(&verified.signers);
        for (i, signed) in received.tickets.iter().enumerate() {
            let signer = || match recovered.and_then(|signers| signers.get(i)) {
                Some(signer) => signer.clone(),
                None => recover_signer(&signed.ticket, &signed.sig),
            };
            match self.accept(&signed.ticket, &signed.sig, rand, signer, current_block) {
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
        receipt
    }

    /// The acceptance rules in their fixed order, with recipientRand already derived and the
    /// signer recovered only once the cheap rules passed.
    fn accept(
        &mut self,
        ticket: &Ticket,
        sig: &[u8],
        rand: U256,
        signer: impl FnOnce() -> Result<Address, SigError>,
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
        // Never judge at a block older than the one the nonces were pruned at: the check and the
        // nonce insert below happen under the same `&mut self` as the pruning.
        let current_block = current_block.max(self.pruned_block);
        if ticket.params_expiration_block <= current_block {
            return Err(TicketRejection::ParamsExpired {
                expiration_block: ticket.params_expiration_block,
                current_block,
            });
        }
        if recipient_rand_hash(rand) != ticket.recipient_rand_hash {
            return Err(TicketRejection::RecipientRandMismatch(
                ticket.recipient_rand_hash,
            ));
        }
        let signer = signer().map_err(TicketRejection::BadSignature)?;
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

    /// The one recipientRand of a payment's tickets: it commits to the params and the sender,
    /// not to the nonce.
    fn payment_rand(&self, received: &ReceivedPayment) -> U256 {
        payment_rand(&self.secret, received)
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
        self.pruned_block = self.pruned_block.max(current_block);
        let block = self.pruned_block;
        self.nonces
            .retain(|_, record| record.expiration_block > block);
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
        ticket_rand(&self.secret, ticket, seed)
    }
}

/// The stateless checks of a [`TicketRecipient`]: the per-payment ticket cap, the recipientRand
/// commitment and the recovery of every ticket's signer. It holds a copy of the recipient's
/// secret and no book, so a node runs it without holding the recipient's lock.
#[derive(Clone)]
pub struct TicketVerifier {
    address: Address,
    secret: [u8; 32],
    max_tickets: u32,
}

impl std::fmt::Debug for TicketVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketVerifier")
            .field("address", &self.address)
            .field("max_tickets", &self.max_tickets)
            .finish_non_exhaustive()
    }
}

impl TicketVerifier {
    /// The recipient's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Most tickets a payment may carry.
    pub fn max_tickets(&self) -> u32 {
        self.max_tickets
    }

    /// Counts the tickets before decoding anything (too many is
    /// [`PaymentError::TooManyTickets`]), decodes the payment, and recovers each ticket's signer
    /// only when the payment is addressed to this recipient by a non-zero sender under a
    /// commitment this recipient made: a payment that fails those costs one HMAC, not one
    /// recovery per ticket.
    pub fn verify(&self, payment: &net::Payment) -> Result<VerifiedPayment, PaymentError> {
        let count = payment.ticket_sender_params.len();
        if count > self.max_tickets as usize {
            return Err(PaymentError::TooManyTickets {
                count,
                limit: self.max_tickets,
            });
        }
        let received = ReceivedPayment::from_message(payment)?;
        let recipient_rand = payment_rand(&self.secret, &received);
        let params = &received.params;
        let signers = if params.recipient == self.address
            && !received.sender.is_zero()
            && recipient_rand_hash(recipient_rand) == params.recipient_rand_hash
        {
            received
                .tickets
                .iter()
                .map(|t| recover_signer(&t.ticket, &t.sig))
                .collect()
        } else {
            Vec::new()
        };
        Ok(VerifiedPayment {
            received,
            recipient_rand,
            signers,
        })
    }
}

/// A decoded payment with its recipientRand derived and, when the commitment held, every
/// ticket's signer recovered: the input of [`TicketRecipient::receive_verified`].
#[derive(Debug, Clone)]
pub struct VerifiedPayment {
    received: ReceivedPayment,
    recipient_rand: U256,
    signers: Vec<Result<Address, SigError>>,
}

impl VerifiedPayment {
    /// The decoded payment.
    pub fn payment(&self) -> &ReceivedPayment {
        &self.received
    }

    /// The recipientRand derived for its tickets (what redemption would reveal).
    pub fn recipient_rand(&self) -> U256 {
        self.recipient_rand
    }
}

/// The signer of `ticket`'s EIP-191 hash under `sig`: the expensive step of validation.
fn recover_signer(ticket: &Ticket, sig: &[u8]) -> Result<Address, SigError> {
    sig::recover_prehash(&eip191_hash_message(ticket.hash()), sig)
}

fn payment_rand(secret: &[u8; 32], received: &ReceivedPayment) -> U256 {
    let params = &received.params;
    ticket_rand(secret, &params.ticket(received.sender, 0), params.seed)
}

fn ticket_rand(secret: &[u8; 32], ticket: &Ticket, seed: U256) -> U256 {
    recipient_rand(
        secret,
        seed,
        ticket.sender,
        ticket.face_value,
        ticket.win_prob,
        ticket.params_expiration_block,
        ticket.price,
        &ticket.aux_data(),
    )
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

#[cfg(test)]
mod tests {
    //! What only the crate sees: which signatures verification recovered. The rules and
    //! crediting through the public API are tested in `tests/integration/tickets.rs`.

    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::ticket::{SenderLimits, SignedTicket, TicketSender, payment_message};

    fn key(byte: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
    }

    fn parties() -> (TicketRecipient, TicketSender) {
        (
            TicketRecipient::with_seed(key(0xa0).address(), RecipientConfig::default(), 1),
            TicketSender::new(key(0xb0), SenderLimits::default()),
        )
    }

    /// Params issued at block 100 of round 7 and `count` tickets signed on them.
    fn signed(
        r: &mut TicketRecipient,
        s: &mut TicketSender,
        count: u64,
    ) -> (TicketParams, Vec<SignedTicket>) {
        let chain = ChainView {
            block: 100,
            round: 7,
            round_block_hash: B256::repeat_byte(0x77),
            gas_price: U256::from(100_000_000u64),
        };
        let price = PricePerPixel {
            price_per_unit: 1200,
            pixels_per_unit: 1,
        };
        let params = r.issue_params(s.address(), price, &chain).unwrap();
        let tickets = s.sign_tickets(&params, count).unwrap();
        (params, tickets)
    }

    #[test]
    fn a_payment_under_a_foreign_commitment_recovers_no_signature() {
        let (mut r, mut s) = parties();
        let (mut params, _) = signed(&mut r, &mut s, 1);
        params.face_value += U256::from(1);
        let tickets = s.sign_tickets(&params, 5).unwrap();
        let payment = payment_message(&params, s.address(), &tickets);
        let verified = r.verifier().verify(&payment).unwrap();
        assert!(verified.signers.is_empty());
        let receipt = r.receive_verified(&verified, 101);
        assert_eq!(receipt.rejected.len(), 5);
        assert!(
            receipt
                .rejected
                .iter()
                .all(|(_, why)| matches!(why, TicketRejection::RecipientRandMismatch(_)))
        );
    }

    #[test]
    fn verified_payments_keep_the_rule_order_and_credit() {
        let (mut r, mut s) = parties();
        let (params, mut tickets) = signed(&mut r, &mut s, 3);
        tickets[1].sig = sig::personal_sign(&key(0xc0), tickets[1].ticket.hash().as_slice())
            .unwrap()
            .to_vec();
        let payment = payment_message(&params, s.address(), &tickets);
        let verified = r.verifier().verify(&payment).unwrap();
        assert_eq!(verified.signers.len(), 3);
        let receipt = r.receive_verified(&verified, 101);
        assert_eq!(receipt.accepted, 2);
        assert_eq!(
            receipt.rejected,
            vec![(
                2,
                TicketRejection::BadSignature(SigError::WrongSigner {
                    expected: s.address(),
                    recovered: key(0xc0).address(),
                })
            )]
        );
        assert_eq!(r.balance(&s.address()), params.ev() * U256::from(2));
        // Expiry still comes before the signature: a stale payment costs no recovery verdict.
        let receipt = r.receive_verified(&verified, params.expiration_block);
        assert!(matches!(
            receipt.rejected[1].1,
            TicketRejection::ParamsExpired { .. }
        ));
    }
}
