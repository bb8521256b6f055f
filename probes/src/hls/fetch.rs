//! One GET of a playlist or segment, bounded in time (request timeout, run deadline, stop) and
//! in size (the body is streamed and cut at the limit), optionally of one byte range.
//!
//! A byte range is asked with a `Range` header. A server that answers `206` sends the range; one
//! that ignores the header and answers `200` with the whole resource is read only up to the
//! range's end, keeping the range, so either way the caller gets exactly the bytes it asked for
//! or an error saying why not.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use url::Url;

use super::events::PullError;
use super::stop::{PullStop, after};

/// A finished GET: status and headers, and the body or why it was not received whole.
pub(super) struct Fetched {
    pub(super) status: u16,
    pub(super) content_type: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) size: u64,
    pub(super) body: Result<Bytes, PullError>,
}

/// What one GET may take.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// The request's own timeout (headers and body).
    pub(super) timeout: Duration,
    /// The run's deadline, which the request never runs past.
    pub(super) deadline: Instant,
    /// Keep the body (else only count it).
    pub(super) keep: bool,
    /// Bytes read at most: the body is streamed and cut there (a failure).
    pub(super) max_bytes: u64,
    /// Only these bytes of the resource: offset and length.
    pub(super) range: Option<(u64, u64)>,
}

/// GETs `url` within `limits`, never past a stop. Non-2xx statuses are errors.
pub(super) async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    limits: Limits,
    stop: &PullStop,
) -> Result<Fetched, PullError> {
    let mut stop = stop.clone();
    tokio::select! {
        fetched = fetch_inner(client, url, limits) => fetched,
        _ = stop.wait() => Err(PullError::Deadline { url: url.to_string() }),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    url: &Url,
    limits: Limits,
) -> Result<Fetched, PullError> {
    let Limits {
        timeout,
        deadline,
        keep,
        max_bytes,
        range,
    } = limits;
    let own_limit = after(timeout);
    let until = deadline.min(own_limit);
    // Cut by the run's end rather than by the server's slowness: not the target's fault.
    let timeout_err = || {
        if deadline < own_limit {
            PullError::Deadline {
                url: url.to_string(),
            }
        } else {
            PullError::Timeout {
                url: url.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }
        }
    };
    let range_err = |offset: u64, length: u64, reason: String| PullError::Range {
        url: url.to_string(),
        offset,
        end: offset.saturating_add(length),
        reason,
    };
    if let Some((offset, length)) = range {
        if length == 0 || offset.checked_add(length).is_none() {
            return Err(range_err(
                offset,
                length,
                "an empty or impossible range".into(),
            ));
        }
        if length > max_bytes {
            return Err(PullError::TooLarge {
                url: url.to_string(),
                limit: max_bytes,
            });
        }
    }
    let mut request = client.get(url.clone());
    if let Some((offset, length)) = range {
        request = request.header(
            reqwest::header::RANGE,
            format!("bytes={offset}-{}", offset + length - 1),
        );
    }
    let response = tokio::time::timeout_at(until, request.send())
        .await
        .map_err(|_| timeout_err())?
        .map_err(|e| PullError::Transport {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let cache_control = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !response.status().is_success() {
        return Err(PullError::Status {
            url: url.to_string(),
            status,
        });
    }
    let too_large = || PullError::TooLarge {
        url: url.to_string(),
        limit: max_bytes,
    };
    let mut response = response;
    let mut size = 0u64;
    // Of a whole resource sent in answer to a range, only the range is kept.
    let window = match range {
        Some((offset, length)) if status != 206 => Some((offset, offset + length)),
        _ => None,
    };
    let announced = response.content_length().unwrap_or(0);
    if window.is_none() && announced > max_bytes {
        // Refused on the announcement alone: nothing is read.
        return Ok(Fetched {
            status,
            content_type,
            cache_control,
            size,
            body: Err(too_large()),
        });
    }
    let mut kept = if keep {
        Vec::with_capacity(announced.min(max_bytes) as usize)
    } else {
        Vec::new()
    };
    // Position in the resource of the next byte read, when only a window of it is kept.
    let mut position = 0u64;
    let body = loop {
        match tokio::time::timeout_at(until, response.chunk()).await {
            Err(_) => break Err(timeout_err()),
            Ok(Err(e)) => {
                break Err(PullError::Truncated {
                    url: url.to_string(),
                    reason: error_chain(&e),
                });
            }
            Ok(Ok(Some(chunk))) => {
                let chunk = match window {
                    Some((start, end)) => {
                        let chunk_start = position;
                        position += chunk.len() as u64;
                        let from = start.saturating_sub(chunk_start).min(chunk.len() as u64);
                        let to = end.saturating_sub(chunk_start).min(chunk.len() as u64);
                        let piece = chunk.slice(from as usize..to as usize);
                        if position >= end {
                            size += piece.len() as u64;
                            if keep {
                                kept.extend_from_slice(&piece);
                            }
                            break Ok(Bytes::from(kept));
                        }
                        piece
                    }
                    None => chunk,
                };
                let room = max_bytes - size;
                if chunk.len() as u64 > room {
                    // Stop at the cap: keep nothing of a body that broke it.
                    size = max_bytes;
                    break Err(too_large());
                }
                size += chunk.len() as u64;
                if keep {
                    kept.extend_from_slice(&chunk);
                }
            }
            Ok(Ok(None)) => break Ok(Bytes::from(kept)),
        }
    };
    let body = match (body, range) {
        (Ok(_), Some((offset, length))) if size != length => Err(range_err(
            offset,
            length,
            format!("HTTP {status} held {size} of its {length} bytes"),
        )),
        (body, _) => body,
    };
    Ok(Fetched {
        status,
        content_type,
        cache_control,
        size,
        body,
    })
}

/// An error and its sources, `: `-joined: reqwest's own message names only the outer layer.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
