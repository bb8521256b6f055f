//! Payouts: the value the orchestrator redeemed over the window, shared among its transcoders by
//! the pixels each earned there.
//!
//! The orchestrator keeps its commission first; the rest is split by earned pixels (counted, not
//! claimed, and nothing for a refused answer), after a penalty of `penalty_factor` × the claimed
//! pixels of each answer its check refused. Each payout is one transaction whose cost is taken
//! from it; a share that does not cover that cost is carried to the next window instead of being
//! paid at a loss. Shares are rounded down to whole wei and the remainder stays with the
//! orchestrator, so what is paid, spent on transactions, carried, kept as commission and left as
//! remainder adds up to the redeemed value exactly.

use alloy::primitives::U256;
use serde::Serialize;

use super::ledger::{CheckVerdict, LedgerEntry, wei};

/// The pool operator's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PayoutTerms {
    /// The orchestrator's commission, a fraction of the redeemed value (0..=1).
    pub commission: f64,
    /// What one payout transaction costs, wei.
    pub tx_cost_wei: u128,
    /// Pixels forfeited per refused answer, as a multiple of what it claimed.
    pub penalty_factor: f64,
}

/// One transcoder's payout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payout {
    pub transcoder: String,
    /// Counted pixels of its accepted answers in the window.
    pub earned_pixels: u64,
    /// Forfeited for refused answers.
    pub penalty_pixels: u64,
    /// Earned − penalty (not below 0): what its share is computed from.
    pub paid_pixels: u64,
    /// Its fraction of all paid pixels.
    pub share: f64,
    /// Its share of the distributable value before the transaction cost, wei.
    #[serde(with = "wei")]
    pub gross_wei: u128,
    /// The transaction cost taken from it (0 when carried), wei.
    #[serde(with = "wei")]
    pub tx_cost_wei: u128,
    /// What it is paid now, wei.
    #[serde(with = "wei")]
    pub amount_wei: u128,
    /// Whether its gross is carried to the next window (it does not cover the transaction).
    pub carried: bool,
}

/// The payouts of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PayoutPlan {
    #[serde(with = "wei")]
    pub redeemed_wei: u128,
    #[serde(with = "wei")]
    pub commission_wei: u128,
    /// Redeemed − commission.
    #[serde(with = "wei")]
    pub distributable_wei: u128,
    pub payouts: Vec<Payout>,
    /// Paid out now.
    #[serde(with = "wei")]
    pub paid_wei: u128,
    /// Spent on payout transactions.
    #[serde(with = "wei")]
    pub tx_costs_wei: u128,
    /// Owed, carried to the next window.
    #[serde(with = "wei")]
    pub carried_wei: u128,
    /// Left by rounding shares down (stays with the orchestrator).
    #[serde(with = "wei")]
    pub remainder_wei: u128,
}

/// Shares `redeemed_wei` among the transcoders of `entries` on `terms`.
pub fn plan(entries: &[LedgerEntry], redeemed_wei: u128, terms: &PayoutTerms) -> PayoutPlan {
    let mut pixels: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for entry in entries {
        let (earned, penalty) = pixels.entry(&entry.transcoder).or_default();
        match &entry.verdict {
            CheckVerdict::Failed(_) => {
                *penalty += (entry.claimed_pixels() as f64 * terms.penalty_factor).round() as u64;
            }
            _ => *earned += entry.earned_pixels(),
        }
    }
    let commission_ppm = (terms.commission.clamp(0.0, 1.0) * 1e6).round() as u64;
    let commission_wei = mul_div(redeemed_wei, u128::from(commission_ppm), 1_000_000);
    let distributable_wei = redeemed_wei - commission_wei;
    let total_paid: u128 = pixels
        .values()
        .map(|(earned, penalty)| u128::from(earned.saturating_sub(*penalty)))
        .sum();
    let mut plan = PayoutPlan {
        redeemed_wei,
        commission_wei,
        distributable_wei,
        payouts: Vec::with_capacity(pixels.len()),
        paid_wei: 0,
        tx_costs_wei: 0,
        carried_wei: 0,
        remainder_wei: 0,
    };
    for (transcoder, (earned, penalty)) in pixels {
        let paid_pixels = earned.saturating_sub(penalty);
        let gross_wei = if total_paid == 0 {
            0
        } else {
            mul_div(distributable_wei, u128::from(paid_pixels), total_paid)
        };
        let carried = gross_wei > 0 && gross_wei <= terms.tx_cost_wei;
        let (tx_cost_wei, amount_wei) = if gross_wei == 0 || carried {
            (0, 0)
        } else {
            (terms.tx_cost_wei, gross_wei - terms.tx_cost_wei)
        };
        plan.paid_wei += amount_wei;
        plan.tx_costs_wei += tx_cost_wei;
        if carried {
            plan.carried_wei += gross_wei;
        }
        plan.payouts.push(Payout {
            transcoder: transcoder.to_string(),
            earned_pixels: earned,
            penalty_pixels: penalty,
            paid_pixels,
            share: if total_paid == 0 {
                0.0
            } else {
                paid_pixels as f64 / total_paid as f64
            },
            gross_wei,
            tx_cost_wei,
            amount_wei,
            carried,
        });
    }
    let allocated: u128 = plan.payouts.iter().map(|p| p.gross_wei).sum();
    plan.remainder_wei = distributable_wei - allocated;
    plan
}

