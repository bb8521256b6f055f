//! The one video decoder of the workspace: every reader of media (the probes' segment checks,
//! the quality scorer, [`probe`](crate::probe)) demuxes and decodes through [`VideoDecoder`].
//!
//! A decoder takes an opened [`Demuxer`] (a file, or bytes demuxed in memory without touching
//! the file system), decodes its best video stream and hands out frames one at a time in
//! presentation order, so memory stays bounded by one frame plus the decoder's references
//! whatever the input's length. The stream's facts (container, codec, time base, declared
//! rate, audio codec) are read once at opening.
//!
//! Callers differ only in what they choose in [`DecodeOptions`]: decoder threads (a probe
//! machine decodes many segments at once and wants one thread each; a one-off probe of a long
//! input wants frame threads) and what a demuxer error costs (a downloaded segment ends there,
//! with what was read; a scorer's input skips it, up to a bound, as the demuxer resynchronises).
//! A packet the decoder rejects and a frame it fails to produce are counted in
//! [`VideoDecoder::decode_errors`] and skipped, so a damaged input still yields every frame
//! that can be decoded.

use ffmpeg_next::format::context::Input;
use ffmpeg_next::{Packet, Rational, codec, frame, media};

use crate::memio::MemoryInput;

/// The demuxer of a file or of an in-memory buffer.
pub enum Demuxer {
    File(Input),
    Memory(MemoryInput),
}

impl Demuxer {
    pub fn input(&mut self) -> &mut Input {
        match self {
            Demuxer::File(input) => input,
            Demuxer::Memory(memory) => memory.input(),
        }
    }
}

/// How many threads decode one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderThreads {
    /// Whatever the codec context defaults to.
    CodecDefault,
    /// One thread: many inputs decode at once, so per-input threads would only add start-up cost.
    Single,
    /// Frame threads, as many as FFmpeg picks for the machine. Frames decoded by other threads
    /// can be waiting behind a failed one, so after a decode error the decoder is emptied before
    /// the next packet is sent.
    Frame,
}

/// What a demuxer error (other than the end of the input) costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErrors {
    /// It is counted as a decode error and ends the input: the frames still in the decoder are
    /// drained, and what was read so far is what there is.
    EndInput,
    /// It is skipped while the demuxer resynchronises; `max_consecutive` errors in a row fail
    /// the decode with a [`ReadError`].
    Skip { max_consecutive: u32 },
}

/// What a caller chooses about decoding one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    pub threads: DecoderThreads,
    pub read_errors: ReadErrors,
}

/// Why an input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("no video stream")]
    NoVideoStream,
    #[error("no decoder for video codec {codec}")]
    UnsupportedCodec { codec: String },
    #[error("cannot read the {codec} stream parameters: {source}")]
    Parameters {
        codec: String,
        source: ffmpeg_next::Error,
    },
    #[error("cannot open the {codec} decoder: {source}")]
    Open {
        codec: String,
        source: ffmpeg_next::Error,
    },
}

/// The demuxer failed [`ReadErrors::Skip`]'s `max_consecutive` times in a row.
#[derive(Debug, thiserror::Error)]
#[error("the input cannot be read: {0}")]
pub struct ReadError(pub ffmpeg_next::Error);

/// Where the decoder is in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading packets; `receiving` while the last packet's frames are being collected.
    Reading {
        receiving: bool,
    },
    /// The input ended and the decoder gives back the frames it still holds.
    Draining,
    Done,
}

/// A demuxer plus a decoder for the best video stream of one input.
pub struct VideoDecoder {
    demuxer: Demuxer,
    decoder: ffmpeg_next::decoder::Video,
    stream_index: usize,
    options: DecodeOptions,
    phase: Phase,
    consecutive_read_errors: u32,
    /// FFmpeg's demuxer name (`mpegts`, `flv`, `mov,mp4,m4a,3gp,3g2,mj2`, ...).
    pub container: String,
    /// The video decoder's name (`h264`, ...).
    pub codec: String,
    /// The video stream's time base: a frame's PTS times this is seconds.
    pub time_base: Rational,
    /// The stream's declared average frame rate (else its base rate), if any.
    pub fps: Option<Rational>,
    pub audio_codec: Option<String>,
    /// Packets the decoder rejected, frames it failed to produce and, with
    /// [`ReadErrors::EndInput`], the demuxer error that ended the input.
    pub decode_errors: u64,
}

