//! The orchestrator's side of remote transcoders: who is attached, who gets the next segment,
//! and the hand-back of results.
//!
//! Design: each `RegisterTranscoder` call becomes an [`Attached`] entry holding the sending half
//! of its `NotifySegment` stream. Work goes to the transcoder with the lowest load relative to its
//! declared capacity (ties broken by who was given work longest ago, so equal transcoders
//! alternate). Every task is a oneshot waiting for the transcoder's `/transcodeResults` POST.
//!
//! A transcoder that goes away is noticed two ways: its work stream closes (a killed process's
//! connection is closed by its kernel, so this is at once), or it misses the task deadline, after
//! which it is detached as go-livepeer's `RemoteTranscoder.Transcode` detaches it (`signalEOF`),
//! which ends its stream so a live one registers afresh. Either way the segment itself never
//! failed, so it is sent to another transcoder, as go-livepeer's `RemoteTranscoderManager.Transcode`
//! retries on a fatal transcoder error, for as long as the broadcaster still waits for it (go's
//! segment timeout, `max(8 s, 4 × duration)`: past it the broadcaster has moved on, the reason go
//! gives for not retrying a timed-out task). Where go answers "no transcoders available" when the
//! others are busy, the segment waits for their next free slot within that time: it was admitted
//! while there was room, and the broadcaster is still waiting. With no transcoder left it fails at
//! once, so the broadcaster can go to another orchestrator in time. A detached transcoder is no
//! longer in the pool, so it is never picked again. An error the transcoder itself reports is
//! final, as in go: another transcoder would meet the same segment.
//!
//! go-livepeer's result parts carry only bytes and pixel counts, in the order of the task's
//! profiles, so each task keeps the profiles it was sent and [`RemotePool::complete`] names the
//! renditions from them; a count that does not match fails the task. A task's source is served at
//! an unguessable name ([`RemotePool::source_name`]) because a go transcoder fetches it with a
//! plain GET and no credentials; a retried segment keeps its source and name, and gets a new task
//! id, so a late answer from the transcoder that lost it matches nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::net::{NotifySegment, SegData};
use rand::Rng;
use reference_transcoder::Profile;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tonic::Status;

use crate::profiles;
use crate::transcode::{Rendition, Transcoded};

/// Why a remote task could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// Every transcoder is at capacity (or none is attached).
    #[error("OrchestratorBusy")]
    Busy,
    /// The task was given out but failed.
    #[error("{0}")]
    Failed(String),
}

/// How a transcoder whose work stream closed went.
const DISCONNECTED: &str = "disconnected";

/// The stream half a registered transcoder reads.
pub type NotifyStream = mpsc::Receiver<Result<NotifySegment, Status>>;

#[derive(Debug)]
struct Attached {
    id: u64,
    capacity: usize,
    load: usize,
    assigned: u64,
    completed: u64,
    failed: u64,
    last_assigned: u64,
    notify: mpsc::Sender<Result<NotifySegment, Status>>,
    /// Never sent on: dropped with the entry, it tells [`RemotePool::watch`] to let go of its
    /// handle on the work stream, so a detached transcoder's stream ends.
    detached: watch::Sender<()>,
}

#[derive(Debug)]
struct Task {
    transcoder: u64,
    /// The profiles the task was sent with, in order: result parts are matched to them.
    profiles: Vec<Profile>,
    reply: oneshot::Sender<Result<Transcoded, TaskFailure>>,
}

/// Why a task ended without renditions.
#[derive(Debug)]
enum TaskFailure {
    /// The transcoder answered with an error, or with results that do not match the task.
    Reported(String),
    /// The transcoder went away with the task.
    Lost(String),
}

/// A task's fate on one transcoder.
enum Attempt {
    /// The transcoder's answer: renditions, or an error that another transcoder would meet too.
    Answered(Result<Transcoded, String>),
    /// The transcoder is gone (its stream closed, or it missed the deadline and was detached);
    /// the segment may go to another.
    Lost(String),
}

