//! RTMP chunk stream reassembly in front of `rml_rtmp`'s server session.
//!
//! `rml_rtmp` 0.8 panics on chunk streams any publisher can send before it is authorised: its
//! deserializer subtracts without checking when a type-1 header announces a message shorter than
//! the part already received, or when a type-3 header carries an extended timestamp below
//! 0xFFFFFF; its AMF0 command decoder panics on a command of fewer than three values. So the
//! connection reassembles the publisher's chunk stream here, with bounds on what a peer can make
//! it hold, checks each message, and hands `ServerSession` the messages re-chunked in the one
//! form its deserializer reads safely: every message in a single chunk with a full (type 0)
//! header, after a chunk size of 0xFFFFFF (the largest message) announced once.
//!
//! Chunk headers are read as the RTMP 1.0 specification (§5.3.1) and FFmpeg's `rtmppkt.c` read
//! them: a
//! type-3 header that starts a message repeats the previous delta (the timestamp itself after a
//! type 0), and carries an extended timestamp exactly when the chunk stream's last header did.

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

/// The largest message length a chunk header can announce, and the chunk size handed on.
const MAX_MESSAGE_LEN: u32 = 0x00FF_FFFF;
/// The timestamp field value that announces an extended (32-bit) timestamp.
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
/// Chunk streams a publisher may keep state for (an encoder uses about five).
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Bytes of incomplete messages held across all chunk streams: two of the largest messages.
pub const MAX_PENDING_BYTES: usize = 32 << 20;

const SET_CHUNK_SIZE: u8 = 1;
const ABORT: u8 = 2;
const AMF0_COMMAND: u8 = 20;
/// The RTMP default chunk size, until the peer sets another.
const DEFAULT_CHUNK_SIZE: usize = 128;

/// A chunk stream the broadcaster will not pass on, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk stream {0} continues with a type-{1} header before any full header")]
    NoPreviousHeader(u32, u8),
    #[error(
        "type-{fmt} header on chunk stream {csid} while {received} of {length} bytes of its \
         message are still incomplete"
    )]
    HeaderInsideMessage {
        csid: u32,
        fmt: u8,
        received: usize,
        length: u32,
    },
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("more than {MAX_PENDING_BYTES} bytes of incomplete messages")]
    TooManyPendingBytes,
    #[error("set chunk size to {0}")]
    BadChunkSize(u32),
    #[error("protocol control message of type {0} with {1} bytes (4 expected)")]
    ShortControl(u8, usize),
    #[error("AMF0 command: {0}")]
    BadCommand(String),
    #[error("re-chunking a message: {0}")]
    Serialize(String),
}

/// What is known of one chunk stream: its last header and the message being received.
#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
    extended: bool,
    partial: Vec<u8>,
}

/// The message header fields one chunk carries (absent ones come from the chunk stream).
struct Header {
    fmt: u8,
    csid: u32,
    timestamp_field: u32,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
    /// Bytes of the basic and message headers (without an extended timestamp).
    len: usize,
}

/// Reassembles one publisher's chunk stream (see the module docs).
pub struct ChunkReader {
    input: Vec<u8>,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    pending_bytes: usize,
    serializer: ChunkSerializer,
}

impl ChunkReader {
    /// A reader, and the bytes that set the session's chunk size, to hand it first.
    pub fn new() -> Result<(Self, Vec<u8>), ChunkError> {
        let mut serializer = ChunkSerializer::new();
        let packet = serializer
            .set_max_chunk_size(MAX_MESSAGE_LEN, RtmpTimestamp::new(0))
            .map_err(|e| ChunkError::Serialize(format!("{e:?}")))?;
        let reader = Self {
            input: Vec::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pending_bytes: 0,
            serializer,
        };
        Ok((reader, packet.bytes))
    }

