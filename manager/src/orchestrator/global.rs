//! Global services: one runnable task on every node that may run the service. A node that
//! joins gets a task; a node that is drained, goes down, is removed, or stops matching the
//! service's constraints (a label change or a new constraint) has its task shut down. A paused
//! node keeps what it runs but gets nothing new, and a task that ends there is not restarted.

use std::collections::HashMap;
use std::collections::HashSet;

use swarm_model::Availability;
use swarm_model::Node;
use swarm_model::NodeState;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;

use super::given_up;
use super::new_task;
use super::newest;
use super::run_state;
use crate::scheduler::constraint::Constraint;
use crate::scheduler::constraint::all_match;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// Whether the service's constraints hold on `node` (a constraint that does not parse holds
/// nowhere).
pub fn constraints_hold(svc: &Service, node: &Node) -> bool {
    let exprs = svc
        .spec
        .task_template
        .placement
        .as_ref()
        .and_then(|p| p.constraints.as_deref())
        .unwrap_or(&[]);
    Constraint::parse_all(exprs).is_ok_and(|c| all_match(&c, node))
}

/// Whether `node` may keep a task of the global service `svc`.
pub fn may_keep(svc: &Service, node: &Node) -> bool {
    node.status.state != NodeState::Down && node.spec.availability != Availability::Drain && constraints_hold(svc, node)
}

/// Whether `node` should get a (new) task of the global service `svc`.
pub fn eligible(svc: &Service, node: &Node) -> bool {
    node.spec.availability == Availability::Active && may_keep(svc, node)
}

pub fn decide(s: &StoreState, now: Timestamp) -> Vec<Transaction> {
    let mut txs = Vec::new();
    let shut_down = |id: &str| {
        Transaction::one(StoreAction::TaskDesired {
            id: id.to_string(),
            desired: TaskState::Shutdown,
        })
    };
    for svc in s.services.iter().filter(|svc| svc.spec.mode.global.is_some()) {
        // A node is covered by a runnable task, or by one the restart policy gave up on.
        let mut by_node: HashMap<&str, Vec<&Task>> = HashMap::new();
        for t in s.tasks_by_service(&svc.id) {
            by_node.entry(t.node_id.as_str()).or_default().push(t);
        }
        let mut covered: HashSet<&str> = by_node
            .iter()
            .filter(|(_, ts)| newest(ts.iter().copied()).is_some_and(|t| given_up(svc, t)))
            .map(|(n, _)| *n)
            .collect();
        for t in s.tasks_by_service(&svc.id).filter(|t| t.is_runnable()) {
            covered.insert(t.node_id.as_str());
            let keep = match s.nodes.get(&t.node_id) {
                None => false,
                Some(n) if !may_keep(svc, n) => false,
                // Ended on a paused node: not restarted there, and nothing new goes there.
                Some(n) => !(n.spec.availability == Availability::Pause && t.status.state > TaskState::Running),
            };
            if !keep {
                txs.push(shut_down(&t.id));
            }
        }
        for node in s.nodes.iter() {
            if !covered.contains(node.id.as_str()) && eligible(svc, node) {
                let task = new_task(svc, 0, &node.id, run_state(svc), now);
                txs.push(Transaction::one(StoreAction::Create(task.into_object())));
            }
        }
    }
    txs
}

#[cfg(test)]
mod tests {
    use swarm_model::Object;
    use swarm_model::Placement;
    use swarm_model::ServiceMode;

    use super::*;
    use crate::store::testing::store_with;

    fn node(id: &str, state: NodeState, availability: Availability, zone: &str) -> Object {
        let mut n = Node {
            id: id.into(),
            ..Default::default()
        };
        n.status.state = state;
        n.spec.availability = availability;
        n.spec.labels.insert("zone".into(), zone.into());
        n.into_object()
    }

