//! The update supervisor: rolls a service's tasks over to its current task template, slot by
//! slot (node by node for a global service), as Swarm's updater does:
//! - only slots whose task differs from the template are replaced ([`is_dirty`]); a replicas
//!   or label change restarts nothing;
//! - `Parallelism` slots at a time (0: all), each followed by `Delay` before its lane takes the
//!   next slot; `stop-first` shuts the old task down as the new one is created (the new one
//!   starts once the old one stopped), `start-first` shuts it down once the new one runs;
//! - a new task that ends before it runs, or within `Monitor` after it started, is a failure;
//!   once failures ÷ slots exceeds `MaxFailureRatio`, `FailureAction` pauses, continues or
//!   rolls back (a failing rollback pauses);
//! - after the last slot it keeps watching for `Monitor`, then the update is completed.
//!
//! Beyond Swarm, nothing lives in the leader's memory: which slots are done is read from the
//! tasks, and the slot count and the failures are kept in `UpdateStatus.Progress`. A new leader
//! carries on the same update without redoing slots or forgetting failures.

use std::collections::BTreeMap;

use swarm_model::Endpoint;
use swarm_model::Node;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;
use swarm_model::UpdateConfig;
use swarm_model::UpdateProgress;
use swarm_model::UpdateStatus;
use swarm_model::defaults::DEFAULT_MONITOR;

use super::global;
use super::global::constraints_hold;
use super::new_task;
use super::run_state;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

const SEC: i128 = 1_000_000_000;

/// The update settings in force, with Swarm's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// 0: every slot at once.
    pub parallelism: u64,
    pub delay_ns: i128,
    /// `pause`, `continue` or `rollback`.
    pub failure_action: String,
    pub monitor_ns: i128,
    pub max_failure_ratio: f64,
    pub start_first: bool,
}

/// The update config (or, during a rollback, the rollback config) with defaults.
pub fn settings(svc: &Service, rollback: bool) -> Settings {
    let config = if rollback {
        svc.spec.rollback_config.as_ref()
    } else {
        svc.spec.update_config.as_ref()
    };
    let default = UpdateConfig {
        parallelism: 1,
        ..Default::default()
    };
    let c = config.unwrap_or(&default);
    Settings {
        parallelism: c.parallelism,
        delay_ns: i128::from(c.delay.max(0)),
        failure_action: if c.failure_action.is_empty() {
            "pause".to_string()
        } else {
            c.failure_action.clone()
        },
        monitor_ns: i128::from(if c.monitor > 0 { c.monitor } else { DEFAULT_MONITOR }),
        max_failure_ratio: c.max_failure_ratio,
        start_first: c.order == "start-first",
    }
}

/// Whether `t` must be replaced to run the service's current template, its host-mode ports
/// (which the task's node publishes) or its choice of PROXY v2 headers (which the task's server
/// must expect). A change of placement alone leaves a task whose node still satisfies the new
/// constraints alone.
pub fn is_dirty(svc: &Service, t: &Task, node: Option<&Node>) -> bool {
    if t.host_ports != svc.spec.host_mode_ports() || t.wants_proxy_protocol() != svc.spec.wants_proxy_protocol() {
        return true;
    }
    let template = &svc.spec.task_template;
    if t.spec == *template {
        return false;
    }
    let mut placement_only = template.clone();
    placement_only.placement = t.spec.placement.clone();
    !(placement_only == t.spec && node.is_some_and(|n| constraints_hold(svc, n)))
}

fn nanos(t: &Timestamp) -> i128 {
    t.unix_nanos().unwrap_or(0)
}

