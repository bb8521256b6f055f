//! Checks that an AI answer is what was asked for, and summarises request and answer for records.
//!
//! A 200 is not success: a worker can answer the wrong number of images, the wrong size, ignore
//! the seed (so results are not reproducible), or return timestamps past the end of the audio.
//! Each check fails with its own reason code ([`super::client::reason`]). Images are decoded
//! under explicit size limits, since a hostile PNG can claim any dimensions.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::api::{Chunk, Media, Pipeline};
use super::client::{AiAnswer, AiFailure, AiResponse, reason};

/// Largest image side decoded: above any model's output, below what exhausts memory.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Largest decoder allocation per image.
pub const MAX_IMAGE_ALLOC: u64 = 1 << 30;
/// Slack on transcription timestamps: whisper rounds chunk ends to its 20 ms frames and may
/// round the last one past the end of the audio.
pub const TIMESTAMP_SLACK: f64 = 0.1;

/// What a plan tells the checks beyond the request's fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AiExpect {
    /// The upscale route's factor (4 for ai-runner's upscalers).
    pub upscale_factor: u32,
    /// The frames each image-to-video output must have; `None` checks only that it has some.
    pub video_frames: Option<u64>,
    /// The audio-to-text input's duration; `None` checks only that timestamps are not negative.
    pub audio_duration: Option<Duration>,
}

impl Default for AiExpect {
    fn default() -> Self {
        AiExpect {
            upscale_factor: 4,
            video_frames: None,
            audio_duration: None,
        }
    }
}

/// What one answer must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub pipeline: Pipeline,
    /// Width and height of every image or video.
    pub size: Option<(u32, u32)>,
    /// Number of images or videos.
    pub count: Option<u32>,
    /// The requested seed: output `i` must carry `seed + i`.
    pub seed: Option<u64>,
    pub video_frames: Option<u64>,
    pub audio_duration: Option<Duration>,
}

fn field_u64(fields: &Map<String, Value>, name: &str) -> Option<u64> {
    fields.get(name).and_then(Value::as_u64)
}

fn field_u32(fields: &Map<String, Value>, name: &str) -> Option<u32> {
    field_u64(fields, name).and_then(|v| u32::try_from(v).ok())
}

impl Expectation {
    /// The expectation of a request with these fields; `input_size` is the input image's.
    pub fn new(
        pipeline: Pipeline,
        fields: &Map<String, Value>,
        input_size: Option<(u32, u32)>,
        expect: &AiExpect,
    ) -> Self {
        // The document's defaults stand where the request leaves a field out.
        let size = match pipeline {
            Pipeline::TextToImage => Some((
                field_u32(fields, "width").unwrap_or(1024),
                field_u32(fields, "height").unwrap_or(576),
            )),
            Pipeline::ImageToImage => input_size,
            Pipeline::Upscale => input_size.map(|(w, h)| {
                (
                    w.saturating_mul(expect.upscale_factor),
                    h.saturating_mul(expect.upscale_factor),
                )
            }),
            // Video models snap sizes to their own grid: checked only when asked for.
            Pipeline::ImageToVideo => field_u32(fields, "width").zip(field_u32(fields, "height")),
            _ => None,
        };
        let count = match pipeline {
            Pipeline::TextToImage | Pipeline::ImageToImage => {
                Some(field_u32(fields, "num_images_per_prompt").unwrap_or(1))
            }
            Pipeline::Upscale | Pipeline::ImageToVideo => Some(1),
            _ => None,
        };
        Expectation {
            pipeline,
            size,
            count,
            seed: if pipeline.has_seed() {
                field_u64(fields, "seed")
            } else {
                None
            },
            video_frames: expect.video_frames,
            audio_duration: expect.audio_duration,
        }
    }
}

/// What a valid answer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub outputs: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Bytes of media (or text) produced.
    pub output_bytes: u64,
    /// The first output's seed.
    pub seed: Option<u64>,
    /// A compact JSON summary of the answer.
    pub summary: String,
    /// A hash of the decoded pixels (the bytes, for video): equal answers, equal prints.
    pub fingerprint: Option<u64>,
}

