//! The restart supervisor: replaces tasks that ended or whose node went down, as the service's
//! restart policy allows, after its delay.
//!
//! A replacement is created in the same slot together with shutting the old task down, in one
//! transaction, so the slot is never seen empty. It starts with desired state READY and is
//! promoted to RUNNING once `created_at + delay` has passed; the due time is derived from the
//! store, so a new leader resumes pending restarts.

use super::new_task;
use crate::manager::api::validate::DEFAULT_RESTART_DELAY;
use crate::manager::store::StoreAction;
use crate::manager::store::StoreState;
use crate::manager::store::Transaction;
use crate::model::Availability;
use crate::model::NodeState;
use crate::model::RestartPolicy;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;
use crate::model::TaskState;
use crate::model::Timestamp;

fn policy(svc: &Service) -> RestartPolicy {
    svc.spec.task_template.restart_policy.clone().unwrap_or_default()
}

fn delay_ns(p: &RestartPolicy) -> i64 {
    p.delay.unwrap_or(DEFAULT_RESTART_DELAY).max(0)
}

/// Whether the policy restarts a task that ended in `state` (or whose node is down).
pub fn should_restart(p: &RestartPolicy, state: TaskState, node_down: bool) -> bool {
    match p.condition.as_str() {
        "none" => false,
        "on-failure" => node_down || state != TaskState::Complete,
        _ => true,
    }
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let now_ns = now.unix_nanos().unwrap_or(0);
    for t in s.tasks.iter() {
        let Some(svc) = s.services.get(&t.service_id) else {
            continue;
        };
        if svc.spec.mode.replicated_job.is_some() || svc.spec.mode.global_job.is_some() {
            continue; // jobs come with the orchestration issue
        }
        let p = policy(svc);
        if t.desired_state == TaskState::Ready {
            let due = t.created_at.unix_nanos().unwrap_or(0) + i128::from(delay_ns(&p));
            if now_ns >= due {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: t.id.clone(),
                    desired: TaskState::Running,
                }));
            }
            continue;
        }
        if t.desired_state != TaskState::Running {
            continue;
        }
        let node_down = !t.node_id.is_empty()
            && t.status.state <= TaskState::Running
            && s.nodes
                .get(&t.node_id)
                .is_none_or(|n| n.status.state == NodeState::Down || n.spec.availability == Availability::Drain);
        let ended = t.status.state > TaskState::Running;
        if !(ended || node_down) {
            continue;
        }
        if !should_restart(&p, t.status.state, node_down) {
            continue;
        }
        // A global task belongs to its node: it is only replaced there, once the node is back.
        if t.slot == 0 && node_down {
            continue;
        }
        txs.push(replace(svc, t, &p, node_down, now));
    }
    txs
}

fn replace(svc: &Service, old: &Task, p: &RestartPolicy, node_down: bool, now: Timestamp) -> Transaction {
    // Tasks of a failed node are replaced at once; others wait for the policy's delay.
    let immediate = node_down || delay_ns(p) == 0;
    let desired = if immediate {
        TaskState::Running
    } else {
        TaskState::Ready
    };
    let node = if old.slot == 0 { old.node_id.as_str() } else { "" };
    let new = new_task(svc, old.slot, node, desired, now);
    // The old task is updated at the version this decision saw: if anything changed it since
    // (a status, a scale-down, an earlier replacement whose commit outcome was unknown), the
    // whole transaction is refused and decided again, so a slot never gets two replacements.
    let mut shut = old.clone();
    shut.desired_state = TaskState::Shutdown;
    Transaction {
        actions: vec![
            StoreAction::Update(shut.into_object()),
            StoreAction::Create(new.into_object()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_swarm() {
        let p = |c: &str| RestartPolicy {
            condition: c.into(),
            ..Default::default()
        };
        assert!(!should_restart(&p("none"), TaskState::Failed, false));
        assert!(!should_restart(&p("on-failure"), TaskState::Complete, false));
        assert!(should_restart(&p("on-failure"), TaskState::Failed, false));
        assert!(should_restart(&p("on-failure"), TaskState::Rejected, false));
        assert!(should_restart(&p("on-failure"), TaskState::Running, true));
        assert!(should_restart(&p(""), TaskState::Complete, false));
        assert!(should_restart(&p("any"), TaskState::Complete, false));
    }
}
