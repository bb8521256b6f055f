//! Sessions: each open session's slot in the node's capacity, the byte budgets (the node's and
//! each session's) that bound what uploads hold, and the guards that give both back however a
//! request ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use protocol::net;

use super::Node;
use super::admission::Refusal;
use crate::config::TranscodeMode;
use crate::metrics::FailureReason;
use crate::transcode::LocalTranscoders;

/// A budget of bytes shared by requests (the node's, or one session's): what bounds the memory
/// uploads can hold, whatever the number of connections and streams they come on.
#[derive(Debug)]
pub struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Which budget an upload ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetExceeded {
    /// `limits.max_inflight_bytes`.
    Node,
    /// `limits.max_session_inflight_bytes`.
    Session,
}

/// Bytes one request holds in the node's and its session's budgets; given back when dropped
/// (the segment was transcoded, refused, or its request went away).
#[derive(Debug)]
pub struct BytesHeld {
    node: Arc<ByteBudget>,
    session: Arc<ByteBudget>,
    held: usize,
}

impl BytesHeld {
    /// Holds `total` bytes in all (more than now, or nothing changes), or says which budget
    /// cannot spare them.
    pub fn hold(&mut self, total: usize) -> Result<(), BudgetExceeded> {
        let more = total.saturating_sub(self.held);
        if more == 0 {
            return Ok(());
        }
        if !self.node.try_take(more) {
            return Err(BudgetExceeded::Node);
        }
        if !self.session.try_take(more) {
            self.node.give(more);
            return Err(BudgetExceeded::Session);
        }
        self.held += more;
        Ok(())
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for BytesHeld {
    fn drop(&mut self) {
        self.node.give(self.held);
        self.session.give(self.held);
    }
}

/// One open session's claim on the node's capacity.
#[derive(Debug, Clone)]
pub(super) struct SessionSlot {
    /// Tells this slot from a later one of the same session id (after a close), so a request
    /// of the old one cannot release the new one.
    generation: u64,
    /// Last request or finished segment.
    seen: Instant,
    /// Segments transcoded in it; a session that never completed one is given back when its
    /// last request ends.
    transcoded: u64,
    /// Requests of this session past the checks and not yet ended (reading, queued or
    /// transcoding).
    in_flight: usize,
    /// The session's share of segment bytes in flight.
    budget: Arc<ByteBudget>,
}

pub(super) type SessionTable = Arc<Mutex<HashMap<String, SessionSlot>>>;

/// A request's hold on its session's capacity slot, taken only once every check (credentials,
/// payment, balance) has passed and held until the request ends, however it ends: answered,
/// refused, failed, or dropped by hyper because the client went away. When the last hold of a
/// session that never completed a segment goes, the slot (and the session's transcoding thread,
/// if one was started) is given back: otherwise requests that are refused, trickled or abandoned
/// in fresh sessions would hold every slot until the idle reaper runs. Balances are kept:
/// tickets a session paid with stay credited.
#[derive(Debug)]
pub(super) struct SessionClaim {
    sessions: SessionTable,
    local: Arc<LocalTranscoders>,
    session: String,
    generation: u64,
}

impl SessionClaim {
    /// Records a completed segment: from now on the slot stays until the session is closed.
    pub(super) fn completed(&self) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = sessions.get_mut(&self.session)
            && slot.generation == self.generation
        {
            slot.seen = Instant::now();
            slot.transcoded += 1;
        }
    }
}

impl Drop for SessionClaim {
    fn drop(&mut self) {
        let released = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            match sessions.get_mut(&self.session) {
                Some(slot) if slot.generation == self.generation => {
                    slot.in_flight = slot.in_flight.saturating_sub(1);
                    slot.seen = Instant::now();
                    let unused = slot.in_flight == 0 && slot.transcoded == 0;
                    if unused {
                        sessions.remove(&self.session);
                    }
                    unused
                }
                _ => false,
            }
        };
        if released {
            self.local.close(&self.session);
        }
    }
}

