//! Networking between nodes: mutual TLS, the HTTP/2 peer client and the TLS listener.

pub mod peer_client;
pub mod server;
pub mod tls;
