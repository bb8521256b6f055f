//! Orchestrator sessions: discovery, selection, payment, submission and failover.
//!
//! The pool knows every configured orchestrator. Discovery is a signed `GetOrchestrator` over TLS
//! without certificate checks (go-livepeer's behaviour) and its round trip is the orchestrator's
//! observed latency. A segment goes to the lowest-latency orchestrator under the price cap, and
//! keeps going there while it works (sticky, like go-livepeer's per-stream sessions: segment round
//! trips are recorded for `/status` but do not reshuffle a healthy choice); on any failure (timeout, HTTP error, garbage, transcode
//! error) that orchestrator is put in cooldown and the same segment is retried on the next one,
//! up to `max_attempts` (go-livepeer's `suspendAndRemoveOrch` and `MaxAttempts` retry in
//! `server/broadcast.go`). A killed orchestrator fails an attempt at once: its kernel resets the
//! connection or refuses the next, and only a peer that stops answering without either waits out
//! the upload or total timeout. Its session is dropped with the failure, and a discovery answer
//! that was on its way when the failure came does not bring it back. An orchestrator in cooldown
//! is rediscovered lazily when it expires, so a restarted node rejoins without operator action.
//!
//! The HTTP client follows no redirect by itself: the rendition download follows one only when
//! it stays on the orchestrator's own host (see [`submit`] and
//! [`RenditionFetchConfig`](crate::config::RenditionFetchConfig)).

pub mod payment;
pub mod submit;
pub mod tls;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::capabilities::{Capability, CapabilitySet};
use protocol::net;
use protocol::sig::{self, NodeKey};
use protocol::ticket::{PricePerPixel, TicketParams};
use serde::Serialize;

use crate::config::RenditionFetchConfig;

pub use payment::Payer;
pub use submit::{SubmitError, SubmitOutcome, Transcoded};

/// go-livepeer's gRPC connect timeout for discovery.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an orchestrator could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Connecting or the RPC failed.
    #[error("GetOrchestrator {uri}: {reason}")]
    Rpc {
        /// Orchestrator URI.
        uri: String,
        /// Cause.
        reason: String,
    },
    /// No answer within [`DISCOVERY_TIMEOUT`].
    #[error("GetOrchestrator {uri}: no answer within {0:?}", DISCOVERY_TIMEOUT)]
    Timeout {
        /// Orchestrator URI.
        uri: String,
    },
    /// The answer is unusable.
    #[error("GetOrchestrator {uri}: invalid OrchestratorInfo: {reason}")]
    Invalid {
        /// Orchestrator URI.
        uri: String,
        /// What is wrong.
        reason: String,
    },
}

/// A live session with one orchestrator.
#[derive(Debug, Clone)]
pub struct Session {
    /// Configured URI (the pool's key).
    pub uri: String,
    /// Where segments are posted (`OrchestratorInfo.transcoder`, else `uri`).
    pub transcoder: String,
    /// The discovery answer (auth token, capabilities).
    pub info: net::OrchestratorInfo,
    /// Ticket params, absent off-chain or when free.
    pub params: Option<TicketParams>,
    /// Price per pixel.
    pub price: PricePerPixel,
    /// O's address, when it has one.
    pub address: Option<protocol::Address>,
}

/// A pool entry's public state, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct OrchestratorStatus {
    /// Configured URI.
    pub uri: String,
    /// `ready`, `cooldown`, `undiscovered` or `too_expensive`.
    pub state: String,
    /// Discovery round trip, ms (the selection key).
    pub latency_ms: Option<f64>,
    /// Segment round trip (upload + transcode + download), EWMA, ms.
    pub segment_round_trip_ms: Option<f64>,
    /// Price, wei per pixel as `num/den`.
    pub price: Option<String>,
    /// O's address.
    pub address: Option<String>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Segments delivered.
    pub segments_ok: u64,
    /// Segment attempts that failed.
    pub segments_failed: u64,
}

struct Entry {
    uri: String,
    session: Option<Session>,
    latency_ms: Option<f64>,
    round_trip_ms: Option<f64>,
    cooldown_until: Option<Instant>,
    last_error: Option<String>,
    too_expensive: bool,
    ok: u64,
    failed: u64,
}

/// Every configured orchestrator and how each is doing.
pub struct OrchestratorPool {
    entries: Mutex<Vec<Entry>>,
    key: NodeKey,
    capabilities: CapabilitySet,
    max_price: Option<(u64, u64)>,
    cooldown: Duration,
    /// Shared HTTPS client for segment upload and rendition download; follows no redirect.
    pub(crate) http: reqwest::Client,
    /// Where renditions may come from and how large they may be.
    pub(crate) rendition_fetch: RenditionFetchConfig,
    discovery_lock: tokio::sync::Mutex<()>,
}

