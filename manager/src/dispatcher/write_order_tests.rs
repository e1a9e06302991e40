//! The dispatcher against a one-manager raft on disk: the order of its writes, without processes.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::Node;
use swarm_model::NodeDescription;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::StoreObject;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_raft::BoxFuture;
use swarm_raft::DataKey;
use swarm_raft::LogOwner;
use swarm_raft::ManagerAddr;
use swarm_raft::RaftConfig;
use swarm_raft::RaftNode;
use swarm_raft::Rpc;
use swarm_raft::Transport;
use swarm_raft::TransportError;

use super::Dispatcher;
use crate::commit::Committer;
use crate::store::Store;
use crate::store::StoreAction;

/// A manager alone: it never reaches anybody.
struct Alone;

impl Transport for Alone {
    fn call(
        &self,
        target: &ManagerAddr,
        _: Rpc,
        _: Vec<u8>,
        _: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let addr = target.addr.clone();
        Box::pin(async move {
            Err(TransportError::Unreachable {
                addr,
                reason: "alone".into(),
            })
        })
    }

    fn send_snapshot(
        &self,
        target: &ManagerAddr,
        _: Vec<u8>,
        _: Vec<u8>,
        _: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        self.call(target, Rpc::Forward, Vec::new(), Duration::ZERO)
    }
}

struct Leader {
    _dir: tempfile::TempDir,
    raft: Arc<RaftNode<Store>>,
    store: Arc<Store>,
    dispatcher: Arc<Dispatcher>,
}

impl Leader {
    /// A leading, dispatching manager whose store holds a Ready node `n1`.
    async fn with_ready_node() -> Self {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let store = Arc::new(Store::new());
        let owner = LogOwner {
            cluster_id: "c1".into(),
            raft_id: 1,
        };
        let config = RaftConfig {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            ..RaftConfig::default()
        };
        let key = DataKey::generate().expect("a data key");
        let raft = RaftNode::open(dir.path(), owner, &key, store.clone(), Arc::new(Alone), config)
            .await
            .expect("open raft");
        let raft = Arc::new(raft);
        let me = ManagerAddr {
            node_id: "m1".into(),
            addr: "127.0.0.1:1".into(),
        };
        raft.bootstrap(me).await.expect("bootstrap");
        for _ in 0..100 {
            if raft.status().is_leader() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let committer = Arc::new(Committer::new(raft.clone()));
        let node = Node {
            id: "n1".into(),
            status: NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: "10.0.0.1".into(),
            },
            ..Default::default()
        };
        committer
            .commit(vec![StoreAction::Create(node.into_object())])
            .await
            .expect("create the node");
        let dispatcher = Arc::new(Dispatcher::new(store.clone(), raft.clone(), committer));
        dispatcher.active.store(true, std::sync::atomic::Ordering::Relaxed);
        Self {
            _dir: dir,
            raft,
            store,
            dispatcher,
        }
    }

    fn state_of(&self, id: &str) -> Option<NodeState> {
        self.store.view(|s| s.nodes.get(id).map(|n| n.status.state))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_session_opens_while_it_is_marked_down_ends_ready() {
    let leader = Leader::with_ready_node().await;
    // The heartbeat check found n1 silent; before its Down is written, n1 opens a session,
    // whose Ready changes nothing (n1 is still Ready).
    let silent = leader
        .store
        .view(|s| s.nodes.get("n1").map(|n| n.status.clone()))
        .expect("n1");
    let request = SessionRequest {
        description: NodeDescription::default(),
    };
    let _session = leader
        .dispatcher
        .open_session("n1", "10.0.0.1".into(), request)
        .await
        .expect("the session opens");
    assert_eq!(leader.state_of("n1"), Some(NodeState::Ready));

    leader.dispatcher.mark_down(vec![("n1".to_string(), silent)]).await;

    assert_eq!(
        leader.state_of("n1"),
        Some(NodeState::Ready),
        "a node with a session must not stay Down until its next heartbeat"
    );
    leader.dispatcher.step_down();
    leader.raft.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_session_is_marked_down() {
    let leader = Leader::with_ready_node().await;
    let silent = leader
        .store
        .view(|s| s.nodes.get("n1").map(|n| n.status.clone()))
        .expect("n1");

    leader.dispatcher.mark_down(vec![("n1".to_string(), silent)]).await;

    assert_eq!(leader.state_of("n1"), Some(NodeState::Down));
    let message = leader
        .store
        .view(|s| s.nodes.get("n1").map(|n| n.status.message.clone()));
    assert_eq!(message.as_deref(), Some("heartbeat failure"));
    leader.raft.shutdown().await;
}

/// A killed node closes its session's connection at once: it is Down half a period later,
/// not after a period and a half of missed beats, and the closed session takes no heartbeats.
/// An open session keeps its node Ready through that grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_session_stream_closes_is_down_after_the_reconnect_grace() {
    let leader = Leader::with_ready_node().await;
    // A 4 s period: the half-period grace (2 s) is far inside the silence limit (6 s), so only
    // the close can mark the node Down within this test.
    let mut cluster = swarm_model::Cluster {
        id: "c1".into(),
        ..Default::default()
    };
    cluster.spec.dispatcher.heartbeat_period = Some(4_000_000_000);
    leader
        .dispatcher
        .committer
        .commit(vec![StoreAction::Create(cluster.into_object())])
        .await
        .expect("create the cluster");
    let period = leader.store.view(super::heartbeat_period);
    assert_eq!(period, Duration::from_secs(4));
    let request = SessionRequest {
        description: NodeDescription::default(),
    };
    let stream = leader
        .dispatcher
        .open_session("n1", "10.0.0.1".into(), request)
        .await
        .expect("the session opens");
    let session_id = leader
        .dispatcher
        .lock_sessions()
        .get("n1")
        .map(|s| s.id.clone())
        .expect("n1's session");
    let mut unseen = std::collections::HashMap::new();

    tokio::time::sleep(super::reconnect_grace(period) + Duration::from_millis(100)).await;
    leader.dispatcher.check_heartbeats(&mut unseen).await;
    assert_eq!(
        leader.state_of("n1"),
        Some(NodeState::Ready),
        "an open session within its silence limit"
    );

    drop(stream);
    for _ in 0..100 {
        if leader.dispatcher.lock_sessions().get("n1").is_some_and(|s| s.closed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        leader.dispatcher.heartbeat("n1", &session_id, None).await.is_err(),
        "a closed session takes no heartbeats"
    );
    tokio::time::sleep(super::reconnect_grace(period) + Duration::from_millis(100)).await;
    leader.dispatcher.check_heartbeats(&mut unseen).await;
    assert_eq!(leader.state_of("n1"), Some(NodeState::Down));
    leader.raft.shutdown().await;
}
