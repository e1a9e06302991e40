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
/// An open connection, with the node ID in the server's certificate.
type Connection = (SendRequest<Body>, Option<String>);

pub struct PeerClient {
    tls: Arc<ClientConfig>,
    /// Open connections by address.
    conns: tokio::sync::Mutex<HashMap<String, Connection>>,
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

    async fn connect(&self, addr: &str) -> Result<Connection, PeerError> {
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
        let server = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|c| swarm_ca::cert_identity(c.as_ref()).ok())
            .map(|who| who.node_id);
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
        Ok((sender, server))
    }

    /// A connection to `addr`; when `expect` names a node, the server's certificate must be
    /// that node's, so a manager registered under a wrong address is never taken for another.
    async fn sender(&self, addr: &str, expect: Option<&str>) -> Result<SendRequest<Body>, PeerError> {
        let cached = {
            let conns = self.conns.lock().await;
            conns.get(addr).filter(|(s, _)| !s.is_closed()).cloned()
        };
        let (sender, server) = match cached {
            Some(c) => c,
            None => {
                let c = self.connect(addr).await?;
                self.conns.lock().await.insert(addr.to_string(), c.clone());
                c
            }
        };
        if let Some(expected) = expect
            && server.as_deref() != Some(expected)
        {
            return Err(PeerError::Failed {
                addr: addr.to_string(),
                reason: format!(
                    "the manager at {addr} is node {}, not node {expected}: that address is registered for the wrong node",
                    server.as_deref().unwrap_or("(no certificate identity)")
                ),
            });
        }
        Ok(sender)
    }

    /// Forgets every cached connection, so that the next calls connect again and present the
    /// certificate in use now (after a renewal). Requests under way finish on the old ones.
    pub async fn reconnect_all(&self) {
        self.conns.lock().await.clear();
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
        self.call_checked(addr, None, path, body, timeout).await
    }

    /// [`Self::call`] to the manager that must be node `node_id` (raft's members): a server
    /// whose certificate names another node is refused before anything is sent.
    pub async fn call_node(
        &self,
        addr: &str,
        node_id: &str,
        path: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        self.call_checked(addr, Some(node_id), path, body, timeout).await
    }

    async fn call_checked(
        &self,
        addr: &str,
        expect: Option<&str>,
        path: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let work = async {
            let mut sender = self.sender(addr, expect).await?;
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
            let resp = match sender.try_send_request(req).await {
                Ok(r) => r,
                Err(mut e) => {
                    self.forget(addr).await;
                    // A cached connection that was closing (its peer died) gives the request
                    // back unsent: as safe to retry as a refused connect, so say so.
                    if e.take_message().is_some() {
                        return Err(PeerError::Connect {
                            addr: addr.to_string(),
                            reason: e.into_error().to_string(),
                        });
                    }
                    return Err(failed(e.into_error()));
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
            let mut sender = self.sender(addr, None).await?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use swarm_ca::CertIdentity;
    use swarm_model::NodeRole;

    use super::*;
    use crate::server::serve_tls;
    use crate::tls;

    /// A key and a certificate from `ca` for manager `node_id`.
    fn manager_cert(ca: &(String, String), node_id: &str) -> (String, String) {
        let (key, csr) = swarm_ca::new_key_and_csr().expect("a CSR");
        let who = CertIdentity {
            node_id: node_id.to_string(),
            role: NodeRole::Manager,
            cluster_id: "cluster".to_string(),
        };
        let cert =
            swarm_ca::issue_node_cert(&ca.0, &ca.1, &csr, &who, Duration::from_secs(3600)).expect("a certificate");
        (cert, key)
    }

    /// A manager listener answering `/raft/ping` as `node_id`: its address, the identity it
    /// presents, and the sender that keeps it running.
    async fn ping_server(
        ca: &(String, String),
        node_id: &str,
    ) -> (String, Arc<tls::NodeIdentity>, tokio::sync::watch::Sender<bool>) {
        let (cert, key) = manager_cert(ca, node_id);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (keep, stop) = tokio::sync::watch::channel(false);
        let router = Router::new().route("/raft/ping", get(|| async { "pong" }));
        let identity = tls::NodeIdentity::new(&cert, &key).expect("server identity");
        let server = tls::server_config(&ca.0, identity.clone()).expect("server TLS");
        tokio::spawn(serve_tls(listener, server, router, stop));
        (addr, identity, keep)
    }

    /// A peer client presenting manager `node_id`'s certificate.
    fn client_as(ca: &(String, String), node_id: &str) -> PeerClient {
        let (cert, key) = manager_cert(ca, node_id);
        let identity = tls::NodeIdentity::new(&cert, &key).expect("client identity");
        PeerClient::new(tls::client_config(&ca.0, identity).expect("client TLS"))
    }

    /// Raft calls a member by address and node ID: a manager whose certificate names another
    /// node is refused, whatever answers at the address.
    #[tokio::test]
    async fn a_member_is_called_only_if_its_certificate_is_that_nodes() {
        let ca = swarm_ca::generate_root().expect("a root CA");
        let (addr, _server, _stop) = ping_server(&ca, "nodea").await;
        let client = client_as(&ca, "nodeb");

        let wrong = client
            .call_node(&addr, "nodec", "/raft/ping", None, Duration::from_secs(5))
            .await
            .expect_err("nodea is not nodec");
        assert!(
            wrong
                .to_string()
                .contains(&format!("the manager at {addr} is node nodea, not node nodec")),
            "{wrong}"
        );
        let right = client
            .call_node(&addr, "nodea", "/raft/ping", None, Duration::from_secs(5))
            .await
            .expect("nodea answers as nodea");
        assert_eq!(&right[..], b"pong");
    }

    /// A renewed certificate is used by the connections made after it is put in place, on both
    /// ends, without restarting the listener or the client.
    #[tokio::test]
    async fn a_replaced_certificate_is_presented_by_new_connections() {
        let ca = swarm_ca::generate_root().expect("a root CA");
        let (addr, server_identity, _stop) = ping_server(&ca, "nodea").await;
        let client = client_as(&ca, "nodeb");
        client
            .call_node(&addr, "nodea", "/raft/ping", None, Duration::from_secs(5))
            .await
            .expect("the first certificate");

        let (second_cert, second_key) = manager_cert(&ca, "nodea-renewed");
        let (_, other_key) = manager_cert(&ca, "nodeb");
        let mismatched = server_identity.replace(&second_cert, &other_key);
        assert!(mismatched.is_err(), "a key that is not the certificate's is refused");
        server_identity
            .replace(&second_cert, &second_key)
            .expect("the renewed pair");
        assert_eq!(
            server_identity.certificate(),
            swarm_ca::first_cert_der(&second_cert).expect("DER")
        );
        client.reconnect_all().await;
        client
            .call_node(&addr, "nodea-renewed", "/raft/ping", None, Duration::from_secs(5))
            .await
            .expect("a new connection sees the renewed certificate");
    }
}
