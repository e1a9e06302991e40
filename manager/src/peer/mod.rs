//! Endpoints other nodes call on a manager's listen address (mutual TLS, HTTP/2), and who may
//! call them. The handlers are in [`join`], [`dispatch`] and [`raft`]; errors become HTTP here
//! and in [`crate::api::error`], nowhere below.
//!
//! | route | who may call |
//! |---|---|
//! | `GET /ca` | anyone: the root CA certificate, which the joiner checks against its token |
//! | `POST /join` | anyone holding a join token: issues a node certificate |
//! | `POST /join/rejoin` | a node whose certificate expired: a join token and proof of its old key |
//! | `POST /ca/renew` | a node of this cluster: a certificate for the role the cluster gives it |
//! | `POST /dispatcher/{session,heartbeat,status,logs}` | a node of this cluster |
//! | `POST /logs/subscribe` | a manager of this cluster: task output through the leader |
//! | `POST /join/raft` | a manager of this cluster: adds its raft node to the membership |
//! | `POST /raft/{append,vote,pre-vote,forward,membership}`, `POST /raft/snapshot`, `GET /raft/ping` | managers of this cluster |

mod dispatch;
mod join;
mod raft;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use serde::Serialize;
use swarm_ca::CertIdentity;
use swarm_model::NodeRole;
use swarm_net::server::Peer;

use crate::api::error::ApiError;
use crate::runtime::Manager;

/// Largest body of a call anyone may make (a join request carries a CSR).
const PUBLIC_BODY_LIMIT: usize = 64 << 10;
/// Largest body from a node (status reports of up to 1,000 tasks, batches of log lines).
const NODE_BODY_LIMIT: usize = 16 << 20;
/// Largest body from a manager (replication batches of big objects; snapshots are streamed).
const MANAGER_BODY_LIMIT: usize = 512 << 20;

/// The routes, each group behind its own check of the caller's certificate, made before any
/// body is read: a caller without the right certificate is refused after its headers, and a
/// body is only ever read up to its group's limit.
pub fn peer_router(manager: Arc<Manager>) -> Router {
    let anyone = Router::new()
        .route("/ca", get(join::ca))
        .route("/join", post(join::join))
        .route("/join/rejoin", post(join::rejoin))
        .layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT));
    let nodes = Router::new()
        .route("/ca/renew", post(join::renew))
        .route("/dispatcher/session", post(dispatch::session))
        .route("/dispatcher/heartbeat", post(dispatch::heartbeat))
        .route("/dispatcher/status", post(dispatch::status))
        .route("/dispatcher/logs", post(dispatch::publish_logs))
        .layer(DefaultBodyLimit::max(NODE_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(manager.clone(), nodes_only));
    let managers = Router::new()
        .route("/logs/subscribe", post(dispatch::subscribe_logs))
        .route("/join/raft", post(raft::join_raft))
        .route("/raft/ping", get(raft::ping))
        .route("/raft/snapshot", post(raft::snapshot))
        .route("/raft/{rpc}", post(raft::raft_rpc))
        .layer(DefaultBodyLimit::max(MANAGER_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(manager.clone(), managers_only));
    Router::new()
        .merge(anyone)
        .merge(nodes)
        .merge(managers)
        .fallback(|| async { ApiError::not_found("no such endpoint on the manager listener") })
        .with_state(manager)
}

/// Lets through only nodes of this cluster, before the handler reads the body.
async fn nodes_only(State(m): State<Arc<Manager>>, req: Request, next: Next) -> Response {
    admit(&m, req, next, require_node).await
}

/// Lets through only managers of this cluster, before the handler reads the body.
async fn managers_only(State(m): State<Arc<Manager>>, req: Request, next: Next) -> Response {
    admit(&m, req, next, require_manager).await
}

/// Passes `req` on if its caller's certificate satisfies `require`.
async fn admit(
    m: &Manager,
    req: Request,
    next: Next,
    require: for<'a> fn(&'a Peer, &Manager) -> Result<&'a CertIdentity, ApiError>,
) -> Response {
    let Some(peer) = req.extensions().get::<Peer>() else {
        return no_certificate();
    };
    if let Err(e) = require(peer, m) {
        return e.into_response();
    }
    next.run(req).await
}

fn no_certificate() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "a client certificate issued by this cluster's CA is required",
    )
    .into_response()
}

/// The caller's certificate, if it is one of this cluster's.
fn of_this_cluster<'a>(peer: &'a Peer, m: &Manager) -> Result<&'a CertIdentity, ApiError> {
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
    Ok(who)
}

/// A removed node's certificate is refused from its removal on.
fn refuse_removed(who: &CertIdentity, m: &Manager) -> Result<(), ApiError> {
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
    Ok(())
}

/// Any node of this cluster (worker or manager) may pass.
pub(super) fn require_node<'a>(peer: &'a Peer, m: &Manager) -> Result<&'a CertIdentity, ApiError> {
    let who = of_this_cluster(peer, m)?;
    refuse_removed(who, m)?;
    Ok(who)
}

/// Only managers of this cluster may pass.
pub(super) fn require_manager<'a>(peer: &'a Peer, m: &Manager) -> Result<&'a CertIdentity, ApiError> {
    let who = of_this_cluster(peer, m)?;
    if who.role != NodeRole::Manager {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("node {} is a worker: this endpoint is for managers only", who.node_id),
        ));
    }
    refuse_removed(who, m)?;
    // A manager certificate outlives a demotion until its node renews it: what the store says
    // about the node wins, unless raft still has it as a member (a demotion in progress; a new
    // learner's store is still empty and knows nobody).
    let demoted = m.store.view(|s| {
        s.nodes
            .get(&who.node_id)
            .is_some_and(|n| n.spec.role != NodeRole::Manager)
    });
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

pub(super) fn decode_msgpack<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    swarm_protocol::codec::decode(body, what).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(super) fn encode_msgpack<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    swarm_protocol::codec::encode(v).map_err(|e| ApiError::internal(e.to_string()))
}
