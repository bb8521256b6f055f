//! The discovery half of a fake orchestrator: the `Orchestrator` gRPC service, answering
//! `GetOrchestrator` as an off-chain orchestrator would (its URI and an auth token), or with the
//! price and ticket params a test gives it.
//!
//! The fakes that hostile-orchestrator tests build serve this beside routes of their own on the
//! node's TLS server; which server runs them is the test's choice, so only the gRPC service is
//! shared here.

use std::time::Duration;

use protocol::net::orchestrator_server::{Orchestrator, OrchestratorServer};
use protocol::net::{
    AuthToken, EndTranscodingSessionRequest, EndTranscodingSessionResponse, OrchestratorInfo,
    OrchestratorRequest, PingPong, PriceInfo, TicketParams,
};
use tonic::{Request, Response, Status};

/// What a fake orchestrator answers to `GetOrchestrator`, after `delay`.
#[derive(Clone, Debug, Default)]
pub struct FakeDiscovery {
    /// The transcoder URI it advertises: the fake's own.
    pub uri: String,
    pub price: Option<PriceInfo>,
    pub ticket_params: Option<TicketParams>,
    pub delay: Duration,
}

impl FakeDiscovery {
    /// The gRPC service answering as `self` says.
    pub fn service(self) -> OrchestratorServer<Self> {
        OrchestratorServer::new(self)
    }
}

#[tonic::async_trait]
impl Orchestrator for FakeDiscovery {
    async fn get_orchestrator(
        &self,
        _: Request<OrchestratorRequest>,
    ) -> Result<Response<OrchestratorInfo>, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(Response::new(OrchestratorInfo {
            transcoder: self.uri.clone(),
            price_info: self.price.clone(),
            ticket_params: self.ticket_params.clone(),
            auth_token: Some(AuthToken {
                token: b"token".to_vec(),
                session_id: "fake".into(),
                expiration: i64::MAX / 2,
            }),
            ..Default::default()
        }))
    }

    async fn end_transcoding_session(
        &self,
        _: Request<EndTranscodingSessionRequest>,
    ) -> Result<Response<EndTranscodingSessionResponse>, Status> {
        Ok(Response::new(EndTranscodingSessionResponse {}))
    }

    async fn ping(&self, request: Request<PingPong>) -> Result<Response<PingPong>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}
