//! TLS for the orchestrator's single port (and, re-exported from `protocol::tls`, for clients
//! that talk to orchestrators).
//!
//! Design: Livepeer orchestrators present self-signed certificates and broadcasters do not verify
//! them (PROTOCOL.md §1), so the server makes a fresh certificate with rcgen at start and the
//! client side accepts any certificate while still checking the handshake signatures. Both sides
//! name the `ring` provider explicitly instead of relying on a process-wide default, so this crate
//! works next to any other rustls user in the same binary.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The client side lives in `protocol::tls`, shared with the probes.
pub use protocol::tls::insecure_client_config;

/// TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not make the certificate.
    #[error("generating the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    protocol::tls::provider()
}

/// A server configuration with a fresh self-signed certificate for `names` (host names or IPs),
/// offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn self_signed_server_config(names: Vec<String>) -> Result<ServerConfig, TlsError> {
    let certified = rcgen::generate_simple_self_signed(names)?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
