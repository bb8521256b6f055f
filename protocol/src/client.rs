//! The broadcaster's side of the orchestrator wire protocol: discovery over gRPC, segment upload
//! and payment over HTTPS, rendition download, session end. Shared by the node stack's tests, the
//! broadcaster and the direct-to-orchestrator probe, which is why it lives here and takes plain
//! wire types (`net::VideoProfile`), never a node crate's.
//!
//! Design: one [`OrchestratorClient`] per orchestrator URI holds a lazily connected gRPC channel
//! and an HTTP client, both over TLS that accepts the orchestrator's self-signed certificate (as
//! go-livepeer broadcasters do). The orchestrator is a stranger, so every call is bounded by
//! [`ClientLimits`]: connect (TCP + TLS) and per-call deadlines, and a cap on every body read
//! (protobuf replies, error texts, renditions) that is enforced while streaming, so a hostile peer
//! that sends garbage, a huge body or never finishes costs a typed error, a bounded wait and a
//! bounded buffer. [`check_reachable`] tells DNS, TCP and TLS failures apart before any call, so a
//! tester can say *why* an orchestrator cannot be reached. [`segment_data`] builds and signs the
//! `Livepeer-Segment` message; the payment is the caller's (`ticket::TicketSender`), because what
//! to pay is the broadcaster's policy, not the transport's. Upload and transcode times are
//! measured apart, as go-livepeer's broadcaster measures them.
//!
//! ```no_run
//! # async fn demo(key: protocol::sig::NodeKey, body: bytes::Bytes, ladder: Vec<protocol::net::VideoProfile>) -> Result<(), Box<dyn std::error::Error>> {
//! use protocol::client::{OrchestratorClient, SegmentRequest, segment_data};
//! let client = OrchestratorClient::connect("https://127.0.0.1:8935")?;
//! let info = client.get_orchestrator(&key, None).await?;
//! let seg = segment_data(&key, &info, b"stream-1", 0, &body, 2000, &ladder)?;
//! let reply = client.submit_segment(SegmentRequest::new(&seg, None, body, 2000)).await?;
//! for rendition in reply.renditions()? {
//!     let bytes = client.download(&rendition.url).await?;
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::keccak256;
use bytes::{Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use prost::Message;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::capabilities::{Capability, CapabilitySet};
use crate::net::orchestrator_client::OrchestratorClient as OrchestratorGrpc;
use crate::net::{
    self, AuthToken, EndTranscodingSessionRequest, OrchestratorInfo, OrchestratorRequest,
    PaymentResult, PingPong, SegData, TranscodeResult, TranscodedSegmentData, VideoProfile,
};
use crate::sig::{self, NodeKey, SegmentSigError, SigError};
use crate::{fields, headers, tls};

/// gRPC connect timeout go-livepeer broadcasters use.
pub const GRPC_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bounds on what one orchestrator may cost the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// DNS + TCP + TLS handshake.
    pub connect_timeout: Duration,
    /// Each gRPC call (discovery, ping, session end) and `POST /payment`, from request to reply.
    pub rpc_timeout: Duration,
    /// A rendition download, from request to last byte.
    pub download_timeout: Duration,
    /// Largest protobuf reply (OrchestratorInfo, TranscodeResult, PaymentResult) or error text.
    pub max_reply_bytes: usize,
    /// Largest rendition.
    pub max_rendition_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            connect_timeout: GRPC_CONNECT_TIMEOUT,
            rpc_timeout: Duration::from_secs(8),
            download_timeout: Duration::from_secs(30),
            max_reply_bytes: 1 << 20,
            max_rendition_bytes: 64 << 20,
        }
    }
}

/// Which step of reaching an orchestrator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStage {
    /// The host name did not resolve.
    Dns,
    /// No TCP connection (refused, unroutable, timed out).
    Tcp,
    /// The TLS handshake failed or timed out.
    Tls,
}

