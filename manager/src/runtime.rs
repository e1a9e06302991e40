//! [`Manager`]: the handles of a running manager, shared by the Engine API and the peer
//! endpoints; [`LocalNode`]: who this node is.

use std::path::PathBuf;
use std::sync::Arc;

use swarm_model::Cluster;
use swarm_model::ManagerStatus;
use swarm_model::Node;
use swarm_model::NodeRole;
use swarm_model::Reachability;
use swarm_net::peer_client::PeerClient;
use swarm_raft::RaftNode;
use swarm_raft::RaftStatus;

use crate::commit::Committer;
use crate::dispatcher::Dispatcher;
use crate::events::EventLog;
use crate::health::PeerHealth;
use crate::store::Store;

/// Who this node is.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub node_id: String,
    pub cluster_id: String,
    pub hostname: String,
    /// `host:port` other nodes dial.
    pub advertise_addr: String,
    pub role: NodeRole,
    pub data_dir: PathBuf,
}

/// The handles of a running manager, as the Engine API and the peer endpoints use them.
/// [`crate::start`] assembles it; nothing below the APIs takes it whole.
pub struct Manager {
    pub local: LocalNode,
    pub store: Arc<Store>,
    pub raft: Arc<RaftNode<Store>>,
    /// How every write reaches the store.
    pub committer: Arc<Committer>,
    pub dispatcher: Arc<Dispatcher>,
    pub peers: Arc<PeerClient>,
    pub health: Arc<PeerHealth>,
    /// Recent and live cluster events, for `GET /events`.
    pub events: Arc<EventLog>,
    /// Node certificate lifetime set outside the API, for tests of renewal.
    pub cert_expiry_override: Option<std::time::Duration>,
}

/// The cluster object does not exist yet: `swarmd init` has not committed it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the swarm is not initialised yet")]
pub struct NotInitialised;

impl Manager {
    /// Whether the manager `node_id` answers: this manager always does; others by their last
    /// ping. Quorum checks (demotion, leaving) count managers with this.
    pub fn is_reachable(&self, node_id: &str) -> bool {
        node_id == self.local.node_id || self.health.reachability(node_id) == Reachability::Reachable
    }

    /// The cluster object, once `swarmd init` has created it.
    pub fn cluster(&self) -> Result<Cluster, NotInitialised> {
        self.store.view(|s| s.cluster().cloned()).ok_or(NotInitialised)
    }

    /// Fills in what is not stored for a node: its manager status (leader, reachability) from
    /// raft and peer health. Whether a node is up comes from the dispatcher's heartbeats.
    pub fn decorate_node(&self, node: &mut Node, raft: &RaftStatus) {
        let Some(raft_id) = node.raft_id else {
            node.manager_status = None;
            return;
        };
        if node.spec.role != NodeRole::Manager {
            node.manager_status = None;
            return;
        }
        let member = raft.voters.get(&raft_id).or_else(|| raft.learners.get(&raft_id));
        let reachability = if node.id == self.local.node_id {
            Reachability::Reachable
        } else if member.is_some() {
            self.health.reachability(&node.id)
        } else {
            Reachability::Unknown
        };
        let addr = member.map(|m| m.addr.clone()).unwrap_or_default();
        if node.status.addr.is_empty() {
            node.status.addr = addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
        }
        node.manager_status = Some(ManagerStatus {
            leader: raft.leader == Some(raft_id),
            reachability,
            addr,
        });
    }
}
