//! The constraint enforcer: when a node stops matching a task's placement constraints (its
//! labels or role changed), the task is rejected, as Swarm does, and the restart supervisor
//! places a replacement where the constraints hold. A service that gets new constraints is
//! the rolling update's business: its tasks are checked against their own constraints here.

use swarm_model::Availability;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;

use crate::scheduler::constraint::Constraint;
use crate::scheduler::constraint::all_match;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    for node in s.nodes.iter().filter(|n| n.spec.availability == Availability::Active) {
        for t in s.tasks_by_node(&node.id) {
            let placed = t.status.state >= TaskState::Assigned && t.status.state <= TaskState::Running;
            if !placed || !t.is_runnable() {
                continue;
            }
            let exprs = t
                .spec
                .placement
                .as_ref()
                .and_then(|p| p.constraints.as_deref())
                .unwrap_or(&[]);
            if !Constraint::parse_all(exprs).is_ok_and(|c| all_match(&c, node)) {
                txs.push(Transaction::one(StoreAction::TaskStatus {
                    id: t.id.clone(),
                    status: TaskStatus {
                        timestamp: now,
                        state: TaskState::Rejected,
                        message: "task rejected by constraint enforcer".to_string(),
                        err: "assigned node no longer meets constraints".to_string(),
                        ..Default::default()
                    },
                }));
            }
        }
    }
    txs
}

#[cfg(test)]
mod tests {
    use swarm_model::Node;
    use swarm_model::Placement;
    use swarm_model::Service;
    use swarm_model::StoreObject;
    use swarm_model::Task;

    use super::*;
    use crate::store::testing::store_with;

    #[test]
    fn tasks_on_a_node_that_no_longer_matches_are_rejected() {
        let svc = Service {
            id: "svc".into(),
            ..Default::default()
        };
        let placement = Some(Placement {
            constraints: Some(vec!["node.labels.zone==a".into()]),
            ..Default::default()
        });
        let mut a = Node {
            id: "a".into(),
            ..Default::default()
        };
        a.spec.labels.insert("zone".into(), "a".into());
        let b = Node {
            id: "b".into(),
            ..Default::default()
        };
        let task = |id: &str, node: &str| {
            let mut t = Task {
                id: id.into(),
                service_id: "svc".into(),
                node_id: node.into(),
                desired_state: TaskState::Running,
                ..Default::default()
            };
            t.spec.placement = placement.clone();
            t.status.state = TaskState::Running;
            t.into_object()
        };
        let store = store_with(vec![
            svc.into_object(),
            a.into_object(),
            b.into_object(),
            task("fine", "a"),
            task("moved", "b"),
        ]);
        let txs = store.view(|s| decide(s, Timestamp::now()));
        assert_eq!(txs.len(), 1);
        assert!(matches!(
            &txs[0].actions[0],
            StoreAction::TaskStatus { id, status } if id == "moved" && status.state == TaskState::Rejected
        ));
    }
}
