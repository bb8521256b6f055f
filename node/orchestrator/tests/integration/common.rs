//! Shared fixtures: a synthetic source cut into short low-resolution segments (made once per
//! test binary), an anvil chain with the contracts and a funded broadcaster, orchestrator configs,
//! a broadcaster session helper, hand-written requests (raw `/segment` posts, TLS connections and
//! trickled uploads) for what the client would never send, ffprobe as an independent pixel
//! counter, and waiting on `/status` with a deadline.

use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use bytes::Bytes;
use node_orchestrator::config::{ChainConfig, OrchestratorConfig};
use node_orchestrator::profiles::wire_ladder;
use protocol::chain::{Contracts, DeployConfig, LocalChain, TicketBrokerClient};
use protocol::client::{
    ClientError, OrchestratorClient, SegmentReply, SegmentRequest, segment_data,
};
use protocol::headers;
use protocol::net::{OrchestratorInfo, Payment, SegData};
use protocol::sig::NodeKey;
use protocol::ticket::{SenderLimits, TicketParams, TicketSender};
use reference_transcoder::{Profile, SourceConfig};
use rustls::pki_types::ServerName;
use testkit::chain::{BROADCASTER, ETH, ORCHESTRATOR, TestChain, long_rounds};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const SEGMENT_MS: u64 = 1000;

/// 40 one-second 256×144 segments of the stamped synthetic source.
pub fn segments() -> &'static [Bytes] {
    static SEGMENTS: OnceLock<Vec<Bytes>> = OnceLock::new();
    SEGMENTS.get_or_init(|| {
        let source = reference_transcoder::generate(&SourceConfig {
            width: 256,
            height: 144,
            duration_secs: 40.0,
            gop_secs: 1.0,
            audio: false,
            ..SourceConfig::default()
        })
        .expect("synthetic source");
        source
            .ts_segments(1.0)
            .expect("segments")
            .into_iter()
            .map(|s| Bytes::from(s.data))
            .collect()
    })
}

/// The test ladder: two small renditions.
pub fn ladder() -> Vec<Profile> {
    reference_transcoder::ladder::parse_ladder("P144p30fps16x9,P240p30fps16x9").unwrap()
}

/// An off-chain orchestrator config on a free loopback port, with an admin token.
pub fn offchain_config() -> OrchestratorConfig {
    let mut config = OrchestratorConfig::offchain();
    config.admin_token = Some("admin-secret".into());
    config.transcode.encoder_threads = 1;
    config
}

/// A chain with the contracts deployed and the broadcaster (account 1) funded.
pub struct Chain {
    pub chain: LocalChain,
    pub contracts: Contracts,
    pub broadcaster: PrivateKeySigner,
    pub orchestrator: PrivateKeySigner,
}

impl Chain {
    pub async fn start() -> Self {
        Self::with_rounds(long_rounds()).await
    }

    /// A chain whose contracts are deployed with `config` (round length, unlock period).
    pub async fn with_rounds(config: DeployConfig) -> Self {
        let TestChain { chain, contracts } = TestChain::funded(config).await;
        Self {
            broadcaster: chain.signer(BROADCASTER),
            orchestrator: chain.signer(ORCHESTRATOR),
            chain,
            contracts,
        }
    }

    /// An on-chain orchestrator charging 1 wei per pixel, tickets of face value 1e12 winning
    /// with probability 1/2 and expiring 5 blocks after issue.
    pub fn config(&self) -> OrchestratorConfig {
        let mut config = offchain_config();
        config.offchain = false;
        config.payments.price_per_unit = 1;
        config.payments.pixels_per_unit = 1;
        config.payments.face_value = Some("1000000000000".into());
        config.payments.ticket_ev = "500000000000".into();
        config.payments.expiration_blocks = 5;
        config.chain = Some(ChainConfig {
            rpc_url: self.chain.url().to_string(),
            private_key: alloy::hex::encode_prefixed(self.orchestrator.to_bytes()).into(),
            ticket_broker: self.contracts.ticket_broker.to_string(),
            rounds_manager: self.contracts.rounds_manager.to_string(),
            poll_ms: 100,
        });
        config
    }

    pub fn broker(&self) -> TicketBrokerClient {
        self.contracts.ticket_broker(self.chain.reader())
    }
}

/// A broadcaster session with one orchestrator.
pub struct Session {
    pub client: OrchestratorClient,
    pub key: NodeKey,
    pub info: OrchestratorInfo,
    pub sender: Option<TicketSender>,
    pub manifest: Vec<u8>,
    pub ladder: Vec<Profile>,
    /// Overrides go-livepeer's total timeout for slow test ladders.
    pub total_timeout: Option<Duration>,
}

impl Session {
    pub async fn offchain(uri: &str) -> Self {
        let client = OrchestratorClient::connect(uri).unwrap();
        let key = NodeKey::OffChain;
        let info = client.get_orchestrator(&key, None).await.unwrap();
        Self {
            client,
            key,
            info,
            sender: None,
            manifest: b"manifest-offchain".to_vec(),
            ladder: ladder(),
            total_timeout: None,
        }
    }

    pub async fn onchain(uri: &str, broadcaster: PrivateKeySigner) -> Self {
        let client = OrchestratorClient::connect(uri).unwrap();
        let key = NodeKey::Account(broadcaster.clone());
        let info = client.get_orchestrator(&key, None).await.unwrap();
        Self {
            client,
            key,
            info,
            sender: Some(TicketSender::new(broadcaster, SenderLimits::default())),
            manifest: b"manifest-onchain".to_vec(),
            ladder: ladder(),
            total_timeout: None,
        }
    }

