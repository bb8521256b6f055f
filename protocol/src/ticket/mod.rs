//! Probabilistic-micropayment tickets: the ticket, its hash, the parameters an orchestrator
//! advertises, and the two parties — [`TicketSender`] (broadcaster) and [`TicketRecipient`]
//! (orchestrator).
//!
//! Domain types here hold checked values (addresses, U256, u64 rounds); conversion from the wire
//! (`net::TicketParams`, `net::Payment`) happens once, in [`ReceivedPayment::from_message`] and
//! [`TicketParams::from_message`], and reports the offending field. The ticket hash is
//! `abi.encodePacked` of the ticket so it equals the TicketBroker's `getTicketHash`.

mod ev;
mod recipient;
mod sender;

use alloy::primitives::{Address, B256, U256, keccak256};

pub use ev::{EvError, MAX_WIN_PROB, ticket_ev, tickets_for_fee, win_prob_for_ev, win_probability};
pub use recipient::{
    ChainView, DEFAULT_EXPIRATION_WINDOW, DEFAULT_MAX_NONCES, DEFAULT_TICKET_EV, IssueError,
    PaymentError, PaymentReceipt, REDEEM_GAS, RecipientConfig, TicketOutcome, TicketRecipient,
    TicketRejection, TicketVerifier, VerifiedPayment, WinningTicket, recipient_rand,
    recipient_rand_hash,
};
pub use sender::{
    DEFAULT_MAX_TICKET_EV, DEFAULT_MAX_TOTAL_EV, DEFAULT_SENDER_MAX_TICKETS, ParamsRejection,
    SenderError, SenderLimits, TicketBatch, TicketSender,
};

use crate::fields::{self, FieldError, FieldErrorKind};
use crate::net;
use crate::sig::SIGNATURE_LEN;

/// The round a ticket is created in and that round's block hash: the ticket's `auxData`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TicketExpirationParams {
    /// Round in which the ticket was created.
    pub creation_round: u64,
    /// Block hash the RoundsManager stored for `creation_round`.
    pub creation_round_block_hash: B256,
}

impl TicketExpirationParams {
    /// `auxData`: `uint256(creationRound) ‖ blockHash`, or empty when both are zero.
    pub fn aux_data(&self) -> Vec<u8> {
        if self.creation_round == 0 && self.creation_round_block_hash.is_zero() {
            return Vec::new();
        }
        let mut aux = Vec::with_capacity(64);
        aux.extend_from_slice(&U256::from(self.creation_round).to_be_bytes::<32>());
        aux.extend_from_slice(self.creation_round_block_hash.as_slice());
        aux
    }

    /// Wire form.
    pub fn to_message(&self) -> net::TicketExpirationParams {
        net::TicketExpirationParams {
            creation_round: self.creation_round as i64,
            creation_round_block_hash: self.creation_round_block_hash.to_vec(),
        }
    }

    /// Parses the wire form; an absent message means round 0 with a zero hash.
    pub fn from_message(
        msg: Option<&net::TicketExpirationParams>,
        field: &'static str,
    ) -> Result<Self, FieldError> {
        let Some(msg) = msg else {
            return Ok(Self::default());
        };
        let creation_round = fields::non_negative(field, msg.creation_round)?;
        let creation_round_block_hash = if msg.creation_round_block_hash.is_empty() {
            B256::ZERO
        } else {
            fields::hash(field, &msg.creation_round_block_hash)?
        };
        Ok(Self {
            creation_round,
            creation_round_block_hash,
        })
    }
}

/// O's price: `price_per_unit` wei per `pixels_per_unit` output pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PricePerPixel {
    /// Wei per unit.
    pub price_per_unit: u64,
    /// Pixels per unit (never zero).
    pub pixels_per_unit: u64,
}

impl Default for PricePerPixel {
    fn default() -> Self {
        Self {
            price_per_unit: 0,
            pixels_per_unit: 1,
        }
    }
}

