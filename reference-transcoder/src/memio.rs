//! In-memory demuxing and muxing over FFmpeg's custom I/O.
//!
//! Segments arrive and leave as byte buffers (HTTP bodies, RTMP payloads), so nothing here
//! touches the file system. Design: the demuxer reads through an `AVIOContext` over a borrowed
//! copy of the bytes and hands back ffmpeg-next's `Input` for the familiar packet iterator; the
//! muxer is a thin raw-FFI wrapper because ffmpeg-next's `Output` destructor would `avio_close`
//! our custom context as if it were a URL.

use std::ffi::{CString, c_int, c_void};
use std::ptr;

use ffmpeg_next::codec::packet::Mut as _;
use ffmpeg_next::ffi::*;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::{Error as FfError, Packet, Rational};

const IO_BUFFER_SIZE: usize = 64 * 1024;

struct ReadCursor {
    data: Vec<u8>,
    pos: usize,
}

unsafe extern "C" fn read_packet(opaque: *mut c_void, buf: *mut u8, buf_size: c_int) -> c_int {
    // SAFETY: opaque is the `ReadCursor` boxed by `MemoryInput`, alive while the context is.
    let cursor = unsafe { &mut *(opaque as *mut ReadCursor) };
    let remaining = cursor.data.len().saturating_sub(cursor.pos);
    if remaining == 0 {
        return AVERROR_EOF;
    }
    let n = remaining.min(buf_size.max(0) as usize);
    // SAFETY: FFmpeg guarantees `buf` holds `buf_size` bytes.
    unsafe { ptr::copy_nonoverlapping(cursor.data.as_ptr().add(cursor.pos), buf, n) };
    cursor.pos += n;
    n as c_int
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read_packet`.
    let cursor = unsafe { &mut *(opaque as *mut ReadCursor) };
    let len = cursor.data.len() as i64;
    let target = match whence & !AVSEEK_FORCE {
        AVSEEK_SIZE => return len,
        0 => offset,                     // SEEK_SET
        1 => cursor.pos as i64 + offset, // SEEK_CUR
        2 => len + offset,               // SEEK_END
        _ => return AVERROR(libc::EINVAL) as i64,
    };
    if target < 0 || target > len {
        return AVERROR(libc::EINVAL) as i64;
    }
    cursor.pos = target as usize;
    target
}

/// A demuxer over bytes held in memory.
pub struct MemoryInput {
    input: Option<Input>,
    avio: *mut AVIOContext,
    _cursor: Box<ReadCursor>,
}

// SAFETY: the demuxer, its I/O context and cursor are owned together and used from one thread
// at a time; FFmpeg demuxers hold no thread-affine state.
unsafe impl Send for MemoryInput {}

impl MemoryInput {
    /// Opens `data` as a container, probing the format unless `format` names it (e.g. "mpegts").
    pub fn open(data: Vec<u8>, format: Option<&str>) -> Result<Self, FfError> {
        crate::init_ffmpeg();
        let mut cursor = Box::new(ReadCursor { data, pos: 0 });
        unsafe {
            let buffer = av_malloc(IO_BUFFER_SIZE) as *mut u8;
            if buffer.is_null() {
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            let avio = avio_alloc_context(
                buffer,
                IO_BUFFER_SIZE as c_int,
                0,
                &mut *cursor as *mut ReadCursor as *mut c_void,
                Some(read_packet),
                None,
                Some(seek),
            );
            if avio.is_null() {
                av_free(buffer as *mut c_void);
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            let mut this = MemoryInput {
                input: None,
                avio,
                _cursor: cursor,
            };
            let mut ctx = avformat_alloc_context();
            if ctx.is_null() {
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            (*ctx).pb = avio;
            (*ctx).flags |= AVFMT_FLAG_CUSTOM_IO;
            let fmt = match format {
                Some(name) => {
                    let name = CString::new(name).map_err(|_| FfError::InvalidData)?;
                    let f = av_find_input_format(name.as_ptr());
                    if f.is_null() {
                        avformat_free_context(ctx);
                        return Err(FfError::DemuxerNotFound);
                    }
                    f
                }
                None => ptr::null(),
            };
            // On failure avformat_open_input frees `ctx` (but not our custom `pb`).
            let ret = avformat_open_input(&mut ctx, ptr::null(), fmt, ptr::null_mut());
            if ret < 0 {
                return Err(FfError::from(ret));
            }
            let ret = avformat_find_stream_info(ctx, ptr::null_mut());
            if ret < 0 {
                avformat_close_input(&mut ctx);
                return Err(FfError::from(ret));
            }
            this.input = Some(Input::wrap(ctx));
            Ok(this)
        }
    }

    pub fn input(&mut self) -> &mut Input {
        self.input
            .as_mut()
            .expect("input is set for the whole life of MemoryInput")
    }
}

impl Drop for MemoryInput {
    fn drop(&mut self) {
        // The format context must go before the I/O context it reads through.
        self.input.take();
        unsafe {
            if !self.avio.is_null() {
                av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                avio_context_free(&mut self.avio);
            }
        }
    }
}

/// Why segment bytes could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the input is empty (0 bytes)")]
    Empty,
    #[error(
        "the MPEG-TS input is truncated: {len} bytes is not a whole number of 188-byte packets"
    )]
    Truncated { len: usize },
    #[error("not a readable media container: {0}")]
    Demux(FfError),
}

/// Opens container bytes: MPEG-TS when they start with TS sync bytes (a length that is not a
/// multiple of 188 then means truncation), otherwise whatever FFmpeg's probe recognises.
pub fn open_container(data: Vec<u8>) -> Result<MemoryInput, OpenError> {
    if data.is_empty() {
        return Err(OpenError::Empty);
    }
    let is_ts = data[0] == 0x47 && data.len() >= 188 && data.get(188).is_none_or(|&b| b == 0x47);
    if is_ts && !data.len().is_multiple_of(188) {
        return Err(OpenError::Truncated { len: data.len() });
    }
    MemoryInput::open(data, is_ts.then_some("mpegts")).map_err(OpenError::Demux)
}

unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, buf_size: c_int) -> c_int {
    // SAFETY: opaque is the `Vec<u8>` boxed by `MemoryMuxer`.
    let sink = unsafe { &mut *(opaque as *mut Vec<u8>) };
    if buf_size > 0 {
        // SAFETY: FFmpeg hands us `buf_size` valid bytes.
        sink.extend_from_slice(unsafe { std::slice::from_raw_parts(buf, buf_size as usize) });
    }
    buf_size
}

/// Stream description for [`MemoryMuxer::add_stream`], independent of any codec context so it
/// can be stored and shared between threads.
#[derive(Debug, Clone)]
pub enum StreamSpec {
    H264 {
        width: u32,
        height: u32,
        time_base: Rational,
    },
    Aac {
        sample_rate: u32,
        channels: u32,
        extradata: Vec<u8>,
        time_base: Rational,
    },
}

/// A muxer writing a complete container into a `Vec<u8>`.
pub struct MemoryMuxer {
    ctx: *mut AVFormatContext,
    avio: *mut AVIOContext,
    // Boxed so the address handed to FFmpeg stays put when the muxer moves.
    #[allow(clippy::box_collection)]
    sink: Box<Vec<u8>>,
    header_written: bool,
}

// SAFETY: owned exclusively; FFmpeg muxers hold no thread-affine state.
unsafe impl Send for MemoryMuxer {}

impl MemoryMuxer {
    /// Creates a muxer for the named format (e.g. "mpegts", "flv").
    pub fn new(format: &str) -> Result<Self, FfError> {
        crate::init_ffmpeg();
        let name = CString::new(format).map_err(|_| FfError::InvalidData)?;
        let mut sink = Box::new(Vec::with_capacity(256 * 1024));
        unsafe {
            let mut ctx = ptr::null_mut();
            let ret =
                avformat_alloc_output_context2(&mut ctx, ptr::null(), name.as_ptr(), ptr::null());
            if ret < 0 || ctx.is_null() {
                return Err(if ret < 0 {
                    FfError::from(ret)
                } else {
                    FfError::MuxerNotFound
                });
            }
            let buffer = av_malloc(IO_BUFFER_SIZE) as *mut u8;
            let avio = avio_alloc_context(
                buffer,
                IO_BUFFER_SIZE as c_int,
                1,
                &mut *sink as *mut Vec<u8> as *mut c_void,
                None,
                Some(write_packet),
                None,
            );
            if buffer.is_null() || avio.is_null() {
                avformat_free_context(ctx);
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            (*ctx).pb = avio;
            (*ctx).flags |= AVFMT_FLAG_CUSTOM_IO;
            Ok(MemoryMuxer {
                ctx,
                avio,
                sink,
                header_written: false,
            })
        }
    }

    /// Adds a stream described by `spec`; returns its index.
    pub fn add_stream(&mut self, spec: &StreamSpec) -> Result<usize, FfError> {
        unsafe {
            let st = avformat_new_stream(self.ctx, ptr::null());
            if st.is_null() {
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            let par = (*st).codecpar;
            match spec {
                StreamSpec::H264 {
                    width,
                    height,
                    time_base,
                } => {
                    (*par).codec_type = AVMediaType::AVMEDIA_TYPE_VIDEO;
                    (*par).codec_id = AVCodecID::AV_CODEC_ID_H264;
                    (*par).width = *width as c_int;
                    (*par).height = *height as c_int;
                    (*par).format = AVPixelFormat::AV_PIX_FMT_YUV420P as c_int;
                    (*st).time_base = (*time_base).into();
                }
                StreamSpec::Aac {
                    sample_rate,
                    channels,
                    extradata,
                    time_base,
                } => {
                    (*par).codec_type = AVMediaType::AVMEDIA_TYPE_AUDIO;
                    (*par).codec_id = AVCodecID::AV_CODEC_ID_AAC;
                    (*par).sample_rate = *sample_rate as c_int;
                    av_channel_layout_default(&mut (*par).ch_layout, *channels as c_int);
                    (*par).frame_size = 1024;
                    if !extradata.is_empty() {
                        let buf =
                            av_mallocz(extradata.len() + AV_INPUT_BUFFER_PADDING_SIZE as usize)
                                as *mut u8;
                        ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
                        (*par).extradata = buf;
                        (*par).extradata_size = extradata.len() as c_int;
                    }
                    (*st).time_base = (*time_base).into();
                }
            }
            Ok((*st).index as usize)
        }
    }

    /// Adds a stream copying codec parameters from a demuxed stream (stream copy).
    pub fn add_stream_copy(
        &mut self,
        par: &ffmpeg_next::codec::Parameters,
        time_base: Rational,
    ) -> Result<usize, FfError> {
        unsafe {
            let st = avformat_new_stream(self.ctx, ptr::null());
            if st.is_null() {
                return Err(FfError::Other {
                    errno: libc::ENOMEM,
                });
            }
            let ret = avcodec_parameters_copy((*st).codecpar, par.as_ptr());
            if ret < 0 {
                return Err(FfError::from(ret));
            }
            (*(*st).codecpar).codec_tag = 0;
            (*st).time_base = time_base.into();
            Ok((*st).index as usize)
        }
    }

    /// Time base the muxer chose for a stream (valid after [`Self::write_header`]).
    pub fn stream_time_base(&self, index: usize) -> Rational {
        unsafe { (*(*(*self.ctx).streams.add(index))).time_base.into() }
    }

    pub fn write_header(&mut self) -> Result<(), FfError> {
        let ret = unsafe { avformat_write_header(self.ctx, ptr::null_mut()) };
        if ret < 0 {
            return Err(FfError::from(ret));
        }
        self.header_written = true;
        Ok(())
    }

    /// Writes a packet whose timestamps are in `from` time base to stream `index`.
    pub fn write(
        &mut self,
        packet: &mut Packet,
        index: usize,
        from: Rational,
    ) -> Result<(), FfError> {
        packet.set_stream(index);
        packet.rescale_ts(from, self.stream_time_base(index));
        packet.set_position(-1);
        let ret = unsafe { av_interleaved_write_frame(self.ctx, packet.as_mut_ptr()) };
        if ret < 0 {
            return Err(FfError::from(ret));
        }
        Ok(())
    }

    /// Writes the trailer and returns the container bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, FfError> {
        if self.header_written {
            let ret = unsafe { av_write_trailer(self.ctx) };
            self.header_written = false;
            if ret < 0 {
                return Err(FfError::from(ret));
            }
            unsafe { avio_flush(self.avio) };
        }
        Ok(std::mem::take(&mut *self.sink))
    }
}

impl Drop for MemoryMuxer {
    fn drop(&mut self) {
        unsafe {
            if !self.ctx.is_null() {
                (*self.ctx).pb = ptr::null_mut();
                avformat_free_context(self.ctx);
            }
            if !self.avio.is_null() {
                av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                avio_context_free(&mut self.avio);
            }
        }
    }
}
