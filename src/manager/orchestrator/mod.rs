//! Leader-side controllers that keep tasks in line with services. Each is a pure function from a
//! store view to the transactions that move the cluster toward what the services ask for; the
//! [`crate::manager::controller`] runner applies them through raft. They never call each other:
//! they meet in the store.

pub mod allocator;
pub mod global;
pub mod reaper;
pub mod replicated;
pub mod restart;

use crate::model::Annotations;
use crate::model::Service;
use crate::model::Task;
use crate::model::TaskState;
use crate::model::TaskStatus;
use crate::model::Timestamp;
use crate::model::new_id;

/// A new task for `service` in `slot` (0 for global tasks, which name their node instead).
pub fn new_task(service: &Service, slot: u64, node_id: &str, desired: TaskState, now: Timestamp) -> Task {
    Task {
        id: new_id(),
        created_at: now,
        updated_at: now,
        spec: service.spec.task_template.clone(),
        service_id: service.id.clone(),
        slot,
        node_id: node_id.to_string(),
        status: TaskStatus {
            timestamp: now,
            state: TaskState::New,
            message: "created".to_string(),
            ..Default::default()
        },
        desired_state: desired,
        spec_version: service.spec_version,
        service_annotations: Some(Annotations {
            name: service.spec.name.clone(),
            labels: service.spec.labels.clone(),
        }),
        ..Default::default()
    }
}
