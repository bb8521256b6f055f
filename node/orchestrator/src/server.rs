//! One TLS port serving gRPC and plain HTTP together.
//!
//! Design: a hand-written accept loop (rather than `axum::serve`) because the socket is TLS and
//! each connection must be bounded in time: the TLS handshake and the HTTP/1 request head get a
//! deadline (slow-loris), bodies get theirs in the handlers. hyper-util's auto builder speaks
//! HTTP/1.1 or HTTP/2 by what the client sends (ALPN offers both); each request is dispatched on
//! its content type — `application/grpc…` to tonic's router, everything else to the HTTP routes —
//! which is how go-livepeer shares its port. A graceful stop lets connections finish; a crash
//! (fault switch) aborts every connection at once, as a killed process would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

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

/// Serves `service` on `listener` until `stop` or `crash` fires.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: S,
    handshake_timeout: Duration,
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
        .max_concurrent_streams(256)
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
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let service = service.clone();
                let watcher = graceful.watcher();
                connections.spawn(async move {
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
