//! `payment_header`: a `Livepeer-Payment` header value through
//! `protocol::headers::decode_payment` and the orchestrator's ticket book
//! (`TicketRecipient::receive_payment`: field parsing, recipient, expiry, recipientRand
//! commitment, signature recovery, nonces, crediting and winner selection), as the orchestrator
//! runs it for a priced session. The recipient is a fixed address with a seeded secret, so a
//! corpus of payments made for its params (see README.md) gets past the commitment check.
//!
//! Input: as for `segment_header` (low bit of the first byte: the rest is a protobuf `Payment`
//! to base64-encode; otherwise the header text).

use protocol::headers;
use protocol::net::Payment;
use protocol::ticket::{RecipientConfig, TicketRecipient};
use protocol::{Address, fields};

use super::segment_header::header_value;

/// The orchestrator whose tickets the corpus carries.
pub fn recipient_address() -> Address {
    Address::repeat_byte(0x0a)
}

/// The seed of its secret.
pub const RECIPIENT_SEED: u64 = 7;

/// The block the payments are received at (the corpus' params expire after it).
pub const CURRENT_BLOCK: u64 = 100;

/// A fresh ticket book of that orchestrator.
pub fn recipient() -> TicketRecipient {
    TicketRecipient::with_seed(
        recipient_address(),
        RecipientConfig::default(),
        RECIPIENT_SEED,
    )
}

/// Feeds one input; returns the decoded payment.
pub fn run(data: &[u8]) -> Option<Payment> {
    let value = header_value(data);
    let payment = headers::decode_payment(&value).ok()?;
    let again = headers::decode_payment(&headers::encode_payment(&payment)).expect("re-decode");
    assert_eq!(again, payment, "encode_payment/decode_payment round trip");
    if !payment.sender.is_empty() {
        let _ = fields::address("Payment.sender", &payment.sender);
    }
    let mut book = recipient();
    if let Ok(receipt) = book.receive_payment(&payment, CURRENT_BLOCK) {
        assert_eq!(
            receipt.accepted as usize + receipt.rejected.len(),
            payment.ticket_sender_params.len(),
            "every ticket is accepted or rejected"
        );
        assert_eq!(book.balance(&receipt.sender), receipt.credited);
        let winners = book.take_redeemable(u64::MAX);
        assert_eq!(winners.len(), receipt.winners as usize);
        // The same payment again: every ticket it got accepted is now a reused nonce.
        if let Ok(replay) = book.receive_payment(&payment, CURRENT_BLOCK) {
            assert_eq!(replay.accepted, 0, "a replayed payment is credited again");
        }
        book.prune_nonces(CURRENT_BLOCK);
    }
    Some(payment)
}
