//! Cluster settings that each manager applies locally: raft's snapshot policy follows the
//! cluster object's `Raft` settings, on every manager, whenever they change.

use std::sync::Arc;

use swarm_model::Cluster;
use swarm_model::Kind;
use swarm_raft::RaftNode;
use tokio::sync::watch;

use crate::store::Event;
use crate::store::Store;

/// Applies the cluster's raft settings to `raft` now and on every change, until `shutdown`.
pub async fn apply_cluster_settings(
    store: Arc<Store>,
    raft: Arc<RaftNode<Store>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let apply = |c: Option<Cluster>| {
        if let Some(c) = c {
            let interval = c.spec.raft.snapshot_interval;
            let keep = c.spec.raft.log_entries_for_slow_followers;
            raft.set_log_policy(interval, keep);
        }
    };
    let (cluster, mut watcher) = store.view_and_watch(|s| s.cluster().cloned());
    apply(cluster);
    loop {
        let batch = tokio::select! {
            b = watcher.next() => b,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(batch) = batch else { return };
        let touched = batch.iter().any(|e| match e {
            Event::Create(o) | Event::Update { new: o, .. } => o.kind() == Kind::Cluster,
            Event::Restored { .. } => true,
            _ => false,
        });
        if touched {
            apply(store.view(|s| s.cluster().cloned()));
        }
    }
}
