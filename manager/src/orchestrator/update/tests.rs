use proptest::prelude::*;
use swarm_model::ContainerSpec;
use swarm_model::Object;
use swarm_model::ServiceMode;
use swarm_model::ServiceSpec;
use swarm_model::TaskSpec;
use swarm_model::TaskStatus;
use swarm_model::Version;
use swarm_raft::App;

use super::*;
use crate::orchestrator::restart;
use crate::store::Proposal;
use crate::store::Store;
use crate::store::testing::store_with;

fn spec(image: &str, replicas: u64, update: UpdateConfig) -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        mode: ServiceMode::replicated(replicas),
        task_template: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        update_config: Some(update),
        ..Default::default()
    }
}

fn config(parallelism: u64, order: &str, action: &str) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        delay: 0,
        failure_action: action.into(),
        monitor: 1_000_000_000,
        max_failure_ratio: 0.0,
        order: order.into(),
    }
}

fn at(secs: i128) -> Timestamp {
    Timestamp::from_unix_nanos(secs * SEC)
}

fn running(slot: u64, image: &str) -> Task {
    let mut t = Task {
        id: format!("{image}-{slot}"),
        service_id: "svc".into(),
        slot,
        node_id: "n1".into(),
        desired_state: TaskState::Running,
        ..Default::default()
    };
    t.spec = spec(image, 1, UpdateConfig::default()).task_template;
    t.status.state = TaskState::Running;
    t.running_since = Some(at(0));
    t
}

fn service(image: &str, replicas: u64, update: UpdateConfig, status: Option<UpdateStatus>) -> Service {
    Service {
        id: "svc".into(),
        spec: spec(image, replicas, update),
        previous_spec: Some(spec("v1", replicas, UpdateConfig::default())),
        spec_version: Some(Version::new(2)),
        update_status: status,
        ..Default::default()
    }
}

fn updating(slots: u64, started: i128) -> Option<UpdateStatus> {
    Some(UpdateStatus {
        state: UpdateStatus::UPDATING.into(),
        started_at: Some(at(started)),
        completed_at: None,
        message: "update in progress".into(),
        progress: Some(UpdateProgress {
            slots,
            failed_tasks: Vec::new(),
        }),
    })
}

fn decide_at(objects: Vec<Object>, now: i128) -> Vec<Transaction> {
    store_with(objects).view(|s| decide(s, at(now)))
}

fn created(txs: &[Transaction]) -> Vec<Task> {
    txs.iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            StoreAction::Create(Object::Task(t)) => Some((**t).clone()),
            _ => None,
        })
        .collect()
}

fn patched(txs: &[Transaction]) -> Vec<UpdateStatus> {
    txs.iter()
        .flat_map(|t| &t.actions)
        .filter_map(|a| match a {
            StoreAction::ServiceUpdateStatus { status, .. } => status.clone(),
            _ => None,
        })
        .collect()
}

fn node() -> Object {
    let mut n = Node {
        id: "n1".into(),
        ..Default::default()
    };
    n.status.state = swarm_model::NodeState::Ready;
    n.into_object()
}

#[test]
fn settings_default_like_swarm() {
    let svc = Service::default();
    let s = settings(&svc, false);
    assert_eq!(s.parallelism, 1);
    assert_eq!(s.failure_action, "pause");
    assert_eq!(s.monitor_ns, i128::from(DEFAULT_MONITOR));
    assert!(!s.start_first);
}

#[test]
fn tasks_of_the_current_template_are_clean_and_a_placement_change_alone_keeps_them() {
    let svc = service("v2", 1, config(1, "", ""), None);
    assert!(!is_dirty(&svc, &running(1, "v2"), None));
    assert!(is_dirty(&svc, &running(1, "v1"), None));
    let mut moved = svc.clone();
    moved.spec.task_template.placement = Some(swarm_model::Placement {
        constraints: Some(vec!["node.role==worker".into()]),
        ..Default::default()
    });
    let n = Node::default(); // a worker
    assert!(!is_dirty(&moved, &running(1, "v2"), Some(&n)));
    let mut manager = Node::default();
    manager.spec.role = swarm_model::NodeRole::Manager;
    assert!(is_dirty(&moved, &running(1, "v2"), Some(&manager)));
}

