//! HTTP/2 over mutual TLS to other managers, one cached connection per peer.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use http_body_util::combinators::BoxBody;
use hyper::Request;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use swarm_protocol::error_message;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::MANAGER_SERVER_NAME;

/// Request and response bodies between nodes.
pub type Body = BoxBody<Bytes, io::Error>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Why a request to a peer failed. `Connect` means the request was never sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("request to {addr} failed: {reason}")]
    Failed { addr: String, reason: String },
    #[error("{addr} answered {status}: {message}")]
    Status { addr: String, status: u16, message: String },
}

/// A pool of HTTP/2 connections to peers, all with one TLS identity.
pub struct PeerClient {
    tls: Arc<ClientConfig>,
    conns: tokio::sync::Mutex<HashMap<String, SendRequest<Body>>>,
    connect_timeout: Duration,
}

impl PeerClient {
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        Self {
            tls,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(2),
        }
    }

    async fn connect(&self, addr: &str) -> Result<SendRequest<Body>, PeerError> {
        let err = |reason: String| PeerError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| err("connection timed out".to_string()))?
            .map_err(|e| err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(MANAGER_SERVER_NAME).map_err(|e| err(e.to_string()))?;
        let tls = tokio::time::timeout(
            self.connect_timeout,
            TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| err("TLS handshake timed out".to_string()))?
        .map_err(|e| err(format!("TLS handshake failed: {e}")))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(5)))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| err(format!("HTTP/2 handshake failed: {e}")))?;
        let peer = addr.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "peer connection closed");
            }
        });
        Ok(sender)
    }

    async fn sender(&self, addr: &str) -> Result<SendRequest<Body>, PeerError> {
        {
            let conns = self.conns.lock().await;
            if let Some(s) = conns.get(addr)
                && !s.is_closed()
            {
                return Ok(s.clone());
            }
        }
        let sender = self.connect(addr).await?;
        self.conns.lock().await.insert(addr.to_string(), sender.clone());
        Ok(sender)
    }

    /// Forgets the cached connection to `addr`, e.g. after a failure.
    pub async fn forget(&self, addr: &str) {
        self.conns.lock().await.remove(addr);
    }

    /// Sends `POST https://swarm-manager{path}` (or `GET` when `body` is `None`) and returns the
    /// response body of a 2xx answer. Any other status becomes [`PeerError::Status`] carrying
    /// the `{"message"}` of the answer.
    pub async fn call(
        &self,
        addr: &str,
        path: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let work = async {
            let mut sender = self.sender(addr).await?;
            let builder = Request::builder().uri(format!("https://{MANAGER_SERVER_NAME}{path}"));
            let req = match body {
                Some(b) => builder
                    .method("POST")
                    .header("content-type", "application/msgpack")
                    .body(b),
                None => builder.method("GET").body(full(Bytes::new())),
            }
            .map_err(|e| PeerError::Failed {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
            let failed = |e: hyper::Error| PeerError::Failed {
                addr: addr.to_string(),
                reason: e.to_string(),
            };
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    self.forget(addr).await;
                    return Err(failed(e));
                }
            };
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(failed)?.to_bytes();
            if status.is_success() {
                Ok(bytes)
            } else {
                Err(PeerError::Status {
                    addr: addr.to_string(),
                    status: status.as_u16(),
                    message: error_message(&bytes, status),
                })
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout {
                addr: addr.to_string(),
                timeout,
            }),
        }
    }
}

impl PeerClient {
    /// Sends `POST https://swarm-manager{path}` and returns the response body as a stream, for
    /// long-lived answers (a node's session). Only connecting and the response head have a
    /// deadline; a non-2xx answer becomes [`PeerError::Status`].
    pub async fn open_stream(
        &self,
        addr: &str,
        path: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<hyper::body::Incoming, PeerError> {
        let work = async {
            let mut sender = self.sender(addr).await?;
            let req = Request::builder()
                .uri(format!("https://{MANAGER_SERVER_NAME}{path}"))
                .method("POST")
                .header("content-type", "application/msgpack")
                .body(body)
                .map_err(|e| PeerError::Failed {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
            match sender.send_request(req).await {
                Ok(r) => Ok(r),
                Err(e) => {
                    self.forget(addr).await;
                    Err(PeerError::Failed {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        };
        let resp = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| PeerError::Timeout {
                addr: addr.to_string(),
                timeout,
            })??;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(PeerError::Status {
            addr: addr.to_string(),
            status: status.as_u16(),
            message: error_message(&bytes, status),
        })
    }
}
