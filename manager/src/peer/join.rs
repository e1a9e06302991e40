//! Joining the cluster: the root CA for anyone, a node certificate for a join token, and a
//! certificate for a new role after a promotion or demotion.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use swarm_ca::CertIdentity;
use swarm_ca::TokenError;
use swarm_ca::cert_identity;
use swarm_ca::cert_not_after;
use swarm_ca::check_join_token;
use swarm_ca::check_rejoin_proof;
use swarm_ca::first_cert_der;
use swarm_ca::issue_node_cert;
use swarm_ca::public_key_digest;
use swarm_ca::root_digest;
use swarm_ca::tls_info;
use swarm_model::Availability;
use swarm_model::Cluster;
use swarm_model::Node;
use swarm_model::NodeDescription;
use swarm_model::NodeRole;
use swarm_model::NodeSpec;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::RootCaState;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::new_id;
use swarm_model::new_raft_id;
use swarm_net::server::Peer;
use swarm_net::server::PeerAddr;
use swarm_net::tls::issued_by_cluster_ca;
use swarm_protocol::peer::JoinRequest;
use swarm_protocol::peer::JoinResponse;
use swarm_protocol::peer::RejoinRequest;
use swarm_protocol::peer::RenewRequest;
use swarm_protocol::peer::RenewResponse;

use super::require_node;
use crate::api::body::decode_exact;
use crate::api::error::ApiError;
use crate::api::error::ApiResult;
use crate::certificates::node_cert_expiry;
use crate::runtime::Manager;
use crate::store::StoreAction;

/// Which key a certificate just issued is for, as `Node.certificate_key` records it.
fn key_of(cert_pem: &str) -> ApiResult<String> {
    first_cert_der(cert_pem)
        .and_then(|der| public_key_digest(&der))
        .map_err(|e| ApiError::internal(format!("the certificate just issued is unreadable: {e}")))
}

/// The cluster's root CA, once `swarmd init` has made it.
fn root_ca(cluster: &Cluster) -> ApiResult<RootCaState> {
    cluster
        .root_ca
        .clone()
        .ok_or_else(|| ApiError::unavailable("the cluster has no root CA yet"))
}

/// The role a join token grants: 401 for a wrong or rotated token.
fn token_role(token: &str, cluster: &Cluster, root: &RootCaState) -> ApiResult<NodeRole> {
    check_join_token(token, cluster, &root_digest(&root.ca_cert_pem)).map_err(|e| match e {
        TokenError::NoCluster => ApiError::unavailable(e.to_string()),
        _ => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
    })
}

/// A manager needs an address the other managers can dial.
fn check_manager_address(addr: &str) -> ApiResult<()> {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(ApiError::bad_request(format!(
            "advertise address {addr:?} is not a valid IP:port; a manager needs one that other managers can dial"
        ))),
    }
}

/// A certificate for `node`'s key (`csr_pem`) in the role the store gives it, with the
/// cluster's lifetime, and the raft id and managers it needs in that role.
fn certificate_answer(
    m: &Manager,
    cluster: &Cluster,
    root: &RootCaState,
    node: &Node,
    csr_pem: &str,
) -> ApiResult<RenewResponse> {
    let role = node.spec.role;
    let identity = CertIdentity {
        node_id: node.id.clone(),
        role,
        cluster_id: cluster.id.clone(),
    };
    let expiry = node_cert_expiry(m, cluster);
    let cert_pem = issue_node_cert(&root.ca_cert_pem, &root.ca_key_pem, csr_pem, &identity, expiry)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(RenewResponse {
        role,
        cert_pem,
        raft_id: (role == NodeRole::Manager).then_some(node.raft_id).flatten(),
        managers: m
            .raft
            .status()
            .voters
            .values()
            .map(|a| (a.node_id.clone(), a.addr.clone()))
            .collect(),
    })
}

pub(super) async fn ca(State(m): State<Arc<Manager>>) -> ApiResult<String> {
    let cluster = m.cluster()?;
    cluster
        .root_ca
        .map(|r| r.ca_cert_pem)
        .ok_or_else(|| ApiError::unavailable("the cluster has no root CA yet"))
}

