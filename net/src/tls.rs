//! Mutual TLS between nodes: every node presents a certificate from the cluster CA, and peers
//! are authorised by the role and cluster written in that certificate.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::RwLock;

use rustls::ClientConfig;
use rustls::DigitallySignedStruct;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::ServerCertVerified;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::ResolvesServerCert;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::ServerName;
use rustls_pki_types::UnixTime;
use rustls_pki_types::pem::PemObject;

/// What a TLS listener is configured with (so that callers need not depend on rustls).
pub use rustls::ServerConfig as TlsServerConfig;

/// The name every manager certificate carries, used as the TLS server name.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate PEM: {0}")]
    Cert(String),
    #[error("cannot read private key PEM: {0}")]
    Key(String),
    #[error("cannot build TLS configuration: {0}")]
    Config(String),
}

/// Installs ring as the process-wide crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert("no certificate found".to_string()));
    }
    Ok(certs)
}

/// The DER of every certificate in a PEM bundle.
pub fn certificate_ders(pem: &str) -> Result<Vec<Vec<u8>>, TlsError> {
    Ok(certs(pem)?.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Key(e.to_string()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(ca_pem)? {
        store.add(c).map_err(|e| TlsError::Cert(e.to_string()))?;
    }
    Ok(Arc::new(store))
}

/// This node's certificate and key, shared by its listener and its client and replaceable in
/// place: a renewed certificate is used by every new connection without restarting anything.
#[derive(Debug)]
pub struct NodeIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl NodeIdentity {
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified_key(cert_pem, key_pem)?),
        }))
    }

    /// Puts a renewed certificate and its key in place; connections made from now on present it.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let next = certified_key(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// The certificate presented now (DER), e.g. to read its expiry.
    pub fn certificate(&self) -> Vec<u8> {
        self.now().cert.first().map(|c| c.as_ref().to_vec()).unwrap_or_default()
    }

    fn now(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl ResolvesServerCert for NodeIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }
}

impl ResolvesClientCert for NodeIdentity {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    install_crypto_provider();
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key(key_pem)?).map_err(|e| TlsError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(certs(cert_pem)?, signing);
    certified.keys_match().map_err(|e| TlsError::Key(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The listener's TLS config: presents the node certificate; client certificates are optional at
/// the TLS layer (a joining node has none yet) and every route checks the peer's identity.
pub fn server_config(ca_pem: &str, identity: Arc<NodeIdentity>) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    let verifier = WebPkiClientVerifier::builder(roots(ca_pem)?)
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    // A resumed session keeps the certificates of the first handshake: every connection checks
    // the ones in use now, so a renewed or expired certificate counts at once.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that verifies managers against the cluster CA and presents this node's
/// certificate.
pub fn client_config(ca_pem: &str, identity: Arc<NodeIdentity>) -> Result<Arc<ClientConfig>, TlsError> {
    install_crypto_provider();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots(ca_pem)?)
        .with_client_cert_resolver(identity);
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that verifies managers against a pinned CA but presents no certificate:
/// what a joining node uses to send its CSR.
pub fn pinned_client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    install_crypto_provider();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that accepts any server certificate. Used only to download the root CA,
/// which the joiner then checks against the digest in its join token.
pub fn unverified_client_config() -> Arc<ClientConfig> {
    install_crypto_provider();
    let provider = rustls::crypto::ring::default_provider();
    let mut config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyServer(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks that `cert_der` was signed by the cluster CA, as of `during` (Unix seconds), a moment
/// inside its own validity: an expired certificate still proves who the CA said its holder was.
pub fn issued_by_cluster_ca(ca_pem: &str, cert_der: &[u8], during: u64) -> Result<(), TlsError> {
    let during = UnixTime::since_unix_epoch(std::time::Duration::from_secs(during));
    install_crypto_provider();
    let verifier = WebPkiClientVerifier::builder(roots(ca_pem)?)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    verifier
        .verify_client_cert(&CertificateDer::from(cert_der.to_vec()), &[], during)
        .map(drop)
        .map_err(|e| TlsError::Cert(e.to_string()))
}

/// The Engine API's TLS config, as dockerd's `--tlsverify`: the operator's server certificate,
/// and client certificates required and verified against the operator's CA (`client_ca_pem`),
/// never the cluster's, so that a node certificate grants no API access.
pub fn api_server_config(client_ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    let verifier = WebPkiClientVerifier::builder(roots(client_ca_pem)?)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