/// ⌊a × b ÷ c⌋ without overflow (c > 0).
fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    let wide = U256::from(a) * U256::from(b) / U256::from(c);
    u128::try_from(wide).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ledger::tests::entry;

    const TERMS: PayoutTerms = PayoutTerms {
        commission: 0.1,
        tx_cost_wei: 1_000,
        penalty_factor: 1.0,
    };

    fn adds_up(plan: &PayoutPlan) {
        assert_eq!(
            plan.paid_wei
                + plan.tx_costs_wei
                + plan.carried_wei
                + plan.commission_wei
                + plan.remainder_wei,
            plan.redeemed_wei,
            "{plan:?}"
        );
    }

    #[test]
    fn shares_follow_counted_pixels_after_commission_and_costs() {
        let entries = [
            entry("a", 1, 300, 300),
            entry("a", 2, 300, 300),
            // Claims three times what it made: paid for what was counted.
            entry("b", 3, 900, 300),
            entry("c", 4, 600, 600),
        ];
        let plan = plan(&entries, 1_000_000, &TERMS);
        adds_up(&plan);
        assert_eq!(plan.commission_wei, 100_000);
        let by: Vec<(&str, u64, u128)> = plan
            .payouts
            .iter()
            .map(|p| (p.transcoder.as_str(), p.paid_pixels, p.amount_wei))
            .collect();
        assert_eq!(
            by,
            [
                ("a", 600, 900_000 * 600 / 1500 - 1_000),
                ("b", 300, 900_000 * 300 / 1500 - 1_000),
                ("c", 600, 900_000 * 600 / 1500 - 1_000),
            ]
        );
        assert_eq!(plan.paid_wei, 900_000 - 3_000);
        assert_eq!(plan.remainder_wei, 0);
    }

    #[test]
    fn a_refused_answer_earns_nothing_and_costs_its_claim() {
        let mut refused = entry("b", 3, 300, 300);
        refused.verdict = CheckVerdict::Failed("another stream".into());
        let entries = [
            entry("a", 1, 300, 300),
            entry("b", 2, 300, 300),
            entry("b", 4, 300, 300),
            refused,
        ];
        let plan = plan(&entries, 900_000, &TERMS);
        adds_up(&plan);
        let b = &plan.payouts[1];
        assert_eq!(
            (b.earned_pixels, b.penalty_pixels, b.paid_pixels),
            (600, 300, 300)
        );
        assert!((b.share - 0.5).abs() < 1e-12, "{b:?}");
    }

    #[test]
    fn a_share_below_the_transaction_cost_is_carried_and_rounding_stays_with_the_orchestrator() {
        let entries = [
            entry("a", 1, 1_000_000, 1_000_000),
            entry("tiny", 2, 1_000, 1_000),
        ];
        let plan = plan(&entries, 1_000_003, &TERMS);
        adds_up(&plan);
        let tiny = &plan.payouts[1];
        assert!(tiny.carried, "{tiny:?}");
        assert_eq!(tiny.gross_wei, 900_002 * 1_000 / 1_001_000);
        assert_eq!((tiny.amount_wei, tiny.tx_cost_wei), (0, 0));
        assert_eq!(plan.carried_wei, tiny.gross_wei);
        assert!(plan.remainder_wei > 0, "{plan:?}");
    }

    #[test]
    fn nothing_redeemed_pays_nothing() {
        let plan = plan(&[entry("a", 1, 10, 10)], 0, &TERMS);
        adds_up(&plan);
        assert_eq!(plan.payouts[0].amount_wei, 0);
        assert!(!plan.payouts[0].carried);
    }
}
