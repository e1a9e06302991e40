//! Raft consensus and durable storage for swarm-rs.
//!
//! openraft does the consensus; raft-log keeps the log with group-committed fsyncs; snapshots
//! are files written atomically. Everything is hidden behind [`RaftNode`]: the rest of swarm-rs
//! proposes opaque commands, implements [`App`] to apply them, and implements [`Transport`] to
//! carry raft messages between managers.

mod codec;
mod durable_mark;
mod log_store;
mod network;
mod node;
pub mod quorum;
mod sealing;
mod snapshot_store;
mod state_machine;
mod types;

pub use codec::decode;
pub use codec::encode;
pub use log_store::LogOwner;
pub use log_store::LogWriteStats;
pub use network::BoxFuture;
pub use network::Rpc;
pub use network::Transport;
pub use network::TransportError;
pub use node::MembershipChange;
pub use node::MembershipError;
pub use node::OpenError;
pub use node::ProposeError;
pub use node::Proposed;
pub use node::RaftConfig;
pub use node::RaftNode;
pub use node::RaftStatus;
pub use node::ReadError;
pub use sealing::DATA_KEY_LEN;
pub use sealing::DataKey;
pub use state_machine::App;
pub use types::ManagerAddr;
pub use types::RaftId;