/// Where one slot (or node) of the service stands in the update.
#[derive(Debug)]
enum SlotState<'a> {
    /// Runs the current template: nothing to do.
    Done,
    /// Still runs an old task and has no replacement yet.
    Pending { old: Vec<&'a Task> },
    /// Its replacement was created and does not run yet.
    InFlight,
    /// start-first: the replacement runs, the old tasks still have to go.
    Overlap { old: Vec<&'a Task> },
}

fn status_patch(svc: &Service, status: UpdateStatus) -> Transaction {
    Transaction::one(StoreAction::ServiceUpdateStatus {
        id: svc.id.clone(),
        spec_version: svc.spec_version,
        status: Some(status),
    })
}

fn failure_message(rollback: bool, action: &str, task_id: &str) -> (&'static str, String) {
    match (rollback, action) {
        (false, "rollback") => (
            UpdateStatus::ROLLBACK_STARTED,
            format!("update rolled back due to failure or early termination of task {task_id}"),
        ),
        (true, _) => (
            UpdateStatus::ROLLBACK_PAUSED,
            format!("rollback paused due to failure or early termination of task {task_id}"),
        ),
        _ => (
            UpdateStatus::PAUSED,
            format!("update paused due to failure or early termination of task {task_id}"),
        ),
    }
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    for svc in s.services.iter() {
        if svc.spec.mode.is_job() {
            continue; // a job's update is a new iteration, not a rolling update
        }
        txs.extend(reconcile(s, svc, now));
    }
    txs
}

/// The update states after which nothing more is replaced until the spec changes again.
const FINISHED: [&str; 4] = [
    UpdateStatus::PAUSED,
    UpdateStatus::ROLLBACK_PAUSED,
    UpdateStatus::COMPLETED,
    UpdateStatus::ROLLBACK_COMPLETED,
];

/// The next steps of the update of `svc`, if one is going on or due.
pub fn reconcile(s: &StoreState, svc: &Service, now: Timestamp) -> Vec<Transaction> {
    let state = svc.update_status.as_ref().map(|u| u.state.as_str());
    let rollback = state == Some(UpdateStatus::ROLLBACK_STARTED);
    let cfg = settings(svc, rollback);
    let now_ns = nanos(&now);
    let started_ns = svc
        .update_status
        .as_ref()
        .and_then(|u| u.started_at.as_ref())
        .map(nanos)
        .unwrap_or(now_ns);
    // No update going on and every task built from the current spec: nothing to do. This is
    // the common case, and checking it by spec version spares comparing every task's spec.
    let settled = state.is_none_or(|st| FINISHED.contains(&st));
    if settled
        && svc.spec_version.is_some()
        && s.tasks_by_service(&svc.id)
            .all(|t| !t.is_runnable() || t.spec_version == svc.spec_version)
    {
        return Vec::new();
    }
    let template = &svc.spec.task_template;
    let tasks: Vec<&Task> = s.tasks_by_service(&svc.id).collect();
    // This update's replacements: the current template, created for the update since it began.
    let ours = |t: &Task| !t.update_of.is_empty() && t.spec == *template && nanos(&t.created_at) >= started_ns;

    let mut slots: BTreeMap<(u64, &str), Vec<&Task>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.is_runnable()) {
        let key = if t.slot != 0 {
            (t.slot, "")
        } else {
            (0, t.node_id.as_str())
        };
        slots.entry(key).or_default().push(t);
    }
    let states: BTreeMap<(u64, &str), SlotState> = slots
        .iter()
        .filter(|(key, _)| {
            // A global service is only updated on nodes that may get a new task; the others
            // keep what they run (a paused node) or lose it to the global orchestrator.
            key.0 != 0 || s.nodes.get(key.1).is_some_and(|n| global::eligible(svc, n))
        })
        .map(|(key, ts)| {
            let (old, fresh): (Vec<&Task>, Vec<&Task>) =
                ts.iter().partition(|t| is_dirty(svc, t, s.nodes.get(&t.node_id)));
            let fresh_runs = fresh.iter().any(|t| t.status.state == TaskState::Running);
            // A replacement made since the update began (by it, or a restart of one) that
            // does not run yet keeps the slot in flight.
            let fresh_new = fresh.iter().any(|t| nanos(&t.created_at) >= started_ns);
            let st = match (old.is_empty(), fresh.is_empty()) {
                (true, _) if fresh_new && !fresh_runs => SlotState::InFlight,
                (true, _) => SlotState::Done,
                (false, true) => SlotState::Pending { old },
                (false, false) if fresh_runs => SlotState::Overlap { old },
                (false, false) => SlotState::InFlight,
            };
            (*key, st)
        })
        .collect();

    // start-first: a replacement runs, so the old tasks go, also when the update has paused
    // or ended meanwhile (the slot must not keep two tasks).
    let mut txs = Vec::new();
    for st in states.values() {
        if let SlotState::Overlap { old } = st {
            for t in old {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: t.id.clone(),
                    desired: TaskState::Shutdown,
                }));
            }
        }
    }
    if state.is_some_and(|st| FINISHED.contains(&st)) {
        return txs;
    }
    let pending: Vec<(&(u64, &str), &Vec<&Task>)> = states
        .iter()
        .filter_map(|(k, st)| match st {
            SlotState::Pending { old } => Some((k, old)),
            _ => None,
        })
        .collect();
    let in_flight = states
        .values()
        .filter(|st| matches!(st, SlotState::InFlight | SlotState::Overlap { .. }))
        .count();

    // Starting: record the update and how many slots it has to go through.
    let Some(status) = svc.update_status.clone() else {
        if pending.is_empty() && in_flight == 0 {
            return txs;
        }
        txs.push(status_patch(
            svc,
            UpdateStatus {
                state: UpdateStatus::UPDATING.to_string(),
                started_at: Some(now),
                completed_at: None,
                message: "update in progress".to_string(),
                progress: Some(UpdateProgress {
                    slots: (pending.len() + in_flight) as u64,
                    failed_tasks: Vec::new(),
                }),
            },
        ));
        return txs;
    };
    let Some(progress) = status.progress.clone() else {
        // A rollback (manual or automatic) counts its own slots.
        let mut next = status.clone();
        next.progress = Some(UpdateProgress {
            slots: (pending.len() + in_flight).max(1) as u64,
            failed_tasks: Vec::new(),
        });
        if next.started_at.is_none() {
            next.started_at = Some(now);
        }
        txs.push(status_patch(svc, next));
        return txs;
    };

    // Failures of this update's tasks: before they ran, or within the monitor period.
    if cfg.failure_action != "continue" {
        let mut failed: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| ours(t))
            .filter(|t| {
                matches!(
                    t.status.state,
                    TaskState::Complete | TaskState::Failed | TaskState::Rejected
                )
            })
            .filter(|t| {
                t.running_since
                    .as_ref()
                    .is_none_or(|r| nanos(&t.status.timestamp) - nanos(r) <= cfg.monitor_ns)
            })
            .filter(|t| !progress.failed_tasks.contains(&t.id))
            .collect();
        if !failed.is_empty() {
            failed.sort_by(|a, b| (a.status.timestamp, &a.id).cmp(&(b.status.timestamp, &b.id)));
            let mut all = progress.failed_tasks.clone();
            for t in failed {
                all.push(t.id.clone());
                let ratio = all.len() as f64 / progress.slots.max(1) as f64;
                if ratio > cfg.max_failure_ratio {
                    txs.push(act_on_failure(svc, &status, &cfg, rollback, &t.id, all, now));
                    return txs;
                }
            }
            let mut next = status.clone();
            next.progress = Some(UpdateProgress {
                slots: progress.slots,
                failed_tasks: all,
            });
            txs.push(status_patch(svc, next));
            return txs;
        }
    }

    // Every slot is done: watch for a monitor period after the last one came up, then finish.
    if pending.is_empty() && in_flight == 0 {
        // The last thing that happened to a task of the new template since the update began:
        // one coming up, or one of the update's own ending.
        let last_up = tasks
            .iter()
            .filter(|t| t.spec == *template && nanos(&t.created_at) >= started_ns)
            .filter_map(|t| {
                let up = t.running_since.as_ref().map(nanos);
                let ended = (ours(t) && t.status.state > TaskState::Running).then(|| nanos(&t.status.timestamp));
                up.max(ended)
            })
            .max()
            .unwrap_or(started_ns);
        let watch = if cfg.delay_ns >= cfg.monitor_ns {
            cfg.delay_ns + SEC
        } else {
            cfg.monitor_ns
        };
        // A start stamped ahead of this clock: see `restart::is_future`.
        if super::restart::is_future(last_up, now_ns) || now_ns >= last_up + watch {
            let (state, message) = if rollback {
                let why = if status.message.starts_with("update rolled back") {
                    format!("rollback completed ({})", status.message)
                } else {
                    "rollback completed".to_string()
                };
                (UpdateStatus::ROLLBACK_COMPLETED, why)
            } else {
                (UpdateStatus::COMPLETED, "update completed".to_string())
            };
            let mut next = status.clone();
            next.state = state.to_string();
            next.message = message;
            next.completed_at = Some(now);
            txs.push(status_patch(svc, next));
        }
        return txs;
    }

    // Lanes: a slot in flight, or one that came up less than `Delay` ago, keeps its lane busy.
    let cooling = tasks
        .iter()
        .filter(|t| ours(t) && t.is_runnable())
        .filter_map(|t| t.running_since.as_ref().map(nanos))
        .filter(|up| !super::restart::is_future(*up, now_ns) && now_ns < up + cfg.delay_ns)
        .count();
    let free = if cfg.parallelism == 0 {
        pending.len()
    } else {
        (cfg.parallelism as usize).saturating_sub(in_flight + cooling)
    };
    for ((slot, node), old) in pending.into_iter().take(free) {
        txs.push(replace_slot(svc, *slot, node, old, &cfg, now));
    }
    txs
}

