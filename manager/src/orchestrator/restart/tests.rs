use swarm_model::Object;
use swarm_model::ServiceMode;
use swarm_model::Version;

use super::*;
use crate::store::testing::store_with;

const SEC: i128 = 1_000_000_000;

fn p(condition: &str, max_attempts: Option<u64>, window_s: i64) -> RestartPolicy {
    RestartPolicy {
        condition: condition.into(),
        delay: Some(5_000_000_000),
        max_attempts,
        window: (window_s > 0).then_some(window_s * 1_000_000_000),
    }
}

fn service(policy: RestartPolicy, mode: ServiceMode) -> Service {
    let mut s = Service {
        id: "svc".into(),
        spec_version: Some(Version::new(3)),
        ..Default::default()
    };
    s.spec.mode = mode;
    s.spec.task_template.restart_policy = Some(policy);
    s
}

fn node(id: &str, state: NodeState, availability: Availability) -> Object {
    let mut n = Node {
        id: id.into(),
        ..Default::default()
    };
    n.status.state = state;
    n.spec.availability = availability;
    n.into_object()
}

/// A task of slot 1 created at `created_s` that ended at `ended_s` in `state`.
fn task(id: &str, created_s: i128, ended_s: i128, state: TaskState, restart_of: &str) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: "svc".into(),
        slot: 1,
        node_id: "n1".into(),
        desired_state: TaskState::Shutdown,
        created_at: Timestamp::from_unix_nanos(created_s * SEC),
        spec_version: Some(Version::new(3)),
        restart_of: restart_of.into(),
        ..Default::default()
    };
    t.status.state = state;
    t.status.timestamp = Timestamp::from_unix_nanos(ended_s * SEC);
    t
}

fn decide_on(objects: Vec<Object>, now_s: i128) -> Vec<Transaction> {
    store_with(objects).view(|s| decide(s, Timestamp::from_unix_nanos(now_s * SEC)))
}

/// (tasks created, tasks shut down, tasks promoted) by a decision.
fn effects(txs: &[Transaction]) -> (Vec<Task>, Vec<String>, Vec<(String, TaskState)>) {
    let mut created = Vec::new();
    let mut shut = Vec::new();
    let mut promoted = Vec::new();
    for a in txs.iter().flat_map(|t| &t.actions) {
        match a {
            StoreAction::Create(Object::Task(t)) => created.push((**t).clone()),
            StoreAction::Update(Object::Task(t)) if t.desired_state == TaskState::Shutdown => shut.push(t.id.clone()),
            StoreAction::TaskDesired { id, desired } if *desired == TaskState::Shutdown => shut.push(id.clone()),
            StoreAction::TaskDesired { id, desired } => promoted.push((id.clone(), *desired)),
            other => panic!("unexpected {other:?}"),
        }
    }
    (created, shut, promoted)
}

#[test]
fn conditions_follow_swarm() {
    let c = |cond: &str| p(cond, None, 0);
    assert!(!should_restart(&c("none"), TaskState::Failed, false, false));
    assert!(!should_restart(&c("none"), TaskState::Running, true, false));
    assert!(!should_restart(&c("on-failure"), TaskState::Complete, false, false));
    assert!(should_restart(&c("on-failure"), TaskState::Failed, false, false));
    assert!(should_restart(&c("on-failure"), TaskState::Rejected, false, false));
    assert!(should_restart(&c("on-failure"), TaskState::Shutdown, false, false));
    assert!(should_restart(&c("on-failure"), TaskState::Running, true, false));
    assert!(should_restart(&c(""), TaskState::Complete, false, false));
    assert!(should_restart(&c("any"), TaskState::Complete, false, false));
    // A job that completed is done, whatever the condition.
    assert!(!should_restart(&c("any"), TaskState::Complete, false, true));
    assert!(should_restart(&c("any"), TaskState::Failed, false, true));
}

#[test]
fn attempts_are_counted_from_the_slots_replacements() {
    let policy = p("on-failure", Some(2), 0);
    let first = task("t1", 0, 1, TaskState::Failed, "");
    let second = task("t2", 2, 3, TaskState::Failed, "t1");
    let third = task("t3", 4, 5, TaskState::Failed, "t2");
    let s = store_with(vec![first.clone().into_object(), second.clone().into_object()]);
    assert!(
        s.view(|s| attempts_left(s, &second, &policy, Timestamp::from_unix_nanos(4 * SEC))),
        "one restart used, two allowed"
    );
    let s = store_with(vec![
        first.into_object(),
        second.into_object(),
        third.clone().into_object(),
    ]);
    assert!(
        !s.view(|s| attempts_left(s, &third, &policy, Timestamp::from_unix_nanos(6 * SEC))),
        "two restarts used"
    );
    assert!(
        s.view(|s| attempts_left(
            s,
            &third,
            &p("on-failure", None, 0),
            Timestamp::from_unix_nanos(6 * SEC)
        )),
        "0 = unlimited"
    );
}

