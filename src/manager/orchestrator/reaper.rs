//! The task reaper: deletes tasks that are meant to go away once they have stopped, and trims
//! each slot's history to the cluster's `TaskHistoryRetentionLimit`.

use std::collections::HashMap;

use crate::manager::store::StoreAction;
use crate::manager::store::StoreState;
use crate::manager::store::Transaction;
use crate::model::Kind;
use crate::model::NodeState;
use crate::model::Task;
use crate::model::TaskState;

pub fn decide(s: &StoreState) -> Vec<Transaction> {
    let retention = s
        .cluster()
        .and_then(|c| c.spec.orchestration.task_history_retention_limit)
        .unwrap_or(5);
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
    let mut history: HashMap<(&str, u64, &str), Vec<&Task>> = HashMap::new();
    for t in s.tasks.iter() {
        if t.desired_state == TaskState::Remove {
            let stopped = t.status.state > TaskState::Running;
            let never_placed = t.node_id.is_empty() || t.status.state < TaskState::Assigned;
            if stopped || never_placed || node_gone(t) {
                txs.push(remove(t));
            }
            continue;
        }
        // History: tasks told to stop that did stop, or that never will report again (their
        // node is gone) or never got placed.
        let never_placed = t.node_id.is_empty() || t.status.state < TaskState::Assigned;
        if !t.is_runnable() && (t.status.state > TaskState::Running || node_gone(t) || never_placed) {
            let node_key = if t.slot == 0 { t.node_id.as_str() } else { "" };
            history
                .entry((t.service_id.as_str(), t.slot, node_key))
                .or_default()
                .push(t);
        }
    }
    if retention >= 0 {
        for mut old in history.into_values() {
            if old.len() as i64 > retention {
                old.sort_by_key(|t| std::cmp::Reverse(t.created_at));
                for t in &old[retention as usize..] {
                    txs.push(remove(t));
                }
            }
        }
    }
    txs
}
