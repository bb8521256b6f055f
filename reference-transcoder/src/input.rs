//! Bench inputs turned into ready-to-transcode MPEG-TS segments: the synthetic source, a user's
//! video file (stream-copied and cut at key frames), or an HLS playlist (local or `http://`).
//!
//! Design: everything becomes a list of in-memory segments before timing starts, so the
//! benchmark measures transcoding and nothing else. Files are cut by stream copy (no re-encode):
//! a new segment starts at the first key frame at least the target duration after the previous
//! cut, as a broadcaster would. HLS over plain HTTP uses a minimal HTTP/1.1 GET on std's TCP
//! stream (no TLS: `https://` is refused with a typed error) to avoid a client dependency.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next::{Packet, media};
use serde::Serialize;

use crate::memio::MemoryMuxer;
use crate::source::{SourceConfig, SourceError, generate};

/// One segment ready for transcoding.
#[derive(Debug, Clone, Serialize)]
pub struct InputSegment {
    pub seq: u32,
    #[serde(skip)]
    pub data: Vec<u8>,
    pub duration_secs: f64,
}

/// Where the benchmark's video comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchInput {
    Synthetic(SourceConfig),
    /// A video file, cut into segments of about `segment_secs` at key frames.
    File {
        path: PathBuf,
        segment_secs: f64,
    },
    /// An HLS media (or master: its first variant) playlist, a local path or `http://` URL.
    Hls(String),
}

/// Why an input could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: ffmpeg_next::Error,
    },
    #[error("{path} has no video stream")]
    NoVideo { path: String },
    #[error("FFmpeg failed while cutting {path}: {source}")]
    Cut {
        path: String,
        source: ffmpeg_next::Error,
    },
    #[error("cannot read {what}: {why}")]
    Fetch { what: String, why: String },
    #[error("playlist {url} has no segments")]
    EmptyPlaylist { url: String },
    #[error("the input produced no segments")]
    NoSegments,
}

/// Prepares the input's segments.
pub fn load_segments(input: &BenchInput) -> Result<Vec<InputSegment>, InputError> {
    let segments = match input {
        BenchInput::Synthetic(config) => generate(config)?
            .ts_segments(config.gop_secs)?
            .into_iter()
            .map(|s| InputSegment {
                seq: s.seq,
                data: s.data,
                duration_secs: s.duration_secs,
            })
            .collect(),
        BenchInput::File { path, segment_secs } => cut_file(path, *segment_secs)?,
        BenchInput::Hls(url) => load_hls(url)?,
    };
    if segments.is_empty() {
        return Err(InputError::NoSegments);
    }
    Ok(segments)
}

/// Cuts a video file into MPEG-TS segments at key frames, by stream copy.
pub fn cut_file(path: &Path, segment_secs: f64) -> Result<Vec<InputSegment>, InputError> {
    crate::init_ffmpeg();
    let name = path.display().to_string();
    let mut input = ffmpeg_next::format::input(path).map_err(|source| InputError::Open {
        path: name.clone(),
        source,
    })?;
    let (vi, vtb, vpar) = {
        let s = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| InputError::NoVideo { path: name.clone() })?;
        (s.index(), s.time_base(), s.parameters())
    };
    let audio = input
        .streams()
        .best(media::Type::Audio)
        .map(|s| (s.index(), s.time_base(), s.parameters()));
    let cut = |source| InputError::Cut {
        path: name.clone(),
        source,
    };
    let open_muxer = || -> Result<MemoryMuxer, ffmpeg_next::Error> {
        let mut mux = MemoryMuxer::new("mpegts")?;
        mux.add_stream_copy(&vpar, vtb)?;
        if let Some((_, atb, apar)) = &audio {
            mux.add_stream_copy(apar, *atb)?;
        }
        mux.write_header()?;
        Ok(mux)
    };
    let mut segments = Vec::new();
    let mut current: Option<(MemoryMuxer, i64, i64)> = None; // muxer, first pts, last pts
    let mut frame_ticks = 0i64;
    let target = (segment_secs / f64::from(vtb)).round() as i64;
    let finish =
        |mux: MemoryMuxer, first: i64, last: i64, ticks: i64, segments: &mut Vec<InputSegment>| {
            mux.finish().map(|data| {
                segments.push(InputSegment {
                    seq: segments.len() as u32,
                    data,
                    duration_secs: (last - first + ticks) as f64 * f64::from(vtb),
                })
            })
        };
    loop {
        // av_read_frame does not unref its target: a fresh packet per read avoids leaking the last.
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg_next::Error::Eof) => break,
            Err(e) => return Err(cut(e)),
        }
        let stream = packet.stream();
        if stream == vi {
            let pts = packet.pts().or(packet.dts()).unwrap_or(0);
            if packet.duration() > 0 {
                frame_ticks = packet.duration();
            }
            let start_new = packet.is_key()
                && current
                    .as_ref()
                    .is_none_or(|(_, first, _)| pts - first >= target);
            if start_new {
                if let Some((mux, first, last)) = current.take() {
                    finish(mux, first, last, frame_ticks, &mut segments).map_err(cut)?;
                }
                current = Some((open_muxer().map_err(cut)?, pts, pts));
            }
            if let Some((mux, _, last)) = current.as_mut() {
                *last = (*last).max(pts);
                mux.write(&mut packet, 0, vtb).map_err(cut)?;
            }
        } else if let (Some((ai, atb, _)), Some((mux, _, _))) = (&audio, current.as_mut())
            && stream == *ai
        {
            // Audio before the first key frame has no segment to go in and is dropped.
            let _ = mux.write(&mut packet, 1, *atb);
        }
    }
    if let Some((mux, first, last)) = current.take() {
        finish(mux, first, last, frame_ticks, &mut segments).map_err(cut)?;
    }
    Ok(segments)
}