/// The request's fields as JSON with the uploaded file as its size, not its bytes.
pub fn params_summary(
    pipeline: Pipeline,
    fields: &Map<String, Value>,
    file: Option<&Bytes>,
) -> String {
    let mut map = fields.clone();
    if let (Some(name), Some(file)) = (pipeline.file_field(), file) {
        map.insert(format!("{name}_bytes"), Value::from(file.len() as u64));
    }
    Value::Object(map).to_string()
}

/// The size of an encoded image, read from its header only.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::io::Reader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Decodes one image under [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_ALLOC`].
pub fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let mut reader = image::io::Reader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a PNG or JPEG image".to_owned());
    }
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

/// Checks an answer against its expectation. CPU-bound (decodes every image, demuxes videos):
/// call it off the async runtime's threads.
pub fn validate(expect: &Expectation, answer: &AiAnswer) -> Result<Validated, AiFailure> {
    match &answer.response {
        AiResponse::Images(r) => validate_images(expect, &r.images, &answer.media),
        AiResponse::Video(r) => validate_videos(expect, &r.images, &answer.media),
        AiResponse::Text(r) => {
            check_timestamps(&r.chunks, expect.audio_duration)?;
            Ok(text_validated(
                r.text.len(),
                json!({"chars": r.text.chars().count(), "chunks": r.chunks.len()}),
            ))
        }
        AiResponse::ImageText(r) => Ok(text_validated(
            r.text.len(),
            json!({"chars": r.text.chars().count()}),
        )),
        AiResponse::Llm(r) => {
            let content: usize = r
                .choices
                .iter()
                .filter_map(|c| c.message.as_ref().or(c.delta.as_ref()))
                .map(|m| m.content.len())
                .sum();
            if r.choices.is_empty() {
                return Err(AiFailure::new(
                    reason::EMPTY_OUTPUT,
                    "LLM answer without choices",
                ));
            }
            Ok(Validated {
                outputs: u32::try_from(r.choices.len()).unwrap_or(u32::MAX),
                ..text_validated(
                    content,
                    json!({
                        "choices": r.choices.len(),
                        "completion_tokens": r.usage.completion_tokens,
                        "total_tokens": r.usage.total_tokens,
                        "bytes": content,
                    }),
                )
            })
        }
        AiResponse::Audio(_) => {
            let bytes = answer.media.first().map_or(0, |m| m.len() as u64);
            if bytes == 0 {
                return Err(AiFailure::new(reason::EMPTY_OUTPUT, "empty audio"));
            }
            Ok(Validated {
                outputs: 1,
                width: None,
                height: None,
                output_bytes: bytes,
                seed: None,
                summary: json!({"audio": 1, "bytes": bytes}).to_string(),
                fingerprint: None,
            })
        }
        AiResponse::Masks(r) => {
            let bytes = r.masks.len() + r.scores.len() + r.logits.len();
            Ok(text_validated(
                bytes,
                json!({"masks_chars": r.masks.len(), "scores": r.scores, "bytes": bytes}),
            ))
        }
        AiResponse::Live(r) => Ok(text_validated(
            0,
            json!({"publish_url": r.publish_url, "subscribe_url": r.subscribe_url}),
        )),
    }
}

fn text_validated(bytes: usize, summary: Value) -> Validated {
    Validated {
        outputs: 1,
        width: None,
        height: None,
        output_bytes: bytes as u64,
        seed: None,
        summary: summary.to_string(),
        fingerprint: None,
    }
}

fn check_count(expect: &Expectation, got: usize) -> Result<(), AiFailure> {
    match expect.count {
        Some(want) if u64::from(want) != got as u64 => Err(AiFailure::new(
            reason::WRONG_COUNT,
            format!("{got} outputs, asked for {want}"),
        )),
        _ if got == 0 => Err(AiFailure::new(reason::WRONG_COUNT, "no output")),
        _ => Ok(()),
    }
}

