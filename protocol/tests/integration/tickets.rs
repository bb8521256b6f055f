//! Tickets off chain: the sender's nonces and acceptance rules, the recipient's validation rules
//! (one test per rejection), crediting, winner detection and the win statistics.

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use protocol::sig::{self, SigError};
use protocol::ticket::{
    ChainView, MAX_WIN_PROB, ParamsRejection, PaymentError, PricePerPixel, RecipientConfig,
    SenderError, SenderLimits, SignedTicket, TicketParams, TicketRecipient, TicketRejection,
    TicketSender, payment_message, ticket_ev,
};

pub fn key(byte: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
}

const PRICE: PricePerPixel = PricePerPixel {
    price_per_unit: 1200,
    pixels_per_unit: 1,
};

fn chain_at(block: u64) -> ChainView {
    ChainView {
        block,
        round: 7,
        round_block_hash: B256::repeat_byte(0x77),
        gas_price: U256::from(100_000_000u64),
    }
}

/// A recipient with go-livepeer's defaults: face value = 0.1 gwei × 1.2M gas × 100 = 1.2e16 wei.
fn recipient(seed: u64) -> TicketRecipient {
    recipient_with(RecipientConfig::default(), seed)
}

fn recipient_with(config: RecipientConfig, seed: u64) -> TicketRecipient {
    TicketRecipient::with_seed(key(0xa0).address(), config, seed)
}

fn sender() -> TicketSender {
    TicketSender::new(key(0xb0), SenderLimits::default())
}

fn deposit() -> U256 {
    U256::from(10u64).pow(U256::from(18))
}

#[test]
fn issued_params_follow_the_config_and_are_deterministic_with_a_seed() {
    let mut r = recipient(1);
    let s = sender();
    let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
    assert_eq!(params.recipient, r.address());
    assert_eq!(params.face_value, U256::from(12_000_000_000_000_000u64));
    assert_eq!(params.ev(), U256::from(8_000_000_000u64));
    assert_eq!(params.expiration_block, 140);
    assert_eq!(params.expiration.creation_round, 7);
    assert_eq!(
        recipient(1)
            .issue_params(s.address(), PRICE, &chain_at(100))
            .unwrap(),
        params
    );
    let other = recipient(2)
        .issue_params(s.address(), PRICE, &chain_at(100))
        .unwrap();
    assert_ne!(other.recipient_rand_hash, params.recipient_rand_hash);
    // Consecutive params of one recipient use fresh seeds.
    assert_ne!(
        r.issue_params(s.address(), PRICE, &chain_at(100))
            .unwrap()
            .seed,
        params.seed
    );
}

#[test]
fn sender_nonces_start_at_one_per_recipient_rand_hash() {
    let mut r = recipient(3);
    let mut s = sender();
    let a = r.issue_params(s.address(), PRICE, &chain_at(10)).unwrap();
    let b = r.issue_params(s.address(), PRICE, &chain_at(10)).unwrap();
    let first = s.sign_tickets(&a, 3).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|t| t.ticket.sender_nonce)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(s.sign_tickets(&b, 1).unwrap()[0].ticket.sender_nonce, 1);
    assert_eq!(s.sign_tickets(&a, 2).unwrap()[0].ticket.sender_nonce, 4);
    assert_eq!(s.last_nonce(&a.recipient_rand_hash), 5);
    for t in &first {
        assert_eq!(
            sig::recover_prehash(
                &alloy::primitives::eip191_hash_message(t.ticket.hash()),
                &t.sig
            )
            .unwrap(),
            s.address()
        );
    }
}

