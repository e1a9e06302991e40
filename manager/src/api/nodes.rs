//! `/nodes`: every node, with manager status filled in from raft and peer health.

use std::collections::BTreeSet;
use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use swarm_model::Kind;
use swarm_model::Node;
use swarm_model::NodeRole;
use swarm_model::NodeSpec;
use swarm_model::NodeState;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::Version;
use swarm_model::new_raft_id;
use swarm_raft::quorum;
use swarm_raft::quorum::QuorumRisk;

use super::ApiState;
use super::body::decode_json_logged;
use super::body::query_bool;
use super::body::query_version;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use crate::runtime::Manager;
use crate::store::StoreAction;
use crate::store::StoreState;

const NODE_FILTERS: &[&str] = &["id", "name", "role", "membership", "label", "node.label"];

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Node>>> {
    let m = state.manager()?;
    let filters = Filters::parse(q.get("filters"), NODE_FILTERS)?;
    let raft = m.raft.status();
    let mut nodes: Vec<Node> = m.store.view(|s| s.nodes.iter().cloned().collect());
    nodes.retain(|n| {
        filters.any("id", |v| n.id.starts_with(v))
            && filters.any("name", |v| {
                n.spec.name.starts_with(v) || n.description.hostname.starts_with(v)
            })
            && filters.any("role", |v| v == n.spec.role.name())
            && filters.any("membership", |v| v == "accepted")
            && filters.labels_match(
                "label",
                n.description.engine.labels.as_ref().unwrap_or(&Default::default()),
            )
            && filters.labels_match("node.label", &n.spec.labels)
    });
    for n in &mut nodes {
        m.decorate_node(n, &raft);
    }
    Ok(Json(nodes))
}

pub async fn inspect(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<Node>> {
    let m = state.manager()?;
    let mut node = m.store.view(|s| resolve_node(s, &id))?;
    m.decorate_node(&mut node, &m.raft.status());
    Ok(Json(node))
}

/// Finds a node by full ID, then exact name or hostname, then unique ID prefix.
pub fn resolve_node(s: &StoreState, reference: &str) -> Result<Node, ApiError> {
    if let Some(n) = s.nodes.get(reference) {
        return Ok(n.clone());
    }
    let by_name: Vec<&Node> = s
        .nodes
        .iter()
        .filter(|n| n.spec.name == reference || n.description.hostname == reference)
        .collect();
    match by_name.len() {
        1 => return Ok(by_name[0].clone()),
        n if n > 1 => {
            return Err(ApiError::bad_request(format!(
                "node {reference} is ambiguous ({n} nodes have this name); use the node ID"
            )));
        }
        _ => {}
    }
    let by_prefix: Vec<&Node> = s.nodes.with_id_prefix(reference).collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ApiError::not_found(format!("node {reference} not found"))),
        n => Err(ApiError::bad_request(format!(
            "node {reference} is ambiguous ({n} matches); use more of the ID"
        ))),
    }
}

/// `POST /nodes/{id}/update?version=N`: availability, labels, name and role. The spec replaces
/// the stored one as a whole, as in Swarm; a stale `version` is refused. A demotion takes the
/// manager out of raft first (quorum-safe); a promotion gives the node a raft id, and the node
/// itself then gets a manager certificate and joins raft.
pub async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let version = query_version(q.get("version"))?;
    let spec: NodeSpec = decode_json_logged(&body, "node spec")?;
    if let Some(k) = spec.labels.keys().find(|k| k.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "invalid node spec: Labels: label key {k:?} is empty"
        )));
    }
    m.raft
        .wait_applied(version, tokio::time::Instant::now() + std::time::Duration::from_secs(2))
        .await;
    let current = m.store.view(|s| resolve_node(s, &id))?;
    if current.version != Version::new(version) {
        return Err(ApiError::conflict("update out of sequence"));
    }
    let mut next = current.clone();
    match (current.spec.role, spec.role) {
        (NodeRole::Worker, NodeRole::Manager) => {
            // A fresh raft incarnation; the node gets a manager certificate and joins raft.
            next.raft_id = Some(new_raft_id());
        }
        (NodeRole::Manager, NodeRole::Worker) => check_demotion(m, &current)?,
        _ => {}
    }
    next.version = Version::new(version);
    next.spec = spec;
    next.manager_status = None;
    next.updated_at = Timestamp::now();
    m.committer
        .commit(vec![StoreAction::Update(next.into_object())])
        .await?;
    Ok(StatusCode::OK)
}

