//! Rendition profiles: the lpms preset table (PROTOCOL.md §6) and go-livepeer's JSON profiles.
//!
//! Design: one `Profile` type for both; presets are looked up by exact name and an unknown name
//! yields an error that carries the closest known name (Jaro–Winkler), because a typo in a
//! ladder is the commonest mistake. JSON follows go-livepeer's `JsonProfile` field names
//! (`fpsDen`, `gop` as a string of seconds or `"intra"`), and a file may hold either a bare array
//! or `{"profiles": [...]}`.

use serde::{Deserialize, Serialize};

/// H.264 profile requested from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum H264Profile {
    /// Encoder default (libx264: High).
    None,
    Baseline,
    Main,
    High,
    ConstrainedHigh,
}

impl H264Profile {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "None" | "none" => H264Profile::None,
            "H264Baseline" | "baseline" => H264Profile::Baseline,
            "H264Main" | "main" => H264Profile::Main,
            "H264High" | "high" => H264Profile::High,
            "H264ConstrainedHigh" | "constrained_high" => H264Profile::ConstrainedHigh,
            _ => return None,
        })
    }

    /// The libx264 `profile` option value, if any.
    pub fn x264_name(self) -> Option<&'static str> {
        match self {
            H264Profile::None => None,
            H264Profile::Baseline => Some("baseline"),
            H264Profile::Main => Some("main"),
            H264Profile::High | H264Profile::ConstrainedHigh => Some("high"),
        }
    }
}

/// Key frame spacing of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Gop {
    /// Encoder default spacing; every segment still starts with an IDR frame.
    Default,
    IntraOnly,
    Seconds(f64),
}

/// One rung of a ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: u64,
    /// Output frame rate `fps_num / fps_den`; `fps_num == 0` keeps the source rate.
    pub fps_num: u32,
    pub fps_den: u32,
    pub h264_profile: H264Profile,
    pub gop: Gop,
}

/// Why a profile or ladder could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error("unknown profile name `{name}`{}", hint(closest))]
    UnknownName {
        name: String,
        closest: Option<String>,
    },
    #[error("profile JSON is invalid: {0}")]
    Json(String),
    #[error("profile `{name}`: {field} = {value} is invalid ({why})")]
    InvalidField {
        name: String,
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("profile `{name}`: encoder `{encoder}` is not supported (only H.264)")]
    UnsupportedEncoder { name: String, encoder: String },
    #[error("the ladder is empty")]
    EmptyLadder,
}

