//! Committed raft entries per second: three raft nodes of swarm-rs's raft crate in one process,
//! each with its own log on disk (real fsync, sealed entries) and an in-memory transport, under
//! many concurrent proposals. This is the ceiling of the replicated log alone; the Engine API
//! figures add the store, HTTP and forwarding on top. The disk's own fsync latency is measured
//! beside it, in the same directory.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use swarm_raft::App;
use swarm_raft::BoxFuture;
use swarm_raft::DataKey;
use swarm_raft::LogOwner;
use swarm_raft::ManagerAddr;
use swarm_raft::MembershipChange;
use swarm_raft::RaftConfig;
use swarm_raft::RaftNode;
use swarm_raft::Rpc;
use swarm_raft::Transport;
use swarm_raft::TransportError;

use super::report::Figure;
use super::report::Goal;
use super::report::record;

const GROUP: &str = "Raft log";
/// The size of one service-create command in the store's encoding, roughly.
const ENTRY_BYTES: usize = 512;

/// Counts applied commands; nothing else.
#[derive(Default)]
struct Counter(AtomicU64);

impl App for Counter {
    fn apply(&self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Vec::new()
    }
    fn snapshot(&self) -> Result<Vec<u8>, std::io::Error> {
        swarm_raft::encode(&self.0.load(Ordering::Relaxed))
    }
    fn restore(&self, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.store(swarm_raft::decode(data, "counter")?, Ordering::Relaxed);
        Ok(())
    }
}

type Node = RaftNode<Counter>;

/// The nodes by address.
#[derive(Default)]
struct InProcess(RwLock<HashMap<String, Arc<Node>>>);

/// Calls go straight to the target node's RPC handler.
struct Wire(Arc<InProcess>);

impl Transport for Wire {
    fn call(
        &self,
        target: &ManagerAddr,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let node = self.0.0.read().unwrap().get(&target.addr).cloned();
        let addr = target.addr.clone();
        Box::pin(async move {
            let node = node.ok_or(TransportError::Unreachable {
                addr: addr.clone(),
                reason: "not started".into(),
            })?;
            tokio::time::timeout(timeout, node.handle_rpc(rpc, &body))
                .await
                .map_err(|_| TransportError::Timeout {
                    addr: addr.clone(),
                    timeout,
                })?
                .map_err(|e| TransportError::Failed {
                    addr,
                    reason: e.to_string(),
                })
        })
    }

    fn send_snapshot(
        &self,
        target: &ManagerAddr,
        _prefix: Vec<u8>,
        _snapshot: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let addr = target.addr.clone();
        Box::pin(async move {
            Err(TransportError::Failed {
                addr,
                reason: "the benchmark takes no snapshots".into(),
            })
        })
    }
}

fn addr(name: &str) -> ManagerAddr {
    ManagerAddr {
        node_id: name.to_string(),
        addr: name.to_string(),
    }
}

/// Three voters with the daemon's raft timing; returns the leader.
async fn three_voters(root: &std::path::Path, net: &Arc<InProcess>) -> Arc<Node> {
    let mut nodes = Vec::new();
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        let owner = LogOwner {
            cluster_id: "bench".into(),
            raft_id: id,
        };
        let key = DataKey::generate().unwrap();
        let node = RaftNode::open(
            &root.join(name),
            owner,
            &key,
            Arc::new(Counter::default()),
            Arc::new(Wire(net.clone())),
            RaftConfig::default(),
        )
        .await
        .unwrap();
        let node = Arc::new(node);
        net.0.write().unwrap().insert(name.to_string(), node.clone());
        nodes.push(node);
    }
    let leader = nodes[0].clone();
    leader.bootstrap(addr("a")).await.unwrap();
    let start = Instant::now();
    while !leader.status().is_leader() {
        assert!(start.elapsed() < Duration::from_secs(30), "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (id, name) in [(2, "b"), (3, "c")] {
        leader
            .change_membership(MembershipChange::AddManager { id, addr: addr(name) })
            .await
            .unwrap();
    }
    leader
}

/// Entries committed per second by `proposers` concurrent proposers on the leader.
async fn round(leader: &Arc<Node>, proposers: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..proposers {
        let (leader, done) = (leader.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                if leader.propose(vec![b'x'; ENTRY_BYTES]).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The disk's fsync latency in milliseconds: a 4 KiB append then `fdatasync`, 1,000 times.
fn fsync_latencies(dir: &std::path::Path) -> Vec<f64> {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let block = [7u8; 4096];
    let mut out = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench"]
async fn bench_raft_committed_entries_per_second() {
    let root = tempfile::Builder::new().prefix("swarm-bench-raft-").tempdir().unwrap();
    let lat = fsync_latencies(root.path());
    let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
    let fsync_note = format!("disk fsync (4 KiB append + fdatasync) p50 {p50:.2} ms, p99 {p99:.2} ms");
    record(
        Figure::new(GROUP, "disk fsync latency, p50", "ms", vec![p50], Goal::None)
            .note(format!("1,000 × 4 KiB append + fdatasync in /tmp; p99 {p99:.2} ms")),
    );
    record(Figure::new(
        GROUP,
        "disk fsync latency, p99",
        "ms",
        vec![p99],
        Goal::None,
    ));

    let net = Arc::new(InProcess::default());
    let leader = three_voters(root.path(), &net).await;
    for proposers in [3usize, 256, 1024] {
        let before = leader.detailed_status().log_writes;
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(round(&leader, proposers, 5).await);
        }
        let after = leader.detailed_status().log_writes;
        let entries = after.entries_written - before.entries_written;
        let fsyncs = (after.fsyncs - before.fsyncs).max(1);
        let goal = if proposers >= 256 {
            Goal::AtLeast(30_000.0)
        } else {
            Goal::None
        };
        record(
            Figure::new(
                GROUP,
                &format!("committed entries/s, 3 voters, {proposers} concurrent proposals"),
                "entries/s",
                runs,
                goal,
            )
            .note(format!(
                "{ENTRY_BYTES}-byte entries; the leader wrote {:.1} entries per fsync; {fsync_note}",
                entries as f64 / fsyncs as f64
            )),
        );
    }
    let nodes: Vec<Arc<Node>> = net.0.write().unwrap().drain().map(|(_, n)| n).collect();
    for n in nodes {
        n.shutdown().await;
    }
}
