use std::collections::HashMap;

use proptest::prelude::*;
use swarm_model::Availability;
use swarm_model::DiscreteGenericResource;
use swarm_model::EndpointSpec;
use swarm_model::GenericResource;
use swarm_model::NamedGenericResource;
use swarm_model::Node;
use swarm_model::NodeState;
use swarm_model::Object;
use swarm_model::Placement;
use swarm_model::PlacementPreference;
use swarm_model::Platform;
use swarm_model::PortConfig;
use swarm_model::ResourceRequirements;
use swarm_model::Resources;
use swarm_model::Service;
use swarm_model::SpreadOver;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::Version;

use super::*;
use crate::store::testing::store_with;

fn node(id: &str, state: NodeState, availability: Availability) -> Node {
    let mut n = Node {
        id: id.into(),
        ..Default::default()
    };
    n.status.state = state;
    n.spec.availability = availability;
    n.description.platform = Platform {
        architecture: "x86_64".into(),
        os: "linux".into(),
    };
    n.description.resources.nano_cpus = 4_000_000_000;
    n.description.resources.memory_bytes = 8 << 30;
    n
}

fn ready(id: &str) -> Node {
    node(id, NodeState::Ready, Availability::Active)
}

fn labelled(id: &str, key: &str, value: &str) -> Node {
    let mut n = ready(id);
    n.spec.labels.insert(key.into(), value.into());
    n
}

fn pending(id: &str, service: &str) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: service.into(),
        desired_state: TaskState::Running,
        slot: 1,
        ..Default::default()
    };
    t.status.state = TaskState::Pending;
    t
}

fn with_placement(mut t: Task, p: Placement) -> Task {
    t.spec.placement = Some(p);
    t
}

