//! The wire types of ai-runner's API as Livepeer's AI gateways and workers serve it, typed from
//! the vendored OpenAPI document (`probes/openapi/gateway.openapi.yaml`).
//!
//! Field names are the document's, so serde needs no renames; a field the document does not
//! require is an `Option` left out when `None`, so a request carries only what its author chose
//! and the worker's own defaults apply to the rest. [`SCHEMA_FIELDS`] lists every schema's fields
//! beside the types: a unit test here keeps it equal to the types, and
//! `tests/ai_openapi.rs` keeps it equal to the document, so the types cannot drift from the
//! document unnoticed.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pipeline {
    TextToImage,
    ImageToImage,
    ImageToVideo,
    Upscale,
    AudioToText,
    SegmentAnything2,
    Llm,
    ImageToText,
    LiveVideoToVideo,
    TextToSpeech,
}

impl Pipeline {
    /// Every route, in the document's order.
    pub const ALL: [Pipeline; 10] = [
        Pipeline::TextToImage,
        Pipeline::ImageToImage,
        Pipeline::ImageToVideo,
        Pipeline::Upscale,
        Pipeline::AudioToText,
        Pipeline::SegmentAnything2,
        Pipeline::Llm,
        Pipeline::ImageToText,
        Pipeline::LiveVideoToVideo,
        Pipeline::TextToSpeech,
    ];

    /// The route's path, e.g. `/text-to-image`.
    pub fn route(self) -> &'static str {
        match self {
            Pipeline::TextToImage => "/text-to-image",
            Pipeline::ImageToImage => "/image-to-image",
            Pipeline::ImageToVideo => "/image-to-video",
            Pipeline::Upscale => "/upscale",
            Pipeline::AudioToText => "/audio-to-text",
            Pipeline::SegmentAnything2 => "/segment-anything-2",
            Pipeline::Llm => "/llm",
            Pipeline::ImageToText => "/image-to-text",
            Pipeline::LiveVideoToVideo => "/live-video-to-video",
            Pipeline::TextToSpeech => "/text-to-speech",
        }
    }

    /// The route without its slash, e.g. `text-to-image`: the name gateways price and route by.
    pub fn name(self) -> &'static str {
        &self.route()[1..]
    }

    /// Whether the request body is `multipart/form-data` (else JSON).
    pub fn is_multipart(self) -> bool {
        self.file_field().is_some()
    }

    /// The multipart part carrying the uploaded file, if the route takes one.
    pub fn file_field(self) -> Option<&'static str> {
        match self {
            Pipeline::ImageToImage
            | Pipeline::ImageToVideo
            | Pipeline::Upscale
            | Pipeline::SegmentAnything2
            | Pipeline::ImageToText => Some("image"),
            Pipeline::AudioToText => Some("audio"),
            Pipeline::TextToImage
            | Pipeline::Llm
            | Pipeline::LiveVideoToVideo
            | Pipeline::TextToSpeech => None,
        }
    }

    /// Whether the request takes a `seed` that generated media echo.
    pub fn has_seed(self) -> bool {
        matches!(
            self,
            Pipeline::TextToImage
                | Pipeline::ImageToImage
                | Pipeline::ImageToVideo
                | Pipeline::Upscale
        )
    }

    /// The request field naming the model: the LLM route follows OpenAI's `model`.
    pub fn model_field(self) -> &'static str {
        match self {
            Pipeline::Llm => "model",
            _ => "model_id",
        }
    }

    /// The document's request and success-response schema names.
    pub fn schemas(self) -> (&'static str, &'static str) {
        match self {
            Pipeline::TextToImage => ("TextToImageParams", "ImageResponse"),
            Pipeline::ImageToImage => ("Body_genImageToImage", "ImageResponse"),
            Pipeline::ImageToVideo => ("Body_genImageToVideo", "VideoResponse"),
            Pipeline::Upscale => ("Body_genUpscale", "ImageResponse"),
            Pipeline::AudioToText => ("Body_genAudioToText", "TextResponse"),
            Pipeline::SegmentAnything2 => ("Body_genSegmentAnything2", "MasksResponse"),
            Pipeline::Llm => ("LLMRequest", "LLMResponse"),
            Pipeline::ImageToText => ("Body_genImageToText", "ImageToTextResponse"),
            Pipeline::LiveVideoToVideo => ("LiveVideoToVideoParams", "LiveVideoToVideoResponse"),
            Pipeline::TextToSpeech => ("TextToSpeechParams", "AudioResponse"),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no route of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AI pipeline {0:?}")]
pub struct UnknownPipeline(pub String);

impl FromStr for Pipeline {
    type Err = UnknownPipeline;

    /// Accepts the name (`text-to-image`) or the route (`/text-to-image`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_prefix('/').unwrap_or(s);
        Pipeline::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownPipeline(s.to_owned()))
    }
}