#[test]
fn a_new_task_template_starts_counting_again() {
    let policy = p("on-failure", Some(1), 0);
    let mut old = task("t1", 0, 1, TaskState::Failed, "t0");
    old.spec.force_update = 1;
    let current = task("t2", 2, 3, TaskState::Failed, "");
    let s = store_with(vec![old.into_object(), current.clone().into_object()]);
    assert!(s.view(|s| attempts_left(s, &current, &policy, Timestamp::from_unix_nanos(4 * SEC))));
}

#[test]
fn a_window_counts_only_recent_restarts() {
    // Restarts created at 10 s and 50 s; deciding at 65 s with a 30 s window sees one.
    let policy = p("on-failure", Some(2), 30);
    let a = task("t1", 0, 9, TaskState::Failed, "");
    let b = task("t2", 10, 49, TaskState::Failed, "t1");
    let c = task("t3", 50, 65, TaskState::Failed, "t2");
    let now = Timestamp::from_unix_nanos(65 * SEC);
    let s = store_with(vec![a.into_object(), b.into_object(), c.clone().into_object()]);
    assert!(s.view(|s| attempts_left(s, &c, &policy, now)));
    // With a 60 s window both count; much later, neither does.
    assert!(!s.view(|s| attempts_left(s, &c, &p("on-failure", Some(2), 60), now)));
    let later = Timestamp::from_unix_nanos(200 * SEC);
    assert!(s.view(|s| attempts_left(s, &c, &p("on-failure", Some(2), 60), later)));
}

#[test]
fn a_failed_task_is_replaced_after_the_delay_and_out_of_attempts_it_stays_down() {
    let svc = service(p("on-failure", Some(1), 0), ServiceMode::replicated(1));
    let mut failed = task("t1", 0, 1, TaskState::Failed, "");
    failed.desired_state = TaskState::Running;
    let txs = decide_on(
        vec![
            svc.clone().into_object(),
            node("n1", NodeState::Ready, Availability::Active),
            failed.clone().into_object(),
        ],
        2,
    );
    let (created, shut, _) = effects(&txs);
    assert_eq!(shut, vec!["t1"]);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].slot, 1);
    assert_eq!(created[0].restart_of, "t1");
    assert_eq!(created[0].desired_state, TaskState::Ready, "held for the delay");

    // The replacement failed too: one attempt was allowed, so it is only shut down.
    let mut second = task("t2", 2, 8, TaskState::Failed, "t1");
    second.desired_state = TaskState::Running;
    failed.desired_state = TaskState::Shutdown;
    let txs = decide_on(
        vec![
            svc.into_object(),
            node("n1", NodeState::Ready, Availability::Active),
            failed.into_object(),
            second.into_object(),
        ],
        9,
    );
    let (created, shut, _) = effects(&txs);
    assert!(created.is_empty());
    assert_eq!(shut, vec!["t2"]);
    let declined = txs
        .iter()
        .flat_map(|t| &t.actions)
        .any(|a| matches!(a, StoreAction::Update(Object::Task(t)) if t.id == "t2" && t.restart_declined));
    assert!(declined, "the task is marked so its slot is not filled again: {txs:?}");
}

#[test]
fn a_held_replacement_starts_after_its_delay_and_once_the_old_task_stopped() {
    let svc = service(p("any", None, 0), ServiceMode::replicated(1));
    let mut old = task("t1", 0, 1, TaskState::Running, "");
    old.status.state = TaskState::Running; // still stopping
    let mut new = task("t2", 10, 10, TaskState::Assigned, "t1");
    new.desired_state = TaskState::Ready;
    let objects = |old: &Task| {
        vec![
            svc.clone().into_object(),
            node("n1", NodeState::Ready, Availability::Active),
            old.clone().into_object(),
            new.clone().into_object(),
        ]
    };
    assert!(
        effects(&decide_on(objects(&old), 14)).2.is_empty(),
        "within the 5 s delay"
    );
    assert!(
        effects(&decide_on(objects(&old), 16)).2.is_empty(),
        "the old task still runs"
    );
    assert_eq!(
        effects(&decide_on(objects(&old), 71)).2,
        vec![("t2".to_string(), TaskState::Running)],
        "a minute is the longest it waits for the old task"
    );
    old.status.state = TaskState::Shutdown;
    assert_eq!(
        effects(&decide_on(objects(&old), 16)).2,
        vec![("t2".to_string(), TaskState::Running)]
    );
}

