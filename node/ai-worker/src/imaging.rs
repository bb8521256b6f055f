//! CPU image work for the upload pipelines: bounded PNG/JPEG decoding, an FFmpeg filter graph
//! for image-to-image, and libswscale's Lanczos for upscale. All of it is blocking; callers run
//! it on `spawn_blocking`.

use std::io::Cursor;
use std::sync::OnceLock;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;

use crate::error::ApiError;
use crate::filter_graph;
use crate::render::fnv1a;

/// An RGB8 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

fn ffmpeg_ready() -> Result<(), ApiError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| ffmpeg_next::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| ApiError::internal(format!("initialising FFmpeg: {e}")))
}

/// Decodes a PNG or JPEG upload, refusing it from its header alone when it has more than
/// `max_pixels` pixels, so a small hostile file cannot make us allocate a huge canvas.
pub fn decode(bytes: &[u8], max_pixels: u64, limit_name: &str) -> Result<Rgb, ApiError> {
    let reader = || {
        image::io::Reader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ApiError::bad_request(format!("reading image: {e}")))
    };
    let probe = reader()?;
    match probe.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        _ => {
            return Err(ApiError::bad_request(
                "image is not a PNG or JPEG file this worker can decode",
            ));
        }
    }
    let (w, h) = probe
        .into_dimensions()
        .map_err(|e| ApiError::bad_request(format!("image could not be decoded: {e}")))?;
    if w == 0 || h == 0 {
        return Err(ApiError::bad_request("image has no pixels"));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(ApiError::too_large(format!(
            "image is {w}x{h} ({pixels} pixels), more than this worker's {limit_name} ({max_pixels})"
        )));
    }
    let mut decoder = reader()?;
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // Room for the decoded canvas at 16-bit RGBA plus the decoder's own buffers.
    limits.max_alloc = Some(pixels * 8 + (64 << 20));
    decoder.limits(limits);
    let img = decoder
        .decode()
        .map_err(|e| ApiError::bad_request(format!("image could not be decoded: {e}")))?
        .to_rgb8();
    Ok(Rgb {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    })
}

fn ff(stage: &'static str) -> impl Fn(ffmpeg_next::Error) -> ApiError {
    move |e| ApiError::internal(format!("FFmpeg failed {stage}: {e}"))
}

/// libavutil's av_image_check_size2 bound: a 16M x 1 PNG is within max_pixels but not this.
fn check_size(width: u32, height: u32) -> Result<(), ApiError> {
    let (w, h) = (u64::from(width), u64::from(height));
    if width == 0 || height == 0 || (w + 128) * (h + 128) >= (i32::MAX / 8) as u64 {
        return Err(ApiError::bad_request(format!(
            "image size {width}x{height} is outside what FFmpeg can process"
        )));
    }
    Ok(())
}

/// An RGB24 frame, or an error where ffmpeg-next would hand back a frame without a buffer
/// (its `data_mut` would then build a slice from a null pointer).
fn alloc_rgb(width: u32, height: u32) -> Result<frame::Video, ApiError> {
    check_size(width, height)?;
    let f = frame::Video::new(Pixel::RGB24, width, height);
    // SAFETY: `f` owns a valid AVFrame; only its first data pointer is read.
    if unsafe { (*f.as_ptr()).data[0].is_null() } {
        return Err(ApiError::internal(format!(
            "could not allocate a {width}x{height} frame"
        )));
    }
    Ok(f)
}

fn to_frame(img: &Rgb) -> Result<frame::Video, ApiError> {
    let mut f = alloc_rgb(img.width, img.height)?;
    let stride = f.stride(0);
    let row = img.width as usize * 3;
    let data = f.data_mut(0);
    for (y, src) in img.data.chunks_exact(row).enumerate() {
        data[y * stride..y * stride + row].copy_from_slice(src);
    }
    f.set_pts(Some(0));
    Ok(f)
}

fn from_frame(f: &frame::Video) -> Result<Rgb, ApiError> {
    if f.format() != Pixel::RGB24 {
        return Err(ApiError::internal(format!(
            "FFmpeg produced {:?} instead of RGB24",
            f.format()
        )));
    }
    let (w, h) = (f.width(), f.height());
    let stride = f.stride(0);
    let row = w as usize * 3;
    let src = f.data(0);
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let line = src
            .get(y * stride..y * stride + row)
            .ok_or_else(|| ApiError::internal("FFmpeg frame is shorter than its size"))?;
        data.extend_from_slice(line);
    }
    Ok(Rgb {
        width: w,
        height: h,
        data,
    })
}