impl ConnectStage {
    /// `dns`, `tcp` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

impl fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dns => "DNS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        })
    }
}

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
    /// The orchestrator could not be reached (see [`check_reachable`]).
    #[error("{target} unreachable ({stage}): {reason}")]
    Unreachable {
        /// The step that failed.
        stage: ConnectStage,
        /// `host:port`.
        target: String,
        /// Error text.
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
    /// A gRPC call failed with the orchestrator's (or the transport's) status.
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
    /// A body exceeded its cap; reading stopped there.
    #[error("{what} larger than the {limit}-byte cap")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// A rendition URL in the transcode result that cannot be fetched over HTTP(S).
    #[error("bad rendition URL {url:?}: {reason}")]
    BadRenditionUrl {
        /// URL given by the orchestrator.
        url: String,
        /// Why.
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
    pub payment: Option<&'a net::Payment>,
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
        payment: Option<&'a net::Payment>,
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

/// Builds and signs the `Livepeer-Segment` message for `body` under `info`'s auth token, asking
/// for `ladder`.
pub fn segment_data(
    key: &NodeKey,
    info: &OrchestratorInfo,
    manifest_id: &[u8],
    seq: i64,
    body: &[u8],
    duration_ms: i32,
    ladder: &[VideoProfile],
) -> Result<SegData, ClientError> {
    let mut seg = SegData {
        manifest_id: manifest_id.to_vec(),
        seq,
        hash: keccak256(body).to_vec(),
        duration: duration_ms,
        capabilities: Some(required_capabilities().to_message()),
        auth_token: info.auth_token.clone(),
        full_profiles3: ladder.to_vec(),
        ..Default::default()
    };
    seg.sig = sig::sign_segment(key, &seg)?;
    Ok(seg)
}

/// What this client needs from an orchestrator: H.264 in MPEG-TS with auth tokens.
pub fn required_capabilities() -> CapabilitySet {
    [Capability::H264, Capability::Mpegts, Capability::AuthToken]
        .into_iter()
        .collect()
}

/// The orchestrator's Ethereum address from its info (none off-chain).
pub fn orchestrator_address(info: &OrchestratorInfo) -> Option<alloy::primitives::Address> {
    fields::address("OrchestratorInfo.address", &info.address).ok()
}

/// `host` (brackets stripped) and port of an `https://host:port` URI.
fn host_port(uri: &str) -> Result<(String, u16), ClientError> {
    let bad = |reason: String| ClientError::BadUri {
        uri: uri.to_string(),
        reason,
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    match parsed.scheme_str() {
        Some("https") | None => {}
        Some(other) => return Err(bad(format!("scheme {other:?}, orchestrators speak https"))),
    }
    let host = parsed
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, parsed.port_u16().unwrap_or(443)))
}

/// Resolves, connects and completes a TLS handshake with the orchestrator at `uri`, each step
/// within `timeout`; returns the time it took. The error says which step failed.
pub async fn check_reachable(uri: &str, timeout: Duration) -> Result<Duration, ClientError> {
    let started = Instant::now();
    let (host, port) = host_port(uri)?;
    let target = format!("{host}:{port}");
    let fail = |stage, reason: String| ClientError::Unreachable {
        stage,
        target: target.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(fail(ConnectStage::Dns, e.to_string())),
            Err(_) => return Err(fail(ConnectStage::Dns, format!("no answer in {timeout:?}"))),
        };
    if addrs.is_empty() {
        return Err(fail(ConnectStage::Dns, "no addresses".into()));
    }
    let tcp = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addrs[..])).await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(fail(ConnectStage::Tcp, e.to_string())),
        Err(_) => {
            return Err(fail(
                ConnectStage::Tcp,
                format!("no connection in {timeout:?}"),
            ));
        }
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| fail(ConnectStage::Tls, format!("server name {host:?}: {e}")))?;
    let connector =
        TlsConnector::from(Arc::new(tls::insecure_client_config(&[b"h2", b"http/1.1"])));
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(fail(ConnectStage::Tls, e.to_string())),
        Err(_) => Err(fail(
            ConnectStage::Tls,
            format!("no handshake in {timeout:?}"),
        )),
    }
}

/// A lazily connected gRPC channel to `uri` (`https://host:port`) over TLS that accepts any
/// certificate, connecting within [`GRPC_CONNECT_TIMEOUT`] and with no per-request deadline (a
/// remote transcoder's work stream lasts as long as the transcoder).
pub fn grpc_channel(uri: &str) -> Result<Channel, ClientError> {
    channel(uri, GRPC_CONNECT_TIMEOUT, None)
}

