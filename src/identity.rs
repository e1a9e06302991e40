//! Who this node is and how it becomes someone: the addresses it listens on and advertises,
//! what it says about itself, the checks on its certificate, and the join handshakes (a node
//! certificate from a manager, then, for a manager, a place in raft).

use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::Duration;

use swarm_ca as ca;
use swarm_ca::JoinToken;
use swarm_model::NodeDescription;
use swarm_model::Platform;
use swarm_model::Resources;
use swarm_net::peer_client::PeerClient;
use swarm_net::peer_client::PeerError;
use swarm_net::peer_client::full;
use swarm_net::tls;
use swarm_protocol::dispatcher::NotLeader;
use swarm_protocol::host;
use swarm_protocol::peer::JoinRaftRequest;
use swarm_protocol::peer::JoinRequest;
use swarm_protocol::peer::JoinResponse;
use swarm_protocol::peer::RejoinRequest;
use swarm_protocol::peer::RenewResponse;

use crate::datadir::DataDir;
use crate::datadir::DataDirError;
use crate::datadir::NodeConfig;
use crate::error::DaemonError;
use crate::error::JoinError;
use crate::error::RaftJoinError;

/// Fails early, before anything is written, if the listen address cannot be bound.
pub(crate) fn check_listen(listen: &str) -> Result<(), DaemonError> {
    std::net::TcpListener::bind(listen)
        .map(drop)
        .map_err(|source| DaemonError::Listen {
            addr: listen.to_string(),
            source,
        })
}

/// Picks the address other nodes dial. An explicit `--advertise-addr` wins (its port defaults to
/// the listen port); otherwise the listen IP, or the address of the default route's interface.
pub fn resolve_advertise(listen: &str, advertise: Option<&str>) -> Result<String, DaemonError> {
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| DaemonError::ListenAddr(listen.to_string()))?;
    if let Some(a) = advertise {
        if let Ok(sa) = a.parse::<SocketAddr>() {
            return Ok(sa.to_string());
        }
        if let Ok(ip) = a.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, listen.port()).to_string());
        }
        return Err(DaemonError::AdvertiseAddr(a.to_string()));
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen.to_string());
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel which source address the
    // default route would use.
    let detected = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    match detected {
        Some(ip) => Ok(SocketAddr::new(ip, listen.port()).to_string()),
        None => Err(DaemonError::NoAdvertiseAddr),
    }
}

pub(crate) fn local_description(hostname: &str, ca_pem: &str) -> NodeDescription {
    NodeDescription {
        hostname: hostname.to_string(),
        platform: Platform {
            architecture: host::architecture().to_string(),
            os: host::os().to_string(),
        },
        resources: Resources {
            nano_cpus: host::cpus() * 1_000_000_000,
            memory_bytes: host::memory_bytes(),
            generic_resources: None,
        },
        engine: Default::default(),
        tls_info: ca::tls_info(ca_pem),
        host_networks: Some(host::networks()),
    }
}

pub(crate) fn ip_of(addr: &str) -> String {
    addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default()
}

/// Checks the certificate on disk against node.json before trusting either.
pub(crate) fn check_certs(cfg: &NodeConfig, cert_pem: &str, dir: &DataDir) -> Result<(), DaemonError> {
    let certificate = |source| DaemonError::Certificate {
        path: dir.cert_path(),
        source,
    };
    let der = ca::first_cert_der(cert_pem).map_err(certificate)?;
    let who = ca::cert_identity(&der).map_err(certificate)?;
    if who.node_id != cfg.node_id || who.cluster_id != cfg.cluster_id || who.role != cfg.role {
        return Err(DataDirError::Damaged {
            dir: dir.root().display().to_string(),
            problem: format!(
                "{} is for {} {} of cluster {}, but node.json describes {} {} of cluster {}",
                dir.cert_path().display(),
                who.role.name(),
                who.node_id,
                who.cluster_id,
                cfg.role.name(),
                cfg.node_id,
                cfg.cluster_id
            ),
        }
        .into());
    }
    Ok(())
}

/// When a certificate (DER) expired, if it has.
pub(crate) fn expired_since(der: &[u8]) -> Option<String> {
    let not_after = ca::cert_not_after(der).ok()?;
    if not_after >= swarm_model::wall_clock_now().unix_timestamp() {
        return None;
    }
    Some(
        time::OffsetDateTime::from_unix_timestamp(not_after)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| not_after.to_string()),
    )
}

/// When the certificate (PEM) expired, if it has.
pub(crate) fn expired_at(cert_pem: &str) -> Option<String> {
    expired_since(&ca::first_cert_der(cert_pem).ok()?)
}

