//! How nodes reach each other: mutual TLS configs, the HTTP/2 peer client (one cached
//! connection per peer), the TLS listener that attaches the caller's certificate identity to
//! every request, and raft's transport over that client.
//!
//! Managers and agents both use it; it knows the CA's certificates and the protocol's error
//! bodies, and nothing of what a manager or an agent does.

pub mod pace;
pub mod peer_client;
pub mod raft_transport;
pub mod server;
pub mod tls;
