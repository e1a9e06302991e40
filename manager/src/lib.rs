//! What a manager runs: the replicated store and the controllers around it (orchestrators,
//! scheduler, dispatcher, role manager), the Engine API and the endpoints other nodes call.
//! [`start`] assembles them.

pub mod api;
pub mod certificates;
pub mod commit;
pub mod controller;
pub mod dispatcher;
pub mod events;
pub mod health;
pub mod interest;
pub mod ipam;
pub mod leader;
pub mod orchestrator;
pub mod peer;
pub mod role_manager;
pub mod runtime;
pub mod scheduler;
pub mod settings;
mod start;
pub mod store;

pub use start::ManagerConfig;
pub use start::StartError;
pub use start::StartedManager;
pub use start::start;
