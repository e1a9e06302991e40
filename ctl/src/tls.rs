//! TLS to a swarmd whose TCP API runs with `--tlsverify`, configured as the docker CLI is:
//! `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`, or `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH` (holding `ca.pem`, `cert.pem` and `key.pem`).

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::client::ClientError;

/// The files of a TLS client identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA the server's certificate must come from.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`, the docker CLI's layout.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// The client config: the server verified against `ca`, this client's certificate presented.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        let bad = |path: &Path, why: String| ClientError::Tls(format!("{}: {why}", path.display()));
        let read = |path: &Path| std::fs::read(path).map_err(|e| bad(path, e.to_string()));
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, ClientError> {
            let pem = read(path)?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(path, e.to_string()))?;
            if certs.is_empty() {
                return Err(bad(path, "no certificate in it".to_string()));
            }
            Ok(certs)
        };
        let mut roots = RootCertStore::empty();
        for c in certs(&self.ca)? {
            roots.add(c).map_err(|e| bad(&self.ca, e.to_string()))?;
        }
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key)?).map_err(|e| bad(&self.key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs(&self.cert)?, key)
            .map_err(|e| ClientError::Tls(format!("{} and {}: {e}", self.cert.display(), self.key.display())))?;
        Ok(Arc::new(config))
    }
}
