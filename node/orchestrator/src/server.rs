//! One TLS port serving gRPC and plain HTTP together.
//!
//! Design: a hand-written accept loop (rather than `axum::serve`) because the socket is TLS and
//! each connection must be bounded in time: the TLS handshake and the HTTP/1 request head get a
//! deadline (slow-loris), bodies get theirs in the handlers; open connections are capped (a
//! connection past the cap is closed at accept and counted) and so are the HTTP/2 streams of
//! one connection ([`ServeLimits`]). hyper-util's auto builder speaks
//! HTTP/1.1 or HTTP/2 by what the client sends (ALPN offers both); each request is dispatched on
//! its content type — `application/grpc…` to tonic's router, everything else to the HTTP routes —
//! which is how go-livepeer shares its port. A graceful stop lets connections finish; a crash
//! (fault switch) aborts every connection at once, as a killed process would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// Asked to stop.
    Stopped,
    /// Crashed on purpose (fault switch).
    Crashed,
}

/// Routes a request to gRPC or HTTP by its content type.
pub fn dispatcher(
    grpc: Router,
    http: Router,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: http::Request<Incoming>| {
        let is_grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let router = if is_grpc { grpc.clone() } else { http.clone() };
        router.oneshot(request)
    })
}

/// What one peer may take of the server: time to finish the TLS handshake and request head,
/// connections at once (beyond, a new one is closed as soon as it is accepted, before any TLS
/// work) and concurrent HTTP/2 streams per connection.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// TLS handshake and HTTP/1 request head deadline.
    pub handshake_timeout: Duration,
    /// Open connections.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
}

impl Default for ServeLimits {
    /// An orchestrator's defaults.
    fn default() -> Self {
        Self::from_config(&crate::config::LimitsConfig::default())
    }
}

impl ServeLimits {
    /// The limits an orchestrator's `[limits]` configure.
    pub fn from_config(limits: &crate::config::LimitsConfig) -> Self {
        Self {
            handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
            max_connections: limits.max_connections,
            max_streams_per_connection: limits.max_streams_per_connection,
        }
    }
}

/// Counts a connection open for as long as it lives.
struct OpenConnection {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `grpc` and `http` on a loopback `listener` through this accept loop, with a
/// self-signed certificate for 127.0.0.1 and localhost and a 5 s handshake deadline, until the
/// returned sender says stop: for benches and tests that put their own handlers (a fake
/// orchestrator, a go-livepeer peer) behind the node's own server.
pub fn spawn_on_loopback(
    listener: TcpListener,
    grpc: Router,
    http: Router,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<ServeEnd>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let tls = crate::tls::self_signed_server_config(names).expect("a self-signed certificate");
    let (stop, stop_rx) = watch::channel(false);
    let (crash, crash_rx) = watch::channel(false);
    let limits = ServeLimits {
        handshake_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let served = tokio::spawn(async move {
        // Held for the server's life: a dropped crash sender would read as a crash.
        let _crash = crash;
        serve(
            listener,
            Arc::new(tls),
            dispatcher(grpc, http),
            limits,
            Arc::new(Metrics::default()),
            stop_rx,
            crash_rx,
        )
        .await
    });
    (stop, served)
}

/// Serves `service` on `listener` until `stop` or `crash` fires; open and refused connections
/// are counted in `metrics`.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: S,
    limits: ServeLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut crash: watch::Receiver<bool>,
) -> ServeEnd
where
    S: tower::Service<
            http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let handshake_timeout = limits.handshake_timeout;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut last_refusal_log: Option<Instant> = None;
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection.max(1))
        .keep_alive_interval(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let end = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed");
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Closed before any TLS work: the cap bounds memory and handshake CPU alike.
                    let refused = metrics.connections_refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        last_refusal_log = Some(Instant::now());
                        tracing::warn!(
                            %peer,
                            refused,
                            max_connections = limits.max_connections,
                            "connection refused: limits.max_connections are open"
                        );
                    }
                    drop(tcp);
                    continue;
                };
                metrics.connections_open.fetch_add(1, Ordering::Relaxed);
                let open = OpenConnection {
                    _permit: permit,
                    metrics: metrics.clone(),
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let service = service.clone();
                let watcher = graceful.watcher();
                connections.spawn(async move {
                    let _open = open;
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let hyper_service = hyper_util::service::TowerToHyperService::new(service);
                    let connection = builder
                        .serve_connection(TokioIo::new(tls), hyper_service);
                    if let Err(err) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%peer, %err, "connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break ServeEnd::Stopped,
            _ = crash.changed() => break ServeEnd::Crashed,
        }
    };
    drop(listener);
    match end {
        ServeEnd::Crashed => connections.abort_all(),
        ServeEnd::Stopped => {
            if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
                .await
                .is_err()
            {
                connections.abort_all();
            }
        }
    }
    while connections.join_next().await.is_some() {}
    end
}

/// The names the self-signed certificate is issued for.
pub fn certificate_names(bound: SocketAddr, service_uri: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), bound.ip().to_string()];
    if let Ok(uri) = service_uri.parse::<http::Uri>()
        && let Some(host) = uri.host()
    {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !names.contains(&host) {
            names.push(host);
        }
    }
    names
}