impl PricePerPixel {
    /// Fee for `pixels` output pixels, rounded up to whole wei.
    pub fn fee(&self, pixels: u64) -> U256 {
        (U256::from(pixels) * U256::from(self.price_per_unit))
            .div_ceil(U256::from(self.pixels_per_unit))
    }

    /// The reduced fraction (numerator, denominator), as go's `big.Rat` holds it.
    pub fn reduced(&self) -> (u64, u64) {
        let g = gcd(self.price_per_unit, self.pixels_per_unit).max(1);
        (self.price_per_unit / g, self.pixels_per_unit / g)
    }

    /// Wire form.
    pub fn to_message(&self) -> net::PriceInfo {
        net::PriceInfo {
            price_per_unit: self.price_per_unit as i64,
            pixels_per_unit: self.pixels_per_unit as i64,
            ..Default::default()
        }
    }

    /// Parses a `PriceInfo`; absent means free (0 / 1).
    pub fn from_message(
        msg: Option<&net::PriceInfo>,
        field: &'static str,
    ) -> Result<Self, FieldError> {
        let Some(msg) = msg else {
            return Ok(Self::default());
        };
        let price_per_unit = fields::non_negative(field, msg.price_per_unit)?;
        let pixels_per_unit = fields::non_negative(field, msg.pixels_per_unit)?;
        if pixels_per_unit == 0 {
            return Err(FieldError::new(
                field,
                FieldErrorKind::OutOfRange("pixelsPerUnit is zero".into()),
            ));
        }
        Ok(Self {
            price_per_unit,
            pixels_per_unit,
        })
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The parameters an orchestrator advertises for tickets paying it, with the price they were
/// issued for (the price is part of the recipientRand commitment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketParams {
    /// O's address.
    pub recipient: Address,
    /// Payout of a winning ticket, wei.
    pub face_value: U256,
    /// Win probability numerator over 2²⁵⁶ − 1.
    pub win_prob: U256,
    /// keccak256 commitment to O's recipientRand.
    pub recipient_rand_hash: B256,
    /// O's random seed, from which O re-derives recipientRand.
    pub seed: U256,
    /// Last L1 block at which these params are still valid.
    pub expiration_block: u64,
    /// Creation round and its block hash.
    pub expiration: TicketExpirationParams,
    /// Price the params were issued for.
    pub price: PricePerPixel,
}

impl TicketParams {
    /// Expected value of one ticket.
    pub fn ev(&self) -> U256 {
        ticket_ev(self.face_value, self.win_prob)
    }

    /// Wire form (`OrchestratorInfo.ticket_params`; the price travels in `price_info`).
    pub fn to_message(&self) -> net::TicketParams {
        net::TicketParams {
            recipient: self.recipient.to_vec(),
            face_value: fields::minimal_be(self.face_value),
            win_prob: fields::minimal_be(self.win_prob),
            recipient_rand_hash: self.recipient_rand_hash.to_vec(),
            seed: fields::minimal_be(self.seed),
            expiration_block: fields::minimal_be(U256::from(self.expiration_block)),
            expiration_params: Some(self.expiration.to_message()),
        }
    }