#[test]
fn pay_covers_the_fee_with_enough_tickets() {
    let mut r = recipient(4);
    let mut s = sender();
    let params = r.issue_params(s.address(), PRICE, &chain_at(10)).unwrap();
    // 20M output pixels at 1200 wei/pixel = 2.4e10 wei: three tickets of EV 8e9.
    let fee = PRICE.fee(20_000_000);
    assert_eq!(fee, U256::from(24_000_000_000u64));
    let tickets = s.pay(&params, fee, 10, deposit()).unwrap();
    assert_eq!(tickets.len(), 3);
    let total: U256 = tickets.iter().map(|t| t.ticket.ev()).sum();
    assert!(
        total >= fee && total - fee < params.ev(),
        "total {total} fee {fee}"
    );
    let payment = s.payment(&params, fee, 10, deposit()).unwrap();
    assert_eq!(
        payment
            .ticket_sender_params
            .iter()
            .map(|t| t.sender_nonce)
            .collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    let receipt = r.receive_payment(&payment, 11).unwrap();
    assert_eq!((receipt.accepted, receipt.rejected.len()), (3, 0));
    assert_eq!(receipt.credited, params.ev() * U256::from(3));
    assert_eq!(r.balance(&s.address()), params.ev() * U256::from(3));
    r.debit(s.address(), fee).unwrap();
    assert!(r.debit(s.address(), params.ev() * U256::from(3)).is_err());
}

fn params_with(face_value: u64, ev: u64, expiration_block: u64) -> TicketParams {
    TicketParams {
        recipient: Address::repeat_byte(1),
        face_value: U256::from(face_value),
        win_prob: protocol::ticket::win_prob_for_ev(U256::from(ev), U256::from(face_value))
            .unwrap(),
        recipient_rand_hash: B256::repeat_byte(2),
        seed: U256::from(3),
        expiration_block,
        expiration: Default::default(),
        price: PRICE,
    }
}

#[test]
fn sender_refuses_each_broken_rule_by_name() {
    let mut s = sender();
    let ok = params_with(1_000_000_000_000_000, 1_000_000_000, 100);
    s.check_params(&ok, 1, 50, deposit()).unwrap();

    let err = s.check_params(&ok, 1, 99, deposit()).unwrap_err();
    assert_eq!(
        err,
        ParamsRejection::ExpiresTooSoon {
            expiration_block: 100,
            current_block: 99
        }
    );
    assert!(err.to_string().starts_with("rule expiry"), "{err}");

    let max = params_with(1_000_000, 1_000_000, 100);
    assert_eq!(max.win_prob, MAX_WIN_PROB);
    let err = s.check_params(&max, 1, 50, deposit()).unwrap_err();
    assert!(matches!(err, ParamsRejection::EvNotBelowFaceValue { .. }));
    assert!(err.to_string().starts_with("rule EV < faceValue"), "{err}");

    let rich = params_with(1_000_000_000_000_000, 4_000_000_000_000, 100);
    let err = s.check_params(&rich, 1, 50, deposit()).unwrap_err();
    assert!(matches!(err, ParamsRejection::TicketEvAboveMax { .. }));
    assert!(
        err.to_string().starts_with("rule EV <= maxTicketEV"),
        "{err}"
    );

    let err = s.check_params(&ok, 20_001, 50, deposit()).unwrap_err();
    assert!(matches!(
        err,
        ParamsRejection::TotalEvAboveMax {
            tickets: 20_001,
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("rule EV x tickets <= maxTotalEV"),
        "{err}"
    );

    let err = s.check_params(&ok, 1, 50, U256::from(10)).unwrap_err();
    assert!(matches!(err, ParamsRejection::FaceValueAboveDeposit { .. }));
    assert!(
        err.to_string().starts_with("rule faceValue <= deposit"),
        "{err}"
    );

    // pay() applies the rules and consumes no nonce when it refuses.
    let err = s
        .pay(&ok, U256::from(10u64).pow(U256::from(15)), 50, deposit())
        .unwrap_err();
    assert!(matches!(
        err,
        SenderError::Rejected(ParamsRejection::TotalEvAboveMax { .. })
    ));
    assert_eq!(s.last_nonce(&ok.recipient_rand_hash), 0);
}

/// Issues params at block 100 and signs `count` tickets on them: everything needed to feed the
/// recipient.
fn signed(
    r: &mut TicketRecipient,
    s: &mut TicketSender,
    count: u64,
) -> (TicketParams, Vec<SignedTicket>) {
    let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
    let tickets = s.sign_tickets(&params, count).unwrap();
    (params, tickets)
}

/// [`signed`] with one ticket.
fn one_ticket(r: &mut TicketRecipient, s: &mut TicketSender) -> (TicketParams, SignedTicket) {
    let (params, mut tickets) = signed(r, s, 1);
    (params, tickets.remove(0))
}

#[test]
fn recipient_accepts_a_valid_ticket_and_credits_ev() {
    let (mut r, mut s) = (recipient(10), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    let outcome = r
        .receive_ticket(&t.ticket, &t.sig, params.seed, 101)
        .unwrap();
    assert_eq!(outcome.ev, params.ev());
    assert_eq!(r.balance(&s.address()), params.ev());
}

#[test]
fn rejects_wrong_recipient() {
    let (mut r, mut s) = (recipient(11), sender());
    let (params, mut t) = one_ticket(&mut r, &mut s);
    t.ticket.recipient = Address::repeat_byte(9);
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 101),
        Err(TicketRejection::WrongRecipient {
            expected: r.address(),
            got: Address::repeat_byte(9)
        })
    );
}

#[test]
fn rejects_zero_sender() {
    let (mut r, mut s) = (recipient(12), sender());
    let (params, mut t) = one_ticket(&mut r, &mut s);
    t.ticket.sender = Address::ZERO;
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 101),
        Err(TicketRejection::ZeroSender)
    );
}

