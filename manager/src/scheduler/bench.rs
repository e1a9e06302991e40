//! `make bench-sched`: places 100,000 pending tasks on 1,000 nodes through the real scheduler
//! and the real store (every decision is encoded as a raft proposal and applied by the state
//! machine, as on a manager; raft's disk and network are left out). Prints tasks per second.

use std::time::Instant;

use swarm_model::Availability;
use swarm_model::Node;
use swarm_model::NodeState;
use swarm_model::Placement;
use swarm_model::PlacementPreference;
use swarm_model::Service;
use swarm_model::ServiceMode;
use swarm_model::SpreadOver;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;
use swarm_model::Version;
use swarm_raft::App;

use super::decide;
use crate::commit::MAX_TXS_PER_PROPOSAL;
use crate::store::Proposal;
use crate::store::Store;
use crate::store::StoreAction;
use crate::store::Transaction;

const NODES: usize = 1_000;
const TASKS: usize = 100_000;
const RUNS: usize = 3;

struct Applier {
    store: Store,
    index: u64,
}

impl Applier {
    fn apply(&mut self, mut txs: Vec<Transaction>) {
        while !txs.is_empty() {
            let rest = txs.split_off(txs.len().min(MAX_TXS_PER_PROPOSAL));
            let proposal = Proposal {
                txs: std::mem::replace(&mut txs, rest),
            };
            self.index += 1;
            let out = self
                .store
                .apply(self.index, &Store::encode_proposal(&proposal).expect("encode"));
            let results = Store::decode_results(&out).expect("decode");
            assert!(results.iter().all(|r| r.is_ok()), "refused: {results:?}");
        }
    }
}

/// A store with the nodes, the service and its pending tasks.
fn setup(placement: Option<Placement>) -> Applier {
    let mut a = Applier {
        store: Store::new(),
        index: 0,
    };
    let mut objects = Vec::new();
    for i in 0..NODES {
        let mut n = Node {
            id: format!("node{i:04}"),
            ..Default::default()
        };
        n.status.state = NodeState::Ready;
        n.spec.availability = Availability::Active;
        n.spec.labels.insert("zone".into(), format!("z{}", i % 10));
        n.spec.labels.insert("half".into(), (i % 2).to_string());
        n.description.resources.nano_cpus = 64_000_000_000;
        n.description.resources.memory_bytes = 256 << 30;
        objects.push(n.into_object());
    }
    let mut svc = Service {
        id: "svc".into(),
        ..Default::default()
    };
    svc.spec.name = "bench".into();
    svc.spec.mode = ServiceMode::replicated(TASKS as u64);
    svc.spec.task_template.placement = placement.clone();
    objects.push(svc.into_object());
    for i in 0..TASKS {
        let mut t = Task {
            id: format!("task{i:06}"),
            service_id: "svc".into(),
            slot: i as u64 + 1,
            desired_state: TaskState::Running,
            spec_version: Some(Version::new(1)),
            created_at: Timestamp::from_unix_nanos(i as i128),
            ..Default::default()
        };
        t.spec.placement = placement.clone();
        t.status.state = TaskState::Pending;
        objects.push(t.into_object());
    }
    a.apply(
        objects
            .into_iter()
            .map(|o| Transaction::one(StoreAction::Create(o)))
            .collect(),
    );
    a
}

/// Seconds to place every task (scheduler passes and their commits until nothing is pending),
/// and how much of it the scheduler's decisions took.
fn place_all(a: &mut Applier) -> (f64, f64) {
    let start = Instant::now();
    let mut deciding = 0.0;
    loop {
        let t = Instant::now();
        let txs = a.store.view(|s| decide(s, Timestamp::now()));
        deciding += t.elapsed().as_secs_f64();
        let assigned = txs
            .iter()
            .flat_map(|t| &t.actions)
            .filter(|x| matches!(x, StoreAction::TaskAssign { .. }))
            .count();
        if assigned == 0 {
            break;
        }
        a.apply(txs);
    }
    let secs = start.elapsed().as_secs_f64();
    let placed = a
        .store
        .view(|s| s.tasks.iter().filter(|t| t.status.state == TaskState::Assigned).count());
    assert_eq!(placed, TASKS, "every task placed");
    (secs, deciding)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run_case(name: &str, placement: Option<Placement>) {
    let (runs, deciding): (Vec<f64>, Vec<f64>) = (0..RUNS)
        .map(|_| {
            let mut a = setup(placement.clone());
            place_all(&mut a)
        })
        .unzip();
    let m = median(runs.clone());
    println!(
        "bench-sched {name}: {TASKS} tasks on {NODES} nodes: median {:.2} s = {:.0} tasks/s, of which scheduler \
         decisions {:.2} s (runs: {})",
        m,
        TASKS as f64 / m,
        median(deciding),
        runs.iter().map(|r| format!("{r:.2} s")).collect::<Vec<_>>().join(", ")
    );
}

#[test]
#[ignore = "benchmark: run with make bench-sched"]
fn bench_sched_100k_tasks_on_1k_nodes() {
    run_case("plain", None);
    run_case(
        "constraint node.labels.half==1",
        Some(Placement {
            constraints: Some(vec!["node.labels.half==1".into()]),
            ..Default::default()
        }),
    );
    run_case(
        "spread over 10 zones",
        Some(Placement {
            preferences: Some(vec![PlacementPreference {
                spread: Some(SpreadOver {
                    spread_descriptor: "node.labels.zone".into(),
                }),
            }]),
            ..Default::default()
        }),
    );
}
