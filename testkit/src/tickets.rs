//! Tickets made by hand for tests that play the orchestrator's part on a chain without a
//! `TicketRecipient`: params committed to a recipient rand the test chose, so it can reveal the
//! rand and redeem the winners itself.

use protocol::ticket::{
    ChainView, DEFAULT_EXPIRATION_WINDOW, MAX_WIN_PROB, PricePerPixel, TicketExpirationParams,
    TicketParams, TicketSender, WinningTicket, recipient_rand_hash,
};
use protocol::{Address, U256};

/// Params paying `face_value` to `recipient` with `win_prob`, committed to `recipient_rand`,
/// created in `view`'s round and expiring the default window (40 blocks) after its block.
pub fn params(
    view: &ChainView,
    recipient: Address,
    face_value: U256,
    win_prob: U256,
    recipient_rand: U256,
) -> TicketParams {
    TicketParams {
        recipient,
        face_value,
        win_prob,
        recipient_rand_hash: recipient_rand_hash(recipient_rand),
        seed: U256::ZERO,
        expiration_block: view.block + DEFAULT_EXPIRATION_WINDOW,
        expiration: TicketExpirationParams {
            creation_round: view.round,
            creation_round_block_hash: view.round_block_hash,
        },
        price: PricePerPixel::default(),
    }
}

/// One ticket of `sender`'s on [`params`] with winProb at the maximum, so it wins, with the
/// rand revealed for redemption.
pub fn winner(
    sender: &mut TicketSender,
    view: &ChainView,
    recipient: Address,
    face_value: U256,
    recipient_rand: U256,
) -> WinningTicket {
    let params = params(view, recipient, face_value, MAX_WIN_PROB, recipient_rand);
    let signed = sender
        .sign_tickets(&params, 1)
        .expect("the sender signs params within its limits")
        .remove(0);
    WinningTicket {
        ticket: signed.ticket,
        sig: signed.sig,
        recipient_rand,
    }
}
