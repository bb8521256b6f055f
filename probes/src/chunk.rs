//! A minimal RTMP chunk writer for media messages, straight into the publisher's write buffer.
//!
//! Design: `rml_rtmp`'s session serialiser allocates several buffers per message; for the
//! hot path (dozens of audio/video messages per stream per second, hundreds of streams) the
//! publisher writes media chunks itself: a full (type 0) header per message on chunk streams of
//! its own (so the session's header-compression state on its chunk streams is never
//! disturbed), type 3 headers for continuation chunks, extended timestamps past 0xFFFFFF, and
//! the chunk size the session announced to the server right after `connect` was accepted
//! (`ClientSessionConfig::chunk_size`, set to [`CHUNK_SIZE`] by the publisher).
//! The session keeps doing everything else (handshake, commands, acknowledgements).

/// The outbound chunk size the publisher configures its session with.
pub const CHUNK_SIZE: usize = 4096;
/// Chunk streams used for media written here (the session uses 2..=6).
pub const VIDEO_CSID: u8 = 7;
pub const AUDIO_CSID: u8 = 8;
pub const VIDEO_TYPE: u8 = 9;
pub const AUDIO_TYPE: u8 = 8;

/// Appends one message as RTMP chunks to `out`.
pub fn write_message(
    out: &mut Vec<u8>,
    csid: u8,
    type_id: u8,
    timestamp: u32,
    message_stream_id: u32,
    payload: &[u8],
) {
    debug_assert!((2..64).contains(&csid));
    let extended = timestamp >= 0xFF_FFFF;
    let chunks = payload.len().div_ceil(CHUNK_SIZE).max(1);
    out.reserve(payload.len() + 12 + if extended { 4 } else { 0 } + (chunks - 1) * 5);
    out.push(csid); // fmt 0
    let ts_field = if extended { 0xFF_FFFF } else { timestamp };
    out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&message_stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for (i, chunk) in payload.chunks(CHUNK_SIZE).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid); // fmt 3
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
}

/// The message stream id in a packet the session serialised with a full (type 0) header on a
/// one-byte chunk stream id: how the publisher learns the stream id `createStream` returned.
pub fn message_stream_id_of_full_chunk(bytes: &[u8]) -> Option<u32> {
    let first = *bytes.first()?;
    if first >> 6 != 0 || first & 0x3F < 2 {
        return None;
    }
    Some(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkDeserializer;

    #[test]
    fn rml_rtmp_reads_back_what_we_write() {
        let mut out = Vec::new();
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        write_message(&mut out, VIDEO_CSID, VIDEO_TYPE, 1234, 1, &big);
        write_message(&mut out, AUDIO_CSID, AUDIO_TYPE, 1250, 1, &[0xAF, 1, 2, 3]);
        write_message(
            &mut out,
            VIDEO_CSID,
            VIDEO_TYPE,
            0x0100_0000,
            1,
            &big[..300],
        );
        let mut d = ChunkDeserializer::new();
        d.set_max_chunk_size(CHUNK_SIZE).unwrap();
        let m = d.get_next_message(&out).unwrap().unwrap();
        assert_eq!(
            (m.type_id, m.timestamp.value, m.message_stream_id),
            (9, 1234, 1)
        );
        assert_eq!(&m.data[..], &big[..]);
        let m = d.get_next_message(&[]).unwrap().unwrap();
        assert_eq!(
            (m.type_id, m.timestamp.value, &m.data[..]),
            (8, 1250, &[0xAF, 1, 2, 3][..])
        );
        let m = d.get_next_message(&[]).unwrap().unwrap();
        assert_eq!((m.timestamp.value, m.data.len()), (0x0100_0000, 300));
        assert!(d.get_next_message(&[]).unwrap().is_none());
    }

    #[test]
    fn finds_the_stream_id_in_a_full_header() {
        let mut out = Vec::new();
        write_message(&mut out, 4, VIDEO_TYPE, 0, 5, &[1, 2, 3]);
        assert_eq!(message_stream_id_of_full_chunk(&out), Some(5));
        assert_eq!(message_stream_id_of_full_chunk(&[0xC4, 0]), None);
    }
}