fn constrained(id: &str, service: &str, constraints: &[&str]) -> Task {
    with_placement(
        pending(id, service),
        Placement {
            constraints: Some(constraints.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        },
    )
}

fn running_on(id: &str, service: &str, node: &str) -> Task {
    let mut t = pending(id, service);
    t.node_id = node.into();
    t.status.state = TaskState::Running;
    t
}

fn reserving(mut t: Task, cpus: i64, memory: i64) -> Task {
    t.spec.resources = Some(ResourceRequirements {
        limits: None,
        reservations: Some(Resources {
            nano_cpus: cpus,
            memory_bytes: memory,
            generic_resources: None,
        }),
    });
    t
}

fn objects(nodes: Vec<Node>, tasks: Vec<Task>) -> Vec<Object> {
    nodes
        .into_iter()
        .map(StoreObject::into_object)
        .chain(tasks.into_iter().map(StoreObject::into_object))
        .collect()
}

fn run(objects: Vec<Object>) -> Vec<Transaction> {
    store_with(objects).view(|s| decide(s, Timestamp::now()))
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

fn errors(txs: &[Transaction]) -> HashMap<String, String> {
    txs.iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            StoreAction::TaskStatus { id, status } if status.state == TaskState::Pending => {
                Some((id.clone(), status.err.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn only_ready_active_nodes_get_tasks() {
    let txs = run(objects(
        vec![
            ready("ready"),
            node("down", NodeState::Down, Availability::Active),
            node("drained", NodeState::Ready, Availability::Drain),
            node("paused", NodeState::Ready, Availability::Pause),
        ],
        vec![pending("t1", "s"), pending("t2", "s")],
    ));
    let a = assignments(&txs);
    assert_eq!(a.len(), 2);
    assert!(a.values().all(|n| n == "ready"));
}

#[test]
fn without_a_node_the_task_says_why() {
    let txs = run(objects(
        vec![node("down", NodeState::Down, Availability::Active)],
        vec![pending("t1", "s")],
    ));
    assert_eq!(
        errors(&txs)["t1"],
        "no suitable node (1 node not available for new tasks)"
    );
    // Once it says so, the next pass writes nothing.
    let mut t = pending("t1", "s");
    t.status.err = "no suitable node (1 node not available for new tasks)".into();
    let txs = run(objects(
        vec![node("down", NodeState::Down, Availability::Active)],
        vec![t],
    ));
    assert!(txs.is_empty(), "{txs:?}");
    assert_eq!(
        errors(&run(objects(vec![], vec![pending("t1", "s")])))["t1"],
        "no suitable node"
    );
}

#[test]
fn resources_filter_counts_what_placed_tasks_reserve() {
    // 4 CPUs per node: two 1.5-CPU tasks fit, a third does not.
    let tasks = (0..3)
        .map(|i| reserving(pending(&format!("t{i}"), "s"), 1_500_000_000, 0))
        .collect();
    let txs = run(objects(vec![ready("a")], tasks));
    assert_eq!(assignments(&txs).len(), 2);
    assert_eq!(
        errors(&txs)["t2"],
        "no suitable node (insufficient resources on 1 node)"
    );

    // A running task's reservation counts; a finished one's does not.
    let held = reserving(running_on("old", "other", "a"), 0, 6 << 30);
    let mut done = reserving(running_on("done", "other", "a"), 0, 6 << 30);
    done.status.state = TaskState::Complete;
    let txs = run(objects(
        vec![ready("a")],
        vec![held, done, reserving(pending("t", "s"), 0, 3 << 30)],
    ));
    assert_eq!(errors(&txs)["t"], "no suitable node (insufficient resources on 1 node)");
}

#[test]
fn generic_resources_are_counted_by_kind() {
    let mut a = ready("a");
    a.description.resources.generic_resources = Some(vec![
        GenericResource {
            named_resource_spec: Some(NamedGenericResource {
                kind: "gpu".into(),
                value: "gpu0".into(),
            }),
            discrete_resource_spec: None,
        },
        GenericResource {
            named_resource_spec: None,
            discrete_resource_spec: Some(DiscreteGenericResource {
                kind: "ssd".into(),
                value: 2,
            }),
        },
    ]);
    let wants = |id: &str, kind: &str| {
        let mut t = pending(id, kind);
        t.spec.resources = Some(ResourceRequirements {
            limits: None,
            reservations: Some(Resources {
                generic_resources: Some(vec![GenericResource {
                    named_resource_spec: None,
                    discrete_resource_spec: Some(DiscreteGenericResource {
                        kind: kind.into(),
                        value: 1,
                    }),
                }]),
                ..Default::default()
            }),
        });
        t
    };
    let txs = run(objects(
        vec![a],
        vec![
            wants("g1", "gpu"),
            wants("g2", "gpu"),
            wants("s1", "ssd"),
            wants("s2", "ssd"),
            wants("x", "fpga"),
        ],
    ));
    let a = assignments(&txs);
    assert!(
        a.contains_key("g1") && a.contains_key("s1") && a.contains_key("s2"),
        "{a:?}"
    );
    let e = errors(&txs);
    assert!(e.contains_key("g2") && e.contains_key("x"), "{e:?}");
}

#[test]
fn constraints_filter_and_explain() {
    let txs = run(objects(
        vec![
            labelled("a", "zone", "a"),
            labelled("b", "zone", "b"),
            labelled("c", "zone", "b"),
        ],
        vec![
            constrained("t1", "s", &["node.labels.zone==a"]),
            constrained("t2", "s", &["node.labels.zone==a"]),
            constrained("none", "x", &["node.labels.zone==z"]),
        ],
    ));
    let a = assignments(&txs);
    assert_eq!(a["t1"], "a");
    assert_eq!(a["t2"], "a");
    assert_eq!(
        errors(&txs)["none"],
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    );
}

#[test]
fn the_explanation_puts_the_most_common_reason_first() {
    let txs = run(objects(
        vec![
            labelled("a", "zone", "b"),
            labelled("b", "zone", "b"),
            labelled("c", "zone", "b"),
            node("d", NodeState::Down, Availability::Active),
        ],
        vec![constrained("t", "s", &["node.labels.zone==a"])],
    ));
    assert_eq!(
        errors(&txs)["t"],
        "no suitable node (scheduling constraints not satisfied on 3 nodes; 1 node not available for new tasks)"
    );
}

#[test]
fn platform_filter_understands_arch_aliases() {
    let mut arm = ready("arm");
    arm.description.platform.architecture = "aarch64".into();
    let wants = |id: &str, arch: &str| {
        with_placement(
            pending(id, id),
            Placement {
                platforms: Some(vec![Platform {
                    architecture: arch.into(),
                    os: "linux".into(),
                }]),
                ..Default::default()
            },
        )
    };
    let txs = run(objects(
        vec![ready("x86"), arm],
        vec![wants("amd", "amd64"), wants("arm", "arm64"), wants("ppc", "ppc64le")],
    ));
    let a = assignments(&txs);
    assert_eq!(a["amd"], "x86");
    assert_eq!(a["arm"], "arm");
    assert_eq!(
        errors(&txs)["ppc"],
        "no suitable node (unsupported platform on 2 nodes)"
    );
}

#[test]
fn host_mode_ports_do_not_clash() {
    let mut svc = Service {
        id: "web".into(),
        ..Default::default()
    };
    svc.spec.endpoint_spec = Some(EndpointSpec {
        mode: "vip".into(),
        ports: Some(vec![PortConfig {
            protocol: "tcp".into(),
            target_port: 80,
            published_port: Some(8080),
            publish_mode: "host".into(),
            ..Default::default()
        }]),
    });
    let mut objs = objects(
        vec![ready("a"), ready("b")],
        vec![pending("t1", "web"), pending("t2", "web"), pending("t3", "web")],
    );
    objs.push(svc.into_object());
    let txs = run(objs);
    let a = assignments(&txs);
    assert_eq!(a.len(), 2);
    assert_ne!(a["t1"], a["t2"]);
    assert_eq!(
        errors(&txs)["t3"],
        "no suitable node (host-mode port already in use on 2 nodes)"
    );
}

#[test]
fn max_replicas_per_node_is_a_limit() {
    let one_per_node = |id: &str| {
        with_placement(
            pending(id, "s"),
            Placement {
                max_replicas: 1,
                ..Default::default()
            },
        )
    };
    let txs = run(objects(
        vec![ready("a"), ready("b"), ready("c")],
        (0..4).map(|i| one_per_node(&format!("t{i}"))).collect(),
    ));
    let a = assignments(&txs);
    assert_eq!(a.len(), 3);
    let mut nodes: Vec<&String> = a.values().collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3);
    assert_eq!(
        errors(&txs)["t3"],
        "no suitable node (max replicas per node limit exceed)"
    );
}

#[test]
fn nodes_with_fewer_tasks_of_the_service_come_first_then_fewer_overall() {
    let txs = run(objects(
        vec![ready("a"), ready("b"), ready("c")],
        vec![
            running_on("s-a", "s", "a"),
            running_on("x-b1", "x", "b"),
            running_on("x-b2", "x", "b"),
            pending("new", "s"),
        ],
    ));
    assert_eq!(assignments(&txs)["new"], "c");
}

#[test]
fn nodes_where_the_service_keeps_failing_go_last() {
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut t = running_on(&format!("f{i}"), "s", "a");
        t.status.state = TaskState::Failed;
        t.status.timestamp = Timestamp::now();
        t.desired_state = TaskState::Shutdown;
        tasks.push(t);
    }
    tasks.push(running_on("x1", "x", "b"));
    tasks.push(running_on("x2", "x", "b"));
    tasks.push(pending("new", "s"));
    let txs = run(objects(vec![ready("a"), ready("b")], tasks));
    assert_eq!(assignments(&txs)["new"], "b");
}

#[test]
fn a_preassigned_task_is_checked_on_its_node_only() {
    let mut global = pending("g", "s");
    global.slot = 0;
    global.node_id = "a".into();
    let mut elsewhere = pending("g2", "s");
    elsewhere.slot = 0;
    elsewhere.node_id = "b".into();
    let txs = run(objects(
        vec![ready("a"), node("b", NodeState::Ready, Availability::Pause)],
        vec![global, elsewhere],
    ));
    assert_eq!(assignments(&txs)["g"], "a");
    assert_eq!(errors(&txs)["g2"], "1 node not available for new tasks");
}

#[test]
fn a_pending_task_told_to_stop_is_shut_down() {
    let mut t = pending("t", "s");
    t.desired_state = TaskState::Shutdown;
    let txs = run(objects(vec![ready("a")], vec![t]));
    assert!(matches!(
        &txs[0].actions[0],
        StoreAction::TaskStatus { status, .. } if status.state == TaskState::Shutdown
    ));
}

fn spread(t: Task, descriptors: &[&str]) -> Task {
    let mut p = t.spec.placement.clone().unwrap_or_default();
    p.preferences = Some(
        descriptors
            .iter()
            .map(|d| PlacementPreference {
                spread: Some(SpreadOver {
                    spread_descriptor: d.to_string(),
                }),
            })
            .collect(),
    );
    with_placement(t, p)
}

#[test]
fn spread_evens_out_branches_not_nodes() {
    // Zone a has three nodes, b and c one each: nine tasks go 3/3/3 by zone.
    let nodes = vec![
        labelled("a1", "zone", "a"),
        labelled("a2", "zone", "a"),
        labelled("a3", "zone", "a"),
        labelled("b1", "zone", "b"),
        labelled("c1", "zone", "c"),
    ];
    let tasks = (0..9)
        .map(|i| spread(pending(&format!("t{i}"), "s"), &["node.labels.zone"]))
        .collect();
    let txs = run(objects(nodes, tasks));
    let a = assignments(&txs);
    let mut per_zone: HashMap<char, usize> = HashMap::new();
    for n in a.values() {
        *per_zone.entry(n.chars().next().unwrap()).or_default() += 1;
    }
    assert_eq!(per_zone, HashMap::from([('a', 3), ('b', 3), ('c', 3)]));
}

#[test]
fn a_full_branch_leaves_its_share_to_the_others() {
    let limited = |id: String| {
        spread(
            with_placement(
                pending(&id, "s"),
                Placement {
                    max_replicas: 2,
                    ..Default::default()
                },
            ),
            &["node.labels.zone"],
        )
    };
    let nodes = vec![
        labelled("a1", "zone", "a"),
        labelled("b1", "zone", "b"),
        labelled("b2", "zone", "b"),
        labelled("b3", "zone", "b"),
    ];
    let txs = run(objects(nodes, (0..6).map(|i| limited(format!("t{i}"))).collect()));
    let a = assignments(&txs);
    assert_eq!(a.len(), 6);
    assert_eq!(a.values().filter(|n| n.starts_with('a')).count(), 2);
}

#[test]
fn spread_counts_the_services_existing_tasks() {
    let nodes = vec![labelled("a1", "zone", "a"), labelled("b1", "zone", "b")];
    let mut tasks: Vec<Task> = (0..3).map(|i| running_on(&format!("old{i}"), "s", "a1")).collect();
    tasks.extend((0..3).map(|i| spread(pending(&format!("t{i}"), "s"), &["node.labels.zone"])));
    let txs = run(objects(nodes, tasks));
    assert!(assignments(&txs).values().all(|n| n == "b1"));
}

#[test]
fn tasks_of_one_service_version_are_one_group() {
    // Two versions of a service are placed as two groups, each spread on its own.
    let mut tasks = Vec::new();
    for (i, v) in [1u64, 1, 2, 2].iter().enumerate() {
        let mut t = pending(&format!("t{i}"), "s");
        t.spec_version = Some(Version::new(*v));
        tasks.push(t);
    }
    let txs = run(objects(vec![ready("a"), ready("b")], tasks));
    let a = assignments(&txs);
    assert_ne!(a["t0"], a["t1"]);
    assert_ne!(a["t2"], a["t3"]);
}

/// Random nodes: a zone (a, b or c) and a rack label, some down or drained.
fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    proptest::collection::vec((0usize..3, 0usize..2, 0u8..6), 1..12).prop_map(|spec| {
        spec.into_iter()
            .enumerate()
            .map(|(i, (zone, rack, health))| {
                let mut n = labelled(&format!("n{i:02}"), "zone", ["a", "b", "c"][zone]);
                n.spec.labels.insert("rack".into(), format!("r{rack}"));
                match health {
                    0 => n.status.state = NodeState::Down,
                    1 => n.spec.availability = Availability::Drain,
                    _ => {}
                }
                n
            })
            .collect()
    })
}

proptest! {
    /// Pending tasks of one service spread evenly: no node gets two more than another, and
    /// unusable nodes get nothing.
    #[test]
    fn spreads_evenly_over_usable_nodes(tasks in 0usize..40, ready_nodes in 1usize..6, down in 0usize..3) {
        let mut nodes = Vec::new();
        for i in 0..ready_nodes {
            nodes.push(ready(&format!("r{i}")));
        }
        for i in 0..down {
            nodes.push(node(&format!("d{i}"), NodeState::Down, Availability::Active));
        }
        let tasks: Vec<Task> = (0..tasks).map(|i| pending(&format!("t{i:03}"), "s")).collect();
        let n = tasks.len();
        let a = assignments(&run(objects(nodes, tasks)));
        prop_assert_eq!(a.len(), n);
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for n in a.values() {
            prop_assert!(n.starts_with('r'));
            *per_node.entry(n).or_default() += 1;
        }
        let max = per_node.values().max().copied().unwrap_or(0);
        let min = if per_node.len() < ready_nodes { 0 } else { per_node.values().min().copied().unwrap_or(0) };
        prop_assert!(max - min <= 1, "{:?}", per_node);
    }

    /// Every placement satisfies the task's constraints, and a task is left pending only when
    /// no usable node satisfies them.
    #[test]
    fn constraints_always_hold(nodes in arb_nodes(), zone in 0usize..3, rack in 0usize..3, n in 1usize..10, negate in any::<bool>()) {
        let op = if negate { "!=" } else { "==" };
        let exprs = [
            format!("node.labels.zone{op}{}", ["a", "b", "c"][zone]),
            format!("node.labels.rack==r{rack}"),
        ];
        let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let tasks: Vec<Task> = (0..n).map(|i| constrained(&format!("t{i}"), "s", &refs)).collect();
        let parsed = constraint::Constraint::parse_all(&exprs).unwrap();
        let by_id: HashMap<String, Node> = nodes.iter().map(|n| (n.id.clone(), n.clone())).collect();
        let any_fits = nodes.iter().any(|node| {
            node.status.state == NodeState::Ready
                && node.spec.availability == Availability::Active
                && constraint::all_match(&parsed, node)
        });
        let txs = run(objects(nodes, tasks));
        let a = assignments(&txs);
        for node_id in a.values() {
            prop_assert!(constraint::all_match(&parsed, &by_id[node_id]));
        }
        prop_assert_eq!(a.len(), if any_fits { n } else { 0 });
    }

    /// No node ever holds more than MaxReplicas tasks of the service, counting the ones it
    /// already runs; as many tasks as the limit allows are placed.
    #[test]
    fn max_replicas_per_node_is_never_exceeded(nodes in arb_nodes(), max in 1u64..4, n in 0usize..20, existing in proptest::collection::vec(0usize..12, 0..6)) {
        let usable: Vec<String> = nodes
            .iter()
            .filter(|n| n.status.state == NodeState::Ready && n.spec.availability == Availability::Active)
            .map(|n| n.id.clone())
            .collect();
        let mut tasks: Vec<Task> = Vec::new();
        let mut held: HashMap<String, u64> = HashMap::new();
        for (i, e) in existing.iter().enumerate() {
            let id = &nodes[e % nodes.len()].id;
            tasks.push(running_on(&format!("old{i}"), "s", id));
            *held.entry(id.clone()).or_default() += 1;
        }
        for i in 0..n {
            tasks.push(with_placement(pending(&format!("t{i:02}"), "s"), Placement { max_replicas: max, ..Default::default() }));
        }
        let room: u64 = usable.iter().map(|id| max.saturating_sub(held.get(id).copied().unwrap_or(0))).sum();
        let a = assignments(&run(objects(nodes, tasks)));
        let mut per = held.clone();
        for id in a.values() {
            *per.entry(id.clone()).or_default() += 1;
        }
        for (id, count) in &per {
            if a.values().any(|v| v == id) {
                prop_assert!(*count <= max, "{} holds {}", id, count);
            }
        }
        prop_assert_eq!(a.len() as u64, room.min(n as u64));
    }

    /// With room everywhere, spread preferences keep every branch (and, with two levels, every
    /// sub-branch of a branch) within one task of the others.
    #[test]
    fn spread_stays_within_one_across_branches(zones in proptest::collection::vec(1usize..4, 3), n in 0usize..40, two_levels in any::<bool>()) {
        let mut nodes = Vec::new();
        for (z, count) in zones.iter().enumerate() {
            for i in 0..*count {
                let mut node = labelled(&format!("{z}-{i}"), "zone", &z.to_string());
                node.spec.labels.insert("rack".into(), (i % 2).to_string());
                nodes.push(node);
            }
        }
        let levels: &[&str] = if two_levels { &["node.labels.zone", "node.labels.rack"] } else { &["node.labels.zone"] };
        let tasks: Vec<Task> = (0..n).map(|i| spread(pending(&format!("t{i:02}"), "s"), levels)).collect();
        let a = assignments(&run(objects(nodes, tasks)));
        prop_assert_eq!(a.len(), n);
        let mut per_zone: HashMap<String, usize> = HashMap::new();
        let mut per_rack: HashMap<String, usize> = HashMap::new();
        for id in a.values() {
            let (zone, i) = id.split_once('-').unwrap();
            *per_zone.entry(zone.to_string()).or_default() += 1;
            let i: usize = i.parse().unwrap();
            *per_rack.entry(format!("{zone}/{}", i % 2)).or_default() += 1;
        }
        let counts: Vec<usize> = (0..3).map(|z| per_zone.get(&z.to_string()).copied().unwrap_or(0)).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        prop_assert!(hi - lo <= 1, "{:?}", counts);
        if two_levels {
            for (z, count) in zones.iter().enumerate() {
                if *count >= 2 {
                    let r0 = per_rack.get(&format!("{z}/0")).copied().unwrap_or(0);
                    let r1 = per_rack.get(&format!("{z}/1")).copied().unwrap_or(0);
                    prop_assert!(r0.abs_diff(r1) <= 1, "zone {}: {} vs {}", z, r0, r1);
                }
            }
        }
    }
}
