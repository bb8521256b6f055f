//! The orchestrator's shared state and the segment pipeline.
//!
//! Design: one [`Node`] behind an `Arc` is the whole orchestrator; the gRPC services and HTTP
//! routes are thin adapters over its methods. The segment pipeline follows go-livepeer's
//! `ServeSegment` order — payment header, segment credentials (signature, capabilities, auth
//! token, capacity), payment, balance, body and hash — and each refusal is a [`Refusal`] carrying
//! the documented status code and reason text, so the rejection contract lives in one place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, keccak256};
use bytes::Bytes;
use http::StatusCode;
use protocol::capabilities::{Capability, CapabilitySet};
use protocol::net::{self, OrchestratorInfo, PingPong, SegData, TranscodeResult};
use protocol::sig::{self, NodeKey, SigPolicy};
use protocol::{fields, headers};
use reference_transcoder::Profile;
use tokio::sync::watch;

use crate::auth::AuthTokens;
use crate::config::{OrchestratorConfig, TranscodeMode};
use crate::faults::{self, FaultConfig, Faults};
use crate::metrics::{FailureReason, Metrics};
use crate::payments::{PaymentRejected, Payments};
use crate::profiles;
use crate::remote::{RemoteError, RemotePool};
use crate::store::ObjectStore;
use crate::transcode::{self, LocalTranscoders, Transcoded};

/// A refused request: HTTP status, reason text and the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Body text.
    pub reason: String,
    /// Failure label.
    pub label: FailureReason,
}

impl Refusal {
    fn new(status: StatusCode, label: FailureReason, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            label,
        }
    }
}

/// What [`Node::check_headers`] returns: the decoded segment, its sender, session and ladder,
/// and the request's hold on its session slot (given back when this is dropped unused).
#[derive(Debug)]
pub struct CheckedSegment {
    /// The decoded `Livepeer-Segment`.
    pub seg: SegData,
    /// The payment's sender (zero off-chain).
    pub sender: Address,
    /// The auth token's session id.
    pub session: String,
    /// The requested ladder.
    pub profiles: Vec<Profile>,
    /// The segment bytes this request holds in the node's and its session's budgets.
    pub bytes: BytesHeld,
    claim: SessionClaim,
}

/// A segment that passed every check and is ready to transcode.
#[derive(Debug)]
pub struct AcceptedSegment {
    seg: SegData,
    sender: Address,
    session: String,
    profiles: Vec<Profile>,
    body: Bytes,
    faults: FaultConfig,
    bytes: BytesHeld,
    claim: SessionClaim,
}

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
struct SessionSlot {
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

type SessionTable = Arc<Mutex<HashMap<String, SessionSlot>>>;

/// A request's hold on its session's capacity slot, taken only once every check (credentials,
/// payment, balance) has passed and held until the request ends, however it ends: answered,
/// refused, failed, or dropped by hyper because the client went away. When the last hold of a
/// session that never completed a segment goes, the slot (and the session's transcoding thread,
/// if one was started) is given back: otherwise requests that are refused, trickled or abandoned
/// in fresh sessions would hold every slot until the idle reaper runs. Balances are kept:
/// tickets a session paid with stay credited.
#[derive(Debug)]
struct SessionClaim {
    sessions: SessionTable,
    local: Arc<LocalTranscoders>,
    session: String,
    generation: u64,
}

impl SessionClaim {
    /// Records a completed segment: from now on the slot stays until the session is closed.
    fn completed(&self) {
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

/// The orchestrator.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: OrchestratorConfig,
    pub(crate) service_uri: String,
    key: NodeKey,
    policy: SigPolicy,
    capabilities: CapabilitySet,
    auth: AuthTokens,
    pub(crate) payments: Arc<Payments>,
    pub(crate) faults: Faults,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) store: ObjectStore,
    sessions: SessionTable,
    next_generation: AtomicU64,
    budget: Arc<ByteBudget>,
    local: Arc<LocalTranscoders>,
    pub(crate) remote: RemotePool,
    transcoded: AtomicU64,
    crash: watch::Sender<bool>,
}

/// Capabilities this orchestrator offers.
pub fn offered_capabilities() -> CapabilitySet {
    [
        Capability::H264,
        Capability::Mpegts,
        Capability::FractionalFramerates,
        Capability::StorageDirect,
        Capability::ProfileH264Baseline,
        Capability::ProfileH264Main,
        Capability::ProfileH264High,
        Capability::ProfileH264ConstrainedHigh,
        Capability::Gop,
        Capability::AuthToken,
    ]
    .into_iter()
    .collect()
}

impl Node {
    pub(crate) fn new(
        config: OrchestratorConfig,
        service_uri: String,
        key: NodeKey,
        payments: Arc<Payments>,
        metrics: Arc<Metrics>,
        crash: watch::Sender<bool>,
    ) -> Self {
        let policy = if config.offchain {
            SigPolicy::OffChain
        } else {
            SigPolicy::OnChain
        };
        Self {
            service_uri,
            key,
            policy,
            capabilities: offered_capabilities(),
            auth: AuthTokens::new(Duration::from_secs(config.limits.auth_token_secs)),
            payments,
            faults: Faults::new(config.faults.clone()),
            metrics,
            store: ObjectStore::new(
                config.limits.store_bytes,
                Duration::from_secs(config.limits.store_secs),
            ),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            next_generation: AtomicU64::new(1),
            budget: ByteBudget::new(config.limits.max_inflight_bytes),
            local: Arc::new(
                LocalTranscoders::new(
                    &config.transcode.x264_preset,
                    config.transcode.encoder_threads,
                )
                .with_queue(config.limits.max_session_segments),
            ),
            remote: RemotePool::new(Duration::from_millis(config.limits.remote_task_timeout_ms)),
            transcoded: AtomicU64::new(0),
            crash,
            config,
        }
    }