fn check_seed(expect: &Expectation, index: usize, media: &Media) -> Result<(), AiFailure> {
    let Some(base) = expect.seed else {
        return Ok(());
    };
    let want = base.wrapping_add(index as u64);
    if u64::try_from(media.seed).ok() != Some(want) {
        return Err(AiFailure::new(
            reason::SEED_NOT_ECHOED,
            format!("output {index} has seed {}, expected {want}", media.seed),
        ));
    }
    Ok(())
}

fn check_size(expect: &Expectation, index: usize, w: u32, h: u32) -> Result<(), AiFailure> {
    match expect.size {
        Some((ew, eh)) if (ew, eh) != (w, h) => Err(AiFailure::new(
            reason::WRONG_SIZE,
            format!("output {index} is {w}x{h}, expected {ew}x{eh}"),
        )),
        _ => Ok(()),
    }
}

fn first_seed(media: &[Media]) -> Option<u64> {
    media.first().and_then(|m| u64::try_from(m.seed).ok())
}

fn validate_images(
    expect: &Expectation,
    images: &[Media],
    bytes: &[Bytes],
) -> Result<Validated, AiFailure> {
    check_count(expect, images.len())?;
    let mut hasher = DefaultHasher::new();
    let mut size = None;
    let mut total = 0u64;
    for (i, (media, data)) in images.iter().zip(bytes).enumerate() {
        let decoded = decode_image(data).map_err(|e| {
            AiFailure::new(
                reason::MEDIA_DECODE,
                format!("image {i} does not decode: {e}"),
            )
        })?;
        let (w, h) = (decoded.width(), decoded.height());
        check_size(expect, i, w, h)?;
        check_seed(expect, i, media)?;
        (w, h, format!("{:?}", decoded.color())).hash(&mut hasher);
        decoded.as_bytes().hash(&mut hasher);
        size.get_or_insert((w, h));
        total += data.len() as u64;
    }
    let (width, height) = size.unzip();
    Ok(Validated {
        outputs: u32::try_from(images.len()).unwrap_or(u32::MAX),
        width,
        height,
        output_bytes: total,
        seed: first_seed(images),
        summary: json!({"images": images.len(), "width": width, "height": height, "bytes": total})
            .to_string(),
        fingerprint: Some(hasher.finish()),
    })
}

fn validate_videos(
    expect: &Expectation,
    videos: &[Media],
    bytes: &[Bytes],
) -> Result<Validated, AiFailure> {
    check_count(expect, videos.len())?;
    let mut hasher = DefaultHasher::new();
    let mut first = None;
    let mut total = 0u64;
    for (i, (media, data)) in videos.iter().zip(bytes).enumerate() {
        let frames = reference_transcoder::probe::count_frames(data.to_vec()).map_err(|e| {
            AiFailure::new(
                reason::MEDIA_DECODE,
                format!("video {i} does not demux: {e}"),
            )
        })?;
        match expect.video_frames {
            Some(want) if want != frames.frames => {
                return Err(AiFailure::new(
                    reason::VIDEO_FRAMES,
                    format!("video {i} has {} frames, expected {want}", frames.frames),
                ));
            }
            _ if frames.frames == 0 => {
                return Err(AiFailure::new(
                    reason::VIDEO_FRAMES,
                    format!("video {i} has no frame"),
                ));
            }
            _ => {}
        }
        check_size(expect, i, frames.width, frames.height)?;
        check_seed(expect, i, media)?;
        data.hash(&mut hasher);
        first.get_or_insert(frames);
        total += data.len() as u64;
    }
    Ok(Validated {
        outputs: u32::try_from(videos.len()).unwrap_or(u32::MAX),
        width: first.map(|f| f.width),
        height: first.map(|f| f.height),
        output_bytes: total,
        seed: first_seed(videos),
        summary: json!({
            "videos": videos.len(),
            "frames": first.map(|f| f.frames),
            "width": first.map(|f| f.width),
            "height": first.map(|f| f.height),
            "bytes": total,
        })
        .to_string(),
        fingerprint: Some(hasher.finish()),
    })
}

