//! What our leaderboard knows and the public one does not: the quality of an orchestrator's
//! renditions against the reference transcoder, and what its pixels effectively cost.
//!
//! Design decisions:
//! - Extras live beside the §7 `records` (in `leaderboard.json`'s `extras`, keyed orchestrator →
//!   region like `aggregated`), never inside them, so every record stays postable as-is.
//! - A quality sample that does not name its orchestrator (the stream probe does not know it) is
//!   attributed through the segment record of the same (stream, rendition, seq), which does. A
//!   ticket, redemption or sample without a region takes the segment's region, else the
//!   orchestrator's only region among the records, else `unknown`.
//! - The VMAF deficit is a paired difference, `reference − network` over the segments scored for
//!   both, so a sample that only one side has cannot bias it. Positive means the network's rendition
//!   is worse than the reference transcoder's.
//! - The effective price is expected value paid per pixel paid for (`Σ ev_wei ÷ Σ pixels` over the
//!   tickets that say how many pixels they paid for): that is what the broadcaster's payments are
//!   worth, whereas on-chain redemptions are a lottery draw of it and are reported beside it.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{LeaderboardInputs, LeaderboardRecord, num, text};
use crate::aggregate::UNKNOWN_REGION;
use crate::error::ReportError;

/// The extras of one (orchestrator, region); a part is absent when the run had no data for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardExtras {
    /// Rendition quality, when the quality probe scored this orchestrator's renditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityExtras>,
    /// Payments, when the run journaled tickets or redemptions for this orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<PaymentExtras>,
}

/// VMAF of the network's renditions and of the reference transcoder's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityExtras {
    /// Rendition segments of this orchestrator that were scored.
    pub samples: u64,
    /// Mean VMAF of those renditions against the source (0–100).
    pub vmaf_mean: f64,
    /// Of those, the segments the reference transcoder's rendition was also scored for.
    pub paired_samples: u64,
    /// Mean VMAF of the reference transcoder's renditions over the paired segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_vmaf_mean: Option<f64>,
    /// Mean of `reference − network` VMAF over the paired segments (positive: worse than the
    /// reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmaf_deficit: Option<f64>,
}

/// What was paid to this orchestrator, per pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentExtras {
    /// Tickets sent.
    pub tickets: u64,
    /// Of those, winning tickets.
    pub winning_tickets: u64,
    /// Σ expected value of the tickets (wei).
    pub expected_value_wei: f64,
    /// Σ pixels the tickets paid for.
    pub pixels: u64,
    /// Mean price the orchestrator quoted (wei per pixel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_price_wei_per_pixel: Option<f64>,
    /// Σ expected value ÷ Σ pixels over tickets that carry their pixels (wei per pixel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_price_wei_per_pixel: Option<f64>,
    /// Successful on-chain redemptions observed.
    pub redemptions: u64,
    /// Failed redemption transactions observed.
    pub failed_redemptions: u64,
    /// Σ face value of the successful redemptions (wei).
    pub redeemed_wei: f64,
    /// Redeemed wei ÷ Σ pixels, when both are known (a lottery draw of the effective price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_wei_per_pixel: Option<f64>,
}

/// orchestrator → region → extras.
pub type ExtrasMap = BTreeMap<String, BTreeMap<String, LeaderboardExtras>>;

/// Computes the extras of every (orchestrator, region) that has a record and any extra data.
pub fn build(
    records: &[LeaderboardRecord],
    inputs: LeaderboardInputs<'_>,
) -> Result<ExtrasMap, ReportError> {
    let sole_region = sole_regions(records)?;
    let mut out = ExtrasMap::new();
    let wanted = |o: &str, r: &str| {
        records
            .iter()
            .any(|rec| rec.orchestrator == o && rec.region == r)
    };
    for (orch, region, q) in quality(inputs.segments, inputs.quality, &sole_region)? {
        if wanted(&orch, &region) {
            entry(&mut out, orch, region).quality = Some(q);
        }
    }
    for (orch, region, p) in payments(inputs.tickets, inputs.redemptions, &sole_region)? {
        if wanted(&orch, &region) {
            entry(&mut out, orch, region).payments = Some(p);
        }
    }
    Ok(out)
}