    /// The node's Ethereum address (none off-chain).
    pub fn address(&self) -> Option<Address> {
        self.key.address()
    }

    /// Handles `Ping`: the value signed with O's key, which a go-livepeer broadcaster verifies
    /// against O's address before it uses O.
    pub fn ping(&self, value: &[u8]) -> Result<PingPong, tonic::Status> {
        if value.len() > 1024 {
            return Err(tonic::Status::invalid_argument(
                "ping value above 1024 bytes",
            ));
        }
        sig::sign_ping(&self.key, value)
            .map(|value| PingPong { value })
            .map_err(|e| tonic::Status::internal(format!("cannot sign ping: {e}")))
    }

    /// `OrchestratorInfo` for `sender`'s session `session_id`, with fresh ticket params; refused
    /// when the sender's funds on chain cannot back a ticket.
    pub async fn info(
        &self,
        sender: Address,
        session_id: &str,
    ) -> Result<OrchestratorInfo, PaymentRejected> {
        let priced = self.payments.priced();
        Ok(OrchestratorInfo {
            transcoder: self.service_uri.clone(),
            ticket_params: self.payments.ticket_params(sender).await?,
            price_info: priced.then(|| self.payments.price().to_message()),
            address: self.address().map(|a| a.to_vec()).unwrap_or_default(),
            capabilities: Some(net::Capabilities {
                // A go-livepeer broadcaster with a minimum version refuses an empty one.
                version: env!("CARGO_PKG_VERSION").into(),
                ..self.capabilities.to_message()
            }),
            auth_token: Some(self.auth.issue(session_id)),
            ..Default::default()
        })
    }

    /// Handles `GetOrchestrator`: checks B's signature and capabilities, opens a session id.
    pub async fn discover(
        &self,
        req: &net::OrchestratorRequest,
    ) -> Result<OrchestratorInfo, tonic::Status> {
        let sender = if req.address.is_empty() && self.policy == SigPolicy::OffChain {
            Address::ZERO
        } else {
            fields::address("OrchestratorRequest.address", &req.address)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        };
        sig::verify_orchestrator_request(self.policy, sender, &req.sig).map_err(|e| {
            tonic::Status::permission_denied(format!("invalid orchestrator request signature: {e}"))
        })?;
        if let Some(caps) = &req.capabilities
            && !CapabilitySet::from(caps).compatible_with(&self.capabilities)
        {
            return Err(tonic::Status::invalid_argument("incompatible capabilities"));
        }
        // A plain error, as go-livepeer's (gRPC code Unknown): "insufficient sender reserve".
        self.info(sender, &AuthTokens::new_session_id())
            .await
            .map_err(|e| tonic::Status::unknown(e.to_string()))
    }

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

