//! Three raft nodes in one process over an in-memory transport: elections, forwarding,
//! restart from disk, snapshots with log purging, and catching up a new node by snapshot.

// All of this crate is test code, its in-memory app and transport included: a panic is how a
// test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;

use swarm_raft::App;
use swarm_raft::BoxFuture;
use swarm_raft::DataKey;
use swarm_raft::LogOwner;
use swarm_raft::ManagerAddr;
use swarm_raft::MembershipChange;
use swarm_raft::ProposeError;
use swarm_raft::RaftConfig;
use swarm_raft::RaftNode;
use swarm_raft::ReadError;
use swarm_raft::Rpc;
use swarm_raft::Transport;
use swarm_raft::TransportError;
use tokio::io::AsyncReadExt;

/// A key-value map; each command is `key=value`, and the result is the previous value.
#[derive(Default)]
struct Kv {
    map: Mutex<BTreeMap<String, (String, u64)>>,
}

impl App for Kv {
    fn apply(&self, index: u64, command: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(command).to_string();
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        let old = self.map.lock().unwrap().insert(k.to_string(), (v.to_string(), index));
        old.map(|o| o.0).unwrap_or_default().into_bytes()
    }
    fn snapshot(&self) -> Result<Vec<u8>, std::io::Error> {
        swarm_raft::encode(&*self.map.lock().unwrap())
    }
    fn restore(&self, data: &[u8]) -> Result<(), std::io::Error> {
        *self.map.lock().unwrap() = swarm_raft::decode(data, "kv")?;
        Ok(())
    }
}

