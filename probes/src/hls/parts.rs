//! The parts of one low-latency media playlist, downloaded as they appear and handed over with
//! the moment their last byte arrived.
//!
//! A part the playlist hints (`#EXT-X-PRELOAD-HINT:TYPE=PART`) is requested before it is listed:
//! the server holds the request until the part is there (§6.2.6), so its bytes arrive as soon as
//! they exist. It is handed over once a playlist lists it, which gives its parent, index,
//! duration and whether it is independent; a hint the next playlist does not list is dropped.
//!
//! Parts after the first of their parent rarely start with a key frame, so a part is handed over
//! behind the init segment and the earlier parts of its parent it depends on (from the last
//! `INDEPENDENT=YES` one), which is what a decoder needs to read its pictures. Those earlier
//! parts are kept while the parent is being made, at most `max_segment_bytes` of them. On
//! joining, the parts already listed arrived before the follower looked, so their arrival says
//! nothing of latency: those of the segment being made are downloaded only as that lead, and
//! parts are handed over from the next one on.

use bytes::Bytes;
use tokio::time::Instant;
use url::Url;

use super::events::{PullError, PullEvent, PulledPart};
use super::fetch::{Fetched, Limits, fetch};
use super::follower::{InitSegment, RenditionFollower};
use super::low_latency::{HintRange, LowLatency, Part};
use crate::clock::{UnixMs, now_unix_ms};

/// Where a follower is in a playlist's parts.
#[derive(Default)]
pub(super) struct PartCursor {
    /// The key (media sequence number, index) of the next part to hand over; `None` before the
    /// follower joined.
    next: Option<(u64, u64)>,
    run: Run,
    hinted: Option<Hinted>,
}

/// The parts of the parent being made since its last independent part: what the next part
/// depends on.
#[derive(Default)]
struct Run {
    msn: u64,
    /// The index of its last part.
    last: Option<u64>,
    bytes: Vec<u8>,
    parts: usize,
    /// Whether `bytes` holds every part the next one may depend on.
    complete: bool,
}

impl Run {
    /// A run that starts at `part`: complete when the part is independent or its parent's first.
    fn restart(&mut self, part: &Part) {
        self.msn = part.msn;
        self.last = None;
        self.bytes.clear();
        self.parts = 0;
        self.complete = part.independent || part.index == 0;
    }

    /// Makes `part` the next of the run, restarting it where it cannot continue.
    fn reach(&mut self, part: &Part) {
        let follows =
            part.msn == self.msn && self.last.and_then(|l| l.checked_add(1)) == Some(part.index);
        if part.independent || !follows {
            self.restart(part);
        }
    }

    /// Adds a downloaded part's bytes, within `limit` bytes in all.
    fn push(&mut self, part: &Part, bytes: Option<&[u8]>, limit: u64) {
        self.last = Some(part.index);
        match bytes {
            Some(b) if (self.bytes.len() + b.len()) as u64 <= limit => {
                self.bytes.extend_from_slice(b);
                self.parts += 1;
            }
            _ => {
                self.bytes.clear();
                self.parts = 0;
                self.complete = false;
            }
        }
    }
}

/// A hinted part requested before a playlist listed it.
struct Hinted {
    url: Url,
    range: Option<(u64, u64)>,
    seen: UnixMs,
    started: UnixMs,
    finished: UnixMs,
    fetched: Fetched,
}