    /// Parses `ticket_params` together with the price they were issued for.
    pub fn from_message(
        msg: &net::TicketParams,
        price: Option<&net::PriceInfo>,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            recipient: fields::address("TicketParams.recipient", &msg.recipient)?,
            face_value: fields::uint256("TicketParams.face_value", &msg.face_value)?,
            win_prob: fields::uint256("TicketParams.win_prob", &msg.win_prob)?,
            recipient_rand_hash: fields::hash(
                "TicketParams.recipient_rand_hash",
                &msg.recipient_rand_hash,
            )?,
            seed: fields::uint256("TicketParams.seed", &msg.seed)?,
            expiration_block: fields::uint64(
                "TicketParams.expiration_block",
                &msg.expiration_block,
            )?,
            expiration: TicketExpirationParams::from_message(
                msg.expiration_params.as_ref(),
                "TicketParams.expiration_params",
            )?,
            price: PricePerPixel::from_message(price, "PriceInfo")?,
        })
    }

    /// Parses the ticket params and price of an `OrchestratorInfo`.
    pub fn from_orchestrator_info(info: &net::OrchestratorInfo) -> Result<Self, FieldError> {
        let params = info
            .ticket_params
            .as_ref()
            .ok_or(FieldError::missing("OrchestratorInfo.ticket_params"))?;
        Self::from_message(params, info.price_info.as_ref())
    }

    /// The ticket `sender` would sign with nonce `sender_nonce` under these params.
    pub fn ticket(&self, sender: Address, sender_nonce: u32) -> Ticket {
        Ticket {
            recipient: self.recipient,
            sender,
            face_value: self.face_value,
            win_prob: self.win_prob,
            sender_nonce,
            recipient_rand_hash: self.recipient_rand_hash,
            expiration: self.expiration,
            params_expiration_block: self.expiration_block,
            price: self.price,
        }
    }
}

/// A ticket: the hashed fields plus the off-hash params expiration block and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// O's address.
    pub recipient: Address,
    /// B's address (the deposit holder).
    pub sender: Address,
    /// Payout if the ticket wins, wei.
    pub face_value: U256,
    /// Win probability numerator over 2²⁵⁶ − 1.
    pub win_prob: U256,
    /// Nonce, unique per recipientRandHash.
    pub sender_nonce: u32,
    /// O's commitment.
    pub recipient_rand_hash: B256,
    /// Creation round and block hash (`auxData`).
    pub expiration: TicketExpirationParams,
    /// Block after which O's params are stale (not hashed).
    pub params_expiration_block: u64,
    /// Price the params were issued for (not hashed).
    pub price: PricePerPixel,
}

impl Ticket {
    /// Size of the hash preimage with a 64-byte auxData.
    pub const PREIMAGE_LEN: usize = 232;

    /// `abi.encodePacked(recipient, sender, faceValue, winProb, senderNonce, recipientRandHash,
    /// auxData)`: 168 bytes plus auxData (0 or 64 bytes).
    pub fn preimage(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::PREIMAGE_LEN);
        out.extend_from_slice(self.recipient.as_slice());
        out.extend_from_slice(self.sender.as_slice());
        out.extend_from_slice(&self.face_value.to_be_bytes::<32>());
        out.extend_from_slice(&self.win_prob.to_be_bytes::<32>());
        out.extend_from_slice(&U256::from(self.sender_nonce).to_be_bytes::<32>());
        out.extend_from_slice(self.recipient_rand_hash.as_slice());
        out.extend_from_slice(&self.expiration.aux_data());
        out
    }

    /// The ticket hash, equal to TicketBroker's `getTicketHash`.
    pub fn hash(&self) -> B256 {
        keccak256(self.preimage())
    }

    /// `auxData` as the contract takes it.
    pub fn aux_data(&self) -> Vec<u8> {
        self.expiration.aux_data()
    }

    /// Expected value in wei.
    pub fn ev(&self) -> U256 {
        ticket_ev(self.face_value, self.win_prob)
    }
}

/// Whether a ticket with signature `sig` wins given O's `recipient_rand`:
/// `uint256(keccak256(sig ‖ leftpad32(recipientRand))) < winProb`.
pub fn is_winning(sig: &[u8], recipient_rand: U256, win_prob: U256) -> bool {
    let mut buf = Vec::with_capacity(sig.len() + 32);
    buf.extend_from_slice(sig);
    buf.extend_from_slice(&recipient_rand.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(buf).0) < win_prob
}

/// A ticket and the sender's signature over its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// personal_sign(ticket hash), `r‖s‖v`.
    pub sig: Vec<u8>,
}