pub(super) async fn join(
    State(m): State<Arc<Manager>>,
    Extension(addr): Extension<PeerAddr>,
    body: Bytes,
) -> ApiResult<Json<JoinResponse>> {
    let req: JoinRequest = decode_exact(&body, "join request")?;
    let cluster = m.cluster()?;
    let root = root_ca(&cluster)?;
    let role = token_role(&req.token, &cluster, &root)?;
    if role == NodeRole::Manager {
        check_manager_address(&req.advertise_addr)?;
    }
    let hostname = req.hostname.trim().to_string();
    if hostname.is_empty() {
        return Err(ApiError::bad_request("hostname must not be empty"));
    }
    let node_id = new_id();
    let raft_id = (role == NodeRole::Manager).then(new_raft_id);
    let expiry = node_cert_expiry(&m, &cluster);
    let who = CertIdentity {
        node_id: node_id.clone(),
        role,
        cluster_id: cluster.id.clone(),
    };
    let cert_pem = issue_node_cert(&root.ca_cert_pem, &root.ca_key_pem, &req.csr_pem, &who, expiry)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = Timestamp::now();
    let node = Node {
        id: node_id.clone(),
        created_at: now,
        updated_at: now,
        spec: NodeSpec {
            labels: req.labels,
            role,
            availability: req.availability.unwrap_or(Availability::Active),
            ..Default::default()
        },
        description: NodeDescription {
            hostname,
            platform: req.platform,
            resources: req.resources,
            engine: req.engine,
            tls_info: tls_info(&root.ca_cert_pem),
            // Reported with the node's first session.
            host_networks: None,
        },
        status: NodeStatus {
            state: NodeState::Unknown,
            message: "registered; waiting for its first heartbeat".to_string(),
            addr: addr.0.ip().to_string(),
        },
        raft_id,
        certificate_key: Some(key_of(&cert_pem)?),
        ..Default::default()
    };
    m.committer
        .commit(vec![StoreAction::Create(node.into_object())])
        .await?;
    tracing::info!(%node_id, role = role.name(), remote = %addr.0, "node joined");
    let managers = m
        .raft
        .status()
        .voters
        .values()
        .map(|a| (a.node_id.clone(), a.addr.clone()))
        .collect();
    Ok(Json(JoinResponse {
        node_id,
        cluster_id: cluster.id,
        role,
        cert_pem,
        ca_pem: root.ca_cert_pem,
        raft_id,
        managers,
    }))
}

