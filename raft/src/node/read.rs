//! Linearizable reads from any manager: the leader confirms with a quorum that it still leads
//! (raft's ReadIndex) and names the index a read must see; the reading manager waits until it
//! has applied that far, then reads its own store.

use openraft::ReadPolicy;
use openraft::errors::RaftError;
use tokio::time::Instant;

use super::RaftNode;
use super::error::ForwardError;
use super::error::ReadError;
use super::route::LeaderRequest;
use super::route::Unrouted;
use crate::codec;
use crate::network::Rpc;
use crate::network::TransportError;
use crate::state_machine::App;

impl<A: App> RaftNode<A> {
    /// Returns once this manager's store holds everything committed before the call, so a read
    /// of it that follows is linearizable (what Swarm gets by sending every read to the
    /// leader). Fails without a leader that can confirm its leadership with a quorum.
    pub async fn read_barrier(&self) -> Result<u64, ReadError> {
        let start = Instant::now();
        let deadline = start + self.config.propose_timeout;
        let req = LeaderRequest {
            rpc: Rpc::ReadIndex,
            body: codec::encode(&()).map_err(|e| ReadError::Stopped(e.to_string()))?,
            deadline,
            forward_timeout: None,
        };
        let waited = || start.elapsed().as_millis() as u64;
        let index = match self.on_leader(req, || self.read_index_local(deadline)).await {
            Ok((index, _)) => index,
            Err(Unrouted::GaveUp { saw_leader, .. }) => {
                return Err(if saw_leader {
                    ReadError::NoQuorum { waited_ms: waited() }
                } else {
                    ReadError::NoLeader { waited_ms: waited() }
                });
            }
            Err(Unrouted::Refused(ForwardError::Read(e))) => return Err(e),
            Err(Unrouted::Refused(e)) => return Err(ReadError::Stopped(format!("{e:?}"))),
            Err(Unrouted::Failed {
                error: TransportError::Timeout { .. },
                ..
            }) => return Err(ReadError::NoQuorum { waited_ms: waited() }),
            Err(Unrouted::Failed { leader, error }) => {
                return Err(ReadError::LeaderUnreachable {
                    leader: leader.to_string(),
                    reason: error.to_string(),
                });
            }
            Err(Unrouted::BadAnswer { leader, error }) => {
                return Err(ReadError::LeaderUnreachable {
                    leader: leader.to_string(),
                    reason: error.to_string(),
                });
            }
        };
        if self.wait_applied(index, deadline).await {
            Ok(index)
        } else {
            Err(ReadError::Behind {
                index,
                applied: self.applied_index(),
            })
        }
    }

    /// On the leader: the index a linearizable read must see, once a quorum confirmed this
    /// node still leads.
    pub(super) async fn read_index_local(&self, deadline: Instant) -> Result<u64, ForwardError> {
        let start = Instant::now();
        match tokio::time::timeout_at(deadline, self.raft.get_read_linearizer(ReadPolicy::ReadIndex)).await {
            Err(_) => Err(ForwardError::Read(ReadError::NoQuorum {
                waited_ms: start.elapsed().as_millis() as u64,
            })),
            Ok(Ok(linearizer)) => Ok(linearizer.read_log_id().index()),
            Ok(Err(RaftError::APIError(e))) => match e {
                openraft::errors::LinearizableReadError::ForwardToLeader(_) => Err(ForwardError::NotLeader),
                other => Err(ForwardError::Read(ReadError::NoQuorum {
                    waited_ms: {
                        tracing::debug!(error = %other, "leadership not confirmed for a read");
                        start.elapsed().as_millis() as u64
                    },
                })),
            },
            Ok(Err(RaftError::Fatal(e))) => Err(ForwardError::Read(ReadError::Stopped(e.to_string()))),
        }
    }
}
