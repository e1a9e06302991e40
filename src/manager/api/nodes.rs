//! `/nodes`: every node, with manager status filled in from raft and peer health.

use std::collections::HashMap;

use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;

use super::ApiState;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use crate::manager::store::StoreState;
use crate::model::Node;

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
