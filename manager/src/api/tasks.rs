//! `/tasks`: every task with its slot, node, desired and observed state.

use std::collections::HashMap;

use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use swarm_model::Task;
use swarm_model::TaskState;

use super::ApiState;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use super::references::resolve_in;
use crate::store::StoreState;

const TASK_FILTERS: &[&str] = &["id", "name", "service", "node", "desired-state", "label", "_up-to-date"];

/// Service IDs matching a filter value: ID, exact name, or ID prefix (dockerd resolves names).
fn service_ids(s: &StoreState, reference: &str) -> Vec<String> {
    if let Some(svc) = s.services.get(reference) {
        return vec![svc.id.clone()];
    }
    if let Some(svc) = s.services.by_name(reference) {
        return vec![svc.id.clone()];
    }
    s.services.with_id_prefix(reference).map(|svc| svc.id.clone()).collect()
}

fn node_ids(s: &StoreState, reference: &str) -> Vec<String> {
    if s.nodes.get(reference).is_some() {
        return vec![reference.to_string()];
    }
    let by_name: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| n.spec.name == reference || n.description.hostname == reference)
        .map(|n| n.id.clone())
        .collect();
    if !by_name.is_empty() {
        return by_name;
    }
    s.nodes.with_id_prefix(reference).map(|n| n.id.clone()).collect()
}

fn parse_state(v: &str) -> Result<TaskState, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_ascii_lowercase())).map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid filter 'desired-state={v}': expected running, shutdown, accepted, ready or complete"
        ))
    })
}

/// Label filters match the labels of the task's service; a task whose service is gone (being
/// removed) matches by the service labels it was created with, never by default.
fn filters_labels(filters: &Filters, service_labels: Option<&swarm_model::Labels>, t: &Task) -> bool {
    let labels = service_labels.or(t.service_annotations.as_ref().map(|a| &a.labels));
    match labels {
        Some(l) => filters.labels_match("label", l),
        None => filters.values("label").is_empty(),
    }
}

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Task>>> {
    let m = state.manager()?;
    let filters = Filters::parse(q.get("filters"), TASK_FILTERS)?;
    let desired: Vec<TaskState> = filters
        .values("desired-state")
        .iter()
        .map(|v| parse_state(v))
        .collect::<Result<_, _>>()?;
    let tasks = m.store.view(|s| {
        let services: Option<Vec<String>> = (!filters.values("service").is_empty()).then(|| {
            filters
                .values("service")
                .iter()
                .flat_map(|r| service_ids(s, r))
                .collect()
        });
        let nodes: Option<Vec<String>> = (!filters.values("node").is_empty())
            .then(|| filters.values("node").iter().flat_map(|r| node_ids(s, r)).collect());
        let up_to_date = !filters.values("_up-to-date").is_empty();
        s.tasks
            .iter()
            .filter(|t| {
                let svc = s.services.get(&t.service_id);
                let svc_name = svc.map(|x| x.spec.name.clone()).unwrap_or_default();
                filters.any("id", |v| t.id.starts_with(v))
                    && filters.any("name", |v| t.display_name(&svc_name).starts_with(v))
                    && services.as_ref().is_none_or(|ids| ids.contains(&t.service_id))
                    && nodes.as_ref().is_none_or(|ids| ids.contains(&t.node_id))
                    && (desired.is_empty() || desired.contains(&t.desired_state))
                    && filters_labels(&filters, svc.map(|x| &x.spec.labels), t)
                    && (!up_to_date
                        || svc.is_some_and(|x| !crate::orchestrator::update::is_dirty(x, t, s.nodes.get(&t.node_id))))
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    Ok(Json(tasks))
}

pub async fn inspect(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    let m = state.manager()?;
    m.store.view(|s| resolve_task(s, &id)).map(Json)
}

/// Full ID first, then a unique ID prefix, as dockerd resolves task references.
pub fn resolve_task(s: &StoreState, reference: &str) -> Result<Task, ApiError> {
    resolve_in(&s.tasks, "task", reference)
}

#[cfg(test)]
mod tests {
    use swarm_model::Annotations;
    use swarm_model::Labels;

    use super::*;

    #[test]
    fn a_task_whose_service_is_gone_matches_by_the_labels_it_was_created_with() {
        let stack = |name: &str| -> Labels { [("com.docker.stack.namespace".to_string(), name.to_string())].into() };
        let filter = r#"{"label":{"com.docker.stack.namespace=demo":true}}"#.to_string();
        let filters = Filters::parse(Some(&filter), TASK_FILTERS).unwrap();
        let mut task = Task {
            service_annotations: Some(Annotations {
                name: "agent".into(),
                labels: Labels::new(),
            }),
            ..Task::default()
        };
        assert!(
            !filters_labels(&filters, None, &task),
            "another stack's task is not shown"
        );
        task.service_annotations = Some(Annotations {
            name: "demo_app".into(),
            labels: stack("demo"),
        });
        assert!(filters_labels(&filters, None, &task));
        assert!(
            !filters_labels(&filters, Some(&stack("other")), &task),
            "the live service's labels win"
        );
        task.service_annotations = None;
        assert!(!filters_labels(&filters, None, &task), "no labels known: no match");
        let none = Filters::parse(None, TASK_FILTERS).unwrap();
        assert!(
            filters_labels(&none, None, &task),
            "without a label filter every task passes"
        );
    }
}