fn entry(out: &mut ExtrasMap, orch: String, region: String) -> &mut LeaderboardExtras {
    out.entry(orch).or_default().entry(region).or_default()
}

/// `orchestrator`, `sole_region`: orchestrators that appear in the records under one region only.
fn sole_regions(records: &[LeaderboardRecord]) -> Result<DataFrame, ReportError> {
    let mut regions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in records {
        regions
            .entry(r.orchestrator.as_str())
            .or_default()
            .push(r.region.as_str());
    }
    let (orchs, sole): (Vec<&str>, Vec<&str>) = regions
        .into_iter()
        .filter(|(_, r)| r.len() == 1)
        .map(|(o, r)| (o, r[0]))
        .unzip();
    DataFrame::new(
        orchs.len(),
        vec![
            Column::new("orchestrator".into(), orchs),
            Column::new("sole_region".into(), sole),
        ],
    )
    .map_err(ReportError::polars("leaderboard extras: regions"))
}

/// Fills a null `region` from the orchestrator's only region, else `unknown`.
fn resolve_region(lf: LazyFrame, sole_region: &DataFrame) -> LazyFrame {
    lf.left_join(
        sole_region.clone().lazy(),
        col("orchestrator"),
        col("orchestrator"),
    )
    .with_column(
        col("region")
            .fill_null(col("sole_region"))
            .fill_null(lit(UNKNOWN_REGION)),
    )
}

type Keyed<T> = Vec<(String, String, T)>;

fn quality(
    segments: &DataFrame,
    quality: &DataFrame,
    sole_region: &DataFrame,
) -> Result<Keyed<QualityExtras>, ReportError> {
    if quality.height() == 0 {
        return Ok(Vec::new());
    }
    let key = [col("stream"), col("rendition"), col("seq")];
    let owner = segments
        .clone()
        .lazy()
        .filter(col("orchestrator").is_not_null())
        .group_by(key.clone())
        .agg([
            col("orchestrator").first().alias("seg_orchestrator"),
            col("region").drop_nulls().first().alias("seg_region"),
        ]);
    let scored = quality
        .clone()
        .lazy()
        .filter(col("vmaf").is_not_null().and(col("vmaf").is_not_nan()));
    let reference = scored
        .clone()
        .filter(col("origin").eq(lit("reference")))
        .group_by(key.clone())
        .agg([col("vmaf").mean().alias("reference_vmaf")]);
    let network = scored
        .filter(col("origin").eq(lit("network")))
        .select([
            col("stream"),
            col("rendition"),
            col("seq"),
            col("vmaf"),
            col("orchestrator"),
            col("region"),
        ])
        .join(
            owner,
            key.clone(),
            key.clone(),
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            col("orchestrator").fill_null(col("seg_orchestrator")),
            col("region").fill_null(col("seg_region")),
        ])
        .filter(col("orchestrator").is_not_null());
    let network = resolve_region(network, sole_region)
        .join(reference, key.clone(), key, JoinArgs::new(JoinType::Left))
        .with_column(
            (col("reference_vmaf") - col("vmaf"))
                .cast(DataType::Float64)
                .alias("deficit"),
        );
    let paired = col("reference_vmaf").is_not_null();
    let out = network
        .group_by([col("orchestrator"), col("region")])
        .agg([
            len().cast(DataType::Float64).alias("samples"),
            col("vmaf").mean().alias("vmaf_mean"),
            paired
                .clone()
                .cast(DataType::Float64)
                .sum()
                .alias("paired_samples"),
            col("reference_vmaf")
                .filter(paired.clone())
                .mean()
                .alias("reference_vmaf_mean"),
            col("deficit").filter(paired).mean().alias("vmaf_deficit"),
        ])
        .collect()
        .map_err(ReportError::polars("leaderboard extras: quality"))?;
    Ok((0..out.height())
        .filter_map(|row| {
            Some((
                text(&out, "orchestrator", row)?,
                text(&out, "region", row)?,
                QualityExtras {
                    samples: num(&out, "samples", row)? as u64,
                    vmaf_mean: num(&out, "vmaf_mean", row)?,
                    paired_samples: num(&out, "paired_samples", row).unwrap_or(0.0) as u64,
                    reference_vmaf_mean: num(&out, "reference_vmaf_mean", row),
                    vmaf_deficit: num(&out, "vmaf_deficit", row),
                },
            ))
        })
        .collect())
}