impl Node {
    /// Handles `EndTranscodingSession`.
    pub fn end_session(&self, token: Option<&net::AuthToken>) -> Result<(), tonic::Status> {
        let session = self
            .auth
            .verify(token)
            .map_err(|e| tonic::Status::permission_denied(e.to_string()))?
            .to_string();
        self.close_session(&session);
        Ok(())
    }

    fn close_session(&self, session: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
        self.local.close(session);
        self.payments.forget_session(session);
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Closes sessions idle for longer than the configured limit.
    pub fn reap_idle_sessions(&self) {
        let idle = Duration::from_secs(self.config.limits.session_idle_secs);
        let stale: Vec<String> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, slot)| slot.in_flight == 0 && slot.seen.elapsed() > idle)
            .map(|(s, _)| s.clone())
            .collect();
        for session in stale {
            tracing::info!(session, "closing idle session");
            self.close_session(&session);
        }
    }

    fn capped(&self) -> Refusal {
        self.refuse(Refusal::new(
            StatusCode::FORBIDDEN,
            FailureReason::Capped,
            "OrchestratorCapped",
        ))
    }

    /// Whether `session` could get a slot now; takes nothing.
    pub(super) fn check_capacity(&self, session: &str) -> Result<(), Refusal> {
        if self.config.transcode.mode == TranscodeMode::Remote && !self.remote.has_capacity() {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                FailureReason::Busy,
                "OrchestratorBusy",
            )));
        }
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if !sessions.contains_key(session) && sessions.len() >= self.config.limits.max_sessions {
            drop(sessions);
            return Err(self.capped());
        }
        Ok(())
    }

    /// Takes (or joins) `session`'s slot for one request; the claim gives it back when dropped.
    /// A session with `limits.max_session_segments` requests in flight gets no more: that bounds
    /// its transcode queue.
    pub(super) fn claim_slot(&self, session: &str) -> Result<(SessionClaim, BytesHeld), Refusal> {
        let limits = &self.config.limits;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if !sessions.contains_key(session) && sessions.len() >= limits.max_sessions {
            drop(sessions);
            return Err(self.capped());
        }
        let slot = sessions
            .entry(session.to_string())
            .or_insert_with(|| SessionSlot {
                generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
                seen: Instant::now(),
                transcoded: 0,
                in_flight: 0,
                budget: ByteBudget::new(limits.max_session_inflight_bytes),
            });
        if slot.in_flight >= limits.max_session_segments {
            drop(sessions);
            return Err(self.refuse(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                FailureReason::SessionLimit,
                format!(
                    "session already has {} segments in flight (limits.max_session_segments)",
                    limits.max_session_segments
                ),
            )));
        }
        slot.seen = Instant::now();
        slot.in_flight += 1;
        let bytes = BytesHeld {
            node: self.budget.clone(),
            session: slot.budget.clone(),
            held: 0,
        };
        let claim = SessionClaim {
            sessions: self.sessions.clone(),
            local: self.local.clone(),
            session: session.to_string(),
            generation: slot.generation,
        };
        Ok((claim, bytes))
    }

    /// The refusal of an upload that ran out of `budget` (counted).
    pub fn budget_refusal(&self, budget: BudgetExceeded) -> Refusal {
        let limits = &self.config.limits;
        self.refuse(match budget {
            BudgetExceeded::Node => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                FailureReason::Overloaded,
                format!(
                    "the node holds its limit of segment bytes in flight ({} bytes, \
                     limits.max_inflight_bytes); try again later",
                    limits.max_inflight_bytes
                ),
            ),
            BudgetExceeded::Session => Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                FailureReason::SessionLimit,
                format!(
                    "the session holds its limit of segment bytes in flight ({} bytes, \
                     limits.max_session_inflight_bytes)",
                    limits.max_session_inflight_bytes
                ),
            ),
        })
    }

    /// Segment bytes the node holds now.
    pub fn inflight_bytes(&self) -> usize {
        self.budget.used()
    }
}
