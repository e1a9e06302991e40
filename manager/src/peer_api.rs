//! Endpoints other nodes call on a manager's listen address (mutual TLS, HTTP/2):
//!
//! | route | who may call |
//! |---|---|
//! | `GET /ca` | anyone: the root CA certificate, which the joiner checks against its token |
//! | `POST /join` | anyone holding a join token: issues a node certificate |
//! | `POST /join/raft` | a manager of this cluster: adds its raft node to the membership |
//! | `POST /raft/{append,vote,pre-vote,forward,membership}`, `POST /raft/snapshot`, `GET /raft/ping` | managers of this cluster |

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::routing::post;
use futures_util::TryStreamExt;
use serde::Serialize;
use swarm_ca::CertIdentity;
use swarm_ca::TokenError;
use swarm_ca::check_join_token;
use swarm_ca::issue_node_cert;
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
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::new_id;
use swarm_model::new_raft_id;
use swarm_net::server::Peer;
use swarm_net::server::PeerAddr;
use swarm_protocol::codec::frame_value;
use swarm_protocol::dispatcher::HeartbeatRequest;
use swarm_protocol::dispatcher::HeartbeatResponse;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogSubscribe;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_protocol::dispatcher::StatusRequest;
use swarm_protocol::peer::JoinRaftRequest;
use swarm_protocol::peer::JoinRequest;
use swarm_protocol::peer::JoinResponse;
use swarm_protocol::peer::RenewRequest;
use swarm_protocol::peer::RenewResponse;
use swarm_raft::ManagerAddr;
use swarm_raft::MembershipChange;
use swarm_raft::MembershipError;
use swarm_raft::Rpc;
use tokio_util::io::StreamReader;

use super::api::body::decode_json;
use super::api::error::ApiError;
use super::api::error::ApiResult;
use super::runtime::Manager;
use super::store::StoreAction;

/// Largest request body on the manager listener (append batches of big objects).
const RAFT_BODY_LIMIT: usize = 512 << 20;

pub fn peer_router(manager: Arc<Manager>) -> Router {
    Router::new()
        .route("/ca", get(ca))
        .route("/join", post(join))
        .route("/join/raft", post(join_raft))
        .route("/ca/renew", post(renew))
        .route("/dispatcher/session", post(session))
        .route("/dispatcher/heartbeat", post(heartbeat))
        .route("/dispatcher/status", post(status))
        .route("/dispatcher/logs", post(publish_logs))
        .route("/logs/subscribe", post(subscribe_logs))
        .route("/raft/ping", get(ping))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/{rpc}", post(raft_rpc))
        // Replication batches and snapshots are large; only managers get this far.
        .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
        .fallback(|| async { ApiError::not_found("no such endpoint on the manager listener") })
        .with_state(manager)
}

/// Any node of this cluster (worker or manager) may pass.
fn require_node<'a>(peer: &'a Peer, m: &Manager) -> Result<&'a CertIdentity, ApiError> {
    let who = peer.0.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate issued by this cluster's CA is required",
        )
    })?;
    if who.cluster_id != m.local.cluster_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the client certificate belongs to cluster {}, not to this cluster",
                who.cluster_id
            ),
        ));
    }
    let removed = m.store.view(|s| {
        s.cluster()
            .and_then(|c| c.root_ca.as_ref())
            .is_some_and(|ca| ca.removed_nodes.contains_key(&who.node_id))
    });
    if removed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Permission denied: node {} was removed from swarm", who.node_id),
        ));
    }
    Ok(who)
}

fn decode_msgpack<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    swarm_raft::decode(body, what).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn encode_msgpack<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    swarm_raft::encode(v).map_err(|e| ApiError::internal(e.to_string()))
}

async fn session(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    Extension(addr): Extension<PeerAddr>,
    body: Bytes,
) -> ApiResult<Body> {
    let who = require_node(&peer, &m)?.clone();
    let req: SessionRequest = decode_msgpack(&body, "session request")?;
    m.dispatcher
        .open_session(&m, &who.node_id, addr.0.ip().to_string(), req)
        .await
}