#[test]
fn tasks_of_a_down_or_drained_node_are_replaced_at_once() {
    let svc = service(p("any", None, 0), ServiceMode::replicated(2));
    let mut on_down = task("t1", 0, 0, TaskState::Running, "");
    on_down.desired_state = TaskState::Running;
    let mut on_drained = task("t2", 0, 0, TaskState::Running, "");
    on_drained.desired_state = TaskState::Running;
    on_drained.slot = 2;
    on_drained.node_id = "n2".into();
    let txs = decide_on(
        vec![
            svc.into_object(),
            node("n1", NodeState::Down, Availability::Active),
            node("n2", NodeState::Ready, Availability::Drain),
            on_down.into_object(),
            on_drained.into_object(),
        ],
        5,
    );
    let (created, mut shut, _) = effects(&txs);
    shut.sort();
    assert_eq!(shut, vec!["t1", "t2"]);
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|t| t.desired_state == TaskState::Running));
}

#[test]
fn completed_job_tasks_are_never_restarted_and_failed_ones_restart_toward_complete() {
    let mode = ServiceMode {
        replicated_job: Some(Default::default()),
        ..Default::default()
    };
    let svc = service(p("any", None, 0), mode);
    let mut done = task("t1", 0, 1, TaskState::Complete, "");
    done.desired_state = TaskState::Complete;
    done.job_iteration = Some(Version::default());
    let mut failed = task("t2", 0, 1, TaskState::Failed, "");
    failed.desired_state = TaskState::Complete;
    failed.job_iteration = Some(Version::default());
    failed.slot = 2;
    let mut old_iteration = failed.clone();
    old_iteration.id = "old".into();
    old_iteration.slot = 3;
    old_iteration.job_iteration = None;
    let txs = decide_on(
        vec![
            svc.into_object(),
            node("n1", NodeState::Ready, Availability::Active),
            done.into_object(),
            failed.into_object(),
            old_iteration.into_object(),
        ],
        2,
    );
    let (created, shut, _) = effects(&txs);
    assert_eq!(shut, vec!["t2"], "tasks of older iterations are not restarted");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].slot, 2);
}

#[test]
fn a_held_replacement_waits_for_every_older_task_of_its_slot() {
    let svc = service(p("any", None, 0), ServiceMode::replicated(1));
    // An older task still stopping, a newer one that already ended, and the held one.
    let mut stopping = task("a", 0, 0, TaskState::Running, "");
    stopping.status.state = TaskState::Running;
    let ended = task("b", 5, 6, TaskState::Shutdown, "");
    let mut held = task("c", 10, 10, TaskState::Assigned, "");
    held.update_of = "b".into();
    held.desired_state = TaskState::Ready;
    let txs = decide_on(
        vec![
            svc.into_object(),
            node("n1", NodeState::Ready, Availability::Active),
            stopping.into_object(),
            ended.into_object(),
            held.into_object(),
        ],
        12,
    );
    assert!(effects(&txs).2.is_empty(), "task a still runs in the slot");
}

/// Found by the fault suite (a leader whose wall clock ran minutes ahead): a replacement it
/// stamped in the future was held by the next leader until its own clock caught up.
#[test]
fn a_replacement_stamped_ahead_of_this_clock_is_not_held_until_the_clock_catches_up() {
    let svc = service(p("any", None, 0), ServiceMode::replicated(1));
    let mut old = task("t1", 0, 1, TaskState::Failed, "");
    old.status.state = TaskState::Failed;
    let mut new = task("t2", 600, 600, TaskState::Assigned, "t1");
    new.desired_state = TaskState::Ready;
    let objects = vec![
        svc.into_object(),
        node("n1", NodeState::Ready, Availability::Active),
        old.into_object(),
        new.into_object(),
    ];
    assert_eq!(
        effects(&decide_on(objects, 20)).2,
        vec![("t2".to_string(), TaskState::Running)],
        "stamped 580 s ahead: its 5 s delay counts as served"
    );
}

/// The restart controller sleeps until a held replacement's delay ends, not until its next
/// tick: `next_due` says when that is, and nothing once it has passed.
#[test]
fn the_next_restart_falls_due_when_its_delay_ends() {
    let svc = service(p("any", None, 0), ServiceMode::replicated(2));
    let mut first = task("t2", 10, 10, TaskState::Assigned, "t1");
    first.desired_state = TaskState::Ready;
    let mut second = task("t3", 12, 12, TaskState::Assigned, "t0");
    second.desired_state = TaskState::Ready;
    second.slot = 2;
    let mut plain = task("t4", 11, 11, TaskState::Assigned, "");
    plain.desired_state = TaskState::Ready;
    let store = store_with(vec![
        svc.into_object(),
        first.into_object(),
        second.into_object(),
        plain.into_object(),
    ]);
    let due_at = |now_s: i128| store.view(|s| next_due(s, Timestamp::from_unix_nanos(now_s * SEC)));
    assert_eq!(
        due_at(11),
        Some(std::time::Duration::from_secs(4)),
        "t2's 5 s delay ends at 15"
    );
    assert_eq!(due_at(16), Some(std::time::Duration::from_secs(1)), "then t3's, at 17");
    assert_eq!(due_at(17), None, "every delay has been served");
}