/// One rendition as a remote transcoder posts it: bytes and encoded pixels, nothing else.
#[derive(Debug, Clone)]
pub struct PostedRendition {
    /// The rendition's bytes.
    pub data: Bytes,
    /// Encoded pixels (the part's `Pixels` header).
    pub pixels: u64,
}

/// A remote transcoder's successful result for one task.
#[derive(Debug, Clone)]
pub struct Posted {
    /// Renditions in the order of the task's profiles.
    pub renditions: Vec<PostedRendition>,
    /// Decoded source pixels (the top-level `Pixels` header).
    pub decoded_pixels: u64,
}

/// What became of a result handed to [`RemotePool::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The waiting segment got the result (or the transcoder's error).
    Delivered,
    /// The result could not be matched to the task, which failed with this reason.
    Mismatch(String),
    /// No task with that id is waiting (finished, timed out, or never given out).
    NoTask,
}

/// A transcoder as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TranscoderStatus {
    /// Registration id.
    pub id: u64,
    /// Declared capacity (concurrent segments).
    pub capacity: usize,
    /// Segments in flight.
    pub load: usize,
    /// Segments given out.
    pub assigned: u64,
    /// Segments completed.
    pub completed: u64,
    /// Segments failed.
    pub failed: u64,
}

/// One task handed to a transcoder: on drop (the task ended, or its segment's request went
/// away) the task entry is removed and the transcoder's load given back.
struct Dispatched<'a> {
    pool: &'a RemotePool,
    transcoder: u64,
    task_id: i64,
    succeeded: bool,
}

impl Drop for Dispatched<'_> {
    fn drop(&mut self) {
        self.pool.lock_tasks().remove(&self.task_id);
        if let Some(t) = self
            .pool
            .lock_transcoders()
            .iter_mut()
            .find(|t| t.id == self.transcoder)
        {
            t.load = t.load.saturating_sub(1);
            if self.succeeded {
                t.completed += 1;
            } else {
                t.failed += 1;
            }
        }
        self.pool.freed.notify_waiters();
    }
}

/// Attached remote transcoders and their tasks.
#[derive(Debug)]
pub struct RemotePool {
    transcoders: Mutex<Vec<Attached>>,
    tasks: Mutex<HashMap<i64, Task>>,
    next_id: AtomicU64,
    next_task: AtomicI64,
    tick: AtomicU64,
    timeout: Duration,
    /// Signalled when a slot may have come free (a task ended, a transcoder came or went).
    freed: Notify,
}