    fn refuse(&self, refusal: Refusal) -> Refusal {
        self.metrics.fail(refusal.label);
        refusal
    }

    /// Every check before the body is read: headers, credentials, payment, balance. Returns the
    /// decoded segment, its sender and session.
    pub async fn check_headers(
        &self,
        segment_header: Option<&str>,
        payment_header: Option<&str>,
    ) -> Result<CheckedSegment, Refusal> {
        use FailureReason as F;
        self.metrics
            .segments_received
            .fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = self.faults.snapshot().crash_after_segments
            && self.transcoded.load(Ordering::Relaxed) >= limit
        {
            tracing::error!(limit, "crash fault switch: stopping the node");
            let _ = self.crash.send(true);
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                F::Transcode,
                "crashed",
            ));
        }
        let payment = match payment_header {
            Some(value) => headers::decode_payment(value).map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::PAYMENT_REQUIRED,
                    F::BadPaymentHeader,
                    e.to_string(),
                ))
            })?,
            None => net::Payment::default(),
        };
        let sender = if payment.sender.is_empty() {
            Address::ZERO
        } else {
            fields::address("Payment.sender", &payment.sender).map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::PAYMENT_REQUIRED,
                    F::BadPaymentHeader,
                    e.to_string(),
                ))
            })?
        };
        let Some(segment_header) = segment_header else {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSegmentHeader,
                "missing Livepeer-Segment header",
            )));
        };
        let seg = headers::decode_segment(segment_header).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSegmentHeader,
                e.to_string(),
            ))
        })?;
        sig::verify_segment(self.policy, sender, &seg).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::BadSignature,
                format!("invalid segment signature: {e}"),
            ))
        })?;
        if let Some(caps) = &seg.capabilities
            && !CapabilitySet::from(caps).compatible_with(&self.capabilities)
        {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::Capability,
                "incompatible capabilities",
            )));
        }
        let profiles = profiles::requested(&seg).map_err(|e| {
            self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                F::Capability,
                e.to_string(),
            ))
        })?;
        let session = self
            .auth
            .verify(seg.auth_token.as_ref())
            .map_err(|e| {
                self.refuse(Refusal::new(
                    StatusCode::FORBIDDEN,
                    F::AuthToken,
                    e.to_string(),
                ))
            })?
            .to_string();
        // Refused early when full, as go-livepeer does, so a capped node does no payment work;
        // the slot itself is taken only after payment and balance pass.
        self.check_capacity(&session)?;
        if self.payments.priced() {
            if payment.ticket_params.is_some() {
                self.payments
                    .process(&payment, &session)
                    .await
                    .map_err(|e| {
                        self.refuse(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            F::PaymentRejected,
                            e.to_string(),
                        ))
                    })?;
            }
            if !self.payments.sufficient_balance(sender, &session) {
                return Err(self.refuse(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    F::InsufficientBalance,
                    "Insufficient balance",
                )));
            }
        }
        let (claim, bytes) = self.claim_slot(&session)?;
        Ok(CheckedSegment {
            seg,
            sender,
            session,
            profiles,
            bytes,
            claim,
        })
    }

    fn capped(&self) -> Refusal {
        self.refuse(Refusal::new(
            StatusCode::FORBIDDEN,
            FailureReason::Capped,
            "OrchestratorCapped",
        ))
    }

    /// Whether `session` could get a slot now; takes nothing.
    fn check_capacity(&self, session: &str) -> Result<(), Refusal> {
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
    fn claim_slot(&self, session: &str) -> Result<(SessionClaim, BytesHeld), Refusal> {
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

    /// Checks the body against `SegData.hash`; `body_hash` is keccak256(body), computed while the
    /// body was read.
    pub fn accept_body(
        &self,
        checked: CheckedSegment,
        body: Bytes,
        body_hash: B256,
    ) -> Result<AcceptedSegment, Refusal> {
        let CheckedSegment {
            seg,
            sender,
            session,
            profiles,
            bytes,
            claim,
        } = checked;
        if body_hash.as_slice() != seg.hash.as_slice() {
            return Err(self.refuse(Refusal::new(
                StatusCode::FORBIDDEN,
                FailureReason::HashMismatch,
                "segment hash mismatch",
            )));
        }
        Ok(AcceptedSegment {
            seg,
            sender,
            session,
            profiles,
            body,
            faults: self.faults.snapshot(),
            bytes,
            claim,
        })
    }

    /// Whether the drop switch eats this segment.
    pub fn should_drop(&self, accepted: &AcceptedSegment) -> bool {
        let drop = self.faults.should_drop(accepted.faults.drop_fraction);
        if drop {
            self.metrics.fail(FailureReason::FaultDrop);
            tracing::warn!(seq = accepted.seg.seq, "drop fault switch: segment dropped");
        }
        drop
    }

    /// Transcodes an accepted segment, stores the renditions, bills and signs the result.
    pub async fn transcode(&self, accepted: AcceptedSegment) -> TranscodeResult {
        let AcceptedSegment {
            seg,
            sender,
            session,
            profiles,
            body,
            faults,
            bytes,
            claim,
        } = accepted;
        let seq = seg.seq;
        // `accept_body` proved keccak256(body) == seg.hash, so renditions that are the source
        // bytes themselves need not be hashed again for the result signature.
        let source = SourceHash {
            body: body.clone(),
            hash: B256::try_from(seg.hash.as_slice()).ok(),
        };
        let encoded = transcode::effective_profiles(&profiles, &faults);
        let outcome = match self.config.transcode.mode {
            TranscodeMode::Local => self.local.transcode(&session, encoded, body).await,
            TranscodeMode::PassThrough => Ok(transcode::pass_through(
                &encoded,
                &body,
                u64::try_from(seg.duration).unwrap_or(0),
            )),
            TranscodeMode::Remote => self.transcode_remote(&seg, encoded, body).await,
        };
        if faults.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
        }
        let info = match self.info(sender, &session).await {
            Ok(info) => Some(info),
            Err(err) => {
                tracing::warn!(%err, "replying without fresh ticket params");
                None
            }
        };
        let done = match outcome {
            Ok(done) => done,
            Err(error) => {
                self.metrics.fail(FailureReason::Transcode);
                tracing::warn!(seq, %error, "transcode failed");
                return TranscodeResult {
                    seq,
                    result: Some(net::transcode_result::Result::Error(error)),
                    info,
                };
            }
        };
        let message = result_message_off_runtime(&done.renditions, source).await;
        let result = self.finish(&session, sender, seq, done, &faults, message);
        claim.completed();
        // The source is no longer needed (renditions live in the store, under its own budget).
        drop(bytes);
        TranscodeResult {
            seq,
            result: Some(result),
            info,
        }
    }

    async fn transcode_remote(
        &self,
        seg: &SegData,
        profiles: Vec<Profile>,
        body: Bytes,
    ) -> Result<Transcoded, String> {
        let task = self.remote.next_task_id();
        let name = RemotePool::source_name();
        self.store.put(name.clone(), body);
        // Removed however this ends, including when the request is dropped mid-transcode.
        let source = StoredSource {
            store: &self.store,
            name: &name,
        };
        let mut seg = seg.clone();
        seg.full_profiles3 = profiles.iter().map(profiles::to_wire).collect();
        let url = format!("{}/{name}", self.service_uri);
        let orch_id = self.address().map(|a| a.to_string()).unwrap_or_default();
        let outcome = self.remote.run(task, url, seg, orch_id).await;
        drop(source);
        outcome.map_err(|e| match e {
            RemoteError::Busy => "OrchestratorBusy".to_string(),
            RemoteError::Failed(reason) => reason,
        })
    }

    fn finish(
        &self,
        session: &str,
        sender: Address,
        seq: i64,
        done: Transcoded,
        faults: &FaultConfig,
        result_message: B256,
    ) -> net::transcode_result::Result {
        let signature = self.key.sign(result_message.as_slice()).unwrap_or_default();
        let mut segments = Vec::with_capacity(done.renditions.len());
        let mut billed = 0u64;
        for rendition in done.renditions {
            // Named by the session's rendition key, not its id: the URL is the credential.
            let name = format!(
                "stream/{}/{}/{seq}.ts",
                self.auth.rendition_key(session),
                url_safe(&rendition.profile)
            );
            let data = if faults.corrupt_renditions {
                let mut damaged = rendition.data.to_vec();
                faults::corrupt(&mut damaged);
                Bytes::from(damaged)
            } else {
                rendition.data
            };
            self.store.put(name.clone(), data);
            let pixels = (rendition.pixels as f64 * faults.overcharge_factor).round() as u64;
            billed += pixels;
            segments.push(net::TranscodedSegmentData {
                url: format!("{}/{name}", self.service_uri),
                pixels: pixels as i64,
                ..Default::default()
            });
        }
        self.payments.debit_pixels(sender, session, billed);
        self.metrics
            .pixels_billed
            .fetch_add(billed, Ordering::Relaxed);
        self.metrics
            .transcode_micros
            .fetch_add(done.elapsed.as_micros() as u64, Ordering::Relaxed);
        self.metrics
            .segments_transcoded
            .fetch_add(1, Ordering::Relaxed);
        self.transcoded.fetch_add(1, Ordering::Relaxed);
        net::transcode_result::Result::Data(net::TranscodeData {
            segments,
            sig: signature,
        })
    }
}