fn hint(closest: &Option<String>) -> String {
    closest
        .as_ref()
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// lpms presets: (name, width, height, fps, bitrate).
const PRESETS: &[(&str, u32, u32, u32, u64)] = &[
    ("P720p60fps16x9", 1280, 720, 60, 6_000_000),
    ("P720p30fps16x9", 1280, 720, 30, 4_000_000),
    ("P720p25fps16x9", 1280, 720, 25, 3_500_000),
    ("P720p30fps4x3", 960, 720, 30, 3_500_000),
    ("P576p30fps16x9", 1024, 576, 30, 1_500_000),
    ("P576p25fps16x9", 1024, 576, 25, 1_500_000),
    ("P360p30fps16x9", 640, 360, 30, 1_200_000),
    ("P360p25fps16x9", 640, 360, 25, 1_000_000),
    ("P360p30fps4x3", 480, 360, 30, 1_000_000),
    ("P240p30fps16x9", 426, 240, 30, 600_000),
    ("P240p25fps16x9", 426, 240, 25, 600_000),
    ("P240p30fps4x3", 320, 240, 30, 600_000),
    ("P144p30fps16x9", 256, 144, 30, 400_000),
];

/// go-livepeer's default broadcaster ladder.
pub const DEFAULT_LADDER: &str = "P240p30fps16x9,P360p30fps16x9";
/// go-livepeer's benchmark ladder (the default plus 720p), used by `lpt bench`.
pub const BENCH_LADDER: &str = "P240p30fps16x9,P360p30fps16x9,P720p30fps16x9";

impl Profile {
    /// Names of every preset.
    pub fn preset_names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|p| p.0)
    }

    /// Looks up a preset by its exact name.
    pub fn preset(name: &str) -> Result<Profile, ProfileError> {
        let found = PRESETS.iter().find(|p| p.0 == name);
        let Some(&(n, width, height, fps, bitrate)) = found else {
            let closest = PRESETS
                .iter()
                .map(|p| {
                    (
                        strsim::jaro_winkler(&name.to_ascii_lowercase(), &p.0.to_ascii_lowercase()),
                        p.0,
                    )
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(score, _)| *score > 0.7)
                .map(|(_, n)| n.to_string());
            return Err(ProfileError::UnknownName {
                name: name.to_string(),
                closest,
            });
        };
        Ok(Profile {
            name: n.to_string(),
            width,
            height,
            bitrate,
            fps_num: fps,
            fps_den: 1,
            h264_profile: H264Profile::None,
            gop: Gop::Default,
        })
    }

    /// The output frame rate, or `None` when the source rate is kept.
    pub fn fps(&self) -> Option<(u32, u32)> {
        (self.fps_num > 0).then_some((self.fps_num, self.fps_den.max(1)))
    }

    fn validate(self) -> Result<Profile, ProfileError> {
        let bad = |field, value: String, why| ProfileError::InvalidField {
            name: self.name.clone(),
            field,
            value,
            why,
        };
        if !(16..=7680).contains(&self.width) {
            return Err(bad("width", self.width.to_string(), "must be 16..=7680"));
        }
        if !(16..=4320).contains(&self.height) {
            return Err(bad("height", self.height.to_string(), "must be 16..=4320"));
        }
        if self.bitrate < 1_000 {
            return Err(bad(
                "bitrate",
                self.bitrate.to_string(),
                "must be at least 1000 bit/s",
            ));
        }
        if self.fps_num > 0 && self.fps_num / self.fps_den.max(1) > 240 {
            return Err(bad(
                "fps",
                format!("{}/{}", self.fps_num, self.fps_den),
                "must be at most 240",
            ));
        }
        if let Gop::Seconds(s) = self.gop
            && !(s.is_finite() && s > 0.0)
        {
            return Err(bad(
                "gop",
                s.to_string(),
                "must be positive seconds or \"intra\"",
            ));
        }
        Ok(self)
    }
}

/// Parses a comma-separated list of preset names (`"P240p30fps16x9,P360p30fps16x9"`).
pub fn parse_ladder(names: &str) -> Result<Vec<Profile>, ProfileError> {
    let ladder: Vec<Profile> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(Profile::preset)
        .collect::<Result<_, _>>()?;
    if ladder.is_empty() {
        return Err(ProfileError::EmptyLadder);
    }
    Ok(ladder)
}

/// go-livepeer's `JsonProfile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonProfile {
    name: String,
    width: u32,
    height: u32,
    bitrate: serde_json::Value,
    #[serde(default)]
    fps: u32,
    #[serde(default, rename = "fpsDen")]
    fps_den: u32,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    gop: Option<serde_json::Value>,
    #[serde(default)]
    encoder: String,
    // Accepted for compatibility, not used by this transcoder.
    #[serde(default)]
    #[allow(dead_code)]
    quality: Option<u32>,
    #[serde(default, rename = "colorDepth")]
    #[allow(dead_code)]
    color_depth: Option<u32>,
    #[serde(default, rename = "chromaFormat")]
    #[allow(dead_code)]
    chroma_format: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum JsonLadder {
    List(Vec<JsonProfile>),
    Wrapped { profiles: Vec<JsonProfile> },
}

/// Parses custom profiles from go-livepeer style JSON (an array, or `{"profiles": [...]}`).
pub fn parse_json_profiles(json: &str) -> Result<Vec<Profile>, ProfileError> {
    let ladder: JsonLadder =
        serde_json::from_str(json).map_err(|e| ProfileError::Json(e.to_string()))?;
    let list = match ladder {
        JsonLadder::List(l) | JsonLadder::Wrapped { profiles: l } => l,
    };
    if list.is_empty() {
        return Err(ProfileError::EmptyLadder);
    }
    list.into_iter().map(from_json).collect()
}