/// The join handshake: downloads the root CA without trusting anyone, pins it through the
/// token's digest, then sends a CSR with the token over TLS verified against that CA. Returns
/// (CA PEM, private key PEM, the manager's answer).
pub(crate) async fn obtain_identity(
    remote: &str,
    raw_token: &str,
    token: &JoinToken,
    mut req: JoinRequest,
) -> Result<(String, String, JoinResponse), DaemonError> {
    let unverified = PeerClient::new(tls::unverified_client_config());
    let ca_pem = unverified
        .call(remote, "/ca", None, Duration::from_secs(10))
        .await
        .map_err(|source| JoinError::FetchCa {
            remote: remote.to_string(),
            source,
        })?;
    let ca_pem = String::from_utf8(ca_pem.to_vec()).map_err(|_| JoinError::CaNotText)?;
    if ca::root_digest(&ca_pem) != token.ca_digest {
        return Err(JoinError::CaMismatch {
            remote: remote.to_string(),
        }
        .into());
    }
    let (key_pem, csr_pem) = ca::new_key_and_csr()?;
    let pinned = PeerClient::new(tls::pinned_client_config(&ca_pem)?);
    let desc = local_description(&req.hostname, &ca_pem);
    req.token = raw_token.trim().to_string();
    req.csr_pem = csr_pem;
    req.platform = desc.platform;
    req.resources = desc.resources;
    let body = serde_json::to_vec(&req).map_err(JoinError::Encode)?;
    let resp = pinned
        .call(remote, "/join", Some(full(body)), Duration::from_secs(30))
        .await
        .map_err(|e| match e {
            PeerError::Status { message, .. } => JoinError::Refused {
                remote: remote.to_string(),
                message,
            },
            source => JoinError::Unreachable {
                remote: remote.to_string(),
                source,
            },
        })?;
    let resp: JoinResponse = serde_json::from_slice(&resp).map_err(JoinError::Answer)?;
    if resp.ca_pem != ca_pem {
        return Err(JoinError::CaChanged.into());
    }
    Ok((ca_pem, key_pem, resp))
}

/// Brings back a node whose certificate expired while it was off, under its old node ID: signs
/// its node ID and a new CSR with its old key and sends them, with the join token and the expired
/// certificate, to the managers it knows (over TLS pinned to its CA, without a client
/// certificate, which would be refused as expired). Saves the new certificate and key.
pub(crate) async fn rejoin(dir: &DataDir, cfg: &mut NodeConfig, raw_token: &str) -> Result<(), DaemonError> {
    let token = JoinToken::parse(raw_token)?;
    let (ca_pem, old_cert_pem, old_key_pem) = dir.load_certs()?;
    if ca::root_digest(&ca_pem) != token.ca_digest {
        return Err(JoinError::TokenForOtherCluster.into());
    }
    let (key_pem, csr_pem) = ca::new_key_and_csr()?;
    let proof = ca::rejoin_proof(&old_key_pem, &cfg.node_id, &csr_pem)?;
    let body = serde_json::to_vec(&RejoinRequest {
        node_id: cfg.node_id.clone(),
        token: raw_token.trim().to_string(),
        csr_pem,
        old_cert_pem,
        proof,
        advertise_addr: cfg.advertise_addr.clone(),
    })
    .map_err(JoinError::Encode)?;
    let pinned = PeerClient::new(tls::pinned_client_config(&ca_pem)?);
    let mut last = None;
    let mut to_ask: Vec<String> = cfg.managers.iter().map(|(_, a)| a.clone()).collect();
    let mut asked = 0;
    while asked < to_ask.len() {
        let remote = to_ask[asked].clone();
        asked += 1;
        match pinned
            .call(
                &remote,
                "/join/rejoin",
                Some(full(body.clone())),
                Duration::from_secs(30),
            )
            .await
        {
            Ok(bytes) => {
                let resp: RenewResponse = serde_json::from_slice(&bytes).map_err(JoinError::Answer)?;
                if resp.role != cfg.role {
                    return Err(JoinError::Refused {
                        remote: remote.to_string(),
                        message: format!(
                            "the cluster now has this node as a {}; remove the data dir and join again",
                            resp.role.name()
                        ),
                    }
                    .into());
                }
                dir.save_node_certificate(&resp.cert_pem, &key_pem)?;
                if !resp.managers.is_empty() {
                    cfg.managers = resp.managers;
                }
                dir.save_config(cfg)?;
                tracing::info!(node_id = %cfg.node_id, manager = %remote, "rejoined with a new certificate");
                return Ok(());
            }
            // Refused for good by the leader; anything else may go better elsewhere.
            Err(PeerError::Status { status, message, .. }) if status != 503 && status != 421 => {
                return Err(JoinError::Refused { remote, message }.into());
            }
            Err(source) => {
                // Only the leader issues: a follower names it, and it may be missing from
                // node.json.
                if let PeerError::Status { message, .. } = &source
                    && let Some(leader) = NotLeader::leader_in(message)
                    && !to_ask.contains(&leader)
                {
                    to_ask.push(leader);
                }
                tracing::warn!(manager = %remote, error = %source, "cannot rejoin through this manager");
                last = Some(JoinError::Unreachable { remote, source });
            }
        }
    }
    Err(last.unwrap_or(JoinError::NoManagers).into())
}

/// Asks the manager at `remote` to add this (started) manager to raft: as a learner until it
/// has caught up, then as a voter.
pub(crate) async fn become_raft_member(
    peers: &PeerClient,
    remote: &str,
    raft_id: u64,
    advertise: &str,
) -> Result<(), RaftJoinError> {
    let body = serde_json::to_vec(&JoinRaftRequest {
        raft_id,
        addr: advertise.to_string(),
    })
    .map_err(RaftJoinError::Encode)?;
    peers
        .call(remote, "/join/raft", Some(full(body)), Duration::from_secs(300))
        .await
        .map(drop)
        .map_err(|e| match e {
            PeerError::Status { message, .. } => RaftJoinError::Refused(message),
            other => RaftJoinError::Peer(other),
        })
}
