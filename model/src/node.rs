//! Nodes: every manager and worker that joined the cluster.

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::Timestamp;
use super::Version;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}

impl NodeRole {
    /// The certificate OU for this role.
    pub fn ou(self) -> &'static str {
        match self {
            NodeRole::Worker => "swarm-worker",
            NodeRole::Manager => "swarm-manager",
        }
    }

    pub fn from_ou(ou: &str) -> Option<Self> {
        match ou {
            "swarm-worker" => Some(NodeRole::Worker),
            "swarm-manager" => Some(NodeRole::Manager),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Unreachable,
    Reachable,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: Timestamp,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Timestamp,
    #[serde(rename = "Spec", default)]
    pub spec: NodeSpec,
    #[serde(rename = "Description", default)]
    pub description: NodeDescription,
    #[serde(rename = "Status", default)]
    pub status: NodeStatus,
    /// Filled in at read time from raft and peer health; `None` for workers.
    #[serde(rename = "ManagerStatus", default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
    /// The raft id of this manager's current incarnation.
    #[serde(rename = "RaftID", default, skip_serializing_if = "Option::is_none")]
    pub raft_id: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    #[serde(rename = "Role", default)]
    pub role: NodeRole,
    #[serde(rename = "Availability", default)]
    pub availability: Availability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescription {
    #[serde(rename = "Hostname", default)]
    pub hostname: String,
    #[serde(rename = "Platform", default)]
    pub platform: super::Platform,
    #[serde(rename = "Resources", default)]
    pub resources: super::Resources,
    #[serde(rename = "Engine", default)]
    pub engine: EngineDescription,
    #[serde(rename = "TLSInfo", default)]
    pub tls_info: TlsInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineDescription {
    #[serde(rename = "EngineVersion", default)]
    pub engine_version: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(rename = "Plugins", default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginDescription>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDescription {
    #[serde(rename = "Type")]
    pub type_: String,
    #[serde(rename = "Name")]
    pub name: String,
}

/// The trust root and issuer, as shown on nodes and on the swarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    #[serde(rename = "TrustRoot", default)]
    pub trust_root: String,
    #[serde(rename = "CertIssuerSubject", default)]
    pub cert_issuer_subject: String,
    #[serde(rename = "CertIssuerPublicKey", default)]
    pub cert_issuer_public_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    #[serde(rename = "State", default)]
    pub state: NodeState,
    #[serde(rename = "Message", default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(rename = "Addr", default)]
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerStatus {
    #[serde(rename = "Leader", default, skip_serializing_if = "super::service::is_false")]
    pub leader: bool,
    #[serde(rename = "Reachability", default)]
    pub reachability: Reachability,
    #[serde(rename = "Addr", default)]
    pub addr: String,
}