/// [`grpc_channel`] with explicit limits: connect (TCP + TLS) within `connect_timeout`, each
/// request answered within `rpc_timeout`.
pub fn grpc_channel_with(uri: &str, limits: &ClientLimits) -> Result<Channel, ClientError> {
    channel(uri, limits.connect_timeout, Some(limits.rpc_timeout))
}

fn channel(
    uri: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Channel, ClientError> {
    let (host, port) = host_port(uri)?;
    let bad = |reason: String| ClientError::BadUri {
        uri: uri.to_string(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(format!("http://{}:{port}", bracket(&host)))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(connect_timeout);
    if let Some(timeout) = request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let connector = TlsConnector::from(Arc::new(tls::insecure_client_config(&[b"h2"])));
    let server_name = ServerName::try_from(host.clone()).map_err(|e| bad(e.to_string()))?;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let addr = (host.clone(), port);
            async move {
                let connect = async {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    connector.connect(server_name, tcp).await
                };
                let tls = tokio::time::timeout(connect_timeout, connect)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("TCP + TLS connect took over {connect_timeout:?}"),
                        )
                    })??;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        })),
    )
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// An HTTPS client that accepts self-signed certificates, with the default connect timeout.
pub fn http_client() -> reqwest::Client {
    http_client_with(&ClientLimits::default())
}

/// [`http_client`] with an explicit connect timeout.
pub fn http_client_with(limits: &ClientLimits) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls::insecure_client_config(&[b"http/1.1"]))
        .tcp_nodelay(true)
        .connect_timeout(limits.connect_timeout)
        .build()
        .expect("static reqwest configuration is valid")
}

/// A client for one orchestrator.
#[derive(Debug, Clone)]
pub struct OrchestratorClient {
    uri: String,
    grpc: OrchestratorGrpc<Channel>,
    http: reqwest::Client,
    limits: ClientLimits,
}

impl OrchestratorClient {
    /// A client for the orchestrator at `uri` (`https://host:port`) with the default limits;
    /// connects on first use.
    pub fn connect(uri: &str) -> Result<Self, ClientError> {
        Self::connect_with(uri, ClientLimits::default())
    }

    /// A client for the orchestrator at `uri` bounded by `limits`; connects on first use.
    pub fn connect_with(uri: &str, limits: ClientLimits) -> Result<Self, ClientError> {
        let uri = uri.trim_end_matches('/').to_string();
        let channel = grpc_channel_with(&uri, &limits)?;
        Ok(Self {
            grpc: OrchestratorGrpc::new(channel).max_decoding_message_size(limits.max_reply_bytes),
            http: http_client_with(&limits),
            uri,
            limits,
        })
    }

