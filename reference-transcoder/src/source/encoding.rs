//! The source's encoders: libx264 with closed GOPs of exactly the configured length (no scene
//! cuts), and the AAC sine tone that stands in for audio.

use ffmpeg_next::codec::{self, Flags as CodecFlags};
use ffmpeg_next::format::{Pixel, Sample, sample::Type as SampleType};
use ffmpeg_next::{ChannelLayout, Dictionary, Packet, Rational, filter, frame};

use super::packaging::SourcePacket;
use super::{AUDIO_RATE, SourceConfig, SourceError, TICK_BASE, TICKS_PER_SECOND, ff};
use crate::encode::receive_packet;

/// libx264 for `config`, with closed GOPs of exactly `gop_frames` and no scene cuts.
pub(super) fn open_x264(
    config: &SourceConfig,
    gop_frames: u32,
) -> Result<ffmpeg_next::encoder::Video, SourceError> {
    let codec = ffmpeg_next::encoder::find_by_name("libx264")
        .ok_or(SourceError::EncoderMissing("libx264"))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ff("creating libx264"))?;
    enc.set_width(config.width);
    enc.set_height(config.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(Rational(config.fps_den as i32, config.fps_num as i32));
    enc.set_frame_rate(Some(Rational(config.fps_num as i32, config.fps_den as i32)));
    enc.set_gop(gop_frames);
    let pixels_per_sec =
        config.width as f64 * config.height as f64 * config.fps_num as f64 / config.fps_den as f64;
    let bitrate = config
        .video_bitrate
        .unwrap_or((pixels_per_sec * 0.15) as u64);
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize * 3 / 2);
    let mut opts = Dictionary::new();
    opts.set("preset", &config.x264_preset);
    opts.set(
        "x264-params",
        &format!("keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0:open-gop=0"),
    );
    opts.set("forced-idr", "1");
    enc.open_with(opts).map_err(ff("opening libx264"))
}

/// Encodes `secs` of sine tone; returns packets on the 90 kHz timeline, the
/// AudioSpecificConfig and the channel count.
pub(super) fn encode_tone(
    config: &SourceConfig,
    secs: f64,
) -> Result<(Vec<SourcePacket>, Vec<u8>, u32), SourceError> {
    let mut graph = filter::Graph::new();
    let sink =
        filter::find("abuffersink").ok_or(SourceError::EncoderMissing("abuffersink filter"))?;
    graph
        .add(&sink, "out", "")
        .map_err(ff("building the audio graph"))?;
    let spec = format!(
        "sine=frequency={}:sample_rate={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=mono",
        config.tone_hz
    );
    graph
        .input("out", 0)
        .and_then(|p| p.parse(&spec))
        .map_err(ff("parsing the audio graph"))?;
    graph
        .validate()
        .map_err(ff("configuring the audio graph"))?;
    let codec =
        ffmpeg_next::encoder::find(codec::Id::AAC).ok_or(SourceError::EncoderMissing("aac"))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(ff("creating aac"))?;
    enc.set_rate(AUDIO_RATE as i32);
    enc.set_channel_layout(ChannelLayout::MONO);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_time_base(Rational(1, AUDIO_RATE as i32));
    enc.set_bit_rate(96_000);
    enc.set_flags(CodecFlags::GLOBAL_HEADER);
    let mut encoder = enc.open().map_err(ff("opening aac"))?;
    let frame_size = encoder.frame_size().max(1024);
    graph
        .get("out")
        .expect("sink added above")
        .sink()
        .set_frame_size(frame_size);
    let asc = unsafe {
        let ctx = encoder.as_ptr();
        std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size.max(0) as usize).to_vec()
    };
    let total_samples = (secs * AUDIO_RATE as f64).round() as i64;
    let mut out = Vec::new();
    let mut frame = frame::Audio::empty();
    let mut packet = Packet::empty();
    let tb = Rational(1, AUDIO_RATE as i32);
    let mut drain = |encoder: &mut ffmpeg_next::encoder::Audio,
                     out: &mut Vec<SourcePacket>|
     -> Result<(), SourceError> {
        while receive_packet(encoder, &mut packet).map_err(ff("encoding audio"))? {
            let duration = packet.duration();
            packet.rescale_ts(tb, TICK_BASE);
            out.push(SourcePacket {
                pts: packet.pts().unwrap_or(0),
                dts: packet.dts().unwrap_or(0),
                duration: duration * TICKS_PER_SECOND / AUDIO_RATE as i64,
                is_key: true,
                data: packet.data().unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    };
    let mut samples = 0i64;
    while samples < total_samples {
        graph
            .get("out")
            .expect("sink")
            .sink()
            .frame(&mut frame)
            .map_err(ff("generating the tone"))?;
        frame.set_pts(Some(samples));
        samples += frame.samples() as i64;
        encoder.send_frame(&frame).map_err(ff("encoding audio"))?;
        drain(&mut encoder, &mut out)?;
    }
    encoder.send_eof().map_err(ff("flushing aac"))?;
    drain(&mut encoder, &mut out)?;
    Ok((out, asc, 1))
}