    fn global(constraint: Option<&str>) -> Object {
        let mut s = Service {
            id: "svc".into(),
            ..Default::default()
        };
        s.spec.mode = ServiceMode {
            global: Some(Default::default()),
            ..Default::default()
        };
        s.spec.task_template.placement = constraint.map(|c| Placement {
            constraints: Some(vec![c.to_string()]),
            ..Default::default()
        });
        s.into_object()
    }

    fn task(id: &str, node: &str, state: TaskState) -> Object {
        let mut t = Task {
            id: id.into(),
            service_id: "svc".into(),
            node_id: node.into(),
            desired_state: TaskState::Running,
            ..Default::default()
        };
        t.status.state = state;
        t.into_object()
    }

    fn outcome(objects: Vec<Object>) -> (Vec<String>, Vec<String>) {
        let store = store_with(objects);
        let txs = store.view(|s| decide(s, Timestamp::now()));
        let mut created = Vec::new();
        let mut shut = Vec::new();
        for a in txs.iter().flat_map(|t| &t.actions) {
            match a {
                StoreAction::Create(Object::Task(t)) => created.push(t.node_id.clone()),
                StoreAction::TaskDesired { id, desired } if *desired == TaskState::Shutdown => shut.push(id.clone()),
                other => panic!("unexpected {other:?}"),
            }
        }
        created.sort();
        shut.sort();
        (created, shut)
    }

    #[test]
    fn every_usable_node_gets_one_task() {
        let (created, shut) = outcome(vec![
            global(None),
            node("a", NodeState::Ready, Availability::Active, "x"),
            node("b", NodeState::Ready, Availability::Active, "x"),
            node("down", NodeState::Down, Availability::Active, "x"),
            node("paused", NodeState::Ready, Availability::Pause, "x"),
            node("drained", NodeState::Ready, Availability::Drain, "x"),
            task("on-a", "a", TaskState::Running),
        ]);
        assert_eq!(created, vec!["b"]);
        assert!(shut.is_empty());
    }

    #[test]
    fn a_node_whose_task_the_restart_policy_gave_up_on_gets_no_new_one() {
        let mut declined = Task {
            id: "declined".into(),
            service_id: "svc".into(),
            node_id: "a".into(),
            desired_state: TaskState::Shutdown,
            restart_declined: true,
            ..Default::default()
        };
        declined.status.state = TaskState::Complete;
        let mut stopped = declined.clone();
        stopped.id = "stopped".into();
        stopped.node_id = "b".into();
        stopped.restart_declined = false;
        let (created, shut) = outcome(vec![
            global(None),
            node("a", NodeState::Ready, Availability::Active, "x"),
            node("b", NodeState::Ready, Availability::Active, "x"),
            declined.into_object(),
            stopped.into_object(),
        ]);
        assert_eq!(
            created,
            vec!["b"],
            "only the node whose task was merely shut down gets a new one"
        );
        assert!(shut.is_empty());
    }

    #[test]
    fn ineligible_nodes_lose_their_task() {
        let (created, shut) = outcome(vec![
            global(Some("node.labels.zone==x")),
            node("keep", NodeState::Ready, Availability::Active, "x"),
            node("relabelled", NodeState::Ready, Availability::Active, "y"),
            node("down", NodeState::Down, Availability::Active, "x"),
            node("drained", NodeState::Ready, Availability::Drain, "x"),
            node("paused", NodeState::Ready, Availability::Pause, "x"),
            task("t-keep", "keep", TaskState::Running),
            task("t-relabelled", "relabelled", TaskState::Running),
            task("t-down", "down", TaskState::Running),
            task("t-drained", "drained", TaskState::Running),
            task("t-paused", "paused", TaskState::Running),
            task("t-paused-failed", "paused", TaskState::Failed),
            task("t-gone", "removed-node", TaskState::Running),
        ]);
        assert!(created.is_empty(), "{created:?}");
        assert_eq!(
            shut,
            vec!["t-down", "t-drained", "t-gone", "t-paused-failed", "t-relabelled"]
        );
    }
}
