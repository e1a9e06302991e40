//! The restart supervisor: when a task ends, or its node goes down or is drained, the old task
//! is told to shut down and, if the service's restart policy allows, a replacement is created in
//! the same slot (for a global task: on the same node) in the same transaction, so the slot is
//! never seen empty.
//!
//! Everything it needs lives in the store, so a new leader carries on where the old one
//! stopped (Swarm keeps both in the leader's memory):
//! - restart attempts are counted from the slot's tasks that are replacements
//!   ([`Task::restart_of`]) of the same task template (and job iteration);
//! - a task the policy does not replace is marked ([`Task::restart_declined`]), so the
//!   orchestrators leave its slot alone;
//! - a pending delay is the replacement's `created_at + delay`: it is held with desired READY
//!   and promoted once the delay has passed and the task it replaces has stopped (at most a
//!   minute after the restart). A rolling update's stop-first replacement is held the same way,
//!   without the delay.

use swarm_model::Availability;
use swarm_model::Node;
use swarm_model::NodeState;
use swarm_model::RestartPolicy;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;
use swarm_model::defaults::DEFAULT_RESTART_DELAY;

use super::global;
use super::new_task;
use super::run_state;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// How long a replacement waits at most for the task it replaces to stop.
const MAX_WAIT_FOR_OLD_NS: i128 = 60_000_000_000;

pub fn policy(svc: &Service) -> RestartPolicy {
    svc.spec.task_template.restart_policy.clone().unwrap_or_default()
}

fn delay_ns(p: &RestartPolicy) -> i128 {
    i128::from(p.delay.unwrap_or(DEFAULT_RESTART_DELAY).max(0))
}

fn nanos(t: &Timestamp) -> i128 {
    t.unix_nanos().unwrap_or(0)
}

/// Whether the policy's condition restarts a task that ended in `state` (or whose node was
/// lost). For jobs, `any` means on failure: a completed job task is done.
pub fn should_restart(p: &RestartPolicy, state: TaskState, node_lost: bool, job: bool) -> bool {
    let failed = node_lost || state != TaskState::Complete;
    match p.condition.as_str() {
        "none" => false,
        "on-failure" => failed,
        _ => !job || failed,
    }
}

/// Whether the slot of `t` (for a global task: its service on its node) has restart attempts
/// left. Replacements built from the same task template (and job iteration) count; with a
/// window, only those created in the window up to `now`.
pub fn attempts_left(s: &StoreState, t: &Task, p: &RestartPolicy, now: Timestamp) -> bool {
    let max = p.max_attempts.unwrap_or(0);
    if max == 0 {
        return true;
    }
    let same_run = |h: &&Task| !h.restart_of.is_empty() && h.spec == t.spec && h.job_iteration == t.job_iteration;
    let window = i128::from(p.window.unwrap_or(0).max(0));
    let now = nanos(&now);
    let in_window = |h: &&Task| window == 0 || nanos(&h.created_at) > now - window;
    let count = if t.slot != 0 {
        s.tasks_by_slot(&t.service_id, t.slot)
            .filter(same_run)
            .filter(in_window)
            .count()
    } else {
        s.tasks_by_service(&t.service_id)
            .filter(|h| h.node_id == t.node_id)
            .filter(same_run)
            .filter(in_window)
            .count()
    };
    (count as u64) < max
}

/// Whether a time stamped by some manager lies ahead of this manager's clock: one of the two
/// clocks jumped or drifts. Waits measured from such a time count as over.
pub(crate) fn is_future(stamped_ns: i128, now_ns: i128) -> bool {
    stamped_ns > now_ns
}

/// The node is gone for this task: removed, down or drained.
fn node_lost(node: Option<&Node>) -> bool {
    node.is_none_or(|n| n.status.state == NodeState::Down || n.spec.availability == Availability::Drain)
}

