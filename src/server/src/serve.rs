//! The companion's HTTP listeners, each bounded against clients that are
//! slow or many: a connection must send a request's headers within a time
//! limit (hyper enforces `header_read_timeout` only with a timer, which
//! `axum::serve` does not give it), a request is answered within another
//! (handlers::answer_within), and at most so many connections are served
//! at once; past that, new ones wait in the kernel's backlog. A listener
//! with TLS must finish its handshake within the header time limit too.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// Most header lines a request may carry; hyper refuses more with a 431.
const MAX_HEADERS: usize = 100;
/// How long connections still open at shutdown get to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// What one listener allows a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's first byte (or its last request) to the end of
    /// the next request's headers.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets open connections finish for a while. Each request
/// carries its peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request
                });
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        let service = TowerToHyperService::new(service);
        tokio::spawn(async move {
            // A client that hangs up, or is cut off by a limit, ends here.
            match tls {
                None => {
                    let _ = watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let _ = watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await;
                        }
                        // No certificate, a wrong one, or too slow: the
                        // client learns it from the TLS alert, if at all.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake too slow"),
                    }
                }
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}
