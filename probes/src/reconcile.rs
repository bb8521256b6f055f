//! Payment reconciliation: does what was redeemed on chain match the work that was delivered?
//!
//! Probabilistic micropayments make the redeemed total random: each ticket wins with probability
//! `p`, so with fees `F` owed to an orchestrator and tickets of face value `v`, the number of
//! winners is (very nearly) Poisson with mean `F / v`, whatever the number of tickets sent. This
//! module turns that into a verdict per orchestrator: the expected value, the redeemed value, the
//! relative error, and the exact two-sided Poisson acceptance interval for the winner count at a
//! chosen confidence. A redeemed total above the interval means overcharging; below it, missing
//! redemptions; a recipient nobody paid for is flagged on its own. Everything here is pure
//! arithmetic on what the chain and the probes observed, so it is tested on its own.

use serde::{Deserialize, Serialize};

/// What is known of one orchestrator after a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The orchestrator's address (lower-case hex), as the chain names the recipient.
    pub recipient: String,
    /// Output pixels delivered and verified by the probes (Σ width × height × frames).
    pub pixels: u128,
    /// Advertised price: `price_per_unit` wei per `pixels_per_unit` pixels.
    pub price_per_unit: u128,
    pub pixels_per_unit: u128,
}

/// One `WinningTicketRedeemed` event, reduced to what reconciliation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Redemption {
    pub recipient: String,
    pub face_value_wei: f64,
}

/// The verdict for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub recipient: String,
    /// Fees owed for the pixels delivered, in wei.
    pub expected_wei: f64,
    /// Σ face value of the winning tickets redeemed, in wei.
    pub redeemed_wei: f64,
    pub winners: u64,
    /// Expected winner count (`expected_wei / face value`), when a face value is known.
    pub expected_winners: Option<f64>,
    /// The acceptance interval for the winner count at the chosen confidence.
    pub interval: Option<(u64, u64)>,
    /// `(redeemed − expected) / expected`; `None` when nothing was owed.
    pub ev_error: Option<f64>,
    pub verdict: PaymentVerdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentVerdict {
    /// Redeemed value is inside the interval chance allows.
    Consistent,
    /// More redeemed than chance allows for the work delivered.
    Overcharged,
    /// Less redeemed than chance allows (winning tickets not redeemed).
    MissingRedemptions,
    /// Redemptions to an address that delivered no work in this run.
    UnknownRecipient,
    /// Nothing owed and nothing redeemed.
    NothingOwed,
}

/// Reconciles every recipient that delivered work or was paid. `face_value_wei` is the tickets'
/// face value when known from the orchestrators' ticket parameters; otherwise the face value seen
/// in the redemptions is used.
pub fn reconcile(
    delivered: &[Delivered],
    redemptions: &[Redemption],
    face_value_wei: Option<f64>,
    confidence: f64,
) -> Vec<Reconciliation> {
    let mut results = Vec::new();
    for d in delivered {
        let expected = d.pixels as f64 * d.price_per_unit as f64 / d.pixels_per_unit.max(1) as f64;
        let paid: Vec<&Redemption> = redemptions
            .iter()
            .filter(|r| r.recipient == d.recipient)
            .collect();
        let redeemed: f64 = paid.iter().map(|r| r.face_value_wei).sum();
        let winners = paid.len() as u64;
        let face = face_value_wei.or_else(|| paid.first().map(|r| r.face_value_wei));
        let expected_winners = face.filter(|v| *v > 0.0).map(|v| expected / v);
        let interval = expected_winners.map(|mean| poisson_interval(mean, confidence));
        let verdict = match interval {
            _ if expected == 0.0 && winners == 0 => PaymentVerdict::NothingOwed,
            Some((_, high)) if winners > high => PaymentVerdict::Overcharged,
            Some((low, _)) if winners < low => PaymentVerdict::MissingRedemptions,
            Some(_) => PaymentVerdict::Consistent,
            // No face value known and nothing redeemed although work was owed.
            None => PaymentVerdict::MissingRedemptions,
        };
        results.push(Reconciliation {
            recipient: d.recipient.clone(),
            expected_wei: expected,
            redeemed_wei: redeemed,
            winners,
            expected_winners,
            interval,
            ev_error: (expected > 0.0).then(|| (redeemed - expected) / expected),
            verdict,
        });
    }
    let mut unknown: Vec<&str> = redemptions
        .iter()
        .map(|r| r.recipient.as_str())
        .filter(|r| !delivered.iter().any(|d| d.recipient == *r))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    for recipient in unknown {
        let paid: Vec<&Redemption> = redemptions
            .iter()
            .filter(|r| r.recipient == recipient)
            .collect();
        results.push(Reconciliation {
            recipient: recipient.to_owned(),
            expected_wei: 0.0,
            redeemed_wei: paid.iter().map(|r| r.face_value_wei).sum(),
            winners: paid.len() as u64,
            expected_winners: None,
            interval: None,
            ev_error: None,
            verdict: PaymentVerdict::UnknownRecipient,
        });
    }
    results
}