/// An uploaded file of a multipart body. In JSON (records, summaries) it stands as its size,
/// never its bytes, so a logged request stays small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upload(pub Bytes);

impl Serialize for Upload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("<{} bytes>", self.0.len()))
    }
}

impl<'de> Deserialize<'de> for Upload {
    /// OpenAPI types a file as a binary string: its bytes are the string's.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Upload(Bytes::from(s.into_bytes())))
    }
}

/// `TextToImageParams`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextToImageParams {
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loras: Option<String>,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images_per_prompt: Option<i64>,
}

/// `Body_genImageToImage` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageToImageParams {
    pub prompt: String,
    pub image: Upload,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loras: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_guidance_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images_per_prompt: Option<i64>,
}

/// `Body_genImageToVideo` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageToVideoParams {
    pub image: Upload,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_bucket_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_aug_strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<i64>,
}

/// `Body_genUpscale` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpscaleParams {
    pub prompt: String,
    pub image: Upload,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<i64>,
}

/// `Body_genAudioToText` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioToTextParams {
    pub audio: Upload,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_timestamps: Option<String>,
}

/// `Body_genImageToText` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageToTextParams {
    pub image: Upload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub model_id: String,
}

/// `Body_genSegmentAnything2` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentAnything2Params {
    pub image: Upload,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_coords: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_labels: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#box: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multimask_output: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_logits: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize_coords: Option<bool>,
}

/// `LLMRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMRequest {
    pub messages: Vec<LLMMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// `LiveVideoToVideoParams`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveVideoToVideoParams {
    pub subscribe_url: String,
    pub publish_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// `TextToSpeechParams`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextToSpeechParams {
    pub model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `Media`: one generated image or video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// A `data:` URL (base64) or an http(s) URL.
    pub url: String,
    pub seed: i64,
    pub nsfw: bool,
}

/// `ImageResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageResponse {
    pub images: Vec<Media>,
}

/// `VideoResponse`: the videos come in `images`, as the document names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoResponse {
    pub images: Vec<Media>,
}

/// `Chunk`: a transcribed span. The document leaves the timestamp's items untyped; whisper
/// answers `[start, end]` in seconds, `end` possibly `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub timestamp: Vec<Value>,
    pub text: String,
}

/// `TextResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextResponse {
    pub text: String,
    pub chunks: Vec<Chunk>,
}

/// `ImageToTextResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageToTextResponse {
    pub text: String,
}

/// `LLMMessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMMessage {
    pub role: String,
    pub content: String,
}

/// `LLMChoice`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMChoice {
    pub index: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<LLMMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<LLMMessage>,
}

/// `LLMTokenUsage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMTokenUsage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

/// `LLMResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMResponse {
    pub id: String,
    pub model: String,
    pub created: i64,
    pub usage: LLMTokenUsage,
    pub choices: Vec<LLMChoice>,
}

/// `MediaURL`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaURL {
    pub url: String,
}

/// `AudioResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioResponse {
    pub audio: MediaURL,
}

/// `MasksResponse`: masks, scores and logits as the strings the worker formats them to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MasksResponse {
    pub masks: String,
    pub scores: String,
    pub logits: String,
}

/// `LiveVideoToVideoResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveVideoToVideoResponse {
    pub subscribe_url: String,
    pub publish_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_id: Option<String>,
}

/// `APIError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct APIError {
    pub msg: String,
}

/// `HTTPError`: the body of a 400, 401, 413, 415 or 500.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HTTPError {
    pub detail: APIError,
}

/// `ValidationError`: one entry of a 422.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Path to the offending field: strings and indices.
    pub loc: Vec<Value>,
    pub msg: String,
    pub r#type: String,
}

/// `HTTPValidationError`: the body of a 422.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HTTPValidationError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<ValidationError>>,
}

