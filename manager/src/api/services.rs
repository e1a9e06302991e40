//! `/services`: create, list, inspect, update (with optimistic concurrency) and remove.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use serde_json::json;
use swarm_model::Endpoint;
use swarm_model::JobStatus;
use swarm_model::Kind;
use swarm_model::SchedulingStatus;
use swarm_model::Service;
use swarm_model::ServiceSpec;
use swarm_model::ServiceStatus;
use swarm_model::StoreObject;
use swarm_model::TaskState;
use swarm_model::Timestamp;
use swarm_model::UpdateStatus;
use swarm_model::Version;
use swarm_model::defaults::normalize_service_spec;
use swarm_model::defaults::with_defaults;
use swarm_model::new_id;

use super::ApiState;
use super::body::decode_json;
use super::body::ignored_key_warnings;
use super::body::query_bool;
use super::body::query_version;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use super::references::resolve_in;
use super::validate::random_service_name;
use super::validate::validate_service_spec;
use crate::store::StoreAction;
use crate::store::StoreState;

const SERVICE_FILTERS: &[&str] = &["id", "name", "label", "mode"];

/// Finds a service by full ID, then exact name, then unique ID prefix.
pub fn resolve_service(s: &StoreState, reference: &str) -> Result<Service, ApiError> {
    resolve_in(&s.services, "service", reference)
}

/// The service's tasks that wait for a node and why, when there are any.
fn scheduling_status(s: &StoreState, svc: &Service) -> Option<SchedulingStatus> {
    task_counts(s, svc, false).1
}

/// Both views of a service's tasks in one pass over them, since a service may have 100,000
/// and `service ls` asks for both. The first is only counted when `with_service_status`.
///
/// Running and desired task counts are what `service ls` shows. For jobs, completions count
/// in the current iteration only. As in dockerd, a task on a Down node does not count as
/// running: nobody can tell whether it still runs (the fault suite found it counted).
fn task_counts(s: &StoreState, svc: &Service, with_service_status: bool) -> (ServiceStatus, Option<SchedulingStatus>) {
    let mut running = 0;
    let mut completed = 0;
    let mut desired_running = 0;
    let mut pending = 0;
    let mut reason = String::new();
    let iteration = svc.job_status.as_ref().map(|j| j.job_iteration);
    let wanted = crate::orchestrator::run_state(svc);
    for t in s.tasks_by_service(&svc.id) {
        if t.status.state == TaskState::Pending && t.is_runnable() && !t.status.err.is_empty() {
            pending += 1;
            if reason.is_empty() {
                reason = t.status.err.clone();
            }
        }
        if !with_service_status {
            continue;
        }
        let node_up = || {
            s.nodes
                .get(&t.node_id)
                .is_some_and(|n| n.status.state != swarm_model::NodeState::Down)
        };
        if t.status.state == TaskState::Running && node_up() {
            running += 1;
        }
        if t.status.state == TaskState::Complete && (!svc.spec.mode.is_job() || t.job_iteration == iteration) {
            completed += 1;
        }
        if t.desired_state == wanted && t.status.state != TaskState::Complete {
            desired_running += 1;
        }
    }
    let mode = &svc.spec.mode;
    let desired = if let Some(r) = &mode.replicated {
        r.replicas.unwrap_or(1)
    } else if let Some(j) = &mode.replicated_job {
        j.max_concurrent.unwrap_or(1)
    } else {
        desired_running
    };
    let status = ServiceStatus {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: completed,
    };
    let scheduling = (pending > 0).then_some(SchedulingStatus {
        pending_tasks: pending,
        reason,
    });
    (status, scheduling)
}

