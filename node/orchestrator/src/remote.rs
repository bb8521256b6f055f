//! The orchestrator's side of remote transcoders: who is attached, who gets the next segment,
//! and the hand-back of results.
//!
//! Design: each `RegisterTranscoder` call becomes an [`Attached`] entry holding the sending half
//! of its `NotifySegment` stream. Work goes to the transcoder with the lowest load relative to its
//! declared capacity (ties broken by who was given work longest ago, so equal transcoders
//! alternate). Every task is a oneshot waiting for the transcoder's `/transcodeResults` POST.
//!
//! Choosing by load alone would give a slow transcoder as much work as a fast one, and every
//! segment it takes arrives late. So each transcoder's speed is measured on its answers (media
//! seconds per wall second, the real-time ratio, recent answers weighted most) and work goes to
//! the one expected to finish first: the lowest (load + 1) ÷ (capacity × ratio), a ratio above
//! [`FAST_ENOUGH`] counting as that. Transcoders within 50 % of the best count as equal and
//! alternate. A speed not refreshed for
//! [`SPEED_STALE`] counts as the best known, so a slow transcoder is tried again now and then
//! and one that got faster wins its share back.
//!
//! Every answer is accounted for the pool ([`crate::pool`]): the renditions' frames are counted
//! (a demux) and billed by that count whatever the transcoder claimed, and a sample of answers
//! ([`CheckPolicy`]) is checked against the source ([`crate::verify`]). An answer that fails its
//! check is refused: it goes into the ledger earning nothing, and the segment is sent to another
//! transcoder as a lost one is; after `drop_after_failures` failures the transcoder is detached
//! and its name refused from then on.
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::net::{NotifySegment, SegData};
use rand::Rng;
use reference_transcoder::Profile;
use reference_transcoder::probe::{ContainerFrames, count_frames};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tonic::Status;

use crate::pool::{
    CheckPolicy, CheckSampler, CheckVerdict, LedgerEntry, LedgerRendition, LiveTranscoder,
    PoolLedger, PoolWork,
};
use crate::profiles;
use crate::transcode::{Rendition, Transcoded};
use crate::verify;

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

/// How long a measured speed holds before the transcoder counts as the best known again.
pub const SPEED_STALE: Duration = Duration::from_secs(15);
/// The real-time ratio past which a transcoder counts as fast enough: one that turns a segment
/// around in half its duration adds little latency, and ranking such transcoders by the noise in
/// their turnaround would starve some of them for nothing.
pub const FAST_ENOUGH: f64 = 2.0;
/// Weight of the newest answer in a transcoder's speed.
const SPEED_WEIGHT: f64 = 0.3;
/// Scores within this factor of the best count as equal: the turnaround of equal transcoders on
/// a busy machine varies by a third from answer to answer, while a slow one is slower by
/// multiples.
const SCORE_TOLERANCE: f64 = 1.5;

/// Why a transcoder may not register.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transcoder {name} was dropped from the pool after {failures} failed checks")]
pub struct Dropped {
    /// Its name.
    pub name: String,
    /// Failed checks that dropped it.
    pub failures: u32,
}

/// The stream half a registered transcoder reads.
pub type NotifyStream = mpsc::Receiver<Result<NotifySegment, Status>>;

#[derive(Debug)]
struct Attached {
    id: u64,
    name: String,
    /// Real-time ratio and when it was last measured.
    speed: Option<(f64, Instant)>,
    sampler: CheckSampler,
    failed_checks: u32,
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
    /// The name it registered with, or `remote-<id>`.
    pub name: String,
    /// Media seconds per wall second of its recent answers.
    pub realtime_ratio: Option<f64>,
    /// Answers refused by their check.
    pub failed_checks: u32,
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
    checks: CheckPolicy,
    ledger: Arc<PoolLedger>,
    /// Names dropped for failed checks, with how many.
    dropped: Mutex<HashMap<String, u32>>,
}