/// Per schema of the document (by its name there), the Rust type's fields and whether each is
/// required. Checked against the types by this module's tests and against the document by
/// `tests/ai_openapi.rs`.
pub const SCHEMA_FIELDS: &[(&str, &[(&str, bool)])] = &[
    ("APIError", &[("msg", true)]),
    ("AudioResponse", &[("audio", true)]),
    (
        "Body_genAudioToText",
        &[
            ("audio", true),
            ("model_id", true),
            ("return_timestamps", false),
        ],
    ),
    (
        "Body_genImageToImage",
        &[
            ("prompt", true),
            ("image", true),
            ("model_id", true),
            ("loras", false),
            ("strength", false),
            ("guidance_scale", false),
            ("image_guidance_scale", false),
            ("negative_prompt", false),
            ("safety_check", false),
            ("seed", false),
            ("num_inference_steps", false),
            ("num_images_per_prompt", false),
        ],
    ),
    (
        "Body_genImageToText",
        &[("image", true), ("prompt", false), ("model_id", true)],
    ),
    (
        "Body_genImageToVideo",
        &[
            ("image", true),
            ("model_id", true),
            ("height", false),
            ("width", false),
            ("fps", false),
            ("motion_bucket_id", false),
            ("noise_aug_strength", false),
            ("safety_check", false),
            ("seed", false),
            ("num_inference_steps", false),
        ],
    ),
    (
        "Body_genSegmentAnything2",
        &[
            ("image", true),
            ("model_id", true),
            ("point_coords", false),
            ("point_labels", false),
            ("box", false),
            ("mask_input", false),
            ("multimask_output", false),
            ("return_logits", false),
            ("normalize_coords", false),
        ],
    ),
    (
        "Body_genUpscale",
        &[
            ("prompt", true),
            ("image", true),
            ("model_id", true),
            ("safety_check", false),
            ("seed", false),
            ("num_inference_steps", false),
        ],
    ),
    ("Chunk", &[("timestamp", true), ("text", true)]),
    ("HTTPError", &[("detail", true)]),
    ("HTTPValidationError", &[("detail", false)]),
    ("ImageResponse", &[("images", true)]),
    ("ImageToTextResponse", &[("text", true)]),
    (
        "LLMChoice",
        &[
            ("index", true),
            ("finish_reason", false),
            ("delta", false),
            ("message", false),
        ],
    ),
    ("LLMMessage", &[("role", true), ("content", true)]),
    (
        "LLMRequest",
        &[
            ("messages", true),
            ("model", false),
            ("temperature", false),
            ("max_tokens", false),
            ("top_p", false),
            ("top_k", false),
            ("stream", false),
        ],
    ),
    (
        "LLMResponse",
        &[
            ("id", true),
            ("model", true),
            ("created", true),
            ("usage", true),
            ("choices", true),
        ],
    ),
    (
        "LLMTokenUsage",
        &[
            ("prompt_tokens", true),
            ("completion_tokens", true),
            ("total_tokens", true),
        ],
    ),
    (
        "LiveVideoToVideoParams",
        &[
            ("subscribe_url", true),
            ("publish_url", true),
            ("control_url", false),
            ("events_url", false),
            ("model_id", true),
            ("params", false),
            ("gateway_request_id", false),
            ("manifest_id", false),
            ("stream_id", false),
        ],
    ),
    (
        "LiveVideoToVideoResponse",
        &[
            ("subscribe_url", true),
            ("publish_url", true),
            ("control_url", false),
            ("events_url", false),
            ("request_id", false),
            ("manifest_id", false),
        ],
    ),
    (
        "MasksResponse",
        &[("masks", true), ("scores", true), ("logits", true)],
    ),
    ("Media", &[("url", true), ("seed", true), ("nsfw", true)]),
    ("MediaURL", &[("url", true)]),
    ("TextResponse", &[("text", true), ("chunks", true)]),
    (
        "TextToImageParams",
        &[
            ("model_id", true),
            ("loras", false),
            ("prompt", true),
            ("height", false),
            ("width", false),
            ("guidance_scale", false),
            ("negative_prompt", false),
            ("safety_check", false),
            ("seed", false),
            ("num_inference_steps", false),
            ("num_images_per_prompt", false),
        ],
    ),
    (
        "TextToSpeechParams",
        &[("model_id", true), ("text", false), ("description", false)],
    ),
    (
        "ValidationError",
        &[("loc", true), ("msg", true), ("type", true)],
    ),
    ("VideoResponse", &[("images", true)]),
];

