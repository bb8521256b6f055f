//! `live-video-to-video`: ai-runner's live route. The request names a Trickle channel to read
//! (MPEG-TS segments of the input video) and one to write; the worker answers at once and runs
//! the job in the background, as ai-runner does.
//!
//! The job's "model" is an FFmpeg filter graph: `hue` rotates the chroma (luma is untouched, so
//! the frame stamps drawn by `reference_transcoder::stamp` in the bottom band still read back)
//! and `fps` re-times the video to the configured rate. One graph and one libx264 encoder live
//! as long as the job, so output timestamps and the frame rate stay continuous across
//! segments; each input segment gives one output segment (a standalone MPEG-TS starting with an
//! IDR), published under the same order.
//!
//! Bounds: one input segment (at most [`MAX_SEGMENT_BYTES`]) is held at a time on each side of
//! the transcoder, frames are decoded one at a time, and a job whose input stalls for the
//! configured idle timeout, or cannot be decoded, ends with a warning and closes its output.

use std::hash::BuildHasher;
use std::time::Duration;

use bytes::Bytes;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{Dictionary, Packet, Rational, Rescale, codec, filter, frame, picture};
use reference_transcoder::decode::{
    DecodeOptions, DecoderThreads, Demuxer, ReadErrors, VideoDecoder,
};
use reference_transcoder::encode::receive_packet;
use reference_transcoder::memio::{MemoryMuxer, StreamSpec, open_container};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use trickle::{Publisher, Subscriber, TrickleError};

use crate::config::LiveConfig;
use crate::error::ApiError;
use crate::filter_graph;

/// Largest input segment a job reads (and so the most it holds per segment).
pub const MAX_SEGMENT_BYTES: usize = 32 * 1024 * 1024;
/// ai-runner's subscriber starts at seq -2: the segment being written now.
const START_SEQ: i64 = -2;
/// MPEG-TS timestamps are on a 90 kHz clock.
const TS_TIME_BASE: Rational = Rational(1, 90_000);
/// Output segments are published in pieces of this size, so a subscriber starts early.
const PUBLISH_CHUNK: usize = 64 * 1024;

/// ai-runner's `LiveVideoToVideoParams`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveParams {
    pub subscribe_url: String,
    pub publish_url: String,
    pub model_id: String,
    #[serde(default)]
    pub control_url: Option<String>,
    #[serde(default)]
    pub events_url: Option<String>,
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub gateway_request_id: Option<String>,
    #[serde(default)]
    pub manifest_id: Option<String>,
    #[serde(default)]
    pub stream_id: Option<String>,
}

/// ai-runner's `LiveVideoToVideoResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct LiveResponse {
    pub subscribe_url: String,
    pub publish_url: String,
    pub control_url: String,
    pub events_url: String,
    pub request_id: String,
    pub manifest_id: String,
}

/// Parses and checks a request body; `live_model` is the model id this worker serves.
pub(crate) fn parse(body: &[u8], live_model: &str) -> Result<LiveParams, ApiError> {
    let params: LiveParams = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable(format!("invalid live-video-to-video request: {e}"))
        } else {
            ApiError::bad_request(format!("request body is not valid JSON: {e}"))
        }
    })?;
    for (field, url) in [
        ("subscribe_url", &params.subscribe_url),
        ("publish_url", &params.publish_url),
    ] {
        check_url(field, url)?;
    }
    let model = params.model_id.trim();
    if model != live_model {
        return Err(ApiError::bad_request(format!(
            "pipeline live-video-to-video is configured with model {live_model:?} but called with {model:?}"
        )));
    }
    Ok(params)
}

fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| ApiError::bad_request(format!("{field} is not a URL ({e}): {url:?}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::bad_request(format!(
            "{field} must be an http(s) URL with a host, got {url:?}"
        )));
    }
    Ok(())
}

/// A random request id, as ai-runner hands out.
pub(crate) fn request_id() -> String {
    let state = std::collections::hash_map::RandomState::new();
    format!(
        "{:016x}{:08x}",
        state.hash_one(std::time::SystemTime::now()),
        state.hash_one(std::process::id()) as u32
    )
}

/// What one job needs to run.
pub(crate) struct LiveJob {
    pub request_id: String,
    pub subscribe_url: String,
    pub publish_url: String,
    pub config: LiveConfig,
    pub max_pixels: u64,
}

