//! The `multipart/mixed` dialect of go-livepeer's `/transcodeResults`: a remote transcoder posts
//! one part per rendition carrying only `Content-Type`, `Content-Length` and `Pixels`, optionally
//! followed by an `application/octet-stream` part with that rendition's perceptual hash; plus the
//! media-type parsing the orchestrator needs to tell that body from an error report.
//!
//! Design: bodies are small (a few renditions of one segment) and fully buffered on both sides, so
//! a tiny writer and parser over byte slices beat a streaming multipart dependency. The writer
//! emits exactly the bytes Go's `mime/multipart` writer does for the same parts (first delimiter
//! without a leading CRLF, headers in the caller's order — go-livepeer's are sorted by name). The
//! boundary is random per body; the parser still refuses malformed input with a typed error
//! rather than panicking, because the poster is a remote peer.

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
    /// A `Content-Type` value that is not `type/subtype` with well-formed parameters.
    #[error("content type {0:?} is not a media type")]
    BadMediaType(String),
}

/// A parsed `Content-Type` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower-cased.
    pub essence: String,
    /// Parameters in order, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// The parameter `name` (lower case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a `Content-Type` value (RFC 7231 `type/subtype *( ";" name=value )`), refusing what
/// Go's `mime.ParseMediaType` refuses for the forms a transcoder sends: an empty value, a
/// missing subtype, non-token names, unterminated quotes or repeated parameters.
pub fn parse_media_type(value: &str) -> Result<MediaType, MultipartError> {
    let bad = || MultipartError::BadMediaType(value.to_string());
    let (essence, mut rest) = match value.split_once(';') {
        Some((essence, rest)) => (essence, Some(rest)),
        None => (value, None),
    };
    let essence = essence.trim();
    let (kind, subtype) = essence.split_once('/').ok_or_else(bad)?;
    if !is_token(kind) || !is_token(subtype) {
        return Err(bad());
    }
    let mut params: Vec<(String, String)> = Vec::new();
    while let Some(text) = rest {
        let text = text.trim_start();
        if text.is_empty() {
            break;
        }
        let (name, after) = text.split_once('=').ok_or_else(bad)?;
        let name = name.trim().to_ascii_lowercase();
        if !is_token(&name) || params.iter().any(|(n, _)| *n == name) {
            return Err(bad());
        }
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => out.push(chars.next().ok_or_else(bad)?.1),
                    Some((_, c)) => out.push(c),
                    None => return Err(bad()),
                }
            };
            let remainder = quoted[end + 1..].trim_start();
            (out, remainder)
        } else {
            let end = after.find(';').unwrap_or(after.len());
            let token = after[..end].trim_end();
            if !is_token(token) {
                return Err(bad());
            }
            (token.to_string(), &after[end..])
        };
        params.push((name, value));
        rest = match remainder.strip_prefix(';') {
            Some(next) => Some(next),
            None if remainder.is_empty() => None,
            None => return Err(bad()),
        };
    }
    Ok(MediaType {
        essence: essence.to_ascii_lowercase(),
        params,
    })
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
    parse_media_type(content_type)?
        .param("boundary")
        .filter(|b| !b.is_empty())
        .map(str::to_string)
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
    fn writes_what_go_writes() {
        let parts = vec![
            Part {
                headers: vec![
                    ("Content-Length".into(), "2".into()),
                    ("Content-Type".into(), "video/mp2t".into()),
                    ("Pixels".into(), "7".into()),
                ],
                body: Bytes::from_static(b"ts"),
            },
            Part {
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: Bytes::from_static(b"h"),
            },
        ];
        let (content_type, body) = encode(&parts);
        let b = boundary(&content_type).unwrap();
        assert_eq!(content_type, format!("multipart/mixed; boundary={b}"));
        let expected = format!(
            "--{b}\r\nContent-Length: 2\r\nContent-Type: video/mp2t\r\nPixels: 7\r\n\r\nts\r\n\
             --{b}\r\nContent-Type: application/octet-stream\r\n\r\nh\r\n--{b}--\r\n"
        );
        assert_eq!(body, Bytes::from(expected));
    }

    #[test]
    fn media_types_parse_like_go() {
        let parsed = parse_media_type("Multipart/Mixed; Boundary=\"a b\\\"c\"; x=1").unwrap();
        assert_eq!(parsed.essence, "multipart/mixed");
        assert_eq!(parsed.param("boundary"), Some("a b\"c"));
        assert_eq!(parsed.param("x"), Some("1"));
        assert_eq!(
            parse_media_type("livepeer/transcoding-error").unwrap(),
            MediaType {
                essence: "livepeer/transcoding-error".into(),
                params: vec![],
            }
        );
        for bad in [
            "",
            "multipart",
            "multipart/",
            "a b/c",
            "a/b; c",
            "a/b; c=\"open",
            "a/b; c=1; c=2",
            "a/b; c=1 d",
        ] {
            assert!(parse_media_type(bad).is_err(), "{bad:?} parsed");
        }
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
