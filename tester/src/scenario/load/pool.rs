//! `[target.pool]` and `[target.transcoders."transcoder-<o>-<t>"]`: the embedded orchestrators'
//! pool terms and spot checks, under the orchestrator's own `[pool]` names ([`PoolConfig`]), and
//! fault switches for single transcoders, under the transcoder's own names ([`TranscoderFaults`]).

use std::collections::BTreeMap;

use node_orchestrator::pool::PoolConfig;
use node_orchestrator::transcoder_faults::TranscoderFaults;

use super::super::model::*;
use super::super::reader::{Reader, Table, join};

/// The longest payout window a scenario may set: a week.
const MAX_WINDOW_SECS: i64 = 7 * 24 * 3600;

pub(super) fn read_pool(reader: &mut Reader<'_>, p: &Table<'_>) -> PoolConfig {
    reader.strict(p, |reader| {
        let default = PoolConfig::default();
        PoolConfig {
            ledger_file: None,
            payout_window_secs: reader
                .integer(p, "payout_window_secs", 1, MAX_WINDOW_SECS)
                .map_or(default.payout_window_secs, |s| s as u64),
            commission: reader
                .number(p, "commission", 0.0, 1.0)
                .unwrap_or(default.commission),
            payout_tx_cost_wei: reader
                .integer(p, "payout_tx_cost_wei", 0, i64::MAX)
                .map_or(default.payout_tx_cost_wei, |w| w as u64),
            penalty_factor: reader
                .number(p, "penalty_factor", 0.0, 1000.0)
                .unwrap_or(default.penalty_factor),
            check_fraction: reader
                .number(p, "check_fraction", 0.0, 1.0)
                .unwrap_or(default.check_fraction),
            trust_after: reader
                .integer(p, "trust_after", 0, i64::from(u32::MAX))
                .map_or(default.trust_after, |n| n as u64),
            drop_after_failures: reader
                .integer(p, "drop_after_failures", 1, 1_000_000)
                .map_or(default.drop_after_failures, |n| n as u32),
            min_psnr_db: reader.number(p, "min_psnr_db", 1.0, 100.0),
        }
    })
}

/// `[target.transcoders]`: one table per transcoder named `transcoder-<o>-<t>` of this stack.
pub(super) fn read_transcoders(
    reader: &mut Reader<'_>,
    t: &Table<'_>,
    orchestrators: u32,
    per_orchestrator: u32,
) -> BTreeMap<(u32, u32), TranscoderFaults> {
    let mut faults = BTreeMap::new();
    for (name, item) in t.table.iter() {
        let path = join(t.path(), name);
        let Some(f) = reader.as_table(item, &path) else {
            continue;
        };
        let node = match name.parse::<StackNode>() {
            Ok(StackNode::Transcoder(o, i)) if o < orchestrators && i < per_orchestrator => (o, i),
            _ => {
                reader.errors.error(
                    f.span.clone(),
                    &path,
                    format!(
                        "no transcoder `{name}` in this stack: transcoders are named transcoder-<orchestrator>-<index>, here up to transcoder-{}-{}",
                        orchestrators.saturating_sub(1),
                        per_orchestrator.saturating_sub(1)
                    ),
                    None,
                );
                continue;
            }
        };
        let switches = reader.strict(&f, |reader| {
            let honest = TranscoderFaults::default();
            TranscoderFaults {
                degrade_quality: reader
                    .boolean(&f, "degrade_quality")
                    .unwrap_or(honest.degrade_quality),
                wrong_stream: reader
                    .boolean(&f, "wrong_stream")
                    .unwrap_or(honest.wrong_stream),
                inflate_pixels: reader
                    .number(&f, "inflate_pixels", 1.0, 1000.0)
                    .unwrap_or(honest.inflate_pixels),
                realtime_ratio: reader.number(&f, "realtime_ratio", 0.01, 100.0),
                disconnect_after: reader
                    .integer(&f, "disconnect_after", 0, i64::from(u32::MAX))
                    .map(|n| n as u64),
            }
        });
        faults.insert(node, switches);
    }
    faults
}