async fn heartbeat(State(m): State<Arc<Manager>>, Extension(peer): Extension<Peer>, body: Bytes) -> ApiResult<Vec<u8>> {
    let who = require_node(&peer, &m)?;
    let req: HeartbeatRequest = decode_msgpack(&body, "heartbeat")?;
    let period = m.dispatcher.heartbeat(&m, &who.node_id, &req.session_id).await?;
    encode_msgpack(&HeartbeatResponse {
        period_ms: period.as_millis() as u64,
    })
}

async fn status(State(m): State<Arc<Manager>>, Extension(peer): Extension<Peer>, body: Bytes) -> ApiResult<StatusCode> {
    let who = require_node(&peer, &m)?;
    let req: StatusRequest = decode_msgpack(&body, "status report")?;
    m.dispatcher.report(&m, &who.node_id, &req.session_id, req.updates)?;
    Ok(StatusCode::OK)
}

/// Only managers of this cluster may pass.
/// A node's lines for a log subscription.
async fn publish_logs(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = require_node(&peer, &m)?;
    let batch: LogBatch = decode_msgpack(&body, "log batch")?;
    m.dispatcher.publish_logs(&who.node_id, batch).await?;
    Ok(StatusCode::OK)
}

/// Another manager's client wants task output: the leader subscribes and streams it back.
async fn subscribe_logs(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Body> {
    require_manager(&peer, &m)?;
    let req: LogSubscribe = decode_msgpack(&body, "log subscription")?;
    let rx = m.dispatcher.subscribe_logs(&m, req.tasks, req.options).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((frame_value(&line).map(Bytes::from), rx))
    });
    Ok(Body::from_stream(stream))
}

fn require_manager<'a>(peer: &'a Peer, m: &Manager) -> Result<&'a CertIdentity, ApiError> {
    let who = peer.0.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate issued by this cluster's CA is required",
        )
    })?;
    if who.cluster_id != m.local.cluster_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the client certificate belongs to cluster {}, not to this cluster",
                who.cluster_id
            ),
        ));
    }
    if who.role != NodeRole::Manager {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("node {} is a worker: this endpoint is for managers only", who.node_id),
        ));
    }
    // A manager certificate outlives a demotion until its node renews it: what the store says
    // about the node wins, unless raft still has it as a member (a demotion in progress; a new
    // learner's store is still empty and knows nobody).
    let (removed, demoted) = m.store.view(|s| {
        let removed = s
            .cluster()
            .and_then(|c| c.root_ca.as_ref())
            .is_some_and(|ca| ca.removed_nodes.contains_key(&who.node_id));
        let demoted = s
            .nodes
            .get(&who.node_id)
            .is_some_and(|n| n.spec.role != NodeRole::Manager);
        (removed, demoted)
    });
    if removed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Permission denied: node {} was removed from swarm", who.node_id),
        ));
    }
    if demoted {
        let raft = m.raft.status();
        let member = raft
            .voters
            .values()
            .chain(raft.learners.values())
            .any(|a| a.node_id == who.node_id);
        if !member {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "node {} was demoted: its manager certificate is no longer valid",
                    who.node_id
                ),
            ));
        }
    }
    Ok(who)
}

async fn ca(State(m): State<Arc<Manager>>) -> ApiResult<String> {
    let cluster = m.cluster()?;
    cluster
        .root_ca
        .map(|r| r.ca_cert_pem)
        .ok_or_else(|| ApiError::unavailable("the cluster has no root CA yet"))
}

/// How long node certificates live: the cluster setting, or Swarm's 90 days.
fn node_cert_expiry(cluster: &Cluster) -> Duration {
    cluster
        .spec
        .ca_config
        .node_cert_expiry
        .filter(|e| *e > 0)
        .map(|ns| Duration::from_nanos(ns as u64))
        .unwrap_or(swarm_ca::NODE_CERT_EXPIRY)
}