#[test]
fn rejects_expired_params() {
    let (mut r, mut s) = (recipient(13), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 140),
        Err(TicketRejection::ParamsExpired {
            expiration_block: 140,
            current_block: 140
        })
    );
    r.receive_ticket(&t.ticket, &t.sig, params.seed, 139)
        .unwrap();
}

#[test]
fn rejects_tampered_params_as_recipient_rand_mismatch() {
    let (mut r, mut s) = (recipient(14), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    let mut richer = t.ticket.clone();
    richer.face_value += U256::from(1);
    assert_eq!(
        r.receive_ticket(&richer, &t.sig, params.seed, 101),
        Err(TicketRejection::RecipientRandMismatch(
            params.recipient_rand_hash
        ))
    );
    let mut cheaper = t.ticket.clone();
    cheaper.price = PricePerPixel {
        price_per_unit: 1,
        pixels_per_unit: 1,
    };
    assert!(matches!(
        r.receive_ticket(&cheaper, &t.sig, params.seed, 101),
        Err(TicketRejection::RecipientRandMismatch(_))
    ));
    assert!(matches!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed + U256::from(1), 101),
        Err(TicketRejection::RecipientRandMismatch(_))
    ));
}

#[test]
fn rejects_signature_by_another_key() {
    let (mut r, mut s) = (recipient(15), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    let forged = sig::personal_sign(&key(0xc0), t.ticket.hash().as_slice()).unwrap();
    assert_eq!(
        r.receive_ticket(&t.ticket, &forged, params.seed, 101),
        Err(TicketRejection::BadSignature(SigError::WrongSigner {
            expected: s.address(),
            recovered: key(0xc0).address()
        }))
    );
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig[..64], params.seed, 101),
        Err(TicketRejection::BadSignature(SigError::WrongLength(64)))
    );
}

/// The malleable twin of a valid signature: s' = n − s, v flipped.
pub fn high_s_twin(sig65: &[u8]) -> Vec<u8> {
    let parsed = sig::parse_strict(sig65).unwrap();
    let n = sig::SECP256K1_HALF_ORDER * U256::from(2) + U256::from(1);
    alloy::primitives::Signature::new(parsed.r(), n - parsed.s(), !parsed.v())
        .as_bytes()
        .to_vec()
}

#[test]
fn rejects_high_s_signature() {
    let (mut r, mut s) = (recipient(16), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    let twin = high_s_twin(&t.sig);
    assert_eq!(
        r.receive_ticket(&t.ticket, &twin, params.seed, 101),
        Err(TicketRejection::BadSignature(SigError::HighS))
    );
}

#[test]
fn rejects_reused_nonce() {
    let (mut r, mut s) = (recipient(17), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    r.receive_ticket(&t.ticket, &t.sig, params.seed, 101)
        .unwrap();
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 101),
        Err(TicketRejection::NonceReused {
            nonce: 1,
            recipient_rand_hash: params.recipient_rand_hash
        })
    );
    assert_eq!(
        r.balance(&s.address()),
        params.ev(),
        "a replay earns nothing"
    );
}

