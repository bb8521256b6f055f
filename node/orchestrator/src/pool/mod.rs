//! A pool of remote transcoders, seen as a business: what each transcoder did ([`ledger`]), what
//! it is owed ([`payout`]), which of its answers are checked ([`CheckPolicy`]) and the pool's
//! Prometheus series.
//!
//! The orchestrator does not take a transcoder's word for its pixels: it counts the frames of
//! every rendition it receives (a demux, no decode) and bills the broadcaster and pays the
//! transcoder by that count, so a transcoder that inflates its `Pixels` gains nothing; the
//! difference is recorded. Which transcoder answered is chosen in [`crate::remote`], by free
//! capacity and measured speed.

pub mod ledger;
pub mod payout;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

pub use ledger::{CheckVerdict, LedgerEntry, LedgerRendition, PoolLedger, TranscoderTotals};
pub use payout::{Payout, PayoutPlan, PayoutTerms, plan};

/// How a pool's answers are checked and its transcoders paid (`[pool]` in the orchestrator's
/// config).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Where the ledger's lines are appended (JSON lines); absent keeps the window in memory only.
    pub ledger_file: Option<std::path::PathBuf>,
    /// The rolling window payouts are computed over, s.
    pub payout_window_secs: u64,
    /// The orchestrator's commission, a fraction of the redeemed value.
    pub commission: f64,
    /// What one payout transaction costs, wei.
    pub payout_tx_cost_wei: u64,
    /// Pixels forfeited per answer refused by its check, as a multiple of what it claimed.
    pub penalty_factor: f64,
    /// Fraction (0..=1) of a trusted transcoder's answers that are checked, spread evenly.
    pub check_fraction: f64,
    /// A new transcoder's first answers, all checked before the fraction applies.
    pub trust_after: u64,
    /// Failed checks after which a transcoder is detached and its name refused.
    pub drop_after_failures: u32,
    /// The least mean luma PSNR, dB, of a rendition against the scaled source; absent is the
    /// checker's calibrated default.
    pub min_psnr_db: Option<f64>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            ledger_file: None,
            payout_window_secs: 3600,
            commission: 0.0,
            payout_tx_cost_wei: 0,
            penalty_factor: 1.0,
            check_fraction: 0.0,
            trust_after: 0,
            drop_after_failures: 3,
            min_psnr_db: None,
        }
    }
}

impl PoolConfig {
    /// The first key out of range, with why.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        if !fraction(self.commission) {
            return Some(("pool.commission", "must be within 0..=1".into()));
        }
        if !fraction(self.check_fraction) {
            return Some(("pool.check_fraction", "must be within 0..=1".into()));
        }
        if !(self.penalty_factor.is_finite() && self.penalty_factor >= 0.0) {
            return Some(("pool.penalty_factor", "must be 0 or more".into()));
        }
        if self.payout_window_secs == 0 {
            return Some(("pool.payout_window_secs", "must be at least 1".into()));
        }
        if self.drop_after_failures == 0 {
            return Some(("pool.drop_after_failures", "must be at least 1".into()));
        }
        if let Some(psnr) = self.min_psnr_db
            && !(psnr.is_finite() && psnr > 0.0)
        {
            return Some(("pool.min_psnr_db", "must be above 0".into()));
        }
        None
    }

    /// The payout terms.
    pub fn terms(&self) -> PayoutTerms {
        PayoutTerms {
            commission: self.commission,
            tx_cost_wei: u128::from(self.payout_tx_cost_wei),
            penalty_factor: self.penalty_factor,
        }
    }

    /// The check policy.
    pub fn checks(&self) -> CheckPolicy {
        CheckPolicy {
            fraction: self.check_fraction,
            trust_after: self.trust_after,
            drop_after_failures: self.drop_after_failures,
            min_psnr_db: self.min_psnr_db,
        }
    }
}

/// Which answers are checked, and when a transcoder is dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckPolicy {
    pub fraction: f64,
    pub trust_after: u64,
    pub drop_after_failures: u32,
    pub min_psnr_db: Option<f64>,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        PoolConfig::default().checks()
    }
}

/// One transcoder's sampling state: deterministic, so `fraction = 0.25` checks exactly every
/// fourth answer (an error-diffusion counter, as the orchestrator's drop switch), which keeps
/// runs reproducible and a cheater's detection time predictable.
#[derive(Debug, Clone, Default)]
pub struct CheckSampler {
    answers: u64,
    debt: f64,
}

