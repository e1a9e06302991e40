//! What a manager runs: the replicated store and the controllers around it (orchestrators,
//! scheduler, dispatcher, role manager), the Engine API and the endpoints other nodes call.

pub mod api;
pub mod controller;
pub mod dispatcher;
pub mod events;
pub mod leader;
pub mod orchestrator;
pub mod peer_api;
pub mod role_manager;
pub mod runtime;
pub mod scheduler;
pub mod store;
