//! The node-to-node listener: TLS accept loop serving an axum router over HTTP/2, with the
//! peer's certificate identity attached to every request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use swarm_ca::CertIdentity;
use swarm_ca::cert_identity;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Who is calling: the identity in their client certificate, if they presented one.
#[derive(Debug, Clone)]
pub struct Peer(pub Option<CertIdentity>);

/// SHA-256 (base64) of the public key in the caller's certificate, when it presented one: which
/// of a node's certificates is in use.
#[derive(Debug, Clone)]
pub struct PeerKey(pub String);

/// The caller's socket address.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// How many connections without a client certificate one address may hold at once: a joining
/// node needs two, briefly, and many may join at once from behind one address.
const MAX_ANONYMOUS_PER_ADDR: usize = 128;
/// The HTTP/2 flow-control window of a connection without a client certificate: all it may
/// send before its request is answered (a refusal, or the small answer to a join).
const ANONYMOUS_WINDOW: u32 = 64 << 10;
/// Streams a connection without a client certificate may have open at once.
const ANONYMOUS_STREAMS: u32 = 4;
/// How long a client has to send a request's headers (HTTP/1) or answer a ping (HTTP/2).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an HTTP/2 connection is pinged to find dead peers.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once.
const MAX_STREAMS: u32 = 256;
/// Connections one address may hold to the Engine API's TLS listener, handshakes included.
const MAX_API_PER_ADDR: usize = 256;
/// How long a connection without a client certificate may stay open at all.
const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(60);

/// Counts the connections of a kind from each address, up to a cap.
struct PerAddress {
    held: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    cap: usize,
}

/// One counted connection; uncounted when dropped.
struct AddressSlot(Arc<PerAddress>, std::net::IpAddr);

impl PerAddress {
    fn with_cap(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            held: Default::default(),
            cap,
        })
    }

    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot(self.clone(), ip))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.0.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// The next connection, or `None` once `shutdown` turns true. A failed accept (out of file
/// descriptors, say) is retried after a pause.
async fn accept_next(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return None,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// HTTP/1 and HTTP/2 with the timers and limits every listener applies.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(HEADER_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS);
    builder
}

/// Serves `router` on `listener` until `shutdown` turns true. Callers without a client
/// certificate are limited: a few connections per address, each for a short while.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let anonymous = PerAddress::with_cap(MAX_ANONYMOUS_PER_ADDR);
    while let Some((tcp, remote)) = accept_next(&listener, &mut shutdown).await {
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        let anonymous = anonymous.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let presented = tls.get_ref().1.peer_certificates().and_then(|certs| certs.first());
            let peer = presented.and_then(|c| cert_identity(c.as_ref()).ok());
            let key = presented
                .and_then(|c| swarm_ca::public_key_digest(c.as_ref()).ok())
                .map(PeerKey);
            let slot = match &peer {
                Some(_) => None,
                None => match anonymous.take(remote.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(%remote, "too many connections without a certificate from this address");
                        return;
                    }
                },
            };
            // Nodes keep their connections.
            let lifetime = slot.is_some().then_some(ANONYMOUS_LIFETIME);
            let peer = Peer(peer);
            let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.extensions_mut().insert(PeerAddr(remote));
                if let Some(key) = &key {
                    req.extensions_mut().insert(key.clone());
                }
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
            });
            let service = hyper_util::service::TowerToHyperService::new(service);
            let mut builder = connection_builder();
            if lifetime.is_some() {
                builder
                    .http2()
                    .max_concurrent_streams(ANONYMOUS_STREAMS)
                    .initial_stream_window_size(ANONYMOUS_WINDOW)
                    .initial_connection_window_size(ANONYMOUS_WINDOW);
            }
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let ends = async move {
                match lifetime {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "peer connection ended with an error");
                    }
                }
                _ = ends => tracing::debug!(%remote, "closing a connection without a certificate after its time"),
                _ = shutdown.wait_for(|s| *s) => {}
            }
            drop(slot);
        });
    }
}

/// Serves the Engine API over TLS until `shutdown` turns true. The config requires a client
/// certificate, so a connection that completes its handshake is authenticated; streams such as
/// `docker events` may stay open as long as the client wants.
pub async fn serve_api_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let per_addr = PerAddress::with_cap(MAX_API_PER_ADDR);
    while let Some((tcp, remote)) = accept_next(&listener, &mut shutdown).await {
        let Some(slot) = per_addr.take(remote.ip()) else {
            tracing::debug!(%remote, "too many Engine API connections from this address");
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "Engine API TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = connection_builder();
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "Engine API connection ended with an error");
                    }
                }
                _ = shutdown.wait_for(|s| *s) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_address_are_capped_and_freed_when_they_close() {
        let counter = PerAddress::with_cap(2);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = counter.take(a).expect("one");
        let _second = counter.take(a).expect("two");
        assert!(counter.take(a).is_none(), "a third from the same address is refused");
        assert!(counter.take(b).is_some(), "another address has its own count");
        drop(first);
        assert!(counter.take(a).is_some(), "a closed connection frees its place");
    }
}
