//! The gRPC services of the orchestrator's port: `net.Orchestrator` for broadcasters and
//! `net.Transcoder` for remote transcoders.
//!
//! Design: thin adapters over [`Node`]; the remote transcoder's work stream is an mpsc channel
//! whose closing (the transcoder went away) is watched by a task that detaches the transcoder and
//! fails what it held.

use std::sync::Arc;

use protocol::net::orchestrator_server::Orchestrator;
use protocol::net::transcoder_server::Transcoder;
use protocol::net::{
    EndTranscodingSessionRequest, EndTranscodingSessionResponse, NotifySegment, OrchestratorInfo,
    OrchestratorRequest, PingPong, RegisterRequest,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::transcoder::{TRANSCODER_NAME_METADATA, check_transcoder_name};

/// `net.Orchestrator`.
#[derive(Debug, Clone)]
pub struct OrchestratorService(pub Arc<Node>);

#[tonic::async_trait]
impl Orchestrator for OrchestratorService {
    async fn get_orchestrator(
        &self,
        request: Request<OrchestratorRequest>,
    ) -> Result<Response<OrchestratorInfo>, Status> {
        self.0.discover(request.get_ref()).await.map(Response::new)
    }

    async fn end_transcoding_session(
        &self,
        request: Request<EndTranscodingSessionRequest>,
    ) -> Result<Response<EndTranscodingSessionResponse>, Status> {
        self.0.end_session(request.get_ref().auth_token.as_ref())?;
        Ok(Response::new(EndTranscodingSessionResponse {}))
    }

    async fn ping(&self, request: Request<PingPong>) -> Result<Response<PingPong>, Status> {
        self.0.ping(&request.get_ref().value).map(Response::new)
    }
}

/// `net.Transcoder`.
#[derive(Debug, Clone)]
pub struct TranscoderService(pub Arc<Node>);

#[tonic::async_trait]
impl Transcoder for TranscoderService {
    type RegisterTranscoderStream = ReceiverStream<Result<NotifySegment, Status>>;

    async fn register_transcoder(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<Self::RegisterTranscoderStream>, Status> {
        let name = match request.metadata().get(TRANSCODER_NAME_METADATA) {
            Some(value) => {
                let name = value.to_str().map_err(|_| {
                    Status::invalid_argument(format!("{TRANSCODER_NAME_METADATA}: not ASCII"))
                })?;
                check_transcoder_name(name)
                    .map_err(|err| Status::invalid_argument(err.to_string()))?;
                Some(name.to_string())
            }
            None => None,
        };
        let req = request.into_inner();
        match &self.0.config.transcoder_secret {
            Some(secret) if secret.matches(req.secret.as_bytes()) => {}
            _ => return Err(Status::permission_denied("invalid transcoder secret")),
        }
        let capacity = usize::try_from(req.capacity.clamp(1, 64)).unwrap_or(1);
        let (id, stream) = self
            .0
            .remote
            .register(capacity, name.as_deref())
            .map_err(|dropped| Status::permission_denied(dropped.to_string()))?;
        let node = self.0.clone();
        tokio::spawn(async move { node.remote.watch(id).await });
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}
