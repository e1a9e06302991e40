//! Jobs: services whose tasks run to completion (desired state COMPLETE).
//!
//! - A replicated job runs `TotalCompletions` tasks in slots 1..=TotalCompletions, at most
//!   `MaxConcurrent` at a time. A slot is done once its task completes; a slot whose task failed
//!   and may not restart any more stays failed (Swarm would start it again on a later pass).
//! - A global job runs one task on every eligible node.
//!
//! Each update of a job starts a new iteration (`JobStatus.JobIteration`): tasks of older
//! iterations that still run are removed, and the new iteration starts from scratch. Failed
//! tasks are restarted by the restart supervisor; completed ones never are.

use std::collections::BTreeMap;
use std::collections::HashSet;

use swarm_model::Availability;
use swarm_model::NodeState;
use swarm_model::ReplicatedJob;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;
use swarm_model::Version;

use super::global;
use super::new_task;
use super::newest;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

fn iteration(svc: &Service) -> Version {
    svc.job_status.as_ref().map(|j| j.job_iteration).unwrap_or_default()
}

fn desired(id: &str, state: TaskState) -> Transaction {
    Transaction::one(StoreAction::TaskDesired {
        id: id.to_string(),
        desired: state,
    })
}

/// Tasks of older iterations that have not finished are removed; failed ones that waited for
/// a restart are shut down (they are history now).
fn retire_old<'a>(svc: &Service, tasks: &[&'a Task], txs: &mut Vec<Transaction>) -> Vec<&'a Task> {
    let current = iteration(svc);
    let mut out = Vec::new();
    for t in tasks {
        if t.job_iteration == Some(current) {
            out.push(*t);
        } else if t.status.state <= TaskState::Running && t.desired_state < TaskState::Remove {
            txs.push(desired(&t.id, TaskState::Remove));
        } else if t.status.state > TaskState::Complete && t.is_runnable() {
            txs.push(desired(&t.id, TaskState::Shutdown));
        }
    }
    out
}

/// What a replicated job's current iteration needs: new tasks in the lowest free slots.
pub fn reconcile_replicated(svc: &Service, job: &ReplicatedJob, tasks: &[&Task], now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let current = retire_old(svc, tasks, &mut txs);
    let total = job.total_completions.unwrap_or(1);
    let max_concurrent = job.max_concurrent.unwrap_or(1);
    let mut by_slot: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in &current {
        by_slot.entry(t.slot).or_default().push(t);
    }
    let mut running = 0u64;
    let mut taken = HashSet::new();
    for (slot, ts) in &by_slot {
        let complete = ts.iter().any(|t| t.status.state == TaskState::Complete);
        let active = ts
            .iter()
            .filter(|t| t.is_runnable() && t.status.state != TaskState::Complete)
            .count() as u64;
        // Out of restarts: the policy gave up on its newest task.
        let dead = newest(ts.iter().copied()).is_some_and(|t| t.restart_declined);
        running += active;
        if complete || active > 0 || dead {
            taken.insert(*slot);
        }
    }
    let free = (1..=total).filter(|s| !taken.contains(s));
    let room = max_concurrent.saturating_sub(running) as usize;
    for slot in free.take(room) {
        let task = new_task(svc, slot, "", TaskState::Complete, now);
        txs.push(Transaction::one(StoreAction::Create(task.into_object())));
    }
    txs
}

/// What a global job's current iteration needs: a task on each eligible node that has none.
fn reconcile_global(s: &StoreState, svc: &Service, tasks: &[&Task], now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let current = retire_old(svc, tasks, &mut txs);
    let covered: HashSet<&str> = current.iter().map(|t| t.node_id.as_str()).collect();
    for t in &current {
        let node = s.nodes.get(&t.node_id);
        let lost = node.is_none_or(|n| n.status.state == NodeState::Down || n.spec.availability == Availability::Drain);
        let unfinished = t.status.state <= TaskState::Running;
        // A task that failed where it may not run any more is not restarted there: it is done.
        let failed_where_ineligible =
            t.status.state > TaskState::Complete && !node.is_some_and(|n| global::eligible(svc, n));
        if t.is_runnable() && ((lost && unfinished) || failed_where_ineligible) {
            txs.push(desired(&t.id, TaskState::Shutdown));
        }
    }
    for node in s.nodes.iter() {
        let usable = node.status.state == NodeState::Ready && global::eligible(svc, node);
        if usable && !covered.contains(node.id.as_str()) {
            let task = new_task(svc, 0, &node.id, TaskState::Complete, now);
            txs.push(Transaction::one(StoreAction::Create(task.into_object())));
        }
    }
    txs
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    for svc in s.services.iter() {
        let tasks: Vec<&Task> = if svc.spec.mode.is_job() {
            s.tasks_by_service(&svc.id).collect()
        } else {
            continue;
        };
        if let Some(job) = &svc.spec.mode.replicated_job {
            txs.extend(reconcile_replicated(svc, job, &tasks, now));
        } else {
            txs.extend(reconcile_global(s, svc, &tasks, now));
        }
    }
    txs
}

#[cfg(test)]
mod tests {
    use swarm_model::JobStatus;
    use swarm_model::ServiceMode;

    use super::*;

    fn job(total: u64, concurrent: u64, iteration: u64) -> (Service, ReplicatedJob) {
        let j = ReplicatedJob {
            max_concurrent: Some(concurrent),
            total_completions: Some(total),
        };
        let mut s = Service {
            id: "job".into(),
            ..Default::default()
        };
        s.spec.mode = ServiceMode {
            replicated_job: Some(j.clone()),
            ..Default::default()
        };
        s.job_status = Some(JobStatus {
            job_iteration: Version::new(iteration),
            last_execution: None,
        });
        (s, j)
    }