/// Builds the `Payment` message carrying `tickets` (all made from `params` by `sender`).
pub fn payment_message(
    params: &TicketParams,
    sender: Address,
    tickets: &[SignedTicket],
) -> net::Payment {
    net::Payment {
        ticket_params: Some(params.to_message()),
        sender: sender.to_vec(),
        expiration_params: Some(params.expiration.to_message()),
        ticket_sender_params: tickets
            .iter()
            .map(|t| net::TicketSenderParams {
                sender_nonce: t.ticket.sender_nonce,
                sig: t.sig.clone(),
            })
            .collect(),
        expected_price: Some(params.price.to_message()),
    }
}

/// A `Payment` whose fields have been checked: the params, the sender and its tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPayment {
    /// Ticket params (with the price B expects).
    pub params: TicketParams,
    /// B's address.
    pub sender: Address,
    /// The tickets with their signatures (signature length is checked during validation, so a
    /// short signature rejects one ticket rather than the whole payment).
    pub tickets: Vec<SignedTicket>,
}

impl ReceivedPayment {
    /// Parses a decoded `Livepeer-Payment` header.
    pub fn from_message(msg: &net::Payment) -> Result<Self, FieldError> {
        let wire_params = msg
            .ticket_params
            .as_ref()
            .ok_or(FieldError::missing("Payment.ticket_params"))?;
        let mut params = TicketParams::from_message(wire_params, msg.expected_price.as_ref())?;
        // The payment-level expiration params are what B signed over; they override the copy
        // nested in ticket_params when present.
        if msg.expiration_params.is_some() {
            params.expiration = TicketExpirationParams::from_message(
                msg.expiration_params.as_ref(),
                "Payment.expiration_params",
            )?;
        }
        let sender = fields::address("Payment.sender", &msg.sender)?;
        let tickets = msg
            .ticket_sender_params
            .iter()
            .map(|tsp| SignedTicket {
                ticket: params.ticket(sender, tsp.sender_nonce),
                sig: tsp.sig.clone(),
            })
            .collect();
        Ok(Self {
            params,
            sender,
            tickets,
        })
    }
}