/// The fields [`SCHEMA_FIELDS`] lists for a schema, if it lists it.
pub fn schema_fields(schema: &str) -> Option<&'static [(&'static str, bool)]> {
    SCHEMA_FIELDS
        .iter()
        .find(|(name, _)| *name == schema)
        .map(|(_, fields)| *fields)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(value: &impl Serialize) -> BTreeSet<String> {
        match serde_json::to_value(value) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    /// Checks a type against its [`SCHEMA_FIELDS`] entry: a fully-filled value serializes every
    /// listed field, a default one exactly the required ones (the optional ones are skipped).
    fn check<T: Serialize + Default + for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(
        schema: &str,
        full: T,
    ) {
        let fields = schema_fields(schema).unwrap_or_else(|| panic!("{schema} not listed"));
        let all: BTreeSet<String> = fields.iter().map(|(f, _)| (*f).to_owned()).collect();
        let required: BTreeSet<String> = fields
            .iter()
            .filter(|(_, r)| *r)
            .map(|(f, _)| (*f).to_owned())
            .collect();
        assert_eq!(keys(&full), all, "{schema}: fields");
        assert_eq!(keys(&T::default()), required, "{schema}: required fields");
        // A minimal document (required fields only) reads back.
        let minimal = serde_json::to_string(&T::default()).expect("serializes");
        let _: T = serde_json::from_str(&minimal).unwrap_or_else(|e| panic!("{schema}: {e}"));
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn message() -> LLMMessage {
        LLMMessage {
            role: "user".into(),
            content: "hi".into(),
        }
    }

    fn media() -> Media {
        Media {
            url: "data:image/png;base64,".into(),
            seed: 1,
            nsfw: false,
        }
    }

    #[test]
    fn schema_fields_match_the_types() {
        let img = Upload(Bytes::from_static(b"png"));
        check("APIError", APIError { msg: "m".into() });
        check(
            "AudioResponse",
            AudioResponse {
                audio: MediaURL { url: "u".into() },
            },
        );
        check(
            "Body_genAudioToText",
            AudioToTextParams {
                audio: img.clone(),
                model_id: "m".into(),
                return_timestamps: s("true"),
            },
        );
        check(
            "Body_genImageToImage",
            ImageToImageParams {
                prompt: "p".into(),
                image: img.clone(),
                model_id: "m".into(),
                loras: s(""),
                strength: Some(0.8),
                guidance_scale: Some(7.5),
                image_guidance_scale: Some(1.5),
                negative_prompt: s(""),
                safety_check: Some(true),
                seed: Some(1),
                num_inference_steps: Some(10),
                num_images_per_prompt: Some(1),
            },
        );
        check(
            "Body_genImageToText",
            ImageToTextParams {
                image: img.clone(),
                prompt: s("p"),
                model_id: "m".into(),
            },
        );
        check(
            "Body_genImageToVideo",
            ImageToVideoParams {
                image: img.clone(),
                model_id: "m".into(),
                height: Some(1),
                width: Some(1),
                fps: Some(6),
                motion_bucket_id: Some(127),
                noise_aug_strength: Some(0.02),
                safety_check: Some(true),
                seed: Some(1),
                num_inference_steps: Some(25),
            },
        );
        check(
            "Body_genSegmentAnything2",
            SegmentAnything2Params {
                image: img.clone(),
                model_id: "m".into(),
                point_coords: s("[[1,2]]"),
                point_labels: s("[1]"),
                r#box: s("[0,0,1,1]"),
                mask_input: s(""),
                multimask_output: Some(true),
                return_logits: Some(true),
                normalize_coords: Some(true),
            },
        );
        check(
            "Body_genUpscale",
            UpscaleParams {
                prompt: "p".into(),
                image: img,
                model_id: "m".into(),
                safety_check: Some(true),
                seed: Some(1),
                num_inference_steps: Some(75),
            },
        );
        check(
            "Chunk",
            Chunk {
                timestamp: vec![Value::from(0.0), Value::from(1.0)],
                text: "t".into(),
            },
        );
        check(
            "HTTPError",
            HTTPError {
                detail: APIError { msg: "m".into() },
            },
        );
        check(
            "HTTPValidationError",
            HTTPValidationError {
                detail: Some(vec![ValidationError::default()]),
            },
        );
        check(
            "ImageResponse",
            ImageResponse {
                images: vec![media()],
            },
        );
        check(
            "ImageToTextResponse",
            ImageToTextResponse { text: "t".into() },
        );
        check(
            "LLMChoice",
            LLMChoice {
                index: 0,
                finish_reason: s("stop"),
                delta: Some(message()),
                message: Some(message()),
            },
        );
        check("LLMMessage", message());
        check(
            "LLMRequest",
            LLMRequest {
                messages: vec![message()],
                model: s("m"),
                temperature: Some(0.7),
                max_tokens: Some(256),
                top_p: Some(1.0),
                top_k: Some(-1),
                stream: Some(false),
            },
        );
        check(
            "LLMResponse",
            LLMResponse {
                id: "i".into(),
                model: "m".into(),
                created: 1,
                usage: LLMTokenUsage::default(),
                choices: vec![LLMChoice::default()],
            },
        );
        check(
            "LLMTokenUsage",
            LLMTokenUsage {
                prompt_tokens: 1,
                completion_tokens: 2,
                total_tokens: 3,
            },
        );
        check(
            "LiveVideoToVideoParams",
            LiveVideoToVideoParams {
                subscribe_url: "s".into(),
                publish_url: "p".into(),
                control_url: s("c"),
                events_url: s("e"),
                model_id: "m".into(),
                params: Some(Map::new()),
                gateway_request_id: s("g"),
                manifest_id: s("m"),
                stream_id: s("s"),
            },
        );
        check(
            "LiveVideoToVideoResponse",
            LiveVideoToVideoResponse {
                subscribe_url: "s".into(),
                publish_url: "p".into(),
                control_url: s("c"),
                events_url: s("e"),
                request_id: s("r"),
                manifest_id: s("m"),
            },
        );
        check(
            "MasksResponse",
            MasksResponse {
                masks: "m".into(),
                scores: "s".into(),
                logits: "l".into(),
            },
        );
        check("Media", media());
        check("MediaURL", MediaURL { url: "u".into() });
        check(
            "TextResponse",
            TextResponse {
                text: "t".into(),
                chunks: vec![],
            },
        );
        check(
            "TextToImageParams",
            TextToImageParams {
                model_id: "m".into(),
                loras: s(""),
                prompt: "p".into(),
                height: Some(1),
                width: Some(1),
                guidance_scale: Some(7.5),
                negative_prompt: s(""),
                safety_check: Some(true),
                seed: Some(1),
                num_inference_steps: Some(50),
                num_images_per_prompt: Some(1),
            },
        );
        check(
            "TextToSpeechParams",
            TextToSpeechParams {
                model_id: "m".into(),
                text: s("t"),
                description: s("d"),
            },
        );
        check(
            "ValidationError",
            ValidationError {
                loc: vec![Value::from("body")],
                msg: "m".into(),
                r#type: "t".into(),
            },
        );
        check(
            "VideoResponse",
            VideoResponse {
                images: vec![media()],
            },
        );
    }

    #[test]
    fn every_listed_schema_is_checked_once() {
        // 28 schemas in the document; a new entry must come with a `check` above.
        assert_eq!(SCHEMA_FIELDS.len(), 28);
        let names: BTreeSet<&str> = SCHEMA_FIELDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), SCHEMA_FIELDS.len());
        for p in Pipeline::ALL {
            let (request, response) = p.schemas();
            assert!(schema_fields(request).is_some(), "{request}");
            assert!(schema_fields(response).is_some(), "{response}");
            if let Some(file) = p.file_field() {
                assert!(
                    schema_fields(request).is_some_and(|f| f.contains(&(file, true))),
                    "{p}: file field {file}"
                );
            }
        }
    }

    #[test]
    fn pipeline_names_round_trip() {
        for p in Pipeline::ALL {
            assert_eq!(p.name().parse::<Pipeline>(), Ok(p));
            assert_eq!(p.route().parse::<Pipeline>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert!("text-to-audio".parse::<Pipeline>().is_err());
        assert_eq!(Pipeline::TextToImage.name(), "text-to-image");
        assert!(Pipeline::Upscale.is_multipart());
        assert!(!Pipeline::Llm.is_multipart());
    }

    #[test]
    fn uploads_serialize_as_their_size() {
        let v = serde_json::to_value(Upload(Bytes::from_static(b"12345"))).expect("serializes");
        assert_eq!(v, Value::from("<5 bytes>"));
    }
}