/// Resolves what the spec refers to: network names become IDs; secrets and configs must exist
/// (by ID, or by name when no ID is given) and their names are filled in.
fn resolve_references(s: &StoreState, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    super::networks::resolve_targets(s, spec)?;
    let Some(cs) = spec.task_template.container_spec.as_mut() else {
        return Ok(());
    };
    for r in cs.secrets.iter_mut().flatten() {
        let found = s.secrets.get(&r.secret_id).or_else(|| {
            r.secret_id
                .is_empty()
                .then(|| s.secrets.by_name(&r.secret_name))
                .flatten()
        });
        let Some(secret) = found else {
            let what = if r.secret_id.is_empty() {
                &r.secret_name
            } else {
                &r.secret_id
            };
            return Err(ApiError::bad_request(format!("secret not found: {what}")));
        };
        r.secret_id = secret.id.clone();
        r.secret_name = secret.spec.name.clone();
    }
    for r in cs.configs.iter_mut().flatten() {
        let found = s.configs.get(&r.config_id).or_else(|| {
            r.config_id
                .is_empty()
                .then(|| s.configs.by_name(&r.config_name))
                .flatten()
        });
        let Some(config) = found else {
            let what = if r.config_id.is_empty() {
                &r.config_name
            } else {
                &r.config_id
            };
            return Err(ApiError::bad_request(format!("config not found: {what}")));
        };
        r.config_id = config.id.clone();
        r.config_name = config.spec.name.clone();
    }
    Ok(())
}

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Service>>> {
    let m = state.manager()?;
    let filters = Filters::parse(q.get("filters"), SERVICE_FILTERS)?;
    let with_status = query_bool(q.get("status"))?;
    for mode in filters.values("mode") {
        if !["replicated", "global", "replicated-job", "global-job"].contains(&mode.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid filter 'mode={mode}': expected replicated, global, replicated-job or global-job"
            )));
        }
    }
    let services = m.store.view(|s| {
        let mut out: Vec<Service> = s
            .services
            .iter()
            .filter(|svc| {
                filters.any("id", |v| svc.id.starts_with(v))
                    && filters.any("name", |v| svc.spec.name.starts_with(v))
                    && filters.labels_match("label", &svc.spec.labels)
                    && filters.any("mode", |v| v.replace('-', " ") == svc.spec.mode.describe())
            })
            .cloned()
            .collect();
        for svc in &mut out {
            let (status, scheduling) = task_counts(s, svc, with_status);
            svc.service_status = with_status.then_some(status);
            svc.scheduling_status = scheduling;
        }
        out
    });
    Ok(Json(services))
}

