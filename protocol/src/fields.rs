//! Typed conversion of raw protobuf fields (bytes, int64) into protocol values.
//!
//! Protobuf gives us `Vec<u8>` for addresses, hashes and big integers, and signed integers for
//! rounds and prices. A peer can put anything in them, so every conversion goes through this module
//! and fails with a [`FieldError`] that names the field (e.g. `"Payment.sender"`), which is what
//! an operator needs to see in a log line.

use alloy::primitives::{Address, B256, U256};

/// A protobuf field that does not hold a valid value of its protocol type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {kind}")]
pub struct FieldError {
    /// Dotted message path of the offending field, e.g. `TicketParams.face_value`.
    pub field: &'static str,
    /// What is wrong with it.
    pub kind: FieldErrorKind,
}

/// Why a field was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldErrorKind {
    /// A fixed-size value (address, hash, signature) of the wrong size.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// Required size in bytes.
        expected: usize,
        /// Size received.
        actual: usize,
    },
    /// A big-endian unsigned integer longer than 32 significant bytes.
    #[error("integer of {len} bytes overflows uint256")]
    Overflow {
        /// Number of significant bytes received.
        len: usize,
    },
    /// A signed protobuf integer that must not be negative.
    #[error("negative value {0}")]
    Negative(i64),
    /// A required field (sub-message) is absent.
    #[error("missing")]
    Missing,
    /// A value outside the range the protocol allows.
    #[error("out of range: {0}")]
    OutOfRange(String),
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: &'static str, kind: FieldErrorKind) -> Self {
        Self { field, kind }
    }

    /// A required field is absent.
    pub fn missing(field: &'static str) -> Self {
        Self::new(field, FieldErrorKind::Missing)
    }
}

/// A 20-byte Ethereum address.
pub fn address(field: &'static str, bytes: &[u8]) -> Result<Address, FieldError> {
    exact::<20>(field, bytes).map(Address::from)
}

/// A 32-byte hash.
pub fn hash(field: &'static str, bytes: &[u8]) -> Result<B256, FieldError> {
    exact::<32>(field, bytes).map(B256::from)
}

/// A big-endian unsigned integer of at most 256 bits. Leading zero bytes are allowed (go's
/// `big.Int.Bytes()` never sends them, but padding is harmless); empty means zero.
pub fn uint256(field: &'static str, bytes: &[u8]) -> Result<U256, FieldError> {
    let significant = bytes
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |i| &bytes[i..]);
    if significant.len() > 32 {
        return Err(FieldError::new(
            field,
            FieldErrorKind::Overflow {
                len: significant.len(),
            },
        ));
    }
    Ok(U256::from_be_slice(significant))
}

/// A big-endian unsigned integer that must fit in a `u64` (block numbers).
pub fn uint64(field: &'static str, bytes: &[u8]) -> Result<u64, FieldError> {
    let value = uint256(field, bytes)?;
    u64::try_from(value)
        .map_err(|_| FieldError::new(field, FieldErrorKind::OutOfRange(value.to_string())))
}

/// A protobuf `int64` that must be zero or positive.
pub fn non_negative(field: &'static str, value: i64) -> Result<u64, FieldError> {
    u64::try_from(value).map_err(|_| FieldError::new(field, FieldErrorKind::Negative(value)))
}

/// Minimal big-endian bytes of an unsigned integer, as go's `big.Int.Bytes()` (zero is empty).
pub fn minimal_be(value: U256) -> Vec<u8> {
    let bytes = value.to_be_bytes::<32>();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(32);
    bytes[start..].to_vec()
}

fn exact<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], FieldError> {
    bytes.try_into().map_err(|_| {
        FieldError::new(
            field,
            FieldErrorKind::WrongLength {
                expected: N,
                actual: bytes.len(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint256_accepts_padding_and_rejects_overflow() {
        assert_eq!(uint256("f", &[]).unwrap(), U256::ZERO);
        assert_eq!(uint256("f", &[0, 0, 1, 0]).unwrap(), U256::from(256));
        let mut max = vec![0u8; 3];
        max.extend([0xff; 32]);
        assert_eq!(uint256("f", &max).unwrap(), U256::MAX);
        let err = uint256("TicketParams.face_value", &[1; 33]).unwrap_err();
        assert_eq!(err.field, "TicketParams.face_value");
        assert_eq!(err.kind, FieldErrorKind::Overflow { len: 33 });
    }

    #[test]
    fn fixed_sizes_name_the_field() {
        let err = address("Payment.sender", &[1; 19]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field Payment.sender: expected 20 bytes, got 19"
        );
        assert!(hash("h", &[0; 32]).is_ok());
        assert_eq!(
            non_negative("r", -1).unwrap_err().kind,
            FieldErrorKind::Negative(-1)
        );
        assert!(matches!(
            uint64("b", &[1; 9]).unwrap_err().kind,
            FieldErrorKind::OutOfRange(_)
        ));
    }

    #[test]
    fn minimal_be_strips_leading_zeros() {
        assert!(minimal_be(U256::ZERO).is_empty());
        assert_eq!(minimal_be(U256::from(0x0102)), vec![1, 2]);
    }
}
