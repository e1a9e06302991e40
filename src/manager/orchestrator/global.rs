//! Global services: one runnable task on every node that can take tasks.

use std::collections::HashSet;

use super::new_task;
use crate::manager::store::StoreAction;
use crate::manager::store::StoreState;
use crate::manager::store::Transaction;
use crate::model::Availability;
use crate::model::NodeState;
use crate::model::StoreObject;
use crate::model::TaskState;
use crate::model::Timestamp;

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let eligible: HashSet<&str> = s
        .nodes
        .iter()
        .filter(|n| n.status.state == NodeState::Ready && n.spec.availability == Availability::Active)
        .map(|n| n.id.as_str())
        .collect();
    let mut txs = Vec::new();
    for svc in s.services.iter().filter(|svc| svc.spec.mode.global.is_some()) {
        let mut covered = HashSet::new();
        for t in s.tasks_by_service(&svc.id).filter(|t| t.is_runnable()) {
            covered.insert(t.node_id.as_str());
            // A drained or removed node loses its task; a node that is merely down keeps it.
            let node = s.nodes.get(&t.node_id);
            let drop = match node {
                None => true,
                Some(n) => n.spec.availability == Availability::Drain,
            };
            if drop {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: t.id.clone(),
                    desired: TaskState::Shutdown,
                }));
            }
        }
        for node in &eligible {
            if !covered.contains(node) {
                let task = new_task(svc, 0, node, TaskState::Running, now);
                txs.push(Transaction::one(StoreAction::Create(task.into_object())));
            }
        }
    }
    txs
}