/// Whether a replacement held READY may start now: a restart after its delay, a rolling
/// update's replacement at once; both once the older tasks of their slot (of their node, for a
/// global task) have stopped, or a minute after they were created. In a start-first update the
/// task being replaced keeps running meanwhile.
fn may_start(s: &StoreState, svc: &Service, t: &Task, p: &RestartPolicy, now_ns: i128) -> bool {
    let created = nanos(&t.created_at);
    let delay = if t.restart_of.is_empty() { 0 } else { delay_ns(p) };
    // A creation time ahead of this manager's clock was stamped by a manager whose clock ran
    // ahead. How long ago it really was is unknown; the delay counts as served rather than
    // holding the task until this clock catches up, which may take hours.
    if !is_future(created, now_ns) && now_ns < created + delay {
        return false;
    }
    let rollback = svc
        .update_status
        .as_ref()
        .is_some_and(|u| u.state == swarm_model::UpdateStatus::ROLLBACK_STARTED);
    let overlap_allowed = !t.update_of.is_empty() && super::update::settings(svc, rollback).start_first;
    let same_place: Vec<&Task> = if t.slot != 0 {
        s.tasks_by_slot(&t.service_id, t.slot).collect()
    } else {
        s.tasks_by_service(&t.service_id)
            .filter(|o| o.node_id == t.node_id)
            .collect()
    };
    let blocked = same_place.iter().any(|o| {
        o.id != t.id
            && o.created_at <= t.created_at
            && !(overlap_allowed && o.id == t.update_of)
            && o.status.state <= TaskState::Running
            && !o.node_id.is_empty()
            && !node_lost(s.nodes.get(&o.node_id))
            && o.status.state >= TaskState::Assigned
    });
    !blocked || now_ns >= created + MAX_WAIT_FOR_OLD_NS
}

/// How long until the first restart held READY has served its delay, so that the controller
/// wakes then instead of on its next tick. None when no restart is waiting.
pub fn next_due(s: &StoreState, now: Timestamp) -> Option<std::time::Duration> {
    let now_ns = nanos(&now);
    s.tasks
        .iter()
        .filter(|t| t.desired_state == TaskState::Ready && !t.restart_of.is_empty())
        .filter_map(|t| {
            let svc = s.services.get(&t.service_id)?;
            let due = nanos(&t.created_at) + delay_ns(&policy(svc));
            (due > now_ns).then(|| std::time::Duration::from_nanos(u64::try_from(due - now_ns).unwrap_or(u64::MAX)))
        })
        .min()
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let now_ns = nanos(&now);
    for t in s.tasks.iter() {
        let Some(svc) = s.services.get(&t.service_id) else {
            continue;
        };
        let p = policy(svc);
        let job = svc.spec.mode.is_job();
        let wanted = run_state(svc);
        if t.desired_state == TaskState::Ready {
            if may_start(s, svc, t, &p, now_ns) {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: t.id.clone(),
                    desired: wanted,
                }));
            }
            continue;
        }
        if t.desired_state != wanted || (job && t.status.state == TaskState::Complete) {
            continue;
        }
        // A task of an older job iteration is the jobs orchestrator's to retire, not to restart.
        if job && t.job_iteration != Some(svc.job_status.as_ref().map(|j| j.job_iteration).unwrap_or_default()) {
            continue;
        }
        let node = s.nodes.get(&t.node_id);
        let lost = !t.node_id.is_empty() && t.status.state <= TaskState::Running && node_lost(node);
        let ended = t.status.state > TaskState::Running;
        if !(ended || lost) {
            continue;
        }
        // A global task belongs to its node: it is restarted there while the node may run it;
        // otherwise the global orchestrator shuts it down.
        if t.slot == 0 && (lost || !node.is_some_and(|n| global::eligible(svc, n))) {
            continue;
        }
        if should_restart(&p, t.status.state, lost, job) && attempts_left(s, t, &p, now) {
            let drained = node.is_some_and(|n| n.spec.availability == Availability::Drain);
            txs.push(replace(svc, t, &p, lost, drained, now));
        } else {
            // Versioned like a replacement: a decision on a stale view is refused and made again.
            let mut declined = t.clone();
            declined.desired_state = TaskState::Shutdown;
            declined.restart_declined = true;
            txs.push(Transaction::one(StoreAction::Update(declined.into_object())));
        }
    }
    txs
}

fn replace(svc: &Service, old: &Task, p: &RestartPolicy, lost: bool, drained: bool, now: Timestamp) -> Transaction {
    // Tasks of a lost node are replaced at once (a drain asks for no delay); others wait for
    // the policy's delay.
    let immediate = lost || drained || delay_ns(p) == 0;
    let desired = if immediate { run_state(svc) } else { TaskState::Ready };
    let node = if old.slot == 0 { old.node_id.as_str() } else { "" };
    let mut new = new_task(svc, old.slot, node, desired, now);
    new.restart_of = old.id.clone();
    // A failed replacement of a rolling update is restarted as part of that update: it
    // replaces the same old task (which, start-first, may still run).
    new.update_of = old.update_of.clone();
    if old.job_iteration.is_some() {
        new.job_iteration = old.job_iteration;
    }
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
mod tests;