/// A task given out: where it went, and whether its answer is checked.
struct Given<'a> {
    dispatched: Dispatched<'a>,
    notify: mpsc::Sender<Result<NotifySegment, Status>>,
    name: String,
    check: bool,
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
            checks: CheckPolicy::default(),
            ledger: Arc::new(
                PoolLedger::new(Duration::from_secs(3600), None)
                    .expect("a ledger without a file cannot fail to open"),
            ),
            dropped: Mutex::new(HashMap::new()),
        }
    }

    /// The same pool, checking answers by `checks` and recording them in `ledger`.
    pub fn with_pool(mut self, checks: CheckPolicy, ledger: Arc<PoolLedger>) -> Self {
        self.checks = checks;
        self.ledger = ledger;
        self
    }

    /// The pool's ledger.
    pub fn ledger(&self) -> &Arc<PoolLedger> {
        &self.ledger
    }

    /// Attaches a transcoder of `capacity` under `name` (`remote-<id>` when it gave none);
    /// returns its id and the stream it reads, or why it may not attach.
    pub fn register(
        &self,
        capacity: usize,
        name: Option<&str>,
    ) -> Result<(u64, NotifyStream), Dropped> {
        if let Some(name) = name
            && let Some(&failures) = self.lock_dropped().get(name)
        {
            return Err(Dropped {
                name: name.to_string(),
                failures,
            });
        }
        let (notify, stream) = mpsc::channel(capacity.max(1) * 2 + 2);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = name.map_or_else(|| format!("remote-{id}"), str::to_string);
        tracing::info!(id, %name, capacity, "remote transcoder attached");
        self.lock_transcoders().push(Attached {
            id,
            name,
            speed: None,
            sampler: CheckSampler::default(),
            failed_checks: 0,
            capacity: capacity.max(1),
            load: 0,
            assigned: 0,
            completed: 0,
            failed: 0,
            last_assigned: 0,
            notify,
            detached: watch::channel(()).0,
        });
        self.freed.notify_waiters();
        Ok((id, stream))
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
        let Some(position) = transcoders.iter().position(|t| t.id == id) else {
            return;
        };
        let name = transcoders.remove(position).name;
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
            self.ledger.lost(&name);
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
                name: t.name.clone(),
                realtime_ratio: t.speed.map(|(ratio, _)| ratio),
                failed_checks: t.failed_checks,
                capacity: t.capacity,
                load: t.load,
                assigned: t.assigned,
                completed: t.completed,
                failed: t.failed,
            })
            .collect()
    }

    /// Attached transcoders as the pool's metrics show them.
    pub fn live(&self) -> Vec<LiveTranscoder> {
        self.lock_transcoders()
            .iter()
            .map(|t| LiveTranscoder {
                name: t.name.clone(),
                id: t.id,
                capacity: t.capacity,
                load: t.load,
                realtime_ratio: t.speed.map(|(ratio, _)| ratio),
                failed_checks: t.failed_checks,
            })
            .collect()
    }

    /// Names dropped for failed checks, with how many failed.
    pub fn dropped(&self) -> HashMap<String, u32> {
        self.lock_dropped().clone()
    }

    /// Number of attached transcoders.
    pub fn len(&self) -> usize {
        self.lock_transcoders().len()
    }

    /// Whether no transcoder is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `seg_data` (whose source `source` is served at `url`) to the transcoder expected to
    /// finish first and waits for its answer, accounted for the pool; when that transcoder is
    /// lost with the segment, or its answer is refused, sends the segment to the next one.
    pub async fn run(
        &self,
        url: String,
        seg_data: SegData,
        orch_id: String,
        source: Bytes,
    ) -> Result<Transcoded, RemoteError> {
        let started = Instant::now();
        let profiles = profiles::requested(&seg_data)
            .map_err(|e| RemoteError::Failed(format!("task profiles: {e}")))?;
        let patience = broadcaster_timeout(seg_data.duration);
        let mut lost: Option<String> = None;
        // Transcoders whose answer to this segment was refused: it is never sent back to them.
        let mut refused_by: HashSet<u64> = HashSet::new();
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the slots are looked at, so a slot freed in between wakes it.
            freed.as_mut().enable();
            let Some(given) = self.dispatch(&refused_by) else {
                let Some(reason) = &lost else {
                    return Err(RemoteError::Busy);
                };
                if !self.any_attached_except(&refused_by) {
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
            let transcoder = given.dispatched.transcoder;
            let message = NotifySegment {
                url: url.clone(),
                seg_data: Some(seg_data.clone()),
                task_id: given.dispatched.task_id,
                orch_id: orch_id.clone(),
                ..Default::default()
            };
            let asked = Instant::now();
            let attempt = self
                .attempt(given.dispatched, given.notify, message, &profiles)
                .await;
            let reason = match attempt {
                Attempt::Answered(Ok(done)) => {
                    let turnaround = asked.elapsed();
                    self.measure(transcoder, seg_data.duration, turnaround);
                    let answer = Answer {
                        transcoder,
                        name: given.name,
                        check: given.check,
                        turnaround,
                    };
                    match self
                        .account(done, answer, &seg_data, &profiles, &source)
                        .await
                    {
                        Ok(mut done) => {
                            if done.elapsed.is_zero() {
                                done.elapsed = started.elapsed();
                            }
                            return Ok(done);
                        }
                        Err(reason) => {
                            refused_by.insert(transcoder);
                            reason
                        }
                    }
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

    /// Whether a transcoder other than `refused_by` is attached.
    fn any_attached_except(&self, refused_by: &HashSet<u64>) -> bool {
        self.lock_transcoders()
            .iter()
            .any(|t| !refused_by.contains(&t.id))
    }

    /// Takes a slot on the transcoder expected to finish first (see the module's header), for a
    /// new task id, passing over `refused_by`.
    fn dispatch(&self, refused_by: &HashSet<u64>) -> Option<Given<'_>> {
        let mut transcoders = self.lock_transcoders();
        let now = Instant::now();
        let fresh = |t: &Attached| {
            t.speed
                .filter(|(_, at)| now.duration_since(*at) < SPEED_STALE)
                .map(|(ratio, _)| ratio.min(FAST_ENOUGH))
        };
        let best_known = transcoders
            .iter()
            .filter_map(fresh)
            .reduce(f64::max)
            .unwrap_or(1.0);
        let score = |t: &Attached| {
            (t.load + 1) as f64 / (t.capacity as f64 * fresh(t).unwrap_or(best_known).max(1e-6))
        };
        let eligible = |t: &Attached| t.load < t.capacity && !refused_by.contains(&t.id);
        let best = transcoders
            .iter()
            .filter(|t| eligible(t))
            .map(score)
            .min_by(f64::total_cmp)?;
        let index = transcoders
            .iter()
            .enumerate()
            .filter(|(_, t)| eligible(t) && score(t) <= best * SCORE_TOLERANCE)
            .min_by_key(|(_, t)| t.last_assigned)
            .map(|(i, _)| i)?;
        let chosen = &mut transcoders[index];
        chosen.load += 1;
        chosen.assigned += 1;
        chosen.last_assigned = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        let check = chosen.sampler.next(&self.checks);
        // From here the transcoder's load and the task entry belong to this guard, so they are
        // given back even when the segment's future is dropped halfway (hyper drops a segment's
        // response body, and the future with it, when the broadcaster disconnects mid-transcode).
        let dispatched = Dispatched {
            pool: self,
            transcoder: chosen.id,
            task_id: self.next_task.fetch_add(1, Ordering::Relaxed),
            succeeded: false,
        };
        Some(Given {
            dispatched,
            notify: chosen.notify.clone(),
            name: chosen.name.clone(),
            check,
        })
    }

    /// Folds one answer's turnaround into transcoder `id`'s speed.
    fn measure(&self, id: u64, duration_ms: i32, turnaround: Duration) {
        let media = f64::from(duration_ms.max(0)) / 1000.0;
        if media <= 0.0 {
            return;
        }
        let ratio = media / turnaround.as_secs_f64().max(1e-3);
        if let Some(t) = self.lock_transcoders().iter_mut().find(|t| t.id == id) {
            let blended = t.speed.map_or(ratio, |(old, _)| {
                old * (1.0 - SPEED_WEIGHT) + ratio * SPEED_WEIGHT
            });
            t.speed = Some((blended, Instant::now()));
        }
    }

    /// Counts (and, when sampled, checks) an answer's renditions, bills them by the count and
    /// names their transcoder; a refused answer goes into the ledger earning nothing and comes
    /// back as the reason to send the segment elsewhere.
    async fn account(
        &self,
        mut done: Transcoded,
        answer: Answer,
        seg: &SegData,
        profiles: &[Profile],
        source: &Bytes,
    ) -> Result<Transcoded, String> {
        let renditions: Vec<Bytes> = done.renditions.iter().map(|r| r.data.clone()).collect();
        let inspecting = Instant::now();
        let inspected = {
            let source = source.clone();
            let profiles = profiles.to_vec();
            let (check, min_psnr_db) = (answer.check, self.checks.min_psnr_db);
            tokio::task::spawn_blocking(move || {
                inspect(&source, &renditions, &profiles, check, min_psnr_db)
            })
            .await
            .unwrap_or_else(|err| Err(format!("inspecting the answer: {err}")))
        };
        let check_ms = answer
            .check
            .then(|| inspecting.elapsed().as_millis() as u64);
        let claimed: Vec<u64> = done.renditions.iter().map(|r| r.pixels).collect();
        let entry = |verdict: CheckVerdict, counted: &[u64]| LedgerEntry {
            at_ms: crate::pool::ledger::now_ms(),
            transcoder: answer.name.clone(),
            manifest_id: hex::encode(&seg.manifest_id),
            seq: u64::try_from(seg.seq).unwrap_or(0),
            duration_ms: u64::try_from(seg.duration).unwrap_or(0),
            decoded_pixels: done.decoded_pixels,
            renditions: done
                .renditions
                .iter()
                .zip(&claimed)
                .zip(counted.iter().chain(std::iter::repeat(&0)))
                .map(|((r, &claimed), &counted)| LedgerRendition {
                    profile: r.profile.clone(),
                    width: r.width,
                    height: r.height,
                    claimed_pixels: claimed,
                    counted_pixels: counted,
                })
                .collect(),
            transcode_ms: answer.turnaround.as_millis() as u64,
            check_ms,
            fee_wei: 0,
            verdict,
        };
        let (counted, verdict) = match inspected {
            Ok(inspected) => inspected,
            Err(reason) => {
                self.ledger
                    .record(entry(CheckVerdict::Failed(reason.clone()), &[]));
                self.refuse(answer.transcoder, &answer.name);
                return Err(format!(
                    "remote transcoder {}'s answer was refused: {reason}",
                    answer.name
                ));
            }
        };
        for (rendition, frames) in done.renditions.iter_mut().zip(&counted) {
            rendition.width = frames.width;
            rendition.height = frames.height;
            rendition.frames = frames.frames;
            rendition.pixels = frames.frames * u64::from(frames.width) * u64::from(frames.height);
        }
        if done
            .renditions
            .iter()
            .zip(&claimed)
            .any(|(r, c)| r.pixels != *c)
        {
            tracing::warn!(
                transcoder = %answer.name,
                claimed = claimed.iter().sum::<u64>(),
                counted = done.renditions.iter().map(|r| r.pixels).sum::<u64>(),
                "a remote transcoder's pixel counts differ from its renditions'; billed by the renditions"
            );
        }
        done.by = answer.name.clone();
        done.pool = Some(PoolWork {
            transcoder: answer.name,
            decoded_pixels: done.decoded_pixels,
            claimed_pixels: claimed,
            transcode_ms: answer.turnaround.as_millis() as u64,
            check_ms,
            verdict,
        });
        Ok(done)
    }

    /// Counts a refused answer against transcoder `id`; at `drop_after_failures` it is detached
    /// and its name refused from then on.
    fn refuse(&self, id: u64, name: &str) {
        let failures = {
            let mut transcoders = self.lock_transcoders();
            let Some(t) = transcoders.iter_mut().find(|t| t.id == id) else {
                return;
            };
            t.failed_checks += 1;
            t.failed_checks
        };
        tracing::warn!(transcoder = %name, failures, "a remote transcoder's answer was refused");
        if failures >= self.checks.drop_after_failures {
            self.lock_dropped().insert(name.to_string(), failures);
            self.detach(id, &format!("dropped after {failures} failed checks"));
        }
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
                    pool: None,
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

    fn lock_dropped(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.dropped.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Who gave an answer, and how.
struct Answer {
    transcoder: u64,
    name: String,
    check: bool,
    turnaround: Duration,
}

/// Counts each rendition's frames (a demux) and, when `check`, checks it against the source
/// ([`verify`]); the counts and verdict, or why the answer is refused. A source this node cannot
/// decode is not the transcoder's fault: its answer then goes unchecked.
fn inspect(
    source: &[u8],
    renditions: &[Bytes],
    profiles: &[Profile],
    check: bool,
    min_psnr_db: Option<f64>,
) -> Result<(Vec<ContainerFrames>, CheckVerdict), String> {
    let counted = renditions
        .iter()
        .zip(profiles)
        .map(|(data, profile)| {
            count_frames(data.to_vec()).map_err(|e| format!("rendition {}: {e}", profile.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !check {
        return Ok((counted, CheckVerdict::Unchecked));
    }
    let source = match verify::SourceFrames::decode(source) {
        Ok(source) => source,
        Err(err) => {
            tracing::warn!(%err, "the source cannot be decoded here; the answer goes unchecked");
            return Ok((counted, CheckVerdict::Unchecked));
        }
    };
    let mut options = verify::CheckOptions {
        // Which frames are compared is drawn per answer: a transcoder that knew could spoil the
        // others unseen.
        compare_offset: rand::rng().random(),
        ..verify::CheckOptions::default()
    };
    if let Some(min) = min_psnr_db {
        options.min_psnr_db = min;
    }
    let checked: Vec<(&[u8], &Profile)> = renditions
        .iter()
        .zip(profiles)
        .map(|(data, profile)| (&data[..], profile))
        .collect();
    for (outcome, profile) in verify::check_renditions(&source, &checked, &options)
        .into_iter()
        .zip(profiles)
    {
        outcome.map_err(|e| format!("rendition {}: {e}", profile.name))?;
    }
    Ok((counted, CheckVerdict::Passed))
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

    /// A real 256×144 rendition of 60 frames (the test profile's size).
    fn rendition() -> Bytes {
        static RENDITION: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        RENDITION
            .get_or_init(|| {
                let source = reference_transcoder::generate(&reference_transcoder::SourceConfig {
                    width: 256,
                    height: 144,
                    duration_secs: 2.0,
                    gop_secs: 2.0,
                    audio: false,
                    ..reference_transcoder::SourceConfig::default()
                })
                .expect("synthetic source");
                let mut segments = source.ts_segments(2.0).expect("segments");
                Bytes::from(segments.remove(0).data)
            })
            .clone()
    }

    fn posted() -> Posted {
        claiming(256 * 144 * 60)
    }

    fn claiming(pixels: u64) -> Posted {
        Posted {
            renditions: vec![PostedRendition {
                data: rendition(),
                pixels,
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
        let (first, mut first_stream) = pool.register(1, None).unwrap();
        let (_, mut second_stream) = pool.register(1, None).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
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
        let (first, mut first_stream) = pool.register(1, None).unwrap();
        let watching = tokio::spawn({
            let pool = pool.clone();
            async move { pool.watch(first).await }
        });
        let (_, mut second_stream) = pool.register(1, None).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
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
        let (first, mut first_stream) = pool.register(1, None).unwrap();
        let (_, mut second_stream) = pool.register(1, None).unwrap();
        let run = |pool: std::sync::Arc<RemotePool>| {
            tokio::spawn(async move {
                pool.run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
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
        let (_, mut first_stream) = pool.register(1, None).unwrap();
        let (_, mut second_stream) = pool.register(1, None).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
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
        let (only, mut stream) = pool.register(1, None).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
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

    #[tokio::test]
    async fn an_inflated_pixel_count_is_billed_by_the_frames_counted() {
        let pool = std::sync::Arc::new(RemotePool::new(Duration::from_secs(60)));
        let (_, mut stream) = pool.register(1, Some("inflater")).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
                .await
        });
        let task = next_task(&mut stream).await;
        let honest = 256 * 144 * 60;
        pool.complete(task.task_id, Ok(claiming(honest * 3)));
        let done = segment.await.unwrap().unwrap();
        assert_eq!(done.by, "inflater");
        assert_eq!(
            (done.renditions[0].frames, done.renditions[0].pixels),
            (60, honest)
        );
        let work = done.pool.unwrap();
        assert_eq!(work.claimed_pixels, [honest * 3]);
        assert_eq!(work.verdict, CheckVerdict::Unchecked);
    }

    #[tokio::test]
    async fn an_answer_that_is_no_video_is_refused_redone_elsewhere_and_its_sender_dropped() {
        let checks = CheckPolicy {
            drop_after_failures: 1,
            ..CheckPolicy::default()
        };
        let ledger = Arc::new(PoolLedger::new(Duration::from_secs(60), None).unwrap());
        let pool = std::sync::Arc::new(
            RemotePool::new(Duration::from_secs(60)).with_pool(checks, ledger.clone()),
        );
        let (_, mut cheat_stream) = pool.register(1, Some("cheat")).unwrap();
        let (_, mut honest_stream) = pool.register(1, Some("honest")).unwrap();
        let running = pool.clone();
        let segment = tokio::spawn(async move {
            running
                .run(
                    "https://o/task/x.ts".into(),
                    segment(),
                    String::new(),
                    Bytes::new(),
                )
                .await
        });
        let task = next_task(&mut cheat_stream).await;
        let garbage = Posted {
            renditions: vec![PostedRendition {
                data: Bytes::from_static(b"not a rendition"),
                pixels: 256 * 144 * 60,
            }],
            decoded_pixels: 0,
        };
        pool.complete(task.task_id, Ok(garbage));
        let redone = next_task(&mut honest_stream).await;
        assert_eq!(redone.url, task.url);
        pool.complete(redone.task_id, Ok(posted()));
        assert_eq!(segment.await.unwrap().unwrap().by, "honest");
        let totals = ledger.totals();
        assert_eq!(
            (totals["cheat"].checks_failed, totals["cheat"].earned_pixels),
            (1, 0)
        );
        assert_eq!(
            pool.register(1, Some("cheat")).unwrap_err(),
            Dropped {
                name: "cheat".into(),
                failures: 1
            }
        );
        let names: Vec<String> = pool.status().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["honest"]);
    }

    #[test]
    fn work_goes_to_the_faster_transcoder_until_its_speed_is_stale() {
        let pool = RemotePool::new(Duration::from_secs(60));
        let (slow, _slow_stream) = pool.register(4, Some("slow")).unwrap();
        let (fast, _fast_stream) = pool.register(4, Some("fast")).unwrap();
        pool.measure(slow, 2000, Duration::from_secs(4));
        pool.measure(fast, 2000, Duration::from_millis(500));
        let none = HashSet::new();
        let picks: Vec<String> = (0..4)
            .map(|_| {
                let given = pool.dispatch(&none).unwrap();
                let name = given.name.clone();
                // Each task ends at once, so load stays 0 and only speed decides.
                drop(given);
                name
            })
            .collect();
        assert_eq!(picks, ["fast"; 4]);
        let live = pool.live();
        assert_eq!(live[0].realtime_ratio, Some(0.5));
        assert_eq!(live[1].realtime_ratio, Some(4.0));
        // The slow one's speed goes stale: it counts as the best known and, given work longest
        // ago, is tried again.
        for t in pool.lock_transcoders().iter_mut().filter(|t| t.id == slow) {
            t.speed = Some((0.5, Instant::now() - SPEED_STALE));
        }
        assert_eq!(pool.dispatch(&none).unwrap().name, "slow");
    }

    #[test]
    fn transcoders_faster_than_fast_enough_alternate() {
        let pool = RemotePool::new(Duration::from_secs(60));
        let (a, _a_stream) = pool.register(1, Some("a")).unwrap();
        let (b, _b_stream) = pool.register(1, Some("b")).unwrap();
        pool.measure(a, 2000, Duration::from_millis(250));
        pool.measure(b, 2000, Duration::from_millis(700));
        let none = HashSet::new();
        let picks: Vec<String> = (0..4).map(|_| pool.dispatch(&none).unwrap().name).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
    }

    #[test]
    fn the_broadcaster_waits_go_livepeers_segment_timeout() {
        assert_eq!(broadcaster_timeout(2000), Duration::from_secs(8));
        assert_eq!(broadcaster_timeout(3000), Duration::from_secs(12));
        assert_eq!(broadcaster_timeout(-5), Duration::from_secs(8));
    }
}
