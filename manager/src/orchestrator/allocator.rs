//! NEW → PENDING: a task leaves NEW once it can have its network addresses, which the state
//! machine gives it on that step. A task that cannot (its network is full, or gone) stays NEW
//! with the reason in its status, shown by `docker service ps`, and moves on as soon as an
//! address is free again.

use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;

use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;
use crate::store::addresses::allocate_task;

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    s.tasks
        .iter()
        .filter(|t| t.status.state == TaskState::New && t.is_runnable())
        .filter_map(|t| {
            let status = match allocate_task(s, &mut t.clone()) {
                Ok(()) => TaskStatus {
                    timestamp: now,
                    state: TaskState::Pending,
                    message: "pending task scheduling".to_string(),
                    ..Default::default()
                },
                Err(e) if t.status.err == e.to_string() => return None,
                Err(e) => TaskStatus {
                    timestamp: now,
                    state: TaskState::New,
                    message: "waiting for network addresses".to_string(),
                    err: e.to_string(),
                    ..Default::default()
                },
            };
            Some(Transaction::one(StoreAction::TaskStatus {
                id: t.id.clone(),
                status,
            }))
        })
        .collect()
}