/// Issues a node a certificate for the role the store gives it, on the leader only. A manager
/// being demoted gets its worker certificate only once it has left raft (409 until then, so it
/// retries).
pub(super) async fn renew(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<RenewResponse>> {
    let who = require_node(&peer, &m)?.clone();
    // Only the leader decides: a lagging manager could issue a role the cluster has moved on
    // from.
    if !m.raft.leads_with_quorum() {
        return Err(m.dispatcher.not_leader().into());
    }
    let req: RenewRequest = decode_exact(&body, "certificate renewal request")?;
    let (node, cluster) = m
        .store
        .view(|s| (s.nodes.get(&who.node_id).cloned(), s.cluster().cloned()));
    let node = node.ok_or_else(|| ApiError::not_found(format!("node {} not found", who.node_id)))?;
    let cluster = cluster.ok_or_else(|| ApiError::unavailable("the swarm is not initialised yet"))?;
    let root = root_ca(&cluster)?;
    let role = node.spec.role;
    let raft = m.raft.status();
    let still_member = raft
        .voters
        .values()
        .chain(raft.learners.values())
        .any(|a| a.node_id == who.node_id);
    match role {
        NodeRole::Manager => {
            if node.raft_id.is_none() {
                return Err(ApiError::conflict(format!(
                    "node {} is to become a manager but has no raft id yet; retry",
                    who.node_id
                )));
            }
            check_manager_address(&req.advertise_addr)?;
        }
        NodeRole::Worker if still_member => {
            return Err(ApiError::conflict(format!(
                "node {} is still a raft member; retry once it has been removed",
                who.node_id
            )));
        }
        NodeRole::Worker => {}
    }
    let answer = certificate_answer(&m, &cluster, &root, &node, &req.csr_pem)?;
    tracing::info!(node_id = %who.node_id, role = role.name(), "issued a certificate");
    Ok(Json(answer))
}

/// Gives a node whose certificate expired while it was off a new one under its old node ID. It
/// needs a join token and proof that it holds the old node key (a signature by that key, checked
/// against the expired certificate, which must be from this cluster's CA): a token alone never
/// takes over an existing node. The certificate is for the role the store gives the node; a
/// manager's needs a manager token.
pub(super) async fn rejoin(State(m): State<Arc<Manager>>, body: Bytes) -> ApiResult<Json<RenewResponse>> {
    if !m.raft.leads_with_quorum() {
        return Err(m.dispatcher.not_leader().into());
    }
    let req: RejoinRequest = decode_exact(&body, "rejoin request")?;
    let cluster = m.cluster()?;
    let root = root_ca(&cluster)?;
    let unauthorized = |why: String| ApiError::new(StatusCode::UNAUTHORIZED, why);
    let token_role = token_role(&req.token, &cluster, &root)?;
    let old =
        first_cert_der(&req.old_cert_pem).map_err(|e| ApiError::bad_request(format!("the old certificate: {e}")))?;
    let not_after = cert_not_after(&old).map_err(|e| ApiError::bad_request(format!("the old certificate: {e}")))?;
    // Only a certificate that has expired: a node whose certificate is valid renews with it.
    let now = Timestamp::now().unix_nanos().map_or(0, |n| (n / 1_000_000_000) as i64);
    if not_after >= now {
        return Err(ApiError::bad_request(format!(
            "the certificate of node {} has not expired; the node renews it itself",
            req.node_id
        )));
    }
    let during = not_after.saturating_sub(1).max(0) as u64;
    issued_by_cluster_ca(&root.ca_cert_pem, &old, during)
        .map_err(|e| unauthorized(format!("the old certificate was not issued by this cluster's CA: {e}")))?;
    let named = cert_identity(&old).map_err(|e| ApiError::bad_request(format!("the old certificate: {e}")))?;
    if named.node_id != req.node_id || named.cluster_id != cluster.id {
        return Err(unauthorized(format!(
            "the old certificate is for node {} of cluster {}, not node {} of this cluster",
            named.node_id, named.cluster_id, req.node_id
        )));
    }
    check_rejoin_proof(&old, &req.node_id, &req.csr_pem, &req.proof).map_err(|e| unauthorized(e.to_string()))?;
    let node = m.store.view(|s| s.nodes.get(&req.node_id).cloned()).ok_or_else(|| {
        ApiError::not_found(format!(
            "node {} was removed from the swarm; remove its data dir and join as a new node",
            req.node_id
        ))
    })?;
    // The newest certificate in use only: the key of an older one (from a backup, say) is no
    // proof. Heartbeats record which key a node uses.
    let presented = public_key_digest(&old).map_err(|e| ApiError::bad_request(format!("the old certificate: {e}")))?;
    if node.certificate_key.as_ref().is_some_and(|k| *k != presented) {
        return Err(unauthorized(format!(
            "the old certificate is not node {}'s newest: a rejoin must be signed with the key of the last \
             certificate the node used",
            req.node_id
        )));
    }
    let role = node.spec.role;
    if role == NodeRole::Manager && token_role != NodeRole::Manager {
        return Err(unauthorized(format!(
            "node {} is a manager: it needs the manager join token",
            req.node_id
        )));
    }
    if role == NodeRole::Manager {
        check_manager_address(&req.advertise_addr)?;
    }
    let answer = certificate_answer(&m, &cluster, &root, &node, &req.csr_pem)?;
    tracing::info!(node_id = %req.node_id, role = role.name(), "a node with an expired certificate rejoined");
    Ok(Json(answer))
}
