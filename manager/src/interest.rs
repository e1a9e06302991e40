//! Which store changes can alter each controller's decision.
//!
//! Most writes in a busy cluster are agents reporting a task's progress from ASSIGNED to
//! RUNNING. Few controllers care: a decision made again on such a change finds nothing new,
//! but costs a pass over every task under the store's read lock. With 100,000 tasks the
//! passes took a third of the leader's CPU. Each controller therefore says which changes it
//! wants; the others wait for its next tick, so a filter that is too narrow delays a decision
//! by at most one tick and never loses one.

use swarm_model::Object;
use swarm_model::Task;
use swarm_model::TaskState;

use crate::store::Event;

/// The old and new task when `e` updates a task.
fn task_update(e: &Event) -> Option<(&Task, &Task)> {
    match e {
        Event::Update {
            old: Object::Task(o),
            new: Object::Task(n),
        } => Some((o, n)),
        _ => None,
    }
}

/// The object an event is about, for the events that carry one.
fn object(e: &Event) -> Option<&Object> {
    match e {
        Event::Create(o) | Event::Delete(o) | Event::Update { new: o, .. } => Some(o),
        Event::Commit { .. } | Event::Restored { .. } => None,
    }
}

/// Whether a task update changed what the orchestrators reconcile on: its node, its desired
/// state, whether it has ended, or whether its restart was declined. Progress from NEW up to
/// RUNNING does not.
fn changes_lifecycle(o: &Task, n: &Task) -> bool {
    let ended = |t: &Task| t.status.state > TaskState::Running;
    o.desired_state != n.desired_state
        || ended(o) != ended(n)
        || o.restart_declined != n.restart_declined
        || o.node_id != n.node_id
}

/// True for the kinds no task controller reads: secrets and configs.
fn unread_kind(e: &Event) -> bool {
    matches!(object(e), Some(Object::Secret(_) | Object::Config(_)))
}

/// A controller's filter: whether a change can alter its decision.
pub type Wants = fn(&Event) -> bool;

/// Whether `e` wakes a controller with filter `wants`. A commit marker never does; a restored
/// state always does, since it stands for any change.
pub fn wakes(wants: Wants, e: &Event) -> bool {
    match e {
        Event::Commit { .. } => false,
        Event::Restored { .. } => true,
        _ => wants(e),
    }
}

/// Everything: for a controller whose decision reads the whole state.
pub fn all(_: &Event) -> bool {
    true
}

/// Replicated services: slots are filled from the services and their tasks' lifecycles.
pub fn replicated(e: &Event) -> bool {
    if let Some((o, n)) = task_update(e) {
        return changes_lifecycle(o, n);
    }
    !matches!(
        object(e),
        Some(Object::Node(_) | Object::Network(_) | Object::Secret(_) | Object::Config(_) | Object::Cluster(_))
    )
}

/// Global services, jobs and restarts also follow the nodes.
pub fn lifecycle_and_nodes(e: &Event) -> bool {
    if let Some((o, n)) = task_update(e) {
        return changes_lifecycle(o, n);
    }
    !unread_kind(e) && !matches!(object(e), Some(Object::Network(_)))
}

/// The allocator moves NEW tasks on, and retries blocked ones when addresses are freed.
pub fn allocator(e: &Event) -> bool {
    if let Some((o, n)) = task_update(e) {
        return n.status.state == TaskState::New || changes_lifecycle(o, n);
    }
    !unread_kind(e)
}

/// The scheduler places PENDING tasks, and resources free up when a task ends or moves.
pub fn scheduler(e: &Event) -> bool {
    if let Some((o, n)) = task_update(e) {
        return n.status.state <= TaskState::Pending || changes_lifecycle(o, n);
    }
    !unread_kind(e)
}

/// The constraint enforcer checks placed tasks against their node: it cares when a node changes
/// or a task is placed.
pub fn constraint_enforcer(e: &Event) -> bool {
    if let Some((o, n)) = task_update(e) {
        let placed = |t: &Task| t.status.state >= TaskState::Assigned;
        return placed(o) != placed(n) || changes_lifecycle(o, n);
    }
    matches!(object(e), Some(Object::Node(_) | Object::Task(_)))
}

