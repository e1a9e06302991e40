//! The scheduler: PENDING → ASSIGNED. Each pending task goes to a Ready, Active node, the one
//! with the fewest tasks of its service, then the fewest tasks overall. Decisions of one pass
//! are committed together.

use std::collections::HashMap;

use crate::manager::store::StoreAction;
use crate::manager::store::StoreState;
use crate::manager::store::Transaction;
use crate::model::Availability;
use crate::model::Node;
use crate::model::NodeState;
use crate::model::TaskState;
use crate::model::TaskStatus;
use crate::model::Timestamp;

fn eligible(n: &Node) -> bool {
    n.status.state == NodeState::Ready && n.spec.availability == Availability::Active
}

/// Why no node fits, in Swarm's words.
fn no_node_reason(nodes: &[&Node]) -> String {
    let unavailable = nodes.iter().filter(|n| !eligible(n)).count();
    if nodes.is_empty() {
        "no suitable node (no nodes in the cluster)".to_string()
    } else {
        let noun = if unavailable == 1 { "node" } else { "nodes" };
        format!("no suitable node ({unavailable} {noun} not available for new tasks)")
    }
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let nodes: Vec<&Node> = s.nodes.iter().collect();
    let mut candidates: Vec<&Node> = nodes.iter().copied().filter(|n| eligible(n)).collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    let mut total: HashMap<&str, usize> = HashMap::new();
    let mut per_service: HashMap<(&str, &str), usize> = HashMap::new();
    let mut pending = Vec::new();
    for t in s.tasks.iter() {
        if t.desired_state > TaskState::Running {
            continue;
        }
        if t.status.state == TaskState::Pending {
            pending.push(t);
        } else if !t.node_id.is_empty() && t.status.state >= TaskState::Assigned {
            *total.entry(t.node_id.as_str()).or_default() += 1;
            *per_service
                .entry((t.node_id.as_str(), t.service_id.as_str()))
                .or_default() += 1;
        }
    }
    pending.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let assigned = || TaskStatus {
        timestamp: now,
        state: TaskState::Assigned,
        message: "scheduler assigned task to node".to_string(),
        ..Default::default()
    };
    let mut txs = Vec::new();
    for t in pending {
        let choice: Option<&str> = if !t.node_id.is_empty() {
            // A global task was created for its node; it only needs the node to be usable.
            candidates.iter().find(|n| n.id == t.node_id).map(|n| n.id.as_str())
        } else {
            candidates
                .iter()
                .min_by_key(|n| {
                    (
                        per_service
                            .get(&(n.id.as_str(), t.service_id.as_str()))
                            .copied()
                            .unwrap_or(0),
                        total.get(n.id.as_str()).copied().unwrap_or(0),
                    )
                })
                .map(|n| n.id.as_str())
        };
        match choice {
            Some(node) => {
                *total.entry(node).or_default() += 1;
                *per_service.entry((node, t.service_id.as_str())).or_default() += 1;
                txs.push(Transaction::one(StoreAction::TaskAssign {
                    id: t.id.clone(),
                    node_id: node.to_string(),
                    status: assigned(),
                }));
            }
            None => {
                let err = no_node_reason(&nodes);
                if t.status.err != err {
                    txs.push(Transaction::one(StoreAction::TaskStatus {
                        id: t.id.clone(),
                        status: TaskStatus {
                            timestamp: now,
                            state: TaskState::Pending,
                            message: "pending task scheduling".to_string(),
                            err,
                            ..Default::default()
                        },
                    }));
                }
            }
        }
    }
    txs
}

#[cfg(test)]
mod tests;
