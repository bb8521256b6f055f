//! A small `multipart/form-data` parser over an already bounded buffer, for ai-runner's upload
//! routes (`/image-to-image`, `/upscale`).
//!
//! Why our own: the body is read whole under `max_body_bytes` and a time limit before parsing,
//! so a streaming parser buys nothing, and a slice parser is easy to keep panic-free against
//! hostile input. Only what browsers, curl, reqwest and Go's `mime/multipart` send is accepted.

/// One form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub data: &'a [u8],
}

/// More fields than any ai-runner form has, with room for clients that send extras.
const MAX_FIELDS: usize = 64;
/// RFC 2046 caps boundaries at 70 characters; it also bounds the cost of each search.
const MAX_BOUNDARY: usize = 70;
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The boundary of a `multipart/form-data` content type, or why there is none.
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!(
            "expected a multipart/form-data body, got content type {content_type:?}"
        ));
    }
    for param in parts {
        if let Some((key, value)) = param.split_once('=')
            && key.trim().eq_ignore_ascii_case("boundary")
        {
            let value = unquote(value.trim());
            if value.is_empty() || value.len() > MAX_BOUNDARY {
                return Err("multipart boundary must be 1 to 70 characters".into());
            }
            return Ok(value.to_string());
        }
    }
    Err("multipart/form-data content type has no boundary".into())
}

/// The fields of `body`, in order.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Field<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut pos = if body.starts_with(delimiter) {
        0
    } else {
        let mut crlf_delim = b"\r\n".to_vec();
        crlf_delim.extend_from_slice(delimiter);
        find(body, &crlf_delim, 0).ok_or("multipart body has no opening boundary")? + 2
    };
    let mut close = b"\r\n".to_vec();
    close.extend_from_slice(delimiter);
    let mut fields = Vec::new();
    loop {
        pos += delimiter.len();
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        // Transport padding may follow a delimiter before its line break.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        pos += padding;
        if !body.get(pos..).unwrap_or_default().starts_with(b"\r\n") {
            return Err("multipart boundary is not followed by a line break".into());
        }
        pos += 2;
        let header_end = find(body, b"\r\n\r\n", pos)
            .filter(|end| end - pos <= MAX_HEADER_BYTES)
            .ok_or("multipart part headers are unterminated or too long")?;
        let headers = std::str::from_utf8(&body[pos..header_end])
            .map_err(|_| "multipart part headers are not UTF-8")?;
        let (name, filename) = disposition(headers)?;
        let data_start = header_end + 4;
        let data_end = find(body, &close, data_start).ok_or("multipart body is not terminated")?;
        if fields.len() == MAX_FIELDS {
            return Err(format!("multipart body has more than {MAX_FIELDS} fields"));
        }
        fields.push(Field {
            name,
            filename,
            data: &body[data_start..data_end],
        });
        pos = data_end + 2;
    }
}

/// The field name and file name from a part's `Content-Disposition` header.
fn disposition(headers: &str) -> Result<(String, Option<String>), String> {
    for line in headers.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut params = value.split(';');
        if !params
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("form-data")
        {
            return Err("multipart part is not form-data".into());
        }
        let (mut name, mut filename) = (None, None);
        for param in params {
            if let Some((k, v)) = param.split_once('=') {
                let v = unquote(v.trim()).to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(v),
                    "filename" => filename = Some(v),
                    _ => {}
                }
            }
        }
        let name = name.ok_or("multipart part has no field name")?;
        return Ok((name, filename));
    }
    Err("multipart part has no Content-Disposition header".into())
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        let offset = haystack[i..].iter().position(|b| *b == first)?;
        i += offset;
        if haystack.get(i..i + needle.len())? == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"i.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--X\r\n--XyZ--\r\n";
        let b = boundary("multipart/form-data; boundary=\"XyZ\"").unwrap();
        let fields = parse(body, &b).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].name, "prompt");
        assert_eq!(fields[0].data, b"a cat");
        assert_eq!(fields[1].filename.as_deref(), Some("i.png"));
        assert_eq!(fields[1].data, b"\x89PNG\r\n--X");
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert!(boundary("application/json").is_err());
        assert!(boundary("multipart/form-data").is_err());
        assert!(parse(b"", "a").is_err());
        assert!(
            parse(
                b"--a\r\nContent-Disposition: form-data; name=x\r\n\r\nno end",
                "a"
            )
            .is_err()
        );
        assert!(parse(b"--a\r\nX: y\r\n\r\nv\r\n--a--", "a").is_err());
        assert!(parse(b"--a", "a").is_err());
        assert!(parse(b"--a--", "a").unwrap().is_empty());
        // Truncated at every length: never a panic.
        let body = b"--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--a--\r\n";
        for n in 0..body.len() {
            let _ = parse(&body[..n], "a");
        }
        assert_eq!(parse(body, "a").unwrap()[0].data, b"v");
    }
}
