//! What nodes ask a manager's listener outside a dispatcher session: joining the cluster,
//! joining raft, and a certificate for a new role. Bodies are JSON.

use serde::Deserialize;
use serde::Serialize;
use swarm_model::Availability;
use swarm_model::EngineDescription;
use swarm_model::Labels;
use swarm_model::NodeRole;
use swarm_model::Platform;
use swarm_model::Resources;

/// What a joining node sends with its CSR.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub csr_pem: String,
    pub hostname: String,
    /// `host:port` managers dial; required for managers.
    #[serde(default)]
    pub advertise_addr: String,
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub engine: EngineDescription,
    #[serde(default)]
    pub labels: Labels,
    /// `active` (default), `pause` or `drain`.
    #[serde(default)]
    pub availability: Option<Availability>,
}

/// The joining node's identity and certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub node_id: String,
    pub cluster_id: String,
    pub role: NodeRole,
    pub cert_pem: String,
    pub ca_pem: String,
    /// The raft id of the new manager incarnation; `None` for workers.
    pub raft_id: Option<u64>,
    /// Current managers, `(node ID, address)`.
    pub managers: Vec<(String, String)>,
}

/// A new manager asking to be added to raft, once it listens with its certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRaftRequest {
    pub raft_id: u64,
    pub addr: String,
}

/// A node asking for a certificate for the role the managers now want it to have (after a
/// promotion or demotion), signed in with its current certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr_pem: String,
    /// `host:port` other managers dial, should the node become a manager.
    pub advertise_addr: String,
}

/// A node whose certificate expired while it was off asks for a new one under its old node ID:
/// with a join token, and a signature by its old key over its node ID and the new CSR, which
/// the manager checks against the expired certificate. A token alone never takes over a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejoinRequest {
    pub node_id: String,
    pub token: String,
    pub csr_pem: String,
    /// The expired certificate, which names the node and holds its old public key.
    pub old_cert_pem: String,
    /// Base64 signature from `swarm_ca::rejoin_proof`.
    pub proof: String,
    pub advertise_addr: String,
}

/// The certificate for the node's role, and what it needs to run in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewResponse {
    pub role: NodeRole,
    pub cert_pem: String,
    /// The raft id of the node's manager incarnation; `None` for workers.
    pub raft_id: Option<u64>,
    /// Current managers, `(node ID, address)`.
    pub managers: Vec<(String, String)>,
}