    /// The orchestrator URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The limits this client enforces.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
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
        let call = "GetOrchestrator";
        let mut grpc = self.grpc.clone();
        self.bounded_rpc(call, grpc.get_orchestrator(request)).await
    }

    /// `Ping`; returns the echoed bytes.
    pub async fn ping(&self, value: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let mut grpc = self.grpc.clone();
        self.bounded_rpc("Ping", grpc.ping(PingPong { value }))
            .await
            .map(|p| p.value)
    }

    /// `EndTranscodingSession` for the session of `token`.
    pub async fn end_session(&self, token: AuthToken) -> Result<(), ClientError> {
        let mut grpc = self.grpc.clone();
        self.bounded_rpc(
            "EndTranscodingSession",
            grpc.end_transcoding_session(EndTranscodingSessionRequest {
                auth_token: Some(token),
            }),
        )
        .await
        .map(drop)
    }

    async fn bounded_rpc<T>(
        &self,
        call: &'static str,
        rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        // The channel carries the same deadline; this one also covers a stuck connector.
        let deadline = self.limits.connect_timeout + self.limits.rpc_timeout;
        match tokio::time::timeout(deadline, rpc).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(grpc_error(call, status, self.limits.max_reply_bytes)),
            Err(_) => Err(ClientError::Timeout {
                stage: call,
                after: deadline,
            }),
        }
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
            .map_err(|e| transport("upload", e, request.upload_timeout))?;
        let upload_time = started.elapsed();
        let remaining = request.total_timeout.saturating_sub(upload_time);
        let timed_out = || ClientError::Timeout {
            stage: "transcode",
            after: request.total_timeout,
        };
        let response = tokio::time::timeout(remaining, self.check_status(response))
            .await
            .map_err(|_| timed_out())??;
        let remaining = request.total_timeout.saturating_sub(started.elapsed());
        let body = tokio::time::timeout(
            remaining,
            read_capped(
                response,
                self.limits.max_reply_bytes,
                "TranscodeResult",
                "transcode",
                request.total_timeout,
            ),
        )
        .await
        .map_err(|_| timed_out())??;
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
        payment: &net::Payment,
    ) -> Result<OrchestratorInfo, ClientError> {
        let deadline = self.limits.rpc_timeout;
        let exchange = async {
            let response = self
                .http
                .post(format!("{}/payment", self.uri))
                .header(headers::SEGMENT_HEADER, headers::encode_segment(seg))
                .header(headers::PAYMENT_HEADER, headers::encode_payment(payment))
                .send()
                .await
                .map_err(|e| transport("payment", e, deadline))?;
            let response = self.check_status(response).await?;
            read_capped(
                response,
                self.limits.max_reply_bytes,
                "PaymentResult",
                "payment",
                deadline,
            )
            .await
        };
        let body = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                stage: "payment",
                after: deadline,
            })??;
        PaymentResult::decode(body.as_ref())
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

    /// Downloads a rendition (or any HTTP(S) URL), within `download_timeout` and
    /// `max_rendition_bytes`.
    pub async fn download(&self, url: &str) -> Result<Bytes, ClientError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| ClientError::BadRenditionUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::BadRenditionUrl {
                url: url.to_string(),
                reason: format!("scheme {:?} is not http(s)", parsed.scheme()),
            });
        }
        let deadline = self.limits.download_timeout;
        let exchange = async {
            let response = self
                .http
                .get(parsed)
                .send()
                .await
                .map_err(|e| transport("download", e, deadline))?;
            let response = self.check_status(response).await?;
            read_capped(
                response,
                self.limits.max_rendition_bytes,
                "rendition",
                "download",
                deadline,
            )
            .await
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                stage: "download",
                after: deadline,
            })?
    }

    /// The HTTP client, for requests this type does not wrap (status, metrics, admin).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Passes a success through; turns any other status into [`ClientError::Rejected`] with the
    /// (capped) body text as the reason.
    async fn check_status(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let limit = self.limits.max_reply_bytes.min(64 << 10);
        let reason =
            match read_capped(response, limit, "error text", "status", Duration::ZERO).await {
                Ok(body) => String::from_utf8_lossy(&body).trim().to_string(),
                Err(e) => format!("(unreadable reason: {e})"),
            };
        Err(ClientError::Rejected {
            status: status.as_u16(),
            reason,
        })
    }
}

/// Reads a body up to `limit` bytes, refusing a larger declared length up front and stopping as
/// soon as the streamed bytes pass the cap.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    what: &'static str,
    stage: &'static str,
    deadline: Duration,
) -> Result<Bytes, ClientError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ClientError::TooLarge { what, limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(stage, e, deadline))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ClientError::TooLarge { what, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Tells a reply this client refused (undecodable, over the cap) from the orchestrator's own
/// status, because the first is the orchestrator misbehaving and the second is it answering.
fn grpc_error(call: &'static str, status: tonic::Status, limit: usize) -> ClientError {
    let message = status.message();
    match status.code() {
        tonic::Code::Internal if message.starts_with("failed to decode") => ClientError::Decode {
            what: call,
            reason: message.to_string(),
        },
        tonic::Code::OutOfRange if message.contains("too large") => {
            ClientError::TooLarge { what: call, limit }
        }
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            if message.contains("Timeout expired") =>
        {
            ClientError::Timeout {
                stage: call,
                after: Duration::ZERO,
            }
        }
        _ => ClientError::Grpc { call, status },
    }
}

fn transport(stage: &'static str, err: reqwest::Error, deadline: Duration) -> ClientError {
    if err.is_timeout() {
        return ClientError::Timeout {
            stage,
            after: deadline,
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