fn payments(
    tickets: &DataFrame,
    redemptions: &DataFrame,
    sole_region: &DataFrame,
) -> Result<Keyed<PaymentExtras>, ReportError> {
    let f = |n: &str| col(n).cast(DataType::Float64);
    let keys = [col("orchestrator"), col("region")];
    let ticket_totals = resolve_region(tickets.clone().lazy(), sole_region)
        .group_by(keys.clone())
        .agg([
            len().cast(DataType::Float64).alias("tickets"),
            f("won").sum().alias("winning_tickets"),
            f("ev_wei").sum().alias("expected_value_wei"),
            f("pixels").sum().alias("pixels"),
            f("ev_wei")
                .filter(col("pixels").is_not_null())
                .sum()
                .alias("paid_ev_wei"),
            f("price_wei_per_pixel").mean().alias("quoted"),
        ])
        .collect()
        .map_err(ReportError::polars("leaderboard extras: tickets"))?;
    let redemption_totals = resolve_region(redemptions.clone().lazy(), sole_region)
        .group_by(keys)
        .agg([
            f("ok").sum().alias("redemptions"),
            col("ok")
                .not()
                .cast(DataType::Float64)
                .sum()
                .alias("failed"),
            f("face_value_wei")
                .filter(col("ok"))
                .sum()
                .alias("redeemed_wei"),
        ])
        .collect()
        .map_err(ReportError::polars("leaderboard extras: redemptions"))?;

    let mut by_key: BTreeMap<(String, String), PaymentExtras> = BTreeMap::new();
    let key_of = |df: &DataFrame, row| -> Option<(String, String)> {
        Some((text(df, "orchestrator", row)?, text(df, "region", row)?))
    };
    let empty = || PaymentExtras {
        tickets: 0,
        winning_tickets: 0,
        expected_value_wei: 0.0,
        pixels: 0,
        quoted_price_wei_per_pixel: None,
        effective_price_wei_per_pixel: None,
        redemptions: 0,
        failed_redemptions: 0,
        redeemed_wei: 0.0,
        redeemed_wei_per_pixel: None,
    };
    let t = &ticket_totals;
    for row in 0..t.height() {
        let Some(key) = key_of(t, row) else { continue };
        let p = by_key.entry(key).or_insert_with(empty);
        p.tickets = num(t, "tickets", row).unwrap_or(0.0) as u64;
        p.winning_tickets = num(t, "winning_tickets", row).unwrap_or(0.0) as u64;
        p.expected_value_wei = num(t, "expected_value_wei", row).unwrap_or(0.0);
        p.pixels = num(t, "pixels", row).unwrap_or(0.0) as u64;
        p.quoted_price_wei_per_pixel = num(t, "quoted", row);
        p.effective_price_wei_per_pixel = num(t, "paid_ev_wei", row)
            .filter(|_| p.pixels > 0)
            .map(|ev| ev / p.pixels as f64);
    }
    let r = &redemption_totals;
    for row in 0..r.height() {
        let Some(key) = key_of(r, row) else { continue };
        let p = by_key.entry(key).or_insert_with(empty);
        p.redemptions = num(r, "redemptions", row).unwrap_or(0.0) as u64;
        p.failed_redemptions = num(r, "failed", row).unwrap_or(0.0) as u64;
        p.redeemed_wei = num(r, "redeemed_wei", row).unwrap_or(0.0);
    }
    for p in by_key.values_mut() {
        if p.pixels > 0 && p.redemptions + p.failed_redemptions > 0 {
            p.redeemed_wei_per_pixel = Some(p.redeemed_wei / p.pixels as f64);
        }
    }
    Ok(by_key.into_iter().map(|((o, r), p)| (o, r, p)).collect())
}
