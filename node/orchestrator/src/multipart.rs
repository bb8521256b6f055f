//! The small `multipart/mixed` dialect remote transcoders use to post renditions back, as
//! go-livepeer's `/transcodeResults` does: one part per rendition with its name and pixel count in
//! part headers.
//!
//! Design: bodies are small (a few renditions of one segment) and fully buffered on both sides, so
//! a tiny writer and parser over byte slices beat a streaming multipart dependency. The boundary
//! is random per body; the parser still refuses malformed input with a typed error rather than
//! panicking, because the poster is a remote peer.

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;

/// One part: headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Header (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Bytes,
}

impl Part {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A body that is not well-formed multipart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// No `boundary=` in the content type.
    #[error("content type {0:?} has no boundary")]
    NoBoundary(String),
    /// The body does not start with the boundary.
    #[error("body does not start with the boundary")]
    NoOpening,
    /// A part's headers are not terminated or not `name: value` lines.
    #[error("part {0} has malformed headers")]
    BadHeaders(usize),
    /// A part is not followed by a boundary.
    #[error("part {0} is not terminated by the boundary")]
    Unterminated(usize),
}

/// Encodes `parts`; returns the content type and the body.
pub fn encode(parts: &[Part]) -> (String, Bytes) {
    let boundary = hex::encode(rand::rng().random::<[u8; 16]>());
    let mut out = BytesMut::new();
    for part in parts {
        out.put_slice(format!("--{boundary}\r\n").as_bytes());
        for (name, value) in &part.headers {
            out.put_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&part.body);
        out.put_slice(b"\r\n");
    }
    out.put_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/mixed; boundary={boundary}"),
        out.freeze(),
    )
}

/// The boundary of a `multipart/...; boundary=X` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .find(|b| !b.is_empty())
        .ok_or_else(|| MultipartError::NoBoundary(content_type.to_string()))
}

/// Parses a body with the given boundary.
pub fn decode(boundary: &str, body: &Bytes) -> Result<Vec<Part>, MultipartError> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    if !body.starts_with(opening.as_bytes()) {
        return Err(MultipartError::NoOpening);
    }
    let mut pos = opening.len();
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let index = parts.len();
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(MultipartError::BadHeaders(index))?;
        let header_end = find(rest, b"\r\n\r\n").ok_or(MultipartError::BadHeaders(index));
        let (headers, body_start) = match header_end {
            Ok(end) => (&rest[..end], end + 4),
            // A part without headers starts directly with the blank line.
            Err(_) if rest.starts_with(b"\r\n") => (&rest[..0], 2),
            Err(e) => return Err(e),
        };
        let headers = std::str::from_utf8(headers)
            .map_err(|_| MultipartError::BadHeaders(index))?
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|line| {
                line.split_once(':')
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .ok_or(MultipartError::BadHeaders(index))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let content = &rest[body_start..];
        let end = find(content, delimiter.as_bytes()).ok_or(MultipartError::Unterminated(index))?;
        let start = body.len() - content.len();
        parts.push(Part {
            headers,
            body: body.slice(start..start + end),
        });
        pos = start + end + delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_binary_parts() {
        let parts = vec![
            Part {
                headers: vec![("Rendition-Name".into(), "P240p".into())],
                body: Bytes::from_static(b"\r\n\x00binary--\r\n"),
            },
            Part {
                headers: vec![("Pixels".into(), "42".into())],
                body: Bytes::new(),
            },
        ];
        let (content_type, body) = encode(&parts);
        let decoded = decode(&boundary(&content_type).unwrap(), &body).unwrap();
        assert_eq!(decoded, parts);
        assert_eq!(decoded[1].header("pixels"), Some("42"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(
            boundary("multipart/mixed").unwrap_err(),
            MultipartError::NoBoundary("multipart/mixed".into())
        );
        assert_eq!(
            decode("b", &Bytes::from_static(b"junk")).unwrap_err(),
            MultipartError::NoOpening
        );
        assert_eq!(
            decode("b", &Bytes::from_static(b"--b\r\nA: 1\r\n\r\nno end")).unwrap_err(),
            MultipartError::Unterminated(0)
        );
    }
}
