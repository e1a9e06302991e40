//! NEW → PENDING. Network resources would be allocated here; for now every new task is
//! immediately ready to be scheduled.

use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;

use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    s.tasks
        .iter()
        .filter(|t| t.status.state == TaskState::New && t.is_runnable())
        .map(|t| {
            Transaction::one(StoreAction::TaskStatus {
                id: t.id.clone(),
                status: TaskStatus {
                    timestamp: now,
                    state: TaskState::Pending,
                    message: "pending task scheduling".to_string(),
                    ..Default::default()
                },
            })
        })
        .collect()
}
