//! A small Engine API client over a unix socket or TCP, used by `swarmctl` and the tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::Method;
use hyper::Request;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use swarm_protocol::engine::API_VERSION;
use swarm_protocol::error_message;

use crate::tls::TlsFiles;

/// Where the Engine API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid host {0:?}: expected unix:///path/to/socket or tcp://host:port")]
    BadHost(String),
    #[error("cannot connect to {target}: {reason} (is swarmd running? set -H or SWARM_HOST)")]
    Connect { target: String, reason: String },
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("request to {target} failed: {reason}")]
    Http { target: String, reason: String },
    #[error("cannot decode the answer of {path}: {reason}")]
    Decode { path: String, reason: String },
    #[error("{target} did not answer within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An Engine API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    target: Target,
    timeout: Duration,
    /// TLS on TCP, with this client's certificate (`--tlsverify`).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ApiClient {
    /// Parses `unix:///path`, `tcp://host:port`, or a bare socket path.
    pub fn from_host(host: &str) -> Result<Self, ClientError> {
        let target = if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ClientError::BadHost(host.to_string()));
            }
            Target::Unix(PathBuf::from(path))
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            if addr.is_empty() || !addr.contains(':') {
                return Err(ClientError::BadHost(host.to_string()));
            }
            Target::Tcp(addr.trim_end_matches('/').to_string())
        } else if host.starts_with('/') {
            Target::Unix(PathBuf::from(host))
        } else {
            return Err(ClientError::BadHost(host.to_string()));
        };
        Ok(Self {
            target,
            timeout: Duration::from_secs(60),
            tls: None,
        })
    }

    /// Speaks TLS to a TCP target, presenting the certificate in `files` and verifying the
    /// server against their CA.
    pub fn with_tls(mut self, files: &TlsFiles) -> Result<Self, ClientError> {
        if let Target::Unix(_) = self.target {
            return Err(ClientError::Tls(
                "--tlsverify applies to tcp:// hosts, not to the control socket".to_string(),
            ));
        }
        self.tls = Some(files.client_config()?);
        Ok(self)
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request on a fresh connection; returns the status and body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let work = async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.http_err(e))?
                .to_bytes();
            Ok((status, body))
        };
        self.within_timeout(work).await
    }

    /// Sends a request and returns as soon as the answer's head arrives, for answers that
    /// stream for as long as the server likes (events, followed logs): the timeout covers
    /// connecting and the head, never the body. A non-2xx answer is read whole and becomes
    /// [`ClientError::Api`], as with [`ApiClient::call`].
    pub async fn open(&self, method: Method, path: &str) -> Result<hyper::Response<Incoming>, ClientError> {
        let resp = self.within_timeout(self.send(method, path, None)).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = self
            .within_timeout(async { resp.into_body().collect().await.map_err(|e| self.http_err(e)) })
            .await?
            .to_bytes();
        Err(ClientError::Api {
            status,
            message: error_message(&bytes, status),
        })
    }

    /// The next chunk of a body from [`ApiClient::open`], as it arrives; `None` once the server
    /// has ended it. Waits as long as the server is silent.
    pub async fn next_chunk(&self, body: &mut Incoming) -> Result<Option<Bytes>, ClientError> {
        loop {
            match body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.http_err(e)),
                Some(Ok(frame)) => {
                    // Trailers carry no data; skip them.
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Connects and sends one request, without a timeout; the answer's body is left unread.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let target = self.target.to_string();
        let connect_err = |e: std::io::Error| ClientError::Connect {
            target: target.clone(),
            reason: e.to_string(),
        };
        let uri = format!("/v{API_VERSION}{path}");
        let mut builder = Request::builder().method(method).uri(uri).header("Host", "swarm");
        let bytes = body.unwrap_or_default();
        if !bytes.is_empty() {
            builder = builder.header("Content-Type", "application/json");
        }
        let req = builder
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Http {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        match &self.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(connect_err)?;
                send_over(stream, req).await.map_err(|e| self.http_err(e))
            }
            Target::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(connect_err)?;
                match &self.tls {
                    None => send_over(stream, req).await.map_err(|e| self.http_err(e)),
                    Some(config) => {
                        let host = addr
                            .rsplit_once(':')
                            .map_or(addr.as_str(), |(h, _)| h)
                            .trim_start_matches('[')
                            .trim_end_matches(']');
                        let name = ServerName::try_from(host.to_string())
                            .map_err(|e| ClientError::Tls(format!("server name {host:?}: {e}")))?;
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name, stream)
                            .await
                            .map_err(|e| ClientError::Connect {
                                target: target.clone(),
                                reason: format!("TLS handshake failed: {e}"),
                            })?;
                        send_over(tls, req).await.map_err(|e| self.http_err(e))
                    }
                }
            }
        }
    }

    fn http_err(&self, e: hyper::Error) -> ClientError {
        ClientError::Http {
            target: self.target.to_string(),
            reason: e.to_string(),
        }
    }

    async fn within_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                target: self.target.to_string(),
                timeout: self.timeout,
            })?
    }

    /// Like [`ApiClient::request`], turning a non-2xx answer into [`ClientError::Api`].
    pub async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, ClientError> {
        let (status, bytes) = self.request(method, path, body).await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(ClientError::Api {
                status,
                message: error_message(&bytes, status),
            })
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let bytes = self.call(Method::GET, path, None).await?;
        decode(path, &bytes)
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let bytes = self.call(Method::POST, path, Some(json)).await?;
        if bytes.is_empty() {
            return decode(path, b"null");
        }
        decode(path, &bytes)
    }

    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }
}

/// Sends one HTTP/1.1 request over a fresh connection.
async fn send_over<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<hyper::Response<Incoming>, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Percent-encodes a query value.
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse() {
        assert_eq!(
            ApiClient::from_host("unix:///tmp/s.sock").unwrap().target,
            Target::Unix("/tmp/s.sock".into())
        );
        assert_eq!(
            ApiClient::from_host("tcp://127.0.0.1:2375").unwrap().target,
            Target::Tcp("127.0.0.1:2375".into())
        );
        assert!(ApiClient::from_host("http://x").is_err());
        assert!(ApiClient::from_host("tcp://nohostport").is_err());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            encode_query(r#"{"name":{"a b":true}}"#),
            "%7B%22name%22%3A%7B%22a%20b%22%3Atrue%7D%7D"
        );
    }
}
