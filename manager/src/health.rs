//! Which managers answer: every manager pings the others once a second, and quorum checks
//! (demotion, leaving) and `node ls` read the answers. Kept in memory only: liveness is not
//! replicated.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use swarm_model::Reachability;
use swarm_net::peer_client::PeerClient;
use swarm_raft::RaftNode;
use swarm_sync::lock;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;

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