async fn join(
    State(m): State<Arc<Manager>>,
    Extension(addr): Extension<PeerAddr>,
    body: Bytes,
) -> ApiResult<Json<JoinResponse>> {
    let req: JoinRequest = decode_json(&body, "join request")?;
    let cluster = m.cluster()?;
    let root = cluster
        .root_ca
        .clone()
        .ok_or_else(|| ApiError::unavailable("the cluster has no root CA yet"))?;
    let digest = root_digest(&root.ca_cert_pem);
    let role = check_join_token(&req.token, &cluster, &digest).map_err(|e| match e {
        TokenError::NoCluster => ApiError::unavailable(e.to_string()),
        _ => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
    })?;
    if role == NodeRole::Manager && req.advertise_addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(ApiError::bad_request(format!(
            "advertise address {:?} is not a valid IP:port; a manager needs one that other managers can dial",
            req.advertise_addr
        )));
    }
    let hostname = req.hostname.trim().to_string();
    if hostname.is_empty() {
        return Err(ApiError::bad_request("hostname must not be empty"));
    }
    let node_id = new_id();
    let raft_id = (role == NodeRole::Manager).then(new_raft_id);
    let expiry = node_cert_expiry(&cluster);
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
        },
        status: NodeStatus {
            state: NodeState::Unknown,
            message: "registered; waiting for its first heartbeat".to_string(),
            addr: addr.0.ip().to_string(),
        },
        raft_id,
        ..Default::default()
    };
    m.commit(vec![StoreAction::Create(node.into_object())]).await?;
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
async fn renew(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<RenewResponse>> {
    let who = require_node(&peer, &m)?.clone();
    // Only the leader decides: a lagging manager could issue a role the cluster has moved on
    // from.
    if !m.raft.leads_with_quorum() {
        return Err(crate::dispatcher::Dispatcher::not_leader(&m));
    }
    let req: RenewRequest = decode_json(&body, "certificate renewal request")?;
    let (node, cluster) = m
        .store
        .view(|s| (s.nodes.get(&who.node_id).cloned(), s.cluster().cloned()));
    let node = node.ok_or_else(|| ApiError::not_found(format!("node {} not found", who.node_id)))?;
    let cluster = cluster.ok_or_else(|| ApiError::unavailable("the swarm is not initialised yet"))?;
    let root = cluster
        .root_ca
        .clone()
        .ok_or_else(|| ApiError::unavailable("the cluster has no root CA yet"))?;
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
            if req.advertise_addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "advertise address {:?} is not a valid IP:port; a manager needs one that other managers can dial",
                    req.advertise_addr
                )));
            }
        }
        NodeRole::Worker if still_member => {
            return Err(ApiError::conflict(format!(
                "node {} is still a raft member; retry once it has been removed",
                who.node_id
            )));
        }
        NodeRole::Worker => {}
    }
    let expiry = node_cert_expiry(&cluster);
    let identity = CertIdentity {
        node_id: who.node_id.clone(),
        role,
        cluster_id: cluster.id.clone(),
    };
    let cert_pem = issue_node_cert(&root.ca_cert_pem, &root.ca_key_pem, &req.csr_pem, &identity, expiry)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(node_id = %who.node_id, role = role.name(), "issued a certificate for a new role");
    Ok(Json(RenewResponse {
        role,
        cert_pem,
        raft_id: (role == NodeRole::Manager).then_some(node.raft_id).flatten(),
        managers: raft
            .voters
            .values()
            .map(|a| (a.node_id.clone(), a.addr.clone()))
            .collect(),
    }))
}