/// A remote task's source in the store, removed on drop.
struct StoredSource<'a> {
    store: &'a ObjectStore,
    name: &'a str,
}

impl Drop for StoredSource<'_> {
    fn drop(&mut self) {
        self.store.remove(self.name);
    }
}

/// keccak256 through the CRYPTOGAMS assembly of `keccak-asm`, explicitly: hashing segment-sized
/// buffers is the largest part of the node's own per-segment work, and the portable Rust keccak
/// costs about 25 % more per byte. (alloy's `keccak256` is the same code while the workspace
/// enables alloy's `asm-keccak` feature, as `protocol` does.)
pub fn keccak256_bulk(data: &[u8]) -> B256 {
    B256::from_slice(&keccak_asm::Keccak256::digest(data))
}

/// A segment body with its already verified keccak256 (`None` when the header's hash is not 32
/// bytes, which `accept_body` would have refused anyway).
#[derive(Debug, Clone)]
pub struct SourceHash {
    /// The segment bytes as received.
    pub body: Bytes,
    /// keccak256(body).
    pub hash: Option<B256>,
}

impl SourceHash {
    /// The known hash of `data` when `data` is this very buffer (same memory, same length), as a
    /// pass-through rendition or an untouched copy is; equal memory means equal bytes.
    fn of(&self, data: &Bytes) -> Option<B256> {
        (data.as_ptr() == self.body.as_ptr() && data.len() == self.body.len())
            .then_some(self.hash)
            .flatten()
    }
}