/// The node running a task publishes its host-mode ports, so new ones need a new task; the
/// routing mesh's ports do not.
#[test]
fn a_change_of_host_mode_ports_replaces_the_task() {
    let mut svc = service("v2", 1, config(1, "", ""), None);
    let port = |published, mode: &str| swarm_model::PortConfig {
        protocol: "tcp".into(),
        target_port: 80,
        published_port: Some(published),
        publish_mode: mode.into(),
        ..Default::default()
    };
    svc.spec.endpoint_spec = Some(swarm_model::EndpointSpec {
        mode: "vip".into(),
        ports: Some(vec![port(8080, "host"), port(9090, "ingress")]),
    });
    let mut t = crate::orchestrator::new_task(&svc, 1, "n1", TaskState::Running, Timestamp::now());
    assert_eq!(t.host_ports, vec![port(8080, "host")]);
    t.spec = svc.spec.task_template.clone();
    assert!(!is_dirty(&svc, &t, None));
    svc.spec.endpoint_spec.as_mut().unwrap().ports = Some(vec![port(8080, "host"), port(9091, "ingress")]);
    assert!(!is_dirty(&svc, &t, None), "an ingress port is the mesh's");
    svc.spec.endpoint_spec.as_mut().unwrap().ports = Some(vec![port(8081, "host")]);
    assert!(is_dirty(&svc, &t, None));
}

/// A task's server expects PROXY v2 headers or not for its whole life, so turning them on
/// replaces the tasks; other labels do not.
#[test]
fn turning_proxy_headers_on_replaces_the_task() {
    let mut svc = service("v2", 1, config(1, "", ""), None);
    let mut t = crate::orchestrator::new_task(&svc, 1, "n1", TaskState::Running, Timestamp::now());
    t.spec = svc.spec.task_template.clone();
    svc.spec.labels.insert("team".into(), "a".into());
    assert!(!is_dirty(&svc, &t, None));
    svc.spec
        .labels
        .insert(swarm_model::PROXY_PROTOCOL_LABEL.into(), "v2".into());
    assert!(is_dirty(&svc, &t, None));
    let t = crate::orchestrator::new_task(&svc, 1, "n1", TaskState::Running, Timestamp::now());
    assert!(t.wants_proxy_protocol());
}

#[test]
fn nothing_happens_when_every_task_runs_the_template() {
    let objects = vec![
        service("v2", 2, config(1, "", ""), None).into_object(),
        node(),
        running(1, "v2").into_object(),
        running(2, "v2").into_object(),
    ];
    assert!(decide_at(objects, 10).is_empty());
}

#[test]
fn an_update_starts_by_recording_its_slots() {
    let objects = vec![
        service("v2", 3, config(1, "", ""), None).into_object(),
        node(),
        running(1, "v1").into_object(),
        running(2, "v1").into_object(),
        running(3, "v2").into_object(),
    ];
    let p = patched(&decide_at(objects, 10));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].state, "updating");
    assert_eq!(p[0].message, "update in progress");
    assert_eq!(p[0].progress.as_ref().unwrap().slots, 2);
}

#[test]
fn stop_first_replaces_parallelism_slots_at_a_time() {
    let objects = vec![
        service("v2", 3, config(2, "stop-first", ""), updating(3, 5)).into_object(),
        node(),
        running(1, "v1").into_object(),
        running(2, "v1").into_object(),
        running(3, "v1").into_object(),
    ];
    let txs = decide_at(objects, 10);
    let new = created(&txs);
    assert_eq!(new.iter().map(|t| t.slot).collect::<Vec<_>>(), vec![1, 2]);
    assert!(
        new.iter()
            .all(|t| t.desired_state == TaskState::Ready && !t.update_of.is_empty())
    );
    // Each replacement comes with its old task shut down, in one transaction.
    for tx in &txs {
        assert!(
            matches!(&tx.actions[0], StoreAction::Update(Object::Task(t)) if t.desired_state == TaskState::Shutdown)
        );
    }
}