/// Runs a job to its end: input ended, stalled or undecodable, output refused, or the worker
/// stopping. Holds `permit` (one unit of the worker's capacity) until the transcoder is done.
pub(crate) async fn run(
    job: LiveJob,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let id = job.request_id.clone();
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(request_id = %id, error = %e, "live job could not build an HTTP client");
            return;
        }
    };
    let idle = Duration::from_secs_f64(job.config.idle_timeout_secs);
    // One segment in flight on each side bounds the memory a job holds.
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(1);
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1);
    let settings = Settings {
        fps: job.config.output_fps,
        hue: job.config.hue_degrees,
        max_pixels: job.max_pixels,
    };
    let transcoder_id = id.clone();
    let transcoder = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if let Err(e) = transcode(in_rx, out_tx, &settings) {
            tracing::warn!(request_id = %transcoder_id, error = %e, "live job's input could not be processed; ending it");
        }
    });
    let read = subscribe(&id, &job.subscribe_url, client.clone(), idle, in_tx);
    let write = publish(&id, &job.publish_url, client.clone(), out_rx);
    // The output side ends last on a normal end; when it ends first (the transcoder gave up or
    // the output refused a segment) the job is over, whatever the input still does.
    let work = async {
        tokio::pin!(read, write);
        tokio::select! {
            _ = &mut read => write.await,
            _ = &mut write => {}
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop.wait_for(|stop| *stop) => {
            tracing::info!(request_id = %id, "worker stopping: ending live job");
        }
    }
    // Both channels to the transcoder are gone now, so it returns after at most its current
    // segment; waiting for it first frees the capacity before anyone sees the output end.
    let _ = transcoder.await;
    // Whatever ended the job, the output channel ends too (DELETE holds no per-publisher state).
    if let Err(e) = Publisher::new(&job.publish_url, client).close().await {
        tracing::warn!(request_id = %id, error = %e, "live job could not close its output channel");
    }
    tracing::info!(request_id = %id, "live job ended");
}

/// Feeds input segments to the transcoder until the input ends, stalls or fails.
async fn subscribe(
    id: &str,
    url: &str,
    client: reqwest::Client,
    idle: Duration,
    to_transcoder: mpsc::Sender<Bytes>,
) {
    let mut subscriber = Subscriber::new(url, client, START_SEQ);
    loop {
        let segment = match subscriber.next_segment(idle).await {
            Ok(Some(segment)) => segment,
            Ok(None) => {
                tracing::info!(request_id = %id, "live job's input ended");
                return;
            }
            Err(e) => {
                warn_input(id, url, &e);
                return;
            }
        };
        let seq = segment.seq();
        let data = match tokio::time::timeout(idle, segment.read_all(MAX_SEGMENT_BYTES)).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => {
                warn_input(id, url, &e);
                return;
            }
            Err(_) => {
                warn_input(id, url, &TrickleError::Timeout);
                return;
            }
        };
        tracing::debug!(request_id = %id, seq, bytes = data.len(), "live job read a segment");
        if to_transcoder.send(data).await.is_err() {
            // The transcoder gave up (it says why).
            return;
        }
    }
}

fn warn_input(id: &str, url: &str, error: &TrickleError) {
    tracing::warn!(request_id = %id, %url, %error, "live job's input failed or stalled; ending it");
}

/// Publishes each output segment as it comes; returns when the transcoder is done or the
/// output refuses a segment.
async fn publish(
    id: &str,
    url: &str,
    client: reqwest::Client,
    mut from_transcoder: mpsc::Receiver<Vec<u8>>,
) {
    let mut publisher = Publisher::new(url, client);
    while let Some(segment) = from_transcoder.recv().await {
        let data = Bytes::from(segment);
        let published = async {
            let mut writer = publisher.next_segment().await?;
            let mut offset = 0;
            while offset < data.len() {
                let end = (offset + PUBLISH_CHUNK).min(data.len());
                writer.write(data.slice(offset..end)).await?;
                offset = end;
            }
            writer.finish().await
        };
        if let Err(e) = published.await {
            tracing::warn!(request_id = %id, %url, error = %e, "live job's output refused a segment; ending it");
            return;
        }
    }
}

struct Settings {
    fps: u32,
    hue: f64,
    max_pixels: u64,
}