/// The transaction that starts the update of one slot.
fn replace_slot(svc: &Service, slot: u64, node: &str, old: &[&Task], cfg: &Settings, now: Timestamp) -> Transaction {
    let desired = if cfg.start_first {
        run_state(svc)
    } else {
        TaskState::Ready
    };
    let mut new = new_task(svc, slot, node, desired, now);
    new.update_of = old.first().map(|t| t.id.clone()).unwrap_or_default();
    let mut actions = Vec::new();
    if !cfg.start_first {
        // Versioned: if an old task changed meanwhile, the whole step is decided again.
        for t in old {
            let mut shut = (*t).clone();
            shut.desired_state = TaskState::Shutdown;
            actions.push(StoreAction::Update(shut.into_object()));
        }
    }
    actions.push(StoreAction::Create(new.into_object()));
    Transaction { actions }
}

/// Pauses or rolls back the update after `task_id` failed it.
fn act_on_failure(
    svc: &Service,
    status: &UpdateStatus,
    cfg: &Settings,
    rollback: bool,
    task_id: &str,
    failed_tasks: Vec<String>,
    now: Timestamp,
) -> Transaction {
    let (state, message) = failure_message(rollback, &cfg.failure_action, task_id);
    let progress = status.progress.as_ref().map(|p| UpdateProgress {
        slots: p.slots,
        failed_tasks,
    });
    match (state, svc.previous_spec.as_ref()) {
        (UpdateStatus::ROLLBACK_STARTED, Some(previous)) => {
            // Back to the previous spec, with its rollback config; versioned like any update.
            let mut next = svc.clone();
            next.spec = previous.clone();
            next.endpoint = Endpoint::for_spec(previous);
            next.previous_spec = None;
            next.update_status = Some(UpdateStatus {
                state: state.to_string(),
                started_at: Some(now),
                completed_at: None,
                message,
                progress: None,
            });
            Transaction::one(StoreAction::Update(next.into_object()))
        }
        (UpdateStatus::ROLLBACK_STARTED, None) => {
            let mut next = status.clone();
            next.state = UpdateStatus::PAUSED.to_string();
            next.message = format!(
                "update paused due to failure or early termination of task {task_id}: there is no previous spec to roll back to"
            );
            next.progress = progress;
            status_patch(svc, next)
        }
        _ => {
            let mut next = status.clone();
            next.state = state.to_string();
            next.message = message;
            next.progress = progress;
            status_patch(svc, next)
        }
    }
}

#[cfg(test)]
mod tests;
