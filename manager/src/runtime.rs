//! [`Manager`]: what a manager node runs, shared by the Engine API and the peer endpoints.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use swarm_model::Cluster;
use swarm_model::ManagerStatus;
use swarm_model::Node;
use swarm_model::NodeRole;
use swarm_model::Reachability;
use swarm_net::peer_client::PeerClient;
use swarm_raft::RaftNode;
use swarm_raft::RaftStatus;
use swarm_sync::lock;
use tokio::sync::watch;
use tokio::time::Instant;

use super::api::error::ApiError;
use super::store::Event;
use super::store::Proposal;
use super::store::Store;
use super::store::StoreAction;
use super::store::Transaction;
use super::store::TxResults;

/// Who this node is.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub node_id: String,
    pub cluster_id: String,
    pub hostname: String,
    /// `host:port` other nodes dial.
    pub advertise_addr: String,
    pub role: NodeRole,
    pub data_dir: PathBuf,
}

/// A running manager.
pub struct Manager {
    pub local: LocalNode,
    pub dispatcher: Arc<super::dispatcher::Dispatcher>,
    pub store: Arc<Store>,
    pub raft: Arc<RaftNode<Store>>,
    pub peers: Arc<PeerClient>,
    pub health: Arc<PeerHealth>,
    /// Recent and live cluster events, for `GET /events`.
    pub events: Arc<super::events::EventLog>,
}

impl Manager {
    /// Commits one transaction through raft and returns the raft index it was applied at.
    pub async fn commit(&self, actions: Vec<StoreAction>) -> Result<u64, ApiError> {
        let (index, mut results) = self.commit_txs(vec![Transaction { actions }]).await?;
        match results.pop() {
            Some(Ok(())) => Ok(index),
            Some(Err(e)) => Err(e.into()),
            None => Err(ApiError::internal(
                "the state machine returned no result for the transaction",
            )),
        }
    }

    /// Commits independent transactions in one raft entry.
    pub async fn commit_txs(&self, txs: Vec<Transaction>) -> Result<(u64, TxResults), ApiError> {
        self.commit_inner(txs, false).await
    }

    /// Like [`Manager::commit_txs`], but only while this manager is the leader (never forwarded).
    pub async fn commit_txs_as_leader(&self, txs: Vec<Transaction>) -> Result<(u64, TxResults), ApiError> {
        self.commit_inner(txs, true).await
    }

    async fn commit_inner(&self, txs: Vec<Transaction>, leader_only: bool) -> Result<(u64, TxResults), ApiError> {
        let n = txs.len();
        let bytes = Store::encode_proposal(&Proposal { txs })
            .map_err(|e| ApiError::internal(format!("cannot encode proposal: {e}")))?;
        let proposed = if leader_only {
            self.raft.propose_as_leader(bytes).await?
        } else {
            self.raft.propose(bytes).await?
        };
        let results = Store::decode_results(&proposed.result)
            .map_err(|e| ApiError::internal(format!("cannot decode transaction results: {e}")))?;
        if results.len() != n {
            return Err(ApiError::internal(format!(
                "the state machine returned {} results for {n} transactions",
                results.len()
            )));
        }
        Ok((proposed.index, results))
    }

    /// Whether the manager `node_id` answers: this manager always does; others by their last
    /// ping. Quorum checks (demotion, leaving) count managers with this.
    pub fn is_reachable(&self, node_id: &str) -> bool {
        node_id == self.local.node_id || self.health.reachability(node_id) == Reachability::Reachable
    }

    /// The cluster object.
    pub fn cluster(&self) -> Result<Cluster, ApiError> {
        self.store
            .view(|s| s.cluster().cloned())
            .ok_or_else(|| ApiError::unavailable("the swarm is not initialised yet"))
    }

