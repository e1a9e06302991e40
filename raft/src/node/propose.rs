//! Writes: committing a command on the leader, directly or forwarded from any manager.

use std::time::Duration;

use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use tokio::time::Instant;

use super::Proposed;
use super::RaftNode;
use super::error::ForwardError;
use super::error::ProposeError;
use super::route::LeaderRequest;
use super::route::Unrouted;
use crate::codec;
use crate::network::Rpc;
use crate::network::TransportError;
use crate::state_machine::App;
use crate::types::Command;

impl<A: App> RaftNode<A> {
    /// Commits a command only if this node is the leader; never forwards. Leader-side controllers
    /// use it so that a deposed leader cannot push decisions made on a stale view.
    pub async fn propose_as_leader(&self, command: Vec<u8>) -> Result<Proposed, ProposeError> {
        let start = Instant::now();
        if !self.status().is_leader() {
            return Err(ProposeError::NotLeader);
        }
        match self
            .propose_local(command, start + self.config.propose_timeout, start)
            .await
        {
            Ok(p) => Ok(p),
            Err(ForwardError::NotLeader) => Err(ProposeError::NotLeader),
            Err(ForwardError::Propose(e)) => Err(e),
            Err(ForwardError::Membership(e)) => Err(ProposeError::Stopped(e.to_string())),
            Err(ForwardError::Read(e)) => Err(ProposeError::Stopped(e.to_string())),
        }
    }

    /// Commits a command through raft from any manager: on the leader directly, on a follower by
    /// forwarding it to the leader. Returns once the entry is committed and applied here, or
    /// fails within the proposal deadline.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Proposed, ProposeError> {
        let start = Instant::now();
        let deadline = start + self.config.propose_timeout;
        let req = LeaderRequest {
            rpc: Rpc::Forward,
            body: codec::encode(&Command(command.clone())).map_err(|e| ProposeError::Stopped(e.to_string()))?,
            deadline,
            forward_timeout: None,
        };
        let routed = self
            .on_leader(req, || self.propose_local(command.clone(), deadline, start))
            .await;
        match routed {
            Ok((p, false)) => Ok(p),
            Ok((p, true)) => {
                // Read-your-writes on this manager: the write is committed, so wait a little past
                // the deadline for it to arrive here.
                let grace = deadline.max(Instant::now()) + Duration::from_secs(2);
                if !self.wait_applied(p.index, grace).await {
                    tracing::warn!(
                        index = p.index,
                        applied = self.applied_index(),
                        "committed write not yet applied on this manager"
                    );
                }
                Ok(p)
            }
            Err(Unrouted::GaveUp { waited_ms, saw_leader }) => Err(if saw_leader {
                ProposeError::NoQuorum { waited_ms }
            } else {
                ProposeError::NoLeader { waited_ms }
            }),
            Err(Unrouted::Refused(ForwardError::Propose(e))) => Err(e),
            Err(Unrouted::Refused(ForwardError::Membership(e))) => Err(ProposeError::Stopped(e.to_string())),
            Err(Unrouted::Refused(ForwardError::Read(e))) => Err(ProposeError::Stopped(e.to_string())),
            // NotLeader is never a refusal: on_leader looks for the leader again.
            Err(Unrouted::Refused(ForwardError::NotLeader)) => Err(ProposeError::NotLeader),
            Err(Unrouted::Failed { leader, error }) => Err(match error {
                TransportError::Timeout { .. } => ProposeError::NoQuorum {
                    waited_ms: start.elapsed().as_millis() as u64,
                },
                e @ TransportError::Refused { .. } => ProposeError::LeaderRefused {
                    leader: leader.to_string(),
                    reason: e.to_string(),
                },
                e => ProposeError::LeaderUnreachable {
                    leader: leader.to_string(),
                    reason: e.to_string(),
                },
            }),
            Err(Unrouted::BadAnswer { leader, error }) => Err(ProposeError::LeaderUnreachable {
                leader: leader.to_string(),
                reason: error.to_string(),
            }),
        }
    }

    pub(super) async fn propose_local(
        &self,
        command: Vec<u8>,
        deadline: Instant,
        start: Instant,
    ) -> Result<Proposed, ForwardError> {
        match tokio::time::timeout_at(deadline, self.raft.client_write(Command(command))).await {
            Err(_) => Err(ForwardError::Propose(ProposeError::NoQuorum {
                waited_ms: start.elapsed().as_millis() as u64,
            })),
            Ok(Ok(resp)) => Ok(Proposed {
                index: resp.log_id.index,
                result: resp.data.0,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(ForwardError::NotLeader),
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => {
                Err(ForwardError::Propose(ProposeError::Discarded))
            }
            Ok(Err(RaftError::APIError(e))) => Err(ForwardError::Propose(ProposeError::Stopped(e.to_string()))),
            Ok(Err(RaftError::Fatal(e))) => Err(ForwardError::Propose(ProposeError::Stopped(e.to_string()))),
        }
    }
}