/// [`transcode_result_message`] computed on the blocking pool when renditions must be hashed
/// (milliseconds for a real ladder), so the async workers keep serving other uploads meanwhile;
/// renditions that all reuse the source hash are done in place.
async fn result_message_off_runtime(
    renditions: &[transcode::Rendition],
    source: SourceHash,
) -> B256 {
    if renditions.iter().all(|r| source.of(&r.data).is_some()) {
        return transcode_result_message(renditions, Some(&source));
    }
    let owned = renditions.to_vec();
    let fallback = owned.clone();
    match tokio::task::spawn_blocking(move || transcode_result_message(&owned, Some(&source))).await
    {
        Ok(message) => message,
        // The blocking pool is shutting down: hash here rather than sign nothing.
        Err(_) => transcode_result_message(&fallback, None),
    }
}

/// `keccak256(keccak256(rendition₁) ‖ … ‖ keccak256(renditionₙ))`, the message of
/// `TranscodeData.sig` (as `protocol::sig::transcode_result_message`). A rendition that is the
/// source buffer itself takes the source's verified hash; the others are hashed on parallel
/// threads when there is enough to hash, since hashing megabytes of video is most of the node's
/// own latency.
pub fn transcode_result_message(
    renditions: &[transcode::Rendition],
    source: Option<&SourceHash>,
) -> B256 {
    let known: Vec<Option<B256>> = renditions
        .iter()
        .map(|r| source.and_then(|s| s.of(&r.data)))
        .collect();
    let to_hash: Vec<&[u8]> = renditions
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(r, _)| r.data.as_ref())
        .collect();
    let mut hashed =
        if to_hash.len() > 1 && to_hash.iter().map(|d| d.len()).sum::<usize>() > 256 * 1024 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = to_hash
                    .iter()
                    .map(|data| scope.spawn(move || keccak256_bulk(data)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect::<Vec<_>>()
            })
        } else {
            to_hash.iter().map(|data| keccak256_bulk(data)).collect()
        }
        .into_iter();
    let mut message = Vec::with_capacity(32 * renditions.len());
    for k in known {
        let hash = k.or_else(|| hashed.next()).unwrap_or_default();
        message.extend_from_slice(hash.as_slice());
    }
    keccak256(message)
}

