//! `swarmd`, which assembles a node: its identity and data dir, a manager (from
//! `swarm-manager`) on managers, the agent (from `swarm-agent`) on every node, the Engine API on
//! the control socket, and the node's life: init, join, run, role switches, leaving, shutdown
//! on SIGTERM or SIGINT.

mod api_listener;
mod assembly;
mod commands;
mod data_key;
pub mod datadir;
mod error;
mod identity;
mod node_key;
mod role_change;

pub use api_listener::ApiTls;
pub use api_listener::ApiTlsOptions;
pub use commands::InitOptions;
pub use commands::JoinOptions;
pub use commands::SimulateOptions;
pub use commands::init;
pub use commands::join;
pub use commands::run;
pub use commands::simulate;
pub use error::DaemonError;
pub use error::JoinError;
pub use error::RaftJoinError;
pub use identity::resolve_advertise;
pub use swarm_protocol::engine::DEFAULT_DATA_DIR;

/// Swarm's well-known manager port.
pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:2377";
