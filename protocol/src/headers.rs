//! The `Livepeer-Segment` and `Livepeer-Payment` HTTP headers: standard base64 of a protobuf
//! message (`SegData`, `Payment`).
//!
//! Decoding is the first thing an orchestrator does with a stranger's bytes, so it never panics and
//! its error says which header failed and at which layer (base64 or protobuf). Field-level checks
//! (address lengths, integer overflow) happen later in [`crate::fields`] and [`crate::ticket`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;

use crate::net::{Payment, SegData};

/// Header carrying base64(`SegData`).
pub const SEGMENT_HEADER: &str = "Livepeer-Segment";
/// Header carrying base64(`Payment`).
pub const PAYMENT_HEADER: &str = "Livepeer-Payment";

/// A Livepeer header that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The header value is not standard base64.
    #[error("header {header}: invalid base64: {source}")]
    Base64 {
        /// Header name.
        header: &'static str,
        /// Underlying error.
        source: base64::DecodeError,
    },
    /// The decoded bytes are not a valid protobuf message of the expected type.
    #[error("header {header}: invalid protobuf: {source}")]
    Protobuf {
        /// Header name.
        header: &'static str,
        /// Underlying error.
        source: prost::DecodeError,
    },
}

impl HeaderError {
    /// Name of the header that failed.
    pub fn header(&self) -> &'static str {
        match self {
            Self::Base64 { header, .. } | Self::Protobuf { header, .. } => header,
        }
    }
}

/// Encodes a segment description for the `Livepeer-Segment` header.
pub fn encode_segment(seg: &SegData) -> String {
    STANDARD.encode(seg.encode_to_vec())
}

/// Decodes the `Livepeer-Segment` header.
pub fn decode_segment(value: &str) -> Result<SegData, HeaderError> {
    decode(SEGMENT_HEADER, value)
}

/// Encodes a payment for the `Livepeer-Payment` header.
pub fn encode_payment(payment: &Payment) -> String {
    STANDARD.encode(payment.encode_to_vec())
}

/// Decodes the `Livepeer-Payment` header.
pub fn decode_payment(value: &str) -> Result<Payment, HeaderError> {
    decode(PAYMENT_HEADER, value)
}

fn decode<M: Message + Default>(header: &'static str, value: &str) -> Result<M, HeaderError> {
    let bytes = STANDARD
        .decode(value.trim())
        .map_err(|source| HeaderError::Base64 { header, source })?;
    M::decode(bytes.as_slice()).map_err(|source| HeaderError::Protobuf { header, source })
}
