//! The Trickle publisher and subscriber: one streamed POST per segment out, one GET per
//! segment in, following the conventions of ai-runner's client and go-livepeer's server.

use crate::TrickleError;
use crate::error::transport_of;
use crate::{CLOSED_HEADER, LATEST_HEADER, LIMIT_HEADER, SEQ_HEADER, STATUS_NOT_RETAINED};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long to wait before asking again for a channel or seq that does not exist yet: short,
/// because live segments are a second or two long.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The content type segments are published with unless told otherwise (ai-runner's).
const DEFAULT_CONTENT_TYPE: &str = "video/mp2t";

fn trimmed(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

async fn http_error(response: reqwest::Response) -> TrickleError {
    let status = response.status().as_u16();
    let limit = response
        .headers()
        .get(LIMIT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if status == 413 {
        return TrickleError::TooLarge {
            limit: limit.unwrap_or(0),
        };
    }
    // Only the start of the body: it is for a log line, and a hostile server could send a lot.
    let mut body = String::new();
    let mut response = response;
    while body.len() < 200 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    let body: String = body.chars().take(200).collect();
    TrickleError::Http(status, body)
}

/// Publishes segments 0, 1, 2 … to one channel.
pub struct Publisher {
    url: String,
    client: reqwest::Client,
    next_seq: u64,
    content_type: String,
}

impl Publisher {
    pub fn new(channel_url: &str, client: reqwest::Client) -> Publisher {
        Publisher {
            url: trimmed(channel_url),
            client,
            next_seq: 0,
            content_type: DEFAULT_CONTENT_TYPE.to_string(),
        }
    }

    /// Publishes with this `Content-Type` (default `video/mp2t`).
    pub fn with_content_type(mut self, content_type: &str) -> Publisher {
        self.content_type = content_type.to_string();
        self
    }

    /// The channel's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the next segment (seq 0, 1, 2 …) as one streamed POST.
    pub async fn next_segment(&mut self) -> Result<SegmentWriter, TrickleError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        // A small queue: a writer faster than the connection waits instead of buffering.
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<Bytes, std::io::Error>(chunk), rx))
        });
        let request = self
            .client
            .post(format!("{}/{seq}", self.url))
            .header(reqwest::header::CONTENT_TYPE, &self.content_type)
            .body(reqwest::Body::wrap_stream(body));
        let task = tokio::spawn(async move {
            let response = request.send().await.map_err(transport_of)?;
            if response.status().is_success() {
                // Drain the (empty) body so the connection can be reused.
                let _ = response.bytes().await;
                Ok(())
            } else {
                Err(http_error(response).await)
            }
        });
        Ok(SegmentWriter {
            seq,
            tx: Some(tx),
            task: Some(task),
        })
    }

    /// Ends the channel (what go-livepeer's publisher does on close).
    pub async fn close(self) -> Result<(), TrickleError> {
        let response = self
            .client
            .delete(&self.url)
            .send()
            .await
            .map_err(transport_of)?;
        // 404: the channel is already gone (never published to, or swept), which is the end.
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(http_error(response).await)
        }
    }
}

/// One segment being published; dropping it without `finish` aborts the upload.
pub struct SegmentWriter {
    seq: u64,
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<Result<(), TrickleError>>>,
}

impl SegmentWriter {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let Some(tx) = &self.tx else {
            return Err(TrickleError::Closed("segment already ended".into()));
        };
        // The server answers before the body's end only to refuse it: report that at once.
        let answered = self.task.as_ref().is_some_and(|task| task.is_finished());
        if !answered && tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The request stopped taking the body: its outcome says why (413, timeout, …).
        self.tx = None;
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Err(err)) => Err(err),
                Ok(Ok(())) => Err(TrickleError::Closed(
                    "the server ended the segment early".into(),
                )),
                Err(err) => Err(TrickleError::Transport(err.to_string())),
            },
            None => Err(TrickleError::Closed("segment already ended".into())),
        }
    }

    /// Waits for the server to answer while the body is still open: it only does so to refuse
    /// or cut the segment (too large, idle too long), so this returns that error. After it
    /// returns, the segment is over.
    pub async fn server_answer(&mut self) -> Result<(), TrickleError> {
        let Some(task) = self.task.take() else {
            return Err(TrickleError::Closed("segment already ended".into()));
        };
        // The body stays open (the sender is still held) while waiting.
        let answer = task.await;
        self.tx = None;
        answer.map_err(|err| TrickleError::Transport(err.to_string()))?
    }

    /// Ends the body and waits for the server's answer.
    pub async fn finish(mut self) -> Result<(), TrickleError> {
        self.tx = None;
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|err| TrickleError::Transport(err.to_string()))?,
            None => Err(TrickleError::Closed("segment already ended".into())),
        }
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // Ending the body normally would publish a truncated segment as complete; cutting the
        // request makes the server mark it failed instead.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads a channel's segments in order.
