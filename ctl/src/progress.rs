//! Waiting for a service to converge after `service update` or `rollback`, as the docker CLI
//! does: poll the service and its up-to-date tasks, print the progress as it changes, and end
//! when every slot runs the new spec and the update is completed. A paused update, or one the
//! managers rolled back, ends the wait with an error naming the reason.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::time::Duration;

use swarm_model::Node;
use swarm_model::NodeState;
use swarm_model::Service;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::UpdateStatus;

use super::CtlError;
use crate::client::ApiClient;
use crate::client::encode_query;

const POLL: Duration = Duration::from_millis(200);

/// How far the service is: slots (or nodes) running an up-to-date task, out of how many.
fn count(svc: &Service, tasks: &[Task], nodes: &[Node]) -> (usize, usize) {
    let up: HashSet<&str> = nodes
        .iter()
        .filter(|n| n.status.state != NodeState::Down)
        .map(|n| n.id.as_str())
        .collect();
    let live = |t: &&Task| t.is_runnable() && t.status.state == TaskState::Running && up.contains(t.node_id.as_str());
    if let Some(r) = &svc.spec.mode.replicated {
        let slots: HashSet<u64> = tasks.iter().filter(live).map(|t| t.slot).collect();
        (slots.len(), r.replicas.unwrap_or(1) as usize)
    } else {
        let wanted: HashSet<&str> = tasks
            .iter()
            .filter(|t| t.is_runnable() && up.contains(t.node_id.as_str()))
            .map(|t| t.node_id.as_str())
            .collect();
        let running: HashSet<&str> = tasks.iter().filter(live).map(|t| t.node_id.as_str()).collect();
        (running.len(), wanted.len())
    }
}

/// Per slot (or node), the newest up-to-date task's state, or its error.
fn slot_states(tasks: &[Task]) -> BTreeMap<String, String> {
    let mut newest: BTreeMap<String, &Task> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.is_runnable()) {
        let key = if t.slot != 0 {
            format!("{:>3}", t.slot)
        } else {
            t.node_id.chars().take(12).collect()
        };
        let e = newest.entry(key).or_insert(t);
        if t.created_at > e.created_at {
            *e = t;
        }
    }
    newest
        .into_iter()
        .map(|(k, t)| {
            let state = serde_json::to_value(t.status.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let shown = if t.status.err.is_empty() {
                state
            } else {
                t.status.err.clone()
            };
            (k, shown)
        })
        .collect()
}

/// Waits until `reference` has converged on its current spec. `Err` if the update paused, or
/// (unless `rollback` was asked for) the managers rolled it back.
pub async fn wait_converged(client: &ApiClient, reference: &str, rollback: bool) -> Result<(), CtlError> {
    let first: Service = client
        .get(&format!("/services/{}?insertDefaults=false", encode_query(reference)))
        .await?;
    if first.spec.mode.is_job() {
        // A job's update is a new run: nothing to converge on (`service ps` shows it).
        return Ok(());
    }
    let mut last_line = String::new();
    let mut last_states: BTreeMap<String, String> = BTreeMap::new();
    let mut announced = false;
    loop {
        let svc: Service = client
            .get(&format!("/services/{}?insertDefaults=false", encode_query(reference)))
            .await?;
        let filters = format!(r#"{{"_up-to-date":{{"true":true}},"service":{{"{}":true}}}}"#, svc.id);
        let tasks: Vec<Task> = client
            .get(&format!("/tasks?filters={}", encode_query(&filters)))
            .await?;
        let all_filters = format!(r#"{{"service":{{"{}":true}}}}"#, svc.id);
        let all: Vec<Task> = client
            .get(&format!("/tasks?filters={}", encode_query(&all_filters)))
            .await?;
        let nodes: Vec<Node> = client.get("/nodes").await?;
        // Old tasks still wanted: the update has not gone through yet (right after the request,
        // before the managers acted on it, nothing is up to date).
        let up_to_date: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        let stale = all
            .iter()
            .any(|t| t.is_runnable() && t.status.state <= TaskState::Running && !up_to_date.contains(t.id.as_str()));
        let status = svc.update_status.clone().unwrap_or_default();
        let state = status.state.as_str();
        if state == UpdateStatus::PAUSED || state == UpdateStatus::ROLLBACK_PAUSED {
            return Err(CtlError::Usage(format!("service update paused: {}", status.message)));
        }
        if state == UpdateStatus::ROLLBACK_STARTED && !announced {
            println!("rollback: {}", status.message);
            announced = true;
        }
        let (running, desired) = count(&svc, &tasks, &nodes);
        let line = format!("overall progress: {running} out of {desired} tasks");
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        let states = slot_states(&tasks);
        for (slot, st) in &states {
            if last_states.get(slot) != Some(st) {
                println!("{slot}/{desired}: {st}");
            }
        }
        last_states = states;
        let settled = matches!(state, "" | UpdateStatus::COMPLETED | UpdateStatus::ROLLBACK_COMPLETED);
        if running == desired && settled && !stale {
            println!("verify: Service {} converged", svc.spec.name);
            if state == UpdateStatus::ROLLBACK_COMPLETED && !rollback {
                return Err(CtlError::Usage(format!("service rolled back: {}", status.message)));
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