impl Kv {
    fn get(&self, k: &str) -> Option<(String, u64)> {
        self.map.lock().unwrap().get(k).cloned()
    }
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

type Node = RaftNode<Kv>;

/// Routes calls to nodes registered by address; an unregistered address is unreachable.
#[derive(Default)]
struct Net {
    nodes: RwLock<HashMap<String, Arc<Node>>>,
    /// Nodes that receive nothing (their own calls still go out): a one-way cut.
    deaf: RwLock<std::collections::HashSet<String>>,
}

struct LocalTransport(Arc<Net>);

impl Transport for LocalTransport {
    fn call(
        &self,
        target: &ManagerAddr,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let node = self.0.nodes.read().unwrap().get(&target.addr).cloned();
        let node = node.filter(|_| !self.0.deaf.read().unwrap().contains(&target.addr));
        let addr = target.addr.clone();
        Box::pin(async move {
            let node = node.ok_or(TransportError::Unreachable {
                addr: addr.clone(),
                reason: "down".into(),
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
        prefix: Vec<u8>,
        snapshot: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let node = self.0.nodes.read().unwrap().get(&target.addr).cloned();
        let addr = target.addr.clone();
        Box::pin(async move {
            let node = node.ok_or(TransportError::Unreachable {
                addr: addr.clone(),
                reason: "down".into(),
            })?;
            let reader = (&prefix[..]).chain(&snapshot[..]);
            node.receive_snapshot(reader).await.map_err(|e| TransportError::Failed {
                addr,
                reason: e.to_string(),
            })
        })
    }
}

struct Harness {
    net: Arc<Net>,
    root: tempfile::TempDir,
    apps: HashMap<String, Arc<Kv>>,
    ids: HashMap<String, u64>,
    /// Each node's data key, kept across its restarts.
    keys: HashMap<String, DataKey>,
}

fn config() -> RaftConfig {
    RaftConfig {
        heartbeat_interval: Duration::from_millis(100),
        election_timeout_min: Duration::from_millis(600),
        election_timeout_max: Duration::from_millis(1200),
        propose_timeout: Duration::from_secs(3),
        ..RaftConfig::default()
    }
}

impl Harness {
    fn new() -> Self {
        Self {
            net: Arc::default(),
            root: tempfile::tempdir().unwrap(),
            apps: HashMap::new(),
            ids: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Nodes a, b and c, all voters, with a bootstrapped as the first leader.
    async fn three_voters() -> (Self, Arc<Node>) {
        let mut h = Self::new();
        let a = h.start("a", 1).await;
        a.bootstrap(Self::addr("a")).await.unwrap();
        h.wait_leader(&["a"]).await;
        h.start("b", 2).await;
        h.start("c", 3).await;
        for (id, name) in [(2, "b"), (3, "c")] {
            a.change_membership(MembershipChange::AddManager {
                id,
                addr: Self::addr(name),
            })
            .await
            .unwrap();
        }
        (h, a)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn addr(name: &str) -> ManagerAddr {
        ManagerAddr {
            node_id: name.to_string(),
            addr: name.to_string(),
        }
    }

    /// Starts (or restarts from disk) node `name`, with a fresh state machine.
    async fn start(&mut self, name: &str, id: u64) -> Arc<Node> {
        let app = Arc::new(Kv::default());
        let owner = LogOwner {
            cluster_id: "c1".into(),
            raft_id: id,
        };
        let key = self
            .keys
            .entry(name.to_string())
            .or_insert_with(|| DataKey::generate().unwrap())
            .clone();
        let node = RaftNode::open(
            &self.dir(name),
            owner,
            &key,
            app.clone(),
            Arc::new(LocalTransport(self.net.clone())),
            config(),
        )
        .await
        .unwrap();
        let node = Arc::new(node);
        self.net.nodes.write().unwrap().insert(name.to_string(), node.clone());
        self.apps.insert(name.to_string(), app);
        self.ids.insert(name.to_string(), id);
        node
    }

    async fn stop(&mut self, name: &str) {
        let node = self.net.nodes.write().unwrap().remove(name).unwrap();
        node.shutdown().await;
    }

    fn node(&self, name: &str) -> Arc<Node> {
        self.net.nodes.read().unwrap().get(name).cloned().unwrap()
    }

    async fn wait_leader(&self, among: &[&str]) -> String {
        for _ in 0..200 {
            for name in among {
                if let Some(n) = self.net.nodes.read().unwrap().get(*name)
                    && n.status().is_leader()
                {
                    return name.to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader among {among:?}");
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Seed 909357675: a manager restarted in place answered its first status with openraft's blank
/// metrics (term 0, nothing applied), as if its term and applied index had gone back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_reports_its_term_and_applied_index_as_soon_as_it_is_open() {
    let mut h = Harness::new();
    let a = h.start("a", 1).await;
    a.bootstrap(Harness::addr("a")).await.unwrap();
    h.wait_leader(&["a"]).await;
    let mut last = 0;
    for i in 0..20 {
        last = a.propose(format!("k{i}=v{i}").into_bytes()).await.unwrap().index;
    }
    wait_until("the last write in the metrics", || a.status().applied >= Some(last)).await;
    let before = a.status();
    assert!(before.term >= 1, "{before:?}");
    drop(a);
    h.stop("a").await;

    let a = h.start("a", 1).await;
    let after = a.status();
    assert!(
        after.term >= before.term,
        "term went back: {} then {}",
        before.term,
        after.term
    );
    assert!(
        after.applied >= before.applied,
        "applied index went back: {:?} then {:?}",
        before.applied,
        after.applied
    );
    h.stop("a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_forward_restart_and_snapshot() {
    let mut h = Harness::new();
    let a = h.start("a", 1).await;
    a.bootstrap(Harness::addr("a")).await.unwrap();
    h.wait_leader(&["a"]).await;
    a.propose(b"k0=v0".to_vec()).await.unwrap();

    // Phase: two more managers join, one by one, as learners then voters.
    h.start("b", 2).await;
    h.start("c", 3).await;
    a.change_membership(MembershipChange::AddManager {
        id: 2,
        addr: Harness::addr("b"),
    })
    .await
    .unwrap();
    // Ask through a follower: the change is forwarded to the leader.
    h.node("b")
        .change_membership(MembershipChange::AddManager {
            id: 3,
            addr: Harness::addr("c"),
        })
        .await
        .unwrap();
    assert_eq!(a.status().voters.len(), 3);

    // Phase: writes from a follower are forwarded and readable there right away.
    let p = h.node("c").propose(b"k1=v1".to_vec()).await.unwrap();
    assert_eq!(
        h.apps["c"].get("k1"),
        Some(("v1".to_string(), p.index)),
        "read-your-writes on the follower"
    );

    // Phase: kill the leader; the others elect a new one and accept writes.
    let leader = h.wait_leader(&["a", "b", "c"]).await;
    h.stop(&leader).await;
    let rest: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != leader).collect();
    let new_leader = h.wait_leader(&rest).await;
    assert_ne!(new_leader, leader);
    h.node(rest[0]).propose(b"k2=v2".to_vec()).await.unwrap();

    // Phase: the old leader restarts from disk and catches up.
    let id = h.ids[&leader];
    h.start(&leader, id).await;
    let app = h.apps[&leader].clone();
    wait_until("restarted node catches up", || app.get("k2").is_some()).await;
    assert_eq!(
        app.get("k0").map(|v| v.0),
        Some("v0".to_string()),
        "state before the crash was restored"
    );

    // Phase: with a short snapshot interval, snapshots happen and the log is purged.
    for n in ["a", "b", "c"] {
        h.node(n).set_log_policy(20, 5);
    }
    for i in 0..60 {
        h.node("a").propose(format!("s{i}={i}").into_bytes()).await.unwrap();
    }
    let leader = h.wait_leader(&["a", "b", "c"]).await;
    let ln = h.node(&leader);
    wait_until("snapshot and purge on the leader", || {
        let s = ln.status();
        s.snapshot.unwrap_or(0) >= 40 && s.purged.unwrap_or(0) >= 30
    })
    .await;

    // Phase: a fourth node joins late and can only catch up through a snapshot.
    h.start("d", 4).await;
    h.node("b")
        .change_membership(MembershipChange::AddManager {
            id: 4,
            addr: Harness::addr("d"),
        })
        .await
        .unwrap();
    let d = h.apps["d"].clone();
    let expected = h.apps[&leader].len();
    wait_until("late joiner has the whole state", || d.len() == expected).await;
    assert!(
        h.node("d").status().snapshot.is_some(),
        "late joiner installed a snapshot"
    );

    // Phase: without a quorum, writes fail quickly with a clear error, and reads still work.
    let survivors = ["a", "b"];
    h.stop("c").await;
    h.stop("d").await;
    // Four voters, two down: no quorum.
    let err = h.node(survivors[0]).propose(b"nq=1".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, ProposeError::NoQuorum { .. } | ProposeError::NoLeader { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("quorum"), "{err}");
    assert!(h.apps["a"].get("k1").is_some());
    for n in survivors {
        h.stop(n).await;
    }
}

/// Found by the fault suite: a follower answered reads from a store that lagged the leader. A
/// read barrier on a follower that hears nothing fails instead of serving what it has; once it
/// hears again, the barrier returns only after it applied what the leader had committed. A
/// leader cut off from the majority cannot confirm a read either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_barrier_never_lets_a_lagging_manager_serve_a_stale_read() {
    let (h, _) = Harness::three_voters().await;
    let leader = h.wait_leader(&["a", "b", "c"]).await;
    let lagging = ["a", "b", "c"].into_iter().find(|n| *n != leader).unwrap().to_string();
    h.net.deaf.write().unwrap().insert(lagging.clone());
    let p = h.node(&leader).propose(b"k1=v1".to_vec()).await.unwrap();
    assert!(h.apps[&lagging].get("k1").is_none(), "the deaf follower lags");
    let refused = h.node(&lagging).read_barrier().await;
    assert!(refused.is_err(), "a lagging follower passed the barrier: {refused:?}");
    assert!(h.apps[&lagging].get("k1").is_none());

    h.net.deaf.write().unwrap().remove(&lagging);
    let mut passed = None;
    for _ in 0..5 {
        if let Ok(index) = h.node(&lagging).read_barrier().await {
            passed = Some(index);
            break;
        }
    }
    let index = passed.expect("the barrier passes once the follower hears the leader again");
    assert!(
        index >= p.index,
        "read index {index} is before the write at {}",
        p.index
    );
    assert_eq!(h.apps[&lagging].get("k1").map(|v| v.0), Some("v1".to_string()));

    let leader = h.wait_leader(&["a", "b", "c"]).await;
    for n in ["a", "b", "c"].into_iter().filter(|n| *n != leader) {
        h.net.deaf.write().unwrap().insert(n.to_string());
    }
    let err = h.node(&leader).read_barrier().await.unwrap_err();
    assert!(
        matches!(err, ReadError::NoQuorum { .. } | ReadError::NoLeader { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_another_cluster_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let key = DataKey::generate().unwrap();
    let open = |cluster: &str, id: u64| {
        let owner = LogOwner {
            cluster_id: cluster.into(),
            raft_id: id,
        };
        RaftNode::open(
            root.path(),
            owner,
            &key,
            Arc::new(Kv::default()),
            Arc::new(LocalTransport(net.clone())),
            config(),
        )
    };
    let node = open("c1", 1).await.unwrap();
    node.shutdown().await;
    drop(node);
    let err = open("c2", 1).await.err().expect("must refuse");
    assert!(err.to_string().contains("belongs to cluster c1"), "{err}");
}

/// A manager that has been a member must not start over with an empty log: with its log files
/// lost and only the directory's LOCK left, it would forget its votes and could vote twice in
/// a term. Opened as an existing log, it is refused; a new member's log is created as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_lost_log_is_refused_even_if_its_lock_survives() {
    let root = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let key = DataKey::generate().unwrap();
    let open = |existing_log: bool| {
        let owner = LogOwner {
            cluster_id: "c1".into(),
            raft_id: 1,
        };
        RaftNode::open(
            root.path(),
            owner,
            &key,
            Arc::new(Kv::default()),
            Arc::new(LocalTransport(net.clone())),
            RaftConfig {
                existing_log,
                ..config()
            },
        )
    };
    let err = open(true).await.err().expect("no log yet");
    assert!(err.to_string().contains("has no owner record"), "{err}");
    let node = open(false).await.unwrap();
    node.shutdown().await;
    drop(node);
    let node = open(true).await.expect("the log exists now");
    node.shutdown().await;
    drop(node);
    let log_dir = root.path().join("log");
    for entry in std::fs::read_dir(&log_dir).unwrap().flatten() {
        if entry.file_name() != "LOCK" {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    assert!(log_dir.join("LOCK").exists());
    let err = open(true).await.err().expect("the log files are gone");
    assert!(err.to_string().contains("its files are lost"), "{err}");
}

/// Copies a node's data dir, as it is on disk now.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Found by the fault suite (seed 22898968): a leader's write of its newest entries failed (a
/// full disk) after it had sent them to the followers, which stored them and so committed them.
/// Its raft stopped; the manager started it again in place within the election timeout, and
/// openraft's leader restore let it lead the same term again with a log that ended before those
/// entries. It wrote other entries under the same log ids; the followers, holding those ids
/// already, kept their own, and the managers' stores went apart. A restarted leader must win a
/// new term: its log is then compared with the others' and it catches up first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_disk_lost_its_newest_entries_does_not_lead_its_old_term_again() {
    let (mut h, a) = Harness::three_voters().await;
    assert_eq!(h.wait_leader(&["a", "b", "c"]).await, "a");
    a.propose(b"k1=v1".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = h.root.path().join("a-before");
    copy_dir(&h.dir("a"), &before);

    // The followers store k2 and it commits; then the leader's disk turns out not to hold it.
    let term = a.status().term;
    let k2 = a.propose(b"k2=v2".to_vec()).await.unwrap();
    drop(a);
    h.stop("a").await;
    std::fs::remove_dir_all(h.dir("a")).unwrap();
    copy_dir(&before, &h.dir("a"));
    let a = h.start("a", 1).await;

    let leader = h.wait_leader(&["a", "b", "c"]).await;
    let status = h.node(&leader).status();
    assert!(
        status.term > term,
        "{leader} leads term {} again after the restart (was {term})",
        status.term
    );
    let k3 = a.propose(b"k3=v3".to_vec()).await.unwrap();
    for n in ["a", "b", "c"] {
        let app = h.apps[n].clone();
        wait_until("every manager applies k3", || app.get("k3").is_some()).await;
        assert_eq!(app.get("k2"), Some(("v2".to_string(), k2.index)), "{n} lost k2");
        assert_eq!(app.get("k3"), Some(("v3".to_string(), k3.index)), "{n} diverged");
    }
}
