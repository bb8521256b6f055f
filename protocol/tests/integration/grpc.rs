//! The generated gRPC stubs speak to each other over a real loopback socket: the service paths
//! are `/net.Orchestrator/...` as go-livepeer expects.

use protocol::net::orchestrator_client::OrchestratorClient;
use protocol::net::orchestrator_server::{Orchestrator, OrchestratorServer};
use protocol::net::{self, PingPong};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl Orchestrator for Echo {
    async fn get_orchestrator(
        &self,
        req: Request<net::OrchestratorRequest>,
    ) -> Result<Response<net::OrchestratorInfo>, Status> {
        Ok(Response::new(net::OrchestratorInfo {
            transcoder: "https://127.0.0.1:8935".into(),
            address: req.into_inner().address,
            ..Default::default()
        }))
    }

    async fn end_transcoding_session(
        &self,
        _req: Request<net::EndTranscodingSessionRequest>,
    ) -> Result<Response<net::EndTranscodingSessionResponse>, Status> {
        Ok(Response::new(net::EndTranscodingSessionResponse {}))
    }

    async fn ping(&self, req: Request<PingPong>) -> Result<Response<PingPong>, Status> {
        Ok(Response::new(req.into_inner()))
    }
}

#[tokio::test]
async fn orchestrator_service_round_trips_over_loopback() {
    assert_eq!(
        <OrchestratorServer<Echo> as tonic::server::NamedService>::NAME,
        "net.Orchestrator"
    );
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(OrchestratorServer::new(Echo))
            .serve_with_incoming(incoming),
    );
    let mut client = OrchestratorClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let pong = client
        .ping(PingPong {
            value: b"lpt".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pong.value, b"lpt");
    let info = client
        .get_orchestrator(net::OrchestratorRequest {
            address: vec![7; 20],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.address, info.transcoder.as_str()),
        (vec![7; 20], "https://127.0.0.1:8935")
    );
    client
        .end_transcoding_session(net::EndTranscodingSessionRequest::default())
        .await
        .unwrap();
    server.abort();
}