    /// Takes bytes from the publisher; returns the whole messages they completed, re-chunked for
    /// `ServerSession::handle_input`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let mut input = std::mem::take(&mut self.input);
        input.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(used) = self.chunk(&input[start..], &mut out)? {
            start += used;
        }
        input.drain(..start);
        self.input = input;
        Ok(out)
    }

    /// Reads one chunk from the front of `input`; `None` until all of it has arrived.
    fn chunk(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, ChunkError> {
        let Some(header) = read_header(input) else {
            return Ok(None);
        };
        let known = self.streams.get(&header.csid);
        if header.fmt != 0 && known.is_none() {
            return Err(ChunkError::NoPreviousHeader(header.csid, header.fmt));
        }
        if let Some(stream) = known
            && header.fmt != 3
            && !stream.partial.is_empty()
        {
            return Err(ChunkError::HeaderInsideMessage {
                csid: header.csid,
                fmt: header.fmt,
                received: stream.partial.len(),
                length: stream.length,
            });
        }
        if known.is_none() && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let extended = match header.fmt {
            3 => known.is_some_and(|s| s.extended),
            _ => header.timestamp_field == EXTENDED_TIMESTAMP,
        };
        let mut used = header.len;
        let mut timestamp_field = header.timestamp_field;
        if extended {
            let Some(field) = input.get(used..used + 4) else {
                return Ok(None);
            };
            timestamp_field = u32::from_be_bytes(field.try_into().expect("four bytes"));
            used += 4;
        }
        let (length, received) = match (header.fmt, known) {
            (0 | 1, _) => (header.length, 0),
            (_, Some(stream)) => (stream.length, stream.partial.len()),
            (_, None) => unreachable!("checked above"),
        };
        let data_len = (length as usize - received).min(self.chunk_size);
        let Some(data) = input.get(used..used + data_len) else {
            return Ok(None);
        };
        used += data_len;

        let stream = self.streams.entry(header.csid).or_default();
        let starts_message = stream.partial.is_empty();
        match header.fmt {
            0 => {
                stream.timestamp = timestamp_field;
                stream.delta = timestamp_field;
                stream.message_stream_id = header.message_stream_id;
            }
            1 | 2 => {
                stream.delta = timestamp_field;
                stream.timestamp = stream.timestamp.wrapping_add(timestamp_field);
            }
            _ if starts_message => stream.timestamp = stream.timestamp.wrapping_add(stream.delta),
            _ => {}
        }
        if header.fmt <= 1 {
            stream.length = header.length;
            stream.type_id = header.type_id;
        }
        if header.fmt != 3 {
            stream.extended = extended;
        }
        if self.pending_bytes + data.len() > MAX_PENDING_BYTES {
            return Err(ChunkError::TooManyPendingBytes);
        }
        stream.partial.extend_from_slice(data);
        self.pending_bytes += data.len();
        if stream.partial.len() < stream.length as usize {
            return Ok(Some(used));
        }
        let data = std::mem::take(&mut stream.partial);
        self.pending_bytes -= data.len();
        let message = MessagePayload {
            timestamp: RtmpTimestamp::new(stream.timestamp),
            type_id: stream.type_id,
            message_stream_id: stream.message_stream_id,
            data: Bytes::from(data),
        };
        self.message(message, out)?;
        Ok(Some(used))
    }

    /// Acts on a protocol control message, or checks and re-chunks any other.
    fn message(&mut self, message: MessagePayload, out: &mut Vec<u8>) -> Result<(), ChunkError> {
        match message.type_id {
            SET_CHUNK_SIZE => {
                let size = control_value(&message)? & 0x7FFF_FFFF;
                if size == 0 {
                    return Err(ChunkError::BadChunkSize(size));
                }
                // No message is longer than MAX_MESSAGE_LEN, so a larger size changes nothing.
                self.chunk_size = size.min(MAX_MESSAGE_LEN) as usize;
                return Ok(());
            }
            ABORT => {
                let csid = control_value(&message)?;
                if let Some(stream) = self.streams.get_mut(&csid) {
                    self.pending_bytes -= stream.partial.len();
                    stream.partial = Vec::new();
                }
                return Ok(());
            }
            AMF0_COMMAND => check_command(&message.data)?,
            _ => {}
        }
        let packet = self
            .serializer
            .serialize(&message, true, false)
            .map_err(|e| ChunkError::Serialize(format!("{e:?}")))?;
        out.extend_from_slice(&packet.bytes);
        Ok(())
    }
}

