//! Writes: committing a command on the leader, and getting requests that only the leader can
//! carry out (writes, membership changes) to it from any manager.

use std::future::Future;
use std::time::Duration;

use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::Proposed;
use super::RaftNode;
use super::membership::MembershipError;
use crate::codec;
use crate::network::Rpc;
use crate::network::TransportError;
use crate::state_machine::App;
use crate::types::Command;
use crate::types::ManagerAddr;

/// Why a proposal did not commit. Every variant says what the caller can conclude.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error(
        "no leader: no manager was elected leader within {waited_ms} ms; a majority of managers may be down or unreachable (no quorum)"
    )]
    NoLeader { waited_ms: u64 },
    #[error(
        "no quorum: the write was not committed within {waited_ms} ms; a majority of managers may be down or unreachable. It may still be applied if they return"
    )]
    NoQuorum { waited_ms: u64 },
    #[error("the write was discarded by a leader change; it may or may not have been applied, check before retrying")]
    Discarded,
    #[error(
        "lost the connection to the leader ({leader}) while forwarding the write: {reason}; it may or may not have been applied, check before retrying"
    )]
    LeaderUnreachable { leader: String, reason: String },
    #[error("the leader ({leader}) refused the forwarded write: {reason}")]
    LeaderRefused { leader: String, reason: String },
    #[error("raft is not running on this manager: {0}")]
    Stopped(String),
    #[error("this manager is not the raft leader")]
    NotLeader,
}

/// What a leader answers to a forwarded request it could not carry out.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum ForwardError {
    /// It is not the leader (any more): the sender looks for the leader again.
    NotLeader,
    Propose(ProposeError),
    Membership(MembershipError),
}

/// How [`RaftNode::on_leader`] failed to get a request carried out.
pub(super) enum Unrouted {
    /// The deadline passed without a leader that took the request; `saw_leader` if one was
    /// known at some point.
    GaveUp { waited_ms: u64, saw_leader: bool },
    /// The leader (this node or another) refused it, for another reason than not leading.
    Refused(ForwardError),
    /// The request was forwarded to `leader` and may have been sent, but no answer came back.
    Failed { leader: ManagerAddr, error: TransportError },
    /// The leader answered something that does not decode.
    BadAnswer { leader: ManagerAddr, error: std::io::Error },
}

/// A request [`RaftNode::on_leader`] carries to the leader.
pub(super) struct LeaderRequest {
    pub rpc: Rpc,
    /// The request as forwarded.
    pub body: Vec<u8>,
    /// Until when to look for a leader.
    pub deadline: Instant,
    /// How long a forwarded request may take; `None` means until the deadline.
    pub forward_timeout: Option<Duration>,
}

impl<A: App> RaftNode<A> {
    /// Carries a request out where the leader is: `local` when this node leads, otherwise the
    /// request is forwarded to the leader, whose answer is returned as is. Until the deadline,
    /// it looks for the leader again when none is known, the leader moved on, or the leader
    /// could not be reached before anything was sent.
    pub(super) async fn on_leader<T, F, Fut>(&self, req: LeaderRequest, mut local: F) -> Result<(T, bool), Unrouted>
    where
        T: DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ForwardError>>,
    {
        let start = Instant::now();
        let mut saw_leader = false;
        loop {
            let status = self.status();
            match status.leader {
                Some(leader) if leader == self.id && status.is_leader() => {
                    saw_leader = true;
                    match local().await {
                        Err(ForwardError::NotLeader) => {}
                        Ok(v) => return Ok((v, false)),
                        Err(e) => return Err(Unrouted::Refused(e)),
                    }
                }
                Some(_) => {
                    saw_leader = true;
                    if let Some(addr) = status.leader_addr().cloned() {
                        let timeout = req
                            .forward_timeout
                            .unwrap_or_else(|| req.deadline.saturating_duration_since(Instant::now()));
                        match self.transport.call(&addr, req.rpc, req.body.clone(), timeout).await {
                            Ok(bytes) => {
                                let answer: Result<T, ForwardError> = codec::decode(&bytes, "forwarded request result")
                                    .map_err(|error| Unrouted::BadAnswer {
                                        leader: addr.clone(),
                                        error,
                                    })?;
                                match answer {
                                    Ok(v) => return Ok((v, true)),
                                    Err(ForwardError::NotLeader) => {}
                                    Err(e) => return Err(Unrouted::Refused(e)),
                                }
                            }
                            // Never sent: safe to try again once the leader is known again.
                            Err(TransportError::Unreachable { .. }) => {}
                            Err(error) => return Err(Unrouted::Failed { leader: addr, error }),
                        }
                    }
                }
                None => {}
            }
            if Instant::now() + Duration::from_millis(50) >= req.deadline {
                return Err(Unrouted::GaveUp {
                    waited_ms: start.elapsed().as_millis() as u64,
                    saw_leader,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

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
