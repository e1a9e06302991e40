//! Leader-side controllers that keep tasks in line with services. Each is a pure function from a
//! store view to the transactions that move the cluster toward what the services ask for; the
//! [`crate::controller`] runner applies them through raft. They never call each other:
//! they meet in the store.

pub mod allocator;
pub mod constraint_enforcer;
pub mod global;
pub mod jobs;
pub mod reaper;
pub mod replicated;
pub mod restart;
pub mod update;

use swarm_model::Annotations;
use swarm_model::Service;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;
use swarm_model::new_id;

/// The desired state of a task that should run: RUNNING, or COMPLETE for a job's tasks.
pub fn run_state(service: &Service) -> TaskState {
    if service.spec.mode.is_job() {
        TaskState::Complete
    } else {
        TaskState::Running
    }
}

/// Whether `t` ended for good: the restart policy declined to replace it, it was not removed
/// since, and the service still runs the task template it was built from. Its slot (or node)
/// is then not filled again.
pub fn given_up(service: &Service, t: &Task) -> bool {
    t.restart_declined && t.desired_state < TaskState::Remove && t.spec == service.spec.task_template
}

/// The newest of `tasks` (by creation time, then ID).
pub fn newest<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks
        .into_iter()
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}

/// A new task for `service` in `slot` (0 for global tasks, which name their node instead).
pub fn new_task(service: &Service, slot: u64, node_id: &str, desired: TaskState, now: Timestamp) -> Task {
    Task {
        job_iteration: service
            .spec
            .mode
            .is_job()
            .then(|| service.job_status.as_ref().map(|j| j.job_iteration).unwrap_or_default()),
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
        host_ports: service.spec.host_mode_ports(),
        service_annotations: Some(Annotations {
            name: service.spec.name.clone(),
            labels: service.spec.labels.clone(),
        }),
        ..Default::default()
    }
}
