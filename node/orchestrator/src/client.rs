//! The broadcaster's side of the orchestrator wire protocol: discovery over gRPC, segment upload
//! and payment over HTTPS, rendition download. Shared by tests, the broadcaster node and the
//! direct-to-orchestrator probe.
//!
//! Design: one [`OrchestratorClient`] per orchestrator URI holds a lazily connected gRPC channel
//! and an HTTP client, both over TLS that accepts the orchestrator's self-signed certificate (as
//! go-livepeer broadcasters do). [`segment_data`] builds and signs the `Livepeer-Segment` message;
//! the caller builds the payment with `protocol::ticket::TicketSender`, because what to pay is the
//! broadcaster's policy, not the transport's. A refusal comes back as
//! [`ClientError::Rejected`] with the orchestrator's status code and reason text, and a segment's
//! upload and transcode times are measured apart, as go-livepeer's broadcaster measures them.
//!
//! ```no_run
//! # async fn demo(key: protocol::sig::NodeKey, body: bytes::Bytes) -> Result<(), Box<dyn std::error::Error>> {
//! use node_orchestrator::client::{OrchestratorClient, SegmentRequest, segment_data};
//! let client = OrchestratorClient::connect("https://127.0.0.1:8935")?;
//! let info = client.get_orchestrator(&key, None).await?;
//! let ladder = reference_transcoder::ladder::parse_ladder("P240p30fps16x9")?;
//! let seg = segment_data(&key, &info, b"stream-1", 0, &body, 2000, &ladder)?;
//! let reply = client.submit_segment(SegmentRequest::new(&seg, None, body, 2000)).await?;
//! for rendition in reply.renditions()? {
//!     let bytes = client.download(&rendition.url).await?;
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::keccak256;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;
use protocol::capabilities::CapabilitySet;
use protocol::net::orchestrator_client::OrchestratorClient as OrchestratorGrpc;
use protocol::net::{
    self, AuthToken, EndTranscodingSessionRequest, OrchestratorInfo, OrchestratorRequest, Payment,
    PingPong, SegData, TranscodeResult, TranscodedSegmentData,
};
use protocol::sig::{self, NodeKey, SegmentSigError, SigError};
use protocol::{fields, headers};
use reference_transcoder::Profile;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::node::offered_capabilities;
use crate::profiles;
use crate::tls;

/// gRPC connect timeout go-livepeer broadcasters use.
pub const GRPC_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The orchestrator URI is unusable.
    #[error("invalid orchestrator URI {uri:?}: {reason}")]
    BadUri {
        /// URI given.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The orchestrator refused the request with an HTTP status and reason text.
    #[error("orchestrator answered {status}: {reason}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Body text.
        reason: String,
    },
    /// A gRPC call failed.
    #[error("gRPC {call}: {status}")]
    Grpc {
        /// Method.
        call: &'static str,
        /// Status.
        status: tonic::Status,
    },
    /// The connection or transfer failed.
    #[error("{stage}: {reason}")]
    Transport {
        /// What was being done (`upload`, `transcode`, `download`…).
        stage: &'static str,
        /// Error text.
        reason: String,
    },
    /// A deadline passed.
    #[error("{stage} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        stage: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The reply is not the expected protobuf.
    #[error("undecodable {what}: {reason}")]
    Decode {
        /// Message expected.
        what: &'static str,
        /// Decoder error.
        reason: String,
    },
    /// The transcode result carries an error instead of renditions.
    #[error("transcode failed: {0}")]
    Transcode(String),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SigError),
    /// Building the segment signature failed.
    #[error(transparent)]
    SegmentSig(#[from] SegmentSigError),
}

/// A segment upload.
#[derive(Debug, Clone)]
pub struct SegmentRequest<'a> {
    /// The `Livepeer-Segment` message (see [`segment_data`]).
    pub seg: &'a SegData,
    /// The `Livepeer-Payment` message; `None` sends no payment header (off-chain).
    pub payment: Option<&'a Payment>,
    /// MPEG-TS bytes.
    pub body: Bytes,
    /// Deadline for the upload (until the 200).
    pub upload_timeout: Duration,
    /// Deadline for the whole exchange.
    pub total_timeout: Duration,
}

impl<'a> SegmentRequest<'a> {
    /// A request with go-livepeer's timeouts for a segment of `duration_ms`: upload
    /// `max(2 s, duration / 2)`, total `max(8 s, 4 × duration)`.
    pub fn new(
        seg: &'a SegData,
        payment: Option<&'a Payment>,
        body: Bytes,
        duration_ms: u64,
    ) -> Self {
        let duration = Duration::from_millis(duration_ms);
        Self {
            seg,
            payment,
            body,
            upload_timeout: (duration / 2).max(Duration::from_secs(2)),
            total_timeout: (duration * 4).max(Duration::from_secs(8)),
        }
    }
}