impl RemotePool {
    /// A pool whose tasks time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            transcoders: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_task: AtomicI64::new(1),
            tick: AtomicU64::new(0),
            timeout,
            freed: Notify::new(),
        }
    }

    /// Attaches a transcoder of `capacity`; returns its id and the stream it reads.
    pub fn register(&self, capacity: usize) -> (u64, NotifyStream) {
        let (notify, stream) = mpsc::channel(capacity.max(1) * 2 + 2);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock_transcoders().push(Attached {
            id,
            capacity: capacity.max(1),
            load: 0,
            assigned: 0,
            completed: 0,
            failed: 0,
            last_assigned: 0,
            notify,
            detached: watch::channel(()).0,
        });
        tracing::info!(id, capacity, "remote transcoder attached");
        self.freed.notify_waiters();
        (id, stream)
    }

    /// Waits until transcoder `id`'s stream is closed, then detaches it and hands its tasks back;
    /// returns early when it was detached for another reason.
    pub async fn watch(&self, id: u64) {
        let Some((notify, mut detached)) = self
            .lock_transcoders()
            .iter()
            .find(|t| t.id == id)
            .map(|t| (t.notify.clone(), t.detached.subscribe()))
        else {
            return;
        };
        tokio::select! {
            () = notify.closed() => {}
            _ = detached.changed() => {}
        }
        drop(notify);
        self.detach(id, DISCONNECTED);
    }

    /// Removes transcoder `id` and hands what it held back to the waiting segments as lost
    /// because it `went` (their retry's reason). Dropping its entry drops the sending half of its
    /// work stream, which ends the stream: a live transcoder registers afresh.
    fn detach(&self, id: u64, went: &str) {
        let mut transcoders = self.lock_transcoders();
        let before = transcoders.len();
        transcoders.retain(|t| t.id != id);
        if transcoders.len() == before {
            return;
        }
        drop(transcoders);
        let lost: Vec<(i64, Task)> = {
            let mut tasks = self.lock_tasks();
            let ids: Vec<i64> = tasks
                .iter()
                .filter(|(_, t)| t.transcoder == id)
                .map(|(k, _)| *k)
                .collect();
            ids.into_iter()
                .filter_map(|k| tasks.remove(&k).map(|t| (k, t)))
                .collect()
        };
        for (task, entry) in lost {
            tracing::warn!(
                transcoder = id,
                task,
                "remote transcoder lost with a segment in flight"
            );
            let _ = entry.reply.send(Err(TaskFailure::Lost(format!(
                "remote transcoder {id} {went}"
            ))));
        }
        tracing::info!(id, went, "remote transcoder detached");
        self.freed.notify_waiters();
    }

    /// Whether some transcoder has a free slot.
    pub fn has_capacity(&self) -> bool {
        self.lock_transcoders().iter().any(|t| t.load < t.capacity)
    }

    /// Attached transcoders.
    pub fn status(&self) -> Vec<TranscoderStatus> {
        self.lock_transcoders()
            .iter()
            .map(|t| TranscoderStatus {
                id: t.id,
                capacity: t.capacity,
                load: t.load,
                assigned: t.assigned,
                completed: t.completed,
                failed: t.failed,
            })
            .collect()
    }

    /// Number of attached transcoders.
    pub fn len(&self) -> usize {
        self.lock_transcoders().len()
    }

    /// Whether no transcoder is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `seg_data` (source at `url`) to the least-loaded transcoder and waits for its result;
    /// when that transcoder is lost with the segment, sends it to the next one.
    pub async fn run(
        &self,
        url: String,
        seg_data: SegData,
        orch_id: String,
    ) -> Result<Transcoded, RemoteError> {
        let started = Instant::now();
        let profiles = profiles::requested(&seg_data)
            .map_err(|e| RemoteError::Failed(format!("task profiles: {e}")))?;
        let patience = broadcaster_timeout(seg_data.duration);
        let mut lost: Option<String> = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the slots are looked at, so a slot freed in between wakes it.
            freed.as_mut().enable();
            let Some((dispatched, notify)) = self.dispatch() else {
                let Some(reason) = &lost else {
                    return Err(RemoteError::Busy);
                };
                if self.is_empty() {
                    return Err(RemoteError::Failed(format!(
                        "{reason}, and no other transcoder is attached"
                    )));
                }
                // Admitted while there was room for it: the segment waits for the survivors'
                // next free slot rather than fail, for as long as the broadcaster waits.
                let left = patience.saturating_sub(started.elapsed());
                if tokio::time::timeout(left, freed).await.is_err() {
                    return Err(RemoteError::Failed(format!(
                        "{reason}, and no other transcoder was free within the broadcaster's \
                         {patience:?}"
                    )));
                }
                continue;
            };
            let message = NotifySegment {
                url: url.clone(),
                seg_data: Some(seg_data.clone()),
                task_id: dispatched.task_id,
                orch_id: orch_id.clone(),
                ..Default::default()
            };
            let reason = match self.attempt(dispatched, notify, message, &profiles).await {
                Attempt::Answered(Ok(mut done)) => {
                    if done.elapsed.is_zero() {
                        done.elapsed = started.elapsed();
                    }
                    return Ok(done);
                }
                Attempt::Answered(Err(reason)) => return Err(RemoteError::Failed(reason)),
                Attempt::Lost(reason) => reason,
            };
            if started.elapsed() >= patience {
                return Err(RemoteError::Failed(format!(
                    "{reason}; not retried: the broadcaster stops waiting after {patience:?}"
                )));
            }
            tracing::warn!(%reason, "retrying the segment on another transcoder");
            lost = Some(reason);
        }
    }

    /// Takes a slot on the least-loaded transcoder with one free, for a new task id.
    fn dispatch(&self) -> Option<(Dispatched<'_>, mpsc::Sender<Result<NotifySegment, Status>>)> {
        let mut transcoders = self.lock_transcoders();
        let chosen = transcoders
            .iter_mut()
            .filter(|t| t.load < t.capacity)
            .min_by(|a, b| {
                let la = a.load as f64 / a.capacity as f64;
                let lb = b.load as f64 / b.capacity as f64;
                la.total_cmp(&lb)
                    .then(a.last_assigned.cmp(&b.last_assigned))
            })?;
        chosen.load += 1;
        chosen.assigned += 1;
        chosen.last_assigned = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        // From here the transcoder's load and the task entry belong to this guard, so they are
        // given back even when the segment's future is dropped halfway (hyper drops a segment's
        // response body, and the future with it, when the broadcaster disconnects mid-transcode).
        let dispatched = Dispatched {
            pool: self,
            transcoder: chosen.id,
            task_id: self.next_task.fetch_add(1, Ordering::Relaxed),
            succeeded: false,
        };
        Some((dispatched, chosen.notify.clone()))
    }

    /// One task on one transcoder, until it answers, is lost, or misses the deadline (and is
    /// detached for it).
    async fn attempt(
        &self,
        mut dispatched: Dispatched<'_>,
        notify: mpsc::Sender<Result<NotifySegment, Status>>,
        message: NotifySegment,
        profiles: &[Profile],
    ) -> Attempt {
        let transcoder = dispatched.transcoder;
        let (reply, answer) = oneshot::channel();
        self.lock_tasks().insert(
            dispatched.task_id,
            Task {
                transcoder,
                profiles: profiles.to_vec(),
                reply,
            },
        );
        let sent = notify.send(Ok(message)).await;
        // Not held while waiting: once the transcoder is detached, its stream must be able to end.
        drop(notify);
        if sent.is_err() {
            // The stream is closed: detached now rather than when its watcher runs, so the retry
            // cannot pick it again.
            self.detach(transcoder, DISCONNECTED);
            return Attempt::Lost(format!("remote transcoder {transcoder} {DISCONNECTED}"));
        }
        let attempt = match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(Ok(mut done))) => {
                done.by = format!("remote-{transcoder}");
                Attempt::Answered(Ok(done))
            }
            Ok(Ok(Err(TaskFailure::Reported(reason)))) => Attempt::Answered(Err(reason)),
            Ok(Ok(Err(TaskFailure::Lost(reason)))) => Attempt::Lost(reason),
            Ok(Err(_)) => Attempt::Answered(Err("task dropped".into())),
            Err(_) => {
                let went = format!("timed out after {:?}", self.timeout);
                // Its other tasks are handed back too: a transcoder that let one task lapse is
                // not trusted with more, as go-livepeer's `signalEOF` on a timeout.
                self.detach(transcoder, &went);
                Attempt::Lost(format!("remote transcoder {transcoder} {went}"))
            }
        };
        dispatched.succeeded = matches!(attempt, Attempt::Answered(Ok(_)));
        attempt
    }

    /// Delivers a transcoder's result (or its error) for `task_id`, naming each posted rendition
    /// after the task's profile at the same position; frames are pixels ÷ (width × height).
    pub fn complete(&self, task_id: i64, result: Result<Posted, String>) -> Completion {
        let Some(task) = self.lock_tasks().remove(&task_id) else {
            return Completion::NoTask;
        };
        let (result, completion) = match result {
            Err(reason) => (Err(TaskFailure::Reported(reason)), Completion::Delivered),
            Ok(posted) if posted.renditions.len() != task.profiles.len() => {
                let reason = format!(
                    "remote transcoder {} posted {} renditions for {} profiles",
                    task.transcoder,
                    posted.renditions.len(),
                    task.profiles.len()
                );
                (
                    Err(TaskFailure::Reported(reason.clone())),
                    Completion::Mismatch(reason),
                )
            }
            Ok(posted) => {
                let renditions = posted
                    .renditions
                    .into_iter()
                    .zip(&task.profiles)
                    .map(|(posted, profile)| {
                        let area = u64::from(profile.width) * u64::from(profile.height);
                        Rendition {
                            profile: profile.name.clone(),
                            width: profile.width,
                            height: profile.height,
                            frames: posted.pixels.checked_div(area).unwrap_or(0),
                            pixels: posted.pixels,
                            data: posted.data,
                        }
                    })
                    .collect();
                let done = Transcoded {
                    renditions,
                    decoded_pixels: posted.decoded_pixels,
                    elapsed: Duration::ZERO,
                    by: String::new(),
                };
                (Ok(done), Completion::Delivered)
            }
        };
        // A closed receiver means the segment's request went away meanwhile.
        match task.reply.send(result) {
            Ok(()) => completion,
            Err(_) => Completion::NoTask,
        }
    }

    /// The store name (`task/<name>.ts`, served at `/task/<name>.ts`) of a task's source: 128
    /// bits from the thread-local CSPRNG, so the URL itself is the credential, since go-livepeer's
    /// transcoders fetch it with a plain GET. The task id is deliberately not part of it: ids
    /// are sequential, and a name must reveal nothing about the tasks around it.
    pub fn source_name() -> String {
        format!("task/{}.ts", hex::encode(rand::rng().random::<[u8; 16]>()))
    }

    fn lock_transcoders(&self) -> std::sync::MutexGuard<'_, Vec<Attached>> {
        self.transcoders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a broadcaster waits for a segment of `duration_ms`: go-livepeer's
