//! Manager-side components.

pub mod api;
pub mod ca;
pub mod peer_api;
pub mod raft_transport;
pub mod runtime;
pub mod store;