/// Parses a chunk's basic and message headers; `None` until they have all arrived.
fn read_header(input: &[u8]) -> Option<Header> {
    let first = *input.first()?;
    let fmt = first >> 6;
    let (csid, basic_len) = match first & 0x3F {
        0 => (64 + u32::from(*input.get(1)?), 2),
        1 => {
            let low = u32::from(*input.get(1)?);
            let high = u32::from(*input.get(2)?);
            (64 + low + high * 256, 3)
        }
        id => (u32::from(id), 1),
    };
    let message_header_len = [11, 7, 3, 0][usize::from(fmt)];
    let fields = input.get(basic_len..basic_len + message_header_len)?;
    let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let mut header = Header {
        fmt,
        csid,
        timestamp_field: 0,
        length: 0,
        type_id: 0,
        message_stream_id: 0,
        len: basic_len + message_header_len,
    };
    if fmt <= 2 {
        header.timestamp_field = u24(&fields[0..3]);
    }
    if fmt <= 1 {
        header.length = u24(&fields[3..6]);
        header.type_id = fields[6];
    }
    if fmt == 0 {
        header.message_stream_id = u32::from_le_bytes(fields[7..11].try_into().expect("four"));
    }
    Some(header)
}

/// The 32-bit value of a Set Chunk Size or Abort message.
fn control_value(message: &MessagePayload) -> Result<u32, ChunkError> {
    let bytes: [u8; 4] = message
        .data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ChunkError::ShortControl(
            message.type_id,
            message.data.len(),
        ))?;
    Ok(u32::from_be_bytes(bytes))
}

