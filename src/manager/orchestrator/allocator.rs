//! NEW → PENDING. Network resources would be allocated here; for now every new task is
//! immediately ready to be scheduled.

use crate::manager::store::StoreAction;
use crate::manager::store::StoreState;
use crate::manager::store::Transaction;
use crate::model::TaskState;
use crate::model::TaskStatus;
use crate::model::Timestamp;

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