#[test]
fn rejects_more_than_max_nonces_per_recipient_rand() {
    let config = RecipientConfig {
        max_nonces: 3,
        ..RecipientConfig::default()
    };
    let mut r = TicketRecipient::with_seed(key(0xa0).address(), config, 18);
    let mut s = sender();
    let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
    let tickets = s.sign_tickets(&params, 4).unwrap();
    for t in &tickets[..3] {
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 101)
            .unwrap();
    }
    assert_eq!(
        r.receive_ticket(&tickets[3].ticket, &tickets[3].sig, params.seed, 101),
        Err(TicketRejection::TooManyNonces {
            limit: 3,
            recipient_rand_hash: params.recipient_rand_hash
        })
    );
    assert_eq!(protocol::ticket::DEFAULT_MAX_NONCES, 600);
}

#[test]
fn rejects_unlocking_sender() {
    let (mut r, mut s) = (recipient(19), sender());
    let (params, t) = one_ticket(&mut r, &mut s);
    r.set_sender_unlocking(s.address(), true);
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, 101),
        Err(TicketRejection::SenderUnlocking(s.address()))
    );
}

#[test]
fn payment_receipt_lists_bad_tickets_and_counts_good_ones() {
    let (mut r, mut s) = (recipient(20), sender());
    let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
    let mut tickets = s.sign_tickets(&params, 3).unwrap();
    tickets[1].sig[10] ^= 1;
    let receipt = r
        .receive_payment(&payment_message(&params, s.address(), &tickets), 101)
        .unwrap();
    assert_eq!(receipt.accepted, 2);
    assert_eq!(receipt.rejected.len(), 1);
    assert_eq!(receipt.rejected[0].0, 2);
    assert!(matches!(
        receipt.rejected[0].1,
        TicketRejection::BadSignature(_)
    ));
}

