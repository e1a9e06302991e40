//! Raft between managers: joining the membership, pings, replication and votes, forwarded
//! writes and membership changes, and snapshots.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use swarm_ca::CertIdentity;
use swarm_model::NodeRole;
use swarm_net::server::Peer;
use swarm_protocol::peer::JoinRaftRequest;
use swarm_raft::ManagerAddr;
use swarm_raft::MembershipChange;
use swarm_raft::MembershipError;
use swarm_raft::Rpc;
use tokio_util::io::StreamReader;

use super::require_manager;
use crate::api::body::decode_exact;
use crate::api::error::ApiError;
use crate::api::error::ApiResult;
use crate::runtime::Manager;

pub(super) async fn join_raft(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = require_manager(&peer, &m)?.clone();
    let req: JoinRaftRequest = decode_exact(&body, "raft join request")?;
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

pub(super) async fn ping(State(m): State<Arc<Manager>>, Extension(peer): Extension<Peer>) -> ApiResult<&'static str> {
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

pub(super) async fn raft_rpc(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    Path(rpc): Path<String>,
    body: Bytes,
) -> ApiResult<Vec<u8>> {
    let who = require_manager(&peer, &m)?;
    let rpc = Rpc::from_name(&rpc).ok_or_else(|| ApiError::not_found(format!("unknown raft rpc {rpc:?}")))?;
    match rpc {
        Rpc::Forward | Rpc::ReadIndex => check_registered_manager(&m, who)?,
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

pub(super) async fn snapshot(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Body,
) -> ApiResult<Vec<u8>> {
    require_manager(&peer, &m)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = StreamReader::new(stream);
    m.raft
        .receive_snapshot(reader)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot receive snapshot: {e}")))
}
