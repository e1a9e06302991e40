//! Membership: adding a manager (as a learner that catches up, then as a voter) and removing
//! one, from any manager, refused when the change could leave the cluster without a quorum.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use serde::Serialize;
use tokio::time::Instant;

use super::RaftNode;
use super::error::ForwardError;
use super::error::MembershipError;
use super::error::ProposeError;
use super::route::LeaderRequest;
use super::route::Unrouted;
use crate::codec;
use crate::network::Rpc;
use crate::quorum;
use crate::state_machine::App;
use crate::types::ManagerAddr;
use crate::types::RaftId;

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a manager: first as a learner that catches up, then as a voter.
    AddManager { id: RaftId, addr: ManagerAddr },
    /// Remove a manager from the voters and from the membership.
    RemoveManager { id: RaftId },
}

impl<A: App> RaftNode<A> {
    /// Adds or removes a manager, from any manager (forwarded to the leader). Refused when the
    /// change could leave the cluster without a quorum.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let start = Instant::now();
        let req = LeaderRequest {
            rpc: Rpc::Membership,
            body: codec::encode(&change).map_err(|e| MembershipError::Failed(e.to_string()))?,
            deadline: start + self.config.propose_timeout,
            // Catching up may take a while; give it the catch-up deadline.
            forward_timeout: Some(self.config.catch_up_timeout + self.config.propose_timeout),
        };
        let change = &change;
        let routed = self
            .on_leader(req, move || async move {
                self.change_membership_local(change.clone())
                    .await
                    .map_err(ForwardError::Membership)
            })
            .await;
        match routed {
            Ok(((), _)) => Ok(()),
            Err(Unrouted::Refused(ForwardError::Membership(e))) => Err(e),
            Err(Unrouted::Refused(ForwardError::Propose(e))) => Err(e.into()),
            Err(Unrouted::Refused(ForwardError::Read(e))) => Err(MembershipError::Failed(e.to_string())),
            Err(Unrouted::GaveUp { .. } | Unrouted::Refused(ForwardError::NotLeader)) => Err(ProposeError::NoLeader {
                waited_ms: start.elapsed().as_millis() as u64,
            }
            .into()),
            Err(Unrouted::Failed { error, .. }) => Err(MembershipError::Failed(error.to_string())),
            Err(Unrouted::BadAnswer { error, .. }) => Err(MembershipError::Failed(error.to_string())),
        }
    }

    pub(super) async fn change_membership_local(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let _serialized = self.membership_lock.lock().await;
        // openraft refuses a change while the previous one is still being committed.
        let settle = Instant::now() + self.config.propose_timeout;
        loop {
            let m = self.raft.metrics().borrow_watched().clone();
            if m.membership_config.log_id() == m.committed_membership_config.log_id() {
                break;
            }
            if Instant::now() >= settle {
                return Err(MembershipError::Failed(
                    "the previous membership change has not committed yet; try again".to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = self.status();
        let voters: BTreeSet<RaftId> = status.voters.keys().copied().collect();
        let healthy = self.healthy_voters();
        match change {
            MembershipChange::AddManager { id, addr } => {
                if voters.contains(&id) {
                    return Ok(());
                }
                quorum::check_add(&voters, &healthy).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                tracing::info!(raft_id = %format!("{id:x}"), %addr, "adding manager as learner");
                let added = tokio::time::timeout(
                    self.config.catch_up_timeout,
                    self.raft.add_learner(id, addr.clone(), true),
                )
                .await;
                match added {
                    Err(_) => return Err(MembershipError::CatchUpTimeout(addr.to_string())),
                    Ok(Err(e)) => return Err(membership_failed(e)),
                    Ok(Ok(_)) => {}
                }
                // Re-check: a voter may have gone away while the learner caught up.
                let healthy = self.healthy_voters();
                quorum::check_add(&voters, &healthy).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                tracing::info!(raft_id = %format!("{id:x}"), %addr, "promoting manager to voter");
                let promote = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
                match tokio::time::timeout(self.config.propose_timeout, promote).await {
                    Err(_) => Err(ProposeError::NoQuorum {
                        waited_ms: self.config.propose_timeout.as_millis() as u64,
                    }
                    .into()),
                    Ok(Err(e)) => Err(membership_failed(e)),
                    Ok(Ok(_)) => Ok(()),
                }
            }
            MembershipChange::RemoveManager { id } => {
                if !voters.contains(&id) {
                    if status.learners.contains_key(&id) {
                        let remove = self
                            .raft
                            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false);
                        return match tokio::time::timeout(self.config.propose_timeout, remove).await {
                            Err(_) => Err(ProposeError::NoQuorum {
                                waited_ms: self.config.propose_timeout.as_millis() as u64,
                            }
                            .into()),
                            Ok(Err(e)) => Err(membership_failed(e)),
                            Ok(Ok(_)) => Ok(()),
                        };
                    }
                    return Ok(());
                }
                quorum::check_remove(&voters, &healthy, id).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                let remove = self
                    .raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false);
                match tokio::time::timeout(self.config.propose_timeout, remove).await {
                    Err(_) => Err(ProposeError::NoQuorum {
                        waited_ms: self.config.propose_timeout.as_millis() as u64,
                    }
                    .into()),
                    Ok(Err(e)) => Err(membership_failed(e)),
                    Ok(Ok(_)) => {
                        if id == self.id {
                            self.hand_over_leadership(&healthy).await;
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// A leader that removed itself from the voters still leads (raft allows it) until it
    /// stops; it hands leadership to a healthy voter instead, so the cluster does not depend on
    /// a manager on its way out.
    async fn hand_over_leadership(&self, healthy: &BTreeSet<RaftId>) -> bool {
        let voters: BTreeSet<RaftId> = self.status().voters.keys().copied().collect();
        // The voter furthest along: openraft's transfer takes effect at once only on a voter
        // whose log has caught up with the leader's.
        let m = self.raft.metrics().borrow_watched().clone();
        let matched = |id: &RaftId| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index)
        };
        let Some(to) = healthy
            .iter()
            .filter(|v| **v != self.id && voters.contains(v))
            .max_by_key(|v| matched(v))
            .copied()
        else {
            return false;
        };
        tracing::info!(to = %format!("{to:x}"), "handing leadership over");
        if let Err(e) = self.raft.trigger().transfer_leader(to).await {
            tracing::warn!(error = %e, "cannot hand leadership over");
            return false;
        }
        true
    }

    /// A leader about to stop hands leadership over (as [`Self::hand_over_leadership`]), and
    /// waits up to `within` for another voter to take over: the cluster then writes again
    /// within a round trip instead of an election timeout. Does nothing on a follower or a
    /// single voter.
    pub async fn hand_over_before_stop(&self, within: Duration) {
        if !self.status().is_leader() || !self.hand_over_leadership(&self.healthy_voters()).await {
            return;
        }
        let mut metrics = self.raft.metrics();
        let moved = async {
            while metrics.borrow_watched().current_leader.is_none_or(|l| l == self.id) {
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(within, moved).await.is_err() {
            tracing::warn!("leadership did not move before stopping");
        }
    }

    /// Voters that acknowledged the leader recently, including the leader. Empty on followers.
    pub(super) fn healthy_voters(&self) -> BTreeSet<RaftId> {
        let m = self.raft.metrics().borrow_watched().clone();
        let mut healthy = BTreeSet::new();
        if m.state != ServerState::Leader {
            return healthy;
        }
        healthy.insert(self.id);
        let fresh = self.config.quorum_ack_window();
        if let Some(heartbeats) = &m.heartbeat {
            for (id, acked) in heartbeats {
                if let Some(at) = acked
                    && openraft::Instant::elapsed(&**at) <= fresh
                {
                    healthy.insert(*id);
                }
            }
        }
        healthy
    }
}

fn membership_failed<E: std::fmt::Display>(e: E) -> MembershipError {
    MembershipError::Failed(e.to_string())
}
