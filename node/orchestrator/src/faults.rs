//! Fault switches: ways to make this orchestrator misbehave on purpose, so a probe can prove it
//! notices each misbehaviour.
//!
//! Design: the switches are one plain serde struct, set in the config file and replaced at run time
//! through the authenticated admin endpoint; readers take a cheap snapshot per segment, so a switch
//! flipped mid-stream applies from the next segment on. The drop switch is deterministic (an
//! error-diffusion counter, not a random draw): with `drop_fraction = 0.5` exactly every second
//! segment is dropped, which makes tests exact and runs reproducible.

use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

/// Every fault switch; the default is an honest node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Fraction of segments (0..=1) accepted with 200 and then never answered: the response body
    /// is cut off before a `TranscodeResult` is written.
    pub drop_fraction: f64,
    /// Extra delay before each `TranscodeResult` is written, ms.
    pub delay_ms: u64,
    /// Flip bytes of every stored rendition after it was signed.
    pub corrupt_renditions: bool,
    /// Encode at 1/20 of each profile's bitrate.
    pub degrade_quality: bool,
    /// Encode at half of each profile's width and height.
    pub wrong_resolution: bool,
    /// Reported pixels = real pixels × this factor (1 = honest).
    pub overcharge_factor: f64,
    /// Never redeem winning tickets (they stay queued).
    pub stop_redeeming: bool,
    /// Stop the whole node (all connections dropped) once this many segments were transcoded.
    pub crash_after_segments: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            drop_fraction: 0.0,
            delay_ms: 0,
            corrupt_renditions: false,
            degrade_quality: false,
            wrong_resolution: false,
            overcharge_factor: 1.0,
            stop_redeeming: false,
            crash_after_segments: None,
        }
    }
}

/// A fault switch out of its range, named by its config key.
#[derive(Debug, thiserror::Error)]
#[error("config key {key}: {reason}")]
pub struct InvalidFault {
    /// Dotted key.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl FaultConfig {
    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        if !(0.0..=1.0).contains(&self.drop_fraction) {
            return Err(InvalidFault {
                key: "faults.drop_fraction",
                reason: format!("{} is not within 0..=1", self.drop_fraction),
            });
        }
        if !(self.overcharge_factor.is_finite() && self.overcharge_factor >= 1.0) {
            return Err(InvalidFault {
                key: "faults.overcharge_factor",
                reason: format!("{} must be at least 1", self.overcharge_factor),
            });
        }
        Ok(())
    }

    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// The switches in force, shared by every request handler.
#[derive(Debug, Clone)]
pub struct Faults {
    config: Arc<RwLock<FaultConfig>>,
    drop_accumulator: Arc<Mutex<f64>>,
}

impl Faults {
    /// Switches starting at `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config: Arc::new(RwLock::new(config)),
            drop_accumulator: Arc::new(Mutex::new(0.0)),
        }
    }

    /// A copy of the switches now.
    pub fn snapshot(&self) -> FaultConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces every switch (validated first).
    pub fn set(&self, config: FaultConfig) -> Result<(), InvalidFault> {
        config.validate()?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        *self
            .drop_accumulator
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = 0.0;
        Ok(())
    }

    /// Whether the next segment is dropped: accumulates `drop_fraction` per segment and drops
    /// whenever the sum reaches a whole segment.
    pub fn should_drop(&self, fraction: f64) -> bool {
        if fraction <= 0.0 {
            return false;
        }
        let mut acc = self
            .drop_accumulator
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *acc += fraction;
        if *acc >= 1.0 - 1e-9 {
            *acc -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Damages a rendition in place: XORs the payload bytes of every MPEG-TS packet (sync bytes and
/// packet headers are kept, so the file still looks like TS but decodes to garbage).
pub fn corrupt(data: &mut [u8]) {
    for packet in data.chunks_mut(188) {
        for byte in packet.iter_mut().skip(8) {
            *byte ^= 0x5a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_fraction_is_exact_and_deterministic() {
        let faults = Faults::new(FaultConfig::default());
        let dropped: Vec<bool> = (0..6).map(|_| faults.should_drop(0.5)).collect();
        assert_eq!(dropped, [false, true, false, true, false, true]);
        let thirds = (0..9).filter(|_| faults.should_drop(1.0 / 3.0)).count();
        assert_eq!(thirds, 3);
        assert!(!faults.should_drop(0.0));
    }

    #[test]
    fn validation_names_the_key() {
        let bad = FaultConfig {
            drop_fraction: 1.5,
            ..FaultConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("faults.drop_fraction"), "{err}");
        let faults = Faults::new(FaultConfig::default());
        assert!(
            faults
                .set(FaultConfig {
                    overcharge_factor: 0.5,
                    ..FaultConfig::default()
                })
                .is_err()
        );
        assert!(!faults.snapshot().any());
    }

    #[test]
    fn corrupt_keeps_sync_bytes() {
        let mut data = vec![0u8; 376];
        data[0] = 0x47;
        data[188] = 0x47;
        corrupt(&mut data);
        assert_eq!(data[0], 0x47);
        assert_eq!(data[188], 0x47);
        assert_eq!(data[100], 0x5a);
    }
}
