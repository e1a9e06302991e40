//! swarm-rs: a Docker Swarm-compatible cluster manager on Raft.
#![forbid(unsafe_code)]

pub mod agent;
pub mod client;
pub mod ctl;
pub mod daemon;
pub mod host;
pub mod manager;
pub use swarm_model as model;
pub mod net;