/// Checks a signature's length before it is used as a fixed-size value.
pub fn signature_bytes(field: &'static str, sig: &[u8]) -> Result<[u8; SIGNATURE_LEN], FieldError> {
    sig.try_into().map_err(|_| {
        FieldError::new(
            field,
            FieldErrorKind::WrongLength {
                expected: SIGNATURE_LEN,
                actual: sig.len(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_ticket() -> Ticket {
        Ticket {
            recipient: Address::ZERO,
            sender: Address::ZERO,
            face_value: U256::ZERO,
            win_prob: U256::ZERO,
            sender_nonce: 0,
            recipient_rand_hash: B256::ZERO,
            expiration: TicketExpirationParams::default(),
            params_expiration_block: 0,
            price: PricePerPixel::default(),
        }
    }

    /// PROTOCOL.md §4 conformance vectors (auxData empty: 168-byte preimage).
    #[test]
    fn ticket_hash_vectors() {
        let cases = [
            (
                Ticket {
                    sender_nonce: u32::MAX,
                    ..zero_ticket()
                },
                "e1393fc7f6de093780674022f96cb8e3872235167d037c04d554e58c0e63d280",
            ),
            (
                Ticket {
                    sender_nonce: 1,
                    ..zero_ticket()
                },
                "ce0918ba94518293e9712effbe5fca4f1f431089833a5b8c257cb1e024595f68",
            ),
            (
                Ticket {
                    face_value: U256::from(1),
                    win_prob: U256::from(500),
                    ..zero_ticket()
                },
                "87ef13f2d37e4d5352a01d3c77b8179d80e0887f1953bfabfd0bfd7b0f689ddd",
            ),
            (
                Ticket {
                    face_value: U256::from(500),
                    win_prob: U256::from(1),
                    ..zero_ticket()
                },
                "aa4b35071043587992ac8b9dd1b2cf1d8311130e6458cf0b2342484e21af5f5b",
            ),
        ];
        for (ticket, expected) in cases {
            assert_eq!(ticket.preimage().len(), 168);
            assert_eq!(alloy::hex::encode(ticket.hash()), expected, "{ticket:?}");
        }
    }

    #[test]
    fn aux_data_layout() {
        let exp = TicketExpirationParams {
            creation_round: 0x0102,
            creation_round_block_hash: B256::repeat_byte(9),
        };
        let aux = exp.aux_data();
        assert_eq!(aux.len(), 64);
        assert_eq!(&aux[30..32], &[1, 2]);
        assert_eq!(&aux[32..], B256::repeat_byte(9).as_slice());
        let t = Ticket {
            expiration: exp,
            ..zero_ticket()
        };
        assert_eq!(t.preimage().len(), Ticket::PREIMAGE_LEN);
    }

    #[test]
    fn price_fraction_and_fee() {
        let p = PricePerPixel {
            price_per_unit: 1200,
            pixels_per_unit: 1000,
        };
        assert_eq!(p.reduced(), (6, 5));
        assert_eq!(p.fee(1001), U256::from(1202)); // 1201.2 rounded up
        assert_eq!(PricePerPixel::default().reduced(), (0, 1));
    }

    #[test]
    fn params_round_trip_and_field_errors() {
        let params = TicketParams {
            recipient: Address::repeat_byte(1),
            face_value: U256::from(10u64.pow(15)),
            win_prob: U256::MAX / U256::from(3),
            recipient_rand_hash: B256::repeat_byte(2),
            seed: U256::from(77),
            expiration_block: 1234,
            expiration: TicketExpirationParams {
                creation_round: 5,
                creation_round_block_hash: B256::repeat_byte(3),
            },
            price: PricePerPixel {
                price_per_unit: 3,
                pixels_per_unit: 7,
            },
        };
        let info = net::OrchestratorInfo {
            ticket_params: Some(params.to_message()),
            price_info: Some(params.price.to_message()),
            ..Default::default()
        };
        assert_eq!(TicketParams::from_orchestrator_info(&info).unwrap(), params);

        let mut bad = params.to_message();
        bad.recipient.pop();
        let err = TicketParams::from_message(&bad, None).unwrap_err();
        assert_eq!(err.field, "TicketParams.recipient");
        let mut bad = params.to_message();
        bad.win_prob = vec![0xff; 33];
        assert_eq!(
            TicketParams::from_message(&bad, None).unwrap_err().field,
            "TicketParams.win_prob"
        );
        let mut bad = params.to_message();
        bad.expiration_params.as_mut().unwrap().creation_round = -4;
        assert_eq!(
            TicketParams::from_message(&bad, None).unwrap_err().kind,
            FieldErrorKind::Negative(-4)
        );
        let bad_price = net::PriceInfo {
            price_per_unit: 1,
            pixels_per_unit: 0,
            ..Default::default()
        };
        assert_eq!(
            TicketParams::from_message(&params.to_message(), Some(&bad_price))
                .unwrap_err()
                .field,
            "PriceInfo"
        );
        let no_params = net::OrchestratorInfo::default();
        assert_eq!(
            TicketParams::from_orchestrator_info(&no_params)
                .unwrap_err()
                .field,
            "OrchestratorInfo.ticket_params"
        );
    }

    #[test]
    fn received_payment_checks_sender() {
        let payment = net::Payment {
            ticket_params: None,
            ..Default::default()
        };
        assert_eq!(
            ReceivedPayment::from_message(&payment).unwrap_err().field,
            "Payment.ticket_params"
        );
        let params = TicketParams {
            recipient: Address::repeat_byte(1),
            face_value: U256::from(1),
            win_prob: U256::from(1),
            recipient_rand_hash: B256::ZERO,
            seed: U256::ZERO,
            expiration_block: 0,
            expiration: TicketExpirationParams::default(),
            price: PricePerPixel::default(),
        };
        let mut msg = payment_message(&params, Address::repeat_byte(4), &[]);
        msg.sender = vec![4; 21];
        let err = ReceivedPayment::from_message(&msg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field Payment.sender: expected 20 bytes, got 21"
        );
        assert_eq!(signature_bytes("sig", &[0; 64]).unwrap_err().field, "sig");
    }
}
