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
pub async fn apply_cluster_settings(store: Arc<Store>, raft: Arc<RaftNode<Store>>, shutdown: watch::Receiver<bool>) {
    follow_cluster(store, shutdown, |c| {
        raft.set_log_policy(
            c.spec.raft.snapshot_interval,
            c.spec.raft.log_entries_for_slow_followers,
        )
    })
    .await
}

/// The unlock key this manager's data key should be sealed with: the cluster's while autolock
/// is on, none otherwise.
pub fn wanted_unlock_key(c: &Cluster) -> Option<String> {
    match c.spec.encryption_config.auto_lock_managers {
        true => c.root_ca.as_ref().and_then(|r| r.unlock_key.clone()),
        false => None,
    }
}

/// Calls `f` with the cluster object now and after every change to it, until `shutdown`.
pub async fn follow_cluster(store: Arc<Store>, mut shutdown: watch::Receiver<bool>, mut f: impl FnMut(&Cluster)) {
    let (cluster, mut watcher) = store.view_and_watch(|s| s.cluster().cloned());
    if let Some(c) = cluster {
        f(&c);
    }
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
        if touched && let Some(c) = store.view(|s| s.cluster().cloned()) {
            f(&c);
        }
    }
}