#[test]
fn a_lane_waits_for_its_slot_to_run_and_then_for_the_delay() {
    let mut cfg = config(1, "stop-first", "");
    cfg.delay = 5_000_000_000;
    let mut old1 = running(1, "v1");
    old1.desired_state = TaskState::Shutdown;
    let mut new1 = running(1, "v2");
    new1.update_of = old1.id.clone();
    new1.created_at = at(10);
    new1.status.state = TaskState::Starting;
    new1.running_since = None;
    let objects = |new1: &Task| {
        vec![
            service("v2", 2, cfg.clone(), updating(2, 5)).into_object(),
            node(),
            old1.clone().into_object(),
            new1.clone().into_object(),
            running(2, "v1").into_object(),
        ]
    };
    assert!(
        created(&decide_at(objects(&new1), 11)).is_empty(),
        "slot 1 is in flight"
    );
    new1.status.state = TaskState::Running;
    new1.running_since = Some(at(12));
    assert!(
        created(&decide_at(objects(&new1), 14)).is_empty(),
        "within the 5 s delay"
    );
    assert_eq!(created(&decide_at(objects(&new1), 18))[0].slot, 2);
}

#[test]
fn start_first_starts_the_new_task_before_stopping_the_old() {
    let old = running(1, "v1");
    let objects = vec![
        service("v2", 1, config(1, "start-first", ""), updating(1, 5)).into_object(),
        node(),
        old.clone().into_object(),
    ];
    let txs = decide_at(objects, 10);
    let new = created(&txs);
    assert_eq!(new[0].desired_state, TaskState::Running);
    assert_eq!(txs[0].actions.len(), 1, "the old task keeps running for now");
    let mut new = new[0].clone();
    new.status.state = TaskState::Running;
    new.running_since = Some(at(11));
    let objects = vec![
        service("v2", 1, config(1, "start-first", ""), updating(1, 5)).into_object(),
        node(),
        old.clone().into_object(),
        new.into_object(),
    ];
    let txs = decide_at(objects, 12);
    assert!(txs.iter().flat_map(|t| &t.actions).any(|a| matches!(
        a,
        StoreAction::TaskDesired { id, desired } if *id == old.id && *desired == TaskState::Shutdown
    )));
}

fn failed_new(slot: u64, started: i128, ended: i128, since: Option<i128>) -> Task {
    let mut t = running(slot, "v2");
    t.id = format!("failed-{slot}");
    t.update_of = format!("v1-{slot}");
    t.created_at = at(started);
    t.status.state = TaskState::Failed;
    t.status.timestamp = at(ended);
    t.running_since = since.map(at);
    t
}

#[test]
fn a_failure_pauses_the_update_naming_the_task() {
    let objects = vec![
        service("v2", 2, config(1, "", "pause"), updating(2, 5)).into_object(),
        node(),
        failed_new(1, 6, 8, None).into_object(),
        running(2, "v1").into_object(),
    ];
    let p = patched(&decide_at(objects, 9));
    assert_eq!(p[0].state, "paused");
    assert_eq!(
        p[0].message,
        "update paused due to failure or early termination of task failed-1"
    );
    assert_eq!(p[0].progress.as_ref().unwrap().failed_tasks, vec!["failed-1"]);
}

#[test]
fn a_failure_after_the_monitor_period_does_not_count() {
    let objects = vec![
        service("v2", 2, config(1, "", "pause"), updating(2, 5)).into_object(),
        node(),
        failed_new(1, 6, 30, Some(7)).into_object(),
        running(2, "v1").into_object(),
    ];
    assert!(patched(&decide_at(objects, 31)).is_empty());
}

#[test]
fn failures_within_the_ratio_are_recorded_and_the_update_goes_on() {
    let mut cfg = config(1, "", "pause");
    cfg.max_failure_ratio = 0.5;
    let objects = vec![
        service("v2", 4, cfg, updating(4, 5)).into_object(),
        node(),
        failed_new(1, 6, 8, None).into_object(),
        running(2, "v1").into_object(),
    ];
    let p = patched(&decide_at(objects, 9));
    assert_eq!(p[0].state, "updating");
    assert_eq!(p[0].progress.as_ref().unwrap().failed_tasks, vec!["failed-1"]);
}

#[test]
fn failure_action_rollback_restores_the_previous_spec() {
    let objects = vec![
        service("v2", 2, config(1, "", "rollback"), updating(2, 5)).into_object(),
        node(),
        failed_new(1, 6, 8, None).into_object(),
        running(2, "v1").into_object(),
    ];
    let txs = decide_at(objects, 9);
    let StoreAction::Update(Object::Service(next)) = &txs[0].actions[0] else {
        panic!("{txs:?}");
    };
    assert_eq!(next.spec.task_template.container_spec.as_ref().unwrap().image, "v1");
    let st = next.update_status.as_ref().unwrap();
    assert_eq!(st.state, "rollback_started");
    assert_eq!(
        st.message,
        "update rolled back due to failure or early termination of task failed-1"
    );
}