/// A segment's answer with its timings.
#[derive(Debug, Clone)]
pub struct SegmentReply {
    /// The decoded `TranscodeResult`.
    pub result: TranscodeResult,
    /// From the start of the request to the 200.
    pub upload_time: Duration,
    /// From the 200 to the end of the result (the transcode time B sees).
    pub transcode_time: Duration,
}

impl SegmentReply {
    /// The renditions, or the orchestrator's transcode error.
    pub fn renditions(&self) -> Result<&[TranscodedSegmentData], ClientError> {
        match &self.result.result {
            Some(net::transcode_result::Result::Data(data)) => Ok(&data.segments),
            Some(net::transcode_result::Result::Error(e)) => Err(ClientError::Transcode(e.clone())),
            None => Err(ClientError::Transcode("empty result".into())),
        }
    }

    /// O's signature over the renditions (empty off-chain).
    pub fn signature(&self) -> &[u8] {
        match &self.result.result {
            Some(net::transcode_result::Result::Data(data)) => &data.sig,
            _ => &[],
        }
    }

    /// Refreshed orchestrator info (new ticket params), if sent.
    pub fn info(&self) -> Option<&OrchestratorInfo> {
        self.result.info.as_ref()
    }
}

/// Builds and signs the `Livepeer-Segment` message for `body` under `info`'s auth token.
pub fn segment_data(
    key: &NodeKey,
    info: &OrchestratorInfo,
    manifest_id: &[u8],
    seq: i64,
    body: &[u8],
    duration_ms: i32,
    ladder: &[Profile],
) -> Result<SegData, ClientError> {
    let mut seg = SegData {
        manifest_id: manifest_id.to_vec(),
        seq,
        hash: keccak256(body).to_vec(),
        duration: duration_ms,
        capabilities: Some(required_capabilities().to_message()),
        auth_token: info.auth_token.clone(),
        full_profiles3: ladder.iter().map(profiles::to_wire).collect(),
        ..Default::default()
    };
    seg.sig = sig::sign_segment(key, &seg)?;
    Ok(seg)
}

/// What this client needs from an orchestrator: H.264 in MPEG-TS with auth tokens.
pub fn required_capabilities() -> CapabilitySet {
    use protocol::capabilities::Capability;
    let offered = offered_capabilities();
    let needed: CapabilitySet = [Capability::H264, Capability::Mpegts, Capability::AuthToken]
        .into_iter()
        .collect();
    debug_assert!(needed.compatible_with(&offered));
    needed
}

/// A client for one orchestrator.
#[derive(Debug, Clone)]
pub struct OrchestratorClient {
    uri: String,
    grpc: OrchestratorGrpc<Channel>,
    http: reqwest::Client,
}

/// A lazily connected gRPC channel to `uri` (`https://host:port`) over TLS that accepts any
/// certificate; also used by remote transcoders.
pub fn grpc_channel(uri: &str) -> Result<Channel, ClientError> {
    let bad = |reason: String| ClientError::BadUri {
        uri: uri.to_string(),
        reason,
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    let host = parsed
        .host()
        .ok_or_else(|| bad("no host".into()))?
        .to_string();
    let port = parsed.port_u16().unwrap_or(443);
    let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(GRPC_CONNECT_TIMEOUT);
    let connector = TlsConnector::from(Arc::new(tls::insecure_client_config(&[b"h2"])));
    let server_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(server_host.clone()).map_err(|e| bad(e.to_string()))?;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let addr = (server_host.clone(), port);
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        })),
    )
}

/// An HTTPS client that accepts self-signed certificates.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls::insecure_client_config(&[b"http/1.1"]))
        .tcp_nodelay(true)
        .build()
        .expect("static reqwest configuration is valid")
}

impl OrchestratorClient {
    /// A client for the orchestrator at `uri` (`https://host:port`); connects on first use.
    pub fn connect(uri: &str) -> Result<Self, ClientError> {
        let uri = uri.trim_end_matches('/').to_string();
        let channel = grpc_channel(&uri)?;
        Ok(Self {
            grpc: OrchestratorGrpc::new(channel),
            http: http_client(),
            uri,
        })
    }

    /// The orchestrator URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `GetOrchestrator`, signed by `key` (empty signature off-chain).
    pub async fn get_orchestrator(
        &self,
        key: &NodeKey,
        capabilities: Option<&CapabilitySet>,
    ) -> Result<OrchestratorInfo, ClientError> {
        let request = OrchestratorRequest {
            address: key.address().map(|a| a.to_vec()).unwrap_or_default(),
            sig: sig::sign_orchestrator_request(key)?,
            capabilities: Some(
                capabilities
                    .cloned()
                    .unwrap_or_else(required_capabilities)
                    .to_message(),
            ),
            ignore_capacity_check: false,
        };
        self.grpc
            .clone()
            .get_orchestrator(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Grpc {
                call: "GetOrchestrator",
                status,
            })
    }

