//! Fault switches of the remote transcoder node: ways to make a transcoder misbehave on purpose,
//! so the orchestrator it serves (or a probe behind that orchestrator) can prove it notices.
//!
//! Design: like the orchestrator's [`crate::faults`], one plain serde struct whose default is an
//! honest transcoder; it is fixed for the life of the node (`lpt node transcoder --faults JSON`
//! or [`crate::TranscoderConfig::faults`]). Each switch acts on one thing:
//!
//! - `degrade_quality`: every profile is encoded at 1/20 of its bitrate (the orchestrator's
//!   [`crate::transcode::effective_profiles`] arithmetic);
//! - `wrong_stream`: each task is transcoded honestly, but answered with the renditions (bytes and
//!   pixel counts, the top-level decoded count too) of the previous task this transcoder
//!   completed, whenever that one had as many renditions; the first task is answered honestly;
//! - `inflate_pixels`: each rendition part's `Pixels` is the real count × this factor, rounded
//!   (the renditions and the top-level decoded `Pixels` stay honest);
//! - `realtime_ratio`: a slow transcoder: an answer is posted no earlier than the segment's
//!   duration ÷ the ratio after its task arrived (only the remainder after the real transcode is
//!   slept);
//! - `disconnect_after`: once this many tasks were answered on one registration, the next task is
//!   received and then the whole connection is dropped with it and every task in flight, as a
//!   crashed process would. `run_transcoder` registers again (and that registration counts
//!   afresh), so the transcoder disconnects once per registration; `start_transcoder`'s session
//!   simply ends with an error.

use std::time::Duration;

use reference_transcoder::Profile;
use serde::{Deserialize, Serialize};

use crate::faults::{FaultConfig, InvalidFault};

/// Every fault switch of a remote transcoder; the default is an honest one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscoderFaults {
    /// Encode at 1/20 of each profile's bitrate.
    pub degrade_quality: bool,
    /// Answer each task with the previous completed task's renditions (when their count matches).
    pub wrong_stream: bool,
    /// Reported pixels of each rendition part = real pixels × this factor, rounded (1 = honest).
    pub inflate_pixels: f64,
    /// Post each answer no earlier than segment duration ÷ this ratio after the task arrived.
    pub realtime_ratio: Option<f64>,
    /// After this many answered tasks, drop the connection on receiving the next one (once per
    /// registration).
    pub disconnect_after: Option<u64>,
}

impl Default for TranscoderFaults {
    fn default() -> Self {
        Self {
            degrade_quality: false,
            wrong_stream: false,
            inflate_pixels: 1.0,
            realtime_ratio: None,
            disconnect_after: None,
        }
    }
}

impl TranscoderFaults {
    /// Parses a JSON object of switches (unknown keys refused, missing ones honest) and checks
    /// their ranges; an error names the offending key.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let faults: Self = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("transcoder faults {text:?}: {e}"))?;
        faults.validate()?;
        Ok(faults)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        if !(self.inflate_pixels.is_finite() && self.inflate_pixels >= 1.0) {
            return Err(InvalidFault {
                key: "faults.inflate_pixels",
                reason: format!("{} must be at least 1", self.inflate_pixels),
            });
        }
        if let Some(ratio) = self.realtime_ratio
            && !(ratio.is_finite() && ratio > 0.0)
        {
            return Err(InvalidFault {
                key: "faults.realtime_ratio",
                reason: format!("{ratio} must be a positive number"),
            });
        }
        Ok(())
    }

    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// The ladder actually encoded for `ladder`.
    pub fn encoded_profiles(&self, ladder: &[Profile]) -> Vec<Profile> {
        crate::transcode::effective_profiles(
            ladder,
            &FaultConfig {
                degrade_quality: self.degrade_quality,
                ..FaultConfig::default()
            },
        )
    }

    /// The pixel count reported for a rendition of `pixels` real ones.
    pub fn reported_pixels(&self, pixels: u64) -> u64 {
        if self.inflate_pixels == 1.0 {
            pixels
        } else {
            (pixels as f64 * self.inflate_pixels).round() as u64
        }
    }

    /// How long after its task arrived an answer for a segment of `duration_ms` may be posted.
    pub fn answer_after(&self, duration_ms: i32) -> Duration {
        match self.realtime_ratio {
            Some(ratio) if ratio > 0.0 && duration_ms > 0 => {
                Duration::from_secs_f64(f64::from(duration_ms) / 1000.0 / ratio)
            }
            _ => Duration::ZERO,
        }
    }

    /// Whether a task arriving after `answered` answered tasks on this registration is the one to
    /// disconnect with.
    pub fn disconnects_at(&self, answered: u64) -> bool {
        self.disconnect_after.is_some_and(|n| answered >= n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_honest() {
        let honest = TranscoderFaults::default();
        assert!(!honest.any());
        assert!(honest.validate().is_ok());
        assert_eq!(TranscoderFaults::from_json("{}").unwrap(), honest);
        assert_eq!(honest.reported_pixels(12_345), 12_345);
        assert_eq!(honest.answer_after(2000), Duration::ZERO);
        assert!(!honest.disconnects_at(1_000_000));
        let ladder = vec![Profile::preset("P360p30fps16x9").unwrap()];
        assert_eq!(honest.encoded_profiles(&ladder), ladder);
    }

    #[test]
    fn validation_names_the_key() {
        for (bad, key) in [
            (r#"{"inflate_pixels": 0.5}"#, "faults.inflate_pixels"),
            (r#"{"realtime_ratio": 0}"#, "faults.realtime_ratio"),
            (r#"{"realtime_ratio": -1.5}"#, "faults.realtime_ratio"),
            (r#"{"inflate_pixels": 2, "wrong": true}"#, "wrong"),
            (r#"{"disconnect_after": -1}"#, "disconnect_after"),
        ] {
            let err = format!("{:#}", TranscoderFaults::from_json(bad).unwrap_err());
            assert!(err.contains(key), "{bad}: {err}");
        }
        let nan = TranscoderFaults {
            inflate_pixels: f64::NAN,
            ..TranscoderFaults::default()
        };
        assert_eq!(nan.validate().unwrap_err().key, "faults.inflate_pixels");
    }

    #[test]
    fn switches_change_what_is_encoded_reported_and_when() {
        let faults = TranscoderFaults::from_json(
            r#"{"degrade_quality": true, "inflate_pixels": 3.0, "realtime_ratio": 0.5,
                "disconnect_after": 2, "wrong_stream": true}"#,
        )
        .unwrap();
        assert!(faults.any());
        let ladder = vec![Profile::preset("P360p30fps16x9").unwrap()];
        assert_eq!(faults.encoded_profiles(&ladder)[0].bitrate, 60_000);
        assert_eq!(faults.reported_pixels(256 * 144 * 30), 3 * 256 * 144 * 30);
        let halves = TranscoderFaults {
            inflate_pixels: 1.5,
            ..TranscoderFaults::default()
        };
        assert_eq!(halves.reported_pixels(3), 5, "4.5 rounds up");
        assert_eq!(faults.answer_after(2000), Duration::from_secs(4));
        assert!(!faults.disconnects_at(1));
        assert!(faults.disconnects_at(2));
    }
}