/// `max(common.HTTPTimeout, 4 × duration)`, which is also go's remote task deadline.
fn broadcaster_timeout(duration_ms: i32) -> Duration {
    (Duration::from_millis(u64::try_from(duration_ms).unwrap_or(0)) * 4).max(Duration::from_secs(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> SegData {
        let ladder = reference_transcoder::ladder::parse_ladder("P144p30fps16x9").unwrap();
        SegData {
            duration: 2000,
            full_profiles3: profiles::wire_ladder(&ladder),
            ..SegData::default()
        }
    }

    fn posted() -> Posted {
        Posted {
            renditions: vec![PostedRendition {
                data: Bytes::from_static(b"rendition"),
                pixels: 256 * 144 * 60,
            }],
            decoded_pixels: 320 * 180 * 60,
        }
    }

    async fn next_task(stream: &mut NotifyStream) -> NotifySegment {
        tokio::time::timeout(Duration::from_secs(5), stream.recv())
            .await
            .expect("a task within the deadline")
            .expect("the stream is open")
            .expect("a task, not an error")
    }

    #[tokio::test]
    async fn a_segment_whose_transcoder_disconnects_is_sent_to_the_other_one() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_secs(60)));
        let (first, mut first_stream) = pool.register(1);
        let (_, mut second_stream) = pool.register(1);
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run("https://o/task/x.ts".into(), segment(), String::new())
                .await
        });
        let task = next_task(&mut first_stream).await;
        assert_eq!(pool.status()[0].load, 1);
        // The transcoder dies: its stream goes away with it.
        drop(first_stream);
        pool.watch(first).await;
        let retried = next_task(&mut second_stream).await;
        assert_eq!(retried.url, task.url, "the same source");
        assert_ne!(retried.task_id, task.task_id, "a new task id");
        assert_eq!(
            pool.complete(task.task_id, Ok(posted())),
            Completion::NoTask,
            "a late answer for the lost task matches nothing"
        );
        assert_eq!(
            pool.complete(retried.task_id, Ok(posted())),
            Completion::Delivered
        );
        let done = segment.await.unwrap().unwrap();
        assert_eq!(done.by, "remote-2");
        let status = pool.status();
        assert_eq!(status.len(), 1, "{status:?}");
        assert_eq!((status[0].id, status[0].completed), (2, 1));
    }

    #[tokio::test]
    async fn a_transcoder_past_the_deadline_is_detached_and_its_segment_retried() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_millis(200)));
        let (first, mut first_stream) = pool.register(1);
        let watching = tokio::spawn({
            let pool = pool.clone();
            async move { pool.watch(first).await }
        });
        let (_, mut second_stream) = pool.register(1);
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run("https://o/task/x.ts".into(), segment(), String::new())
                .await
        });
        let stuck = next_task(&mut first_stream).await;
        let retried = next_task(&mut second_stream).await;
        assert_ne!(retried.task_id, stuck.task_id);
        // The stuck transcoder's stream ends, so a live one would register afresh.
        let end = tokio::time::timeout(Duration::from_secs(5), first_stream.recv())
            .await
            .expect("the stream ends");
        assert!(end.is_none(), "{end:?}");
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watcher lets go")
            .unwrap();
        pool.complete(retried.task_id, Ok(posted()));
        assert_eq!(segment.await.unwrap().unwrap().by, "remote-2");
        assert_eq!(pool.status().len(), 1);
    }

    #[tokio::test]
    async fn a_lost_segment_waits_for_the_busy_survivors_next_slot() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_secs(60)));
        let (first, mut first_stream) = pool.register(1);
        let (_, mut second_stream) = pool.register(1);
        let run = |pool: std::sync::Arc<RemotePool>| {
            tokio::spawn(async move {
                pool.run("https://o/task/x.ts".into(), segment(), String::new())
                    .await
            })
        };
        let lost = run(pool.clone());
        let doomed = next_task(&mut first_stream).await;
        let busy = run(pool.clone());
        let other = next_task(&mut second_stream).await;
        drop(first_stream);
        pool.watch(first).await;
        assert_eq!(pool.status()[0].load, 1, "the survivor is still busy");
        pool.complete(other.task_id, Ok(posted()));
        busy.await.unwrap().unwrap();
        let retried = next_task(&mut second_stream).await;
        assert_eq!(retried.url, doomed.url);
        pool.complete(retried.task_id, Ok(posted()));
        assert_eq!(lost.await.unwrap().unwrap().by, "remote-2");
    }

    #[tokio::test]
    async fn an_error_the_transcoder_reports_is_final() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_secs(60)));
        let (_, mut first_stream) = pool.register(1);
        let (_, mut second_stream) = pool.register(1);
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run("https://o/task/x.ts".into(), segment(), String::new())
                .await
        });
        let task = next_task(&mut first_stream).await;
        pool.complete(task.task_id, Err("unsupported codec".into()));
        assert_eq!(
            segment.await.unwrap().unwrap_err(),
            RemoteError::Failed("unsupported codec".into())
        );
        assert!(second_stream.try_recv().is_err(), "not retried");
        assert_eq!(pool.status().len(), 2, "the transcoder stays attached");
    }

    #[tokio::test]
    async fn a_lost_segment_with_no_other_transcoder_fails_at_once_naming_the_loss() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_secs(60)));
        let (only, mut stream) = pool.register(1);
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run("https://o/task/x.ts".into(), segment(), String::new())
                .await
        });
        next_task(&mut stream).await;
        drop(stream);
        pool.watch(only).await;
        let err = segment.await.unwrap().unwrap_err();
        assert_eq!(
            err,
            RemoteError::Failed(
                "remote transcoder 1 disconnected, and no other transcoder is attached".into()
            )
        );
    }

    #[test]
    fn the_broadcaster_waits_go_livepeers_segment_timeout() {
        assert_eq!(broadcaster_timeout(2000), Duration::from_secs(8));
        assert_eq!(broadcaster_timeout(3000), Duration::from_secs(12));
        assert_eq!(broadcaster_timeout(-5), Duration::from_secs(8));
    }
}
