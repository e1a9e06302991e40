//! The role manager, on the leader: keeps raft membership in line with the nodes' roles, as
//! Swarm's roleManager does. A raft member whose node is no longer a manager in the store (it
//! was demoted, or is an old incarnation) is taken out of raft, quorum-safely: a removal that
//! would risk the quorum waits until it no longer does. Adding members is the promoted node's
//! part: it joins raft itself once it has its manager certificate.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::NodeRole;
use swarm_raft::MembershipChange;
use swarm_raft::RaftId;
use swarm_raft::RaftStatus;
use tokio::sync::watch;

use swarm_raft::RaftNode;

use crate::store::Store;
use crate::store::StoreState;

/// Raft members that should not be members: their node is gone, not a manager any more, or
/// holds another raft id now.
pub fn stale_members(s: &StoreState, raft: &RaftStatus) -> Vec<RaftId> {
    raft.voters
        .iter()
        .chain(raft.learners.iter())
        .filter(|(id, addr)| {
            !s.nodes
                .get(&addr.node_id)
                .is_some_and(|n| n.spec.role == NodeRole::Manager && n.raft_id == Some(**id))
        })
        .map(|(id, _)| *id)
        .collect()
}

pub async fn run(store: Arc<Store>, raft: Arc<RaftNode<Store>>, mut stop: watch::Receiver<bool>) {
    let mut watcher = store.watch();
    loop {
        let stale = store.view(|s| stale_members(s, &raft.status()));
        for id in stale {
            let change = MembershipChange::RemoveManager { id };
            match raft.change_membership(change).await {
                Ok(()) => tracing::info!(raft_id = %format!("{id:x}"), "took a demoted manager out of raft"),
                Err(e) => {
                    tracing::warn!(raft_id = %format!("{id:x}"), error = %e, "cannot take a demoted manager out of raft yet")
                }
            }
        }
        tokio::select! {
            _ = watcher.next() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        while watcher.try_next().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use swarm_model::Node;
    use swarm_model::StoreObject;
    use swarm_raft::ManagerAddr;

    use super::*;
    use crate::store::testing::store_with;

    #[test]
    fn members_whose_node_is_not_a_manager_any_more_are_stale() {
        let node = |id: &str, role: NodeRole, raft_id: Option<u64>| {
            let mut n = Node {
                id: id.into(),
                raft_id,
                ..Default::default()
            };
            n.spec.role = role;
            n.into_object()
        };
        let store = store_with(vec![
            node("keep", NodeRole::Manager, Some(1)),
            node("demoted", NodeRole::Worker, None),
            node("reborn", NodeRole::Manager, Some(9)),
        ]);
        let addr = |n: &str| ManagerAddr {
            node_id: n.into(),
            addr: "127.0.0.1:1".into(),
        };
        let raft = RaftStatus {
            id: 1,
            state: "leader".into(),
            leader: Some(1),
            term: 1,
            last_log_index: None,
            committed: None,
            applied: None,
            applied_term: None,
            snapshot: None,
            purged: None,
            voters: BTreeMap::from([(1, addr("keep")), (2, addr("demoted")), (3, addr("reborn"))]),
            learners: BTreeMap::from([(4, addr("gone"))]),
            millis_since_quorum_ack: None,
            log_writes: Default::default(),
        };
        let mut stale = store.view(|s| stale_members(s, &raft));
        stale.sort();
        assert_eq!(stale, vec![2, 3, 4]);
    }
}