    fn task(slot: u64, state: TaskState, desired: TaskState, iteration: u64) -> Task {
        let mut t = Task {
            id: format!("t{slot}-{state:?}-{iteration}"),
            service_id: "job".into(),
            slot,
            desired_state: desired,
            job_iteration: Some(Version::new(iteration)),
            ..Default::default()
        };
        t.status.state = state;
        t
    }

    fn created(txs: &[Transaction]) -> Vec<u64> {
        txs.iter()
            .flat_map(|t| &t.actions)
            .filter_map(|a| match a {
                StoreAction::Create(swarm_model::Object::Task(t)) => {
                    assert_eq!(t.desired_state, TaskState::Complete);
                    Some(t.slot)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_fresh_job_starts_max_concurrent_tasks() {
        let (svc, j) = job(5, 2, 0);
        assert_eq!(
            created(&reconcile_replicated(&svc, &j, &[], Timestamp::now())),
            vec![1, 2]
        );
    }

    #[test]
    fn completed_slots_are_done_and_running_ones_count_against_the_limit() {
        let (svc, j) = job(5, 2, 0);
        let tasks = [
            task(1, TaskState::Complete, TaskState::Complete, 0),
            task(2, TaskState::Running, TaskState::Complete, 0),
        ];
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(
            created(&reconcile_replicated(&svc, &j, &refs, Timestamp::now())),
            vec![3]
        );
    }

    #[test]
    fn a_finished_job_creates_nothing() {
        let (svc, j) = job(2, 2, 0);
        let tasks = [
            task(1, TaskState::Complete, TaskState::Complete, 0),
            task(2, TaskState::Complete, TaskState::Complete, 0),
        ];
        let refs: Vec<&Task> = tasks.iter().collect();
        assert!(reconcile_replicated(&svc, &j, &refs, Timestamp::now()).is_empty());
    }

    #[test]
    fn a_slot_out_of_restarts_is_not_started_again() {
        let (svc, j) = job(2, 2, 0);
        let mut declined = task(1, TaskState::Failed, TaskState::Shutdown, 0);
        declined.restart_declined = true;
        let tasks = [declined, task(2, TaskState::Complete, TaskState::Complete, 0)];
        let refs: Vec<&Task> = tasks.iter().collect();
        assert!(reconcile_replicated(&svc, &j, &refs, Timestamp::now()).is_empty());
    }

    #[test]
    fn a_global_job_runs_once_on_every_ready_eligible_node() {
        use swarm_model::Availability;
        use swarm_model::Node;
        use swarm_model::NodeState;
        use swarm_model::Object;

        use crate::store::testing::store_with;

        let mut svc = Service {
            id: "job".into(),
            ..Default::default()
        };
        svc.spec.mode = ServiceMode {
            global_job: Some(Default::default()),
            ..Default::default()
        };
        svc.job_status = Some(JobStatus::default());
        let node = |id: &str, state: NodeState, availability: Availability| {
            let mut n = Node {
                id: id.into(),
                ..Default::default()
            };
            n.status.state = state;
            n.spec.availability = availability;
            n.into_object()
        };
        let mut done = task(0, TaskState::Complete, TaskState::Complete, 0);
        done.node_id = "done".into();
        let mut running_on_down = task(0, TaskState::Running, TaskState::Complete, 0);
        running_on_down.node_id = "down".into();
        let store = store_with(vec![
            svc.into_object(),
            node("fresh", NodeState::Ready, Availability::Active),
            node("done", NodeState::Ready, Availability::Active),
            node("down", NodeState::Down, Availability::Active),
            node("paused", NodeState::Ready, Availability::Pause),
            done.into_object(),
            running_on_down.clone().into_object(),
        ]);
        let txs = store.view(|s| decide(s, Timestamp::now()));
        let mut created = Vec::new();
        let mut shut = Vec::new();
        for a in txs.iter().flat_map(|t| &t.actions) {
            match a {
                StoreAction::Create(Object::Task(t)) => {
                    assert_eq!(t.desired_state, TaskState::Complete);
                    assert_eq!(t.job_iteration, Some(Version::new(0)));
                    created.push(t.node_id.clone());
                }
                StoreAction::TaskDesired { id, desired } if *desired == TaskState::Shutdown => shut.push(id.clone()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(created, vec!["fresh"], "one task per ready, active node without one");
        assert_eq!(
            shut,
            vec![running_on_down.id],
            "the down node's unfinished task is shut down"
        );
    }

    #[test]
    fn a_new_iteration_removes_unfinished_old_tasks_and_starts_over() {
        let (svc, j) = job(3, 3, 1);
        let tasks = [
            task(1, TaskState::Running, TaskState::Complete, 0),
            task(2, TaskState::Complete, TaskState::Complete, 0),
        ];
        let refs: Vec<&Task> = tasks.iter().collect();
        let txs = reconcile_replicated(&svc, &j, &refs, Timestamp::now());
        assert_eq!(created(&txs), vec![1, 2, 3]);
        let removed: Vec<&StoreAction> = txs
            .iter()
            .flat_map(|t| &t.actions)
            .filter(|a| {
                matches!(
                    a,
                    StoreAction::TaskDesired {
                        desired: TaskState::Remove,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(removed.len(), 1);
    }
}
