use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::manager::store::testing::store_with;
use crate::model::Node;
use crate::model::Object;
use crate::model::StoreObject;
use crate::model::Task;

fn node(id: &str, state: NodeState, availability: Availability) -> Node {
    let mut n = Node {
        id: id.into(),
        ..Default::default()
    };
    n.status.state = state;
    n.spec.availability = availability;
    n
}

fn pending(id: &str, service: &str) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: service.into(),
        desired_state: TaskState::Running,
        ..Default::default()
    };
    t.status.state = TaskState::Pending;
    t
}

fn assignments(txs: &[Transaction]) -> HashMap<String, String> {
    txs.iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            StoreAction::TaskAssign { id, node_id, .. } => Some((id.clone(), node_id.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn only_ready_active_nodes_get_tasks() {
    let objects: Vec<Object> = vec![
        node("ready", NodeState::Ready, Availability::Active).into_object(),
        node("down", NodeState::Down, Availability::Active).into_object(),
        node("drained", NodeState::Ready, Availability::Drain).into_object(),
        pending("t1", "s").into_object(),
        pending("t2", "s").into_object(),
    ];
    let store = store_with(objects);
    let txs = store.view(|s| decide(s, Timestamp::now()));
    let a = assignments(&txs);
    assert_eq!(a.len(), 2);
    assert!(a.values().all(|n| n == "ready"));
}

#[test]
fn without_a_node_the_task_says_why_once() {
    let store = store_with(vec![
        node("down", NodeState::Down, Availability::Active).into_object(),
        pending("t1", "s").into_object(),
    ]);
    let txs = store.view(|s| decide(s, Timestamp::now()));
    let err = match &txs[0].actions[0] {
        StoreAction::TaskStatus { status, .. } => status.err.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(err, "no suitable node (1 node not available for new tasks)");
}

proptest! {
    /// Pending tasks of one service spread evenly: no node gets two more than another, and
    /// unusable nodes get nothing.
    #[test]
    fn spreads_evenly_over_usable_nodes(tasks in 0usize..40, ready in 1usize..6, down in 0usize..3) {
        let mut objects: Vec<Object> = Vec::new();
        for i in 0..ready {
            objects.push(node(&format!("r{i}"), NodeState::Ready, Availability::Active).into_object());
        }
        for i in 0..down {
            objects.push(node(&format!("d{i}"), NodeState::Down, Availability::Active).into_object());
        }
        for i in 0..tasks {
            objects.push(pending(&format!("t{i:03}"), "s").into_object());
        }
        let store = store_with(objects);
        let txs = store.view(|s| decide(s, Timestamp::now()));
        let a = assignments(&txs);
        prop_assert_eq!(a.len(), tasks);
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for n in a.values() {
            prop_assert!(n.starts_with('r'));
            *per_node.entry(n).or_default() += 1;
        }
        let max = per_node.values().max().copied().unwrap_or(0);
        let min = if per_node.len() < ready { 0 } else { per_node.values().min().copied().unwrap_or(0) };
        prop_assert!(max - min <= 1, "{:?}", per_node);
    }
}
