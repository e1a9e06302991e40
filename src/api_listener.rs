//! How the Engine API is offered over TCP: with TLS and client certificates from the
//! operator's CA (dockerd's `--tlsverify`), in plain text on loopback, or in plain text
//! elsewhere only when asked for by name (`--insecure-api`). The API can create privileged
//! services, which is root on every node.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde::Serialize;
use swarm_net::tls;

use crate::error::DaemonError;

/// Files of the Engine API's TLS, as dockerd's `--tlscacert`, `--tlscert` and `--tlskey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTls {
    /// The operator's CA: only client certificates it issued may use the API.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TCP API flags as given.
#[derive(Debug, Clone, Default)]
pub struct ApiTlsOptions {
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub insecure_api: bool,
}

/// Checks the flags before anything is written: TLS files need `--tlsverify` and an
/// `--api-addr`, `--tlsverify` needs all three files (readable and usable), and plain TCP is
/// refused off loopback without `--insecure-api`.
pub(crate) fn api_settings(api_addr: Option<&str>, opts: &ApiTlsOptions) -> Result<Option<ApiTls>, DaemonError> {
    let given = opts.tlscacert.is_some() || opts.tlscert.is_some() || opts.tlskey.is_some();
    let Some(addr) = api_addr else {
        if opts.tlsverify || given || opts.insecure_api {
            return Err(DaemonError::ApiFlag(
                "--tlsverify, --tlscacert, --tlscert, --tlskey and --insecure-api apply to the TCP API: add --api-addr"
                    .to_string(),
            ));
        }
        return Ok(None);
    };
    if !opts.tlsverify {
        if given {
            return Err(DaemonError::ApiFlag(
                "--tlscacert, --tlscert and --tlskey need --tlsverify: the API only serves TLS with client certificates"
                    .to_string(),
            ));
        }
        plain_text_allowed(addr, opts.insecure_api)?;
        return Ok(None);
    }
    if opts.insecure_api {
        return Err(DaemonError::ApiFlag(
            "--insecure-api and --tlsverify contradict each other".to_string(),
        ));
    }
    let path = |p: &Option<PathBuf>, flag: &str| -> Result<PathBuf, DaemonError> {
        let p = p
            .as_ref()
            .ok_or_else(|| DaemonError::ApiFlag(format!("--tlsverify needs {flag}")))?;
        std::path::absolute(p).map_err(|source| DaemonError::Io {
            action: "resolve",
            path: p.clone(),
            source,
        })
    };
    let files = ApiTls {
        ca: path(&opts.tlscacert, "--tlscacert")?,
        cert: path(&opts.tlscert, "--tlscert")?,
        key: path(&opts.tlskey, "--tlskey")?,
    };
    load(&files)?;
    Ok(Some(files))
}

/// Plain text is served on loopback, and elsewhere only with `--insecure-api` (kept in
/// node.json as `insecure_api`). Checked by `init` and `join` before anything is written, and
/// at every start, so a node.json from before TLS is held to it too. True when it is allowed
/// off loopback, which deserves a warning.
pub(crate) fn plain_text_allowed(addr: &str, insecure_api: bool) -> Result<bool, DaemonError> {
    if is_loopback(addr) {
        return Ok(false);
    }
    if !insecure_api {
        return Err(DaemonError::ApiFlag(format!(
            "refusing to serve the Engine API in plain text on {addr}: anyone who reaches it is root on every node. \
             Use --tlsverify with --tlscacert, --tlscert and --tlskey, a loopback address, or --insecure-api \
             (\"insecure_api\": true in node.json) if the network is trusted"
        )));
    }
    Ok(true)
}

fn is_loopback(addr: &str) -> bool {
    match addr.parse::<SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr.rsplit_once(':').is_some_and(|(host, _)| host == "localhost"),
    }
}

fn read(path: &Path) -> Result<String, DaemonError> {
    std::fs::read_to_string(path).map_err(|source| DaemonError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// The API's TLS config from its files. The client CA must not be the cluster's: node
/// certificates must never grant access to the API.
pub(crate) fn load(files: &ApiTls) -> Result<Arc<tls::TlsServerConfig>, DaemonError> {
    let (ca, cert, key) = (read(&files.ca)?, read(&files.cert)?, read(&files.key)?);
    tls::api_server_config(&ca, &cert, &key).map_err(|source| DaemonError::ApiTls {
        files: format!(
            "{}, {}, {}",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        ),
        source,
    })
}

/// Refuses the cluster's own CA anywhere in the API's client CA bundle.
pub(crate) fn check_not_cluster_ca(files: &ApiTls, cluster_ca_pem: &str) -> Result<(), DaemonError> {
    let api_ca = read(&files.ca)?;
    let cluster = swarm_ca::first_cert_der(cluster_ca_pem).ok();
    let bundle = tls::certificate_ders(&api_ca).unwrap_or_default();
    if cluster.is_some_and(|c| bundle.contains(&c)) {
        return Err(DaemonError::ApiFlag(format!(
            "--tlscacert {} holds the cluster's CA: every node certificate would grant API access. Use a CA of your own",
            files.ca.display()
        )));
    }
    Ok(())
}