/// The updater also watches its own replacements start: each one running lets the next batch
/// go. Other tasks starting (a scale-up during an update) are seen on its next tick.
pub fn updater(e: &Event) -> bool {
    let runs = |t: &Task| t.status.state == TaskState::Running;
    let replacement_started = task_update(e).is_some_and(|(o, n)| !n.update_of.is_empty() && runs(o) != runs(n));
    replacement_started || lifecycle_and_nodes(e)
}

#[cfg(test)]
mod tests {
    use swarm_model::Node;
    use swarm_model::Secret;
    use swarm_model::Service;
    use swarm_model::StoreObject;

    use super::*;

    fn task(state: TaskState, desired: TaskState) -> Task {
        let mut t = Task {
            id: "t".into(),
            service_id: "s".into(),
            node_id: "n".into(),
            desired_state: desired,
            ..Default::default()
        };
        t.status.state = state;
        t
    }

    fn update(o: Task, n: Task) -> Event {
        Event::Update {
            old: o.into_object(),
            new: n.into_object(),
        }
    }

    const EVERY: [(&str, Wants); 7] = [
        ("all", all),
        ("replicated", replicated),
        ("lifecycle_and_nodes", lifecycle_and_nodes),
        ("allocator", allocator),
        ("scheduler", scheduler),
        ("constraint_enforcer", constraint_enforcer),
        ("updater", updater),
    ];

    #[test]
    fn progress_towards_running_wakes_only_the_controllers_that_place_tasks() {
        let progress = update(
            task(TaskState::Assigned, TaskState::Running),
            task(TaskState::Running, TaskState::Running),
        );
        for (name, wants) in EVERY {
            assert_eq!(wakes(wants, &progress), name == "all", "{name}");
            assert!(
                !wakes(wants, &Event::Commit { index: 1 }),
                "{name} wakes on a commit marker"
            );
        }
        let pending = update(
            task(TaskState::New, TaskState::Running),
            task(TaskState::Pending, TaskState::Running),
        );
        assert!(scheduler(&pending) && !allocator(&pending));
        assert!(!replicated(&pending) && !updater(&pending) && !constraint_enforcer(&pending));
        let mut unplaced = task(TaskState::Pending, TaskState::Running);
        unplaced.node_id.clear();
        let placed = update(unplaced, task(TaskState::Assigned, TaskState::Running));
        assert!(scheduler(&placed) && constraint_enforcer(&placed));
    }

    #[test]
    fn a_task_that_ends_or_is_told_to_stop_wakes_every_task_controller() {
        let failed = update(
            task(TaskState::Running, TaskState::Running),
            task(TaskState::Failed, TaskState::Running),
        );
        let stopped = update(
            task(TaskState::Running, TaskState::Running),
            task(TaskState::Running, TaskState::Shutdown),
        );
        for (name, wants) in EVERY {
            assert!(wants(&failed), "{name} misses a failed task");
            assert!(wants(&stopped), "{name} misses a task told to stop");
        }
    }

    #[test]
    fn an_update_replacement_that_starts_wakes_the_updater() {
        let mut old = task(TaskState::Starting, TaskState::Running);
        old.update_of = "previous".into();
        let mut new = old.clone();
        new.status.state = TaskState::Running;
        assert!(updater(&update(old, new)));
    }

    #[test]
    fn services_nodes_and_restores_wake_the_controllers_that_read_them() {
        let svc = Event::Create(Service::default().into_object());
        let node = Event::Create(Node::default().into_object());
        let secret = Event::Create(Secret::default().into_object());
        for (name, wants) in EVERY {
            assert!(wakes(wants, &Event::Restored { index: 1 }), "{name} misses a restore");
            assert!(name == "all" || !wants(&secret), "{name} wakes on a secret");
            if name != "constraint_enforcer" {
                assert!(wants(&svc), "{name} misses a service");
            }
            if name != "replicated" {
                assert!(wants(&node), "{name} misses a node");
            }
        }
    }
}
