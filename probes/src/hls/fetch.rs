//! One GET of a playlist or segment, bounded in time (request timeout, run deadline, stop) and
//! in size (the body is streamed and cut at the limit).

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
    let response = tokio::time::timeout_at(until, client.get(url.clone()).send())
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
    let announced = response.content_length().unwrap_or(0);
    if announced > max_bytes {
        // Refused on the announcement alone: nothing is read.
        return Ok(Fetched {
            status,
            content_type,
            size,
            body: Err(too_large()),
        });
    }
    let mut kept = if keep {
        Vec::with_capacity(announced as usize)
    } else {
        Vec::new()
    };
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
    Ok(Fetched {
        status,
        content_type,
        size,
        body,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
