//! `multipart_results`: a remote transcoder's `/transcodeResults` post through
//! `node_orchestrator::multipart`: the `Content-Type` header (`parse_media_type`, `boundary`)
//! and the body (`decode`), then the reading `/transcodeResults` does of the parts (a `Pixels`
//! header per rendition, perceptual-hash parts). Decoded parts that all carry a header must
//! survive `encode` → `decode` unchanged.
//!
//! Input: the first line (up to `\n`) is the `Content-Type` value, the rest is the body.

use bytes::Bytes;
use node_orchestrator::multipart;

/// Feeds one input; panics are the findings.
pub fn run(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(head);
    let content_type = content_type.trim_end_matches('\r');
    let body = Bytes::copy_from_slice(body);
    if let Ok(media) = multipart::parse_media_type(content_type) {
        assert_eq!(media.essence, media.essence.to_ascii_lowercase());
        let _ = media.param("boundary");
    }
    let Ok(boundary) = multipart::boundary(content_type) else {
        return;
    };
    let Ok(parts) = multipart::decode(&boundary, &body) else {
        return;
    };
    for part in &parts {
        if let Some(pixels) = part.header("Pixels") {
            let _ = pixels.parse::<u64>();
        }
        let _ = part.header("content-type");
        assert!(part.body.len() <= body.len());
    }
    if parts.iter().all(|p| !p.headers.is_empty()) {
        let (content_type, encoded) = multipart::encode(&parts);
        let boundary = multipart::boundary(&content_type).expect("our own boundary");
        let again = multipart::decode(&boundary, &encoded).expect("our own body decodes");
        assert_eq!(again, parts, "decode → encode → decode");
    }
}