impl CheckSampler {
    /// Whether the next answer is checked.
    pub fn next(&mut self, policy: &CheckPolicy) -> bool {
        self.answers += 1;
        if self.answers <= policy.trust_after {
            return true;
        }
        self.debt += policy.fraction;
        if self.debt >= 1.0 - 1e-9 {
            self.debt -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the ledger keeps of a remote answer until the segment is billed.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolWork {
    /// The transcoder's name.
    pub transcoder: String,
    /// Source pixels it reported decoding.
    pub decoded_pixels: u64,
    /// Encoded pixels it reported, per rendition in profile order (the renditions' own `pixels`
    /// are the counted ones).
    pub claimed_pixels: Vec<u64>,
    /// Dispatch to answer.
    pub transcode_ms: u64,
    /// Time spent checking it, when it was checked.
    pub check_ms: Option<u64>,
    /// How its check went.
    pub verdict: CheckVerdict,
}

/// A transcoder's live figures for `/metrics` and `/pool`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveTranscoder {
    pub name: String,
    pub id: u64,
    pub capacity: usize,
    pub load: usize,
    /// Media seconds transcoded per wall second, recent answers weighted most; absent until its
    /// first answer.
    pub realtime_ratio: Option<f64>,
    pub failed_checks: u32,
}

/// The pool's Prometheus series: totals per transcoder from the ledger, speed of the attached.
pub fn render_metrics(
    totals: &BTreeMap<String, TranscoderTotals>,
    live: &[LiveTranscoder],
) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let label = |t: &str| format!("transcoder=\"{}\"", t.replace(['\\', '"', '\n'], "_"));
    let per = |f: &dyn Fn(&TranscoderTotals) -> String| {
        totals
            .iter()
            .map(|(t, v)| (label(t), f(v)))
            .collect::<Vec<_>>()
    };
    family(
        "lpt_orchestrator_pool_segments_total",
        "counter",
        "Segments each remote transcoder answered (refused answers included).",
        per(&|t| t.segments.to_string()),
    );
    let mut pixels = Vec::new();
    for (t, v) in totals {
        for (kind, n) in [
            ("decoded", v.decoded_pixels),
            ("claimed", v.claimed_pixels),
            ("counted", v.counted_pixels),
            ("earned", v.earned_pixels),
        ] {
            pixels.push((format!("{},kind=\"{kind}\"", label(t)), n.to_string()));
        }
    }
    family(
        "lpt_orchestrator_pool_pixels_total",
        "counter",
        "Pixels per remote transcoder: decoded and claimed (as it reported), counted (in its renditions, what is billed) and earned (counted, of answers not refused).",
        pixels,
    );
    family(
        "lpt_orchestrator_pool_lost_segments_total",
        "counter",
        "Segments each remote transcoder went away with (disconnected, or past the task deadline).",
        per(&|t| t.lost.to_string()),
    );
    family(
        "lpt_orchestrator_pool_fees_wei_total",
        "counter",
        "What broadcasters were charged for each remote transcoder's segments, wei.",
        per(&|t| t.fees_wei.to_string()),
    );
    family(
        "lpt_orchestrator_pool_misreported_segments_total",
        "counter",
        "Segments whose claimed pixels differ from the counted ones.",
        per(&|t| t.misreported_segments.to_string()),
    );
    let mut checks = Vec::new();
    for (t, v) in totals {
        checks.push((
            format!("{},outcome=\"passed\"", label(t)),
            v.checks_passed.to_string(),
        ));
        checks.push((
            format!("{},outcome=\"failed\"", label(t)),
            v.checks_failed.to_string(),
        ));
    }
    family(
        "lpt_orchestrator_pool_checks_total",
        "counter",
        "Spot checks of each remote transcoder's answers, by outcome.",
        checks,
    );
    family(
        "lpt_orchestrator_transcoder_realtime_ratio",
        "gauge",
        "Media seconds an attached remote transcoder turns around per wall second (recent answers weighted most).",
        live.iter()
            .filter_map(|t| Some((label(&t.name), t.realtime_ratio?.to_string())))
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_checks_evenly_after_the_trust_period() {
        let policy = CheckPolicy {
            fraction: 0.25,
            trust_after: 3,
            ..CheckPolicy::default()
        };
        let mut sampler = CheckSampler::default();
        let checked: Vec<bool> = (0..11).map(|_| sampler.next(&policy)).collect();
        assert_eq!(
            checked,
            [
                true, true, true, false, false, false, true, false, false, false, true
            ]
        );
        let all = CheckPolicy {
            fraction: 1.0,
            ..CheckPolicy::default()
        };
        assert!((0..50).all(|_| sampler.next(&all)));
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let bad = PoolConfig {
            check_fraction: 1.5,
            ..PoolConfig::default()
        };
        assert_eq!(bad.invalid().unwrap().0, "pool.check_fraction");
        let bad = PoolConfig {
            drop_after_failures: 0,
            ..PoolConfig::default()
        };
        assert_eq!(bad.invalid().unwrap().0, "pool.drop_after_failures");
        assert_eq!(PoolConfig::default().invalid(), None);
    }

    #[test]
    fn metrics_name_each_transcoder() {
        let mut totals = BTreeMap::new();
        totals.insert(
            "transcoder-0-1".to_string(),
            TranscoderTotals {
                segments: 4,
                counted_pixels: 10,
                claimed_pixels: 30,
                checks_failed: 1,
                fees_wei: 123,
                ..TranscoderTotals::default()
            },
        );
        let live = [LiveTranscoder {
            name: "transcoder-0-1".into(),
            id: 2,
            capacity: 1,
            load: 0,
            realtime_ratio: Some(2.5),
            failed_checks: 1,
        }];
        let text = render_metrics(&totals, &live);
        for line in [
            "lpt_orchestrator_pool_segments_total{transcoder=\"transcoder-0-1\"} 4\n",
            "lpt_orchestrator_pool_pixels_total{transcoder=\"transcoder-0-1\",kind=\"claimed\"} 30\n",
            "lpt_orchestrator_pool_pixels_total{transcoder=\"transcoder-0-1\",kind=\"counted\"} 10\n",
            "lpt_orchestrator_pool_checks_total{transcoder=\"transcoder-0-1\",outcome=\"failed\"} 1\n",
            "lpt_orchestrator_pool_fees_wei_total{transcoder=\"transcoder-0-1\"} 123\n",
            "lpt_orchestrator_transcoder_realtime_ratio{transcoder=\"transcoder-0-1\"} 2.5\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
