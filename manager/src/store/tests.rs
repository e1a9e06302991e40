use swarm_model::Kind;
use swarm_model::Object;
use swarm_model::Service;
use swarm_model::ServiceSpec;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::Timestamp;
use swarm_model::Version;
use swarm_raft::App;

use super::*;

fn service(id: &str, name: &str, version: u64) -> Service {
    Service {
        id: id.to_string(),
        version: Version::new(version),
        created_at: Timestamp::now(),
        spec: ServiceSpec {
            name: name.to_string(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn apply(store: &Store, index: u64, txs: Vec<Vec<StoreAction>>) -> TxResults {
    let proposal = Proposal {
        txs: txs.into_iter().map(|actions| Transaction { actions }).collect(),
    };
    let out = store.apply(index, &Store::encode_proposal(&proposal).unwrap());
    Store::decode_results(&out).unwrap()
}

#[test]
fn create_sets_version_to_the_raft_index() {
    let store = Store::new();
    let res = apply(
        &store,
        7,
        vec![vec![StoreAction::Create(service("s1", "web", 0).into_object())]],
    );
    assert_eq!(res, vec![Ok(())]);
    let s = store.view(|st| st.services.get("s1").cloned()).unwrap();
    assert_eq!(s.version, Version::new(7));
    assert_eq!(s.spec_version, Some(Version::new(7)));
    assert_eq!(store.applied_index(), 7);
}

#[test]
fn duplicate_names_and_stale_versions_are_refused() {
    let store = Store::new();
    apply(
        &store,
        1,
        vec![vec![StoreAction::Create(service("s1", "web", 0).into_object())]],
    );
    let res = apply(
        &store,
        2,
        vec![vec![StoreAction::Create(service("s2", "web", 0).into_object())]],
    );
    assert_eq!(
        res,
        vec![Err(StoreError::NameConflict {
            kind: Kind::Service,
            name: "web".into()
        })]
    );
    // An update carrying the version it read (1) succeeds once; a second with the same version is stale.
    let mut s = store.view(|st| st.services.get("s1").cloned()).unwrap();
    s.spec.labels.insert("a".into(), "b".into());
    assert_eq!(
        apply(&store, 3, vec![vec![StoreAction::Update(s.clone().into_object())]]),
        vec![Ok(())]
    );
    let res = apply(&store, 4, vec![vec![StoreAction::Update(s.into_object())]]);
    assert_eq!(res[0].as_ref().unwrap_err().to_string(), "update out of sequence");
}

#[test]
fn a_failing_action_rolls_back_its_whole_transaction_but_not_others() {
    let store = Store::new();
    let res = apply(
        &store,
        5,
        vec![
            vec![
                StoreAction::Create(service("s1", "a", 0).into_object()),
                StoreAction::Remove {
                    kind: Kind::Service,
                    id: "missing".into(),
                    version: None,
                },
            ],
            vec![StoreAction::Create(service("s2", "b", 0).into_object())],
        ],
    );
    assert_eq!(res[0].as_ref().unwrap_err().to_string(), "service missing not found");
    assert_eq!(res[1], Ok(()));
    store.view(|st| {
        assert!(st.services.get("s1").is_none(), "rolled back");
        assert!(st.services.by_name("a").is_none(), "name index rolled back");
        assert!(st.services.get("s2").is_some());
    });
}

#[test]
fn task_indexes_follow_updates_and_snapshots() {
    let store = Store::new();
    let task = |id: &str, node: &str, slot: u64| Task {
        id: id.into(),
        service_id: "s1".into(),
        node_id: node.into(),
        slot,
        ..Default::default()
    };
    apply(
        &store,
        1,
        vec![vec![
            StoreAction::Create(task("t1", "n1", 1).into_object()),
            StoreAction::Create(task("t2", "n1", 2).into_object()),
        ]],
    );
    let mut t2 = store.view(|s| s.tasks.get("t2").cloned()).unwrap();
    t2.node_id = "n2".into();
    apply(&store, 2, vec![vec![StoreAction::Update(t2.into_object())]]);
    let check = |store: &Store| {
        store.view(|s| {
            assert_eq!(s.tasks_by_service("s1").count(), 2);
            assert_eq!(
                s.tasks_by_node("n1").map(|t| t.id.clone()).collect::<Vec<_>>(),
                vec!["t1"]
            );
            assert_eq!(s.tasks_by_node("n2").count(), 1);
            assert_eq!(s.tasks_by_slot("s1", 2).count(), 1);
        })
    };
    check(&store);
    let snap = store.snapshot().unwrap();
    let other = Store::new();
    other.restore(&snap).unwrap();
    check(&other);
    assert_eq!(other.applied_index(), 2);
}

#[tokio::test]
async fn watchers_see_each_change_then_a_commit() {
    let store = Store::new();
    let (count, mut watcher) = store.view_and_watch(|s| s.services.len());
    assert_eq!(count, 0);
    apply(
        &store,
        9,
        vec![vec![StoreAction::Create(service("s1", "web", 0).into_object())]],
    );
    let batch = watcher.next().await.unwrap();
    assert!(matches!(&batch[0], Event::Create(Object::Service(s)) if s.id == "s1"));
    assert_eq!(batch[1], Event::Commit { index: 9 });
}

/// A watcher that stops reading used to queue every change forever (a session whose node
/// stopped reading grew the leader's memory). Its queue now stops at WATCH_CAPACITY batches,
/// and when it reads again it is told to re-read the state, then gets the changes after that.
#[tokio::test]
async fn a_watcher_that_stops_reading_is_bounded_and_told_to_resync() {
    let store = Store::new();
    let mut stalled = store.watch();
    let mut reading = store.watch();
    let total = WATCH_CAPACITY as u64 + 500;
    for i in 1..=total {
        apply(
            &store,
            i,
            vec![vec![StoreAction::Create(
                service(&format!("s{i}"), &format!("n{i}"), 0).into_object(),
            )]],
        );
        while reading.try_next().is_some() {}
    }
    assert_eq!(
        stalled.rx.len(),
        WATCH_CAPACITY,
        "the queue stops growing at its capacity"
    );
    let first = stalled.next().await.unwrap();
    assert!(matches!(first[..], [Event::Restored { .. }]), "{first:?}");
    assert_eq!(stalled.rx.len(), 0, "what was queued is dropped: the state holds it");
    assert_eq!(store.view(|s| s.services.len()) as u64, total);
    apply(
        &store,
        total + 1,
        vec![vec![StoreAction::Create(service("late", "late", 0).into_object())]],
    );
    let next = stalled.next().await.unwrap();
    assert!(
        matches!(next[0], Event::Create(_)),
        "changes after the resync arrive: {next:?}"
    );
}

#[test]
fn garbage_command_is_refused_not_panicked() {
    let store = Store::new();
    let out = store.apply(3, b"\xc1 not msgpack");
    let res = Store::decode_results(&out).unwrap();
    assert!(matches!(&res[0], Err(StoreError::Invalid(_))));
}