pub struct Subscriber {
    url: String,
    client: reqwest::Client,
    next_seq: i64,
}

impl Subscriber {
    /// `start`: the first seq to read (-1: the latest / next one).
    pub fn new(channel_url: &str, client: reqwest::Client, start: i64) -> Subscriber {
        Subscriber {
            url: trimmed(channel_url),
            client,
            next_seq: start,
        }
    }

    /// The seq the next call asks for (negative: relative to the write head, as the server
    /// understands it).
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Waits for the next segment's response; `Ok(None)` when the channel has ended. Retries a 404 for a seq not yet published for up to `wait` before giving up.
    pub async fn next_segment(
        &mut self,
        wait: Duration,
    ) -> Result<Option<SegmentReader>, TrickleError> {
        let deadline = Instant::now() + wait;
        loop {
            let url = format!("{}/{}", self.url, self.next_seq);
            let sent = tokio::time::timeout_at(deadline, self.client.get(&url).send()).await;
            let response = match sent {
                Err(_) => return Err(TrickleError::Timeout),
                Ok(Err(err)) => {
                    // A refused connection is a server not up yet: as good as a 404.
                    if err.is_connect() && Instant::now() + RETRY_PAUSE < deadline {
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    return Err(transport_of(err));
                }
                Ok(Ok(response)) => response,
            };
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<i64>().ok())
            };
            let served = header(SEQ_HEADER);
            let latest = header(LATEST_HEADER);
            let status = response.status().as_u16();
            if status == 200 && response.headers().contains_key(CLOSED_HEADER) {
                return Ok(None);
            }
            if status == 200 {
                let seq = match served {
                    Some(seq) if seq >= 0 => seq,
                    // A server that does not say: trust our own count.
                    _ if self.next_seq >= 0 => self.next_seq,
                    _ => {
                        return Err(TrickleError::Http(
                            status,
                            format!("no {SEQ_HEADER} header for seq {}", self.next_seq),
                        ));
                    }
                };
                self.next_seq = seq + 1;
                return Ok(Some(SegmentReader {
                    seq: seq as u64,
                    response,
                }));
            }
            let retry = match status {
                // The channel (or the seq) does not exist yet.
                404 | 408 => true,
                s if s == STATUS_NOT_RETAINED => {
                    // Fell behind the retained window: skip ahead to the live edge, as
                    // ai-runner does; ahead of the head: ask again.
                    if let Some(latest) = latest
                        && self.next_seq >= 0
                        && self.next_seq < latest
                    {
                        tracing::debug!(from = self.next_seq, to = latest, url = %self.url, "trickle subscriber skipping to the live edge");
                        self.next_seq = latest;
                        continue;
                    }
                    true
                }
                _ => false,
            };
            if !retry {
                return Err(http_error(response).await);
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                // A channel that never appeared says so; a seq that never came is a timeout.
                return Err(if status == 404 {
                    http_error(response).await
                } else {
                    TrickleError::Timeout
                });
            }
            drop(response);
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// One segment being received.
pub struct SegmentReader {
    seq: u64,
    response: reqwest::Response,
}

impl SegmentReader {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next chunk as it arrives; `Ok(None)` at the segment's end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TrickleError> {
        self.response.chunk().await.map_err(transport_of)
    }

    /// The whole segment, refusing more than `limit` bytes.
    pub async fn read_all(mut self, limit: usize) -> Result<Bytes, TrickleError> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(TrickleError::TooLarge { limit });
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }
}
