//! Replicated services: keep exactly `Replicas` slots filled with a runnable task.

use std::collections::BTreeMap;
use std::collections::HashMap;

use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;

use super::given_up;
use super::new_task;
use super::newest;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    for svc in s.services.iter() {
        let Some(rep) = &svc.spec.mode.replicated else { continue };
        let tasks: Vec<&Task> = s.tasks_by_service(&svc.id).collect();
        txs.extend(reconcile(svc, rep.replicas.unwrap_or(1), &tasks, now));
    }
    // A removed service's tasks are told to go away; the reaper deletes them once stopped.
    for t in s.tasks.iter() {
        if s.services.get(&t.service_id).is_none() && t.desired_state < TaskState::Remove {
            txs.push(Transaction::one(StoreAction::TaskDesired {
                id: t.id.clone(),
                desired: TaskState::Remove,
            }));
        }
    }
    txs
}

/// The tasks that occupy each slot of `svc`. A slot is occupied while it holds a runnable task,
/// or when the restart policy gave up on its newest task ([`given_up`]): refilling the slot
/// would restart it anyway.
pub fn occupied_slots<'a>(svc: &Service, tasks: &[&'a Task]) -> BTreeMap<u64, Vec<&'a Task>> {
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    let mut all: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.slot > 0) {
        if t.is_runnable() {
            slots.entry(t.slot).or_default().push(t);
        }
        all.entry(t.slot).or_default().push(t);
    }
    for (slot, ts) in all {
        if let Some(t) = newest(ts.iter().copied())
            && given_up(svc, t)
            && !slots.contains_key(&slot)
        {
            slots.insert(slot, vec![t]);
        }
    }
    slots
}