impl RenditionFollower {
    /// Hands over every part `ll` lists after the last one handed over, in order, each
    /// downloaded now unless its hinted request already brought it; `seen` is when the playlist
    /// arrived. False when the run's deadline cut a download.
    pub(super) async fn pull_parts(
        &self,
        ll: &LowLatency,
        cursor: &mut PartCursor,
        init: &mut Option<InitSegment>,
        seen: UnixMs,
        deadline: Instant,
    ) -> bool {
        let next = match cursor.next {
            Some(next) => next,
            None => {
                if !self.join(ll, cursor, deadline).await {
                    return false;
                }
                let next = ll.next_part_key();
                cursor.next = Some(next);
                next
            }
        };
        let keep = self.options.keep_bytes;
        for part in ll.parts.iter().filter(|p| p.key() >= next) {
            cursor.run.reach(part);
            let url = self.url.join(&part.uri);
            let mut pulled = PulledPart {
                rendition: self.name.clone(),
                msn: part.msn,
                index: part.index,
                url: url
                    .as_ref()
                    .map_or_else(|_| part.uri.clone(), Url::to_string),
                duration_secs: part.duration_secs,
                independent: part.independent,
                hinted: false,
                first_seen_unix_ms: seen,
                download_started_unix_ms: seen,
                download_finished_unix_ms: seen,
                http_status: None,
                content_type: None,
                size: 0,
                body: Ok(Bytes::new()),
                lead_size: 0,
                lead_parts: None,
                byte_range: part.range,
            };
            let bytes = match (url, part.gap) {
                (Ok(_), true) => Err(PullError::Gap {
                    url: pulled.url.clone(),
                }),
                (Err(e), _) => Err(PullError::BadUri {
                    url: self.url.to_string(),
                    uri: part.uri.clone(),
                    reason: e.to_string(),
                }),
                (Ok(url), false) => {
                    let hinted = cursor
                        .hinted
                        .take_if(|h| h.url == url && h.range == part.range);
                    let fetched = match hinted {
                        Some(h) => {
                            pulled.hinted = true;
                            pulled.first_seen_unix_ms = h.seen;
                            pulled.download_started_unix_ms = h.started;
                            pulled.download_finished_unix_ms = h.finished;
                            Ok(h.fetched)
                        }
                        None => {
                            pulled.download_started_unix_ms = now_unix_ms();
                            let fetched = self.fetch_part(&url, part.range, deadline).await;
                            pulled.download_finished_unix_ms = now_unix_ms();
                            fetched
                        }
                    };
                    match fetched {
                        Ok(f) => {
                            pulled.http_status = Some(f.status);
                            pulled.content_type = f.content_type;
                            pulled.size = f.size;
                            f.body.and_then(|b| non_empty(b, f.size, &pulled.url))
                        }
                        Err(e) => {
                            if let PullError::Status { status, .. } = &e {
                                pulled.http_status = Some(*status);
                            }
                            Err(e)
                        }
                    }
                }
            };
            if matches!(bytes, Err(PullError::Deadline { .. })) {
                return false;
            }
            let init_bytes = match (&bytes, &part.map) {
                (Ok(_), Some(map)) => {
                    match self.init_segment(&map.uri, map.range, init, deadline).await {
                        Ok(b) => Ok(Some(b.clone())),
                        Err(PullError::Deadline { .. }) => return false,
                        Err(e) => Err(PullError::InitSegment {
                            url: map.uri.clone(),
                            reason: e.to_string(),
                        }),
                    }
                }
                _ => Ok(None),
            };
            pulled.body = match (bytes, init_bytes) {
                (Ok(media), Ok(init)) if keep => {
                    let run = &cursor.run;
                    let init = init.unwrap_or_default();
                    pulled.lead_size = (init.len() + run.bytes.len()) as u64;
                    pulled.lead_parts = run.complete.then_some(run.parts);
                    let mut whole = Vec::with_capacity(init.len() + run.bytes.len() + media.len());
                    whole.extend_from_slice(&init);
                    whole.extend_from_slice(&run.bytes);
                    whole.extend_from_slice(&media);
                    cursor
                        .run
                        .push(part, Some(&media), self.options.max_segment_bytes);
                    Ok(Bytes::from(whole))
                }
                (Ok(media), Ok(_)) => Ok(media),
                (Ok(_), Err(e)) | (Err(e), _) => {
                    cursor.run.push(part, None, 0);
                    Err(e)
                }
            };
            cursor.next = Some((part.msn, part.index.saturating_add(1)));
            self.sink.deliver(PullEvent::Part(Box::new(pulled))).await;
            if Instant::now() >= deadline {
                return false;
            }
        }
        // A hinted part this playlist does not list is not coming as hinted (§6.3.8).
        cursor.hinted = None;
        true
    }

