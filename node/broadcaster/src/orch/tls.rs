//! TLS to orchestrators without certificate verification, as go-livepeer's broadcaster does.
//!
//! Orchestrators serve a self-signed certificate on their service port, so the broadcaster
//! encrypts but does not authenticate the transport; authenticity comes from the protocol's
//! signatures (OrchestratorInfo's address signs transcode results). Handshake signatures are
//! still checked with the crypto provider, so a broken peer fails the handshake. gRPC gets a
//! connector that does TLS itself (ALPN h2) so tonic needs no TLS feature of its own. The
//! certificate policy itself is `protocol::tls`, the one every lpt client shares.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// The client configuration shared with the orchestrator's client and the probes.
pub use protocol::tls::insecure_client_config;

/// A connector for tonic: TCP to the URI's host and port, then TLS with ALPN `h2`.
pub fn grpc_connector() -> impl tower::Service<
    http::Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let config = Arc::new(insecure_client_config(&[b"h2"]));
    tower::service_fn(move |uri: http::Uri| {
        let config = config.clone();
        async move {
            let host = uri
                .host()
                .unwrap_or("127.0.0.1")
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri.port_u16().unwrap_or(8935);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        }
    })
}
