//! The openraft type configuration and the small value types that travel through it.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// Raft node id. Every incarnation of a manager gets a fresh random id, so a wiped manager that
/// rejoins can never vote twice under an old identity.
pub type RaftId = u64;

/// How to reach a manager: its swarm node ID and its advertised `host:port`.
///
/// This is what openraft stores in the membership config, so every manager learns the addresses
/// of the others from the replicated log itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerAddr {
    /// The swarm node ID (25 base36 characters), as in the node certificate's CN.
    pub node_id: String,
    /// The advertised address other managers dial, `host:port`.
    pub addr: String,
}

impl fmt::Display for ManagerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_id, self.addr)
    }
}

/// An application command: opaque bytes that only the application's state machine decodes.
///
/// Keeping commands opaque keeps this crate free of the domain model: it replicates and persists
/// bytes, and the application decides what they mean.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({} bytes)", self.0.len())
    }
}

/// What the application's state machine returned for one command, again opaque.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Display for CommandResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandResult({} bytes)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration for swarm-rs.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = RaftId,
        Node = ManagerAddr,
);

pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
pub(crate) type Entry = openraft::alias::EntryOf<TypeConfig>;
pub(crate) type EntryPayload = openraft::alias::EntryPayloadOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type Membership = openraft::Membership<RaftId, ManagerAddr>;