/// Every chunk's `[start, end]` within `[0, duration]` (`end` may be `null`: still running when
/// the audio ended), and `start <= end`.
pub fn check_timestamps(chunks: &[Chunk], duration: Option<Duration>) -> Result<(), AiFailure> {
    let limit = duration.map(|d| d.as_secs_f64() + TIMESTAMP_SLACK);
    for (i, chunk) in chunks.iter().enumerate() {
        let out = |what: String| {
            Err(AiFailure::new(
                reason::TIMESTAMPS_OUT_OF_RANGE,
                format!("chunk {i}: {what}"),
            ))
        };
        if chunk.timestamp.is_empty() || chunk.timestamp.len() > 2 {
            return out(format!(
                "{} timestamps, not [start, end]",
                chunk.timestamp.len()
            ));
        }
        let mut times = Vec::with_capacity(2);
        for t in &chunk.timestamp {
            match t {
                Value::Null => times.push(None),
                Value::Number(n) => match n.as_f64() {
                    Some(v) if v.is_finite() => times.push(Some(v)),
                    _ => return out(format!("timestamp {n} is not a finite number")),
                },
                other => return out(format!("timestamp {other} is not a number")),
            }
        }
        for t in times.iter().flatten() {
            if *t < 0.0 || limit.is_some_and(|l| *t > l) {
                return out(format!(
                    "timestamp {t} outside [0, {}]",
                    duration.map_or("∞".to_owned(), |d| d.as_secs_f64().to_string())
                ));
            }
        }
        if let [Some(start), Some(end)] = times[..]
            && start > end
        {
            return out(format!("start {start} after end {end}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::api::{ImageResponse, TextResponse};

    fn png(w: u32, h: u32, shade: u8) -> Bytes {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([shade, 0, 0]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageOutputFormat::Png)
            .expect("encodes");
        Bytes::from(out.into_inner())
    }

    fn answer(images: Vec<(Bytes, i64)>) -> AiAnswer {
        AiAnswer {
            response: AiResponse::Images(ImageResponse {
                images: images
                    .iter()
                    .map(|(_, seed)| Media {
                        url: "data:,".into(),
                        seed: *seed,
                        nsfw: false,
                    })
                    .collect(),
            }),
            media: images.into_iter().map(|(b, _)| b).collect(),
            body_bytes: 0,
        }
    }

    fn t2i(width: u32, height: u32, count: u32, seed: u64) -> Expectation {
        let fields =
            json!({"width": width, "height": height, "num_images_per_prompt": count, "seed": seed});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        Expectation::new(Pipeline::TextToImage, &fields, None, &AiExpect::default())
    }

    #[test]
    fn valid_images_pass_and_are_summarised() {
        let v = validate(
            &t2i(16, 8, 2, 42),
            &answer(vec![(png(16, 8, 1), 42), (png(16, 8, 2), 43)]),
        )
        .expect("valid");
        assert_eq!(v.outputs, 2);
        assert_eq!((v.width, v.height), (Some(16), Some(8)));
        assert_eq!(v.seed, Some(42));
        let summary: Value = serde_json::from_str(&v.summary).expect("json");
        assert_eq!(summary["images"], 2);
        assert_eq!(summary["width"], 16);
        assert_eq!(summary["bytes"], v.output_bytes);
    }

    #[test]
    fn each_check_has_its_reason() {
        let code = |e: Expectation, a: AiAnswer| validate(&e, &a).map(|_| ()).map_err(|f| f.reason);
        assert_eq!(
            code(t2i(16, 8, 1, 42), answer(vec![(png(8, 8, 1), 42)])),
            Err(reason::WRONG_SIZE)
        );
        assert_eq!(
            code(t2i(16, 8, 2, 42), answer(vec![(png(16, 8, 1), 42)])),
            Err(reason::WRONG_COUNT)
        );
        assert_eq!(
            code(
                t2i(16, 8, 2, 42),
                answer(vec![(png(16, 8, 1), 42), (png(16, 8, 1), 42)])
            ),
            Err(reason::SEED_NOT_ECHOED)
        );
        assert_eq!(
            code(
                t2i(16, 8, 1, 42),
                answer(vec![(Bytes::from_static(b"nope"), 42)])
            ),
            Err(reason::MEDIA_DECODE)
        );
    }

    #[test]
    fn fingerprints_follow_pixels() {
        let e = t2i(4, 4, 1, 1);
        let a = validate(&e, &answer(vec![(png(4, 4, 9), 1)])).expect("valid");
        let b = validate(&e, &answer(vec![(png(4, 4, 9), 1)])).expect("valid");
        let c = validate(&e, &answer(vec![(png(4, 4, 10), 1)])).expect("valid");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn upscale_and_image_to_image_sizes_follow_the_input() {
        let fields = Map::new();
        let up = Expectation::new(
            Pipeline::Upscale,
            &fields,
            Some((10, 20)),
            &AiExpect::default(),
        );
        assert_eq!(up.size, Some((40, 80)));
        let i2i = Expectation::new(
            Pipeline::ImageToImage,
            &fields,
            Some((10, 20)),
            &AiExpect::default(),
        );
        assert_eq!(i2i.size, Some((10, 20)));
        assert_eq!(i2i.count, Some(1));
        assert_eq!(image_size(&png(7, 3, 0)), Some((7, 3)));
    }

    #[test]
    fn timestamps_must_lie_in_the_audio() {
        let chunk = |a: Value, b: Value| Chunk {
            timestamp: vec![a, b],
            text: "x".into(),
        };
        let d = Some(Duration::from_secs(10));
        assert!(
            check_timestamps(
                &[
                    chunk(json!(0.0), json!(4.5)),
                    chunk(json!(4.5), Value::Null)
                ],
                d
            )
            .is_ok()
        );
        for bad in [
            chunk(json!(-1.0), json!(2.0)),
            chunk(json!(3.0), json!(12.0)),
            chunk(json!(5.0), json!(4.0)),
            chunk(json!("a"), json!(1.0)),
        ] {
            assert_eq!(
                check_timestamps(&[bad], d).map_err(|f| f.reason),
                Err(reason::TIMESTAMPS_OUT_OF_RANGE)
            );
        }
        let text = AiAnswer {
            response: AiResponse::Text(TextResponse {
                text: "hello".into(),
                chunks: vec![chunk(json!(0.0), json!(1.0))],
            }),
            media: vec![],
            body_bytes: 0,
        };
        let e = Expectation::new(
            Pipeline::AudioToText,
            &Map::new(),
            None,
            &AiExpect {
                audio_duration: d,
                ..AiExpect::default()
            },
        );
        let v = validate(&e, &text).expect("valid");
        assert_eq!(v.summary, r#"{"chars":5,"chunks":1}"#);
    }

    #[test]
    fn videos_must_demux() {
        let e = Expectation::new(
            Pipeline::ImageToVideo,
            &Map::new(),
            Some((8, 8)),
            &AiExpect::default(),
        );
        let answer = AiAnswer {
            response: AiResponse::Video(crate::ai::api::VideoResponse {
                images: vec![Media {
                    url: "data:,".into(),
                    seed: 0,
                    nsfw: false,
                }],
            }),
            media: vec![Bytes::from_static(b"not a video at all")],
            body_bytes: 0,
        };
        assert_eq!(
            validate(&e, &answer).map(|_| ()).map_err(|f| f.reason),
            Err(reason::MEDIA_DECODE)
        );
    }

    #[test]
    fn params_summaries_leave_the_bytes_out() {
        let Value::Object(fields) = json!({"prompt": "a cat", "seed": 42}) else {
            unreachable!()
        };
        let s = params_summary(
            Pipeline::ImageToImage,
            &fields,
            Some(&Bytes::from(vec![0u8; 1000])),
        );
        let s: Value = serde_json::from_str(&s).expect("json");
        assert_eq!(
            s,
            json!({"image_bytes": 1000, "prompt": "a cat", "seed": 42})
        );
    }

    #[test]
    fn hostile_image_headers_are_refused() {
        // A PNG header claiming 100000x100000 pixels (its CRC no longer matching either).
        let mut header = png(1, 1, 0).to_vec();
        header[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        header[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode_image(&header).is_err());
    }
}