impl OrchestratorPool {
    /// A pool over `uris`, signing as `key`, accepting prices up to `max_price`
    /// (`price_per_unit`, `pixels_per_unit`), fetching renditions within `rendition_fetch`.
    pub fn new(
        uris: &[String],
        key: NodeKey,
        max_price: Option<(u64, u64)>,
        cooldown: Duration,
        rendition_fetch: RenditionFetchConfig,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("static reqwest configuration");
        Arc::new(Self {
            entries: Mutex::new(
                uris.iter()
                    .map(|uri| Entry {
                        uri: uri.trim_end_matches('/').to_string(),
                        session: None,
                        latency_ms: None,
                        round_trip_ms: None,
                        cooldown_until: None,
                        last_error: None,
                        too_expensive: false,
                        ok: 0,
                        failed: 0,
                    })
                    .collect(),
            ),
            key,
            capabilities: [Capability::H264, Capability::Mpegts].into_iter().collect(),
            max_price,
            cooldown,
            http,
            rendition_fetch,
            discovery_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The broadcaster's signing identity.
    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    /// Capabilities the broadcaster asks for.
    pub fn capabilities(&self) -> &CapabilitySet {
        &self.capabilities
    }

    /// Whether any orchestrator is configured.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Discovers every orchestrator without a session whose cooldown is over.
    pub async fn discover_due(&self) {
        let _one_at_a_time = self.discovery_lock.lock().await;
        let now = Instant::now();
        // Each with its failure count, to tell an answer that predates a failure from a new one.
        let due: Vec<(String, u64)> = self
            .lock()
            .iter()
            .filter(|e| e.session.as_ref().is_none_or(|s| token_expiring(&s.info)))
            .filter(|e| e.cooldown_until.is_none_or(|t| t <= now))
            .map(|e| (e.uri.clone(), e.failed))
            .collect();
        let results =
            futures::future::join_all(due.iter().map(|(uri, _)| self.discover_one(uri))).await;
        for ((uri, failed), (result, rtt)) in due.iter().zip(results) {
            self.settle_discovery(uri, *failed, result, rtt);
        }
    }

    /// Records `uri`'s discovery, begun when it had `failed_before` failed attempts.
    fn settle_discovery(
        &self,
        uri: &str,
        failed_before: u64,
        result: Result<Session, DiscoveryError>,
        rtt: Duration,
    ) {
        let mut entries = self.lock();
        let Some(e) = entries.iter_mut().find(|e| e.uri == uri) else {
            return;
        };
        match result {
            // A segment failed there while the answer was on its way: the orchestrator answered
            // and then died (or broke), so the failure is the newer news and its cooldown stands.
            Ok(_) if e.failed != failed_before => {}
            Ok(session) => {
                e.too_expensive = !self.price_ok(&session.price);
                e.latency_ms = Some(rtt.as_secs_f64() * 1000.0);
                e.session = Some(session);
                e.cooldown_until = None;
            }
            Err(err) => {
                tracing::warn!("{err}");
                e.session = None;
                e.last_error = Some(err.to_string());
                e.cooldown_until = Some(Instant::now() + self.cooldown);
            }
        }
    }

    async fn discover_one(&self, uri: &str) -> (Result<Session, DiscoveryError>, Duration) {
        let started = Instant::now();
        let result = match tokio::time::timeout(DISCOVERY_TIMEOUT, self.get_orchestrator(uri)).await
        {
            Ok(r) => r,
            Err(_) => Err(DiscoveryError::Timeout {
                uri: uri.to_string(),
            }),
        };
        (result, started.elapsed())
    }

    async fn get_orchestrator(&self, uri: &str) -> Result<Session, DiscoveryError> {
        let rpc = |reason: String| DiscoveryError::Rpc {
            uri: uri.to_string(),
            reason,
        };
        // The connector does TLS, so tonic sees plain `http` and needs no TLS support itself.
        let authority = uri.split_once("://").map_or(uri, |(_, rest)| rest);
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| rpc(e.to_string()))?
            // Our own deadline (DISCOVERY_TIMEOUT) fires first, so its error is the one reported.
            .connect_timeout(DISCOVERY_TIMEOUT + Duration::from_secs(1))
            .timeout(DISCOVERY_TIMEOUT + Duration::from_secs(1));
        let channel = endpoint
            .connect_with_connector(tls::grpc_connector())
            .await
            .map_err(|e| rpc(format!("{e}: {}", source_chain(&e))))?;
        let mut client = net::orchestrator_client::OrchestratorClient::new(channel);
        let address = self.key.address().map(|a| a.to_vec()).unwrap_or_default();
        let sig = sig::sign_orchestrator_request(&self.key).map_err(|e| rpc(e.to_string()))?;
        let info = client
            .get_orchestrator(net::OrchestratorRequest {
                address,
                sig,
                capabilities: Some(self.capabilities.to_message()),
                ignore_capacity_check: false,
            })
            .await
            .map_err(|status| rpc(format!("{}: {}", status.code(), status.message())))?
            .into_inner();
        session_from_info(uri, info, &self.key)
    }

    fn price_ok(&self, price: &PricePerPixel) -> bool {
        match self.max_price {
            None => true,
            Some((max, ppu)) => {
                u128::from(price.price_per_unit) * u128::from(ppu)
                    <= u128::from(max) * u128::from(price.pixels_per_unit)
            }
        }
    }

    /// The best ready orchestrator not in `exclude`: under the price cap, lowest latency.
    pub async fn select(&self, exclude: &[String]) -> Option<Session> {
        if let Some(s) = self.pick(exclude) {
            return Some(s);
        }
        self.discover_due().await;
        self.pick(exclude)
    }

    fn pick(&self, exclude: &[String]) -> Option<Session> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|e| !exclude.contains(&e.uri) && !e.too_expensive)
            .filter(|e| e.cooldown_until.is_none_or(|t| t <= now))
            .filter_map(|e| Some((e.session.as_ref()?, e.latency_ms.unwrap_or(f64::MAX))))
            .filter(|(s, _)| !token_expiring(&s.info))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, _)| s.clone())
    }

    /// Forgets every session whose ticket params expire within `PARAMS_REFRESH_BLOCKS` of
    /// `current_block`, so the next selection rediscovers it with fresh params (as go-livepeer's
    /// broadcaster refreshes a session before its params lapse). Sessions that deliver segments
    /// get fresh params with every result and never reach this.
    pub fn forget_expiring_params(&self, current_block: u64) {
        for e in self.lock().iter_mut() {
            if e.session
                .as_ref()
                .and_then(|s| s.params.as_ref())
                .is_some_and(|p| p.expiration_block <= current_block + PARAMS_REFRESH_BLOCKS)
            {
                e.session = None;
            }
        }
    }

    /// Records a delivered segment: its round trip and the refreshed params from `info`.
    pub fn succeeded(&self, uri: &str, round_trip: Duration, info: Option<net::OrchestratorInfo>) {
        let mut entries = self.lock();
        let Some(e) = entries.iter_mut().find(|e| e.uri == uri) else {
            return;
        };
        let ms = round_trip.as_secs_f64() * 1000.0;
        e.round_trip_ms = Some(e.round_trip_ms.map_or(ms, |old| old * 0.8 + ms * 0.2));
        e.ok += 1;
        if let (Some(info), Some(session)) = (info, e.session.as_mut())
            && let Ok(fresh) = session_from_info(uri, merge_info(&session.info, info), &self.key)
        {
            e.too_expensive = !self.price_ok(&fresh.price);
            *session = fresh;
        }
    }

    /// Drops `uri`'s session so the next selection rediscovers it, without a cooldown (for
    /// failures on B's side, such as params that lapsed before B could pay with them).
    pub fn forget(&self, uri: &str, error: &str) {
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.uri == uri) {
            e.last_error = Some(error.to_string());
            e.session = None;
        }
    }

    /// Records a failed attempt: the orchestrator leaves rotation for the cooldown and its
    /// session is dropped (it is rediscovered afterwards).
    pub fn failed(&self, uri: &str, error: &str) {
        let mut entries = self.lock();
        let Some(e) = entries.iter_mut().find(|e| e.uri == uri) else {
            return;
        };
        e.failed += 1;
        e.last_error = Some(error.to_string());
        e.session = None;
        e.cooldown_until = Some(Instant::now() + self.cooldown);
    }

    /// Every orchestrator's state.
    pub fn status(&self) -> Vec<OrchestratorStatus> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|e| OrchestratorStatus {
                uri: e.uri.clone(),
                state: if e.cooldown_until.is_some_and(|t| t > now) {
                    "cooldown"
                } else if e.session.is_none() {
                    "undiscovered"
                } else if e.too_expensive {
                    "too_expensive"
                } else {
                    "ready"
                }
                .to_string(),
                latency_ms: e.latency_ms,
                segment_round_trip_ms: e.round_trip_ms,
                price: e
                    .session
                    .as_ref()
                    .map(|s| format!("{}/{}", s.price.price_per_unit, s.price.pixels_per_unit)),
                address: e
                    .session
                    .as_ref()
                    .and_then(|s| s.address)
                    .map(|a| a.to_checksum(None)),
                last_error: e.last_error.clone(),
                segments_ok: e.ok,
                segments_failed: e.failed,
            })
            .collect()
    }
}