/// The central interval `[low, high]` of a Poisson(`mean`) count holding at least `confidence`
/// of its mass, with at most `(1 − confidence) / 2` on each side. Exact (summed pmf).
pub fn poisson_interval(mean: f64, confidence: f64) -> (u64, u64) {
    if mean <= 0.0 {
        return (0, 0);
    }
    let tail = (1.0 - confidence) / 2.0;
    // Walk the pmf from 0 in log space: ln P(k) = −λ + k ln λ − ln k!.
    let mut k: u64 = 0;
    let mut log_pmf = -mean;
    let mut cdf = 0.0;
    let mut low = None;
    let limit = (mean + 20.0 * mean.sqrt() + 50.0) as u64;
    while k <= limit {
        let pmf = log_pmf.exp();
        if low.is_none() && cdf + pmf > tail {
            low = Some(k);
        }
        cdf += pmf;
        if 1.0 - cdf <= tail {
            return (low.unwrap_or(0), k);
        }
        k += 1;
        log_pmf += mean.ln() - (k as f64).ln();
    }
    (low.unwrap_or(0), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orchestrator(pixels: u128) -> Delivered {
        Delivered {
            recipient: "0xaa".into(),
            pixels,
            price_per_unit: 1,
            pixels_per_unit: 1,
        }
    }

    fn redemptions(recipient: &str, count: usize, face: f64) -> Vec<Redemption> {
        (0..count)
            .map(|_| Redemption {
                recipient: recipient.into(),
                face_value_wei: face,
            })
            .collect()
    }

    #[test]
    fn poisson_interval_matches_known_quantiles() {
        // Poisson(100): P(X ≤ 68) ≈ 0.00049, P(X ≤ 69) ≈ 0.00078; P(X ≥ 134) ≈ 0.00087,
        // P(X ≥ 135) ≈ 0.00065 → the 99.9 % central interval is [69, 134].
        assert_eq!(poisson_interval(100.0, 0.999), (69, 134));
        // Poisson(1): P(X = 0) ≈ 0.37, so 0 winners is always plausible.
        assert_eq!(poisson_interval(1.0, 0.999).0, 0);
        assert_eq!(poisson_interval(0.0, 0.999), (0, 0));
        let (low, high) = poisson_interval(10_000.0, 0.95);
        assert!(
            (9800..=9805).contains(&low) && (10_195..=10_200).contains(&high),
            "{low} {high}"
        );
    }

    #[test]
    fn a_fair_orchestrator_is_consistent() {
        // 1e9 pixels at 1 wei/pixel with 1e7-wei tickets: 100 expected winners.
        let r = &reconcile(
            &[orchestrator(1_000_000_000)],
            &redemptions("0xaa", 97, 1e7),
            None,
            0.999,
        )[0];
        assert_eq!(r.verdict, PaymentVerdict::Consistent);
        assert_eq!(r.expected_winners, Some(100.0));
        assert!((r.ev_error.unwrap() + 0.03).abs() < 1e-9);
    }

    #[test]
    fn overcharging_and_missing_redemptions_are_flagged() {
        let over = &reconcile(
            &[orchestrator(1_000_000_000)],
            &redemptions("0xaa", 300, 1e7),
            None,
            0.999,
        )[0];
        assert_eq!(over.verdict, PaymentVerdict::Overcharged);
        assert!((over.ev_error.unwrap() - 2.0).abs() < 1e-9);

        let missing = &reconcile(&[orchestrator(1_000_000_000)], &[], Some(1e7), 0.999)[0];
        assert_eq!(missing.verdict, PaymentVerdict::MissingRedemptions);
        assert_eq!(missing.ev_error, Some(-1.0));
    }

    #[test]
    fn redemptions_to_strangers_are_flagged() {
        let results = reconcile(
            &[orchestrator(0)],
            &redemptions("0xbb", 2, 1e7),
            Some(1e7),
            0.999,
        );
        assert_eq!(results[0].verdict, PaymentVerdict::NothingOwed);
        assert_eq!(results[1].recipient, "0xbb");
        assert_eq!(results[1].verdict, PaymentVerdict::UnknownRecipient);
        assert_eq!(results[1].redeemed_wei, 2e7);
    }
}
