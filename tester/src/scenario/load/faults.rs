//! `[target.faults]`: fault switches for some embedded orchestrators, under the orchestrator's own
//! `[faults]` names ([`FaultConfig`]), so the table reaches their configs unrenamed.

use super::super::model::*;
use super::super::reader::{Reader, Table, join};

/// The longest `delay_ms` a scenario may give a fault: the longest duration a scenario may write.
const MAX_DELAY_MS: i64 = crate::duration::MAX_DURATION.as_millis() as i64;

pub(super) fn read(reader: &mut Reader<'_>, f: &Table<'_>, orchestrators: u32) -> Faults {
    reader.strict(f, |reader| {
        let mut which = Vec::new();
        if let Some(values) = reader.array(f, "orchestrators") {
            for value in values {
                match value.as_integer() {
                    Some(i) if (0..i64::from(orchestrators)).contains(&i) => which.push(i as u32),
                    _ => reader.errors.error(
                        value.span(),
                        &join(f.path(), "orchestrators"),
                        format!(
                            "expected an orchestrator index from 0 to {}",
                            orchestrators.saturating_sub(1)
                        ),
                        None,
                    ),
                }
            }
        }
        let honest = FaultConfig::default();
        Faults {
            orchestrators: which,
            switches: FaultConfig {
                drop_fraction: reader
                    .number(f, "drop_fraction", 0.0, 1.0)
                    .unwrap_or(honest.drop_fraction),
                delay_ms: reader
                    .integer(f, "delay_ms", 0, MAX_DELAY_MS)
                    .map_or(honest.delay_ms, |ms| ms as u64),
                corrupt_renditions: reader
                    .boolean(f, "corrupt_renditions")
                    .unwrap_or(honest.corrupt_renditions),
                degrade_quality: reader
                    .boolean(f, "degrade_quality")
                    .unwrap_or(honest.degrade_quality),
                wrong_resolution: reader
                    .boolean(f, "wrong_resolution")
                    .unwrap_or(honest.wrong_resolution),
                overcharge_factor: reader
                    .number(f, "overcharge_factor", 1.0, 1000.0)
                    .unwrap_or(honest.overcharge_factor),
                stop_redeeming: reader
                    .boolean(f, "stop_redeeming")
                    .unwrap_or(honest.stop_redeeming),
                crash_after_segments: reader
                    .integer(f, "crash_after_segments", 0, i64::from(u32::MAX))
                    .map(|n| n as u64),
            },
        }
    })
}
