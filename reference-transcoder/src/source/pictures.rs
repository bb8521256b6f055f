//! Where each frame's picture comes from: the lavfi graph (`testsrc2` blended with a coarse Game
//! of Life, plus temporal noise), or a user's file decoded, scaled to the configured size and
//! looped to fill the duration.

use std::path::PathBuf;

use ffmpeg_next::codec;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Packet, filter, frame};

use super::{SourceConfig, SourceError, ff};

/// Where the pictures come from: the lavfi graph, or a user's file.
pub(super) enum PictureSource {
    Lavfi(filter::Graph),
    File(Box<FilePictures>),
}

impl PictureSource {
    pub(super) fn new(config: &SourceConfig) -> Result<Self, SourceError> {
        if let Some(path) = &config.input_file {
            return Ok(PictureSource::File(Box::new(FilePictures::open(
                path.clone(),
                config,
            )?)));
        }
        let (w, h) = (config.width, config.height);
        let rate = format!("{}/{}", config.fps_num, config.fps_den);
        let (lw, lh) = ((w / 8).max(16), (h / 8).max(16));
        let noise = if config.noise > 0 {
            format!(",noise=alls={}:allf=t", config.noise)
        } else {
            String::new()
        };
        let spec = format!(
            "testsrc2=s={w}x{h}:r={rate},format=yuv420p[t];\
             life=s={lw}x{lh}:r={rate}:mold=10:ratio=0.3:life_color=#ffffff:death_color=#202020,\
             scale={w}x{h}:flags=neighbor,format=yuv420p[l];\
             [t][l]blend=all_mode=average{noise},format=yuv420p"
        );
        let mut graph = filter::Graph::new();
        let sink =
            filter::find("buffersink").ok_or(SourceError::EncoderMissing("buffersink filter"))?;
        graph
            .add(&sink, "out", "")
            .map_err(ff("building the video graph"))?;
        graph
            .input("out", 0)
            .and_then(|p| p.parse(&spec))
            .map_err(ff("parsing the video graph"))?;
        graph
            .validate()
            .map_err(ff("configuring the video graph"))?;
        Ok(PictureSource::Lavfi(graph))
    }

    pub(super) fn next_frame(&mut self) -> Result<frame::Video, SourceError> {
        match self {
            PictureSource::Lavfi(graph) => {
                let mut frame = frame::Video::empty();
                graph
                    .get("out")
                    .expect("sink added")
                    .sink()
                    .frame(&mut frame)
                    .map_err(ff("generating video"))?;
                // Filter frames may share buffers; the stamp writes into them.
                unsafe {
                    let ret = ffmpeg_next::ffi::av_frame_make_writable(frame.as_mut_ptr());
                    if ret < 0 {
                        return Err(SourceError::Ffmpeg {
                            stage: "making a frame writable",
                            source: ret.into(),
                        });
                    }
                }
                Ok(frame)
            }
            PictureSource::File(file) => file.next_frame(),
        }
    }
}

/// Decoded pictures of a user's file, scaled to the configured size, looping at the end.
pub(super) struct FilePictures {
    path: PathBuf,
    width: u32,
    height: u32,
    input: ffmpeg_next::format::context::Input,
    stream: usize,
    decoder: ffmpeg_next::decoder::Video,
    scaler: Option<scaling::Context>,
    eof: bool,
    decoded_any: bool,
}

impl FilePictures {
    fn open(path: PathBuf, config: &SourceConfig) -> Result<Self, SourceError> {
        let input = ffmpeg_next::format::input(&path).map_err(|source| SourceError::InputFile {
            path: path.clone(),
            source,
        })?;
        let stream = input
            .streams()
            .best(ffmpeg_next::media::Type::Video)
            .ok_or_else(|| SourceError::NoVideoStream { path: path.clone() })?;
        let index = stream.index();
        let ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(ff("reading input parameters"))?;
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|source| SourceError::InputFile {
                path: path.clone(),
                source,
            })?;
        Ok(FilePictures {
            path,
            width: config.width,
            height: config.height,
            input,
            stream: index,
            decoder,
            scaler: None,
            eof: false,
            decoded_any: false,
        })
    }

    fn next_frame(&mut self) -> Result<frame::Video, SourceError> {
        let mut decoded = frame::Video::empty();
        for _attempt in 0..2 {
            loop {
                if self.decoder.receive_frame(&mut decoded).is_ok() {
                    self.decoded_any = true;
                    return self.scale(&decoded);
                }
                if self.eof {
                    break;
                }
                let mut packet = Packet::empty();
                match packet.read(&mut self.input) {
                    Ok(()) if packet.stream() == self.stream => {
                        // A damaged packet is skipped, as a player would.
                        let _ = self.decoder.send_packet(&packet);
                    }
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::Eof) => {
                        self.eof = true;
                        let _ = self.decoder.send_eof();
                    }
                    Err(source) => {
                        return Err(SourceError::InputFile {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            if !self.decoded_any {
                break;
            }
            // Loop the file: rewind and start decoding again.
            self.input
                .seek(0, ..)
                .map_err(|source| SourceError::InputFile {
                    path: self.path.clone(),
                    source,
                })?;
            self.decoder.flush();
            self.eof = false;
        }
        Err(SourceError::NoVideoStream {
            path: self.path.clone(),
        })
    }

    fn scale(&mut self, decoded: &frame::Video) -> Result<frame::Video, SourceError> {
        let needs_new = self.scaler.as_ref().is_none_or(|s| {
            s.input().width != decoded.width()
                || s.input().height != decoded.height()
                || s.input().format != decoded.format()
        });
        if needs_new {
            self.scaler = Some(
                scaling::Context::get(
                    decoded.format(),
                    decoded.width(),
                    decoded.height(),
                    Pixel::YUV420P,
                    self.width,
                    self.height,
                    scaling::Flags::BICUBIC,
                )
                .map_err(ff("creating a scaler"))?,
            );
        }
        let mut out = frame::Video::new(Pixel::YUV420P, self.width, self.height);
        self.scaler
            .as_mut()
            .expect("set above")
            .run(decoded, &mut out)
            .map_err(ff("scaling input"))?;
        Ok(out)
    }
}
