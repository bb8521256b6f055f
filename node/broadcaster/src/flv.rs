//! FLV tag bodies as RTMP carries them: H.264 (AVC) video and AAC audio.
//!
//! RTMP publishers send each frame as an FLV tag body; this module turns one into a typed
//! [`VideoTag`]/[`AudioTag`] without copying the payload (it stays a `Bytes` slice of the RTMP
//! message). Anything that is not AVC/AAC, or is truncated, is a [`FlvError`] naming what was
//! wrong, so a publisher sending garbage is reported rather than crashing the ingest.

use bytes::Bytes;

/// Why an FLV tag body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The tag body is shorter than its header.
    #[error("{kind} tag of {len} bytes is truncated (needs at least {needed})")]
    Truncated {
        /// "video" or "audio".
        kind: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// The video codec is not AVC (codec id 7).
    #[error("unsupported video codec id {0} (only H.264/AVC, id 7)")]
    VideoCodec(u8),
    /// The audio format is not AAC (sound format 10).
    #[error("unsupported audio format {0} (only AAC, format 10)")]
    AudioFormat(u8),
    /// The AVCDecoderConfigurationRecord is malformed.
    #[error("malformed AVCDecoderConfigurationRecord: {0}")]
    AvcConfig(&'static str),
    /// The AudioSpecificConfig is malformed.
    #[error("malformed AudioSpecificConfig: {0}")]
    AacConfig(&'static str),
}

/// One video tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVC sequence header: the decoder configuration (SPS/PPS).
    Config(AvcConfig),
    /// One coded frame: length-prefixed NAL units.
    Frame {
        /// Whether the FLV frame type says key frame.
        keyframe: bool,
        /// Composition time offset (PTS − DTS), ms.
        cts_ms: i32,
        /// AVCC NAL units (length-prefixed).
        data: Bytes,
    },
    /// End of sequence, or a frame type carrying no picture (info/command frame).
    Other,
}

/// One audio tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC sequence header.
    Config(AacConfig),
    /// One raw AAC frame.
    Frame(Bytes),
}

/// The parts of an AVCDecoderConfigurationRecord the muxer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Size of the NAL length prefix (1, 2 or 4).
    pub length_size: usize,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
}

/// The parts of an AudioSpecificConfig an ADTS header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling frequency index.
    pub frequency_index: u8,
    /// Channel configuration.
    pub channels: u8,
}

/// Parses a video tag body.
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    if body.is_empty() {
        return Err(FlvError::Truncated {
            kind: "video",
            len: 0,
            needed: 1,
        });
    }
    let frame_type = body[0] >> 4;
    let codec = body[0] & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTag::Other);
    }
    if codec != 7 {
        return Err(FlvError::VideoCodec(codec));
    }
    if body.len() < 5 {
        return Err(FlvError::Truncated {
            kind: "video",
            len: body.len(),
            needed: 5,
        });
    }
    let cts = ((u32::from(body[2]) << 16) | (u32::from(body[3]) << 8) | u32::from(body[4])) as i32;
    let cts_ms = (cts << 8) >> 8; // sign-extend SI24
    match body[1] {
        0 => Ok(VideoTag::Config(parse_avc_config(&body.slice(5..))?)),
        1 => Ok(VideoTag::Frame {
            keyframe: frame_type == 1,
            cts_ms,
            data: body.slice(5..),
        }),
        _ => Ok(VideoTag::Other),
    }
}

/// Parses an audio tag body.
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    if body.len() < 2 {
        return Err(FlvError::Truncated {
            kind: "audio",
            len: body.len(),
            needed: 2,
        });
    }
    let format = body[0] >> 4;
    if format != 10 {
        return Err(FlvError::AudioFormat(format));
    }
    match body[1] {
        0 => Ok(AudioTag::Config(parse_aac_config(&body[2..])?)),
        _ => Ok(AudioTag::Frame(body.slice(2..))),
    }
}

fn parse_avc_config(rec: &Bytes) -> Result<AvcConfig, FlvError> {
    if rec.len() < 7 {
        return Err(FlvError::AvcConfig("shorter than 7 bytes"));
    }
    let length_size = usize::from(rec[4] & 3) + 1;
    if length_size == 3 {
        return Err(FlvError::AvcConfig("NAL length size 3 is invalid"));
    }
    let mut pos = 6;
    let sps = read_parameter_sets(rec, usize::from(rec[5] & 0x1f), &mut pos)?;
    let Some(&pps_count) = rec.get(pos) else {
        return Err(FlvError::AvcConfig("missing PPS count"));
    };
    pos += 1;
    let pps = read_parameter_sets(rec, usize::from(pps_count), &mut pos)?;
    if sps.is_empty() || pps.is_empty() {
        return Err(FlvError::AvcConfig("no SPS or no PPS"));
    }
    Ok(AvcConfig {
        length_size,
        sps,
        pps,
    })
}

fn read_parameter_sets(rec: &Bytes, count: usize, pos: &mut usize) -> Result<Vec<Bytes>, FlvError> {
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        if *pos + 2 > rec.len() {
            return Err(FlvError::AvcConfig("parameter set length past the end"));
        }
        let len = usize::from(u16::from_be_bytes([rec[*pos], rec[*pos + 1]]));
        *pos += 2;
        if len == 0 || *pos + len > rec.len() {
            return Err(FlvError::AvcConfig("parameter set past the end"));
        }
        sets.push(rec.slice(*pos..*pos + len));
        *pos += len;
    }
    Ok(sets)
}

fn parse_aac_config(asc: &[u8]) -> Result<AacConfig, FlvError> {
    if asc.len() < 2 {
        return Err(FlvError::AacConfig("shorter than 2 bytes"));
    }
    let object_type = asc[0] >> 3;
    let frequency_index = ((asc[0] & 7) << 1) | (asc[1] >> 7);
    let channels = (asc[1] >> 3) & 0x0f;
    if object_type == 0 || object_type > 4 {
        return Err(FlvError::AacConfig(
            "object type outside 1..=4 (ADTS cannot carry it)",
        ));
    }
    if frequency_index > 12 {
        return Err(FlvError::AacConfig(
            "explicit sampling frequency is not supported",
        ));
    }
    Ok(AacConfig {
        object_type,
        frequency_index,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_sequence_header_yields_parameter_sets() {
        let body = Bytes::from_static(&[
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x1f, 1, 0, 2, 0x68,
            0xee,
        ]);
        let VideoTag::Config(cfg) = parse_video(&body).unwrap() else {
            panic!("not a config");
        };
        assert_eq!(cfg.length_size, 4);
        assert_eq!(cfg.sps, vec![Bytes::from_static(&[0x67, 0x64, 0x1f])]);
        assert_eq!(cfg.pps, vec![Bytes::from_static(&[0x68, 0xee])]);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x12, 1])),
            Err(FlvError::VideoCodec(2))
        );
        assert!(matches!(
            parse_video(&Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])),
            Err(FlvError::AvcConfig(_))
        ));
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0x2f, 1])),
            Err(FlvError::AudioFormat(2))
        );
    }

    #[test]
    fn negative_composition_time_is_sign_extended() {
        let VideoTag::Frame { cts_ms, .. } = parse_video(&Bytes::from_static(&[
            0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 9,
        ]))
        .unwrap() else {
            panic!()
        };
        assert_eq!(cts_ms, -2);
    }
}