/// Refuses an AMF0 command without the name, transaction ID and command object every command
/// starts with.
fn check_command(data: &[u8]) -> Result<(), ChunkError> {
    let values = rml_amf0::deserialize(&mut std::io::Cursor::new(data))
        .map_err(|e| ChunkError::BadCommand(format!("{e:?}")))?;
    if values.len() < 3 {
        return Err(ChunkError::BadCommand(format!(
            "{} values, at least 3 (name, transaction ID, command object) expected",
            values.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rml_amf0::Amf0Value;
    use rml_rtmp::chunk_io::ChunkDeserializer;
    use rml_rtmp::messages::RtmpMessage;

    use super::*;

    /// A message as a comparable tuple: type, timestamp, message stream, payload.
    type Seen = (u8, u32, u32, Vec<u8>);

    fn seen(m: &MessagePayload) -> Seen {
        (
            m.type_id,
            m.timestamp.value,
            m.message_stream_id,
            m.data.to_vec(),
        )
    }

    fn media(type_id: u8, timestamp: u32, len: usize) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp),
            type_id,
            message_stream_id: 1,
            data: Bytes::from(
                (0..len)
                    .map(|i| (i * 7 + timestamp as usize) as u8)
                    .collect::<Vec<_>>(),
            ),
        }
    }

    fn command(values: &[Amf0Value]) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id: AMF0_COMMAND,
            message_stream_id: 0,
            data: Bytes::from(rml_amf0::serialize(&values.to_vec()).expect("amf0")),
        }
    }

    /// Everything `rml_rtmp`'s own deserializer reads from `bytes`, applying chunk size changes
    /// as its session does.
    fn read_back(bytes: &[u8]) -> Vec<Seen> {
        let mut deserializer = ChunkDeserializer::new();
        let mut messages = Vec::new();
        let mut input = bytes;
        while let Some(message) = deserializer.get_next_message(input).expect("rml reads it") {
            input = &[];
            if message.type_id == SET_CHUNK_SIZE {
                let size = u32::from_be_bytes(message.data[..4].try_into().unwrap());
                deserializer.set_max_chunk_size(size as usize).unwrap();
            } else {
                messages.push(seen(&message));
            }
        }
        messages
    }

    /// Feeds `bytes` to a new reader `piece` bytes at a time; the session's input, or the error.
    fn through_reader(bytes: &[u8], piece: usize) -> Result<Vec<u8>, ChunkError> {
        let (mut reader, mut out) = ChunkReader::new()?;
        for part in bytes.chunks(piece) {
            out.extend(reader.push(part)?);
        }
        Ok(out)
    }

    #[test]
    fn messages_an_encoder_split_and_compressed_reach_the_session_whole_and_in_order() {
        let mut encoder = ChunkSerializer::new();
        let connect = MessagePayload::from_rtmp_message(
            RtmpMessage::Amf0Command {
                command_name: "connect".into(),
                transaction_id: 1.0,
                command_object: Amf0Value::Object(
                    [("app".to_string(), Amf0Value::Utf8String("live".into()))].into(),
                ),
                additional_arguments: vec![],
            },
            RtmpTimestamp::new(0),
            0,
        )
        .unwrap();
        let mut sent = vec![connect];
        // Type 1, 2 and 3 headers (same lengths and deltas), messages split at 128 bytes.
        for (i, ts) in [0u32, 33, 66, 99, 132].into_iter().enumerate() {
            sent.push(media(9, ts, 1000 + (i % 2) * 10));
            sent.push(media(8, ts + 5, 200));
        }
        let mut wire = Vec::new();
        for m in &sent {
            wire.extend(encoder.serialize(m, false, false).unwrap().bytes);
        }
        // The publisher raises its chunk size mid-stream, as FFmpeg does after connect.
        wire.extend(
            encoder
                .set_max_chunk_size(4096, RtmpTimestamp::new(0))
                .unwrap()
                .bytes,
        );
        let late = [media(9, 165, 9000), media(9, 198, 50)];
        for m in &late {
            wire.extend(encoder.serialize(m, false, false).unwrap().bytes);
        }
        sent.extend(late);
        let expected: Vec<Seen> = sent.iter().map(seen).collect();
        for piece in [1, 7, 128, wire.len()] {
            let out = through_reader(&wire, piece).unwrap();
            assert_eq!(read_back(&out), expected, "in pieces of {piece} bytes");
        }
    }

    #[test]
    fn extended_timestamps_follow_the_chunk_stream_and_a_small_one_on_type_3_does_not_underflow() {
        let mut wire = vec![0x04]; // type 0, chunk stream 4
        wire.extend([0xFF, 0xFF, 0xFF, 0, 0, 2, 8, 1, 0, 0, 0]);
        wire.extend(0x0100_0000u32.to_be_bytes());
        wire.extend([0xAA, 0xBB]);
        // Type 3 starting a new message: the extended field again, this time below 0xFFFFFF
        // (rml_rtmp 0.8 subtracts 0xFFFFFF from it unchecked).
        wire.push(0xC4);
        wire.extend(5u32.to_be_bytes());
        wire.extend([0xCC, 0xDD]);
        let out = through_reader(&wire, 1).unwrap();
        // After a type 0, a type 3 repeats the type 0's timestamp as its delta.
        assert_eq!(
            read_back(&out),
            vec![
                (8, 0x0100_0000, 1, vec![0xAA, 0xBB]),
                (8, 0x0200_0000, 1, vec![0xCC, 0xDD]),
            ]
        );
    }

    #[test]
    fn a_command_of_fewer_than_three_values_is_refused() {
        let mut encoder = ChunkSerializer::new();
        // An empty command (rml_rtmp's serializer writes nothing for it, so by hand).
        let empty = [0x03, 0, 0, 0, 0, 0, 0, AMF0_COMMAND, 0, 0, 0, 0];
        assert!(matches!(
            through_reader(&empty, 1),
            Err(ChunkError::BadCommand(m)) if m.starts_with("0 values")
        ));
        for values in [
            vec![Amf0Value::Utf8String("connect".into())],
            vec![
                Amf0Value::Utf8String("connect".into()),
                Amf0Value::Number(1.0),
            ],
        ] {
            let n = values.len();
            let wire = encoder
                .serialize(&command(&values), true, false)
                .unwrap()
                .bytes;
            let err = through_reader(&wire, 3).unwrap_err();
            assert!(
                matches!(&err, ChunkError::BadCommand(m) if m.starts_with(&format!("{n} values"))),
                "{n} values: {err}"
            );
        }
    }

    #[test]
    fn a_new_header_inside_an_incomplete_message_is_refused() {
        let mut wire = vec![0x03, 0, 0, 0, 0, 0x01, 0x2C, 9, 1, 0, 0, 0];
        wire.extend([0u8; 128]);
        // Type 1 on the same chunk stream announcing 10 bytes after 128 of 300 arrived.
        wire.extend([0x43, 0, 0, 0, 0, 0, 10, 9]);
        assert_eq!(
            through_reader(&wire, 5).unwrap_err(),
            ChunkError::HeaderInsideMessage {
                csid: 3,
                fmt: 1,
                received: 128,
                length: 300
            }
        );
        assert_eq!(
            through_reader(&[0x45, 0, 0, 0, 0, 0, 10, 9], 1).unwrap_err(),
            ChunkError::NoPreviousHeader(5, 1)
        );
    }

    #[test]
    fn chunk_streams_and_pending_bytes_are_bounded() {
        let mut wire = Vec::new();
        for csid in 0..=MAX_CHUNK_STREAMS as u8 {
            // Two-byte basic headers: chunk streams 64 and up, each opening a 300-byte message.
            wire.extend([0x00, csid, 0, 0, 0, 0, 0x01, 0x2C, 9, 1, 0, 0, 0]);
            wire.extend([0u8; 128]);
        }
        assert_eq!(
            through_reader(&wire, 4096).unwrap_err(),
            ChunkError::TooManyChunkStreams
        );

        // Chunks of 8 MiB opening messages of 16 MiB: the fifth passes 32 MiB pending.
        let chunk = 0x0080_0000u32;
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, SET_CHUNK_SIZE, 0, 0, 0, 0];
        wire.extend(chunk.to_be_bytes());
        let opened = |csid: u8| {
            let mut c = vec![csid, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
            c.resize(c.len() + chunk as usize, 0);
            c
        };
        let (mut reader, _) = ChunkReader::new().unwrap();
        reader.push(&wire).unwrap();
        for csid in 3..7 {
            assert_eq!(
                reader.push(&opened(csid)),
                Ok(vec![]),
                "chunk stream {csid}"
            );
        }
        assert_eq!(
            reader.push(&opened(7)),
            Err(ChunkError::TooManyPendingBytes)
        );
    }

    #[test]
    fn an_abort_drops_the_incomplete_message_and_a_zero_chunk_size_is_refused() {
        let mut wire = vec![0x03, 0, 0, 0, 0, 0x01, 0x2C, 9, 1, 0, 0, 0];
        wire.extend([0u8; 128]);
        wire.extend([0x02, 0, 0, 0, 0, 0, 4, ABORT, 0, 0, 0, 0, 0, 0, 0, 3]);
        // Chunk stream 3 starts afresh with a whole 2-byte message.
        wire.extend([0x03, 0, 0, 7, 0, 0, 2, 9, 1, 0, 0, 0, 1, 2]);
        let out = through_reader(&wire, 9).unwrap();
        assert_eq!(read_back(&out), vec![(9, 7, 1, vec![1, 2])]);

        let zero = [
            0x02,
            0,
            0,
            0,
            0,
            0,
            4,
            SET_CHUNK_SIZE,
            0,
            0,
            0,
            0,
            0x80,
            0,
            0,
            0,
        ];
        assert_eq!(
            through_reader(&zero, 16).unwrap_err(),
            ChunkError::BadChunkSize(0)
        );
    }
}
