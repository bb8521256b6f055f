//! The worker's configuration (TOML, every field optional) and its injectable faults, with the
//! checks `lpt validate` runs before anything listens.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// How a local AI worker is set up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiWorkerConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// When set, pipeline requests must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Requests processed at once; a `live-video-to-video` job holds one for its whole life.
    pub capacity: u32,
    /// Requests allowed to wait beyond `capacity`; more answer 503.
    pub max_queue: u32,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// Largest image, requested or decoded, in pixels.
    pub max_pixels: u64,
    /// How generated images are returned.
    pub media: MediaMode,
    /// The model each pipeline serves.
    pub models: ModelIds,
    /// Misbehaviour to inject.
    pub faults: AiFaults,
    /// The `live-video-to-video` job: what it does to the frames it relays.
    pub live: LiveConfig,
}

impl Default for AiWorkerConfig {
    fn default() -> Self {
        AiWorkerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bearer_token: None,
            capacity: 1,
            max_queue: 16,
            max_body_bytes: 16 * 1024 * 1024,
            max_pixels: 4096 * 4096,
            media: MediaMode::Data,
            models: ModelIds::default(),
            faults: AiFaults::default(),
            live: LiveConfig::default(),
        }
    }
}

/// `[live]`: the `live-video-to-video` job. It subscribes to the request's Trickle input,
/// rotates the hue of every frame (chroma only, so the luma frame stamps stay readable),
/// re-times the video to a constant `output_fps`, and publishes one MPEG-TS segment per input
/// segment. A job holds one unit of `capacity` for its whole life.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Frame rate of the published video, 1 to 120.
    pub output_fps: u32,
    /// Hue rotation in degrees applied to every frame (FFmpeg's `hue=h=`).
    pub hue_degrees: f64,
    /// A job whose input brings nothing for this long (no channel yet, no next segment, or a
    /// stalled segment) ends and closes its output.
    pub idle_timeout_secs: f64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            output_fps: 24,
            hue_degrees: 120.0,
            idle_timeout_secs: 30.0,
        }
    }
}

/// How generated images reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Inline `data:image/png;base64,...` URLs, as ai-runner itself answers.
    #[default]
    Data,
    /// `http://<worker>/media/<id>.png`, kept for a while by this worker.
    Url,
}

/// The `model_id` each implemented pipeline answers to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelIds {
    pub text_to_image: String,
    pub image_to_image: String,
    pub upscale: String,
    /// The `model_id` a `live-video-to-video` request must name.
    pub live_video_to_video: String,
}

impl Default for ModelIds {
    fn default() -> Self {
        ModelIds {
            text_to_image: "lpt/seeded-renderer".into(),
            image_to_image: "lpt/ffmpeg-filter".into(),
            upscale: "lpt/lanczos-x4".into(),
            live_video_to_video: "lpt/hue-shift".into(),
        }
    }
}

/// Faults the worker injects into its processing path; all off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiFaults {
    /// Each request answers no earlier than this after its processing starts.
    pub delay_ms: u64,
    /// Outputs are half the expected width and height.
    pub wrong_size: bool,
    /// Every Nth processed request (counting from 1) answers 500; 0 is off.
    pub error_every: u32,
    /// The first request, and the first after `idle_secs` without one, waits this long first.
    pub cold_start_ms: u64,
    /// Idle time after which the "model" counts as unloaded again.
    pub idle_secs: f64,
}

impl Default for AiFaults {
    fn default() -> Self {
        AiFaults {
            delay_ms: 0,
            wrong_size: false,
            error_every: 0,
            cold_start_ms: 0,
            idle_secs: 30.0,
        }
    }
}

