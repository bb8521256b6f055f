//! The orchestrator's shared state and the segment pipeline.
//!
//! Design: one [`Node`] behind an `Arc` is the whole orchestrator; the gRPC services and HTTP
//! routes are thin adapters over its methods. The segment pipeline follows go-livepeer's
//! `ServeSegment` order — payment header, segment credentials (signature, capabilities, auth
//! token, capacity), payment, balance, body and hash — and each refusal is a
//! [`Refusal`](admission::Refusal) carrying the documented status code and reason text, so the
//! rejection contract lives in one place.
//!
//! The pipeline's stages are modules, in the order a segment meets them: [`sessions`] (slots and
//! byte budgets a request holds), [`admission`] (the checks before and after the body),
//! `dispatch` (to the local, pass-through or remote transcoder) and [`results`] (stored
//! renditions, billing and the signed `TranscodeResult`).

pub mod admission;
mod dispatch;
pub mod results;
pub mod sessions;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use protocol::capabilities::{Capability, CapabilitySet};
use protocol::fields;
use protocol::net::{self, OrchestratorInfo, PingPong};
use protocol::sig::{self, NodeKey, SigPolicy};
use tokio::sync::watch;

use crate::auth::AuthTokens;
use crate::config::OrchestratorConfig;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::payments::{PaymentRejected, Payments};
use crate::pool::PoolLedger;
use crate::remote::RemotePool;
use crate::store::ObjectStore;
use crate::transcode::LocalTranscoders;
use sessions::{ByteBudget, SessionTable};

/// The orchestrator.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: OrchestratorConfig,
    pub(crate) service_uri: String,
    /// Where transcoders fetch source segments (`source_uri`, else the service URI).
    pub(crate) source_uri: String,
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
        ledger: Arc<PoolLedger>,
        crash: watch::Sender<bool>,
    ) -> Self {
        let policy = if config.offchain {
            SigPolicy::OffChain
        } else {
            SigPolicy::OnChain
        };
        let source_uri = config.source_uri.as_deref().map_or_else(
            || service_uri.clone(),
            |uri| uri.trim_end_matches('/').to_owned(),
        );
        Self {
            service_uri,
            source_uri,
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
            remote: RemotePool::new(Duration::from_millis(config.limits.remote_task_timeout_ms))
                .with_pool(config.pool.checks(), ledger),
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
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use proptest::prelude::*;
    use protocol::headers;
    use protocol::ticket::{ChainView, PricePerPixel, RecipientConfig, TicketRecipient};

    use super::admission::{CheckedSegment, Refusal};
    use super::*;
    use crate::metrics::FailureReason;

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
            Arc::new(PoolLedger::new(Duration::from_secs(60), None).unwrap()),
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
            let seg = protocol::client::segment_data(&NodeKey::OffChain, &info, b"m", 1, b"body", 1000, &crate::profiles::wire_ladder(&ladder)).unwrap();
            let mut bytes = prost::Message::encode_to_vec(&seg);
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            assert_client_error(block_on(n.check_headers(Some(&b64(&bytes)), None)));
        }
    }

    #[test]
    fn a_request_refused_for_balance_takes_no_session_slot() {
        let n = node(true);
        let broadcaster = alloy::signers::local::PrivateKeySigner::random();
        let key = NodeKey::Account(broadcaster.clone());
        let ladder = reference_transcoder::ladder::parse_ladder("P144p30fps16x9").unwrap();
        let wire = crate::profiles::wire_ladder(&ladder);
        for session in ["a", "b", "c"] {
            let info = block_on(n.info(broadcaster.address(), session)).unwrap();
            let seg =
                protocol::client::segment_data(&key, &info, b"m", 1, b"body", 1000, &wire).unwrap();
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
        let seg = protocol::client::segment_data(
            &NodeKey::OffChain,
            &info,
            b"m",
            1,
            b"body",
            1000,
            &crate::profiles::wire_ladder(&ladder),
        )
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
