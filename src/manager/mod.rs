//! Manager-side components.

pub mod api;
pub mod ca;
pub mod controller;
pub mod dispatcher;
pub mod events;
pub mod leader;
pub mod orchestrator;
pub mod peer_api;
pub mod raft_transport;
pub mod role_manager;
pub mod runtime;
pub mod scheduler;
pub mod store;