#[test]
fn a_failing_rollback_pauses() {
    let mut svc = service("v2", 2, config(1, "", "rollback"), updating(2, 5));
    svc.spec.rollback_config = Some(config(1, "", "rollback"));
    let st = svc.update_status.as_mut().unwrap();
    st.state = UpdateStatus::ROLLBACK_STARTED.into();
    let objects = vec![
        svc.into_object(),
        node(),
        failed_new(1, 6, 8, None).into_object(),
        running(2, "v1").into_object(),
    ];
    let p = patched(&decide_at(objects, 9));
    assert_eq!(p[0].state, "rollback_paused");
    assert!(
        p[0].message
            .starts_with("rollback paused due to failure or early termination of task")
    );
}

#[test]
fn the_update_completes_a_monitor_period_after_the_last_slot() {
    let mut new = running(1, "v2");
    new.update_of = "v1-1".into();
    new.created_at = at(6);
    new.running_since = Some(at(8));
    let objects = |now| {
        decide_at(
            vec![
                service("v2", 1, config(1, "", ""), updating(1, 5)).into_object(),
                node(),
                new.clone().into_object(),
            ],
            now,
        )
    };
    assert!(patched(&objects(8)).is_empty(), "still watching the new task");
    let p = patched(&objects(10));
    assert_eq!(p[0].state, "completed");
    assert_eq!(p[0].message, "update completed");
}

#[test]
fn a_paused_update_stays_paused() {
    let mut status = updating(2, 5);
    status.as_mut().unwrap().state = UpdateStatus::PAUSED.into();
    let objects = vec![
        service("v2", 2, config(1, "", ""), status).into_object(),
        node(),
        running(1, "v1").into_object(),
        running(2, "v1").into_object(),
    ];
    assert!(decide_at(objects, 10).is_empty());
}

/// Runs an update to its end against a simulated cluster: every step applies the updater's
/// and the restart supervisor's decisions, then moves tasks along (a replacement comes up one
/// step after it may start; a task told to stop stops). Returns the most slots that were down
/// at once, and the store.
fn simulate(replicas: u64, parallelism: u64, start_first: bool, fail_first: usize) -> (usize, Store, u64) {
    let order = if start_first { "start-first" } else { "stop-first" };
    let mut cfg = config(parallelism, order, "continue");
    cfg.monitor = 1_000_000_000;
    let mut objects = vec![service("v2", replicas, cfg, None).into_object(), node()];
    for slot in 1..=replicas {
        objects.push(running(slot, "v1").into_object());
    }
    let store = store_with(objects);
    let mut index = 10;
    let mut most_down = 0;
    let mut failures_left = fail_first;
    for step in 0..400i128 {
        let now = at(100 + step);
        let mut txs = store.view(|s| decide(s, now));
        txs.extend(store.view(|s| restart::decide(s, now)));
        // The world: tasks move one step.
        let moves: Vec<Transaction> = store.view(|s| {
            s.tasks
                .iter()
                .filter_map(|t| {
                    let to = if t.desired_state.wants_stop() && t.status.state <= TaskState::Running {
                        TaskState::Shutdown
                    } else if t.desired_state == TaskState::Running && t.status.state < TaskState::Running {
                        if failures_left > 0 && t.spec.container_spec.as_ref().unwrap().image == "v2" {
                            failures_left -= 1;
                            TaskState::Failed
                        } else {
                            TaskState::Running
                        }
                    } else {
                        return None;
                    };
                    Some(Transaction::one(StoreAction::TaskStatus {
                        id: t.id.clone(),
                        status: TaskStatus {
                            timestamp: now,
                            state: to,
                            ..Default::default()
                        },
                    }))
                })
                .collect()
        });
        txs.extend(moves);
        if !txs.is_empty() {
            index += 1;
            store.apply(index, &Store::encode_proposal(&Proposal { txs }).unwrap());
        }
        let down = store.view(|s| {
            (1..=replicas)
                .filter(|slot| {
                    !s.tasks_by_slot("svc", *slot)
                        .any(|t| t.status.state == TaskState::Running)
                })
                .count()
        });
        most_down = most_down.max(down);
        let done = store.view(|s| {
            s.services
                .get("svc")
                .and_then(|v| v.update_status.as_ref())
                .map(|u| u.state.clone())
        });
        if done.as_deref() == Some("completed") {
            return (most_down, store, step as u64);
        }
    }
    panic!("the update did not complete");
}