    /// Requests the part `ll` hints, which the server holds until the part is there, for at
    /// most the blocking wait; `seen` is when the playlist arrived. What came is kept for the
    /// playlist that lists it.
    pub(super) async fn prefetch_hint(
        &self,
        ll: &LowLatency,
        cursor: &mut PartCursor,
        seen: UnixMs,
        target_secs: f64,
        deadline: Instant,
    ) {
        let Some(hint) = &ll.part_hint else {
            return;
        };
        let range = match hint.range() {
            HintRange::Whole => None,
            HintRange::Bytes(offset, length) => Some((offset, length)),
            // It grows as the server writes it: it is read once listed, with its length.
            HintRange::OpenEnded(_) => return,
        };
        let Ok(url) = self.url.join(&hint.uri) else {
            return;
        };
        if cursor.next != Some(ll.next_part_key()) {
            return;
        }
        let wait = ll
            .blocking_wait(target_secs, self.options.blocking_reload_margin)
            .min(self.options.request_timeout);
        let started = now_unix_ms();
        let fetched = fetch(
            &self.client,
            &url,
            Limits {
                timeout: wait,
                deadline,
                keep: self.options.keep_bytes,
                max_bytes: self.options.max_segment_bytes,
                range,
            },
            &self.stop,
        )
        .await;
        let finished = now_unix_ms();
        // A hint is a guess about the future: one that fails costs nothing but the wait, and
        // the part is read when it is listed.
        if let Ok(f) = fetched
            && f.body.is_ok()
            && f.size > 0
        {
            cursor.hinted = Some(Hinted {
                url,
                range,
                seen,
                started,
                finished,
                fetched: f,
            });
        }
    }

    /// On joining, downloads the listed parts of the segment being made from its last
    /// independent one, as the lead the next parts depend on. False when the deadline passed.
    async fn join(&self, ll: &LowLatency, cursor: &mut PartCursor, deadline: Instant) -> bool {
        let making: Vec<&Part> = ll.parts.iter().filter(|p| p.msn == ll.next_msn).collect();
        let from = making.iter().rposition(|p| p.independent).unwrap_or(0);
        let Some(first) = making.get(from) else {
            cursor.run = Run {
                msn: ll.next_msn,
                complete: true,
                ..Run::default()
            };
            return true;
        };
        cursor.run.restart(first);
        if !self.options.keep_bytes {
            return true;
        }
        for part in &making[from..] {
            cursor.run.reach(part);
            let bytes = match (part.gap, self.url.join(&part.uri)) {
                (false, Ok(url)) => match self.fetch_part(&url, part.range, deadline).await {
                    Err(PullError::Deadline { .. }) => return false,
                    Ok(f) if f.size > 0 => f.body.ok(),
                    Ok(_) => None,
                    Err(_) => None,
                },
                _ => None,
            };
            cursor
                .run
                .push(part, bytes.as_deref(), self.options.max_segment_bytes);
        }
        true
    }

    async fn fetch_part(
        &self,
        url: &Url,
        range: Option<(u64, u64)>,
        deadline: Instant,
    ) -> Result<Fetched, PullError> {
        fetch(
            &self.client,
            url,
            Limits {
                timeout: self.options.request_timeout,
                deadline,
                keep: self.options.keep_bytes,
                max_bytes: self.options.max_segment_bytes,
                range,
            },
            &self.stop,
        )
        .await
    }
}

/// A part's body (empty when not kept) of `size` bytes, refused when there were none: a part
/// holds media (§3.2).
fn non_empty(body: Bytes, size: u64, url: &str) -> Result<Bytes, PullError> {
    if size == 0 {
        Err(PullError::Truncated {
            url: url.to_string(),
            reason: "the part is empty".into(),
        })
    } else {
        Ok(body)
    }
}
