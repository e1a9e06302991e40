//! Why a write or a membership change did not happen, as callers and forwarding managers see it.

use serde::Deserialize;
use serde::Serialize;

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

/// Why a linearizable read could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReadError {
    #[error(
        "The swarm does not have a leader: no manager was elected leader within {waited_ms} ms. It's possible that too few managers are online. Make sure more than half of the managers are online."
    )]
    NoLeader { waited_ms: u64 },
    #[error(
        "no quorum: the leader could not confirm with a majority of managers within {waited_ms} ms that it still leads, so a current read cannot be served; a majority of managers may be down or unreachable"
    )]
    NoQuorum { waited_ms: u64 },
    #[error("lost the connection to the leader ({leader}) while confirming a read: {reason}")]
    LeaderUnreachable { leader: String, reason: String },
    #[error(
        "this manager has applied the log up to index {applied} only, and did not catch up with index {index} in time to serve a current read"
    )]
    Behind { index: u64, applied: u64 },
    #[error("raft is not running on this manager: {0}")]
    Stopped(String),
}

/// Why a membership change was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("{0}")]
    QuorumRisk(String),
    #[error("{0}")]
    Propose(#[from] ProposeError),
    #[error("manager {0} did not catch up with the leader in time; it stays a non-voting learner")]
    CatchUpTimeout(String),
    #[error("membership change failed: {0}")]
    Failed(String),
}

/// What a leader answers to a forwarded request it could not carry out.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum ForwardError {
    /// It is not the leader (any more): the sender looks for the leader again.
    NotLeader,
    Propose(ProposeError),
    Membership(MembershipError),
    Read(ReadError),
}