/// The image-to-image "model": a libavfilter graph of hue, eq and seeded noise whose strength
/// follows `strength`, so the output depends on the seed and is the same for the same seed.
/// `out_size` differs from the input's only under the wrong-size fault.
pub fn filter_image(
    img: &Rgb,
    prompt: &str,
    seed: u64,
    strength: f64,
    out_size: (u32, u32),
) -> Result<Rgb, ApiError> {
    ffmpeg_ready()?;
    check_size(img.width, img.height)?;
    let strength = strength.clamp(0.0, 1.0);
    // noise's all_seed is an int; hue swings up to a half turn at full strength.
    let noise_seed = seed % (1 << 31);
    let hue = ((fnv1a(prompt.as_bytes()) ^ seed) % 180) as f64 * strength;
    let saturation = 1.0 + 0.5 * strength;
    let contrast = 1.0 + 0.3 * strength;
    let noise = strength * 30.0;
    let (ow, oh) = out_size;
    let scale = if (ow, oh) != (img.width, img.height) {
        format!(",scale={ow}x{oh}:flags=lanczos")
    } else {
        String::new()
    };
    let spec = format!(
        "format=yuv444p,hue=h={hue:.3}:s={saturation:.3},eq=contrast={contrast:.3},\
         noise=all_seed={noise_seed}:alls={noise:.3}:allf=u{scale},format=rgb24"
    );
    let args = format!(
        "video_size={}x{}:pix_fmt=rgb24:time_base=1/25:pixel_aspect=1/1",
        img.width, img.height
    );
    let mut graph = filter_graph::chain(&args, &spec).map_err(ApiError::internal)?;
    let input = to_frame(img)?;
    let mut src = graph
        .get(filter_graph::SOURCE)
        .ok_or_else(|| ApiError::internal("filter graph lost its source"))?;
    src.source().add(&input).map_err(ff("feeding the frame"))?;
    src.source().flush().map_err(ff("ending the input"))?;
    let mut out = frame::Video::empty();
    graph
        .get(filter_graph::SINK)
        .ok_or_else(|| ApiError::internal("filter graph lost its sink"))?
        .sink()
        .frame(&mut out)
        .map_err(ff("filtering"))?;
    from_frame(&out)
}

/// Scales with libswscale's Lanczos to `out_size`.
pub fn upscale(img: &Rgb, out_size: (u32, u32)) -> Result<Rgb, ApiError> {
    ffmpeg_ready()?;
    let (ow, oh) = out_size;
    // Allocated (and size-checked) before the scaler, whose setup for a huge size is costly.
    let mut out = alloc_rgb(ow, oh)?;
    let mut scaler = scaling::Context::get(
        Pixel::RGB24,
        img.width,
        img.height,
        Pixel::RGB24,
        ow,
        oh,
        scaling::Flags::LANCZOS,
    )
    .map_err(ff("creating the Lanczos scaler"))?;
    let input = to_frame(img)?;
    scaler.run(&input, &mut out).map_err(ff("scaling"))?;
    from_frame(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{encode_png, render};

    fn sample(w: u32, h: u32) -> Rgb {
        Rgb {
            width: w,
            height: h,
            data: render(3, w, h, "x"),
        }
    }

    #[test]
    fn decode_checks_size_before_decoding() {
        let img = sample(40, 30);
        let png = encode_png(&img.data, 40, 30).unwrap();
        assert_eq!(decode(&png, 1200, "max_pixels").unwrap(), img);
        let e = decode(&png, 1199, "max_pixels").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            decode(b"nope", 1 << 20, "max_pixels")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            decode(&png[..60], 1 << 20, "max_pixels")
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }

    #[test]
    fn filter_is_seeded_and_keeps_size() {
        let img = sample(33, 17);
        let a = filter_image(&img, "p", 1, 0.8, (33, 17)).unwrap();
        assert_eq!((a.width, a.height, a.data.len()), (33, 17, 33 * 17 * 3));
        assert_eq!(a, filter_image(&img, "p", 1, 0.8, (33, 17)).unwrap());
        assert_ne!(
            a.data,
            filter_image(&img, "p", 2, 0.8, (33, 17)).unwrap().data
        );
        let half = filter_image(&img, "p", 1, 0.8, (16, 8)).unwrap();
        assert_eq!((half.width, half.height), (16, 8));
    }

    #[test]
    fn sizes_ffmpeg_cannot_take_are_refused_not_crashed() {
        let wide = Rgb {
            width: 1 << 24,
            height: 1,
            data: vec![0; 3 << 24],
        };
        assert_eq!(
            upscale(&wide, (1 << 26, 4)).unwrap_err().status.as_u16(),
            400
        );
        assert_eq!(
            filter_image(&wide, "", 1, 0.5, (1 << 24, 1))
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }

    #[test]
    fn upscale_is_four_times() {
        let out = upscale(&sample(5, 3), (20, 12)).unwrap();
        assert_eq!(
            (out.width, out.height, out.data.len()),
            (20, 12, 20 * 12 * 3)
        );
    }
}
