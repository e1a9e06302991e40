//! The task reaper: deletes tasks that are meant to go away once they have stopped, and trims
//! each slot (each node, for global services) to the cluster's `TaskHistoryRetentionLimit`
//! tasks, the running one included, as Swarm counts. It keeps at least `MaxAttempts + 1` tasks
//! when the restart policy limits attempts (they are how attempts are counted), never deletes a
//! task that may still run, and never deletes the newest task of a slot that has no runnable
//! task (it stands for the slot: see [`super::replicated::occupied_slots`]). Jobs keep all
//! their tasks.

use std::collections::HashMap;

use swarm_model::Kind;
use swarm_model::NodeState;
use swarm_model::Task;
use swarm_model::TaskState;

use super::restart::policy;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// Swarm's default `TaskHistoryRetentionLimit`.
pub const DEFAULT_HISTORY: i64 = 5;

pub fn decide(s: &StoreState) -> Vec<Transaction> {
    let retention = s
        .cluster()
        .and_then(|c| c.spec.orchestration.task_history_retention_limit)
        .unwrap_or(DEFAULT_HISTORY);
    let mut txs = Vec::new();
    let remove = |t: &Task| {
        Transaction::one(StoreAction::Remove {
            kind: Kind::Task,
            id: t.id.clone(),
            version: None,
        })
    };
    let node_gone = |t: &Task| {
        s.nodes
            .get(&t.node_id)
            .is_none_or(|n| n.status.state == NodeState::Down)
    };
    let mut slots: HashMap<(&str, u64, &str), Vec<&Task>> = HashMap::new();
    for t in s.tasks.iter() {
        let never_placed = t.node_id.is_empty() || t.status.state < TaskState::Assigned;
        if t.desired_state == TaskState::Remove {
            let stopped = t.status.state > TaskState::Running;
            if stopped || never_placed || node_gone(t) {
                txs.push(remove(t));
            }
            continue;
        }
        // A removed node's global tasks have no slot to keep history for.
        let node_removed = !t.node_id.is_empty() && s.nodes.get(&t.node_id).is_none();
        if node_removed && t.slot == 0 && !t.is_runnable() {
            txs.push(remove(t));
            continue;
        }
        let node_key = if t.slot == 0 { t.node_id.as_str() } else { "" };
        slots
            .entry((t.service_id.as_str(), t.slot, node_key))
            .or_default()
            .push(t);
    }
    if retention < 0 {
        return txs;
    }
    for ((service_id, _, _), mut tasks) in slots {
        let Some(svc) = s.services.get(service_id) else {
            continue;
        };
        if svc.spec.mode.is_job() {
            continue;
        }
        let keep = (retention as u64).max(policy(svc).max_attempts.unwrap_or(0) + 1).max(1) as usize;
        if tasks.len() <= keep {
            continue;
        }
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let has_runnable = tasks.iter().any(|t| t.is_runnable());
        let newest = tasks.last().map(|t| t.id.clone());
        let mut left = tasks.len();
        for t in &tasks {
            if left <= keep {
                break;
            }
            // History: told to stop and stopped, or never going to report again (its node is
            // gone, or it never got placed).
            let never_placed = t.node_id.is_empty() || t.status.state < TaskState::Assigned;
            let finished = t.status.state > TaskState::Running || node_gone(t) || never_placed;
            let stands_for_slot = !has_runnable && newest.as_deref() == Some(t.id.as_str());
            if !t.is_runnable() && finished && !stands_for_slot {
                txs.push(remove(t));
                left -= 1;
            }
        }
    }
    txs
}

#[cfg(test)]
mod tests {
    use swarm_model::Object;
    use swarm_model::RestartPolicy;
    use swarm_model::Service;
    use swarm_model::StoreObject;
    use swarm_model::Timestamp;

    use super::*;
    use crate::store::testing::store_with;

    fn service(max_attempts: Option<u64>) -> Object {
        let mut s = Service {
            id: "svc".into(),
            ..Default::default()
        };
        s.spec.mode = swarm_model::ServiceMode::replicated(1);
        s.spec.task_template.restart_policy = Some(RestartPolicy {
            max_attempts,
            ..Default::default()
        });
        s.into_object()
    }

    fn node() -> Object {
        let mut n = swarm_model::Node {
            id: "n".into(),
            ..Default::default()
        };
        n.status.state = NodeState::Ready;
        n.into_object()
    }

    fn task(i: i128, state: TaskState, desired: TaskState) -> Object {
        let mut t = Task {
            id: format!("t{i}"),
            service_id: "svc".into(),
            slot: 1,
            node_id: "n".into(),
            desired_state: desired,
            created_at: Timestamp::from_unix_nanos(i),
            ..Default::default()
        };
        t.status.state = state;
        t.into_object()
    }

    fn removed(objects: Vec<Object>) -> Vec<String> {
        let store = store_with(objects);
        let mut ids: Vec<String> = store
            .view(decide)
            .iter()
            .flat_map(|t| &t.actions)
            .map(|a| match a {
                StoreAction::Remove { id, .. } => id.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_slot_keeps_five_tasks_with_the_running_one() {
        let mut objects = vec![service(None), node()];
        for i in 0..7 {
            objects.push(task(i, TaskState::Failed, TaskState::Shutdown));
        }
        objects.push(task(7, TaskState::Running, TaskState::Running));
        assert_eq!(removed(objects), vec!["t0", "t1", "t2"]);
    }

    #[test]
    fn restart_limits_keep_enough_history_to_count_attempts() {
        let mut objects = vec![service(Some(7)), node()];
        for i in 0..9 {
            objects.push(task(i, TaskState::Failed, TaskState::Shutdown));
        }
        assert_eq!(removed(objects), vec!["t0"]);
    }

    #[test]
    fn the_newest_task_of_a_dead_slot_stays_even_without_history() {
        let mut cluster = swarm_model::Cluster {
            id: "c".into(),
            ..Default::default()
        };
        cluster.spec.orchestration.task_history_retention_limit = Some(0);
        let mut objects = vec![cluster.into_object(), service(None), node()];
        for i in 0..3 {
            objects.push(task(i, TaskState::Failed, TaskState::Shutdown));
        }
        assert_eq!(removed(objects), vec!["t0", "t1"]);
    }

    #[test]
    fn removed_tasks_go_once_stopped() {
        let objects = vec![
            service(None),
            node(),
            task(1, TaskState::Running, TaskState::Remove),
            task(2, TaskState::Shutdown, TaskState::Remove),
        ];
        assert_eq!(removed(objects), vec!["t2"]);
    }
}
