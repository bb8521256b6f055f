//! Expected-value arithmetic for tickets, exact on 256-bit integers.
//!
//! A ticket wins with probability `winProb / (2²⁵⁶ − 1)`, so its expected value is
//! `faceValue × winProb / (2²⁵⁶ − 1)`. The product needs 512 bits; we compute it exactly and round
//! down to whole wei. Because [`win_prob_for_ev`] rounds the probability *up*
//! (`EV × ceil((2²⁵⁶ − 1) / faceValue)`), a ticket built for an EV never rounds below it.

use alloy::primitives::{U256, U512};

/// The largest win probability: a ticket that always wins.
pub const MAX_WIN_PROB: U256 = U256::MAX;

/// Bad inputs to the EV arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvError {
    /// A face value of zero cannot carry any EV.
    #[error("faceValue is zero")]
    ZeroFaceValue,
    /// EV above the face value would need a probability above 1.
    #[error("EV {ev} exceeds faceValue {face_value}")]
    EvAboveFaceValue {
        /// Requested EV.
        ev: U256,
        /// Ticket face value.
        face_value: U256,
    },
    /// A ticket of zero EV cannot pay anything.
    #[error("ticket EV is zero")]
    ZeroEv,
    /// Covering the fee would take more than 2⁶⁴ − 1 tickets.
    #[error("paying {fee} wei with tickets of EV {ev} wei takes more than 2^64 - 1 tickets")]
    TooManyTickets {
        /// Fee to cover.
        fee: U256,
        /// Ticket EV.
        ev: U256,
    },
}

/// The win probability giving a ticket of `face_value` the expected value `ev`:
/// `ev × ceil((2²⁵⁶ − 1) / face_value)`, saturating at [`MAX_WIN_PROB`] (reached when
/// `ev == face_value`).
pub fn win_prob_for_ev(ev: U256, face_value: U256) -> Result<U256, EvError> {
    if face_value.is_zero() {
        return Err(EvError::ZeroFaceValue);
    }
    if ev > face_value {
        return Err(EvError::EvAboveFaceValue { ev, face_value });
    }
    let step = MAX_WIN_PROB.div_ceil(face_value);
    Ok(ev.saturating_mul(step))
}

/// A ticket's expected value in wei, rounded down: `faceValue × winProb / (2²⁵⁶ − 1)`.
pub fn ticket_ev(face_value: U256, win_prob: U256) -> U256 {
    let product = U512::from(face_value) * U512::from(win_prob);
    let ev = product / U512::from(MAX_WIN_PROB);
    // faceValue × winProb / MAX ≤ faceValue, which fits in 256 bits.
    U256::from(ev)
}

/// Number of tickets of expected value `ev` whose total covers `fee` (at least one), exactly:
/// a count beyond `u64` is an error, never a saturated number.
pub fn tickets_for_fee(fee: U256, ev: U256) -> Result<u64, EvError> {
    if ev.is_zero() {
        return Err(EvError::ZeroEv);
    }
    let count = fee.div_ceil(ev).max(U256::from(1));
    u64::try_from(count).map_err(|_| EvError::TooManyTickets { fee, ev })
}

/// Probability of winning as a float, for reports and statistics.
pub fn win_probability(win_prob: U256) -> f64 {
    f64::from(win_prob) / f64::from(MAX_WIN_PROB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_win_prob_when_ev_equals_face_value() {
        let fv = U256::from(1_000_000u64);
        assert_eq!(win_prob_for_ev(fv, fv).unwrap(), MAX_WIN_PROB);
        assert_eq!(ticket_ev(fv, MAX_WIN_PROB), fv);
        assert_eq!(ticket_ev(U256::MAX, U256::MAX), U256::MAX);
    }

    #[test]
    fn ev_never_rounds_below_requested() {
        for (ev, fv) in [
            (8_000_000_000u64, 1_000_000_000_000_000u64),
            (1, 3),
            (7, 7),
            (1, 100),
            (3, 1 << 60),
        ] {
            let (ev, fv) = (U256::from(ev), U256::from(fv));
            let wp = win_prob_for_ev(ev, fv).unwrap();
            let got = ticket_ev(fv, wp);
            assert!(
                got >= ev && got <= ev + U256::from(1),
                "ev {ev} fv {fv} got {got}"
            );
        }
        assert_eq!(
            win_prob_for_ev(U256::ZERO, U256::from(5)).unwrap(),
            U256::ZERO
        );
    }

    #[test]
    fn rejects_impossible_inputs() {
        assert_eq!(
            win_prob_for_ev(U256::from(1), U256::ZERO),
            Err(EvError::ZeroFaceValue)
        );
        assert!(matches!(
            win_prob_for_ev(U256::from(6), U256::from(5)),
            Err(EvError::EvAboveFaceValue { .. })
        ));
        assert_eq!(
            tickets_for_fee(U256::from(10), U256::ZERO),
            Err(EvError::ZeroEv)
        );
        assert_eq!(tickets_for_fee(U256::from(10), U256::from(3)).unwrap(), 4);
        assert_eq!(tickets_for_fee(U256::ZERO, U256::from(3)).unwrap(), 1);
        assert_eq!(
            tickets_for_fee(U256::MAX, U256::from(1)),
            Err(EvError::TooManyTickets {
                fee: U256::MAX,
                ev: U256::from(1)
            })
        );
        assert_eq!(
            tickets_for_fee(U256::from(u64::MAX), U256::from(1)).unwrap(),
            u64::MAX
        );
        assert!((win_probability(MAX_WIN_PROB / U256::from(100)) - 0.01).abs() < 1e-12);
    }
}