    /// The segment header of `body` as segment `seq` of this session (its info, manifest and
    /// ladder), signed by `key`: the session's own, or another to forge one.
    pub fn segment_by(&self, key: &NodeKey, seq: i64, body: &[u8]) -> Result<SegData, ClientError> {
        segment_data(
            key,
            &self.info,
            &self.manifest,
            seq,
            body,
            SEGMENT_MS as i32,
            &wire_ladder(&self.ladder),
        )
    }

    /// The segment header of `body` as segment `seq`, signed by the session's key.
    pub fn segment(&self, seq: i64, body: &[u8]) -> SegData {
        self.segment_by(&self.key, seq, body).unwrap()
    }

    /// Submits `body` under `seg` with `payment` as given: no tickets are added.
    pub async fn submit(
        &self,
        seg: &SegData,
        payment: Option<&Payment>,
        body: Bytes,
    ) -> Result<SegmentReply, ClientError> {
        let mut request = SegmentRequest::new(seg, payment, body, SEGMENT_MS);
        if let Some(timeout) = self.total_timeout {
            request.total_timeout = timeout;
        }
        self.client.submit_segment(request).await
    }

    /// Sends segment `seq` (paying one fee estimate of tickets when on chain), keeping the
    /// refreshed info.
    pub async fn send(&mut self, seq: usize) -> Result<SegmentReply, ClientError> {
        let body = segments()[seq % segments().len()].clone();
        let seg = self.segment_by(&self.key, seq as i64, &body)?;
        let payment = match &mut self.sender {
            Some(sender) => {
                let params = TicketParams::from_orchestrator_info(&self.info).unwrap();
                // Fee estimate: the ladder's pixels for one second, at the advertised price.
                let pixels: u64 = self
                    .ladder
                    .iter()
                    .map(|p| u64::from(p.width * p.height) * 30)
                    .sum();
                let fee = params.price.fee(pixels);
                let block = params.expiration_block - 5;
                Some(
                    sender
                        .payment(&params, fee, block, U256::from(ETH))
                        .unwrap(),
                )
            }
            None => None,
        };
        let reply = self.submit(&seg, payment.as_ref(), body).await?;
        if let Some(info) = reply.info() {
            self.info = info.clone();
        }
        Ok(reply)
    }
}

/// The status and reason of a refusal; anything else fails the test.
pub fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Rejected { status, reason }) => (status, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Posts `body` to `/segment` with the given raw `Livepeer-Segment` and `Livepeer-Payment`
/// header values, which the client would never send malformed; returns the status and text.
pub async fn post_segment(
    client: &OrchestratorClient,
    segment: Option<&str>,
    payment: Option<&str>,
    body: Bytes,
) -> (u16, String) {
    let mut request = client
        .http()
        .post(format!("{}/segment", client.uri()))
        .body(body);
    if let Some(s) = segment {
        request = request.header(headers::SEGMENT_HEADER, s);
    }
    if let Some(p) = payment {
        request = request.header(headers::PAYMENT_HEADER, p);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A TLS connection to the node at `addr` offering HTTP/1.1, for requests written by hand.
pub async fn tls_connect(addr: std::net::SocketAddr) -> TlsStream<tokio::net::TcpStream> {
    tls_connect_alpn(addr, b"http/1.1").await
}

/// A TLS connection to the node at `addr` offering only the protocol `alpn`.
pub async fn tls_connect_alpn(
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> TlsStream<tokio::net::TcpStream> {
    let connector =
        TlsConnector::from(Arc::new(node_orchestrator::tls::insecure_client_config(&[
            alpn,
        ])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Opens an upload of `declared` bytes under `segment_header` and sends only its first 100
/// bytes; the connection is returned so the caller decides when it goes away.
pub async fn start_upload(
    addr: std::net::SocketAddr,
    segment_header: &str,
    declared: usize,
) -> TlsStream<tokio::net::TcpStream> {
    let mut stream = tls_connect(addr).await;
    let head = format!(
        "POST /segment HTTP/1.1\r\nHost: localhost\r\n{}: {segment_header}\r\nContent-Length: {declared}\r\n\r\n",
        headers::SEGMENT_HEADER,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x47; 100]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// (width, height, frames) of a rendition counted by ffprobe, an independent decoder.
pub async fn ffprobe(data: &[u8]) -> (u32, u32, u64) {
    let mut child = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
            "-i",
            "pipe:0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffprobe runs");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&data).await;
    });
    let out = child.wait_with_output().await.unwrap();
    writer.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // MPEG-TS lists the stream under its program too: the first line is enough.
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = line.trim().split(',').collect();
    assert_eq!(fields.len(), 3, "ffprobe output {text:?}");
    (
        fields[0].parse().unwrap(),
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
    )
}

/// `/status` of an orchestrator, in full: with the admin token of [`offchain_config`].
pub async fn status(client: &OrchestratorClient) -> serde_json::Value {
    client
        .http()
        .get(format!("{}/status", client.uri()))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `/status` until `done` holds, failing after `deadline`.
pub async fn wait_status(
    client: &OrchestratorClient,
    deadline: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(client).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out waiting for {what}; status: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets every fault switch through the admin endpoint.
pub async fn set_faults(client: &OrchestratorClient, faults: serde_json::Value) {
    let response = client
        .http()
        .put(format!("{}/admin/faults", client.uri()))
        .bearer_auth("admin-secret")
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}