    /// `Ping`; returns the echoed bytes.
    pub async fn ping(&self, value: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        self.grpc
            .clone()
            .ping(PingPong { value })
            .await
            .map(|r| r.into_inner().value)
            .map_err(|status| ClientError::Grpc {
                call: "Ping",
                status,
            })
    }

    /// `EndTranscodingSession` for the session of `token`.
    pub async fn end_session(&self, token: AuthToken) -> Result<(), ClientError> {
        self.grpc
            .clone()
            .end_transcoding_session(EndTranscodingSessionRequest {
                auth_token: Some(token),
            })
            .await
            .map(drop)
            .map_err(|status| ClientError::Grpc {
                call: "EndTranscodingSession",
                status,
            })
    }

    /// `POST /segment`: uploads, waits for the 200 and then for the `TranscodeResult`.
    pub async fn submit_segment(
        &self,
        request: SegmentRequest<'_>,
    ) -> Result<SegmentReply, ClientError> {
        let started = Instant::now();
        let mut builder = self
            .http
            .post(format!("{}/segment", self.uri))
            .header("Content-Type", "video/MP2T")
            .header(
                headers::SEGMENT_HEADER,
                headers::encode_segment(request.seg),
            )
            .timeout(request.total_timeout)
            .body(request.body);
        if let Some(payment) = request.payment {
            builder = builder.header(headers::PAYMENT_HEADER, headers::encode_payment(payment));
        }
        let response = tokio::time::timeout(request.upload_timeout, builder.send())
            .await
            .map_err(|_| ClientError::Timeout {
                stage: "upload",
                after: request.upload_timeout,
            })?
            .map_err(|e| transport("upload", e))?;
        let upload_time = started.elapsed();
        let response = check_status(response).await?;
        let remaining = request.total_timeout.saturating_sub(upload_time);
        let body = tokio::time::timeout(remaining, response.bytes())
            .await
            .map_err(|_| ClientError::Timeout {
                stage: "transcode",
                after: request.total_timeout,
            })?
            .map_err(|e| transport("transcode", e))?;
        let result = TranscodeResult::decode(body.as_ref()).map_err(|e| ClientError::Decode {
            what: "TranscodeResult",
            reason: e.to_string(),
        })?;
        if result.result.is_none() {
            return Err(ClientError::Decode {
                what: "TranscodeResult",
                reason: format!("no result in {} bytes", body.len()),
            });
        }
        Ok(SegmentReply {
            result,
            upload_time,
            transcode_time: started.elapsed() - upload_time,
        })
    }

    /// `POST /payment`: sends tickets outside a segment; returns the refreshed info.
    pub async fn send_payment(
        &self,
        seg: &SegData,
        payment: &Payment,
    ) -> Result<OrchestratorInfo, ClientError> {
        let response = self
            .http
            .post(format!("{}/payment", self.uri))
            .header(headers::SEGMENT_HEADER, headers::encode_segment(seg))
            .header(headers::PAYMENT_HEADER, headers::encode_payment(payment))
            .send()
            .await
            .map_err(|e| transport("payment", e))?;
        let body = check_status(response)
            .await?
            .bytes()
            .await
            .map_err(|e| transport("payment", e))?;
        crate::http::PaymentResult::decode(body.as_ref())
            .map_err(|e| ClientError::Decode {
                what: "PaymentResult",
                reason: e.to_string(),
            })?
            .info
            .ok_or(ClientError::Decode {
                what: "PaymentResult",
                reason: "no info".into(),
            })
    }

    /// Downloads a rendition (or any URL on this orchestrator).
    pub async fn download(&self, url: &str) -> Result<Bytes, ClientError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| transport("download", e))?;
        check_status(response)
            .await?
            .bytes()
            .await
            .map_err(|e| transport("download", e))
    }

    /// The HTTP client, for requests this type does not wrap (status, metrics, admin).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

fn transport(stage: &'static str, err: reqwest::Error) -> ClientError {
    if err.is_timeout() {
        return ClientError::Timeout {
            stage,
            after: Duration::ZERO,
        };
    }
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    ClientError::Transport { stage, reason }
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let reason = response.text().await.unwrap_or_default();
    Err(ClientError::Rejected {
        status: status.as_u16(),
        reason: reason.trim().to_string(),
    })
}

/// The orchestrator's Ethereum address from its info (none off-chain).
pub fn orchestrator_address(info: &OrchestratorInfo) -> Option<alloy::primitives::Address> {
    fields::address("OrchestratorInfo.address", &info.address).ok()
}