impl VideoDecoder {
    /// Finds the best video stream of `demuxer` and opens its decoder.
    pub fn open(mut demuxer: Demuxer, options: DecodeOptions) -> Result<Self, DecoderError> {
        let input = demuxer.input();
        let container = input.format().name().to_string();
        let (stream_index, time_base, fps, params) = {
            let s = input
                .streams()
                .best(media::Type::Video)
                .ok_or(DecoderError::NoVideoStream)?;
            let fps = [s.avg_frame_rate(), s.rate()]
                .into_iter()
                .find(|r| r.numerator() > 0 && r.denominator() > 0);
            (s.index(), s.time_base(), fps, s.parameters())
        };
        let audio_codec = input
            .streams()
            .best(media::Type::Audio)
            .map(|s| s.parameters().id().name().to_string());
        let codec_id = params.id();
        let decoder_codec =
            ffmpeg_next::decoder::find(codec_id).ok_or_else(|| DecoderError::UnsupportedCodec {
                codec: format!("{codec_id:?}"),
            })?;
        let codec_name = decoder_codec.name().to_string();
        let mut context = codec::context::Context::from_parameters(params).map_err(|source| {
            DecoderError::Parameters {
                codec: codec_name.clone(),
                source,
            }
        })?;
        match options.threads {
            DecoderThreads::CodecDefault => {}
            DecoderThreads::Single => context.set_threading(codec::threading::Config {
                kind: codec::threading::Type::None,
                count: 1,
                ..Default::default()
            }),
            DecoderThreads::Frame => context.set_threading(codec::threading::Config {
                kind: codec::threading::Type::Frame,
                count: 0,
                ..Default::default()
            }),
        }
        let decoder = context
            .decoder()
            .open_as(decoder_codec)
            .and_then(|opened| opened.video())
            .map_err(|source| DecoderError::Open {
                codec: codec_name.clone(),
                source,
            })?;
        Ok(VideoDecoder {
            demuxer,
            decoder,
            stream_index,
            options,
            phase: Phase::Reading { receiving: false },
            consecutive_read_errors: 0,
            container,
            codec: codec_name,
            time_base,
            fps,
            audio_codec,
            decode_errors: 0,
        })
    }

    /// Decodes the next frame in presentation order into `frame`; false at the end of the input.
    pub fn next_frame(&mut self, frame: &mut frame::Video) -> Result<bool, ReadError> {
        loop {
            match self.phase {
                Phase::Done => return Ok(false),
                Phase::Reading { receiving: true } | Phase::Draining => {
                    if self.receive(frame) {
                        return Ok(true);
                    }
                }
                Phase::Reading { receiving: false } => self.read_packet()?,
            }
        }
    }

    /// Takes one frame from the decoder if it has one; otherwise moves on to the next packet,
    /// or ends a drain.
    fn receive(&mut self, frame: &mut frame::Video) -> bool {
        let settled = match self.decoder.receive_frame(frame) {
            Ok(()) => return true,
            Err(ffmpeg_next::Error::Eof)
            | Err(ffmpeg_next::Error::Other {
                errno: libc::EAGAIN,
            }) => true,
            Err(_) => {
                self.decode_errors += 1;
                self.options.threads != DecoderThreads::Frame
            }
        };
        if settled {
            self.phase = match self.phase {
                Phase::Draining => Phase::Done,
                _ => Phase::Reading { receiving: false },
            };
        }
        false
    }

    /// Reads one packet and sends it to the decoder when it is the video stream's; at the end of
    /// the input, starts the drain.
    fn read_packet(&mut self) -> Result<(), ReadError> {
        // av_read_frame does not unref its target: a fresh packet per read (dropped, hence
        // unreferenced, at the end of each turn) keeps a reused one from leaking every payload.
        let mut packet = Packet::empty();
        match packet.read(self.demuxer.input()) {
            Ok(()) => {
                self.consecutive_read_errors = 0;
                if packet.stream() == self.stream_index {
                    if self.decoder.send_packet(&packet).is_err() {
                        self.decode_errors += 1;
                    }
                    self.phase = Phase::Reading { receiving: true };
                }
            }
            Err(ffmpeg_next::Error::Eof) => self.start_drain(),
            Err(source) => match self.options.read_errors {
                ReadErrors::EndInput => {
                    self.decode_errors += 1;
                    self.start_drain();
                }
                ReadErrors::Skip { max_consecutive } => {
                    self.consecutive_read_errors += 1;
                    if self.consecutive_read_errors >= max_consecutive {
                        self.phase = Phase::Done;
                        return Err(ReadError(source));
                    }
                }
            },
        }
        Ok(())
    }

    fn start_drain(&mut self) {
        // A decoder that refuses the end of input can still hold frames decoded before it: the
        // drain collects them, and ends at the first answer that is not a frame.
        let _ = self.decoder.send_eof();
        self.phase = Phase::Draining;
    }
}
