//! Node certificate lifetimes, and a manager renewing its own certificate: every manager holds
//! a replica of the root CA, so it signs its own renewal from its store, with no other manager
//! needed, even when its certificate expired while it was off (moby/moby#24132).

use std::time::Duration;

use swarm_ca::CaError;
use swarm_ca::CertIdentity;
use swarm_ca::issue_node_cert;
use swarm_model::Cluster;
use swarm_model::NodeRole;

use crate::runtime::Manager;

/// How long node certificates live: the test override, the cluster setting, or Swarm's 90 days.
pub(crate) fn node_cert_expiry(m: &Manager, cluster: &Cluster) -> Duration {
    m.cert_expiry_override.unwrap_or_else(|| {
        cluster
            .spec
            .ca_config
            .node_cert_expiry
            .filter(|e| *e > 0)
            .map(|ns| Duration::from_nanos(ns as u64))
            .unwrap_or(swarm_ca::NODE_CERT_EXPIRY)
    })
}

/// Why a manager cannot sign its own renewal (yet).
#[derive(Debug, thiserror::Error)]
pub enum OwnCertError {
    #[error("this manager's store has no cluster or root CA yet")]
    NoCa,
    #[error("this node is no longer a manager in this manager's store; the role change renews it")]
    NotAManager,
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl Manager {
    /// A certificate for this manager's key (`csr_pem`), signed with the root CA from its own
    /// store, with the cluster's current lifetime.
    pub fn issue_own_certificate(&self, csr_pem: &str) -> Result<String, OwnCertError> {
        let node_id = &self.local.node_id;
        let (cluster, role) = self
            .store
            .view(|s| (s.cluster().cloned(), s.nodes.get(node_id).map(|n| n.spec.role)));
        let cluster = cluster.ok_or(OwnCertError::NoCa)?;
        let root = cluster.root_ca.clone().ok_or(OwnCertError::NoCa)?;
        if role != Some(NodeRole::Manager) {
            return Err(OwnCertError::NotAManager);
        }
        let who = CertIdentity {
            node_id: node_id.clone(),
            role: NodeRole::Manager,
            cluster_id: cluster.id.clone(),
        };
        let expiry = node_cert_expiry(self, &cluster);
        Ok(issue_node_cert(
            &root.ca_cert_pem,
            &root.ca_key_pem,
            csr_pem,
            &who,
            expiry,
        )?)
    }
}