/// Refuses a demotion that would leave the cluster without a reachable majority of managers,
/// or without managers at all. The leader's role manager then takes the node out of raft.
fn check_demotion(m: &Manager, node: &Node) -> Result<(), ApiError> {
    let (other_managers, not_managers): (usize, BTreeSet<String>) = m.store.view(|s| {
        let others = s
            .nodes
            .iter()
            .filter(|n| n.id != node.id && n.spec.role == NodeRole::Manager)
            .count();
        let demoted = s
            .nodes
            .iter()
            .filter(|n| n.spec.role != NodeRole::Manager)
            .map(|n| n.id.clone())
            .collect();
        (others, demoted)
    });
    if other_managers == 0 {
        return Err(ApiError::bad_request(
            "attempting to demote the last manager of the swarm",
        ));
    }
    let Some(raft_id) = node.raft_id else {
        return Ok(());
    };
    // Voters already demoted in the store are on their way out: count without them.
    let raft = m.raft.status();
    let staying: Vec<(&u64, &swarm_raft::ManagerAddr)> = raft
        .voters
        .iter()
        .filter(|(_, a)| !not_managers.contains(&a.node_id))
        .collect();
    let voters: BTreeSet<u64> = staying.iter().map(|(id, _)| **id).collect();
    let healthy: BTreeSet<u64> = staying
        .iter()
        .filter(|(_, a)| m.is_reachable(&a.node_id))
        .map(|(id, _)| **id)
        .collect();
    match quorum::check_remove(&voters, &healthy, raft_id) {
        Ok(()) => Ok(()),
        Err(QuorumRisk::LastManager) => Err(ApiError::bad_request(
            "attempting to demote the last manager of the swarm",
        )),
        Err(why) => Err(ApiError::bad_request(format!(
            "can't remove member from the raft: this would result in a loss of quorum ({why})"
        ))),
    }
}

/// `DELETE /nodes/{id}[?force=1]`: forgets a node. A node that is up needs `force`; a manager
/// must be demoted first. The node's certificate is refused from then on, and its tasks are
/// replaced elsewhere.
pub async fn remove(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let force = query_bool(q.get("force"))?;
    let node = m.store.view(|s| resolve_node(s, &id))?;
    let raft = m.raft.status();
    let member = node
        .raft_id
        .is_some_and(|r| raft.voters.contains_key(&r) || raft.learners.contains_key(&r));
    if node.spec.role == NodeRole::Manager || member {
        return Err(ApiError::bad_request(format!(
            "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
            node.id
        )));
    }
    if !force && node.status.state == NodeState::Ready {
        return Err(ApiError::bad_request(format!(
            "node {} is not down and can't be removed",
            node.id
        )));
    }
    let mut cluster = m.cluster()?;
    let root = cluster
        .root_ca
        .as_mut()
        .ok_or_else(|| ApiError::internal("could not fetch cluster object"))?;
    let now = Timestamp::now();
    root.removed_nodes.insert(node.id.clone(), now);
    cluster.updated_at = now;
    m.committer
        .commit(vec![
            StoreAction::Remove {
                kind: Kind::Node,
                id: node.id,
                version: Some(node.version),
            },
            StoreAction::Update(cluster.into_object()),
        ])
        .await?;
    Ok(StatusCode::OK)
}