fn from_json(j: JsonProfile) -> Result<Profile, ProfileError> {
    let name = j.name.clone();
    let bad = |field, value: String, why| ProfileError::InvalidField {
        name: name.clone(),
        field,
        value,
        why,
    };
    if !matches!(j.encoder.as_str(), "" | "H.264" | "h264" | "H264") {
        return Err(ProfileError::UnsupportedEncoder {
            name: j.name,
            encoder: j.encoder,
        });
    }
    let bitrate = match &j.bitrate {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => parse_bitrate(s),
        _ => None,
    }
    .ok_or_else(|| {
        bad(
            "bitrate",
            j.bitrate.to_string(),
            "must be bits per second, e.g. 600000 or \"600k\"",
        )
    })?;
    let h264_profile = H264Profile::parse(&j.profile).ok_or_else(|| {
        bad(
            "profile",
            j.profile.clone(),
            "expected H264Baseline, H264Main, H264High or H264ConstrainedHigh",
        )
    })?;
    let gop = match &j.gop {
        None => Gop::Default,
        Some(serde_json::Value::String(s)) if s.is_empty() => Gop::Default,
        Some(serde_json::Value::String(s)) if s == "intra" => Gop::IntraOnly,
        Some(serde_json::Value::String(s)) => Gop::Seconds(
            s.trim_end_matches('s')
                .parse()
                .map_err(|_| bad("gop", s.clone(), "must be seconds or \"intra\""))?,
        ),
        Some(serde_json::Value::Number(n)) => Gop::Seconds(n.as_f64().unwrap_or(f64::NAN)),
        Some(other) => {
            return Err(bad(
                "gop",
                other.to_string(),
                "must be seconds or \"intra\"",
            ));
        }
    };
    Profile {
        name: j.name,
        width: j.width,
        height: j.height,
        bitrate,
        fps_num: j.fps,
        fps_den: if j.fps_den == 0 { 1 } else { j.fps_den },
        h264_profile,
        gop,
    }
    .validate()
}

fn parse_bitrate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1_000.0),
        'm' | 'M' => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    let v: f64 = digits.parse().ok()?;
    (v.is_finite() && v > 0.0).then_some((v * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_preset_parses() {
        assert_eq!(Profile::preset_names().count(), 13);
        let p = Profile::preset("P144p30fps16x9").unwrap();
        assert_eq!(
            (p.width, p.height, p.fps_num, p.bitrate),
            (256, 144, 30, 400_000)
        );
    }

    #[test]
    fn unknown_name_suggests_closest() {
        let err = parse_ladder("P240p30fps16x9,P360p30fps16x8").unwrap_err();
        assert_eq!(
            err,
            ProfileError::UnknownName {
                name: "P360p30fps16x8".into(),
                closest: Some("P360p30fps16x9".into())
            }
        );
        assert!(
            err.to_string().contains("did you mean `P360p30fps16x9`"),
            "{err}"
        );
    }

    #[test]
    fn go_livepeer_json_profiles_parse() {
        let json = r#"[{"name":"custom","width":854,"height":480,"bitrate":1000000,"fps":24,"fpsDen":1,
            "profile":"H264Main","gop":"2.0","encoder":"H.264"},
            {"name":"kf","width":320,"height":240,"bitrate":"300k","fps":0,"gop":"intra"}]"#;
        let l = parse_json_profiles(json).unwrap();
        assert_eq!(l[0].h264_profile, H264Profile::Main);
        assert_eq!(l[0].gop, Gop::Seconds(2.0));
        assert_eq!(
            (l[1].bitrate, l[1].fps(), l[1].gop),
            (300_000, None, Gop::IntraOnly)
        );
        let err = parse_json_profiles(
            r#"[{"name":"x","width":320,"height":240,"bitrate":1,"encoder":"VP9"}]"#,
        );
        assert!(matches!(err, Err(ProfileError::UnsupportedEncoder { .. })));
    }
}
