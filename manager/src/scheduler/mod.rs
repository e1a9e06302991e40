//! The scheduler: PENDING → ASSIGNED. Pending tasks are grouped by service and spec version;
//! each group is placed together through the filter pipeline ([`filter`]) and the preference
//! tree ([`placement`]), and all decisions of a pass are committed together. A task that fits
//! nowhere stays PENDING with Swarm's explanation in its `Err`, and is tried again on the next
//! store change (a node joining, a label or availability change, a task ending).

pub mod constraint;
pub mod filter;
pub mod node_info;
pub mod placement;

use std::collections::HashMap;

use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;

use self::filter::Requirements;
use self::filter::explain;
use self::filter::first_failure;
use self::node_info::NodeInfo;
use self::node_info::host_mode_ports;
use self::placement::SpreadKey;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// `no suitable node (…)`, as Swarm words a task that fits nowhere.
pub fn no_suitable_node(explanation: &str) -> String {
    if explanation.is_empty() {
        "no suitable node".to_string()
    } else {
        format!("no suitable node ({explanation})")
    }
}

fn status(now: Timestamp, state: TaskState, message: &str, err: String) -> TaskStatus {
    TaskStatus {
        timestamp: now,
        state,
        message: message.to_string(),
        err,
        ..Default::default()
    }
}

/// Records why a pending task waits, unless it already says so.
fn still_pending(t: &Task, err: String, now: Timestamp) -> Option<Transaction> {
    (t.status.err != err).then(|| {
        Transaction::one(StoreAction::TaskStatus {
            id: t.id.clone(),
            status: status(now, TaskState::Pending, "pending task scheduling", err),
        })
    })
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut pending: Vec<&Task> = s
        .tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    pending.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let mut infos = NodeInfo::build_all(s, now);
    let index: HashMap<&str, usize> = infos.iter().enumerate().map(|(i, n)| (n.node.id.as_str(), i)).collect();
    let ports_of = |t: &Task| s.services.get(&t.service_id).map(host_mode_ports).unwrap_or_default();
    let mut txs = Vec::new();
    // Groups in order of their oldest task; preassigned (global) tasks are checked one by one.
    let mut groups: Vec<((&str, u64), Vec<&Task>)> = Vec::new();
    let mut group_of: HashMap<(&str, u64), usize> = HashMap::new();
    for t in pending {
        if t.desired_state.wants_stop() {
            // Told to stop before it was placed: it never will be.
            txs.push(Transaction::one(StoreAction::TaskStatus {
                id: t.id.clone(),
                status: status(now, TaskState::Shutdown, "shutdown before scheduling", String::new()),
            }));
            continue;
        }
        if !t.node_id.is_empty() {
            let Some(&i) = index.get(t.node_id.as_str()) else {
                continue; // its node is gone; the orchestrator shuts the task down
            };
            let req = Requirements::of(t, ports_of(t));
            if first_failure(&req, &infos[i]).is_none() {
                infos[i].place(&t.service_id, &req.reservation, &req.host_ports);
                txs.push(Transaction::one(StoreAction::TaskAssign {
                    id: t.id.clone(),
                    node_id: t.node_id.clone(),
                    status: status(
                        now,
                        TaskState::Assigned,
                        "scheduler confirmed task can run on preassigned node",
                        String::new(),
                    ),
                }));
            } else {
                txs.extend(still_pending(t, explain(&req, [&infos[i]]), now));
            }
            continue;
        }
        let key = (t.service_id.as_str(), t.spec_version.map(|v| v.index).unwrap_or(0));
        let g = *group_of.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(t);
    }
    let all_nodes: Vec<usize> = (0..infos.len()).collect();
    for (_, tasks) in groups {
        let first = tasks[0];
        let req = Requirements::of(first, ports_of(first));
        let spread: Vec<SpreadKey> = first
            .spec
            .placement
            .iter()
            .flat_map(|p| p.preferences.iter().flatten())
            .filter_map(|p| p.spread.as_ref())
            .filter_map(|sp| SpreadKey::parse(&sp.spread_descriptor))
            .collect();
        let chosen = placement::place(tasks.len(), all_nodes.clone(), &spread, &req, &mut infos);
        for (t, i) in tasks.iter().zip(&chosen) {
            txs.push(Transaction::one(StoreAction::TaskAssign {
                id: t.id.clone(),
                node_id: infos[*i].node.id.clone(),
                status: status(
                    now,
                    TaskState::Assigned,
                    "scheduler assigned task to node",
                    String::new(),
                ),
            }));
        }
        if chosen.len() < tasks.len() {
            let err = no_suitable_node(&explain(&req, infos.iter()));
            for t in &tasks[chosen.len()..] {
                txs.extend(still_pending(t, err.clone(), now));
            }
        }
    }
    txs
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