impl AiWorkerConfig {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading AI worker config {}", path.display()))?;
        let config: AiWorkerConfig = toml::from_str(&text)
            .with_context(|| format!("parsing AI worker config {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("checking AI worker config {}", path.display()))?;
        Ok(config)
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.capacity == 0 {
            bail!("capacity must be at least 1");
        }
        if self.max_body_bytes == 0 {
            bail!("max_body_bytes must be at least 1");
        }
        if self.max_pixels < 64 {
            bail!("max_pixels must be at least 64 (one 8x8 image)");
        }
        // Keep every pixel count and buffer size comfortably inside usize arithmetic.
        if self.max_pixels > 1 << 30 {
            bail!("max_pixels must be at most {}", 1u64 << 30);
        }
        if let Some(token) = &self.bearer_token
            && (token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            bail!("bearer_token must be non-empty and contain no whitespace");
        }
        for (field, id) in [
            ("models.text_to_image", &self.models.text_to_image),
            ("models.image_to_image", &self.models.image_to_image),
            ("models.upscale", &self.models.upscale),
            (
                "models.live_video_to_video",
                &self.models.live_video_to_video,
            ),
        ] {
            if id.trim().is_empty() {
                bail!("{field} must not be empty");
            }
        }
        let live = &self.live;
        if !(1..=120).contains(&live.output_fps) {
            bail!("live.output_fps must be 1 to 120, got {}", live.output_fps);
        }
        if !live.hue_degrees.is_finite() || live.hue_degrees.abs() > 3600.0 {
            bail!("live.hue_degrees must be a finite number of degrees, at most 3600 either way");
        }
        if !live.idle_timeout_secs.is_finite() || !(0.1..=3600.0).contains(&live.idle_timeout_secs)
        {
            bail!("live.idle_timeout_secs must be 0.1 to 3600 seconds");
        }
        let f = &self.faults;
        if !f.idle_secs.is_finite() || f.idle_secs < 0.0 {
            bail!("faults.idle_secs must be a finite number of seconds >= 0");
        }
        if f.delay_ms > 600_000 || f.cold_start_ms > 600_000 {
            bail!("faults.delay_ms and faults.cold_start_ms must be at most 600000 (10 minutes)");
        }
        Ok(())
    }
}

/// One human line per active fault, for `lpt validate`; empty when none is on.
pub fn describe_faults(faults: &AiFaults) -> Vec<String> {
    let mut lines = Vec::new();
    if faults.delay_ms > 0 {
        lines.push(format!(
            "every request answers no earlier than {} ms after processing starts",
            faults.delay_ms
        ));
    }
    if faults.wrong_size {
        lines.push("outputs are half the expected width and height".to_string());
    }
    match faults.error_every {
        0 => {}
        1 => lines.push("every request answers 500".to_string()),
        n => lines.push(format!("every {} request answers 500", ordinal(n))),
    }
    if faults.cold_start_ms > 0 {
        lines.push(format!(
            "the first request, and the first after {} s idle, waits {} ms (cold start)",
            faults.idle_secs, faults.cold_start_ms
        ));
    }
    lines
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_toml() {
        let c: AiWorkerConfig = toml::from_str("").unwrap();
        assert_eq!(c, AiWorkerConfig::default());
        assert_eq!(c.capacity, 1);
        assert_eq!(c.faults.idle_secs, 30.0);
        let c: AiWorkerConfig = toml::from_str(
            "media = \"url\"\nlisten = \"127.0.0.1:8935\"\n[faults]\nerror_every = 5\n[models]\nupscale = \"x\"\n",
        )
        .unwrap();
        assert_eq!(c.media, MediaMode::Url);
        assert_eq!(c.listen.port(), 8935);
        assert_eq!(c.faults.error_every, 5);
        assert_eq!(c.models.upscale, "x");
        assert_eq!(c.models.text_to_image, "lpt/seeded-renderer");
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<AiWorkerConfig>("capacityy = 2").is_err());
        assert!(toml::from_str::<AiWorkerConfig>("[faults]\nslow = 1").is_err());
        let c = AiWorkerConfig {
            capacity: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("capacity"));
        let mut c = AiWorkerConfig::default();
        c.faults.idle_secs = f64::NAN;
        assert!(c.validate().unwrap_err().to_string().contains("idle_secs"));
        let mut c = AiWorkerConfig::default();
        c.live.output_fps = 0;
        assert!(c.validate().unwrap_err().to_string().contains("output_fps"));
        c.live.output_fps = 121;
        assert!(c.validate().unwrap_err().to_string().contains("output_fps"));
        assert!(toml::from_str::<AiWorkerConfig>("[live]\nfps = 3").is_err());
    }

    #[test]
    fn live_section_reads_and_round_trips() {
        let c: AiWorkerConfig =
            toml::from_str("[live]\noutput_fps = 30\n[models]\nlive_video_to_video = \"m\"\n")
                .unwrap();
        assert_eq!(c.live.output_fps, 30);
        assert_eq!(c.live.hue_degrees, 120.0);
        assert_eq!(c.models.live_video_to_video, "m");
        c.validate().unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AiWorkerConfig>(&text).unwrap(), c);
    }

    #[test]
    fn fault_lines() {
        assert!(describe_faults(&AiFaults::default()).is_empty());
        let f = AiFaults {
            error_every: 5,
            wrong_size: true,
            ..Default::default()
        };
        assert_eq!(
            describe_faults(&f),
            vec![
                "outputs are half the expected width and height".to_string(),
                "every 5th request answers 500".to_string()
            ]
        );
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
    }
}