proptest! {
    /// A rolling update never has more slots down than its parallelism (none with
    /// start-first), and ends with every slot running exactly one task of the new template.
    #[test]
    fn updates_respect_parallelism_and_end_on_the_new_spec(
        replicas in 1u64..8,
        parallelism in 0u64..4,
        start_first in any::<bool>(),
        fail_first in 0usize..3,
    ) {
        let (most_down, store, _) = simulate(replicas, parallelism, start_first, fail_first);
        let limit = if parallelism == 0 { replicas as usize } else { parallelism as usize };
        if !start_first {
            // A failed replacement waits for its restart, so failures may add to the count.
            prop_assert!(most_down <= limit + fail_first, "{} down with parallelism {}", most_down, parallelism);
        } else if fail_first == 0 {
            prop_assert_eq!(most_down, 0);
        }
        store.view(|s| {
            for slot in 1..=replicas {
                let live: Vec<&Task> = s.tasks_by_slot("svc", slot).filter(|t| t.is_runnable()).collect();
                assert_eq!(live.len(), 1, "slot {slot}: {live:?}");
                assert_eq!(live[0].spec.container_spec.as_ref().unwrap().image, "v2");
                assert_eq!(live[0].status.state, TaskState::Running);
            }
        });
    }
}

#[test]
fn a_global_service_updates_node_by_node() {
    let mut svc = service("v2", 1, config(1, "stop-first", ""), updating(2, 5));
    svc.spec.mode = ServiceMode {
        global: Some(Default::default()),
        ..Default::default()
    };
    let on = |node: &str| {
        let mut t = running(0, "v1");
        t.id = format!("v1-{node}");
        t.node_id = node.into();
        t.into_object()
    };
    let txs = decide_at(vec![svc.into_object(), node(), on("n1"), on("n2")], 10);
    let new = created(&txs);
    assert_eq!(new.len(), 1, "one node at a time");
    assert_eq!(new[0].slot, 0);
    assert_eq!(new[0].node_id, "n1", "the replacement stays on its node");
    assert_eq!(new[0].update_of, "v1-n1");
}

#[test]
fn a_paused_start_first_update_still_stops_an_old_task_whose_replacement_runs() {
    let mut status = updating(2, 5);
    status.as_mut().unwrap().state = UpdateStatus::PAUSED.into();
    let old = running(1, "v1");
    let mut new = running(1, "v2");
    new.update_of = old.id.clone();
    new.created_at = at(6);
    let objects = vec![
        service("v2", 1, config(1, "start-first", ""), status).into_object(),
        node(),
        old.clone().into_object(),
        new.into_object(),
    ];
    let txs = decide_at(objects, 10);
    assert_eq!(txs.len(), 1);
    assert!(matches!(
        &txs[0].actions[0],
        StoreAction::TaskDesired { id, desired } if *id == old.id && *desired == TaskState::Shutdown
    ));
}

#[test]
fn a_global_update_leaves_paused_nodes_alone() {
    let mut svc = service("v2", 1, config(0, "stop-first", ""), None);
    svc.spec.mode = ServiceMode {
        global: Some(Default::default()),
        ..Default::default()
    };
    let mut paused = Node {
        id: "n2".into(),
        ..Default::default()
    };
    paused.status.state = swarm_model::NodeState::Ready;
    paused.spec.availability = swarm_model::Availability::Pause;
    let on = |node: &str| {
        let mut t = running(0, "v1");
        t.id = format!("v1-{node}");
        t.node_id = node.into();
        t.into_object()
    };
    let objects = vec![svc.into_object(), node(), paused.into_object(), on("n1"), on("n2")];
    let p = patched(&decide_at(objects, 10));
    assert_eq!(p[0].progress.as_ref().unwrap().slots, 1, "only n1 is updated");
}