/// The transactions that bring `svc` to `want` occupied slots. Scale-up fills the lowest free
/// slots; scale-down empties slots on the nodes holding the most copies first, preferring
/// tasks that are not running yet, then the highest slot.
///
pub fn reconcile(svc: &Service, want: u64, tasks: &[&Task], now: Timestamp) -> Vec<Transaction> {
    let mut slots = occupied_slots(svc, tasks);
    let have = slots.len() as u64;
    let mut txs = Vec::new();
    // Two runnable tasks in one slot should not happen; if one does (e.g. after a write whose
    // outcome was unknown), keep the one that is furthest along and newest, shut the rest down.
    for ts in slots.values_mut() {
        // A start-first update runs the replacement next to the task it replaces for a while.
        let overlap = ts
            .iter()
            .any(|t| !t.update_of.is_empty() && ts.iter().any(|o| o.id == t.update_of));
        if ts.len() > 1 && ts.iter().all(|t| t.is_runnable()) && !overlap {
            // Live before ended, then furthest along, then newest.
            ts.sort_by_key(|t| {
                std::cmp::Reverse((
                    t.status.state <= TaskState::Running,
                    t.status.state.min(TaskState::Running),
                    t.created_at,
                ))
            });
            for extra in ts.drain(1..) {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: extra.id.clone(),
                    desired: TaskState::Shutdown,
                }));
            }
        }
    }
    if have < want {
        let mut next = 1u64;
        for _ in have..want {
            while slots.contains_key(&next) {
                next += 1;
            }
            let task = new_task(svc, next, "", TaskState::Running, now);
            txs.push(Transaction::one(StoreAction::Create(task.into_object())));
            next += 1;
        }
    } else if have > want {
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        let mut candidates: Vec<(u64, &str, bool)> = Vec::new();
        for (slot, ts) in &slots {
            let node = ts[0].node_id.as_str();
            let running = ts
                .iter()
                .any(|t| t.is_runnable() && t.status.state == TaskState::Running);
            *per_node.entry(node).or_default() += 1;
            candidates.push((*slot, node, running));
        }
        for _ in want..have {
            let Some(pos) = candidates
                .iter()
                .enumerate()
                .max_by_key(|(_, (slot, node, running))| (per_node[node], !running, *slot))
                .map(|(i, _)| i)
            else {
                break;
            };
            let (slot, node, _) = candidates.remove(pos);
            if let Some(n) = per_node.get_mut(node) {
                *n -= 1;
            }
            // The whole slot goes, history included, so nothing in it stands for it any more.
            for t in tasks
                .iter()
                .filter(|t| t.slot == slot && t.desired_state < TaskState::Remove)
            {
                txs.push(Transaction::one(StoreAction::TaskDesired {
                    id: t.id.clone(),
                    desired: TaskState::Remove,
                }));
            }
        }
    }
    txs
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use swarm_model::Object;
    use swarm_model::ServiceMode;

    use super::*;

    fn service(replicas: u64) -> Service {
        let mut s = Service {
            id: "svc".into(),
            ..Default::default()
        };
        s.spec.name = "web".into();
        s.spec.mode = ServiceMode::replicated(replicas);
        s
    }

    fn task(slot: u64, node: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            id: format!("t{slot}-{node}-{}", desired as u8),
            service_id: "svc".into(),
            slot,
            node_id: node.into(),
            desired_state: desired,
            status: swarm_model::TaskStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn created_slots(txs: &[Transaction]) -> Vec<u64> {
        txs.iter()
            .flat_map(|t| &t.actions)
            .filter_map(|a| match a {
                StoreAction::Create(Object::Task(t)) => Some(t.slot),
                _ => None,
            })
            .collect()
    }

    fn removed(txs: &[Transaction]) -> Vec<String> {
        txs.iter()
            .flat_map(|t| &t.actions)
            .filter_map(|a| match a {
                StoreAction::TaskDesired { id, desired } if *desired >= TaskState::Shutdown => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn scale_up_fills_the_lowest_free_slots() {
        let running = |s| task(s, "n1", TaskState::Running, TaskState::Running);
        // History of an older spec: slot 2 is free.
        let mut old = task(2, "n1", TaskState::Failed, TaskState::Shutdown);
        old.spec_version = Some(swarm_model::Version::new(1));
        let tasks = [running(1), running(4), old];
        let refs: Vec<&Task> = tasks.iter().collect();
        let txs = reconcile(&service(4), 4, &refs, Timestamp::now());
        assert_eq!(created_slots(&txs), vec![2, 3]);
    }

    #[test]
    fn scale_down_takes_from_the_busiest_node_first() {
        let tasks = [
            task(1, "a", TaskState::Running, TaskState::Running),
            task(2, "a", TaskState::Running, TaskState::Running),
            task(3, "a", TaskState::Running, TaskState::Running),
            task(4, "b", TaskState::Running, TaskState::Running),
        ];
        let refs: Vec<&Task> = tasks.iter().collect();
        let txs = reconcile(&service(2), 2, &refs, Timestamp::now());
        let gone = removed(&txs);
        assert_eq!(gone.len(), 2, "{txs:?}");
        assert!(gone.iter().all(|id| id.contains("-a-")), "{gone:?}");
    }

    #[test]
    fn a_slot_with_two_runnable_tasks_keeps_the_running_one() {
        let mut a = task(1, "a", TaskState::Running, TaskState::Running);
        a.id = "running".into();
        let mut b = task(1, "b", TaskState::Pending, TaskState::Running);
        b.id = "pending".into();
        let tasks = [a, b];
        let refs: Vec<&Task> = tasks.iter().collect();
        let txs = reconcile(&service(1), 1, &refs, Timestamp::now());
        let shut: Vec<&StoreAction> = txs.iter().flat_map(|t| &t.actions).collect();
        assert_eq!(shut.len(), 1);
        assert!(
            matches!(shut[0], StoreAction::TaskDesired { id, desired } if id == "pending" && *desired == TaskState::Shutdown)
        );
    }

    #[test]
    fn a_completed_task_that_will_not_restart_keeps_its_slot() {
        let tasks = [task(1, "a", TaskState::Complete, TaskState::Running)];
        let refs: Vec<&Task> = tasks.iter().collect();
        assert!(reconcile(&service(1), 1, &refs, Timestamp::now()).is_empty());
    }

    /// Applies a reconcile's decisions to a copy of the tasks.
    fn apply(tasks: &[Task], txs: &[Transaction]) -> Vec<Task> {
        let mut out = tasks.to_vec();
        for a in txs.iter().flat_map(|t| &t.actions) {
            match a {
                StoreAction::Create(Object::Task(t)) => out.push((**t).clone()),
                StoreAction::TaskDesired { id, desired } => {
                    let t = out.iter_mut().find(|t| &t.id == id).expect("known task");
                    t.desired_state = t.desired_state.max(*desired);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    #[test]
    fn a_slot_given_up_on_stays_occupied_until_the_task_template_changes() {
        let mut svc = service(2);
        let mut dead = task(1, "a", TaskState::Failed, TaskState::Shutdown);
        dead.restart_declined = true;
        let mut history = task(2, "a", TaskState::Failed, TaskState::Shutdown);
        history.id = "history".into();
        let tasks = [dead.clone(), history];
        let refs: Vec<&Task> = tasks.iter().collect();
        // Slot 1 stays given up; slot 2's task was only shut down, so it is filled again.
        assert_eq!(created_slots(&reconcile(&svc, 2, &refs, Timestamp::now())), vec![2]);
        // A new task template starts slot 1 again.
        svc.spec.task_template.force_update = 1;
        assert_eq!(created_slots(&reconcile(&svc, 2, &refs, Timestamp::now())), vec![1, 2]);
    }

    #[test]
    fn of_two_live_tasks_in_a_slot_an_ended_one_goes_first() {
        let mut running = task(1, "a", TaskState::Running, TaskState::Running);
        running.id = "running".into();
        let mut failed = task(1, "a", TaskState::Failed, TaskState::Running);
        failed.id = "failed".into();
        failed.created_at = Timestamp::from_unix_nanos(10);
        let tasks = [running, failed];
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(
            removed(&reconcile(&service(1), 1, &refs, Timestamp::now())),
            vec!["failed"]
        );
    }

    proptest! {
        /// Whatever the starting tasks, the result has exactly `want` occupied slots, and no
        /// slot gets a second runnable task.
        #[test]
        fn converges_to_the_requested_replicas(
            want in 0u64..12,
            existing in proptest::collection::vec((1u64..15, 0usize..3, 0u8..5), 0..20),
        ) {
            let nodes = ["a", "b", "c"];
            let svc = service(want);
            let tasks: Vec<Task> = existing
                .iter()
                .enumerate()
                .map(|(i, (slot, node, kind))| {
                    let (state, desired) = match kind {
                        0 => (TaskState::Running, TaskState::Running),
                        1 => (TaskState::Pending, TaskState::Running),
                        2 | 3 => (TaskState::Failed, TaskState::Shutdown),
                        _ => (TaskState::Complete, TaskState::Remove),
                    };
                    let mut t = task(*slot, nodes[*node], state, desired);
                    t.restart_declined = *kind == 3;
                    t.id = format!("t{i:02}");
                    t.created_at = swarm_model::Timestamp::from_unix_nanos(i as i128);
                    t
                })
                .collect();
            let refs: Vec<&Task> = tasks.iter().collect();
            let txs = reconcile(&svc, want, &refs, Timestamp::now());
            let after = apply(&tasks, &txs);
            let after_refs: Vec<&Task> = after.iter().collect();
            let occupied = occupied_slots(&svc, &after_refs);
            prop_assert_eq!(occupied.len() as u64, want, "{:?}", txs);
            for ts in occupied.values() {
                prop_assert!(ts.iter().filter(|t| t.is_runnable()).count() <= 1);
            }
            // A second pass has nothing left to do.
            prop_assert!(reconcile(&svc, want, &after_refs, Timestamp::now()).is_empty());
        }

        /// Changing only the replica count never touches the tasks that stay: scale-up adds
        /// tasks in free slots, scale-down removes whole slots.
        #[test]
        fn a_replicas_only_change_restarts_nothing(have in 0u64..10, want in 0u64..10, on in proptest::collection::vec(0usize..3, 10)) {
            let nodes = ["a", "b", "c"];
            let tasks: Vec<Task> = (1..=have)
                .map(|slot| task(slot, nodes[on[slot as usize - 1]], TaskState::Running, TaskState::Running))
                .collect();
            let refs: Vec<&Task> = tasks.iter().collect();
            let txs = reconcile(&service(want), want, &refs, Timestamp::now());
            for a in txs.iter().flat_map(|t| &t.actions) {
                match a {
                    StoreAction::Create(Object::Task(t)) => prop_assert!(t.slot > have, "slot {} restarted", t.slot),
                    StoreAction::TaskDesired { desired, .. } => prop_assert_eq!(*desired, TaskState::Remove),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            let removed = removed(&txs).len() as u64;
            prop_assert_eq!(removed, have.saturating_sub(want));
            prop_assert_eq!(created_slots(&txs).len() as u64, want.saturating_sub(have));
        }
    }
}