    /// Fills in what is not stored for a node: its manager status (leader, reachability) from
    /// raft and peer health. Whether a node is up comes from the dispatcher's heartbeats.
    pub fn decorate_node(&self, node: &mut Node, raft: &RaftStatus) {
        let Some(raft_id) = node.raft_id else {
            node.manager_status = None;
            return;
        };
        if node.spec.role != NodeRole::Manager {
            node.manager_status = None;
            return;
        }
        let member = raft.voters.get(&raft_id).or_else(|| raft.learners.get(&raft_id));
        let reachability = if node.id == self.local.node_id {
            Reachability::Reachable
        } else if member.is_some() {
            self.health.reachability(&node.id)
        } else {
            Reachability::Unknown
        };
        let addr = member.map(|m| m.addr.clone()).unwrap_or_default();
        if node.status.addr.is_empty() {
            node.status.addr = addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
        }
        node.manager_status = Some(ManagerStatus {
            leader: raft.leader == Some(raft_id),
            reachability,
            addr,
        });
    }

    /// Turns every change this manager's store applies into a cluster event.
    pub async fn run_event_log(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut watcher = self.store.watch();
        loop {
            let batch = tokio::select! {
                b = watcher.next() => b,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Some(batch) = batch else { return };
            let now = swarm_model::Timestamp::now();
            for e in batch.iter() {
                if let Some(msg) = super::events::from_store(e, now) {
                    self.events.record(msg);
                }
            }
        }
    }

    /// Applies cluster settings that are local to each manager (snapshot policy) whenever the
    /// cluster object changes.
    pub async fn run_settings_controller(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let apply = |c: Option<Cluster>| {
            if let Some(c) = c {
                let interval = c.spec.raft.snapshot_interval;
                let keep = c.spec.raft.log_entries_for_slow_followers;
                self.raft.set_log_policy(interval, keep);
            }
        };
        let (cluster, mut watcher) = self.store.view_and_watch(|s| s.cluster().cloned());
        apply(cluster);
        loop {
            let batch = tokio::select! {
                b = watcher.next() => b,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Some(batch) = batch else { return };
            let touched = batch.iter().any(|e| match e {
                Event::Create(o) | Event::Update { new: o, .. } => o.kind() == swarm_model::Kind::Cluster,
                Event::Restored { .. } => true,
                _ => false,
            });
            if touched {
                apply(self.store.view(|s| s.cluster().cloned()));
            }
        }
    }
}

/// Which managers answered a ping recently. Kept in memory only: liveness is not replicated.
pub struct PeerHealth {
    last_ok: Mutex<HashMap<String, Instant>>,
    started: Instant,
    /// How long after the last answer a manager still counts as reachable.
    pub grace: Duration,
}

impl Default for PeerHealth {
    fn default() -> Self {
        Self {
            last_ok: Mutex::new(HashMap::new()),
            started: Instant::now(),
            grace: Duration::from_secs(3),
        }
    }
}

impl PeerHealth {
    pub fn reachability(&self, node_id: &str) -> Reachability {
        let last = lock(&self.last_ok).get(node_id).copied();
        match last {
            Some(t) if t.elapsed() <= self.grace => Reachability::Reachable,
            Some(_) => Reachability::Unreachable,
            None if self.started.elapsed() <= self.grace => Reachability::Unknown,
            None => Reachability::Unreachable,
        }
    }

    fn mark(&self, node_id: &str) {
        lock(&self.last_ok).insert(node_id.to_string(), Instant::now());
    }

    /// Pings every other manager once a second.
    pub async fn run(
        self: Arc<Self>,
        raft: Arc<RaftNode<Store>>,
        peers: Arc<PeerClient>,
        me: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let status = raft.status();
            let targets: Vec<_> = status
                .voters
                .values()
                .chain(status.learners.values())
                .filter(|m| m.node_id != me)
                .cloned()
                .collect();
            for target in targets {
                let health = self.clone();
                let peers = peers.clone();
                tokio::spawn(async move {
                    if peers
                        .call(&target.addr, "/raft/ping", None, Duration::from_secs(1))
                        .await
                        .is_ok()
                    {
                        health.mark(&target.node_id);
                    }
                });
            }
        }
    }
}