/// The blocking half: decode each input segment, filter, encode, mux. Runs until the input
/// channel closes or the output side goes away.
fn transcode(
    mut input: mpsc::Receiver<Bytes>,
    output: mpsc::Sender<Vec<u8>>,
    settings: &Settings,
) -> Result<(), String> {
    reference_transcoder::init_ffmpeg();
    let mut pipeline: Option<Pipeline> = None;
    let mut frame = frame::Video::empty();
    while let Some(data) = input.blocking_recv() {
        let memory = open_container(data.to_vec()).map_err(|e| e.to_string())?;
        drop(data);
        let mut decoder = VideoDecoder::open(
            Demuxer::Memory(memory),
            DecodeOptions {
                threads: DecoderThreads::Single,
                read_errors: ReadErrors::EndInput,
            },
        )
        .map_err(|e| format!("input segment: {e}"))?;
        let mut packets = Vec::new();
        let mut first_of_segment = true;
        while decoder
            .next_frame(&mut frame)
            .map_err(|e| format!("input segment: {e}"))?
        {
            let stage = match &mut pipeline {
                Some(p) => p,
                None => pipeline.insert(Pipeline::open(&frame, decoder.time_base, settings)?),
            };
            stage.push(
                &frame,
                decoder.time_base,
                &mut first_of_segment,
                &mut packets,
            )?;
        }
        let Some(stage) = pipeline.as_ref() else {
            return Err("the first input segment has no video frames".into());
        };
        let ts = stage.mux(&mut packets)?;
        if output.blocking_send(ts).is_err() {
            return Ok(());
        }
    }
    // Frames still held by the fps filter (at most a frame or two) have no input segment left
    // to travel with: one output segment per input segment is the contract.
    Ok(())
}

/// The job's filter graph and encoder, opened on the first frame.
struct Pipeline {
    graph: filter::Graph,
    encoder: ffmpeg_next::encoder::Video,
    width: u32,
    height: u32,
    format: Pixel,
    fps: u32,
    /// Next output frame's number, which is its PTS in 1/fps.
    next_out: i64,
    /// Last input PTS fed, in the graph's input time base, and the shift applied to make
    /// timestamps continuous when an input restarts or jumps.
    last_in: Option<i64>,
    shift: i64,
    in_time_base: Rational,
    filtered: frame::Video,
}

fn ff(stage: &'static str) -> impl Fn(ffmpeg_next::Error) -> String {
    move |e| format!("FFmpeg failed {stage}: {e}")
}