/// Keeps a profile name usable as one URL path segment.
fn url_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use proptest::prelude::*;
    use protocol::ticket::{ChainView, PricePerPixel, RecipientConfig, TicketRecipient};

    use super::*;

    fn node(priced: bool) -> Node {
        let mut config = OrchestratorConfig::offchain();
        let metrics = Arc::new(Metrics::default());
        let (key, payments) = if priced {
            config.offchain = false;
            let signer = alloy::signers::local::PrivateKeySigner::random();
            let recipient = TicketRecipient::new(signer.address(), RecipientConfig::default());
            let price = PricePerPixel {
                price_per_unit: 1,
                pixels_per_unit: 1,
            };
            let payments = Payments::new(
                price,
                Some(recipient),
                None,
                ChainView::default(),
                1,
                metrics.clone(),
            );
            (NodeKey::Account(signer), payments)
        } else {
            let payments = Payments::new(
                PricePerPixel::default(),
                None,
                None,
                ChainView::default(),
                1,
                metrics.clone(),
            );
            (NodeKey::OffChain, payments)
        };
        let (crash, _) = watch::channel(false);
        Node::new(
            config,
            "https://127.0.0.1:1".into(),
            key,
            Arc::new(payments),
            metrics,
            crash,
        )
    }

    /// Runs a node future to completion: without a chain, the checks never wait on anything.
    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn assert_client_error(result: Result<CheckedSegment, Refusal>) {
        if let Err(refusal) = result {
            assert!(
                refusal.status.is_client_error(),
                "{} {}",
                refusal.status,
                refusal.reason
            );
            assert!(!refusal.reason.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_header_text_is_a_4xx(seg in ".{0,200}", pay in proptest::option::of(".{0,200}")) {
            for priced in [false, true] {
                assert_client_error(block_on(node(priced).check_headers(Some(&seg), pay.as_deref())));
            }
        }

        #[test]
        fn arbitrary_protobuf_bytes_are_a_4xx(
            seg in proptest::collection::vec(any::<u8>(), 0..300),
            pay in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            for priced in [false, true] {
                assert_client_error(block_on(node(priced).check_headers(Some(&b64(&seg)), Some(&b64(&pay)))));
            }
        }

        #[test]
        fn mutated_valid_segments_are_a_4xx(flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let n = node(false);
            let info = block_on(n.info(Address::ZERO, "s")).unwrap();
            let ladder = reference_transcoder::ladder::parse_ladder("P144p30fps16x9").unwrap();
            let seg = crate::client::segment_data(&NodeKey::OffChain, &info, b"m", 1, b"body", 1000, &ladder).unwrap();
            let mut bytes = prost::Message::encode_to_vec(&seg);
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            assert_client_error(block_on(n.check_headers(Some(&b64(&bytes)), None)));
        }
    }

    #[test]
    fn bulk_keccak_equals_alloys() {
        // Around the 136-byte rate boundary, and a segment-sized buffer.
        for len in [0usize, 1, 135, 136, 137, 272, 1_000_003] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            assert_eq!(keccak256_bulk(&data), keccak256(&data), "length {len}");
        }
    }

    #[test]
    fn parallel_result_message_equals_the_protocol_one() {
        let renditions: Vec<transcode::Rendition> = (0..3u8)
            .map(|i| transcode::Rendition {
                profile: format!("p{i}"),
                width: 2,
                height: 2,
                frames: 1,
                pixels: 4,
                data: Bytes::from(vec![i; 200_000]),
            })
            .collect();
        assert_eq!(
            transcode_result_message(&renditions, None),
            sig::transcode_result_message(renditions.iter().map(|r| r.data.as_ref()))
        );
        assert_eq!(
            transcode_result_message(&renditions[..1], None),
            sig::transcode_result_message([renditions[0].data.as_ref()])
        );
    }

    #[test]
    fn source_renditions_reuse_the_verified_hash_and_others_are_hashed() {
        let body = Bytes::from(vec![7u8; 300_000]);
        let rendition = |data: Bytes| transcode::Rendition {
            profile: "p".into(),
            width: 2,
            height: 2,
            frames: 1,
            pixels: 4,
            data,
        };
        // Pass-through shape: the source buffer, an equal copy elsewhere in memory, another body.
        let renditions = vec![
            rendition(body.clone()),
            rendition(Bytes::from(body.to_vec())),
            rendition(Bytes::from(vec![9u8; 300_000])),
        ];
        let expected = sig::transcode_result_message(renditions.iter().map(|r| r.data.as_ref()));
        let source = SourceHash {
            body: body.clone(),
            hash: Some(keccak256(&body)),
        };
        assert_eq!(
            transcode_result_message(&renditions, Some(&source)),
            expected
        );
        // The reuse is real: a wrong "known" hash shows up only in the first rendition's place.
        let lying = SourceHash {
            body: body.clone(),
            hash: Some(B256::repeat_byte(1)),
        };
        let mut with_lie = vec![B256::repeat_byte(1)];
        with_lie.extend(renditions[1..].iter().map(|r| keccak256(&r.data)));
        assert_eq!(
            transcode_result_message(&renditions, Some(&lying)),
            keccak256(with_lie.concat())
        );
        // A slice of the source is not the source.
        let part = vec![rendition(body.slice(1..))];
        assert_eq!(
            transcode_result_message(&part, Some(&lying)),
            sig::transcode_result_message([part[0].data.as_ref()])
        );
    }

    #[test]
    fn a_request_refused_for_balance_takes_no_session_slot() {
        let n = node(true);
        let broadcaster = alloy::signers::local::PrivateKeySigner::random();
        let key = NodeKey::Account(broadcaster.clone());
        let ladder = reference_transcoder::ladder::parse_ladder("P144p30fps16x9").unwrap();
        for session in ["a", "b", "c"] {
            let info = block_on(n.info(broadcaster.address(), session)).unwrap();
            let seg =
                crate::client::segment_data(&key, &info, b"m", 1, b"body", 1000, &ladder).unwrap();
            let payment = net::Payment {
                sender: broadcaster.address().to_vec(),
                ..net::Payment::default()
            };
            let refusal = block_on(n.check_headers(
                Some(&headers::encode_segment(&seg)),
                Some(&headers::encode_payment(&payment)),
            ))
            .unwrap_err();
            assert_eq!(refusal.label, FailureReason::InsufficientBalance);
            assert_eq!(n.session_count(), 0, "{session}");
        }
    }

    #[test]
    fn a_valid_offchain_segment_passes_the_header_checks() {
        let n = node(false);
        let info = block_on(n.info(Address::ZERO, "session-1")).unwrap();
        let ladder = reference_transcoder::ladder::parse_ladder("P144p30fps16x9").unwrap();
        let seg =
            crate::client::segment_data(&NodeKey::OffChain, &info, b"m", 1, b"body", 1000, &ladder)
                .unwrap();
        let checked =
            block_on(n.check_headers(Some(&headers::encode_segment(&seg)), None)).unwrap();
        assert_eq!(checked.session, "session-1");
        assert_eq!(checked.profiles, ladder);
        assert_eq!(n.session_count(), 1);
        // The request ends without a transcoded segment: the slot is given back.
        drop(checked);
        assert_eq!(n.session_count(), 0);
    }
}