fn load_hls(url: &str) -> Result<Vec<InputSegment>, InputError> {
    let text = String::from_utf8_lossy(&fetch(url)?).into_owned();
    let entries = parse_playlist(&text);
    if let Some(variant) = entries.variants.first() {
        return load_hls(&resolve(url, variant));
    }
    if entries.segments.is_empty() {
        return Err(InputError::EmptyPlaylist {
            url: url.to_string(),
        });
    }
    entries
        .segments
        .iter()
        .enumerate()
        .map(|(i, (duration, uri))| {
            Ok(InputSegment {
                seq: i as u32,
                data: fetch(&resolve(url, uri))?,
                duration_secs: *duration,
            })
        })
        .collect()
}

#[derive(Default)]
struct Playlist {
    variants: Vec<String>,
    segments: Vec<(f64, String)>,
}

fn parse_playlist(text: &str) -> Playlist {
    let mut p = Playlist::default();
    let mut pending_duration = None;
    let mut pending_variant = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            pending_duration = rest.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            pending_variant = true;
        } else if !line.starts_with('#') {
            if pending_variant {
                p.variants.push(line.to_string());
                pending_variant = false;
            } else {
                p.segments
                    .push((pending_duration.take().unwrap_or(0.0), line.to_string()));
            }
        }
    }
    p
}

fn resolve(base: &str, uri: &str) -> String {
    if uri.contains("://") || uri.starts_with('/') {
        if uri.starts_with('/') && base.starts_with("http://") {
            let host_end = base[7..].find('/').map_or(base.len(), |i| i + 7);
            return format!("{}{}", &base[..host_end], uri);
        }
        return uri.to_string();
    }
    match base.rfind('/') {
        Some(i) => format!("{}{}", &base[..=i], uri),
        None => uri.to_string(),
    }
}

fn fetch(url: &str) -> Result<Vec<u8>, InputError> {
    let fail = |why: String| InputError::Fetch {
        what: url.to_string(),
        why,
    };
    if url.starts_with("https://") {
        return Err(fail(
            "https is not supported; use http:// or a local path".into(),
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return std::fs::read(url).map_err(|e| fail(e.to_string()));
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = TcpStream::connect(&addr).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| fail(e.to_string()))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: lpt-bench\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| fail(e.to_string()))?;
    let header_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let head = String::from_utf8_lossy(&response[..header_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(fail(format!("HTTP status {status}")));
    }
    let body = response.split_off(header_end + 4);
    if head.contains("transfer-encoding: chunked") {
        dechunk(&body).ok_or_else(|| fail("bad chunked body".into()))
    } else {
        Ok(body)
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_parse_and_resolve() {
        let p = parse_playlist("#EXTM3U\n#EXTINF:2.000,\nseg0.ts\n#EXTINF:1.5,\n/abs/seg1.ts\n");
        assert_eq!(
            p.segments,
            vec![(2.0, "seg0.ts".into()), (1.5, "/abs/seg1.ts".into())]
        );
        assert_eq!(
            resolve("http://h:8/a/b.m3u8", "seg0.ts"),
            "http://h:8/a/seg0.ts"
        );
        assert_eq!(
            resolve("http://h:8/a/b.m3u8", "/abs/x.ts"),
            "http://h:8/abs/x.ts"
        );
        let m = parse_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index.m3u8\n");
        assert_eq!(m.variants, vec!["low/index.m3u8".to_string()]);
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}
