//! Getting a request that only the leader can carry out (a write, a membership change) to the
//! leader, from any manager: one loop for both.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::RaftNode;
use super::error::ForwardError;
use crate::codec;
use crate::network::Rpc;
use crate::network::TransportError;
use crate::state_machine::App;
use crate::types::ManagerAddr;

/// How often a request waiting for a leader looks again, so that it reaches a new leader as
/// soon as this manager knows it; each look is a read of local metrics (or a refused connect to
/// a dead leader).
const LEADER_POLL: Duration = Duration::from_millis(10);

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
            if Instant::now() + LEADER_POLL >= req.deadline {
                return Err(Unrouted::GaveUp {
                    waited_ms: start.elapsed().as_millis() as u64,
                    saw_leader,
                });
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }
}