async fn join_raft(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = require_manager(&peer, &m)?.clone();
    let req: JoinRaftRequest = decode_json(&body, "raft join request")?;
    if req.addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(ApiError::bad_request(format!(
            "invalid raft join request: addr: {:?} is not an IP:PORT other managers can dial",
            req.addr
        )));
    }
    let node = m
        .store
        .view(|s| s.nodes.get(&who.node_id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("node {} not found", who.node_id)))?;
    if node.raft_id != Some(req.raft_id) || node.spec.role != NodeRole::Manager {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "node {} is not registered as manager with raft id {:x}",
                who.node_id, req.raft_id
            ),
        ));
    }
    let change = MembershipChange::AddManager {
        id: req.raft_id,
        addr: ManagerAddr {
            node_id: who.node_id.clone(),
            addr: req.addr,
        },
    };
    m.raft.change_membership(change).await.map_err(|e| match e {
        MembershipError::QuorumRisk(msg) => ApiError::conflict(msg),
        other => ApiError::unavailable(other.to_string()),
    })?;
    tracing::info!(node_id = %who.node_id, "manager added to raft");
    Ok(StatusCode::OK)
}

async fn ping(State(m): State<Arc<Manager>>, Extension(peer): Extension<Peer>) -> ApiResult<&'static str> {
    require_manager(&peer, &m)?;
    Ok("OK")
}

/// Writes and membership changes may only come from managers the store knows, and a membership
/// change may only name a registered manager incarnation. (Replication and votes cannot be
/// checked against the store: a new learner's store is still empty.)
fn check_registered_manager(m: &Manager, who: &CertIdentity) -> Result<(), ApiError> {
    let known = m
        .store
        .view(|s| s.nodes.get(&who.node_id).map(|n| n.spec.role == NodeRole::Manager))
        .unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("node {} is not a registered manager of this cluster", who.node_id),
        ))
    }
}

fn check_membership_change(m: &Manager, change: &MembershipChange) -> Result<(), ApiError> {
    let (id, node_id) = match change {
        MembershipChange::AddManager { id, addr } => {
            if addr.addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "invalid membership change: {:?} is not an IP:PORT",
                    addr.addr
                )));
            }
            (*id, Some(addr.node_id.clone()))
        }
        // Any registered manager may take a raft member out: demoted and stale incarnations
        // are no longer registered as managers.
        MembershipChange::RemoveManager { .. } => return Ok(()),
    };
    let registered = m.store.view(|s| {
        s.nodes.iter().any(|n| {
            n.raft_id == Some(id)
                && n.spec.role == NodeRole::Manager
                && node_id.as_ref().is_none_or(|want| *want == n.id)
        })
    });
    if registered {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("raft id {id:x} does not belong to a registered manager"),
        ))
    }
}

async fn raft_rpc(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    Path(rpc): Path<String>,
    body: Bytes,
) -> ApiResult<Vec<u8>> {
    let who = require_manager(&peer, &m)?;
    let rpc = Rpc::from_name(&rpc).ok_or_else(|| ApiError::not_found(format!("unknown raft rpc {rpc:?}")))?;
    match rpc {
        Rpc::Forward => check_registered_manager(&m, who)?,
        Rpc::Membership => {
            check_registered_manager(&m, who)?;
            let change: MembershipChange =
                swarm_raft::decode(&body, "membership change").map_err(|e| ApiError::bad_request(e.to_string()))?;
            check_membership_change(&m, &change)?;
        }
        Rpc::Append | Rpc::Vote | Rpc::PreVote | Rpc::Transfer => {}
    }
    m.raft
        .handle_rpc(rpc, &body)
        .await
        .map_err(|e| ApiError::bad_request(format!("raft {}: {e}", rpc.name())))
}

async fn snapshot(State(m): State<Arc<Manager>>, Extension(peer): Extension<Peer>, body: Body) -> ApiResult<Vec<u8>> {
    require_manager(&peer, &m)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = StreamReader::new(stream);
    m.raft
        .receive_snapshot(reader)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot receive snapshot: {e}")))
}