/// Params this close to expiry are refreshed before paying with them (the ticket sender refuses
/// params expiring within a block of its view of the chain, which may lag a block or two).
const PARAMS_REFRESH_BLOCKS: u64 = 5;

fn token_expiring(info: &net::OrchestratorInfo) -> bool {
    let Some(token) = &info.auth_token else {
        return false;
    };
    if token.expiration <= 0 {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    token.expiration - now < 60
}

/// A result's `info` refreshes params and price; fields it leaves empty keep the old values.
fn merge_info(
    old: &net::OrchestratorInfo,
    mut fresh: net::OrchestratorInfo,
) -> net::OrchestratorInfo {
    if fresh.transcoder.is_empty() {
        fresh.transcoder = old.transcoder.clone();
    }
    if fresh.auth_token.is_none() {
        fresh.auth_token = old.auth_token.clone();
    }
    if fresh.address.is_empty() {
        fresh.address = old.address.clone();
    }
    if fresh.price_info.is_none() {
        fresh.price_info = old.price_info.clone();
    }
    if fresh.capabilities.is_none() {
        fresh.capabilities = old.capabilities.clone();
    }
    fresh
}

fn session_from_info(
    uri: &str,
    info: net::OrchestratorInfo,
    key: &NodeKey,
) -> Result<Session, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::Invalid {
        uri: uri.to_string(),
        reason,
    };
    let price =
        PricePerPixel::from_message(info.price_info.as_ref(), "OrchestratorInfo.price_info")
            .map_err(|e| invalid(e.to_string()))?;
    let address = if info.address.is_empty() {
        None
    } else {
        Some(
            protocol::fields::address("OrchestratorInfo.address", &info.address)
                .map_err(|e| invalid(e.to_string()))?,
        )
    };
    let params = match (&info.ticket_params, key) {
        (Some(_), NodeKey::Account(_)) => {
            Some(TicketParams::from_orchestrator_info(&info).map_err(|e| invalid(e.to_string()))?)
        }
        _ => None,
    };
    if matches!(key, NodeKey::Account(_)) && price.price_per_unit > 0 && params.is_none() {
        return Err(invalid(
            "a priced orchestrator sent no ticket params".into(),
        ));
    }
    let transcoder = if info.transcoder.is_empty() {
        uri.to_string()
    } else {
        info.transcoder.trim_end_matches('/').to_string()
    };
    Ok(Session {
        uri: uri.to_string(),
        transcoder,
        info,
        params,
        price,
        address,
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "https://127.0.0.1:1";

    fn pool() -> Arc<OrchestratorPool> {
        OrchestratorPool::new(
            &[URI.to_string()],
            NodeKey::OffChain,
            None,
            Duration::from_secs(30),
            RenditionFetchConfig::default(),
        )
    }

    fn answer() -> Session {
        session_from_info(URI, net::OrchestratorInfo::default(), &NodeKey::OffChain).unwrap()
    }

    fn state(pool: &OrchestratorPool) -> String {
        pool.status()[0].state.clone()
    }

    #[test]
    fn a_discovery_answer_older_than_a_failure_does_not_bring_the_session_back() {
        let pool = pool();
        pool.settle_discovery(URI, 0, Ok(answer()), Duration::from_millis(1));
        assert_eq!(state(&pool), "ready");
        // A rediscovery begins; before its answer is recorded, a segment fails there.
        let failed_before = pool.status()[0].segments_failed;
        pool.failed(URI, "connection: reset by peer");
        pool.settle_discovery(URI, failed_before, Ok(answer()), Duration::from_millis(1));
        assert_eq!(state(&pool), "cooldown");
        assert!(pool.pick(&[]).is_none());
        // An answer to a discovery begun after the failure is news again.
        pool.settle_discovery(
            URI,
            failed_before + 1,
            Ok(answer()),
            Duration::from_millis(1),
        );
        assert_eq!(state(&pool), "ready");
    }
}
