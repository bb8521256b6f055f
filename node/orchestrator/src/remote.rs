//! The orchestrator's side of remote transcoders: who is attached, who gets the next segment,
//! and the hand-back of results.
//!
//! Design: each `RegisterTranscoder` call becomes an [`Attached`] entry holding the sending half
//! of its `NotifySegment` stream. Work goes to the transcoder with the lowest load relative to its
//! declared capacity (ties broken by who was given work longest ago, so equal transcoders
//! alternate). Every task is a oneshot waiting for the transcoder's `/transcodeResults` POST; when
//! a transcoder's stream closes (it was killed or disconnected), its in-flight tasks fail at once
//! with a reason, and a task timeout backs that up, so a lost transcoder costs at most the
//! segments it held and never hangs a broadcaster.
//!
//! go-livepeer's result parts carry only bytes and pixel counts, in the order of the task's
//! profiles, so each task keeps the profiles it was sent and [`RemotePool::complete`] names the
//! renditions from them; a count that does not match fails the task. A task's source is served at
//! an unguessable name ([`RemotePool::source_name`]) because a go transcoder fetches it with a
//! plain GET and no credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::net::{NotifySegment, SegData};
use rand::Rng;
use reference_transcoder::Profile;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
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
}

#[derive(Debug)]
struct Task {
    transcoder: u64,
    /// The profiles the task was sent with, in order: result parts are matched to them.
    profiles: Vec<Profile>,
    reply: oneshot::Sender<Result<Transcoded, String>>,
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
        }
    }

    /// Attaches a transcoder of `capacity`; returns its id, the stream it reads and a sender
    /// whose closing signals that the transcoder went away.
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
        });
        tracing::info!(id, capacity, "remote transcoder attached");
        (id, stream)
    }

    /// Waits until transcoder `id`'s stream is closed, then detaches it and fails its tasks.
    pub async fn watch(&self, id: u64) {
        let notify = self
            .lock_transcoders()
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.notify.clone());
        if let Some(notify) = notify {
            notify.closed().await;
        }
        self.detach(id);
    }

    /// Removes transcoder `id` and fails what it held.
    pub fn detach(&self, id: u64) {
        self.lock_transcoders().retain(|t| t.id != id);
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
            let _ = entry
                .reply
                .send(Err(format!("remote transcoder {id} disconnected")));
        }
        tracing::info!(id, "remote transcoder detached");
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

    /// A task id for a segment about to be handed out (the caller stores the source under it).
    pub fn next_task_id(&self) -> i64 {
        self.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `seg_data` (source at `url`) to the least-loaded transcoder and waits for its result.
    pub async fn run(
        &self,
        task_id: i64,
        url: String,
        seg_data: SegData,
        orch_id: String,
    ) -> Result<Transcoded, RemoteError> {
        let started = Instant::now();
        let profiles = profiles::requested(&seg_data)
            .map_err(|e| RemoteError::Failed(format!("task profiles: {e}")))?;
        let (reply, answer) = oneshot::channel();
        let (transcoder, notify) = {
            let mut transcoders = self.lock_transcoders();
            let chosen = transcoders
                .iter_mut()
                .filter(|t| t.load < t.capacity)
                .min_by(|a, b| {
                    let la = a.load as f64 / a.capacity as f64;
                    let lb = b.load as f64 / b.capacity as f64;
                    la.total_cmp(&lb)
                        .then(a.last_assigned.cmp(&b.last_assigned))
                })
                .ok_or(RemoteError::Busy)?;
            chosen.load += 1;
            chosen.assigned += 1;
            chosen.last_assigned = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
            (chosen.id, chosen.notify.clone())
        };
        // From here the transcoder's load and the task entry belong to this guard, so they are
        // given back even when this future is dropped halfway (hyper drops a segment's response
        // body, and this future with it, when the broadcaster disconnects mid-transcode).
        let mut dispatched = Dispatched {
            pool: self,
            transcoder,
            task_id,
            succeeded: false,
        };
        self.lock_tasks().insert(
            task_id,
            Task {
                transcoder,
                profiles,
                reply,
            },
        );
        let message = NotifySegment {
            url,
            seg_data: Some(seg_data),
            task_id,
            orch_id,
            ..Default::default()
        };
        let outcome = if notify.send(Ok(message)).await.is_err() {
            Err(RemoteError::Failed(format!(
                "remote transcoder {transcoder} disconnected"
            )))
        } else {
            match tokio::time::timeout(self.timeout, answer).await {
                Ok(Ok(Ok(mut done))) => {
                    done.by = format!("remote-{transcoder}");
                    if done.elapsed.is_zero() {
                        done.elapsed = started.elapsed();
                    }
                    Ok(done)
                }
                Ok(Ok(Err(reason))) => Err(RemoteError::Failed(reason)),
                Ok(Err(_)) => Err(RemoteError::Failed("task dropped".into())),
                Err(_) => Err(RemoteError::Failed(format!(
                    "remote transcoder {transcoder} timed out after {:?}",
                    self.timeout
                ))),
            }
        };
        dispatched.succeeded = outcome.is_ok();
        outcome
    }

    /// Delivers a transcoder's result (or its error) for `task_id`, naming each posted rendition
    /// after the task's profile at the same position; frames are pixels ÷ (width × height).
    pub fn complete(&self, task_id: i64, result: Result<Posted, String>) -> Completion {
        let Some(task) = self.lock_tasks().remove(&task_id) else {
            return Completion::NoTask;
        };
        let (result, completion) = match result {
            Err(reason) => (Err(reason), Completion::Delivered),
            Ok(posted) if posted.renditions.len() != task.profiles.len() => {
                let reason = format!(
                    "remote transcoder {} posted {} renditions for {} profiles",
                    task.transcoder,
                    posted.renditions.len(),
                    task.profiles.len()
                );
                (Err(reason.clone()), Completion::Mismatch(reason))
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