impl Pipeline {
    fn open(first: &frame::Video, time_base: Rational, s: &Settings) -> Result<Pipeline, String> {
        let (width, height) = (first.width(), first.height());
        if width == 0 || height == 0 || u64::from(width) * u64::from(height) > s.max_pixels {
            return Err(format!(
                "input frames are {width}x{height}, outside this worker's max_pixels {}",
                s.max_pixels
            ));
        }
        // x264 with 4:2:0 needs even dimensions.
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "input frames are {width}x{height}: odd sizes are not supported"
            ));
        }
        let in_time_base = if time_base.numerator() > 0 && time_base.denominator() > 0 {
            time_base
        } else {
            TS_TIME_BASE
        };
        let pix_fmt: ffmpeg_next::ffi::AVPixelFormat = first.format().into();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            pix_fmt as i32,
            in_time_base.numerator(),
            in_time_base.denominator()
        );
        let spec = format!("hue=h={:.3},fps={},format=yuv420p", s.hue, s.fps);
        let graph = filter_graph::chain(&args, &spec)?;

        let codec =
            ffmpeg_next::encoder::find_by_name("libx264").ok_or("FFmpeg has no libx264 encoder")?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(ff("creating libx264"))?;
        let fps = s.fps as i32;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(Rational(1, fps));
        enc.set_frame_rate(Some(Rational(fps, 1)));
        // Key frames only where a segment starts (forced below); the cap is a safety net.
        let keyint = (s.fps * 10).max(1);
        enc.set_gop(keyint);
        let mut opts = Dictionary::new();
        opts.set("preset", "ultrafast");
        opts.set("tune", "zerolatency");
        opts.set("crf", "20");
        opts.set("threads", "1");
        opts.set("forced-idr", "1");
        opts.set(
            "x264-params",
            &format!("keyint={keyint}:scenecut=0:open-gop=0"),
        );
        let encoder = enc.open_with(opts).map_err(ff("opening libx264"))?;
        Ok(Pipeline {
            graph,
            encoder,
            width,
            height,
            format: first.format(),
            fps: s.fps,
            next_out: 0,
            last_in: None,
            shift: 0,
            in_time_base,
            filtered: frame::Video::empty(),
        })
    }

    /// Filters and encodes one decoded frame; packets go to `packets`.
    fn push(
        &mut self,
        input: &frame::Video,
        time_base: Rational,
        first_of_segment: &mut bool,
        packets: &mut Vec<Packet>,
    ) -> Result<(), String> {
        if (input.width(), input.height(), input.format()) != (self.width, self.height, self.format)
        {
            return Err(format!(
                "input changed from {}x{} {:?} to {}x{} {:?} mid-job",
                self.width,
                self.height,
                self.format,
                input.width(),
                input.height(),
                input.format()
            ));
        }
        let raw = input.timestamp().or(input.pts()).unwrap_or(0);
        let pts = if time_base == self.in_time_base {
            raw
        } else {
            raw.rescale(time_base, self.in_time_base)
        };
        // A new segment may restart or jump its clock (a reconnecting gateway, TS wrap-around):
        // continue one frame after the last instead, so `fps` neither floods nor stalls.
        let one_frame = i64::from(self.in_time_base.denominator())
            / (i64::from(self.in_time_base.numerator()).max(1) * i64::from(self.fps).max(1));
        let ten_seconds = i64::from(self.in_time_base.denominator()) * 10
            / i64::from(self.in_time_base.numerator()).max(1);
        let mut shifted = pts + self.shift;
        if let Some(last) = self.last_in
            && (shifted <= last || shifted > last + ten_seconds)
        {
            self.shift = last + one_frame.max(1) - pts;
            shifted = last + one_frame.max(1);
        }
        self.last_in = Some(shifted);
        let mut copy = input.clone();
        copy.set_pts(Some(shifted));
        self.graph
            .get(filter_graph::SOURCE)
            .ok_or("filter graph lost its source")?
            .source()
            .add(&copy)
            .map_err(ff("feeding the filter graph"))?;
        loop {
            let got = self
                .graph
                .get(filter_graph::SINK)
                .ok_or("filter graph lost its sink")?
                .sink()
                .frame(&mut self.filtered);
            match got {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno }) if errno == EAGAIN => break,
                Err(e) => return Err(ff("filtering")(e)),
            }
            self.filtered.set_pts(Some(self.next_out));
            self.next_out += 1;
            self.filtered.set_kind(if *first_of_segment {
                picture::Type::I
            } else {
                picture::Type::None
            });
            *first_of_segment = false;
            self.encoder
                .send_frame(&self.filtered)
                .map_err(ff("encoding"))?;
            let mut packet = Packet::empty();
            while receive_packet(&mut self.encoder, &mut packet).map_err(ff("encoding"))? {
                packets.push(std::mem::replace(&mut packet, Packet::empty()));
            }
        }
        Ok(())
    }

    /// One standalone MPEG-TS segment of `packets` (encoder time base 1/fps).
    fn mux(&self, packets: &mut Vec<Packet>) -> Result<Vec<u8>, String> {
        let mut mux = MemoryMuxer::new("mpegts").map_err(ff("creating the muxer"))?;
        let index = mux
            .add_stream(&StreamSpec::H264 {
                width: self.width,
                height: self.height,
                time_base: TS_TIME_BASE,
            })
            .map_err(ff("adding the video stream"))?;
        mux.write_header().map_err(ff("writing the TS header"))?;
        let from = Rational(1, self.fps as i32);
        for mut packet in packets.drain(..) {
            mux.write(&mut packet, index, from).map_err(ff("muxing"))?;
        }
        mux.finish().map_err(ff("finishing the TS segment"))
    }
}

/// Starts `job` in the background, holding `permit` for its life.
pub(crate) fn spawn(job: LiveJob, permit: OwnedSemaphorePermit, stop: watch::Receiver<bool>) {
    tokio::spawn(run(job, permit, stop));
}

/// Used by the server to build the answer.
pub(crate) fn response(params: &LiveParams, request_id: &str) -> LiveResponse {
    LiveResponse {
        subscribe_url: params.subscribe_url.clone(),
        publish_url: params.publish_url.clone(),
        control_url: params.control_url.clone().unwrap_or_default(),
        events_url: params.events_url.clone().unwrap_or_default(),
        request_id: request_id.to_string(),
        manifest_id: params.manifest_id.clone().unwrap_or_default(),
    }
}
