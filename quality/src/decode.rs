//! Decoding any container FFmpeg reads into frames, on a thread per input.
//!
//! Frames come from `reference-transcoder`'s one [`VideoDecoder`] with the codec's default
//! threads. Each input is demuxed and decoded on its own thread and handed over through a
//! bounded channel, so decoding both inputs overlaps with scoring while only a few decoded
//! frames per input exist at any moment. Stamps are read on the decoding thread too, keeping
//! that work off the scoring thread. A corrupt packet is counted and skipped, and demuxer errors
//! are skipped while the demuxer resynchronises (up to `MAX_CONSECUTIVE_READ_ERRORS` in a row),
//! so a damaged segment still yields the frames that can be decoded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ffmpeg::frame::Video;
use ffmpeg_next as ffmpeg;
use reference_transcoder::decode::{
    DecodeOptions, DecoderError, DecoderThreads, Demuxer, ReadError, ReadErrors, VideoDecoder,
};

use crate::QualityError;
use crate::stamp::{Stamp, StampReader};

/// How many consecutive demuxer errors (other than end of file) mean the input is unreadable.
const MAX_CONSECUTIVE_READ_ERRORS: u32 = 64;

/// Frames decoded ahead of the scorer per input: enough to keep both decoders busy, small
/// enough to bound memory (a 1080p frame is ~3 MB).
const DECODE_AHEAD: usize = 4;

/// Where a video comes from: a file in any container FFmpeg reads, or bytes already in memory
/// (a downloaded segment), which are demuxed without touching the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaInput {
    File(PathBuf),
    Memory {
        /// Names the input in reports and errors (e.g. `"segment 12 of P360p30fps16x9"`).
        label: String,
        data: Vec<u8>,
    },
}

impl MediaInput {
    /// The path, or the label of an in-memory input, as reports and errors show it.
    pub fn label(&self) -> PathBuf {
        match self {
            MediaInput::File(path) => path.clone(),
            MediaInput::Memory { label, .. } => PathBuf::from(label),
        }
    }
}

impl From<&Path> for MediaInput {
    fn from(path: &Path) -> Self {
        MediaInput::File(path.to_owned())
    }
}

/// How scored inputs are decoded.
const OPTIONS: DecodeOptions = DecodeOptions {
    threads: DecoderThreads::CodecDefault,
    read_errors: ReadErrors::Skip {
        max_consecutive: MAX_CONSECUTIVE_READ_ERRORS,
    },
};

/// A demuxer plus decoder for the best video stream of one input.
pub struct VideoReader {
    path: PathBuf,
    decoder: VideoDecoder,
}

impl VideoReader {
    pub fn open(media: MediaInput) -> Result<Self, QualityError> {
        let path = media.label();
        let open_error = |source| QualityError::Open {
            path: path.clone(),
            source,
        };
        ffmpeg::init().map_err(open_error)?;
        let demuxer = match media {
            MediaInput::File(file) => {
                Demuxer::File(ffmpeg::format::input(&file).map_err(open_error)?)
            }
            MediaInput::Memory { data, .. } => Demuxer::Memory(
                reference_transcoder::memio::MemoryInput::open(data, None).map_err(open_error)?,
            ),
        };
        let decoder = VideoDecoder::open(demuxer, OPTIONS).map_err(|e| match e {
            DecoderError::NoVideoStream => QualityError::NoVideoStream { path: path.clone() },
            DecoderError::UnsupportedCodec { .. } => QualityError::Decoder {
                path: path.clone(),
                source: ffmpeg::Error::DecoderNotFound,
            },
            DecoderError::Parameters { source, .. } | DecoderError::Open { source, .. } => {
                QualityError::Decoder {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        Ok(VideoReader { path, decoder })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets the decoder rejected and frames it failed to produce.
    pub fn decode_errors(&self) -> u64 {
        self.decoder.decode_errors
    }

    /// The next frame in presentation order, or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<Video>, QualityError> {
        let mut frame = Video::empty();
        match self.decoder.next_frame(&mut frame) {
            Ok(true) => Ok(Some(frame)),
            Ok(false) => Ok(None),
            Err(ReadError(source)) => Err(QualityError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// A decoded frame, its stamp (when a reader was given and found one) and its position in the
/// file's presentation order.
pub struct DecodedFrame {
    pub frame: Video,
    pub stamp: Option<Stamp>,
    pub order: u64,
}

/// What a decoding thread reports when its input is exhausted.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeStats {
    pub decode_errors: u64,
}

/// Frames of one input decoded on a background thread.
pub struct FrameSource {
    path: PathBuf,
    receiver: Option<Receiver<Result<DecodedFrame, QualityError>>>,
    thread: Option<JoinHandle<DecodeStats>>,
}

impl FrameSource {
    /// Opens `media` (errors surface here, synchronously) and starts decoding it.
    pub fn spawn(
        media: MediaInput,
        stamps: Option<Arc<dyn StampReader>>,
    ) -> Result<Self, QualityError> {
        let path = media.label();
        let path = path.as_path();
        let reader = VideoReader::open(media)?;
        let (sender, receiver) = sync_channel(DECODE_AHEAD);
        let thread = std::thread::Builder::new()
            .name("quality-decode".into())
            .spawn(move || decode_loop(reader, stamps, sender))
            .map_err(|_| QualityError::DecoderThread {
                path: path.to_owned(),
            })?;
        Ok(FrameSource {
            path: path.to_owned(),
            receiver: Some(receiver),
            thread: Some(thread),
        })
    }

    /// The next decoded frame, `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<DecodedFrame>, QualityError> {
        match self.receiver.as_ref().map(Receiver::recv) {
            Some(Ok(item)) => item.map(Some),
            _ => Ok(None),
        }
    }

    /// Stops decoding (if not finished) and returns what the thread counted.
    pub fn finish(mut self) -> Result<DecodeStats, QualityError> {
        self.receiver = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(stats)) => Ok(stats),
            _ => Err(QualityError::DecoderThread {
                path: self.path.clone(),
            }),
        }
    }
}

impl Drop for FrameSource {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's next send fail, so it exits promptly.
        self.receiver = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn decode_loop(
    mut reader: VideoReader,
    stamps: Option<Arc<dyn StampReader>>,
    sender: SyncSender<Result<DecodedFrame, QualityError>>,
) -> DecodeStats {
    let mut order = 0;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                let stamp = stamps.as_ref().and_then(|reader| reader.read(&frame));
                let item = DecodedFrame {
                    frame,
                    stamp,
                    order,
                };
                order += 1;
                if sender.send(Ok(item)).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                let _ = sender.send(Err(error));
                break;
            }
        }
    }
    DecodeStats {
        decode_errors: reader.decode_errors(),
    }
}