#[test]
fn winners_at_max_win_prob_are_queued_until_params_expire() {
    let config = RecipientConfig {
        ticket_ev: U256::from(1_000_000u64),
        face_value: Some(U256::from(1_000_000u64)),
        ..RecipientConfig::default()
    };
    let mut r = TicketRecipient::with_seed(key(0xa0).address(), config, 21);
    let mut s = sender();
    let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
    assert_eq!(params.win_prob, MAX_WIN_PROB);
    for t in s.sign_tickets(&params, 2).unwrap() {
        assert!(
            r.receive_ticket(&t.ticket, &t.sig, params.seed, 101)
                .unwrap()
                .winning
        );
    }
    assert_eq!(r.pending_winners().count(), 2);
    assert!(
        r.take_redeemable(140).is_empty(),
        "params still valid at their expiration block"
    );
    let ready = r.take_redeemable(141);
    assert_eq!(ready.len(), 2);
    assert_eq!(
        protocol::ticket::recipient_rand_hash(ready[0].recipient_rand),
        params.recipient_rand_hash
    );
    assert_eq!(r.pending_winners().count(), 0);
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space.
fn binomial_cdf(n: u64, p: f64, k: u64) -> f64 {
    let ln_choose = |k: u64| -> f64 {
        (1..=k)
            .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
            .sum()
    };
    (0..=k)
        .map(|i| (ln_choose(i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum()
}

#[test]
fn win_rate_at_one_percent_is_binomial() {
    const N: u64 = 10_000;
    let face_value = U256::from(100_000_000u64);
    let config = RecipientConfig {
        ticket_ev: face_value / U256::from(100),
        face_value: Some(face_value),
        ..RecipientConfig::default()
    };
    let mut r = TicketRecipient::with_seed(key(0xa0).address(), config, 2024);
    let mut s = sender();
    let mut winners = 0u64;
    let mut p = 0.0;
    // 500 tickets per params: O accepts at most 600 nonces per recipientRand.
    for _ in 0..N / 500 {
        let params = r.issue_params(s.address(), PRICE, &chain_at(100)).unwrap();
        p = protocol::ticket::win_probability(params.win_prob);
        for t in s.sign_tickets(&params, 500).unwrap() {
            winners += u64::from(
                r.receive_ticket(&t.ticket, &t.sig, params.seed, 101)
                    .unwrap()
                    .winning,
            );
        }
    }
    assert!((p - 0.01).abs() < 1e-9, "p = {p}");
    // Two-sided 99.9 % interval: the 0.05 % and 99.95 % quantiles.
    let lo = (0..N).find(|k| binomial_cdf(N, p, *k) >= 0.0005).unwrap();
    let hi = (0..N).find(|k| binomial_cdf(N, p, *k) >= 0.9995).unwrap();
    assert!(
        (60..=75).contains(&lo) && (125..=140).contains(&hi),
        "interval [{lo}, {hi}]"
    );
    eprintln!("{winners} winners of {N} tickets at p = {p}; binomial 99.9 % interval [{lo}, {hi}]");
    assert!(
        (lo..=hi).contains(&winners),
        "{winners} winners outside the 99.9 % interval [{lo}, {hi}]"
    );
    assert_eq!(r.pending_winners().count() as u64, winners);
    assert_eq!(
        r.balance(&s.address()),
        ticket_ev(
            face_value,
            r.pending_winners().next().unwrap().ticket.win_prob
        ) * U256::from(N)
    );
}

/// The node reads its block, the chain loop then prunes at a newer block that expires the
/// params, and the payment is processed with the block read before: the nonce the first
/// acceptance recorded is gone, so the same ticket must be judged at the pruning block.
#[test]
fn a_ticket_expiring_in_the_prune_window_is_not_accepted_twice() {
    let (mut r, mut s) = (recipient(1), sender());
    let (params, tickets) = signed(&mut r, &mut s, 1);
    let t = &tickets[0];
    let stale_block = params.expiration_block - 1;
    let first = r.receive_ticket(&t.ticket, &t.sig, params.seed, stale_block);
    assert!(first.is_ok(), "{first:?}");
    r.prune_nonces(params.expiration_block);
    assert_eq!(
        r.receive_ticket(&t.ticket, &t.sig, params.seed, stale_block),
        Err(TicketRejection::ParamsExpired {
            expiration_block: params.expiration_block,
            current_block: params.expiration_block,
        })
    );
    let payment = payment_message(&params, s.address(), &tickets);
    let receipt = r.receive_payment(&payment, stale_block).unwrap();
    assert_eq!(receipt.accepted, 0, "{receipt:?}");
    assert_eq!(r.balance(&s.address()), params.ev());
}

#[test]
fn an_oversized_payment_is_refused_before_it_is_decoded() {
    let config = RecipientConfig {
        max_tickets_per_payment: 3,
        ..RecipientConfig::default()
    };
    let (mut r, mut s) = (recipient_with(config, 1), sender());
    let (params, tickets) = signed(&mut r, &mut s, 4);
    let mut payment = payment_message(&params, s.address(), &tickets);
    // A malformed sender would fail decoding: the count is checked first.
    payment.sender = vec![1, 2, 3];
    let err = r.receive_payment(&payment, 101).unwrap_err();
    assert_eq!(err, PaymentError::TooManyTickets { count: 4, limit: 3 });
    assert_eq!(
        err.to_string(),
        "payment carries 4 tickets, more than the 3 a payment may carry"
    );
    assert_eq!(r.balance(&s.address()), U256::ZERO);
    let payment = payment_message(&params, s.address(), &tickets[..3]);
    assert_eq!(r.receive_payment(&payment, 101).unwrap().accepted, 3);
}

#[test]
fn the_face_value_is_capped_by_the_max_float_and_never_below_the_ev() {
    let config = RecipientConfig {
        ticket_ev: U256::from(1_000u64),
        face_value: Some(U256::from(1_000_000u64)),
        ..RecipientConfig::default()
    };
    let (mut r, s) = (recipient_with(config, 1), sender());
    let sender = s.address();
    let full = r.issue_params(sender, PRICE, &chain_at(100)).unwrap();
    assert_eq!(full.face_value, U256::from(1_000_000u64));
    let capped = r
        .issue_params_within(sender, PRICE, &chain_at(100), U256::from(5_000u64))
        .unwrap();
    assert_eq!(capped.face_value, U256::from(5_000u64));
    assert_eq!(capped.ev(), U256::from(1_000u64));
    let err = r
        .issue_params_within(sender, PRICE, &chain_at(100), U256::from(999u64))
        .unwrap_err();
    assert_eq!(err.to_string(), "insufficient sender reserve");
}