pub async fn inspect(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Service>> {
    let m = state.manager()?;
    let mut svc = m.store.view(|s| {
        resolve_service(s, &id).map(|mut svc| {
            svc.scheduling_status = scheduling_status(s, &svc);
            svc
        })
    })?;
    if query_bool(q.get("insertDefaults"))? {
        svc.spec = with_defaults(&svc.spec);
        svc.previous_spec = svc.previous_spec.as_ref().map(with_defaults);
    }
    Ok(Json(svc))
}

pub async fn create(State(state): State<ApiState>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = state.manager()?;
    let decoded = decode_json::<ServiceSpec>(&body, "service spec")?;
    let warnings = ignored_key_warnings(&decoded.ignored, "Spec", "service create");
    let mut spec = decoded.value;
    if spec.name.is_empty() {
        spec.name = random_service_name();
    }
    normalize_service_spec(&mut spec);
    validate_service_spec(&spec)?;
    m.store.view(|s| resolve_references(s, &mut spec))?;
    let now = Timestamp::now();
    let svc = Service {
        id: new_id(),
        version: Version::default(),
        created_at: now,
        updated_at: now,
        endpoint: Endpoint::for_spec(&spec),
        job_status: spec.mode.is_job().then(|| JobStatus {
            job_iteration: Version::default(),
            last_execution: Some(now),
        }),
        spec,
        ..Default::default()
    };
    let id = svc.id.clone();
    m.committer.commit(vec![StoreAction::Create(svc.into_object())]).await?;
    let body = if warnings.is_empty() {
        json!({ "ID": id })
    } else {
        json!({ "ID": id, "Warnings": warnings })
    };
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m = state.manager()?;
    let version = query_version(q.get("version"))?;
    let rollback = match q.get("rollback").map(String::as_str) {
        None | Some("") | Some("none") => false,
        Some("previous") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid rollback value {other:?}: expected \"previous\""
            )));
        }
    };
    let decoded = decode_json::<ServiceSpec>(&body, "service spec")?;
    let warnings = ignored_key_warnings(&decoded.ignored, "Spec", "service update");
    let mut spec = decoded.value;
    // Build the new object from at least what the client read: a lagging manager first catches
    // up to that version, and a stale read is refused here rather than stored.
    m.raft
        .wait_applied(version, tokio::time::Instant::now() + std::time::Duration::from_secs(2))
        .await;
    let current = m.store.view(|s| resolve_service(s, &id))?;
    if current.version != Version::new(version) {
        return Err(ApiError::conflict("update out of sequence"));
    }
    if rollback {
        spec = current
            .previous_spec
            .clone()
            .ok_or_else(|| ApiError::bad_request(format!("service {} does not have a previous spec", current.id)))?;
    }
    if spec.name.is_empty() {
        spec.name = current.spec.name.clone();
    }
    normalize_service_spec(&mut spec);
    validate_service_spec(&spec)?;
    m.store.view(|s| resolve_references(s, &mut spec))?;
    if spec.name != current.spec.name {
        return Err(ApiError::bad_request(format!(
            "invalid service spec: Name: renaming services is not supported (service is named {:?})",
            current.spec.name
        )));
    }
    if spec.mode.describe() != current.spec.mode.describe() {
        return Err(ApiError::bad_request(format!(
            "invalid service spec: Mode: service mode change is not allowed ({} to {})",
            current.spec.mode.describe(),
            spec.mode.describe()
        )));
    }
    let mut next = current.clone();
    let now = Timestamp::now();
    // The version the client read; the store refuses the update if it is stale.
    next.version = Version::new(version);
    next.previous_spec = Some(current.spec.clone());
    next.endpoint = Endpoint::for_spec(&spec);
    next.spec = spec;
    next.service_status = None;
    next.scheduling_status = None;
    // A new update supersedes whatever update was going on; a rollback is one.
    // (Its start time is the leader's to set, by the leader's clock. Jobs have no rolling
    // update: an update or rollback of a job is a new iteration.)
    next.update_status = (rollback && !next.spec.mode.is_job()).then(|| UpdateStatus {
        state: UpdateStatus::ROLLBACK_STARTED.to_string(),
        started_at: None,
        completed_at: None,
        message: "manually requested rollback".to_string(),
        progress: None,
    });
    // Every update of a job runs it again, as a new iteration.
    if let Some(j) = next.job_status.as_mut() {
        j.job_iteration = Version::new(j.job_iteration.index + 1);
        j.last_execution = Some(now);
    }
    next.set_updated_at(now);
    m.committer
        .commit(vec![StoreAction::Update(next.into_object())])
        .await?;
    // The docker CLI expects `null`, not `[]`, when there is nothing to say.
    let warnings = (!warnings.is_empty()).then_some(warnings);
    Ok(Json(json!({ "Warnings": warnings })))
}

pub async fn remove(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let svc = m.store.view(|s| resolve_service(s, &id))?;
    m.committer
        .commit(vec![StoreAction::Remove {
            kind: Kind::Service,
            id: svc.id,
            version: None,
        }])
        .await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use swarm_model::Node;
    use swarm_model::NodeState;
    use swarm_model::ServiceMode;
    use swarm_model::Task;

    use super::*;
    use crate::store::testing::store_with;

    /// Found by the fault suite: a task whose node is Down counted as running in `service ls`
    /// beside its replacement. dockerd counts only tasks on nodes that are not Down.
    #[test]
    fn tasks_on_down_nodes_do_not_count_as_running() {
        let mut svc = Service {
            id: "svc".into(),
            ..Default::default()
        };
        svc.spec.mode = ServiceMode::replicated(1);
        let node = |id: &str, state: NodeState| {
            let mut n = Node {
                id: id.into(),
                ..Default::default()
            };
            n.status.state = state;
            n.into_object()
        };
        let task = |id: &str, node: &str| {
            let mut t = Task {
                id: id.into(),
                service_id: "svc".into(),
                slot: 1,
                node_id: node.into(),
                desired_state: TaskState::Running,
                ..Default::default()
            };
            t.status.state = TaskState::Running;
            t.into_object()
        };
        let store = store_with(vec![
            svc.clone().into_object(),
            node("up", NodeState::Ready),
            node("gone", NodeState::Down),
            task("old", "gone"),
            task("new", "up"),
        ]);
        let status = store.view(|s| task_counts(s, &svc, true).0);
        assert_eq!((status.running_tasks, status.desired_tasks), (1, 1));
    }
}
